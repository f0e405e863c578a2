import CRdKafka
import Foundation

/// A topic and partition.
public struct TopicPartition: Hashable, Sendable, CustomStringConvertible {
    public var topic: String
    public var partition: Int32
    public init(_ topic: String, _ partition: Int32) {
        self.topic = topic
        self.partition = partition
    }
    public var description: String { "\(topic) [\(partition)]" }
}

/// Special offsets librdkafka understands in `assign`.
public enum KafkaOffset {
    public static let beginning: Int64 = -2
    public static let end: Int64 = -1
    public static let stored: Int64 = -1000
}

/// One consumed message, viewed in place: `key` and `value` point into librdkafka's
/// buffer and are valid only inside the `consumeBatch` body that handed them out.
public struct KafkaMessage {
    let pointer: UnsafeMutablePointer<rd_kafka_message_t>

    public var partition: Int32 { pointer.pointee.partition }
    public var offset: Int64 { pointer.pointee.offset }
    public var key: UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: pointer.pointee.key, count: pointer.pointee.key_len)
    }
    public var value: UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: pointer.pointee.payload, count: pointer.pointee.len)
    }
    /// The topic's name (allocates a String: keep it off the hot path).
    public var topic: String {
        pointer.pointee.rkt.map { String(cString: rd_kafka_topic_name($0)) } ?? ""
    }

    /// Whether the message is of topic `name` (compared in place: no allocation).
    public func isTopic(_ name: String) -> Bool {
        guard let rkt = pointer.pointee.rkt else { return false }
        return name.withCString { strcmp(rd_kafka_topic_name(rkt), $0) == 0 }
    }

    /// The last value of the header `name`, as text (nil when absent; off the hot path).
    public func header(_ name: String) -> String? {
        var headers: OpaquePointer?
        guard rd_kafka_message_headers(pointer, &headers) == RD_KAFKA_RESP_ERR_NO_ERROR, let headers else { return nil }
        var value: UnsafeRawPointer?
        var size = 0
        guard rd_kafka_header_get_last(headers, name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR else { return nil }
        guard let value else { return "" }
        return String(decoding: UnsafeRawBufferPointer(start: value, count: size), as: UTF8.self)
    }
}

/// The data messages of one consumed batch, in the order librdkafka delivered them.
public struct KafkaMessageBatch: RandomAccessCollection {
    let storage: UnsafeMutableBufferPointer<UnsafeMutablePointer<rd_kafka_message_t>?>
    public let count: Int
    public var startIndex: Int { 0 }
    public var endIndex: Int { count }
    public subscript(position: Int) -> KafkaMessage {
        precondition(position >= 0 && position < count, "batch index out of range")
        return KafkaMessage(pointer: storage[position]!)
    }
}

/// A consumer that hands out messages in batches (`rd_kafka_consume_batch_queue`), without
/// copying their bytes, and commits offsets only when told to.
///
/// Both consumer groups (`subscribe`) and explicit assignment (`assign`) are supported;
/// `enable.auto.commit` is off by default so that a caller commits after it has applied
/// what it consumed. Transient broker trouble (a connection lost and retried) is counted,
/// not thrown: librdkafka recovers by itself. Errors that mean data was lost or can never
/// arrive (offset out of range with `auto.offset.reset=error`, authorization, fatal) are
/// thrown after the batch's good messages have been handed to the caller.
public final class KafkaConsumer {
    let handle: OpaquePointer
    private let queue: OpaquePointer
    private let buffer: UnsafeMutableBufferPointer<UnsafeMutablePointer<rd_kafka_message_t>?>
    private var closed = false

    /// Transient errors seen (connection trouble librdkafka retries by itself).
    public private(set) var transientErrorCount = 0
    /// The last transient error, for a stall message.
    public private(set) var lastTransientError: KafkaError?

    public static let defaults: [String: String] = [
        "enable.auto.commit": "false",
        "enable.partition.eof": "false",
        "queued.min.messages": "200000",
    ]

    /// - Parameter batchCapacity: the most messages one `consumeBatch` hands out.
    public init(configuration: KafkaConfiguration, batchCapacity: Int = 4096) throws(KafkaError) {
        precondition(batchCapacity > 0)
        var configuration = configuration
        for (key, value) in Self.defaults { configuration.setDefault(key, value) }
        guard configuration["group.id"] != nil else {
            throw KafkaError(.configuration, "a consumer needs 'group.id'", context: "creating consumer")
        }
        let conf = try configuration.makeConf()
        handle = try makeClient(RD_KAFKA_CONSUMER, conf: conf, context: "creating consumer")
        rd_kafka_poll_set_consumer(handle)
        queue = rd_kafka_queue_get_consumer(handle)
        buffer = .allocate(capacity: batchCapacity)
        buffer.initialize(repeating: nil)
    }

    deinit {
        close()
        rd_kafka_queue_destroy(queue)
        rd_kafka_destroy(handle)
        buffer.deallocate()
    }

    /// Leaves the group (if any) and stops fetching. Called by deinit if not before.
    public func close() {
        guard !closed else { return }
        closed = true
        rd_kafka_consumer_close(handle)
    }

    /// Joins the consumer group and subscribes to `topics`.
    public func subscribe(_ topics: [String]) throws(KafkaError) {
        let list = rd_kafka_topic_partition_list_new(Int32(topics.count))!
        defer { rd_kafka_topic_partition_list_destroy(list) }
        for topic in topics { rd_kafka_topic_partition_list_add(list, topic, RD_KAFKA_PARTITION_UA) }
        let err = rd_kafka_subscribe(handle, list)
        if err != RD_KAFKA_RESP_ERR_NO_ERROR {
            throw KafkaError(.client, code: err, context: "subscribing to \(topics)")
        }
    }

    /// Consumes exactly these partitions from these offsets (no group rebalancing).
    public func assign(_ assignment: [(TopicPartition, offset: Int64)]) throws(KafkaError) {
        let list = makeList(assignment)
        defer { rd_kafka_topic_partition_list_destroy(list) }
        let err = rd_kafka_assign(handle, list)
        if err != RD_KAFKA_RESP_ERR_NO_ERROR {
            throw KafkaError(.client, code: err, context: "assigning \(assignment.map(\.0))")
        }
    }

    /// Waits up to `timeoutMilliseconds` for the first message, then hands `body` what is
    /// ready (up to the batch capacity). Message bytes are valid only inside `body`.
    public func consumeBatch<R>(
        timeoutMilliseconds: Int32, _ body: (KafkaMessageBatch) throws -> R
    ) throws -> R {
        // rd_kafka_consume_batch_queue waits out its whole timeout unless the batch fills,
        // so take what is ready; if nothing is, wait for one message, then take the rest.
        var n = rd_kafka_consume_batch_queue(queue, 0, buffer.baseAddress, buffer.count)
        if n == 0 && timeoutMilliseconds != 0, let first = rd_kafka_consume_queue(queue, timeoutMilliseconds) {
            buffer[0] = first
            let more = rd_kafka_consume_batch_queue(queue, 0, buffer.baseAddress! + 1, buffer.count - 1)
            n = 1 + max(more, 0)
        }
        if n < 0 {
            throw KafkaError(.consume, code: rd_kafka_last_error(), context: "consuming a batch")
        }
        // Keep data messages in place, in order; set errors aside.
        var kept = 0
        var fatal: KafkaError?
        for i in 0..<n {
            let message = buffer[i]!
            let err = message.pointee.err
            if err == RD_KAFKA_RESP_ERR_NO_ERROR {
                buffer[kept] = message
                kept += 1
                continue
            }
            var error = KafkaError(
                .consume, message: errorText(message), code: err,
                context: message.pointee.rkt != nil
                    ? "consuming \(KafkaMessage(pointer: message).topic) [\(message.pointee.partition)]"
                    : "consuming")
            if message.pointee.rkt != nil {
                error.source = TopicPartition(KafkaMessage(pointer: message).topic, message.pointee.partition)
            }
            if Self.isFatal(err) {
                fatal = fatal ?? error
            } else if err != RD_KAFKA_RESP_ERR__PARTITION_EOF {
                transientErrorCount += 1
                lastTransientError = error
            }
            rd_kafka_message_destroy(message)
        }
        defer {
            for i in 0..<kept { rd_kafka_message_destroy(buffer[i]!) }
        }
        let result = try body(KafkaMessageBatch(storage: buffer, count: kept))
        if let fatal { throw fatal }
        return result
    }

    /// Commits the offsets of everything consumed so far (synchronously).
    public func commitConsumed() throws(KafkaError) {
        let err = rd_kafka_commit(handle, nil, 0)
        if err != RD_KAFKA_RESP_ERR_NO_ERROR && err != RD_KAFKA_RESP_ERR__NO_OFFSET {
            throw KafkaError(.client, code: err, context: "committing consumed offsets")
        }
    }

    /// Commits these offsets: each is the offset of the next message to read.
    public func commit(_ offsets: [(TopicPartition, offset: Int64)]) throws(KafkaError) {
        let list = makeList(offsets)
        defer { rd_kafka_topic_partition_list_destroy(list) }
        let err = rd_kafka_commit(handle, list, 0)
        if err != RD_KAFKA_RESP_ERR_NO_ERROR {
            throw KafkaError(.client, code: err, context: "committing offsets")
        }
    }

    /// The committed offsets of the group for these partitions (nil where none).
    public func committed(_ partitions: [TopicPartition], timeoutMilliseconds: Int32) throws(KafkaError) -> [TopicPartition: Int64] {
        let list = makeList(partitions.map { ($0, offset: KafkaOffset.stored) })
        defer { rd_kafka_topic_partition_list_destroy(list) }
        let err = rd_kafka_committed(handle, list, timeoutMilliseconds)
        if err != RD_KAFKA_RESP_ERR_NO_ERROR {
            throw KafkaError(.client, code: err, context: "reading committed offsets")
        }
        var result: [TopicPartition: Int64] = [:]
        for i in 0..<Int(list.pointee.cnt) {
            let element = list.pointee.elems[i]
            if element.offset >= 0 {
                result[TopicPartition(String(cString: element.topic), element.partition)] = element.offset
            }
        }
        return result
    }

    /// The low and high watermarks of a partition, asked of the broker.
    /// The partition's high watermark as the last fetch response gave it (no round trip;
    /// nil before the first fetch).
    public func cachedHighWatermark(_ partition: TopicPartition) -> Int64? {
        var low: Int64 = -1, high: Int64 = -1
        let err = rd_kafka_get_watermark_offsets(handle, partition.topic, partition.partition, &low, &high)
        return err == RD_KAFKA_RESP_ERR_NO_ERROR && high >= 0 ? high : nil
    }

    /// The partition's low and high watermarks as the last fetch responses gave them (no
    /// round trip; nil before the first fetch; low is -1 until a response carries it).
    public func cachedWatermarks(_ partition: TopicPartition) -> (low: Int64, high: Int64)? {
        var low: Int64 = -1, high: Int64 = -1
        let err = rd_kafka_get_watermark_offsets(handle, partition.topic, partition.partition, &low, &high)
        return err == RD_KAFKA_RESP_ERR_NO_ERROR && high >= 0 ? (low, high) : nil
    }

    /// Asks the broker. With the broker away, librdkafka 2.0.2 does not honour the timeout
    /// (the call waits until the broker is back): loops that must stay responsive read
    /// `cachedWatermarks` instead.
    public func watermarks(_ partition: TopicPartition, timeoutMilliseconds: Int32) throws(KafkaError) -> (low: Int64, high: Int64) {
        try queryWatermarks(handle, partition, timeoutMilliseconds: timeoutMilliseconds)
    }

    /// Errors that mean data is gone or can never arrive.
    static func isFatal(_ err: rd_kafka_resp_err_t) -> Bool {
        switch err {
        case RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET, RD_KAFKA_RESP_ERR_OFFSET_OUT_OF_RANGE,
            RD_KAFKA_RESP_ERR__FATAL, RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED,
            RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED, RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION:
            return true
        default:
            return false
        }
    }

    private func errorText(_ message: UnsafeMutablePointer<rd_kafka_message_t>) -> String {
        // For error messages librdkafka puts the human-readable reason in the payload.
        if let payload = message.pointee.payload, message.pointee.len > 0 {
            return String(decoding: UnsafeRawBufferPointer(start: payload, count: message.pointee.len), as: UTF8.self)
        }
        return String(cString: rd_kafka_err2str(message.pointee.err))
    }
}

extension KafkaError {
    init(_ kind: Kind, message: String, code: rd_kafka_resp_err_t, context: String) {
        self.init(kind, message, context: context, code: code.rawValue)
    }
}

func makeList(_ entries: [(TopicPartition, offset: Int64)]) -> UnsafeMutablePointer<rd_kafka_topic_partition_list_t> {
    let list = rd_kafka_topic_partition_list_new(Int32(entries.count))!
    for (tp, offset) in entries {
        rd_kafka_topic_partition_list_add(list, tp.topic, tp.partition).pointee.offset = offset
    }
    return list
}

func queryWatermarks(_ handle: OpaquePointer, _ partition: TopicPartition, timeoutMilliseconds: Int32) throws(KafkaError) -> (low: Int64, high: Int64) {
    var low: Int64 = 0
    var high: Int64 = 0
    let err = rd_kafka_query_watermark_offsets(handle, partition.topic, partition.partition, &low, &high, timeoutMilliseconds)
    if err != RD_KAFKA_RESP_ERR_NO_ERROR {
        throw KafkaError(.client, code: err, context: "reading watermarks of \(partition)")
    }
    return (low, high)
}
