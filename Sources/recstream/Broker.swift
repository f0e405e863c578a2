import ArgumentParser
import Foundation
import Kafka
import Logging
import Scenario
import ServiceLifecycle

struct Broker: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a standalone embedded Kafka broker until SIGINT or SIGTERM.",
        discussion: """
            Prints the bootstrap address on the first line of standard output, so that other \
            processes (recstream, kcat) can use it. It is librdkafka's mock cluster: it keeps \
            only about 5 MiB per partition, so consumers must keep up with producers.
            """)

    @Option(help: "Number of brokers in the cluster.")
    var brokers = 1

    @Option(help: "Create these topics (comma-separated).")
    var topics: String?

    @Option(help: "Create every topic of this prefix (<prefix>.requests, .recommendations, .feedback, .dead-letter, .model): what run, simulate, serve and train use.")
    var prefix: [String] = []

    @Option(help: "Partitions per created topic.")
    var partitions = 4

    func run() async throws {
        guard (1...16).contains(brokers) else {
            throw BadInput("--brokers must be between 1 and 16, got \(brokers)")
        }
        guard (1...1024).contains(partitions) else {
            throw BadInput("--partitions must be between 1 and 1024, got \(partitions)")
        }
        let cluster: EmbeddedBroker
        do {
            cluster = try EmbeddedBroker(brokers: brokers)
            let named = (topics ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            for topic in named + prefix.flatMap({ Topics(prefix: $0).attach }) {
                try cluster.createTopic(topic, partitions: partitions)
            }
        } catch {
            printError("error: \(error)")
            throw Exit.runtimeFailure
        }
        // Written straight to the descriptor, so a reading process sees it at once.
        FileHandle.standardOutput.write(Data((cluster.bootstrapServers + "\n").utf8))
        printError("embedded broker (\(brokers) broker(s)) at \(cluster.bootstrapServers); stop with Ctrl-C")
        // A service that waits for SIGINT or SIGTERM (swift-service-lifecycle), then the
        // broker goes.
        var logger = Logger(label: "recstream.broker")
        logger.logLevel = .warning
        try await ServiceGroup(services: [UntilShutdown()], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger).run()
        printError("stopping")
        withExtendedLifetime(cluster) {}
    }
}

/// Runs until the service group shuts down gracefully.
struct UntilShutdown: Service {
    func run() async throws {
        try? await gracefulShutdown()
    }
}
