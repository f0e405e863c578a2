import CKafkaShim
import CRdKafka

/// A topic the producer has opened once, so that each send passes a handle rather than a
/// name to look up. Valid for the life of the producer that made it.
public struct KafkaTopic {
    public let name: String
    let handle: OpaquePointer
}

/// A producer over librdkafka that sends keyed messages from borrowed bytes.
///
/// `send` copies the bytes into librdkafka's queue and allocates nothing on the Swift
/// side, so a hot loop can encode into one scratch buffer and send it again and again.
/// Delivery is confirmed asynchronously; `flush` waits for it and throws the first failure
/// with librdkafka's code, name and message. The idempotent producer is on by default
/// (`enable.idempotence=true`), so librdkafka's own retries never duplicate or reorder.
///
/// Not thread-safe: one producer per thread of work, as the lockstep loop uses it.
public final class KafkaProducer {
    let handle: OpaquePointer
    private let ledger: DeliveryLedger
    private var topics: [String: OpaquePointer] = [:]

    /// Defaults the producer sets where the caller has not.
    public static let defaults: [String: String] = [
        "enable.idempotence": "true",
        "acks": "all",
        "linger.ms": "1",
        "batch.num.messages": "10000",
        "queue.buffering.max.messages": "1000000",
        "queue.buffering.max.kbytes": "1048576",
    ]

    public init(configuration: KafkaConfiguration) throws(KafkaError) {
        var configuration = configuration
        for (key, value) in Self.defaults { configuration.setDefault(key, value) }
        let conf = try configuration.makeConf()
        let ledger = DeliveryLedger()
        rd_kafka_conf_set_opaque(conf, Unmanaged.passUnretained(ledger).toOpaque())
        rd_kafka_conf_set_dr_msg_cb(conf) { _, message, opaque in
            guard let opaque, let message else { return }
            Unmanaged<DeliveryLedger>.fromOpaque(opaque).takeUnretainedValue().record(message)
        }
        self.handle = try makeClient(RD_KAFKA_PRODUCER, conf: conf, context: "creating producer")
        self.ledger = ledger
    }

    deinit {
        // Give queued messages a moment; a caller that cares has flushed already.
        rd_kafka_flush(handle, 100)
        for topic in topics.values { rd_kafka_topic_destroy(topic) }
        rd_kafka_destroy(handle)
    }

    /// Opens `name` for sending (once; later calls return the same handle).
    public func topic(_ name: String) throws(KafkaError) -> KafkaTopic {
        if let handle = topics[name] { return KafkaTopic(name: name, handle: handle) }
        guard let topic = rd_kafka_topic_new(handle, name, nil) else {
            throw KafkaError(.client, code: rd_kafka_last_error(), context: "opening topic \"\(name)\"")
        }
        topics[name] = topic
        return KafkaTopic(name: name, handle: topic)
    }

    /// Enqueues one message. `partition` nil lets the partitioner pick one from the key
    /// (so one key always lands on one partition). Waits, serving delivery reports, while
    /// librdkafka's queue is full; throws if the message cannot be enqueued or if an earlier
    /// delivery has failed (so a producer never runs on past a lost message).
    @inline(__always)
    public func send(
        _ topic: KafkaTopic, key: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer,
        partition: Int32? = nil
    ) throws(KafkaError) {
        let part = partition ?? RD_KAFKA_PARTITION_UA
        while rd_kafka_produce(
            topic.handle, part, RD_KAFKA_MSG_F_COPY,
            UnsafeMutableRawPointer(mutating: value.baseAddress), value.count,
            key.baseAddress, key.count, nil) != 0
        {
            let err = rd_kafka_last_error()
            guard err == RD_KAFKA_RESP_ERR__QUEUE_FULL else {
                throw KafkaError(.client, code: err, context: "producing to \"\(topic.name)\"")
            }
            rd_kafka_poll(handle, 1)
            try ledger.check()
        }
    }

    /// Enqueues one message with one header, by topic name (for rare messages such as dead
    /// letters, where a header carries the reason).
    public func send(
        to topic: String, key: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer,
        header: (name: String, value: String)
    ) throws(KafkaError) {
        let err = header.value.withCString { headerValue in
            recstream_producev(
                handle, topic, RD_KAFKA_PARTITION_UA, key.baseAddress, key.count,
                value.baseAddress, value.count, header.name, headerValue, header.value.utf8.count)
        }
        if err != 0 {
            throw KafkaError(.client, code: rd_kafka_resp_err_t(rawValue: err), context: "producing to \"\(topic)\"")
        }
    }

    /// Copies a message that could not be used to the dead-letter topic `topic`, with
    /// "SOURCE [PARTITION] @OFFSET: REASON" in its `recstream-error` header. A message too
    /// large to copy (librdkafka refuses it: over the producer's `message.max.bytes`) goes
    /// as a reference instead, so that a poison pill can never stop the stream: a JSON
    /// object naming its topic, partition, offset, key and value sizes and the reason,
    /// with no payload (its header says so). Returns whether the payload was copied.
    @discardableResult
    public func sendDeadLetter(
        to topic: String, key: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer,
        source: TopicPartition, offset: Int64, reason: String
    ) throws(KafkaError) -> Bool {
        let where_ = "\(source) @\(offset)"
        do {
            try send(to: topic, key: key, value: value, header: (name: "recstream-error", value: "\(where_): \(reason)"))
            return true
        } catch where error.code == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE.rawValue {
            let note = "\(where_): \(reason) (payload of \(value.count) bytes omitted: too large to copy)"
            let reference = DeadLetterReference(topic: source.topic, partition: source.partition, offset: offset,
                                                keyBytes: key.count, valueBytes: value.count, reason: reason)
            let keptKey = key.count <= DeadLetterReference.maxKeyBytes ? key : UnsafeRawBufferPointer(start: nil, count: 0)
            let body = Array(reference.json.utf8)
            let err = body.withUnsafeBytes { body in
                Result { () throws(KafkaError) in try send(to: topic, key: keptKey, value: body, header: (name: "recstream-error", value: note)) }
            }
            try err.get()
            return false
        }
    }

    /// Serves delivery reports; call now and then in a produce loop. Throws the first
    /// delivery failure.
    public func poll(timeoutMilliseconds: Int32 = 0) throws(KafkaError) {
        rd_kafka_poll(handle, timeoutMilliseconds)
        try ledger.check()
    }

    /// Waits until every enqueued message is delivered, or throws: the first delivery
    /// failure, or a timeout that says how many are still in flight.
    public func flush(timeoutMilliseconds: Int32) throws(KafkaError) {
        let err = rd_kafka_flush(handle, timeoutMilliseconds)
        try ledger.check()
        if err != RD_KAFKA_RESP_ERR_NO_ERROR {
            throw KafkaError(
                .timeout,
                "\(rd_kafka_outq_len(handle)) messages still undelivered after \(timeoutMilliseconds) ms",
                context: "flushing producer", code: err.rawValue)
        }
    }

    /// Messages delivered so far.
    public var deliveredCount: Int { ledger.delivered }
    /// Messages (and requests) librdkafka still holds.
    public var inFlightCount: Int { Int(rd_kafka_outq_len(handle)) }
}

/// Delivery outcomes, written by librdkafka's delivery callback. librdkafka calls it only
/// from `rd_kafka_poll`/`rd_kafka_flush` on the producer's thread, so no lock is needed.
final class DeliveryLedger {
    var delivered = 0
    var failed = 0
    var firstFailure: KafkaError?

    func record(_ message: UnsafePointer<rd_kafka_message_t>) {
        let err = message.pointee.err
        if err == RD_KAFKA_RESP_ERR_NO_ERROR {
            delivered += 1
            return
        }
        failed += 1
        if firstFailure == nil {
            let topic = message.pointee.rkt.map { String(cString: rd_kafka_topic_name($0)) } ?? "?"
            let partition = message.pointee.partition  // -1 when it never reached a partition
            firstFailure = KafkaError(
                .delivery, code: err,
                context: "delivering to \"\(topic)\"" + (partition >= 0 ? " [\(partition)]" : ""))
        }
    }

    func check() throws(KafkaError) {
        if var failure = firstFailure {
            if failed > 1 { failure.note = "\(failed - 1) more deliveries failed" }
            throw failure
        }
    }
}

/// What the dead-letter topic holds in place of a message too large to copy: where the
/// message is (so an operator can fetch it while retention keeps it), how big it is, and
/// why it was refused. Its JSON has the keys `deadLetter` ("reference"), `topic`,
/// `partition`, `offset`, `keyBytes`, `valueBytes` and `reason`.
public struct DeadLetterReference: Sendable, Equatable {
    public var topic: String
    public var partition: Int32
    public var offset: Int64
    public var keyBytes: Int
    public var valueBytes: Int
    public var reason: String

    /// Keys up to this size are kept on the reference (a key is what partitions it).
    public static let maxKeyBytes = 4096

    public var json: String {
        "{\"deadLetter\": \"reference\", \"topic\": \(Self.quoted(topic)), \"partition\": \(partition), \"offset\": \(offset), "
            + "\"keyBytes\": \(keyBytes), \"valueBytes\": \(valueBytes), \"reason\": \(Self.quoted(reason))}"
    }

    /// A JSON string literal (Kafka knows no JSON type; this is all it needs).
    static func quoted(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20: out += "\\u" + String(repeating: "0", count: 4 - String(scalar.value, radix: 16).count) + String(scalar.value, radix: 16)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}
