import Testing
@testable import Kafka

@Suite("Kafka over the embedded broker")
struct KafkaRoundTripTests {
    @Test("produced messages come back in order per key with their bytes")
    func roundTrip() throws {
        let broker = try EmbeddedBroker()
        try broker.createTopic("t", partitions: 4)
        let producer = try KafkaProducer(configuration: broker.clientConfiguration)
        try produce(producer, try producer.topic("t"), 0..<1000, keys: 10)
        try producer.flush(timeoutMilliseconds: 10_000)
        #expect(producer.deliveredCount == 1000)

        let consumer = try KafkaConsumer(configuration: broker.clientConfiguration.merging(["group.id": "g", "fetch.wait.max.ms": "1"]))
        try consumer.assign((0..<4).map { (TopicPartition("t", $0), offset: 0) })
        var lastPerKey: [UInt32: UInt64] = [:]
        var count = 0
        var tracker = OffsetTracker(topic: "t", start: [0: 0, 1: 0, 2: 0, 3: 0])
        while count < 1000 {
            try consumer.consumeBatch(timeoutMilliseconds: 100) { batch in
                for m in batch {
                    try tracker.record(partition: m.partition, offset: m.offset)
                    let key = m.key.loadUnaligned(as: UInt32.self)
                    let value = m.value.loadUnaligned(as: UInt64.self)
                    #expect(value % 10 == UInt64(key))
                    if let last = lastPerKey[key] { #expect(value > last) }
                    lastPerKey[key] = value
                    count += 1
                }
            }
        }
        #expect(count == 1000)
    }
}
