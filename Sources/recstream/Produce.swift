import ArgumentParser
import Foundation
import Kafka
import RecCore

struct Produce: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Send lines from standard input to a topic, one message per line (as kcat -P does).",
        discussion: """
            For feeding JSON events to `recstream train --format json` where kcat is not at hand. \
            With --key, each message's key is that JSON field's value, so one user's events keep \
            to one partition, in order. Creates the topic if it does not exist.
            """)

    @Option(help: "Bootstrap servers.")
    var brokers: String

    @Option(help: "The topic to send to.")
    var topic: String

    @Option(help: "Partitions, if the topic has to be created.")
    var partitions = 4

    @Option(help: "A JSON field (dotted path) whose value keys each message.")
    var key: String?

    @OptionGroup var kafka: KafkaPropertyOptions

    func run() throws {
        var properties = try kafka.parsedOrExit()
        properties["bootstrap.servers"] = brokers
        let config = KafkaConfiguration(properties)
        var sent = 0
        do {
            let admin = try KafkaAdmin(configuration: config)
            if try admin.metadata(timeoutMilliseconds: 10_000).topic(topic) == nil {
                do {
                    try admin.createTopics([NewTopic(topic, partitions: partitions)], ifNotExists: true, timeoutMilliseconds: 5000)
                } catch {
                    // Clusters without CreateTopics (the embedded broker among them) create a
                    // topic on a metadata request, with their own partition count.
                    guard let t = try admin.requestTopic(topic), t.error == nil else { throw error }
                    printError("created \(topic) with the cluster's default of \(t.partitionCount) partitions (it lacks CreateTopics)")
                }
            }
            let producer = try KafkaProducer(configuration: config)
            let handle = try producer.topic(topic)
            while let line = readLine(strippingNewline: true) {
                guard !line.isEmpty else { continue }
                var keyText = ""
                if let key, let field = (try? JSONValue.parse(line))?.value(atPath: key) {
                    keyText = field.rendered(pretty: false)
                }
                try Array(keyText.utf8).withUnsafeBytes { k in
                    try Array(line.utf8).withUnsafeBytes { v in try producer.send(handle, key: k, value: v) }
                }
                sent += 1
                if sent % 1024 == 0 { try producer.poll() }
            }
            try producer.flush(timeoutMilliseconds: 30_000)
        } catch {
            printError("error: \(error) (after \(sent) messages)")
            throw Exit.runtimeFailure
        }
        printError("sent \(sent) messages to \(topic)")
    }
}
