import Foundation
import Testing
@testable import Attach
@testable import Kafka
@testable import Models
@testable import RecCore
@testable import Scenario

@Suite("Item records")
struct ItemRecordMappingTests {
    static let mappingText = """
        {"user": {"field": "user_id", "kind": "string"}, "item": {"field": "item_id", "kind": "int64"},
         "event": "behavior", "timestamp": "ts", "events": {"pv": "impression", "click": "click", "buy": "purchase"},
         "itemRecords": {"category": {"field": "category_id", "kind": "int64"}, "timestamp": "ts"}}
        """

    func record(_ text: String, key: String = "", mapping: EventMapping) -> Result<MappedItemRecord, EventDecodeError> {
        Array(text.utf8).withUnsafeBytes { bytes in
            Array(key.utf8).withUnsafeBytes { key in Result { () throws(EventDecodeError) in try mapping.decodeItemRecord(bytes, key: key) } }
        }
    }

    @Test("records read through itemRecords, whose fields default to the events' own; an empty record is a tombstone keyed by the item's id")
    func decoding() throws {
        let mapping = try EventMapping(json: JSONValue.parse(Self.mappingText))
        #expect(mapping.records == ItemRecordMapping(item: IdField("item_id", kind: .int64), category: IdField("category_id", kind: .int64), timestamp: "ts"))
        #expect(mapping.categoryKind == .int64)
        #expect(try record(#"{"item_id": "123456789012", "category_id": 7, "ts": 30}"#, mapping: mapping).get()
            == MappedItemRecord(item: .int(123_456_789_012), category: .int(7), tick: 30))
        #expect(try record("", key: "-5", mapping: mapping).get() == MappedItemRecord(item: .int(-5), category: nil, tick: nil))
        for (text, key, reason) in [
            (#"{"item_id": 1, "ts": 3}"#, "", #"field "category_id" (category): missing"#),
            (#"{"item_id": "x", "category_id": 1}"#, "", #"field "item_id" (item): 'x' is not a 64-bit integer id"#),
            ("", "", "an empty record (a tombstone) whose key is empty: a tombstone's key is the id of the item it deletes"),
            ("", "i9", #"field "key" (tombstone key): 'i9' is not a 64-bit integer id"#),
            ("[1]", "", "expected a JSON object, got an array"),
        ] {
            guard case .failure(let e) = record(text, key: key, mapping: mapping) else {
                Issue.record("\(text) decoded")
                continue
            }
            #expect(e.reason == reason)
        }
        // The events' category field serves the records too, unless itemRecords says otherwise.
        let events = try EventMapping(json: JSONValue.parse(#"{"item": {"field": "sku", "kind": "string"}, "category": "cat", "timestamp": null}"#))
        #expect(events.records == ItemRecordMapping(item: IdField("sku", kind: .string), category: IdField("cat"), timestamp: nil))
        #expect(try record(#"{"sku": 12, "cat": 3}"#, mapping: events).get() == MappedItemRecord(item: .string("12"), category: .int(3), tick: nil))
        #expect(try record("", key: "sku-1", mapping: events).get().item == .string("sku-1"))
        // Declared, the records' own field names and timestamp.
        let own = try EventMapping(json: JSONValue.parse(#"{"item": {"field": "sku", "kind": "string"}, "itemRecords": {"item": "id", "category": {"field": "c", "kind": "string"}, "timestamp": "updated"}}"#))
        #expect(own.records == ItemRecordMapping(item: IdField("id", kind: .string), category: IdField("c", kind: .string), timestamp: "updated"))
        #expect(own.categoryKind == .string)
        #expect(try EventMapping().records == nil)
    }

    @Test("an itemRecords entry that cannot be used is an error naming its key", arguments: [
        (#"{"itemRecords": {"item": "id"}}"#, "itemRecords.category: required (the events name no category field)"),
        (#"{"item": {"field": "i", "kind": "int64"}, "itemRecords": {"item": {"field": "i", "kind": "string"}, "category": "c"}}"#,
         "itemRecords.item.kind: string, but the events' item ids are int64"),
        (#"{"category": {"field": "c", "kind": "string"}, "itemRecords": {"category": {"field": "c", "kind": "int64"}}}"#,
         "itemRecords.category.kind: int64, but the events' category ids are string"),
        (#"{"itemRecords": {"category": "c", "price": "p"}}"#, "itemRecords.price: unknown key"),
        (#"{"itemRecords": {"category": "c", "timestamp": 3}}"#, "itemRecords.timestamp: expected a field name (a string) or null, got an integer"),
        (#"{"itemRecords": []}"#, "itemRecords: expected an object"),
    ])
    func mappingErrors(text: String, message: String) {
        #expect { try EventMapping(json: JSONValue.parse(text)) } throws: { "\($0)".hasPrefix(message) }
    }

    @Test("--items-topic is refused where it cannot work: a scenario's trainer, the events topic, a mapping without categories")
    func refusals() throws {
        var options = StreamTrainer.Options(topic: "ev", deadLetterTopic: "dl", format: .json(EventMapping()), checkpointPath: "/nonexistent", groupID: "g", properties: [:])
        options.itemsTopic = "items"
        #expect { try StreamTrainer(scenario: Scenario.decode(StreamTrainerTests.scenarioText), arm: "dare", options: options) } throws: {
            "\($0)".hasPrefix("--items-topic reads item records for a model without a world")
        }
        let model = try ModelSpec.decode(OpenWorldTests.modelText)
        #expect { try StreamTrainer(model: model, options: options) } throws: { "\($0)".hasPrefix("--items-topic: the mapping names no category field") }
        options.format = .json(try EventMapping(json: JSONValue.parse(Self.mappingText)))
        options.itemsTopic = "ev"
        #expect { try StreamTrainer(model: model, options: options) } throws: { "\($0)".hasPrefix("--items-topic ev is the events topic") }
    }
}

@Suite("The latest record of each item")
struct ItemRecordsMapTests {
    @Test("records of new items beyond the capacity are refused and counted; a tombstone frees a place; a later record replaces an earlier")
    func capacity() throws {
        let records = ItemRecords(itemKind: .string, capacity: 2)
        #expect(records.take(item: .string("a"), category: .int(1), tick: 0) && records.take(item: .string("b"), category: .int(2), tick: 0))
        #expect(!records.take(item: .string("c"), category: .int(3), tick: 0))
        #expect(records.take(item: .string("a"), category: .int(4), tick: 1))
        #expect(records.take(item: .string("b"), category: nil, tick: 2) && records.take(item: .string("zz"), category: nil, tick: 2))
        #expect(records.take(item: .string("c"), category: .int(3), tick: 3))
        #expect(records.category(of: .string("a")) == .int(4) && records.category(of: .string("b")) == nil && records.category(of: .string("c")) == .int(3))
        #expect(records.counters == ItemRecords.Counters(taken: 4, deleted: 1, refused: 1) && records.count == 2)

        // Written and read back, the same records; a forged flag is an error naming the row.
        var w = BinaryWriter()
        records.write(to: &w)
        func read(_ bytes: [UInt8], capacity: Int = 2) throws -> (ItemRecords, remaining: Int) {
            try bytes.withUnsafeBytes { raw in
                var r = BinaryReader(raw)
                let records = try ItemRecords.read(from: &r, itemKind: .string, categoryKind: .int64, capacity: capacity)
                return (records, r.remaining)
            }
        }
        let (back, remaining) = try read(w.bytes)
        #expect(remaining == 0 && back.counters == records.counters)
        for id in ["a", "b", "c"] { #expect(back.category(of: .string(id)) == records.category(of: .string(id))) }
        var forged = w.bytes
        forged[forged.count - 9] = 0  // the last row's flag (then its 8-byte category)
        #expect { _ = try read(forged) } throws: { "\($0)".contains("flag 0, but the row is held") }
        #expect { _ = try read(w.bytes, capacity: 1) } throws: { "\($0)".contains("outside 1...2") }
    }
}

@Suite("A model without a world, with an items topic", .serialized)
struct ItemsTopicTests {
    /// The model of `OpenWorldTests`, holding the records of 280 items.
    static let modelText = OpenWorldTests.modelText.replacingOccurrences(
        of: #""categories": {"capacity": 20}}}"#, with: #""categories": {"capacity": 20}, "itemRecords": {"capacity": 280}}}"#)
    /// The items the events name: 10,000,000,000 + 0..<270 (`OpenWorldTests.events`).
    static let itemIDs = (0..<270).map { Int64(10_000_000_000) + Int64($0) }

    /// Item records: every item's category at tick 0 (id % 5), a change for every third at
    /// tick 6 (10 + id % 5), tombstones for every tenth after them (no timestamp: they join
    /// their partition's current tick, 6 or later), a change for every seventh at tick 11
    /// (20 + id % 5: most of those items see no event after it; a deleted one comes back),
    /// and two records that cannot be read.
    static func records(_ ticks: ClosedRange<Int>) -> [(key: String, line: String)] {
        var out: [(String, String)] = []
        if ticks.contains(0) {
            for id in itemIDs { out.append(("\(id)", #"{"item_id": \#(id), "category_id": \#(id % 5), "ts": 0}"#)) }
            out.append(("x", #"{"item_id": 10000000001, "ts": 0}"#))
        }
        if ticks.contains(6) {
            for id in itemIDs where id % 3 == 0 { out.append(("\(id)", #"{"item_id": \#(id), "category_id": \#(10 + id % 5), "ts": 6}"#)) }
            out.append(("", ""))
        }
        if ticks.contains(8) {
            for id in itemIDs where id % 10 == 0 { out.append(("\(id)", "")) }
        }
        if ticks.contains(11) {
            for id in itemIDs where id % 7 == 0 { out.append(("\(id)", #"{"item_id": \#(id), "category_id": \#(20 + id % 5), "ts": 11}"#)) }
        }
        return out
    }

    /// The category an item's latest record names after `records(0...11)`, nil when deleted.
    static func latestCategory(_ id: Int64) -> Int64? {
        id % 7 == 0 ? 20 + id % 5 : id % 10 == 0 ? nil : id % 3 == 0 ? 10 + id % 5 : id % 5
    }

    let world = OpenWorldTests()

    func trainer(_ broker: EmbeddedBroker, checkpoint: String, modelTopic: String? = nil) throws -> StreamTrainer {
        try world.trainer(broker, topic: "ev", checkpoint: checkpoint, modelTopic: modelTopic, itemsTopic: "items",
                          model: Self.modelText, mapping: ItemRecordMappingTests.mappingText)
    }

    func broker(extra: [(String, Int)] = []) throws -> EmbeddedBroker {
        let broker = try EmbeddedBroker()
        for (topic, partitions) in [("ev", 3), ("ev.dead-letter", 1), ("items", 2)] + extra { try broker.createTopic(topic, partitions: partitions) }
        return broker
    }

    @Test("items take their categories from an items topic: latest record wins, tombstones delete, bad records are dead letters; a server follows")
    func categoriesFromRecords() throws {
        let broker = try broker(extra: [("m", 1)])
        #expect(try ModelSpec.decode(Self.modelText).itemRecords == 280, "the model text derived from OpenWorldTests'")
        let events = OpenWorldTests.events(ticks: 0..<12)
        try world.produce(broker, "ev", events)
        try world.produce(broker, "items", Self.records(0...11))
        let t = try trainer(broker, checkpoint: world.temporary("r.ckpt"), modelTopic: "m")
        let counters = try t.run()
        #expect(counters.events == events.count && counters.ticks == 12)
        #expect(counters.deadLetters == 2, "a record without a category, and a tombstone without a key")
        let open = try #require(t.open)
        let changes = Self.itemIDs.count(where: { $0 % 3 == 0 }) + Self.itemIDs.count(where: { $0 % 7 == 0 })
        #expect(open.records.counters == ItemRecords.Counters(taken: Self.itemIDs.count + changes,
                                                              deleted: Self.itemIDs.count(where: { $0 % 10 == 0 }), refused: 0))
        let held = Self.itemIDs.filter { open.records.category(of: .int($0)) != nil }
        #expect(held == Self.itemIDs.filter { Self.latestCategory($0) != nil } && open.records.count == held.count)
        #expect(held.contains { $0 % 70 == 0 }, "a deleted item's later record brings it back")
        let model = try #require(t.trainer.sequence?.model)
        var checked = 0
        for id in held {
            #expect(open.records.category(of: .int(id)) == Self.latestCategory(id).map { .int($0) })
            guard let row = open.items.lookup(.int(id)) else { continue }
            #expect(open.categories.id(ofRow: Int(model.categoryOf[Int(row)])) == Self.latestCategory(id).map { .int($0) }, "item \(id)")
            checked += 1
        }
        #expect(checked > 50, "items with rows and held records: \(checked)")
        #expect(open.categories.occupied == 15)

        // A server following the model topic holds the same categories.
        let mapping = try EventMapping(json: JSONValue.parse(ItemRecordMappingTests.mappingText))
        var options = StreamServer.Options(requestsTopic: "req", recommendationsTopic: "rec", deadLetterTopic: "req.dead-letter", modelTopic: "m",
                                           groupID: "serve", properties: broker.clientConfiguration.properties)
        options.format = .json(mapping)
        let server = try StreamServer(model: ModelSpec.decode(Self.modelText), options: options)
        for (i, m) in try world.messages(broker, "m").enumerated() { _ = server.take(modelMessage: m, from: "m @\(i)") }
        #expect(server.counters.updatesApplied == t.updatesPublished && server.counters.updateErrors == 0, "\(server.lastUpdateError ?? "")")
        #expect(server.state.model!.categoryOf[..<open.items.rows] == model.categoryOf[..<open.items.rows])

        // The dead letters are the records as they came.
        let letters = try world.messages(broker, "ev.dead-letter")
        #expect(letters.count == 2 && letters.contains(Array(#"{"item_id": 10000000001, "ts": 0}"#.utf8)) && letters.contains([]))
    }

    @Test("restarted from its checkpoint, a trainer with an items topic ends byte for byte where an uninterrupted one does")
    func resume() throws {
        let broker = try broker()
        try world.produce(broker, "ev", OpenWorldTests.events(ticks: 0..<6))
        try world.produce(broker, "items", Self.records(0...0))
        let interrupted = world.temporary("i.ckpt"), straight = world.temporary("s.ckpt")
        let a = try trainer(broker, checkpoint: interrupted).run()
        #expect(a.ticks == 6)
        try world.produce(broker, "ev", OpenWorldTests.events(ticks: 6..<14, seed: 2))
        try world.produce(broker, "items", Self.records(6...11))
        let resumed = try trainer(broker, checkpoint: interrupted)
        let b = try resumed.run()
        #expect(b.ticks == 14 && b.deadLetters == 2)
        let whole = try trainer(broker, checkpoint: straight)
        #expect(try whole.run() == b)
        #expect(resumed.open!.records.counters == whole.open!.records.counters && whole.open!.records.counters.deleted > 0)
        let x = try Data(contentsOf: URL(fileURLWithPath: interrupted)), y = try Data(contentsOf: URL(fileURLWithPath: straight))
        #expect(sameBytes(x, y), "checkpoints differ: \(x.count) and \(y.count) bytes")
    }
}
