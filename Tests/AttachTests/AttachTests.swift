import Foundation
import Testing
@testable import Attach
@testable import Kafka
@testable import RecCore
@testable import Scenario

@Suite("JSON event mapping")
struct EventMappingTests {
    let mapping = try! EventMapping(json: JSONValue.parse("""
        {"user": "user_id", "item": "item.id", "event": "type", "timestamp": "ts", "tickSeconds": 60,
         "viewSeconds": "watch", "amount": "order.total", "events": {"view": "impression", "click": "click", "buy": "purchase"}}
        """))

    func decode(_ text: String) -> Result<MappedEvent, EventDecodeError> {
        Array(text.utf8).withUnsafeBytes { bytes in Result { () throws(EventDecodeError) in try mapping.decode(bytes) } }
    }

    @Test("fields are read through dotted paths; the timestamp gives the tick")
    func good() throws {
        let e = try decode(#"{"user_id": 12, "item": {"id": 345}, "type": "buy", "ts": 185.5, "order": {"total": 19.99}}"#).get()
        #expect(e.user == 12 && e.item == 345 && e.event == .purchase && e.tick == 3 && e.amount == 19.99 && e.viewSeconds == 0)
        let c = try decode(#"{"user_id": 1, "item": {"id": 2}, "type": "click", "ts": 0, "watch": 42, "extra": [1, 2]}"#).get()
        #expect(c.event == .click && c.viewSeconds == 42 && c.tick == 0)
    }

    @Test("defaults read the field names recstream uses")
    func defaults() throws {
        let e = try Array(#"{"user": 1, "item": 2, "event": "impression", "timestamp": 7}"#.utf8).withUnsafeBytes { try EventMapping().decode($0) }
        #expect(e == MappedEvent(user: 1, item: 2, event: .impression, tick: 7))
    }

    static let bad: [(String, String)] = [
        ("{\"user_id\": 1", "not JSON: line 1, column 14: "),
        ("[1, 2]", "expected a JSON object, got an array"),
        (#"{"item": {"id": 2}, "type": "view", "ts": 1}"#, #"field "user_id" (user): missing"#),
        (#"{"user_id": "u1", "item": {"id": 2}, "type": "view"}"#, #"field "user_id" (user): expected an integer id, got a string"#),
        (#"{"user_id": -3, "item": {"id": 2}, "type": "view"}"#, #"field "user_id" (user): -3 is outside 0...4294967295"#),
        (#"{"user_id": 1, "item": 2, "type": "view"}"#, #"field "item.id" (item): missing"#),
        (#"{"user_id": 1, "item": {"id": 2}, "type": "like"}"#, #"field "type" (event): 'like' is not a mapped event name; mapped: 'buy', 'click', 'view'"#),
        (#"{"user_id": 1, "item": {"id": 2}, "type": "view", "ts": "noon"}"#, #"field "ts" (timestamp): expected a number, got a string"#),
        (#"{"user_id": 1, "item": {"id": 2}, "type": "view", "ts": -120}"#, #"field "ts" (timestamp): -120.0 gives tick -2.0, outside 0..<2147483647"#),
        (#"{"user_id": 1, "item": {"id": 2}, "type": "click", "ts": 180000000000}"#, #"field "ts" (timestamp): 180000000000.0 gives tick 3000000000.0, outside 0..<2147483647"#),
        (#"{"user_id": 1, "item": {"id": 2}, "type": "view", "watch": -5}"#, #"field "watch" (viewSeconds): -5.0 is negative; expected a number of at least 0"#),
        (#"{"user_id": 1, "item": {"id": 2}, "type": "buy", "order": {"total": -0.5}}"#, #"field "order.total" (amount): -0.5 is negative"#),
        (#"{"user_id": 1, "item": {"id": 2}, "type": "buy", "order": {"total": 1e39}}"#, #"field "order.total" (amount): 1e+39 is too large for a 32-bit float"#),
        (#"{"user_id": 1, "item": {"id": 2}, "type": "view", "watch": 1e300}"#, #"field "watch" (viewSeconds): 1e+300 is too large for a 32-bit float"#),
    ]

    @Test("a message that does not map is an error saying which field and why", arguments: bad)
    func errors(text: String, reason: String) {
        guard case .failure(let e) = decode(text) else {
            Issue.record("\(text) decoded")
            return
        }
        #expect(e.reason.hasPrefix(reason), "got: \(e.reason)")
    }

    @Test("binary garbage is not UTF-8 text")
    func garbage() {
        let bytes: [UInt8] = [0xFF, 0xFE, 0x00, 0x41, 0xC3]
        let r = bytes.withUnsafeBytes { b in Result { () throws(EventDecodeError) in try mapping.decode(b) } }
        guard case .failure(let e) = r else { Issue.record("garbage decoded"); return }
        #expect(e.reason == "not UTF-8 text (5 bytes); expected a JSON object")
    }

    @Test("a mapping file with a mistake is an error naming the key")
    func badMappings() {
        for (text, message) in [
            (#"{"usr": "u"}"#, "usr: unknown key; known keys: user, item, category, event, timestamp, tickSeconds, viewSeconds, amount, request, events, itemRecords"),
            (#"{"user": 3}"#, #"user: expected a field name (a string) or {"field": NAME, "kind": "index" | "int64" | "string"}, got an integer"#),
            (#"{"user": {"field": "u", "kind": "uuid"}}"#, "user.kind: expected index, int64 or string, got 'uuid'"),
            (#"{"item": {"kind": "string"}}"#, "item.field: expected a field name (a string), got nothing"),
            (#"{"item": {"field": "i", "type": "string"}}"#, "item.type: unknown key; an id field has field and kind"),
            (#"{"tickSeconds": 0}"#, "tickSeconds: expected a number above 0, got an integer"),
            (#"{"events": {"view": "watch"}}"#, "events.view: expected impression, click or purchase, got 'watch'"),
        ] {
            #expect(throws: MappingError.self) { try EventMapping(json: JSONValue.parse(text)) }
            do { _ = try EventMapping(json: JSONValue.parse(text)); Issue.record("expected an error, none was thrown") } catch { #expect("\(error)" == message) }
        }
    }

    @Test("the mapping's canonical text does not depend on dictionary order")
    func canonical() throws {
        let a = try EventMapping(json: JSONValue.parse(#"{"events": {"a": "click", "b": "impression", "c": "purchase"}}"#))
        let b = try EventMapping(json: JSONValue.parse(#"{"events": {"c": "purchase", "b": "impression", "a": "click"}}"#))
        #expect(a.canonical == b.canonical && a.canonical.hasSuffix("events=a:click,b:impression,c:purchase"))
    }
}

@Suite("Attached trainer", .serialized)
struct StreamTrainerTests {
    static let scenarioText = """
        {"name": "attach", "seed": 3, "ticks": 10,
         "population": {"users": 300, "history": {"median": 40, "max": 200}},
         "catalog": {"items": 400, "topics": 12, "topCategories": 4, "subcategories": 3},
         "arms": [{"name": "dare", "share": 1, "candidates": 20,
                   "ranking": {"type": "dare", "attentionDim": 4, "representationDim": 4, "topK": 5, "maxHistory": 30, "batchSize": 64}}],
         "kafka": {"topicPrefix": "attach"}}
        """

    /// A known stream: `ticks` ticks of slates of 5 views with some clicks, keyed by user.
    static func events(ticks: Range<Int>, seed: UInt64 = 1) -> [(user: UInt32, line: String)] {
        var rng = RandomStream(seed: seed, 1)
        var out: [(UInt32, String)] = []
        for t in ticks {
            for _ in 0..<40 {
                let user = UInt32(rng.nextInt(below: 300))
                for _ in 0..<5 {
                    let item = rng.nextInt(below: 400)
                    out.append((user, #"{"user": \#(user), "item": \#(item), "event": "impression", "timestamp": \#(t)}"#))
                    if rng.nextDouble() < 0.2 {
                        out.append((user, #"{"user": \#(user), "item": \#(item), "event": "click", "timestamp": \#(t), "viewSeconds": 30}"#))
                    }
                }
            }
        }
        return out
    }

    func produce(_ broker: EmbeddedBroker, _ topic: String, _ messages: [(user: UInt32, bytes: [UInt8])]) throws {
        // Room for a message larger than a role's own producer may copy (its default
        // message.max.bytes, 1,000,000), as another program's stream may hold one.
        let producer = try KafkaProducer(configuration: broker.clientConfiguration.merging(["message.max.bytes": "4000000"]))
        let handle = try producer.topic(topic)
        for m in messages {
            try withUnsafeBytes(of: m.user) { key in try m.bytes.withUnsafeBytes { try producer.send(handle, key: key, value: $0) } }
        }
        try producer.flush(timeoutMilliseconds: 10_000)
    }

    func trainer(_ broker: EmbeddedBroker, topic: String, checkpoint: String, arm: String = "dare") throws -> StreamTrainer {
        var options = StreamTrainer.Options(topic: topic, deadLetterTopic: "\(topic).dead-letter", format: .json(EventMapping()),
                                            checkpointPath: checkpoint, groupID: "g-\((checkpoint as NSString).lastPathComponent)", properties: broker.clientConfiguration.properties)
        options.exitWhenIdleSeconds = 0.5
        options.idleFlushSeconds = 0.3
        options.checkpointEverySeconds = 0.05
        options.partitionCheckSeconds = 0.2
        return try StreamTrainer(scenario: Scenario.decode(Self.scenarioText), arm: arm, options: options)
    }

    func temporary(_ name: String) -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("recstream-attach-\(UUID().uuidString)")
        try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir.appendingPathComponent(name).path
    }

    /// The first `count` messages of a one-partition dead-letter topic (or as many as come
    /// within 10 s): each payload and its `recstream-error` header.
    func readDeadLetters(_ broker: EmbeddedBroker, _ topic: String, count: Int) throws -> [(value: [UInt8], reason: String)] {
        let consumer = try KafkaConsumer(configuration: broker.clientConfiguration.merging(["group.id": "dl", "fetch.wait.max.ms": "1"]))
        try consumer.assign([(TopicPartition(topic, 0), offset: 0)])
        var letters: [(value: [UInt8], reason: String)] = []
        let deadline = Date().addingTimeInterval(10)
        while letters.count < count && Date() < deadline {
            try consumer.consumeBatch(timeoutMilliseconds: 50) { batch in
                for m in batch { letters.append((Array(m.value), m.header("recstream-error") ?? "(no header)")) }
            }
        }
        return letters
    }

    @Test("malformed JSON, binary garbage and strangers go to the dead-letter topic with the reason; the rest is applied")
    func deadLetters() throws {
        let broker = try EmbeddedBroker()
        try broker.createTopic("ev", partitions: 3)
        try broker.createTopic("ev.dead-letter", partitions: 1)
        var messages = Self.events(ticks: 0..<4).map { ($0.user, Array($0.line.utf8)) }
        let bad: [(UInt32, [UInt8], String)] = [
            (7, Array(#"{"user": 7, "item": 3, "event": "impression""#.utf8), "not JSON: "),
            (8, [0xFF, 0x00, 0x13, 0x37], "not UTF-8 text (4 bytes); expected a JSON object"),
            (9, Array(#"{"user": 9, "item": 3, "event": "like", "timestamp": 1}"#.utf8), #"field "event" (event): 'like' is not a mapped event name"#),
            (10, Array(#"{"user": 5000, "item": 3, "event": "click", "timestamp": 1}"#.utf8), "user 5000 is not in the scenario's world (300 users)"),
        ]
        messages.insert(contentsOf: bad.map { ($0.0, $0.1) }, at: 100)
        // A poison pill: 1.5 MB of garbage, too large to copy to the dead-letter topic.
        let pill = [UInt8](repeating: 0x5A, count: 1_500_000)
        messages.insert((11, pill), at: 200)
        try produce(broker, "ev", messages)
        let path = temporary("a.ckpt")
        let t = try trainer(broker, topic: "ev", checkpoint: path)
        // No model topic (--no-publish): still, every checkpoint finds the dead letters it
        // counts already on the broker, so none is lost to a crash right after it.
        let admin = try KafkaAdmin(configuration: broker.clientConfiguration)
        var checkpoints = 0, behind: [String] = []
        t.onProgress = { p in
            guard p.checkpointed else { return }
            checkpoints += 1
            let delivered = (try? admin.watermarks(TopicPartition("ev.dead-letter", 0), timeoutMilliseconds: 5000).high) ?? -1
            if delivered < Int64(p.counters.deadLetters) { behind.append("\(delivered) delivered, \(p.counters.deadLetters) counted") }
        }
        let counters = try t.run()
        #expect(checkpoints > 0 && behind.isEmpty, "checkpoints before their dead letters were delivered: \(behind)")
        #expect(counters.events == messages.count - 5 && counters.deadLetters == 5 && counters.unknown == 1 && counters.ticks == 4)
        #expect(counters.impressions + counters.clicks == counters.events && counters.late == 0)
        #expect(t.appliedThrough == 3)
        #expect(t.trainer.sequence!.evaluations.count == 4)

        let letters = try readDeadLetters(broker, "ev.dead-letter", count: 5)
        #expect(letters.count == 5)
        // Each header names the message's partition and offset, then the reason.
        for (value, reason) in bad.map({ ($0.1, $0.2) }) {
            #expect(letters.contains { $0.0 == value && $0.1.hasPrefix("ev [") && $0.1.contains(": " + reason) }, "no dead letter with \(reason)")
        }
        // The pill comes as a reference: where it is, how big, why; no payload.
        let reference = try #require(letters.first { $0.1.contains("(payload of 1500000 bytes omitted: too large to copy)") })
        let json = try JSONValue.parse(String(decoding: reference.0, as: UTF8.self))
        #expect(json.value(atPath: "deadLetter") == .string("reference") && json.value(atPath: "topic") == .string("ev"))
        #expect(json.value(atPath: "valueBytes") == .integer(1_500_000) && json.value(atPath: "keyBytes") == .integer(4))
        guard case .string(let why)? = json.value(atPath: "reason") else { Issue.record("no reason: \(json)"); return }
        #expect(why.hasPrefix("not JSON: "))
        guard case .integer(let p)? = json.value(atPath: "partition"), case .integer(let o)? = json.value(atPath: "offset") else {
            Issue.record("the reference names no partition and offset: \(json)"); return
        }
        #expect(reference.1.hasPrefix("ev [\(p)] @\(o): "))
    }

    @Test("an event far past the trainer's event time is a dead letter, and the partition does not stall behind it")
    func eventLead() throws {
        let broker = try EmbeddedBroker()
        try broker.createTopic("ev", partitions: 1)
        try broker.createTopic("ev.dead-letter", partitions: 1)
        var messages = Self.events(ticks: 0..<6).map { ($0.user, Array($0.line.utf8)) }
        // More than a day past its partition's event time when it arrives (tick 1, the
        // highest consumed on it): accepted, it would hold every later event of the
        // partition at its tick.
        let far = #"{"user": 3, "item": 5, "event": "click", "timestamp": 90000}"#
        let at = messages.firstIndex { String(decoding: $0.1, as: UTF8.self).contains(#""timestamp": 2"#) }!
        messages.insert((3, Array(far.utf8)), at: at)
        try produce(broker, "ev", messages)
        let t = try trainer(broker, topic: "ev", checkpoint: temporary("lead.ckpt"))
        #expect(t.eventLead == 86_400)
        let counters = try t.run()
        #expect(counters.deadLetters == 1 && counters.events == messages.count - 1)
        #expect(counters.ticks == 6 && counters.late == 0 && t.appliedThrough == 5)
        let said = try readDeadLetters(broker, "ev.dead-letter", count: 1).first?.reason ?? "no dead letter"
        #expect(said.hasPrefix("ev [0] @") && said.contains(": tick 90000 is ")
                && said.hasSuffix("ticks past its partition's event time (tick 1), more than --max-event-lead 86400"), "\(said)")
    }

    @Test("partitions added to the topic are consumed from their beginning without a restart; nothing on them is lost")
    func partitionsAdded() throws {
        let broker = try EmbeddedBroker()
        try broker.createTopic("ev", partitions: 2)
        try broker.createTopic("ev.dead-letter", partitions: 1)
        let messages = Self.events(ticks: 0..<4).map { ($0.user, Array($0.line.utf8)) }
        try produce(broker, "ev", messages)
        let t = try trainer(broker, topic: "ev", checkpoint: temporary("grow.ckpt"))
        // The topic "had" one partition when the trainer started, and two from its next look
        // (the embedded broker cannot add partitions to a topic, so the count is stood in for).
        var looks = 0
        t.partitionCountSeam = {
            looks += 1
            return looks == 1 ? 1 : 2
        }
        var warnings: [String] = []
        t.onWarning = { warnings.append($0) }
        let counters = try t.run()
        #expect(looks >= 2)
        #expect(warnings.contains("ev grew from 1 to 2 partitions: consuming the new ones from their beginning"))
        #expect(counters.events == messages.count && counters.deadLetters == 0)
        #expect(t.partitions.count == 2 && t.partitions.allSatisfy { $0.applied > 0 })
    }

    @Test("restarted from its checkpoint, a trainer applies nothing twice and ends where an uninterrupted one ends")
    func resume() throws {
        let broker = try EmbeddedBroker()
        try broker.createTopic("ev", partitions: 3)
        try broker.createTopic("ev.dead-letter", partitions: 1)
        let first = Self.events(ticks: 0..<5), second = Self.events(ticks: 5..<9, seed: 2)
        try produce(broker, "ev", first.map { ($0.user, Array($0.line.utf8)) })
        let interrupted = temporary("i.ckpt"), straight = temporary("s.ckpt")
        let a = try trainer(broker, topic: "ev", checkpoint: interrupted).run()
        #expect(a.events == first.count && a.ticks == 5)
        // Nothing new: a restart applies nothing.
        let again = try trainer(broker, topic: "ev", checkpoint: interrupted)
        #expect(try again.run() == a)
        try produce(broker, "ev", second.map { ($0.user, Array($0.line.utf8)) })
        let resumed = try trainer(broker, topic: "ev", checkpoint: interrupted).run()
        #expect(resumed.events == first.count + second.count && resumed.ticks == 9)
        let whole = try trainer(broker, topic: "ev", checkpoint: straight).run()
        #expect(whole == resumed)
        let x = try Data(contentsOf: URL(fileURLWithPath: interrupted)), y = try Data(contentsOf: URL(fileURLWithPath: straight))
        #expect(sameBytes(x, y), "checkpoints differ: \(x.count) and \(y.count) bytes")
    }

    @Test("a broker that goes down and comes back, injected fetch errors and added delay, mid-stream: nothing lost, nothing changed",
          arguments: ["down", "errors", "slow"])
    func faults(fault: String) throws {
        let ticks = (0..<8).map { Self.events(ticks: $0..<($0 + 1), seed: UInt64($0 + 1)).map { ($0.user, Array($0.line.utf8)) } }
        let total = ticks.reduce(0) { $0 + $1.count }
        func train(_ inject: ((EmbeddedBroker) -> Void)?) throws -> (StreamTrainer.Counters, Data) {
            let broker = try EmbeddedBroker()
            try broker.createTopic("ev", partitions: 3)
            try broker.createTopic("ev.dead-letter", partitions: 1)
            // The stream flows while the trainer runs: a tick every 150 ms, the second half
            // once the trainer has applied a tick (and the fault is in), however slow the
            // machine: so the fault always meets the stream mid-way.
            let feeder = Feeder(broker: broker, ticks: ticks, pauseAfter: ticks.count / 2)
            let thread = Thread { feeder.run() }
            thread.start()
            defer { feeder.done.wait() }
            let path = temporary("f.ckpt")
            var options = StreamTrainer.Options(topic: "ev", deadLetterTopic: "ev.dead-letter", format: .json(EventMapping()),
                                                checkpointPath: path, groupID: "g-\(path)", properties: broker.clientConfiguration.properties)
            options.exitWhenIdleSeconds = 6
            options.idleFlushSeconds = 3.5  // longer than the outage: a broker away is not a partition at its end
            options.checkpointEverySeconds = 0.05
            // A new group on a new broker: skip the look-up of its committed offsets (which
            // waits for the group coordinator), so the trainer meets the stream early.
            options.fresh = true
            let t = try StreamTrainer(scenario: Scenario.decode(Self.scenarioText), arm: "dare", options: options)
            var injectedAfter: Int?
            t.onProgress = { p in
                guard injectedAfter == nil, p.appliedThrough >= 0 else { return }
                injectedAfter = p.counters.events
                inject?(broker)
                feeder.resume.signal()
            }
            let counters = try t.run()
            if inject != nil {
                // The fault met the stream mid-way.
                #expect((injectedAfter ?? total) < total / 2, "the fault came after \(injectedAfter.map(String.init) ?? "none") of \(total) events")
                if fault == "errors" { #expect(try broker.pendingErrors(for: .fetch, broker: 1) == 0, "not every injected error fired") }
            }
            return (counters, try Data(contentsOf: URL(fileURLWithPath: path)))
        }
        let (clean, cleanCheckpoint) = try train(nil)
        let (faulty, faultyCheckpoint) = try train { broker in
            switch fault {
            case "down":
                try? broker.setDown(broker: 1)
                DispatchQueue.global().asyncAfter(deadline: .now() + 1.5) { try? broker.setUp(broker: 1) }
            case "errors":
                try? broker.injectErrors([KafkaErrorCode.notLeaderForPartition, KafkaErrorCode.notLeaderForPartition, KafkaErrorCode.requestTimedOut],
                                         for: .fetch, broker: 1)
                #expect((try? broker.pendingErrors(for: .fetch, broker: 1)) == 3)
            default:
                try? broker.setRoundTripTime(100, broker: 1)
            }
        }
        #expect(clean.events == total && clean.ticks == 8)
        #expect(faulty == clean)
        #expect(sameBytes(faultyCheckpoint, cleanCheckpoint), "\(fault): the checkpoint differs from a run without faults")
    }

    @Test("a checkpoint that is corrupt, truncated or another trainer's is a clear error")
    func badCheckpoints() throws {
        let broker = try EmbeddedBroker()
        try broker.createTopic("ev", partitions: 2)
        try broker.createTopic("ev.dead-letter", partitions: 1)
        try produce(broker, "ev", Self.events(ticks: 0..<2).map { ($0.user, Array($0.line.utf8)) })
        let path = temporary("c.ckpt")
        _ = try trainer(broker, topic: "ev", checkpoint: path).run()
        let good = try Data(contentsOf: URL(fileURLWithPath: path))

        // The previous generation is whole: a bad newest one falls back to it, with a warning.
        #expect(FileManager.default.fileExists(atPath: path + ".prev"))
        var flippedNewest = good
        flippedNewest[flippedNewest.count / 2] ^= 0x40
        try flippedNewest.write(to: URL(fileURLWithPath: path))
        var warnings: [String] = []
        let fallback = try trainer(broker, topic: "ev", checkpoint: path)
        fallback.onWarning = { warnings.append($0) }
        _ = try fallback.run()
        #expect(warnings == ["resumed from the previous checkpoint generation: \(path): corrupt or truncated (checksum does not match)"])
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == good)

        // With no previous generation, each is an error naming the file.
        func message(_ bytes: Data, topic: String = "ev") throws -> String {
            try bytes.write(to: URL(fileURLWithPath: path))
            try? FileManager.default.removeItem(atPath: path + ".prev")
            do {
                _ = try trainer(broker, topic: topic, checkpoint: path).run()
                return "(resumed)"
            } catch {
                return "\(error)"
            }
        }
        var flipped = good
        flipped[flipped.count / 2] ^= 0x40
        #expect(try message(flipped) == "checkpoint \(path): corrupt or truncated (checksum does not match)")
        #expect(try message(good.prefix(good.count - 100)) == "checkpoint \(path): corrupt or truncated (checksum does not match)")
        #expect(try message(Data("hello".utf8)) == "checkpoint \(path): not a recstream train checkpoint (it does not start with \"RSAT\")")
        try broker.createTopic("other", partitions: 2)
        try broker.createTopic("other.dead-letter", partitions: 1)
        #expect(try message(good, topic: "other").contains("it belongs to another trainer"))
    }

    @Test("offsets gone from the broker stop the trainer, naming them; --on-gap skip goes on past them, counted once")
    func retentionGap() throws {
        let broker = try EmbeddedBroker()
        try broker.createTopic("ev", partitions: 1)
        try broker.createTopic("ev.dead-letter", partitions: 1)
        let first = Self.events(ticks: 0..<2)
        try produce(broker, "ev", first.map { ($0.user, Array($0.line.utf8)) })
        let path = temporary("r.ckpt")
        let a = try trainer(broker, topic: "ev", checkpoint: path).run()
        #expect(a.events == first.count)
        // The embedded broker keeps about 5 MiB a partition: 6 MiB more pushes the applied
        // events, and the first of the new ones, out of the partition.
        let pad = String(repeating: "x", count: 1000)
        let later = (0..<6000).map { i in (UInt32(i % 300), Array(#"{"user": \#(i % 300), "item": \#(i % 400), "event": "impression", "timestamp": 2, "pad": "\#(pad)"}"#.utf8)) }
        try produce(broker, "ev", later)
        let consumer = try KafkaConsumer(configuration: broker.clientConfiguration.merging(["group.id": "w"]))
        let w = try consumer.watermarks(TopicPartition("ev", 0), timeoutMilliseconds: 5000)
        let needed = Int64(first.count)
        #expect(w.low > needed, "retention did not reach the applied offsets: \(w)")

        do {
            _ = try trainer(broker, topic: "ev", checkpoint: path).run()
            Issue.record("expected an error, none was thrown")
        } catch {
            #expect("\(error)" == "ev [0]: offsets \(needed)..<\(w.low) (\(w.low - needed) events) are gone from the broker before this trainer applied them (retention deleted them, or the topic was truncated); the partition now holds \(w.low)..<\(w.high); the trainer stops rather than skip them (to go on without them, counted: --on-gap skip)")
        }
        // The failed run changed nothing.
        var skipping = try trainer(broker, topic: "ev", checkpoint: path)
        #expect(skipping.counters == StreamTrainer.Counters())
        var options = skipping.options
        options.onGap = .skip
        skipping = try StreamTrainer(scenario: Scenario.decode(Self.scenarioText), arm: "dare", options: options)
        var warnings: [String] = []
        skipping.onWarning = { warnings.append($0) }
        let b = try skipping.run()
        #expect(b.skipped == Int(w.low - needed))
        #expect(b.events == first.count + Int(w.high - w.low) && b.deadLetters == 0)
        #expect(warnings.count == 1 && warnings[0].hasPrefix("ev [0]: offsets \(needed)..<\(w.low) ") && warnings[0].hasSuffix("skipping them, going on from offset \(w.low)"))
        // The skip is in the checkpoint: a restart neither skips nor counts it again.
        let again = try trainer(broker, topic: "ev", checkpoint: path)
        again.onWarning = { warnings.append($0) }
        #expect(try again.run() == b)
        #expect(warnings.count == 1)
    }

    @Test("with no checkpoint, a group that has committed offsets is refused unless fresh")
    func lostCheckpoint() throws {
        let broker = try EmbeddedBroker()
        try broker.createTopic("ev", partitions: 2)
        try broker.createTopic("ev.dead-letter", partitions: 1)
        try produce(broker, "ev", Self.events(ticks: 0..<2).map { ($0.user, Array($0.line.utf8)) })
        // The same file name in another directory: the same consumer group (see `trainer`).
        let original = temporary("l.ckpt"), lost = temporary("l.ckpt")
        let a = try trainer(broker, topic: "ev", checkpoint: original).run()
        do {
            _ = try trainer(broker, topic: "ev", checkpoint: lost).run()
            Issue.record("expected an error, none was thrown")
        } catch {
            #expect("\(error)".hasPrefix("no checkpoint at \(lost), but consumer group g-l.ckpt has committed offsets (ev [0] at "))
            #expect("\(error)".hasSuffix("a trainer ran before and its checkpoint is gone. Restore the checkpoint, or start over from the topic's beginning with --fresh"))
        }
        #expect(!FileManager.default.fileExists(atPath: lost))
        var options = try trainer(broker, topic: "ev", checkpoint: lost).options
        options.fresh = true
        let fresh = try StreamTrainer(scenario: Scenario.decode(Self.scenarioText), arm: "dare", options: options)
        #expect(try fresh.run() == a)
        #expect(try Data(contentsOf: URL(fileURLWithPath: lost)) == Data(contentsOf: URL(fileURLWithPath: original)))
    }

    @Test("wire records: only the trained arm's are applied; another arm's are skipped and counted")
    func wireArms() throws {
        let broker = try EmbeddedBroker()
        try broker.createTopic("fb", partitions: 2)
        try broker.createTopic("fb.dead-letter", partitions: 1)
        var rng = RandomStream(seed: 9, 1)
        var records: [(UInt32, [UInt8])] = []
        var mine = 0
        for n in 0..<600 {
            let arm = UInt16(n % 3 == 0 ? 1 : 0), user = UInt32(rng.nextInt(below: 300)), tick = UInt32(n / 100)
            let f = Feedback(RecordHeader(arm: arm, tick: tick, user: user, sequence: UInt32(n)), event: .impression, position: 0,
                             item: UInt32(rng.nextInt(below: 400)), shownTick: tick)
            var bytes = [UInt8](repeating: 0, count: Wire.feedbackSize)
            _ = bytes.withUnsafeMutableBytes { Wire.encode(f, into: $0) }
            records.append((user, bytes))
            if arm == 0 { mine += 1 }
        }
        try produce(broker, "fb", records)
        var options = StreamTrainer.Options(topic: "fb", deadLetterTopic: "fb.dead-letter", format: .wire, checkpointPath: temporary("w.ckpt"),
                                            groupID: "g", properties: broker.clientConfiguration.properties)
        options.exitWhenIdleSeconds = 0.5
        options.idleFlushSeconds = 0.3
        let two = Self.scenarioText.replacingOccurrences(of: #""share": 1, "candidates": 20,"#, with: #""share": 0.5, "candidates": 20,"#)
            .replacingOccurrences(of: #""batchSize": 64}}],"#, with: #""batchSize": 64}}, {"name": "other", "share": 0.5}],"#)
        let counters = try StreamTrainer(scenario: Scenario.decode(two), arm: "dare", options: options).run()
        #expect(counters.events == mine && counters.otherArms == 600 - mine && counters.deadLetters == 0 && counters.ticks == 6)
    }

    @Test("an arm the trainer cannot attach is refused with a reason")
    func refused() throws {
        let broker = try EmbeddedBroker()
        #expect(throws: AttachError.self) { try trainer(broker, topic: "ev", checkpoint: temporary("x"), arm: "nope") }
        do { _ = try trainer(broker, topic: "ev", checkpoint: temporary("x"), arm: "nope"); Issue.record("expected an error, none was thrown") } catch {
            #expect("\(error)" == "--arm nope: the scenario has no such arm; its arms: dare")
        }
    }
}

/// Produces one tick of events every 150 ms on a thread of its own.
final class Feeder: @unchecked Sendable {
    let broker: EmbeddedBroker
    let ticks: [[(UInt32, [UInt8])]]
    let done = DispatchSemaphore(value: 0)
    /// With `pauseAfter`, the feeder waits for this (at most 30 s) before that tick.
    let resume = DispatchSemaphore(value: 0)
    let pauseAfter: Int?
    init(broker: EmbeddedBroker, ticks: [[(UInt32, [UInt8])]], pauseAfter: Int? = nil) {
        self.broker = broker
        self.ticks = ticks
        self.pauseAfter = pauseAfter
    }

    func run() {
        defer { done.signal() }
        guard let producer = try? KafkaProducer(configuration: broker.clientConfiguration), let handle = try? producer.topic("ev") else { return }
        for (i, tick) in ticks.enumerated() {
            if i == pauseAfter { _ = resume.wait(timeout: .now() + 30) }
            for (user, bytes) in tick {
                try? withUnsafeBytes(of: user) { key in try bytes.withUnsafeBytes { try producer.send(handle, key: key, value: $0) } }
            }
            try? producer.poll()
            Thread.sleep(forTimeInterval: 0.15)
        }
        try? producer.flush(timeoutMilliseconds: 30_000)
    }
}

/// Whether two checkpoints are byte for byte the same, as a Bool: `#expect(a == b)` on
/// megabytes of Data renders a diff of them when it fails, which takes many minutes.
func sameBytes(_ a: Data, _ b: Data) -> Bool { a == b }
