import ArgumentParser
import Allocator
import Experiment
import Foundation
import Kafka
import RecStream
import Report
import Scenario
import Studies

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run an A/B scenario in lockstep over Kafka and print the results.",
        discussion: """
            Starts an embedded Kafka broker (librdkafka's mock cluster) unless the scenario or \
            --brokers names a cluster, creates the run's topics, and runs the loop: users ask \
            for slates, each arm serves its users, users respond, each arm learns from its \
            feedback. The same scenario and seed give the same results whatever --partitions is.
            """)

    @Argument(help: "The scenario file (JSON).")
    var scenario: String

    @Option(help: "Override the scenario's seed.")
    var seed: UInt64?

    @Option(help: "Run this many seeds (from the scenario's seed, or --seed) and report how often each lift is significant: an A/A test's false-positive rate, or an A/B's power.")
    var seeds: Int?

    @Option(help: "Override the partitions per topic.")
    var partitions: Int?

    @Option(help: "Bootstrap servers of a Kafka cluster to use instead of the embedded broker.")
    var brokers: String?

    @Option(help: "Write report.json, report.html and per-tick CSVs here (overrides output.directory).")
    var out: String?

    @Flag(help: "Write the latent state (items; every user's interests each tick) as truth.jsonl in the output directory.")
    var exportTruth = false

    @Option(help: "Threads to step the population on (default: all cores). Results do not depend on it.")
    var threads: Int?

    @Flag(help: "Print the allocator's allocated and resident bytes (jemalloc), and the embedding tables on huge-page mappings, at the end.")
    var stats = false

    @Flag(help: "Print no progress.")
    var quiet = false

    @OptionGroup var kafka: KafkaPropertyOptions

    @OptionGroup var memory: MemoryLimitOptions

    func run() throws {
        var options = RunOptions()
        options.seed = seed
        options.brokers = brokers
        if quiet { options.progress = false }
        options.properties = try kafka.parsedOrExit()
        if let partitions, !(1...1024).contains(partitions) {
            throw BadInput("--partitions must be between 1 and 1024, got \(partitions)")
        }
        options.partitions = partitions
        if let threads, !(1...256).contains(threads) {
            throw BadInput("--threads must be between 1 and 256, got \(threads)")
        }
        options.threads = threads
        if let seed, seed > UInt64(Int64.max) {
            throw BadInput("--seed must be at most \(Int64.max), got \(seed)")
        }

        let s = options.applied(to: try loadScenario(scenario))
        if let refusal = MemoryLimitOptions.refusal(s, source: scenario, limit: try memory.limit()) { throw BadInput(refusal) }
        let directory = try reportDirectory(out, s)
        if exportTruth {
            guard let directory else {
                throw BadInput("--export-truth needs an output directory (--out, or output.directory in the scenario)")
            }
            do {
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            } catch {
                printError("error: cannot create \(directory): \(error.localizedDescription)")
                throw Exit.runtimeFailure
            }
            options.truthPath = (directory as NSString).appendingPathComponent("truth.jsonl")
        }
        let showProgress = s.output.progress && isatty(STDERR_FILENO) != 0
        if let seeds {
            try sweep(s, seeds: seeds, directory: directory, showProgress: showProgress)
            return
        }

        try failingAtRuntime {
            let run = try LockstepRun(scenario: s)
            run.options = options
            if showProgress {
                printError("\(s.name): \(s.arms.count) arms, \(s.population.users) users, \(s.ticks) ticks on \(s.kafka.brokers ?? "the embedded broker (\(run.bootstrapServers))")")
                let started = ContinuousClock.now
                run.onProgress = { progress in
                    let width = 30, ticks = progress.ticks, done = progress.tick + 1
                    let bar = String(repeating: "#", count: done * width / ticks) + String(repeating: ".", count: width - done * width / ticks)
                    let elapsed = (ContinuousClock.now - started) / .seconds(1)
                    let rate = Double(progress.messages) / max(elapsed, 1e-9)
                    let eta = elapsed / Double(done) * Double(ticks - done)
                    let line = String(format: "\r[%@] tick %d/%d  %.0f events/s  ETA %@   ", bar, done, ticks, rate, done == ticks ? "0s" : formatETA(eta))
                    FileHandle.standardError.write(Data(line.utf8))
                    if done == ticks { FileHandle.standardError.write(Data("\n".utf8)) }
                }
            }
            let report = try run.run()
            print(report.results.table(color: isatty(STDOUT_FILENO) != 0))
            print(String(format: "%d messages in %.2f s (%.0f messages/s; world built in %.2f s, Kafka set up in %.2f s) over %d partition(s).",
                         (report.results.messages["requests"] ?? 0) + (report.results.messages["recommendations"] ?? 0) + (report.results.messages["feedback"] ?? 0),
                         report.run.runSeconds, report.run.messagesPerSecond, report.run.populationSeconds, report.run.setupSeconds,
                         report.run.partitions))
            print("Serving latency per request, p50 / p99 / p99.9 (HDR histograms): "
                  + report.run.serveLatency.map { "\($0.arm) \($0.summary)" }.joined(separator: "; ") + ".")
            if let directory {
                let paths = try report.write(to: directory)
                print("Report: \(paths[0]) (with report.html and \(paths.count - 2) per-tick CSV\(paths.count == 3 ? "" : "s"); `recstream report \(directory)` re-renders them)")
            }
            if let truth = options.truthPath { print("Truth: \(truth)") }
            if stats { print(AllocatorStats.current().description) }
        }
    }
}

/// Runs `body`; a broker that goes away or a run that fails is an error message and
/// exit 1 (anything else propagates as it is).
func failingAtRuntime(_ body: () throws -> Void) throws {
    do {
        try body()
    } catch let error as KafkaError {
        printError("error: \(error)")
        throw Exit.runtimeFailure
    } catch let error as RunError {
        printError("error: \(error)")
        throw Exit.runtimeFailure
    }
}

extension Run {
    /// `--seeds N`: the scenario over N seeds, and how often each comparison came out
    /// significant.
    func sweep(_ s: Scenario, seeds: Int, directory: String?, showProgress: Bool) throws {
        guard (2...100_000).contains(seeds) else {
            throw BadInput("--seeds must be between 2 and 100000, got \(seeds)")
        }
        guard s.arms.count > 1 else {
            throw BadInput("--seeds compares arms, and \(scenario) has one")
        }
        var sweep = SeedSweep(scenario: s, seeds: seeds)
        let started = ContinuousClock.now
        try failingAtRuntime {
            try sweep.run { done in
                guard showProgress else { return }
                let elapsed = (ContinuousClock.now - started) / .seconds(1)
                let eta = elapsed / Double(done) * Double(seeds - done)
                FileHandle.standardError.write(Data("\rseed \(done)/\(seeds)  ETA \(done == seeds ? "0s" : formatETA(eta))   \(done == seeds ? "\n" : "")".utf8))
            }
        }
        print(sweep.table())
        if let directory {
            let path = (directory as NSString).appendingPathComponent("seeds.json")
            do {
                try sweep.json.rendered().write(toFile: path, atomically: true, encoding: .utf8)
            } catch {
                printError("error: cannot write \(path): \(error.localizedDescription)")
                throw Exit.runtimeFailure
            }
            print("Report: \(path)")
        }
    }
}

/// "42s", "3m05s", "1h02m".
func formatETA(_ seconds: Double) -> String {
    let s = Int(seconds.rounded())
    if s < 60 { return "\(s)s" }
    if s < 3600 { return String(format: "%dm%02ds", s / 60, s % 60) }
    return String(format: "%dh%02dm", s / 3600, (s % 3600) / 60)
}
