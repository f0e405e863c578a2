import Foundation
import Kafka
import RecCore

/// One stage of the lockstep loop over one topic: everything sent in a phase is flushed,
/// then consumed back (by the stage's own consumer) until every message has arrived.
/// While a phase sends, `poll` takes in what has already come back, so consumption runs
/// beside production (a broker with bounded logs, like the embedded one at 5 MiB per
/// partition, never drops what the stage has not read yet, and the phase ends sooner).
///
/// Nothing is skipped: offsets are checked for gaps, a message that does not decode is
/// copied to the dead-letter topic with the reason in a header (and counted), and a phase
/// that makes no progress for the stall timeout fails with a message saying how far it got.
final class StageChannel {
    let stage: String
    let topic: KafkaTopic
    let consumer: KafkaConsumer
    var tracker: OffsetTracker
    private(set) var sent = 0
    private(set) var received = 0
    private(set) var deadLetters = 0

    init(stage: String, topic: KafkaTopic, consumer: KafkaConsumer, start: [Int32: Int64]) throws {
        self.stage = stage
        self.topic = topic
        self.consumer = consumer
        self.tracker = OffsetTracker(topic: topic.name, start: start)
        try consumer.assign(start.keys.sorted().map { (TopicPartition(topic.name, $0), offset: start[$0]!) })
    }

    /// Sends one record keyed by user (so a user's records stay in order on one partition).
    @inline(__always)
    func send(_ producer: KafkaProducer, user: UserID, _ bytes: UnsafeRawBufferPointer) throws(KafkaError) {
        var key = user.littleEndian
        try withUnsafeBytes(of: &key) { (k) throws(KafkaError) in try producer.send(topic, key: k, value: bytes) }
        sent += 1
    }

    /// Sends one record, and after every `pollEvery` records takes in what has come back.
    @inline(__always)
    func send(_ producer: KafkaProducer, user: UserID, _ bytes: UnsafeRawBufferPointer, deadLetterTopic: String,
              _ handle: (UnsafeRawBufferPointer) throws(WireError) -> Void) throws {
        try send(producer, user: user, bytes)
        if sent & (Self.pollEvery - 1) == 0 { try poll(producer, deadLetterTopic: deadLetterTopic, handle) }
    }

    static let pollEvery = 4096

    /// Takes in, without waiting, whatever messages of this phase have already arrived.
    func poll(_ producer: KafkaProducer, deadLetterTopic: String, _ handle: (UnsafeRawBufferPointer) throws(WireError) -> Void) throws {
        while received < sent {
            let got = try take(producer, deadLetterTopic: deadLetterTopic, timeoutMilliseconds: 0, handle)
            received += got
            if got == 0 { return }
        }
    }

    /// One batch from the consumer: offsets checked, each payload handed to `handle` or,
    /// if it does not decode, to the dead-letter topic.
    private func take(_ producer: KafkaProducer, deadLetterTopic: String, timeoutMilliseconds: Int32,
                      _ handle: (UnsafeRawBufferPointer) throws(WireError) -> Void) throws -> Int {
        try consumer.consumeBatch(timeoutMilliseconds: timeoutMilliseconds) { batch in
            for message in batch {
                try tracker.record(partition: message.partition, offset: message.offset)
                do {
                    try handle(message.value)
                } catch {
                    try producer.sendDeadLetter(to: deadLetterTopic, key: message.key, value: message.value,
                                                source: TopicPartition(topic.name, message.partition), offset: message.offset, reason: "\(error)")
                    deadLetters += 1
                }
            }
            return batch.count
        }
    }

    /// Flushes the producer, then consumes until every message sent in this phase has come
    /// back, handing each payload to `handle`.
    func drain(_ producer: KafkaProducer, deadLetterTopic: String, stallSeconds: Double, tick: Tick,
               _ handle: (UnsafeRawBufferPointer) throws(WireError) -> Void) throws {
        do {
            try producer.flush(timeoutMilliseconds: Int32(min(stallSeconds * 1000, Double(Int32.max))))
        } catch where error.kind == .timeout {
            throw RunError("tick \(tick), \(stage): \(producer.inFlightCount) messages still undelivered after \(format(seconds: stallSeconds)); the broker did not come back within kafka.stallTimeoutSeconds")
        } catch {
            throw RunError("tick \(tick), \(stage): \(error); is the broker reachable?")
        }
        var lastProgress = ContinuousClock.now
        let stall = Duration.milliseconds(Int64(stallSeconds * 1000))
        while received < sent {
            let got = try take(producer, deadLetterTopic: deadLetterTopic, timeoutMilliseconds: 5, handle)
            received += got
            if got > 0 {
                lastProgress = .now
            } else if ContinuousClock.now - lastProgress > stall {
                let why = consumer.lastTransientError.map { " (last broker error: \($0))" } ?? ""
                throw RunError("tick \(tick), \(stage): received \(received) of \(sent) messages from \"\(topic.name)\" and nothing for \(format(seconds: stallSeconds))\(why); the broker did not come back within kafka.stallTimeoutSeconds")
            }
        }
        if received != sent {
            throw RunError("tick \(tick), \(stage): received \(received) messages from \"\(topic.name)\" but sent \(sent): another producer is writing to this run's topics (use a topic prefix of its own)")
        }
    }
}

/// A failure of a run, with where it happened.
public struct RunError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

func format(seconds: Double) -> String {
    seconds == seconds.rounded() ? "\(Int(seconds)) s" : String(format: "%.1f s", seconds)
}
