import CRdKafka

/// An error from the Kafka layer: what failed, where, and librdkafka's own code, name and
/// message when it came from librdkafka.
///
/// Built like swift-kafka-client's `KafkaError`: a small `Kind` to switch on, and context
/// fields for the message, rather than one enum case per librdkafka error.
public struct KafkaError: Error, CustomStringConvertible, Sendable {
    public enum Kind: String, Sendable {
        /// A property was unknown or had a bad value.
        case configuration
        /// librdkafka refused a call (client creation, subscribe, commit, ...).
        case client
        /// A produced message was not delivered.
        case delivery
        /// The consumer reported an error that is not transient.
        case consume
        /// Nothing happened within the allowed time (flush, metadata, a stalled stream).
        case timeout
        /// The consumer saw an offset other than the one it expected: messages were pruned
        /// or skipped, which a lockstep run must never tolerate.
        case offsetGap
        /// The embedded broker's own API failed.
        case broker
    }

    public var kind: Kind
    /// librdkafka's `rd_kafka_resp_err_t`, when librdkafka produced the error.
    public var code: Int32?
    /// librdkafka's symbolic name for `code`, e.g. `_MSG_TIMED_OUT`.
    public var name: String?
    /// What went wrong, in words.
    public var message: String
    /// What the layer was doing, e.g. `producing to "demo.requests"`.
    public var context: String
    /// More to say after the code, e.g. how many further deliveries failed.
    public var note: String?
    /// The topic and partition a consumer error came from, when it came from one.
    public var source: TopicPartition?

    /// An offset the consumer was to fetch is not on the broker (retention, truncation, a
    /// recreated topic), and `auto.offset.reset=error` kept it from moving on by itself.
    public var isOffsetOutOfRange: Bool {
        code == RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET.rawValue || code == RD_KAFKA_RESP_ERR_OFFSET_OUT_OF_RANGE.rawValue
    }

    public init(_ kind: Kind, _ message: String, context: String, code: Int32? = nil) {
        self.kind = kind
        self.message = message
        self.context = context
        self.code = code
        self.name = code.map { String(cString: rd_kafka_err2name(rd_kafka_resp_err_t($0))) }
    }

    /// Wraps a librdkafka error code, taking its message from librdkafka.
    init(_ kind: Kind, code: rd_kafka_resp_err_t, context: String) {
        self.init(kind, String(cString: rd_kafka_err2str(code)), context: context, code: code.rawValue)
    }

    public var description: String {
        var text = "\(context): \(message)"
        if let name { text += " (\(name))" }
        if let note { text += "; \(note)" }
        return text
    }
}
