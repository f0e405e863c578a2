import ArgumentParser
import Attach
import Foundation
import Kafka
import Logging
import Metrics
import Prometheus
import RecCore
import Scenario
import ServiceLifecycle

/// What every attach role (train, serve, simulate) takes: where the cluster is, how to
/// reach it, metrics and logging.
struct RoleOptions: ParsableArguments {
    @Option(help: "Bootstrap servers (default: the scenario's kafka.brokers).")
    var brokers: String?

    @Option(help: "Serve Prometheus metrics at http://HOST:PORT/metrics (0 picks a free port; default: no endpoint).")
    var metricsPort: Int?

    @Option(help: "The address the metrics endpoint listens on (0.0.0.0 for every interface).")
    var metricsHost = "127.0.0.1"

    @Flag(help: "Log warnings only.")
    var quiet = false

    @OptionGroup var kafka: KafkaPropertyOptions

    /// The librdkafka properties: the scenario's, then -X, then the bootstrap servers.
    func properties(_ s: Scenario?) throws -> [String: String] {
        guard let servers = brokers ?? s?.kafka.brokers else {
            throw BadInput(s == nil ? "--brokers is required" : "--brokers is required (the scenario's kafka.brokers names none)")
        }
        var properties = try kafka.parsedOrExit(over: s?.kafka.properties ?? [:])
        properties["bootstrap.servers"] = servers
        if let metricsPort, !(0...65535).contains(metricsPort) {
            throw BadInput("--metrics-port must be between 0 and 65535, got \(metricsPort)")
        }
        return properties
    }

    /// Whether an address names this machine only (127.0.0.0/8, ::1, localhost).
    static func isLoopback(_ host: String) -> Bool {
        host == "localhost" || host == "::1" || host == "[::1]" || host.hasPrefix("127.")
    }

    /// Logs to standard error (swift-log), warnings only with --quiet; returns the role's logger.
    func logger(_ role: String, metadata: Logger.Metadata) -> Logger {
        let level: Logger.Level = quiet ? .warning : .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        var logger = Logger(label: "recstream.\(role)")
        for (key, value) in metadata { logger[metadataKey: key] = value }
        return logger
    }

    /// Runs a role's loop as a service, beside the metrics endpoint if asked for, until the
    /// loop ends or SIGINT/SIGTERM stops it (gracefully: the loop finishes its unit of
    /// work, checkpoints and commits). `metrics` receives the factory the role should use.
    /// Returns whether a signal stopped it.
    func run(_ role: String, logger: Logger, metrics: (any MetricsFactory) -> Void,
             _ body: @escaping (_ shouldStop: () -> Bool) throws -> Void) async throws -> Bool {
        let service = LoopService(name: role, logger: logger, body: body)
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = [
            .init(service: service, successTerminationBehavior: .gracefullyShutdownGroup, failureTerminationBehavior: .gracefullyShutdownGroup),
        ]
        if let metricsPort {
            if !Self.isLoopback(metricsHost) {
                logger.warning("the metrics endpoint listens on \(metricsHost), beyond this machine, and is unauthenticated: anyone who reaches it reads the role's metrics (bind it to 127.0.0.1 behind a proxy that authenticates, or firewall the port)")
            }
            let registry = PrometheusCollectorRegistry()
            metrics(PrometheusMetricsFactory(registry: registry))
            let endpoint: MetricsEndpoint
            do {
                endpoint = try MetricsEndpoint(registry: registry, host: metricsHost, port: UInt16(metricsPort))
            } catch {
                throw BadInput("--metrics-host \(metricsHost): \(error)")
            }
            // Before the loop: a group shuts its services down last first, so the loop
            // stops (and checkpoints) while the endpoint still answers.
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
        return service.stopped
    }
}

/// What train and serve run: an arm of a scenario (its world names users and items by
/// row), or a model without a world (`--model`: the stream's own ids).
struct SourceOptions: ParsableArguments {
    @Argument(help: "The scenario file (JSON): the arm's model, and the world its events come from. Not with --model.")
    var scenario: String?

    @Option(help: "The scenario's arm.")
    var arm: String?

    @Option(help: "A model without a world (JSON: a name, one arm's ranking, retrieval and policy, and its id tables), instead of a scenario and --arm: users, items and categories are the stream's own ids (see docs/real-streams.md). Topics default to <name>.feedback, <name>.model, ...")
    var model: String?

    enum Source {
        case scenario(Scenario, arm: String)
        case model(ModelSpec)

        /// The arm's (or model's) name.
        var name: String {
            switch self {
            case .scenario(_, let arm): arm
            case .model(let m): m.name
            }
        }
        var topics: Topics {
            switch self {
            case .scenario(let s, _): s.kafka.topics
            case .model(let m): Topics(prefix: m.name)
            }
        }
        var scenario: Scenario? {
            if case .scenario(let s, _) = self { return s }
            return nil
        }
        var stallTimeoutSeconds: Double { scenario?.kafka.stallTimeoutSeconds ?? 30 }
    }

    func resolve() throws -> Source {
        switch (scenario, model) {
        case (let path?, nil):
            guard let arm else { throw BadInput("--arm is required with a scenario: the arm whose model to run") }
            let s = try loadScenario(path)
            if let i = s.arms.firstIndex(where: { $0.name == arm }), let issue = s.arms[i].attachIssue(at: i) {
                throw BadInput("\(path): \(issue)")
            }
            return .scenario(s, arm: arm)
        case (nil, let path?):
            guard arm == nil else { throw BadInput("--arm names an arm of a scenario; a --model is one arm already") }
            return .model(try ModelSpec.load(path: path))
        case (nil, nil): throw BadInput("give a scenario file and --arm, or --model FILE")
        case (_?, _?): throw BadInput("a scenario and --model: give one (--model runs without a scenario's world)")
        }
    }
}

/// `--format wire|json` with `--mapping FILE` (json only), or why not as bad input.
func parseFormat(_ format: String, mapping: String?) throws -> StreamTrainer.Format {
    switch format {
    case "wire":
        guard mapping == nil else {
            throw BadInput("--mapping applies to --format json")
        }
        return .wire
    case "json":
        var m = EventMapping()
        if let mapping {
            do {
                guard let data = FileManager.default.contents(atPath: mapping) else { throw MappingError("no such file") }
                m = try EventMapping(json: JSONValue.parse(utf8: [UInt8](data)))
            } catch {
                throw BadInput("\(mapping): \(error)")
            }
        }
        return .json(m)
    default:
        throw BadInput("--format must be wire or json, got '\(format)'")
    }
}
