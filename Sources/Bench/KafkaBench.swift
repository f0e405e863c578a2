import CKafkaBaseline
import Foundation
import Kafka

/// `recstream bench kafka`: produce and pipelined produce+consume throughput of 100-byte
/// records through the Kafka target, against the plain C loop of `CKafkaBaseline` doing
/// the same work with the same properties on the same embedded broker, in the same run.
///
/// Pipelined, because the embedded broker keeps only ~5 MiB per partition: the consumer
/// reads as the producer writes, never more than `maxLagPerPartition` behind.
public struct KafkaBench: Sendable {
    public var messages = 1_000_000
    public var repeats = 5
    public var valueSize = 100
    public var partitionCounts = [1, 8]
    public var maxLagPerPartition = 20_000
    public var batchSize = 4096
    public init() {}

    func producerProperties(_ bootstrap: String) -> [(String, String)] {
        [("bootstrap.servers", bootstrap), ("linger.ms", "5"), ("batch.num.messages", "10000"),
         ("queue.buffering.max.messages", "1000000"), ("queue.buffering.max.kbytes", "1048576"),
         ("acks", "all"), ("enable.idempotence", "true"), ("compression.codec", "none")]
    }

    func consumerProperties(_ bootstrap: String) -> [(String, String)] {
        [("bootstrap.servers", bootstrap), ("group.id", "recstream-bench"), ("fetch.wait.max.ms", "1"),
         ("queued.min.messages", "200000"), ("enable.auto.commit", "false"), ("enable.partition.eof", "false"),
         ("auto.offset.reset", "error")]
    }

    public func run(progress: (String) -> Void = { _ in }) throws -> BenchReport {
        let broker = try EmbeddedBroker()
        var results: [BenchResult] = []
        var topicNumber = 0
        func freshTopic(_ partitions: Int) throws -> String {
            topicNumber += 1
            let name = "bench-\(topicNumber)"
            try broker.createTopic(name, partitions: partitions)
            return name
        }
        for partitions in partitionCounts {
            var swiftProduce: [Double] = [], cProduce: [Double] = []
            var swiftPipe: [Double] = [], cPipe: [Double] = []
            for rep in 0..<repeats {
                progress("kafka: \(partitions) partition(s), repeat \(rep + 1)/\(repeats)")
                // Alternate which side goes first, so warm-up and drift fall on both.
                let order = rep % 2 == 0 ? [false, true] : [true, false]
                for baselineFirst in order {
                    if baselineFirst {
                        cProduce.append(Double(messages) / (try cProduceRun(broker, try freshTopic(partitions))))
                        cPipe.append(Double(messages) / (try cPipelinedRun(broker, try freshTopic(partitions), partitions)))
                    } else {
                        swiftProduce.append(Double(messages) / (try swiftProduceRun(broker, try freshTopic(partitions))))
                        swiftPipe.append(Double(messages) / (try swiftPipelinedRun(broker, try freshTopic(partitions), partitions)))
                    }
                }
            }
            results.append(BenchResult(name: "produce, \(partitions) partition(s)", unit: "msgs/s", samples: swiftProduce, baselineSamples: cProduce))
            results.append(BenchResult(name: "produce+consume pipelined, \(partitions) partition(s)", unit: "msgs/s", samples: swiftPipe, baselineSamples: cPipe))
        }
        return BenchReport(bench: "kafka", results: results, notes: [
            "\(messages) records of \(valueSize) bytes with 8-byte keys per run, median of \(repeats); embedded broker (librdkafka mock cluster);",
            "baseline: the same loop in plain C over librdkafka (Sources/CKafkaBaseline), same process, same properties; ratio = Swift / C.",
        ])
    }

    // MARK: Swift side

    func swiftProduceRun(_ broker: EmbeddedBroker, _ topicName: String) throws -> Double {
        let sender = try RecordSender(producerProperties(broker.bootstrapServers), topic: topicName, valueSize: valueSize)
        let start = ContinuousClock.now
        for i in 0..<messages {
            try sender.send(i)
            if i & 1023 == 0 { try sender.producer.poll() }
        }
        try sender.producer.flush(timeoutMilliseconds: 60_000)
        let seconds = (ContinuousClock.now - start).seconds
        guard sender.producer.deliveredCount == messages else {
            throw BenchError("Swift produce delivered \(sender.producer.deliveredCount) of \(messages)")
        }
        return seconds
    }

    func swiftPipelinedRun(_ broker: EmbeddedBroker, _ topicName: String, _ partitions: Int) throws -> Double {
        let sender = try RecordSender(producerProperties(broker.bootstrapServers), topic: topicName, valueSize: valueSize)
        let producer = sender.producer
        let consumer = try KafkaConsumer(configuration: KafkaConfiguration(Dictionary(uniqueKeysWithValues: consumerProperties(broker.bootstrapServers))),
                                         batchCapacity: batchSize)
        try consumer.assign((0..<Int32(partitions)).map { (TopicPartition(topicName, $0), offset: 0) })
        let maxLag = maxLagPerPartition * partitions
        var consumed = 0
        var checksum: UInt64 = 0
        func drain(_ timeout: Int32) throws {
            consumed += try consumer.consumeBatch(timeoutMilliseconds: timeout) { batch in
                for m in batch { checksum &+= UInt64(m.value[0]) }
                return batch.count
            }
        }
        let start = ContinuousClock.now
        for i in 0..<messages {
            try sender.send(i)
            if i & 1023 == 1023 {
                try producer.poll()
                try drain(0)
                while i + 1 - consumed > maxLag {
                    try producer.poll()
                    try drain(1)
                }
            }
        }
        let deadline = ContinuousClock.now + .seconds(60)
        while consumed < messages && ContinuousClock.now < deadline {
            try producer.poll()
            try drain(1)
        }
        try producer.flush(timeoutMilliseconds: 10_000)
        let seconds = (ContinuousClock.now - start).seconds
        guard consumed == messages else { throw BenchError("Swift pipelined consumed \(consumed) of \(messages)") }
        _ = checksum
        return seconds
    }

    // MARK: C side

    func withCProperties<R>(_ props: [(String, String)], _ body: (UnsafePointer<UnsafePointer<CChar>?>, UnsafePointer<UnsafePointer<CChar>?>, Int32) throws -> R) rethrows -> R {
        let keys = props.map { strdup($0.0) }, values = props.map { strdup($0.1) }
        defer { keys.forEach { free($0) }; values.forEach { free($0) } }
        let k = keys.map { UnsafePointer($0) }, v = values.map { UnsafePointer($0) }
        return try k.withUnsafeBufferPointer { kp in
            try v.withUnsafeBufferPointer { vp in try body(kp.baseAddress!, vp.baseAddress!, Int32(props.count)) }
        }
    }

    func cProduceRun(_ broker: EmbeddedBroker, _ topic: String) throws -> Double {
        var result = recstream_baseline_result()
        var err = [CChar](repeating: 0, count: 512)
        let rc = withCProperties(producerProperties(broker.bootstrapServers)) { k, v, n in
            recstream_baseline_produce(k, v, n, topic, Int64(messages), Int32(valueSize), &result, &err, err.count)
        }
        guard rc == 0, result.produced == messages else {
            throw BenchError("C produce: \(String(cString: err)) (delivered \(result.produced) of \(messages))")
        }
        return result.seconds
    }

    func cPipelinedRun(_ broker: EmbeddedBroker, _ topic: String, _ partitions: Int) throws -> Double {
        var result = recstream_baseline_result()
        var err = [CChar](repeating: 0, count: 512)
        let rc = withCProperties(producerProperties(broker.bootstrapServers)) { pk, pv, pn in
            withCProperties(consumerProperties(broker.bootstrapServers)) { ck, cv, cn in
                recstream_baseline_pipelined(pk, pv, pn, ck, cv, cn, topic, Int32(partitions), Int64(messages), Int32(valueSize),
                                             Int64(maxLagPerPartition * partitions), Int32(batchSize), &result, &err, err.count)
            }
        }
        guard rc == 0, result.consumed == messages else {
            throw BenchError("C pipelined: \(String(cString: err)) (consumed \(result.consumed) of \(messages))")
        }
        return result.seconds
    }
}

/// The producer and the record the Swift loops send: an 8-byte key (the index) and a
/// value whose first byte varies, exactly as the C loop builds them.
final class RecordSender {
    let producer: KafkaProducer
    let topic: KafkaTopic
    let value: UnsafeMutableRawBufferPointer

    init(_ properties: [(String, String)], topic name: String, valueSize: Int) throws {
        producer = try KafkaProducer(configuration: KafkaConfiguration(Dictionary(uniqueKeysWithValues: properties)))
        topic = try producer.topic(name)
        value = .allocate(byteCount: valueSize, alignment: 8)
        value.initializeMemory(as: UInt8.self, repeating: 0)
    }

    deinit { value.deallocate() }

    @inline(__always)
    func send(_ i: Int) throws {
        var key = UInt64(i)
        value[0] = UInt8(i & 0x7f)
        try withUnsafeBytes(of: &key) { k in try producer.send(topic, key: k, value: UnsafeRawBufferPointer(value)) }
    }
}

public struct BenchError: Error, CustomStringConvertible, Sendable {
    public var description: String
    init(_ description: String) { self.description = description }
}

