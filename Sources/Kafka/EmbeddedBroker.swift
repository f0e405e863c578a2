import CKafkaShim
import CRdKafka

/// Kafka protocol request types, for fault injection (the numbers are the protocol's API
/// keys; librdkafka 2.0.2's headers do not export them in a form Swift can see).
public enum KafkaAPI: Int16, Sendable, CaseIterable {
    case produce = 0
    case fetch = 1
    case listOffsets = 2
    case metadata = 3
    case offsetCommit = 8
    case offsetFetch = 9
    case findCoordinator = 10
    case joinGroup = 11
    case heartbeat = 12
    case syncGroup = 14
    case initProducerId = 22
}

/// A Kafka cluster inside this process: librdkafka's mock cluster, which speaks the Kafka
/// protocol on loopback, so real producers and consumers (and `kcat`) can use it.
///
/// Its lifetime is this object's. It keeps only about 5 MiB per partition and prunes
/// older data, so consumers must keep up with producers; and it holds an empty fetch for
/// the full `fetch.wait.max.ms`, so latency-sensitive consumers set that to 0-1 ms.
/// Faults for tests: brokers down and up, injected request errors, round-trip delay.
public final class EmbeddedBroker {
    private let host: OpaquePointer
    private let cluster: OpaquePointer
    /// Broker ids run from 1 to `brokerCount`.
    public let brokerCount: Int
    /// The address clients put in `bootstrap.servers`.
    public let bootstrapServers: String

    public init(brokers: Int = 1) throws(KafkaError) {
        precondition(brokers >= 1, "an embedded cluster needs at least one broker")
        let conf = try KafkaConfiguration(["log_level": "3"]).makeConf()
        host = try makeClient(RD_KAFKA_PRODUCER, conf: conf, context: "starting embedded broker")
        guard let cluster = rd_kafka_mock_cluster_new(host, Int32(brokers)) else {
            rd_kafka_destroy(host)
            throw KafkaError(.broker, "rd_kafka_mock_cluster_new failed", context: "starting embedded broker")
        }
        self.cluster = cluster
        self.brokerCount = brokers
        self.bootstrapServers = String(cString: rd_kafka_mock_cluster_bootstraps(cluster))
        // Without this every response that follows another unacknowledged one waits ~40 ms
        // (Nagle against delayed ACK); see recstream_set_nodelay_on_listeners.
        let ports = bootstrapServers.split(separator: ",").compactMap { $0.split(separator: ":").last.flatMap { Int32($0) } }
        _ = ports.withUnsafeBufferPointer { recstream_set_nodelay_on_listeners($0.baseAddress, Int32($0.count)) }
    }

    deinit {
        rd_kafka_mock_cluster_destroy(cluster)
        rd_kafka_destroy(host)
    }

    /// A client configuration that reaches this cluster.
    public var clientConfiguration: KafkaConfiguration {
        KafkaConfiguration(bootstrapServers: bootstrapServers)
    }

    public func createTopic(_ name: String, partitions: Int, replicationFactor: Int = 1) throws(KafkaError) {
        let err = rd_kafka_mock_topic_create(cluster, name, Int32(partitions), Int32(replicationFactor))
        if err != RD_KAFKA_RESP_ERR_NO_ERROR {
            throw KafkaError(.broker, code: err, context: "creating topic \"\(name)\" on the embedded broker")
        }
    }

    /// Takes a broker down: its connections close and new ones are refused.
    public func setDown(broker id: Int32) throws(KafkaError) {
        try check(rd_kafka_mock_broker_set_down(cluster, id), "taking broker \(id) down")
    }

    public func setUp(broker id: Int32) throws(KafkaError) {
        try check(rd_kafka_mock_broker_set_up(cluster, id), "bringing broker \(id) up")
    }

    /// Adds `milliseconds` of delay to every response of a broker.
    public func setRoundTripTime(_ milliseconds: Int, broker id: Int32) throws(KafkaError) {
        try check(rd_kafka_mock_broker_set_rtt(cluster, id, Int32(milliseconds)), "setting round-trip time of broker \(id)")
    }

    /// The next `errors.count` requests of type `api` (to any broker) fail with these
    /// librdkafka error codes, in order.
    public func injectErrors(_ errors: [Int32], for api: KafkaAPI) {
        let codes = errors.map { rd_kafka_resp_err_t(rawValue: $0) }
        codes.withUnsafeBufferPointer { buffer in
            rd_kafka_mock_push_request_errors_array(cluster, api.rawValue, buffer.count, buffer.baseAddress)
        }
    }

    /// Makes the next requests of `api` that broker `id` gets fail with `errors`, in order.
    /// Unlike the cluster's errors (`injectErrors(_:for:)`), these can be counted:
    /// `pendingErrors(for:broker:)` says how many have not fired yet.
    public func injectErrors(_ errors: [Int32], for api: KafkaAPI, broker id: Int32) throws(KafkaError) {
        for code in errors {
            let err = recstream_mock_broker_push_error(cluster, id, api.rawValue, code, 0)
            try check(rd_kafka_resp_err_t(rawValue: err), "injecting \(api) errors on broker \(id)")
        }
    }

    /// How many errors injected on broker `id` for `api` have not fired yet.
    public func pendingErrors(for api: KafkaAPI, broker id: Int32) throws(KafkaError) -> Int {
        var count = 0
        try check(rd_kafka_mock_broker_error_stack_cnt(cluster, id, api.rawValue, &count), "counting \(api) errors on broker \(id)")
        return count
    }

    /// Drops errors injected for `api` that have not fired yet.
    public func clearInjectedErrors(for api: KafkaAPI) {
        rd_kafka_mock_clear_request_errors(cluster, api.rawValue)
    }

    private func check(_ err: rd_kafka_resp_err_t, _ context: String) throws(KafkaError) {
        if err != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(.broker, code: err, context: context) }
    }
}

/// librdkafka error codes used for fault injection, by name.
public enum KafkaErrorCode {
    public static let notLeaderForPartition: Int32 = RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION.rawValue
    public static let requestTimedOut: Int32 = RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT.rawValue
    public static let notEnoughReplicas: Int32 = RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS.rawValue
    public static let leaderNotAvailable: Int32 = RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE.rawValue
    public static let unknownTopicOrPartition: Int32 = RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART.rawValue
    public static let topicAuthorizationFailed: Int32 = RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED.rawValue
}

// Safe to share across threads: every stored property is immutable after init, and the
// mock cluster's API hands each call to the cluster's own thread as an op (librdkafka's
// rd_kafka_mock_* functions are thread-safe), so a test may take a broker down from one
// thread and up from another while clients run on a third.
extension EmbeddedBroker: @unchecked Sendable {}
