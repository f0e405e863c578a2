import ArgumentParser
import Foundation
import RecCore
import RecStream
import Scenario
import Studies

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
        var s = try loadScenario(scenario)
        if let seed { s.seed = seed }
        let experiment = OfflineExperiment(scenario: s)
        let retrieval = OfflineRetrieval(scenario: s)
        guard !experiment.models.isEmpty || !retrieval.arms.isEmpty else {
            throw BadInput("\(s.name): no arm ranks with a sequence model (dare, twin, twin-proj or din) or retrieves with towers (two-tower, sparc); nothing to compare offline")
        }
        let progress: (String) -> Void = { if isatty(STDERR_FILENO) != 0 { printError($0) } }
        var document: JSONValue = .null
        if !experiment.models.isEmpty {
            let cells = try experiment.run(progress: progress)
            print(OfflineExperiment.table(cells, seeds: s.offline.seeds))
            document = OfflineExperiment.json(cells, scenario: s)
        } else {
            document = ["scenario": .string(s.name), "seed": .integer(Int64(bitPattern: s.seed)), "seeds": .integer(Int64(s.offline.seeds))]
        }
        if !retrieval.arms.isEmpty {
            let rows = retrieval.run(progress: progress)
            print(OfflineRetrieval.table(rows, seeds: s.offline.seeds))
            if case .object(var o) = document {
                o["retrieval"] = OfflineRetrieval.json(rows)
                document = .object(o)
            }
        }
        if let directory = out ?? s.output.directory {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            let path = (directory as NSString).appendingPathComponent("offline.json")
            try document.rendered().write(toFile: path, atomically: true, encoding: .utf8)
            print("Report: \(path)")
        }
    }
}
