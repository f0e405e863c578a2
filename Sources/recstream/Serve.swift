import ArgumentParser
import Attach
import Foundation
import Kafka
import Scenario

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve one arm's recommendations from a Kafka stream of requests, following its trainer's model.",
        discussion: """
            Consumes the requests topic (start several with --instance and --instances to \
            split its partitions), answers each request of the arm with a slate on the recommendations \
            topic, and applies the model updates its trainer (`recstream train`) publishes, \
            whole and in order, so serving follows training without restarts. Offsets are \
            committed after the slates are delivered. SIGINT or SIGTERM: finish, commit, exit 0.
            """)

    @OptionGroup var source: SourceOptions

    @Option(help: "wire (recstream's request and slate records, as simulate speaks) or json (JSON requests through --mapping, answered with JSON slates; the default, and the only format, with --model).")
    var format: String?

    @Option(help: "The requests topic (default: <topicPrefix>.requests).")
    var requestsTopic: String?

    @Option(help: "Where slates go (default: <topicPrefix>.recommendations).")
    var recommendationsTopic: String?

    @Option(help: "Where requests that cannot be served go (default: <topicPrefix>.dead-letter).")
    var deadLetterTopic: String?

    @Option(help: "A JSON field mapping for --format json: the user, timestamp and request fields (default: user, timestamp).")
    var mapping: String?

    @Option(help: "Consumer group for committed offsets (default: recstream-serve-<arm>).")
    var group: String?

    @Option(help: "This server's number among --instances (from 0): it serves the request partitions p with p mod instances = instance.")
    var instance = 0

    @Option(help: "How many servers of this arm split the requests.")
    var instances = 1

    @Option(help: "The model topic to follow (default: <topicPrefix>.model).")
    var modelTopic: String?

    @Flag(help: "Follow no trainer: serve the initial model.")
    var noFollow = false

    @Option(help: "Exit once no request has come for this many seconds (default: run until stopped).")
    var exitWhenIdle: Double?

    @Option(help: "Ticks a request (or a model update) may take the catalog past the server's tick, its model's or the scenario's last, before it is dead-lettered (refused).")
    var maxEventLead: Int64 = StreamTrainer.defaultEventLead(.wire)

    @Option(help: "Serve only model updates signed with the key in this file (HMAC-SHA256; the trainer takes the same file); unsigned or badly signed ones are dropped and counted.")
    var modelKeyFile: String?

    @OptionGroup var role: RoleOptions

    func run() async throws {
        let source = try source.resolve()
        let arm = source.name
        let properties = try role.properties(source.scenario)
        let topics = source.topics
        let requestFormat = try parseFormat(format ?? (source.scenario == nil ? "json" : "wire"), mapping: mapping)
        guard instances >= 1, (0..<instances).contains(instance) else {
            throw BadInput("--instance must be between 0 and --instances - 1 (\(instances - 1)), got \(instance)")
        }
        var options = StreamServer.Options(
            requestsTopic: requestsTopic ?? topics.requests, recommendationsTopic: recommendationsTopic ?? topics.recommendations,
            deadLetterTopic: deadLetterTopic ?? topics.deadLetter,
            modelTopic: noFollow ? nil : modelTopic ?? topics.model, groupID: group ?? "recstream-serve-\(arm)", properties: properties)
        options.exitWhenIdleSeconds = exitWhenIdle
        guard maxEventLead >= 1 else { throw BadInput("--max-event-lead must be at least 1 tick, got \(maxEventLead)") }
        options.maxEventLead = maxEventLead
        options.modelSigner = try modelKeyFile.map { path in try orBadInput { try ModelSigner(keyFile: path) } }
        options.format = requestFormat
        options.instance = instance
        options.instances = instances
        options.connectTimeoutSeconds = source.stallTimeoutSeconds
        let server = try orBadInput {
            switch source {
            case .scenario(let s, let arm): try StreamServer(scenario: s, arm: arm, options: options)
            case .model(let m): try StreamServer(model: m, options: options)
            }
        }
        let logger = role.logger("serve", metadata: ["arm": "\(arm)", "topic": "\(options.requestsTopic)"])
        logger.info("starting", metadata: ["group": "\(options.groupID)", "kafka": "\(KafkaConfiguration(properties))"])
        server.onWarning = { [logger] message in logger.warning("\(message)") }
        var reported = StreamServer.Counters()
        server.onProgress = { [logger] c in
            if c.updateErrors > reported.updateErrors, let error = server.lastUpdateError {
                logger.error("a model update did not apply; serving on with the model as it was", metadata: ["error": "\(error)"])
            }
            if c.updatesUnauthenticated > reported.updatesUnauthenticated, let error = server.lastUpdateError {
                logger.error("a model update message is not authentic and was dropped; serving on with the model as it was", metadata: ["error": "\(error)"])
            }
            if c.updateGaps > reported.updateGaps {
                logger.warning("model updates are missing (gone from the topic before this server read them): the model may differ from the trainer's until it restarts")
            }
            if c.served != reported.served || c.updatesApplied != reported.updatesApplied {
                logger.info("serving", metadata: ["served": "\(c.served)", "modelTick": "\(server.modelThrough)", "updates": "\(c.updatesApplied)"])
            }
            reported = c
        }
        let stopped = try await role.run("serve", logger: logger, metrics: { server.metricsFactory = $0 }) { shouldStop in
            do {
                _ = try server.run(shouldStop: shouldStop)
            } catch let error as KafkaError {
                throw AttachError("\(error)")
            }
        }
        let c = server.counters
        let latency = server.latency
        print("""
            served \(c.served) requests (\(c.otherArms) of other arms skipped, \(c.deadLetters) dead letters); \
            model through tick \(server.modelThrough) after \(c.updatesApplied) updates \
            (\(c.updatesSkipped) repeats skipped, \(c.updateErrors) errors, \(c.updateGaps) gaps, \(c.partsAbandoned) parts abandoned\
            \(options.modelSigner == nil ? "" : ", \(c.updatesUnauthenticated) unauthenticated dropped"))\(stopped ? " (stopped by signal)" : "")
            latency p50 / p99 / p99.9: \(micros(latency.valueAtPercentile(50))) / \(micros(latency.valueAtPercentile(99))) / \(micros(latency.valueAtPercentile(99.9))) µs
            """)
    }
}

func micros(_ ns: UInt64) -> String {
    let u = Double(ns) / 1000
    return u >= 100 ? String(format: "%.0f", u) : String(format: "%.1f", u)
}
