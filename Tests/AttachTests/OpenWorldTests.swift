import Foundation
import Testing
@testable import Attach
@testable import Kafka
@testable import Models
@testable import RecCore
@testable import Scenario

@Suite("Id fields")
struct IdFieldTests {
    let mapping = try! EventMapping(json: JSONValue.parse("""
        {"user": {"field": "user_id", "kind": "string"}, "item": {"field": "item_id", "kind": "int64"},
         "category": {"field": "category_id", "kind": "int64"}, "event": "behavior", "timestamp": "ts",
         "events": {"pv": "impression", "click": "click", "buy": "purchase"}}
        """))

    func decode(_ text: String) -> Result<MappedEvent, EventDecodeError> {
        Array(text.utf8).withUnsafeBytes { bytes in Result { () throws(EventDecodeError) in try mapping.decode(bytes) } }
    }

    @Test("string and 64-bit ids are read as they come; an integer string id is its text, a digit string an int64")
    func kinds() throws {
        let e = try decode(#"{"user_id": "u_8f3a", "item_id": 123456789012, "category_id": "77", "behavior": "pv", "ts": 5}"#).get()
        #expect(e.user == .string("u_8f3a") && e.item == .int(123_456_789_012) && e.category == .int(77) && e.tick == 5)
        let n = try decode(#"{"user_id": 42, "item_id": "-9", "category_id": 1, "behavior": "buy"}"#).get()
        #expect(n.user == .string("42") && n.item == .int(-9) && n.event == .purchase)
    }

    static let bad: [(String, String)] = [
        (#"{"user_id": "", "item_id": 1, "category_id": 1, "behavior": "pv"}"#, #"field "user_id" (user): an empty id"#),
        (#"{"user_id": true, "item_id": 1, "category_id": 1, "behavior": "pv"}"#, #"field "user_id" (user): expected a string id, got a boolean"#),
        (#"{"user_id": "a", "item_id": "x1", "category_id": 1, "behavior": "pv"}"#, #"field "item_id" (item): 'x1' is not a 64-bit integer id"#),
        (#"{"user_id": "a", "item_id": 1.5, "category_id": 1, "behavior": "pv"}"#, #"field "item_id" (item): expected a 64-bit integer id, got a number"#),
        (#"{"user_id": "a", "item_id": 1, "behavior": "pv"}"#, #"field "category_id" (category): missing"#),
        ("{\"user_id\": \"\(String(repeating: "x", count: 513))\", \"item_id\": 1, \"category_id\": 1, \"behavior\": \"pv\"}",
         #"field "user_id" (user): an id of 513 bytes; ids are at most 512"#),
    ]

    @Test("an id of the wrong kind is an error naming the field", arguments: bad)
    func errors(text: String, reason: String) {
        guard case .failure(let e) = decode(text) else {
            Issue.record("\(text) decoded")
            return
        }
        #expect(e.reason == reason)
    }

    @Test("a scenario's world refuses a mapping of external ids or categories, pointing to --model")
    func worldRefuses() throws {
        let scenario = try Scenario.decode(StreamTrainerTests.scenarioText)
        let options = StreamTrainer.Options(topic: "t", deadLetterTopic: "t.dl", format: .json(mapping), checkpointPath: "/tmp/x", groupID: "g", properties: [:])
        #expect { try StreamTrainer(scenario: scenario, arm: "dare", options: options) } throws: { error in
            "\(error)".contains("--mapping reads string ids") && "\(error)".contains("--model FILE")
        }
    }
}

@Suite("A model without a world", .serialized)
struct OpenWorldTests {
    static let modelText = """
        {"name": "dare", "seed": 5, "slateSize": 5, "candidates": 30,
         "ranking": {"type": "dare", "attentionDim": 8, "representationDim": 8, "topK": 5, "maxHistory": 20, "batchSize": 64},
         "tables": {"users": {"capacity": 400, "minCount": 2, "expireAfterTicks": 4},
                    "items": {"capacity": 300, "expireAfterTicks": 6}, "categories": {"capacity": 20}}}
        """
    static let mappingText = """
        {"user": {"field": "user_id", "kind": "string"}, "item": {"field": "item_id", "kind": "int64"},
         "category": {"field": "category_id", "kind": "int64"}, "event": "behavior", "timestamp": "ts",
         "events": {"pv": "impression", "click": "click", "buy": "purchase"}}
        """

    /// Users and items that come and go: each tick's users and items are drawn from a
    /// window that slides, so old ids stop appearing (and expire) and new ones arrive.
    static func events(ticks: Range<Int>, seed: UInt64 = 1) -> [(key: String, line: String)] {
        var rng = RandomStream(seed: seed, 1)
        var out: [(String, String)] = []
        for t in ticks {
            for _ in 0..<30 {
                let user = "u_\(String(t * 20 + rng.nextInt(below: 120), radix: 16))"
                for _ in 0..<4 {
                    let item = Int64(10_000_000_000) + Int64(t * 15 + rng.nextInt(below: 90))
                    let category = item % 7
                    out.append((user, #"{"user_id": "\#(user)", "item_id": \#(item), "category_id": \#(category), "behavior": "pv", "ts": \#(t)}"#))
                    if rng.nextDouble() < 0.25 {
                        out.append((user, #"{"user_id": "\#(user)", "item_id": \#(item), "category_id": \#(category), "behavior": "click", "ts": \#(t)}"#))
                    }
                }
            }
        }
        return out
    }

    func produce(_ broker: EmbeddedBroker, _ topic: String, _ messages: [(key: String, line: String)]) throws {
        let producer = try KafkaProducer(configuration: broker.clientConfiguration)
        let handle = try producer.topic(topic)
        for m in messages {
            try Array(m.key.utf8).withUnsafeBytes { key in try Array(m.line.utf8).withUnsafeBytes { try producer.send(handle, key: key, value: $0) } }
        }
        try producer.flush(timeoutMilliseconds: 10_000)
    }

    /// A trainer of `model` on JSON events through `mapping` (the suite's own by default),
    /// exiting once the stream has been idle half a second.
    func trainer(_ broker: EmbeddedBroker, topic: String, checkpoint: String, modelTopic: String? = nil, itemsTopic: String? = nil,
                 model: String = Self.modelText, mapping mappingText: String = Self.mappingText) throws -> StreamTrainer {
        let mapping = try EventMapping(json: JSONValue.parse(mappingText))
        var options = StreamTrainer.Options(topic: topic, deadLetterTopic: "\(topic).dead-letter", format: .json(mapping),
                                            checkpointPath: checkpoint, groupID: "g-\((checkpoint as NSString).lastPathComponent)", properties: broker.clientConfiguration.properties)
        options.exitWhenIdleSeconds = 0.5
        options.idleFlushSeconds = 0.3
        options.checkpointEverySeconds = 0.05
        options.modelTopic = modelTopic
        options.itemsTopic = itemsTopic
        return try StreamTrainer(model: ModelSpec.decode(model), options: options)
    }

    func temporary(_ name: String) -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("recstream-open-\(UUID().uuidString)")
        try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir.appendingPathComponent(name).path
    }

    @Test("string user ids and 64-bit item ids train a DARE model: rows grow, filter and expire, categories come from the events")
    func trains() throws {
        let broker = try EmbeddedBroker()
        try broker.createTopic("ev", partitions: 3)
        try broker.createTopic("ev.dead-letter", partitions: 1)
        let stream = Self.events(ticks: 0..<12)
        try produce(broker, "ev", stream)
        let t = try trainer(broker, topic: "ev", checkpoint: temporary("o.ckpt"))
        let counters = try t.run()
        #expect(counters.events == stream.count && counters.deadLetters == 0 && counters.ticks == 12)
        let open = try #require(t.open)
        // Every event looked its user and item up once.
        #expect(open.users.counters.lookups == stream.count && open.items.counters.lookups == stream.count)
        // Users need two occurrences; ids that stopped coming expired and their rows were reused.
        #expect(open.users.counters.filtered > 0 && open.users.counters.expired > 0 && open.items.counters.expired > 0)
        #expect(open.items.rows <= 301 && open.items.counters.created > open.items.rows - 1)
        #expect(open.categories.occupied == 7)
        // The model's tables follow the dictionaries; items carry their events' categories.
        let model = try #require(t.trainer.sequence?.model)
        #expect(model.categoryOf.count >= open.items.rows && t.trainer.sequence!.histories.userCount >= open.users.rows)
        for row in 1..<open.items.rows {
            guard case .int(let id)? = open.items.id(ofRow: row) else { continue }
            #expect(open.categories.id(ofRow: Int(model.categoryOf[row])) == .int(id % 7))
        }
        // Row 0 (users without a row) keeps no history; users with rows do.
        #expect(t.trainer.sequence!.histories.history(of: 0).isEmpty)
        #expect(t.trainer.sequence!.histories.totalEntries > 0)
        #expect(t.trainer.sequence!.evaluations.count == 12)
    }

    @Test("restarted from its checkpoint, a trainer of string ids with expiry ends byte for byte where an uninterrupted one does")
    func resume() throws {
        let broker = try EmbeddedBroker()
        try broker.createTopic("ev", partitions: 3)
        try broker.createTopic("ev.dead-letter", partitions: 1)
        let first = Self.events(ticks: 0..<6), second = Self.events(ticks: 6..<14, seed: 2)
        try produce(broker, "ev", first)
        let interrupted = temporary("i.ckpt"), straight = temporary("s.ckpt")
        let a = try trainer(broker, topic: "ev", checkpoint: interrupted).run()
        #expect(a.events == first.count)
        try produce(broker, "ev", second)
        let resumed = try trainer(broker, topic: "ev", checkpoint: interrupted)
        let b = try resumed.run()
        #expect(b.events == first.count + second.count && b.ticks == 14)
        let whole = try trainer(broker, topic: "ev", checkpoint: straight)
        #expect(try whole.run() == b)
        #expect(resumed.open!.users.counters == whole.open!.users.counters && whole.open!.users.counters.expired > 0)
        let x = try Data(contentsOf: URL(fileURLWithPath: interrupted)), y = try Data(contentsOf: URL(fileURLWithPath: straight))
        #expect(sameBytes(x, y), "checkpoints differ: \(x.count) and \(y.count) bytes")
    }

    static func array(_ v: JSONValue?) -> [JSONValue]? {
        if case .array(let a)? = v { return a }
        return nil
    }

    /// Every message of partition 0 of `topic` (as many as come within 10 s, up to `count`).
    func messages(_ broker: EmbeddedBroker, _ topic: String, count: Int = .max) throws -> [[UInt8]] {
        let consumer = try KafkaConsumer(configuration: broker.clientConfiguration.merging(["group.id": "read-\(topic)", "fetch.wait.max.ms": "1"]))
        let high = try KafkaAdmin(configuration: broker.clientConfiguration).watermarks(TopicPartition(topic, 0), timeoutMilliseconds: 5000).high
        try consumer.assign([(TopicPartition(topic, 0), offset: 0)])
        var out: [[UInt8]] = []
        let deadline = Date().addingTimeInterval(10)
        while out.count < min(count, Int(high)) && Date() < deadline {
            try consumer.consumeBatch(timeoutMilliseconds: 50) { batch in for m in batch { out.append(Array(m.value)) } }
        }
        return out
    }

    @Test("a server follows the trainer's dictionaries and answers requests for string user ids with the stream's item ids")
    func serves() throws {
        let broker = try EmbeddedBroker()
        for (topic, partitions) in [("ev", 3), ("ev.dead-letter", 1), ("m", 1), ("req", 1), ("rec", 1), ("req.dead-letter", 1)] {
            try broker.createTopic(topic, partitions: partitions)
        }
        try produce(broker, "ev", Self.events(ticks: 0..<12))
        let t = try trainer(broker, topic: "ev", checkpoint: temporary("p.ckpt"), modelTopic: "m")
        _ = try t.run()
        let open = try #require(t.open)

        let mapping = try EventMapping(json: JSONValue.parse(Self.mappingText))
        var options = StreamServer.Options(requestsTopic: "req", recommendationsTopic: "rec", deadLetterTopic: "req.dead-letter", modelTopic: "m",
                                           groupID: "serve", properties: broker.clientConfiguration.properties)
        options.format = .json(mapping)
        options.exitWhenIdleSeconds = 0.5
        let server = try StreamServer(model: ModelSpec.decode(Self.modelText), options: options)
        // Every update applies; then the server holds the trainer's state, dictionaries included.
        for (i, m) in try messages(broker, "m").enumerated() { _ = server.take(modelMessage: m, from: "m @\(i)") }
        #expect(server.counters.updatesApplied == t.updatesPublished && server.counters.updateErrors == 0, "\(server.lastUpdateError ?? "")")
        let serverOpen = try #require(server.open)
        for (mine, theirs) in zip(open.dictionaries, serverOpen.dictionaries) {
            for row in 1..<mine.rows { #expect(theirs.id(ofRow: row) == mine.id(ofRow: row), "row \(row)") }
        }
        #expect(server.state.stateChecksum(items: open.items.rows) == t.trainer.stateChecksum(items: open.items.rows))
        #expect(server.state.model!.categoryOf[..<open.items.rows] == t.trainer.sequence!.model.categoryOf[..<open.items.rows])

        // A known user, and one never seen (served from row 0: no history).
        let known = try #require((1..<open.users.rows).lazy.compactMap { open.users.id(ofRow: $0) }.first)
        guard case .string(let knownText) = known else {
            Issue.record("a user id that is not a string: \(known)")
            return
        }
        let requests = [#"{"user_id": "\#(knownText)", "ts": 11, "slateSize": 4}"#, #"{"user_id": "stranger", "ts": 11}"#, #"{"user_id": 17}"#]
        let producer = try KafkaProducer(configuration: broker.clientConfiguration)
        for r in requests { try Array(r.utf8).withUnsafeBytes { try producer.send(producer.topic("req"), key: UnsafeRawBufferPointer(start: nil, count: 0), value: $0) } }
        try producer.flush(timeoutMilliseconds: 10_000)
        let counters = try server.run()
        #expect(counters.served == 3 && counters.deadLetters == 0)
        let slates = try messages(broker, "rec", count: 3).map { try JSONValue.parse(utf8: $0) }
        #expect(slates.count == 3)
        #expect(slates.map { $0["user"] } == [.string(knownText), .string("stranger"), .string("17")])
        #expect(slates.map { Self.array($0["items"])?.count } == [4, 5, 5])
        for slate in slates {
            for item in Self.array(slate["items"]) ?? [] {
                guard case .integer(let id) = item else { Issue.record("item \(item) is not a 64-bit id"); continue }
                #expect(open.items.lookup(.int(id)) != nil, "item \(id) has no row")
            }
        }
    }

    @Test("a forged update cannot grow a server's tables past what the trainer can have handed out, nor freeze its tick")
    func forgedUpdates() throws {
        let mapping = try EventMapping(json: JSONValue.parse(Self.mappingText))
        var options = StreamServer.Options(requestsTopic: "r", recommendationsTopic: "s", deadLetterTopic: "d", modelTopic: "m", groupID: "g", properties: [:])
        options.format = .json(mapping)
        let spec = try ModelSpec.decode(Self.modelText)
        let server = try StreamServer(model: spec, options: options)
        let identity = "model \(spec.fingerprint) seed \(spec.seed), arm dare"
        // Users: string ids, one change giving row 350 (of 400) to "x"; items and categories: none.
        func payload(row: Int32, userKind: UInt8 = 1) -> [UInt8] {
            var w = BinaryWriter()
            w.write(userKind); w.write(UInt32(1)); w.write(UInt32(0)); w.write(row); w.write(UInt8(1)); w.write(UInt16(1)); w.write(UInt8(ascii: "x"))
            for _ in 0..<2 { w.write(UInt8(0)); w.write(UInt32(0)) }
            w.write(UInt32(0))
            return w.bytes
        }
        func take(_ payload: [UInt8], through: Int64 = 0) -> String? {
            let before = server.counters.updateErrors
            let messages = ModelUpdate.seal(payload: payload, header: ModelUpdate.Header(identity: identity, incarnation: 1, sequence: 1, from: -1, through: through))
            _ = server.take(modelMessage: messages[0], from: "test")
            return server.counters.updateErrors > before ? server.lastUpdateError : nil
        }
        #expect(take(payload(row: 350))?.contains("a row change names row 350, past the 2 rows the trainer can have handed out") == true)
        #expect(server.state.histories!.userCount == 1)
        #expect(take(payload(row: 1, userKind: 0))?.contains("the trainer's ids are int64; this dictionary takes string ids") == true)
        #expect(take(payload(row: 1), through: Int64(Int32.max))?.contains("past the last tick a stream can have") == true)
        #expect(server.modelThrough == -1)
    }

    /// `bytes` as version `version`, resealed.
    static func asVersion(_ bytes: [UInt8], _ version: UInt32) -> [UInt8] {
        var w = BinaryWriter()
        for b in bytes[..<4] { w.write(b) }
        w.write(version)
        for b in bytes[8..<(bytes.count - 4)] { w.write(b) }
        return CheckpointFrame.seal(w)
    }

    @Test("a scenario's trainer resumes from version-3 and -4 checkpoints (version 5 without a model's tables); a model's does not")
    func checkpointVersions() throws {
        let scenarioOptions = StreamTrainer.Options(topic: "t", deadLetterTopic: "t.dl", format: .json(EventMapping()), checkpointPath: "/nonexistent",
                                                    groupID: "g", properties: [:])
        let world = try StreamTrainer(scenario: Scenario.decode(StreamTrainerTests.scenarioText), arm: "dare", options: scenarioOptions)
        for version: UInt32 in [3, 4] {
            #expect(throws: Never.self) { _ = try world.decodeCheckpoint(Self.asVersion(world.encodeCheckpoint(), version), partitions: 1) }
        }
        #expect { _ = try world.decodeCheckpoint(Self.asVersion(world.encodeCheckpoint(), 2), partitions: 1) } throws: { "\($0)" == "version 2; this build reads version 5" }
        var modelOptions = scenarioOptions
        modelOptions.format = .json(try EventMapping(json: JSONValue.parse(Self.mappingText)))
        let model = try StreamTrainer(model: ModelSpec.decode(Self.modelText), options: modelOptions)
        #expect(throws: Never.self) { _ = try model.decodeCheckpoint(model.encodeCheckpoint(), partitions: 1) }
        #expect { _ = try model.decodeCheckpoint(Self.asVersion(model.encodeCheckpoint(), 4), partitions: 1) } throws: {
            "\($0)" == "version 4; this build reads version 5 (and 3 and 4, for a scenario's arm)"
        }
    }

    @Test("a model spec is validated like a scenario: every issue, with its path")
    func specErrors() {
        for (text, message) in [
            (#"{"name": "m"}"#, "model: ranking: required"),
            (#"{"name": "m", "ranking": {"type": "poly"}}"#, "model: ranking.type: poly and blend ranking read a world's item tokens"),
            (#"{"name": "m", "ranking": {"type": "ctr"}, "tables": {"users": {"capacity": 0}}}"#, "model: tables.users.capacity: "),
            (#"{"name": "m", "ranking": {"type": "ctr"}, "retrieval": {"type": "sparc"}}"#, "model: retrieval.type: two-tower and sparc retrieval read a world's item content"),
            (#"{"name": "m", "ranking": {"type": "ctr"}, "tables": {"items": {"expire": 3}}}"#, "model: tables.items.expire: unknown key"),
            (#"{"name": "m", "ranking": {"type": "ctr"}, "tables": {"items": {"minCount": 3}}}"#,
             "model: tables.items.minCount: a frequency filter (minCount 3) needs tables.items.expireAfterTicks"),
        ] {
            do {
                _ = try ModelSpec.decode(text)
                Issue.record("\(text) decoded")
            } catch {
                #expect("\(error)".hasPrefix(message), "got: \(error)")
            }
        }
    }
}
