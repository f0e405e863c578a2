import ArgumentParser
import Attach
import Experiment
import Foundation
import Kafka
import Metrics
import RecStream
import Report
import Scenario

struct Simulate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the simulated users against servers and trainers running as processes of their own.",
        discussion: """
            Produces each tick's requests, waits for the slates `recstream serve` answers \
            with, produces the users' feedback for `recstream train`, and ends with the \
            results table and report, as `run` does. Free-running: nothing waits for \
            training, so results depend on timing (compare arms within one simulation). \
            SIGINT or SIGTERM: close the tick in progress, report, exit 0.
            """)

    @Argument(help: "The scenario file (JSON).")
    var scenario: String

    @Option(help: "Ticks to simulate (default: the scenario's).")
    var ticks: Int?

    @Option(help: "The least wall time per tick, in seconds (0: the next tick starts once the slates are in).")
    var tickSeconds = 0.0

    @Option(help: "How long a tick waits for its slates, in seconds; requests still unanswered then go unanswered.")
    var answerTimeout = 10.0

    @Option(name: .shortAndLong, help: "Write the report here (default: the scenario's output.directory).")
    var out: String?

    @OptionGroup var role: RoleOptions

    func run() async throws {
        let s = try loadScenario(scenario)
        let properties = try role.properties(s)
        let count = ticks ?? s.ticks
        guard (1...10_000_000).contains(count) else {
            throw BadInput("--ticks must be between 1 and 10000000, got \(count)")
        }
        guard tickSeconds >= 0 && tickSeconds.isFinite, answerTimeout > 0 && answerTimeout.isFinite else {
            throw BadInput("--tick-seconds must be >= 0 and --answer-timeout > 0")
        }
        let directory = try reportDirectory(out, s)
        var options = StreamSimulator.Options(topics: s.kafka.topics, properties: properties, ticks: count)
        options.tickSeconds = tickSeconds
        options.answerTimeoutSeconds = answerTimeout
        options.connectTimeoutSeconds = s.kafka.stallTimeoutSeconds
        let simulator = StreamSimulator(scenario: s, options: options)
        let logger = role.logger("simulate", metadata: ["scenario": "\(s.name)"])
        logger.info("starting", metadata: ["ticks": "\(count)", "kafka": "\(KafkaConfiguration(properties))"])
        // recstream_simulate_{requests,answered,unanswered,feedback}_total and _tick, per tick.
        var factory: (any MetricsFactory)?
        var reported = StreamSimulator.Counters()
        simulator.onTick = { [logger] t, c in
            logger.info("tick", metadata: ["tick": "\(t)", "requests": "\(c.requests)", "answered": "\(c.answered)",
                                           "unanswered": "\(c.unanswered)", "feedback": "\(c.feedback)"])
            guard let factory else { return }
            for (name, now, before) in [("requests", c.requests, reported.requests), ("answered", c.answered, reported.answered),
                                        ("unanswered", c.unanswered, reported.unanswered), ("feedback", c.feedback, reported.feedback)] {
                Counter(label: "recstream_simulate_\(name)_total", factory: factory).increment(by: now - before)
            }
            Gauge(label: "recstream_simulate_tick", factory: factory).record(t)
            reported = c
        }
        // Written by the loop's thread, read once the service group has returned.
        nonisolated(unsafe) var report: RunReport?
        let stopped = try await role.run("simulate", logger: logger, metrics: { factory = $0 }) { shouldStop in
            do {
                report = try simulator.run(shouldStop: shouldStop)
            } catch let error as KafkaError {
                throw AttachError("\(error)")
            }
        }
        guard let report else { throw Exit.runtimeFailure }
        let c = simulator.counters
        print(report.results.table(color: isatty(STDOUT_FILENO) != 0))
        print("""
            \(report.results.scenario.ticks) ticks\(stopped ? " (stopped by signal)" : ""): \(c.requests) requests, \(c.answered) answered in their tick, \
            \(c.unanswered) unanswered; \(c.lateSlates) late, \(c.duplicateSlates) duplicate and \(c.badSlates) bad slates; \(c.feedback) feedback events
            """)
        if let directory {
            do {
                let paths = try report.write(to: directory)
                print("Report: \(paths[0]) (with report.html; `recstream report \(directory)` re-renders it)")
            } catch {
                printError("error: \(error)")
                throw Exit.runtimeFailure
            }
        }
    }
}
