import ArgumentParser
import Attach
import Foundation
import Kafka
import Logging
import Prometheus
import RecCore
import Scenario
import ServiceLifecycle

struct Train: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train one arm's model from a Kafka stream of feedback, free-running, with checkpoints.",
        discussion: """
            Consumes the feedback topic (recstream's records, or JSON events through --mapping), \
            applies it a tick at a time (event time: a tick is applied once every partition has \
            moved past it), and checkpoints the model, the counters and the offsets it covers. \
            Restarted with the same checkpoint, it resumes where the checkpoint left off: no \
            event lost, none applied twice, the same model as a run that never stopped. Messages \
            that do not decode go to the dead-letter topic with the reason in a header. SIGINT \
            or SIGTERM: stop, checkpoint, commit, exit 0. With --metrics-port, serves Prometheus \
            metrics at /metrics. Logs go to standard error (swift-log).
            """)

    @OptionGroup var source: SourceOptions

    @Option(help: "The topic to consume (default: <topicPrefix>.feedback).")
    var topic: String?

    @Option(help: "Where events that cannot be applied go (default: <topicPrefix>.dead-letter).")
    var deadLetterTopic: String?

    @Option(help: "wire (recstream's feedback records) or json (JSON events, read through --mapping; the default, and the only format, with --model).")
    var format: String?

    @Option(help: "A JSON field mapping for --format json (default: fields user, item, event, timestamp, viewSeconds, amount).")
    var mapping: String?

    @Option(help: "A topic of item records (with --model): JSON objects naming an item and its category (read through the mapping's itemRecords, or its item, category and timestamp fields); an item's latest record wins, and an empty record keyed by an item id deletes its record.")
    var itemsTopic: String?

    @Option(help: "The checkpoint file: resumed from when it exists, rewritten as training goes.")
    var checkpoint: String

    @Option(help: "Seconds between checkpoints.")
    var checkpointEvery = 5.0

    @Option(help: "Exit once the whole stream has been at its end this many seconds, counted once it has a message (default: run until stopped).")
    var exitWhenIdle: Double?

    @Option(help: "Consumer group for committed offsets (default: recstream-train-<arm or model name>).")
    var group: String?

    @Option(help: "Where to publish model updates for servers (default: <topicPrefix>.model).")
    var modelTopic: String?

    @Flag(help: "Publish no model updates (no server follows this trainer).")
    var noPublish = false

    @Option(help: "Seconds between model updates.")
    var publishEvery = 1.0

    @Option(help: "When offsets the trainer needs are gone from the broker (retention, a truncated topic): fail (stop, naming them) or skip (go on from the partition's first offset, counting the skipped ones).")
    var onGap = "fail"

    @Flag(help: "With no checkpoint, start from the topic's beginning even though the consumer group has committed offsets (refused without it: the checkpoint may be lost).")
    var fresh = false

    @Option(help: "Ticks an event may be ahead of the trainer's event time (the last applied tick) before it is dead-lettered (default: one day of ticks for JSON, 10000 for recstream's records).")
    var maxEventLead: Int64?

    @Option(help: "Sign each model update with the key in this file (HMAC-SHA256, at least 32 bytes), for servers started with the same --model-key-file.")
    var modelKeyFile: String?

    @OptionGroup var role: RoleOptions

    func run() async throws {
        let source = try source.resolve()
        let arm = source.name
        let properties = try role.properties(source.scenario)
        let eventFormat = try parseFormat(format ?? (source.scenario == nil ? "json" : "wire"), mapping: mapping)
        guard publishEvery > 0 && publishEvery.isFinite else {
            throw BadInput("--publish-every must be a positive number of seconds, got \(publishEvery)")
        }
        guard let gapPolicy = StreamTrainer.GapPolicy(rawValue: onGap) else {
            throw BadInput("--on-gap must be fail or skip, got '\(onGap)'")
        }
        if let maxEventLead, maxEventLead < 1 {
            throw BadInput("--max-event-lead must be at least 1 tick, got \(maxEventLead)")
        }
        var options = StreamTrainer.Options(
            topic: topic ?? source.topics.feedback, deadLetterTopic: deadLetterTopic ?? source.topics.deadLetter, format: eventFormat,
            checkpointPath: checkpoint, groupID: group ?? "recstream-train-\(arm)", properties: properties)
        options.checkpointEverySeconds = checkpointEvery
        options.exitWhenIdleSeconds = exitWhenIdle
        options.connectTimeoutSeconds = source.stallTimeoutSeconds
        options.modelTopic = noPublish ? nil : modelTopic ?? source.topics.model
        options.publishEverySeconds = publishEvery
        options.onGap = gapPolicy
        options.fresh = fresh
        options.maxEventLead = maxEventLead
        options.itemsTopic = itemsTopic
        options.modelSigner = try modelKeyFile.map { path in try orBadInput { try ModelSigner(keyFile: path) } }
        let trainer = try orBadInput {
            switch source {
            case .scenario(let s, let arm): try StreamTrainer(scenario: s, arm: arm, options: options)
            case .model(let m): try StreamTrainer(model: m, options: options)
            }
        }
        let logger = role.logger("train", metadata: ["arm": "\(arm)", "topic": "\(options.topic)"])
        // Secrets never reach a log: the configuration's description redacts them.
        logger.info("starting", metadata: ["checkpoint": "\(checkpoint)", "kafka": "\(KafkaConfiguration(properties))"])
        trainer.onWarning = { [logger] message in logger.warning("\(message)") }
        trainer.onProgress = { [logger] p in
            guard p.checkpointed else { return }
            logger.info("checkpointed", metadata: [
                "tick": "\(p.appliedThrough)", "events": "\(p.counters.events)", "eventsPerSecond": "\(Int(p.eventsPerSecond))",
                "deadLetters": "\(p.counters.deadLetters)", "lag": "\(p.lag.reduce(0, +))",
            ])
        }

        let stopped = try await role.run("train", logger: logger, metrics: { trainer.metricsFactory = $0 }) { shouldStop in
            _ = try trainer.run(shouldStop: shouldStop)
        }
        let counters = trainer.counters
        print("""
            applied through tick \(trainer.appliedThrough): \(counters.events) events (\(counters.impressions) impressions, \
            \(counters.clicks) clicks, \(counters.purchases) purchases) in \(counters.ticks) ticks; \(counters.deadLetters) dead letters \
            (\(counters.unknown) outside the world), \(counters.late) late\(counters.skipped > 0 ? ", \(counters.skipped) offsets skipped (gone from the broker)" : "")\(counters.otherArms > 0 ? ", \(counters.otherArms) of other arms skipped" : "")
            \(trainer.open.map { "ids: " + $0.summary + "\n" } ?? "")checkpoint: \(checkpoint)\(stopped ? " (stopped by signal)" : "")\
            \(options.modelTopic.map { "; \(trainer.updatesPublished) model updates on \($0)" } ?? "")
            """)
    }
}

