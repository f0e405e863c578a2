import CRdKafka

/// What the cluster says about itself.
public struct ClusterMetadata: Sendable {
    public struct Broker: Sendable {
        public var id: Int32
        public var host: String
        public var port: Int32
    }
    public struct Topic: Sendable {
        public var name: String
        public var partitionCount: Int
        /// librdkafka's error for the topic, if the broker reported one.
        public var error: String?
    }
    public var brokers: [Broker]
    public var topics: [Topic]

    public func topic(_ name: String) -> Topic? { topics.first { $0.name == name } }
}

/// A topic to create.
public struct NewTopic: Sendable {
    public var name: String
    public var partitions: Int
    public var replicationFactor: Int
    public init(_ name: String, partitions: Int, replicationFactor: Int = 1) {
        self.name = name
        self.partitions = partitions
        self.replicationFactor = replicationFactor
    }
}

/// Cluster administration: create topics, read metadata and watermarks.
///
/// librdkafka 2.0.2's mock cluster does not implement CreateTopics; topics on the embedded
/// broker are made with `EmbeddedBroker.createTopic` instead.
public final class KafkaAdmin {
    let handle: OpaquePointer

    public init(configuration: KafkaConfiguration) throws(KafkaError) {
        handle = try makeClient(RD_KAFKA_PRODUCER, conf: configuration.makeConf(), context: "creating admin client")
    }

    deinit { rd_kafka_destroy(handle) }

    /// Creates the topics. With `ifNotExists`, a topic that exists already is not an error
    /// (its partition count is checked by the caller through `metadata`).
    public func createTopics(_ topics: [NewTopic], ifNotExists: Bool = true, timeoutMilliseconds: Int32 = 10_000) throws(KafkaError) {
        var errstr = [CChar](repeating: 0, count: 512)
        var handles: [OpaquePointer?] = []
        defer { for h in handles { rd_kafka_NewTopic_destroy(h) } }
        for topic in topics {
            guard let h = rd_kafka_NewTopic_new(topic.name, Int32(topic.partitions), Int32(topic.replicationFactor), &errstr, errstr.count) else {
                throw KafkaError(.client, cString(errstr), context: "creating topic \"\(topic.name)\"")
            }
            handles.append(h)
        }
        let options = rd_kafka_AdminOptions_new(handle, RD_KAFKA_ADMIN_OP_CREATETOPICS)
        defer { rd_kafka_AdminOptions_destroy(options) }
        rd_kafka_AdminOptions_set_request_timeout(options, timeoutMilliseconds, &errstr, errstr.count)
        let queue = rd_kafka_queue_new(handle)
        defer { rd_kafka_queue_destroy(queue) }
        rd_kafka_CreateTopics(handle, &handles, handles.count, options, queue)

        guard let event = rd_kafka_queue_poll(queue, timeoutMilliseconds + 1000) else {
            throw KafkaError(.timeout, "no answer within \(timeoutMilliseconds) ms", context: "creating topics")
        }
        defer { rd_kafka_event_destroy(event) }
        let eventError = rd_kafka_event_error(event)
        if eventError != RD_KAFKA_RESP_ERR_NO_ERROR {
            throw KafkaError(.client, String(cString: rd_kafka_event_error_string(event)),
                             context: "creating topics", code: eventError.rawValue)
        }
        var count = 0
        let results = rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(event), &count)
        for i in 0..<count {
            let result = results![i]
            let err = rd_kafka_topic_result_error(result)
            if err == RD_KAFKA_RESP_ERR_NO_ERROR || (ifNotExists && err == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
                continue
            }
            let message = rd_kafka_topic_result_error_string(result).map { String(cString: $0) } ?? ""
            throw KafkaError(.client, message, context: "creating topic \"\(String(cString: rd_kafka_topic_result_name(result)))\"",
                             code: err.rawValue)
        }
    }

    /// Brokers and topics of the cluster.
    public func metadata(timeoutMilliseconds: Int32 = 10_000) throws(KafkaError) -> ClusterMetadata {
        try readMetadata(handle, timeoutMilliseconds: timeoutMilliseconds)
    }

    public func watermarks(_ partition: TopicPartition, timeoutMilliseconds: Int32) throws(KafkaError) -> (low: Int64, high: Int64) {
        try queryWatermarks(handle, partition, timeoutMilliseconds: timeoutMilliseconds)
    }

    /// Asks for one topic's metadata with auto-creation allowed, which makes a cluster
    /// with `auto.create.topics.enable` (the embedded broker among them, with 4 partitions)
    /// create it. For clusters without the CreateTopics API.
    public func requestTopic(_ name: String, timeoutMilliseconds: Int32 = 10_000) throws(KafkaError) -> ClusterMetadata.Topic? {
        guard let topic = rd_kafka_topic_new(handle, name, nil) else {
            throw KafkaError(.client, code: rd_kafka_last_error(), context: "opening topic \"\(name)\"")
        }
        defer { rd_kafka_topic_destroy(topic) }
        var pointer: UnsafePointer<rd_kafka_metadata>?
        let err = rd_kafka_metadata(handle, 0, topic, &pointer, timeoutMilliseconds)
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR, let md = pointer else {
            throw KafkaError(.client, code: err, context: "reading metadata of \"\(name)\"")
        }
        defer { rd_kafka_metadata_destroy(md) }
        guard md.pointee.topic_cnt > 0 else { return nil }
        let t = md.pointee.topics[0]
        return ClusterMetadata.Topic(
            name: String(cString: t.topic), partitionCount: Int(t.partition_cnt),
            error: t.err == RD_KAFKA_RESP_ERR_NO_ERROR ? nil : String(cString: rd_kafka_err2str(t.err)))
    }
}

func readMetadata(_ handle: OpaquePointer, timeoutMilliseconds: Int32) throws(KafkaError) -> ClusterMetadata {
    var pointer: UnsafePointer<rd_kafka_metadata>?
    let err = rd_kafka_metadata(handle, 1, nil, &pointer, timeoutMilliseconds)
    guard err == RD_KAFKA_RESP_ERR_NO_ERROR, let md = pointer else {
        throw KafkaError(.client, code: err, context: "reading cluster metadata")
    }
    defer { rd_kafka_metadata_destroy(md) }
    let brokers = (0..<Int(md.pointee.broker_cnt)).map { i in
        let b = md.pointee.brokers[i]
        return ClusterMetadata.Broker(id: b.id, host: String(cString: b.host), port: b.port)
    }
    let topics = (0..<Int(md.pointee.topic_cnt)).map { i in
        let t = md.pointee.topics[i]
        return ClusterMetadata.Topic(
            name: String(cString: t.topic), partitionCount: Int(t.partition_cnt),
            error: t.err == RD_KAFKA_RESP_ERR_NO_ERROR ? nil : String(cString: rd_kafka_err2str(t.err)))
    }
    return ClusterMetadata(brokers: brokers, topics: topics)
}
