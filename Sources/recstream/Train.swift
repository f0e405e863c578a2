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

    @Option(help: "Serve Prometheus metrics at http://HOST:PORT/metrics (0 picks a free port; default: no endpoint).")
    var metricsPort: Int?

    @Option(help: "The address the metrics endpoint listens on (0.0.0.0 for every interface).")
    var metricsHost = "127.0.0.1"

    @Flag(help: "Log warnings only.")
    var quiet = false

    @OptionGroup var kafka: KafkaPropertyOptions

    func run() async throws {
        let s = try loadScenario(scenario)
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
        var properties = s.kafka.properties.merging(try kafka.parsedOrExit()) { $1 }
        properties["bootstrap.servers"] = servers
        var options = StreamTrainer.Options(
            topic: topic ?? s.kafka.topics.feedback, deadLetterTopic: s.kafka.topics.deadLetter, format: eventFormat,
            checkpointPath: checkpoint, groupID: group ?? "recstream-train-\(arm)", properties: properties)
        options.checkpointEverySeconds = checkpointEvery
        options.exitWhenIdleSeconds = exitWhenIdle
        options.connectTimeoutSeconds = s.kafka.stallTimeoutSeconds

        if let metricsPort, !(0...65535).contains(metricsPort) {
            printError("error: --metrics-port must be between 0 and 65535, got \(metricsPort)")
            throw Exit.badInput
        }
        let trainer: StreamTrainer
        do {
            trainer = try StreamTrainer(scenario: s, arm: arm, options: options)
        } catch {
            printError("error: \(error)")
            throw Exit.badInput
        }
        let level: Logger.Level = quiet ? .warning : .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        var logger = Logger(label: "recstream.train")
        logger[metadataKey: "arm"] = "\(arm)"
        logger[metadataKey: "topic"] = "\(options.topic)"
        // Secrets never reach a log: the configuration's description redacts them.
        logger.info("starting", metadata: ["checkpoint": "\(checkpoint)", "kafka": "\(KafkaConfiguration(properties))"])
        trainer.onProgress = { [logger] p in
            guard p.checkpointed else { return }
            logger.info("checkpointed", metadata: [
                "tick": "\(p.appliedThrough)", "events": "\(p.counters.events)", "eventsPerSecond": "\(Int(p.eventsPerSecond))",
                "deadLetters": "\(p.counters.deadLetters)", "lag": "\(p.lag.reduce(0, +))",
            ])
        }

        let service = TrainerService(trainer: trainer, logger: logger)
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = [
            .init(service: service, successTerminationBehavior: .gracefullyShutdownGroup, failureTerminationBehavior: .gracefullyShutdownGroup),
        ]
        if let metricsPort {
            let registry = PrometheusCollectorRegistry()
            trainer.metricsFactory = PrometheusMetricsFactory(registry: registry)
            let endpoint: MetricsEndpoint
            do {
                endpoint = try MetricsEndpoint(registry: registry, host: metricsHost, port: UInt16(metricsPort))
            } catch {
                printError("error: --metrics-host \(metricsHost): \(error)")
                throw Exit.badInput
            }
            // Before the trainer: a group shuts its services down last first, so the
            // trainer stops (and checkpoints) while the endpoint still answers.
            services.insert(.init(service: endpoint), at: 0)
            let host = metricsHost
            Task {
                // Printed whatever the log level: scrapers and scripts need it.
                if let port = try? await endpoint.port() { printError("metrics at http://\(host):\(port)/metrics") }
            }
        }
        var lifecycle = Logger(label: "recstream.lifecycle")
        lifecycle.logLevel = .warning
        let group = ServiceGroup(configuration: .init(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: lifecycle))
        do {
            try await group.run()
        } catch {
            printError("error: \(error)")
            throw Exit.runtimeFailure
        }
        let counters = trainer.counters
        print("""
            applied through tick \(trainer.appliedThrough): \(counters.events) events (\(counters.impressions) impressions, \
            \(counters.clicks) clicks, \(counters.purchases) purchases) in \(counters.ticks) ticks; \(counters.deadLetters) dead letters \
            (\(counters.unknown) outside the world), \(counters.late) late\(counters.otherArms > 0 ? ", \(counters.otherArms) of other arms skipped" : "")
            checkpoint: \(checkpoint)\(service.stopped ? " (stopped by signal)" : "")
            """)
    }
}

