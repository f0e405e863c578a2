import ArgumentParser
import Attach
import Foundation
import Kafka
import RecCore
import Scenario
import Synchronization

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train one arm's model from a Kafka stream of feedback, free-running, with checkpoints.",
        discussion: """
            Consumes the feedback topic (recstream's records, or JSON events through --mapping), \
            applies it a tick at a time (event time: a tick is applied once every partition has \
            moved past it), and checkpoints the model, the counters and the offsets it covers. \
            Restarted with the same checkpoint, it resumes where the checkpoint left off: no \
            event lost, none applied twice, the same model as a run that never stopped. Messages \
            that do not decode go to the dead-letter topic with the reason in a header. SIGINT \
            or SIGTERM: stop, checkpoint, commit, exit 0.
            """)

    @Argument(help: "The scenario file (JSON): the arm's model, and the world its events come from.")
    var scenario: String

    @Option(help: "The arm whose model to train.")
    var arm: String

    @Option(help: "Bootstrap servers (default: the scenario's kafka.brokers).")
    var brokers: String?

    @Option(help: "The topic to consume (default: <topicPrefix>.feedback).")
    var topic: String?

    @Option(help: "wire (recstream's feedback records) or json (JSON events, read through --mapping).")
    var format = "wire"

    @Option(help: "A JSON field mapping for --format json (default: fields user, item, event, timestamp, viewSeconds, amount).")
    var mapping: String?

    @Option(help: "The checkpoint file: resumed from when it exists, rewritten as training goes.")
    var checkpoint: String

    @Option(help: "Seconds between checkpoints.")
    var checkpointEvery = 5.0

    @Option(help: "Exit once the whole stream has been at its end this many seconds (default: run until stopped).")
    var exitWhenIdle: Double?

    @Option(help: "Consumer group for committed offsets (default: recstream-train-<arm>).")
    var group: String?

    @Flag(help: "Print no progress.")
    var quiet = false

    @OptionGroup var kafka: KafkaPropertyOptions

    func run() throws {
        let s: Scenario
        do {
            s = try Scenario.load(path: scenario)
        } catch {
            printError("error: \(error)")
            throw Exit.badInput
        }
        guard let servers = brokers ?? s.kafka.brokers else {
            printError("error: --brokers is required (the scenario's kafka.brokers names none)")
            throw Exit.badInput
        }
        let eventFormat: StreamTrainer.Format
        switch format {
        case "wire":
            guard mapping == nil else {
                printError("error: --mapping applies to --format json")
                throw Exit.badInput
            }
            eventFormat = .wire
        case "json":
            var m = EventMapping()
            if let mapping {
                do {
                    guard let data = FileManager.default.contents(atPath: mapping) else { throw MappingError("no such file") }
                    m = try EventMapping(json: JSONValue.parse(String(decoding: data, as: UTF8.self)))
                } catch {
                    printError("error: \(mapping): \(error)")
                    throw Exit.badInput
                }
            }
            eventFormat = .json(m)
        default:
            printError("error: --format must be wire or json, got '\(format)'")
            throw Exit.badInput
        }
        var properties: [String: String]
        do {
            properties = s.kafka.properties.merging(try kafka.parsed()) { $1 }
        } catch {
            printError("error: \(error)")
            throw Exit.badInput
        }
        properties["bootstrap.servers"] = servers
        var options = StreamTrainer.Options(
            topic: topic ?? s.kafka.topics.feedback, deadLetterTopic: s.kafka.topics.deadLetter, format: eventFormat,
            checkpointPath: checkpoint, groupID: group ?? "recstream-train-\(arm)", properties: properties)
        options.checkpointEverySeconds = checkpointEvery
        options.exitWhenIdleSeconds = exitWhenIdle
        options.connectTimeoutSeconds = s.kafka.stallTimeoutSeconds

        let stop = StopSignal()
        let trainer: StreamTrainer
        do {
            trainer = try StreamTrainer(scenario: s, arm: arm, options: options)
        } catch {
            printError("error: \(error)")
            throw Exit.badInput
        }
        if !quiet {
            trainer.onProgress = { p in
                guard p.checkpointed else { return }
                printError(String(format: "tick %lld: %d events (%.0f/s), %d dead letters, lag %lld; checkpointed",
                                  p.appliedThrough, p.counters.events, p.eventsPerSecond, p.counters.deadLetters, p.lag.reduce(0, +)))
            }
        }
        let started = ContinuousClock.now
        let counters: StreamTrainer.Counters
        do {
            counters = try trainer.run(shouldStop: { stop.received })
        } catch {
            printError("error: \(error)")
            throw Exit.runtimeFailure
        }
        let seconds = Double((ContinuousClock.now - started).components.attoseconds) / 1e18 + Double((ContinuousClock.now - started).components.seconds)
        print("""
            applied through tick \(trainer.appliedThrough): \(counters.events) events (\(counters.impressions) impressions, \
            \(counters.clicks) clicks, \(counters.purchases) purchases) in \(counters.ticks) ticks; \(counters.deadLetters) dead letters \
            (\(counters.unknown) outside the world), \(counters.late) late
            checkpoint: \(checkpoint)\(stop.received ? " (stopped by signal)" : "")
            """)
        if !quiet { printError(String(format: "%.1f s", seconds)) }
    }
}

/// SIGINT and SIGTERM, caught by a thread of their own (the signals are blocked in every
/// other thread), so the training loop can stop at a clean point.
final class StopSignal: Sendable {
    private let flag = Atomic<Bool>(false)

    init() {
        var signals = sigset_t()
        sigemptyset(&signals)
        sigaddset(&signals, SIGINT)
        sigaddset(&signals, SIGTERM)
        pthread_sigmask(SIG_BLOCK, &signals, nil)
        let blocked = signals
        let thread = Thread { [self] in
            var set = blocked
            var received: Int32 = 0
            sigwait(&set, &received)
            printError("stopping (signal \(received)): checkpointing what was applied")
            flag.store(true, ordering: .sequentiallyConsistent)
        }
        thread.start()
    }

    var received: Bool { flag.load(ordering: .sequentiallyConsistent) }
}
