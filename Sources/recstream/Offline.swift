import ArgumentParser
import Foundation
import RecCore
import RecStream
import Scenario

struct Offline: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train the scenario's sequence models on logged data and print the DARE paper's kind of table.",
        discussion: """
            Logs data from the simulated world under a logging policy, trains every arm that \
            ranks with dare or twin at each of offline.dims, and reports test AUC, GAUC, log \
            loss and the search stage's retrieval NDCG against the true relevance, as a mean \
            with a 95% t interval over offline.seeds worlds. Writes offline.json to --out.
            """)

    @Argument(help: "The scenario file (JSON).")
    var scenario: String

    @Option(help: "Write offline.json here (overrides output.directory).")
    var out: String?

    @Option(help: "Override the scenario's seed (the first world's).")
    var seed: UInt64?

    func run() throws {
        var s: Scenario
        do {
            s = try Scenario.load(path: scenario)
        } catch {
            printError(error.description)
            throw Exit.badInput
        }
        if let seed { s.seed = seed }
        let experiment = OfflineExperiment(scenario: s)
        let cells: [OfflineExperiment.Cell]
        do {
            cells = try experiment.run(progress: { if isatty(STDERR_FILENO) != 0 { printError($0) } })
        } catch let error as RunError {
            printError("error: \(error)")
            throw Exit.badInput
        }
        print(OfflineExperiment.table(cells, seeds: s.offline.seeds))
        if let directory = out ?? s.output.directory {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            let path = (directory as NSString).appendingPathComponent("offline.json")
            try OfflineExperiment.json(cells, scenario: s).rendered().write(toFile: path, atomically: true, encoding: .utf8)
            print("Report: \(path)")
        }
    }
}
