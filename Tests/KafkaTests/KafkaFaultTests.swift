import Foundation
import Testing
@testable import Kafka

/// Produces `count` messages keyed by `i % keys` with value `i` (8 bytes each).
func produce(_ producer: KafkaProducer, _ topic: KafkaTopic, _ range: Range<Int>, keys: Int = 16) throws {
    for i in range {
        var key = UInt32(i % keys)
        var value = UInt64(i)
        try withUnsafeBytes(of: &key) { k in
            try withUnsafeBytes(of: &value) { v in try producer.send(topic, key: k, value: v) }
        }
    }
}

/// Consumes from the start of every partition until `count` messages arrived (or 30 s passed)
/// and returns the values in arrival order, checking offsets have no gaps.
func consumeAll(_ broker: EmbeddedBroker, _ topic: String, partitions: Int32, count: Int) throws -> [UInt64] {
    let consumer = try KafkaConsumer(configuration: broker.clientConfiguration.merging(
        ["group.id": "test", "fetch.wait.max.ms": "1", "auto.offset.reset": "error"]))
    try consumer.assign((0..<partitions).map { (TopicPartition(topic, $0), offset: 0) })
    var tracker = OffsetTracker(topic: topic, start: Dictionary(uniqueKeysWithValues: (0..<partitions).map { ($0, Int64(0)) }))
    var values: [UInt64] = []
    let deadline = Date().addingTimeInterval(30)
    while values.count < count && Date() < deadline {
        try consumer.consumeBatch(timeoutMilliseconds: 50) { batch in
            for m in batch {
                try tracker.record(partition: m.partition, offset: m.offset)
                values.append(m.value.loadUnaligned(as: UInt64.self))
            }
        }
    }
    return values
}

@Suite("Kafka faults on the embedded broker", .serialized)
struct KafkaFaultTests {
    @Test("a broker that goes down and comes back loses and duplicates nothing")
    func brokerDownAndUp() throws {
        let broker = try EmbeddedBroker()
        try broker.createTopic("t", partitions: 4)
        let producer = try KafkaProducer(configuration: broker.clientConfiguration)
        let topic = try producer.topic("t")
        try produce(producer, topic, 0..<2000)
        try producer.flush(timeoutMilliseconds: 10_000)

        try broker.setDown(broker: 1)
        try produce(producer, topic, 2000..<4000)  // queued while the broker is away
        try producer.poll(timeoutMilliseconds: 300)
        DispatchQueue.global().asyncAfter(deadline: .now() + 1) { try? broker.setUp(broker: 1) }
        try producer.flush(timeoutMilliseconds: 30_000)
        #expect(producer.deliveredCount == 4000)

        let values = try consumeAll(broker, "t", partitions: 4, count: 4000)
        #expect(values.count == 4000)
        #expect(Set(values) == Set((0..<4000).map(UInt64.init)))
        // Per key (one partition each), values arrive in the order they were produced.
        var last: [UInt64: UInt64] = [:]
        for v in values {
            if let previous = last[v % 16] { #expect(v > previous) }
            last[v % 16] = v
        }
    }

    @Test("injected produce and fetch errors are retried: every message arrives once")
    func injectedErrors() throws {
        let broker = try EmbeddedBroker()
        try broker.createTopic("t", partitions: 2)
        try broker.injectErrors([KafkaErrorCode.notLeaderForPartition, KafkaErrorCode.requestTimedOut,
                                 KafkaErrorCode.notEnoughReplicas], for: .produce, broker: 1)
        try broker.injectErrors([KafkaErrorCode.notLeaderForPartition, KafkaErrorCode.unknownTopicOrPartition], for: .fetch, broker: 1)
        #expect(try broker.pendingErrors(for: .produce, broker: 1) == 3)
        let producer = try KafkaProducer(configuration: broker.clientConfiguration)
        try produce(producer, try producer.topic("t"), 0..<3000)
        try producer.flush(timeoutMilliseconds: 30_000)
        #expect(producer.deliveredCount == 3000)
        let values = try consumeAll(broker, "t", partitions: 2, count: 3000)
        #expect(values.sorted() == (0..<3000).map(UInt64.init))
        // Every injected error fired: the clients retried through them.
        #expect(try broker.pendingErrors(for: .produce, broker: 1) == 0)
        #expect(try broker.pendingErrors(for: .fetch, broker: 1) == 0)
    }

    @Test("a delivery that times out surfaces as an error with librdkafka's code and name")
    func deliveryFailure() throws {
        let broker = try EmbeddedBroker()
        try broker.createTopic("t", partitions: 1)
        let producer = try KafkaProducer(configuration: broker.clientConfiguration.merging(["message.timeout.ms": "300"]))
        try broker.setDown(broker: 1)
        try produce(producer, try producer.topic("t"), 0..<10)
        do {
            try producer.flush(timeoutMilliseconds: 5000)
            Issue.record("flush succeeded with the broker down")
        } catch {
            #expect(error.kind == .delivery)
            #expect(error.name == "_MSG_TIMED_OUT")
            #expect(error.description == "delivering to \"t\": Local: Message timed out (_MSG_TIMED_OUT); 9 more deliveries failed")
        }
    }

    @Test("round-trip delay slows delivery but loses nothing")
    func roundTripDelay() throws {
        let broker = try EmbeddedBroker()
        try broker.createTopic("t", partitions: 1)
        try broker.setRoundTripTime(60, broker: 1)
        let producer = try KafkaProducer(configuration: broker.clientConfiguration)
        try produce(producer, try producer.topic("t"), 0..<100)
        let start = ContinuousClock.now
        try producer.flush(timeoutMilliseconds: 10_000)
        #expect(ContinuousClock.now - start >= .milliseconds(50))  // a lower bound: the delay was applied
        #expect(producer.deliveredCount == 100)
    }

    @Test("an offset gap is an error that says messages were lost")
    func offsetGap() throws {
        var tracker = OffsetTracker(topic: "t", start: [0: 5])
        try tracker.record(partition: 0, offset: 5)
        #expect(throws: KafkaError.self) { try tracker.record(partition: 0, offset: 7) }
        do { try tracker.record(partition: 0, offset: 7); Issue.record("expected an error, none was thrown") } catch {
            #expect(error.kind == .offsetGap)
            #expect(error.description == "consuming t [0]: expected offset 6, got 7: messages were lost (pruned by the broker, or the consumer fell behind)")
        }
        do { try tracker.record(partition: 3, offset: 0); Issue.record("expected an error, none was thrown") } catch {
            #expect(error.description == "consuming t [3]: a message from partition 3, which this consumer was not assigned")
        }
    }
}

@Suite("Kafka clients")
struct KafkaClientTests {
    @Test("an unknown property is a configuration error naming the key")
    func unknownProperty() {
        #expect(throws: KafkaError.self) { try KafkaProducer(configuration: KafkaConfiguration(["no.such.property": "1"])) }
        do { _ = try KafkaProducer(configuration: KafkaConfiguration(["no.such.property": "1"])); Issue.record("expected an error, none was thrown") } catch {
            #expect(error.kind == .configuration)
            #expect(error.description == "kafka property 'no.such.property': No such configuration property: \"no.such.property\"")
        }
    }

    @Test("secrets never appear in descriptions or errors")
    func secrets() {
        let c = KafkaConfiguration(["sasl.password": "hunter2", "ssl.key.password": "s3cret", "linger.ms": "5"])
        #expect(c.description == "linger.ms=5 sasl.password=[redacted] ssl.key.password=[redacted]")
        do { _ = try KafkaProducer(configuration: c.merging(["ssl.key.password": "s3cret", "acks": "nonsense-s3cret"])); Issue.record("expected an error, none was thrown") } catch {
            // The error is the bad `acks` value's; the configuration it came from held
            // the passwords, and none of them may leak into it.
            #expect(error.description.contains("acks"))
            #expect(!error.description.contains("hunter2"))
            #expect(!error.description.contains("=s3cret"))
        }
    }

    @Test("a consumer needs a group id")
    func groupID() {
        do { _ = try KafkaConsumer(configuration: KafkaConfiguration()); Issue.record("expected an error, none was thrown") } catch {
            #expect(error.description == "creating consumer: a consumer needs 'group.id'")
        }
    }

    @Test("metadata lists the brokers and topics with their partitions")
    func metadata() throws {
        let broker = try EmbeddedBroker(brokers: 3)
        try broker.createTopic("m", partitions: 6, replicationFactor: 2)
        let admin = try KafkaAdmin(configuration: broker.clientConfiguration)
        let md = try admin.metadata()
        #expect(md.brokers.map(\.id).sorted() == [1, 2, 3])
        #expect(md.topic("m")?.partitionCount == 6)
        #expect(try admin.watermarks(TopicPartition("m", 0), timeoutMilliseconds: 5000) == (0, 0))
    }

    @Test("a consumer group subscribes, consumes and commits; the commit reads back")
    func groupSubscribeAndCommit() throws {
        let broker = try EmbeddedBroker()
        try broker.createTopic("g", partitions: 2)
        let producer = try KafkaProducer(configuration: broker.clientConfiguration)
        try produce(producer, try producer.topic("g"), 0..<200)
        try producer.flush(timeoutMilliseconds: 10_000)

        let consumer = try KafkaConsumer(configuration: broker.clientConfiguration.merging(
            ["group.id": "grp", "auto.offset.reset": "earliest", "fetch.wait.max.ms": "5"]))
        try consumer.subscribe(["g"])
        var count = 0
        let deadline = Date().addingTimeInterval(30)
        while count < 200 && Date() < deadline {
            count += try consumer.consumeBatch(timeoutMilliseconds: 100) { $0.count }
        }
        #expect(count == 200)
        try consumer.commitConsumed()
        let committed = try consumer.committed([TopicPartition("g", 0), TopicPartition("g", 1)], timeoutMilliseconds: 5000)
        #expect(committed.values.reduce(0, +) == 200)
    }
}
