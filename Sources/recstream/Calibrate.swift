import ArgumentParser
import Experiment
import Foundation
import RecStream
import Report
import Scenario
import Studies

struct Calibrate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check the intervals against the truth: coverage of a known lift, split against paired, and peeking.",
        discussion: """
            In one world (the catalog's seed pinned), paired runs of --truth-scale times the \
            users (in chunks) measure each reported pair's true lift; then --seeds small runs with new \
            users and new draws are run split (at the scenario's users) and paired (at users / \
            arms per copy: the same simulation cost). Prints how often their 95% intervals \
            cover the truth, how wide they are, and how often the fixed-horizon interval and \
            the confidence sequence, read at every tick, ever missed it. Use arms that do not \
            learn from their own traffic (a planted effect: arms[].oracleShare); for an A/A \
            test's false-positive rate under peeking, `run --seeds` on identical arms.
            """)

    @Argument(help: "The scenario file (JSON).")
    var scenario: String

    @Option(help: "Small runs per design.")
    var seeds = 200

    @Option(help: "The truth has this many times the scenario's users per copy (run in paired chunks of 10 times at most).")
    var truthScale = 50

    @Option(help: "Override the scenario's seed (the truth runs at seed - 1, the small runs from seed on).")
    var seed: UInt64?

    @Option(help: "Write calibration.json here.")
    var out: String?

    @Flag(help: "Print no progress.")
    var quiet = false

    func run() throws {
        guard (2...100_000).contains(seeds) else { throw BadInput("--seeds must be between 2 and 100000, got \(seeds)") }
        guard (1...1000).contains(truthScale) else { throw BadInput("--truth-scale must be between 1 and 1000, got \(truthScale)") }
        var s = try loadScenario(scenario)
        if let seed { s.seed = seed }
        let chunks = (truthScale + Calibration.chunkScale - 1) / Calibration.chunkScale
        guard s.seed > UInt64(chunks), s.seed <= UInt64(Int64.max) - UInt64(seeds) else {
            throw BadInput("the seed must be between \(chunks + 1) and \(Int64.max - Int64(seeds)) (the truth runs at the \(chunks) seeds below it, the small runs from it up), got \(s.seed)")
        }
        guard s.arms.count > 1 else { throw BadInput("calibrate compares arms, and \(scenario) has one") }
        if let i = s.arms.firstIndex(where: \.learnsFromOwnTraffic) {
            printError("warning: arms[\(i)] (\(s.arms[i].name)) learns from its own traffic: its lift depends on the chance path of what it learned, which no run's interval counts; coverage will read low")
        }
        let directory = try out.map { path -> String in
            try orBadInput { try ReportFiles.checkWritable(path) }
            return path
        }
        var calibration = Calibration(scenario: s, seeds: seeds, truthScale: truthScale)
        let showProgress = !quiet && isatty(STDERR_FILENO) != 0
        let started = ContinuousClock.now
        try failingAtRuntime {
            try calibration.run { stage, done, total in
                guard showProgress else { return }
                let elapsed = (ContinuousClock.now - started) / .seconds(1)
                FileHandle.standardError.write(Data("\r\(stage) \(done)/\(total)  \(formatETA(elapsed)) so far   ".utf8))
            }
        }
        if showProgress { FileHandle.standardError.write(Data("\n".utf8)) }
        print(calibration.table())
        if let directory {
            let path = (directory as NSString).appendingPathComponent("calibration.json")
            do {
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
                try calibration.json.rendered().write(toFile: path, atomically: true, encoding: .utf8)
            } catch {
                printError("error: cannot write \(path): \(error.localizedDescription)")
                throw Exit.runtimeFailure
            }
            print("Report: \(path)")
        }
    }
}

struct Power: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "How many users (split: in all; paired: per copy) and ticks a lift needs, from a pilot run.",
        discussion: """
            Runs the scenario once as a pilot and, from its lift's standard error on --metric, \
            prints the users that give --power (default 80%) at alpha 0.05 for a lift of --lift \
            percent at the scenario's ticks, and the ticks that do at its users. A paired \
            scenario's figure is per copy and counts the pilot's paired correlation.
            """)

    @Argument(help: "The scenario file (JSON).")
    var scenario: String

    @Option(help: "The per-user metric: viewSeconds, gmv, clicks, impressions, purchases, activeTicks.")
    var metric = "viewSeconds"

    @Option(help: "The relative lift to detect, in percent (e.g. 5 for +5%).")
    var lift: Double

    @Option(help: "The power wanted, in percent.")
    var power = 80.0

    @Option(help: "Which reported pair (index among the scenario's comparisons).")
    var comparison = 0

    @Option(help: "Override the scenario's seed.")
    var seed: UInt64?

    @Flag(help: "Print no progress.")
    var quiet = false

    func run() throws {
        guard let m = PerUserMetric(rawValue: metric) else {
            throw BadInput("--metric must be one of \(PerUserMetric.allCases.map(\.rawValue).joined(separator: ", ")), got '\(metric)'")
        }
        guard lift != 0, lift.isFinite, abs(lift) < 10_000 else { throw BadInput("--lift must be a nonzero percentage below 10000 in size, got \(lift)") }
        guard power > 5, power < 100 else { throw BadInput("--power must be between 5 and 100 (percent), got \(power)") }
        var s = try loadScenario(scenario)
        if let seed {
            guard seed <= UInt64(Int64.max) else { throw BadInput("--seed must be at most \(Int64.max), got \(seed)") }
            s.seed = seed
        }
        s.output.directory = nil
        s.experiment.stopWhen = nil  // the pilot runs every tick it plans
        if quiet { s.output.progress = false }
        guard s.arms.count > 1 else { throw BadInput("power compares arms, and \(scenario) has one") }
        guard (0..<s.comparedPairs.count).contains(comparison) else {
            throw BadInput("--comparison must be below \(s.comparedPairs.count) (the scenario's reported pairs), got \(comparison)")
        }
        try failingAtRuntime {
            let pilot = try LockstepRun(scenario: s).run().results
            do {
                print(try PowerEstimate(pilot: pilot, pair: comparison, metric: m, lift: lift / 100, power: power / 100).summary, terminator: "")
            } catch {
                throw BadInput("\(scenario): \(error)")
            }
        }
    }
}
