import Attach
import Foundation
import Models
import RecCore
import Scenario
import Trainer

/// The inputs attach mode takes from outside, each behind one function of bytes: what a
/// stream, a topic or a file can feed recstream. Every target must return for any bytes;
/// a trap, a crash or an address-sanitizer report is a bug. The sealed formats (model
/// updates, both checkpoint kinds) get a valid CRC-32 appended by the harness, so the
/// fuzzer's bytes reach the parser behind the checksum instead of dying at it.
enum FuzzTarget: String, CaseIterable {
    case wire, json, mapping, update, trainerCheckpoint = "trainer-checkpoint", checkpoint
    /// A model without a world's server taking a model message (id dictionary changes
    /// first), and its trainer reading a checkpoint (id dictionaries at the end).
    case openUpdate = "open-update", openCheckpoint = "open-checkpoint"

    func run(_ bytes: [UInt8]) {
        switch self {
        case .wire:
            bytes.withUnsafeBytes { raw in
                _ = try? Wire.decodeFeedback(raw)
                _ = try? Wire.decodeRequest(raw)
                var entries: [SlateEntry] = []
                _ = try? Wire.decodeSlate(raw, appendingTo: &entries)
            }
        case .json:
            // What parses renders, and what renders parses back to the same value.
            guard let value = try? JSONValue.parse(utf8: bytes) else { return }
            let again = try? JSONValue.parse(value.rendered(pretty: false))
            precondition(again == value, "JSON round trip changed the value")
        case .mapping:
            bytes.withUnsafeBytes { raw in
                _ = try? World.shared.mapping.decode(raw)
                _ = try? World.shared.mapping.decodeRequest(raw)
                _ = try? World.shared.openMapping.decode(raw)
                // As an item record: the whole input, and a tombstone keyed by it.
                _ = try? World.shared.openMapping.decodeItemRecord(raw, key: UnsafeRawBufferPointer(start: nil, count: 0))
                _ = try? World.shared.openMapping.decodeItemRecord(UnsafeRawBufferPointer(start: nil, count: 0), key: raw)
                // The server's checks over a wire request too.
                _ = try? World.shared.server.decodeRequest(raw)
            }
        case .update:
            _ = World.shared.server.take(modelMessage: Self.sealed(bytes), from: "fuzz")
        case .trainerCheckpoint:
            _ = try? World.shared.trainer.decodeCheckpoint(Self.sealed(bytes), partitions: 3)
        case .checkpoint:
            _ = try? Checkpoint.decode(Self.sealed(bytes))
        case .openUpdate:
            _ = World.shared.openServer.take(modelMessage: Self.sealed(bytes), from: "fuzz")
        case .openCheckpoint:
            _ = try? World.shared.openTrainer.decodeCheckpoint(Self.sealed(bytes), partitions: 3, itemPartitions: 2)
        }
    }

    /// The bytes with their CRC-32 appended, as `CheckpointFrame.seal` ends every file.
    static func sealed(_ bytes: [UInt8]) -> [UInt8] {
        let crc = bytes.withUnsafeBytes { CRC32.checksum($0) }
        return bytes + withUnsafeBytes(of: crc.littleEndian) { Array($0) }
    }

    /// Real inputs to start from: the fuzzer mutates these (sealed ones without their CRC).
    func seeds() throws -> [[UInt8]] {
        let world = World.shared
        switch self {
        case .wire:
            var out: [[UInt8]] = []
            let h = RecordHeader(arm: 0, tick: 3, user: 7, sequence: 1)
            var buffer = [UInt8](repeating: 0, count: Wire.slateSize(items: 4))
            let n1 = buffer.withUnsafeMutableBytes { Wire.encode(Request(h, slateSize: 4), into: $0) }
            out.append(Array(buffer[..<n1]))
            let f = Feedback(h, event: .click, position: 1, item: 9, shownTick: 3, viewSeconds: 12)
            let n2 = buffer.withUnsafeMutableBytes { Wire.encode(f, into: $0) }
            out.append(Array(buffer[..<n2]))
            let entries = (0..<4).map { SlateEntry(item: ItemID($0 * 5), propensity: 0.25) }
            let n3 = entries.withUnsafeBufferPointer { e in buffer.withUnsafeMutableBytes { Wire.encodeSlate(h, policy: 0, entries: e, into: $0) } }
            out.append(Array(buffer[..<n3]))
            return out
        case .openUpdate:
            return world.openUpdate.map { Array($0.dropLast(4)) }
        case .openCheckpoint:
            return [Array(world.openTrainer.encodeCheckpoint().dropLast(4))]
        case .json, .mapping:
            return [#"{"user_id": "u_8f3a", "item_id": 123456789012, "category_id": "7", "behavior_type": "cart", "timestamp": 1511539200}"#,
                    #"{"user": 12, "item": 345, "event": "click", "timestamp": 1733000000, "viewSeconds": 31.5, "amount": 0, "request": 2}"#,
                    #"{"user": 3, "timestamp": 7, "request": 1, "slateSize": 10, "nested": {"a": [1, -2.5e3, true, null, "\u00e9\n"]}}"#]
                .map { Array($0.utf8) }
        case .update:
            return world.update.map { Array($0.dropLast(4)) }
        case .trainerCheckpoint:
            return [Array(world.trainer.encodeCheckpoint().dropLast(4))]
        case .checkpoint:
            guard let learner = world.trainer.trainer.sequence else { return [] }
            return [Array(Checkpoint.encode(learner, offsets: ["fb/0": 17, "fb/1": 4]).dropLast(4))]
        }
    }
}

/// One small world for the targets that need a receiver's state: a DARE arm's trainer
/// and server, built once per process (as a long-running role holds them).
final class World {
    nonisolated(unsafe) static let shared = World()

    let trainer: StreamTrainer
    let server: StreamServer
    let mapping: EventMapping
    /// A real model update of the trainer after one tick, as sealed messages.
    let update: [[UInt8]]
    /// A model without a world (string users, 64-bit items, expiry): trainer, server,
    /// mapping, and a real update after two ticks (rows created and freed).
    let openTrainer: StreamTrainer
    let openServer: StreamServer
    let openMapping: EventMapping
    let openUpdate: [[UInt8]]

    static let modelText = """
        {"name": "shop", "seed": 5, "slateSize": 4, "candidates": 10,
         "ranking": {"type": "dare", "attentionDim": 4, "representationDim": 4, "topK": 4, "maxHistory": 20, "batchSize": 16},
         "tables": {"users": {"capacity": 30, "minCount": 2, "expireAfterTicks": 1}, "items": {"capacity": 20, "expireAfterTicks": 1},
                    "categories": {"capacity": 5}}}
        """

    static let scenarioText = """
        {"name": "fuzz", "seed": 5, "ticks": 8,
         "population": {"users": 60, "slateSize": 6, "history": {"median": 20, "max": 40}},
         "catalog": {"items": 80, "topics": 6, "topCategories": 2, "subcategories": 2, "arrivalsPerTick": 2},
         "arms": [{"name": "dare", "share": 1, "candidates": 20,
                   "ranking": {"type": "dare", "attentionDim": 4, "representationDim": 4, "topK": 4, "maxHistory": 20, "batchSize": 16}}]}
        """

    init() {
        do {
            let scenario = try Scenario.decode(Self.scenarioText)
            var options = StreamTrainer.Options(topic: "fb", deadLetterTopic: "fb.dead-letter", format: .wire,
                                                checkpointPath: "/nonexistent", groupID: "fuzz", properties: [:])
            options.modelTopic = "model"
            trainer = try StreamTrainer(scenario: scenario, arm: "dare", options: options)
            server = try StreamServer(scenario: scenario, arm: "dare", options: StreamServer.Options(
                requestsTopic: "r", recommendationsTopic: "s", deadLetterTopic: "d", modelTopic: "model", groupID: "fuzz", properties: [:]))
            mapping = try EventMapping(json: JSONValue.parse(#"{"user": "user", "item": "item", "event": "event", "timestamp": "timestamp", "tickSeconds": 60, "request": "request", "events": {"click": "click", "view": "impression", "buy": "purchase"}}"#))
            trainer.trainer.tracksChanges()
            var feedback: [Feedback] = []
            for u in 0..<UInt32(40) {
                let h = RecordHeader(arm: 0, tick: 0, user: u, sequence: 0)
                feedback.append(Feedback(h, event: .impression, position: 0, item: u, shownTick: 0))
                if u % 3 == 0 { feedback.append(Feedback(h, event: .click, position: 0, item: u, shownTick: 0, viewSeconds: 12)) }
            }
            trainer.trainer.apply(tick: 0, feedback: feedback[...])
            update = ModelUpdate.encode(trainer.trainer, header: ModelUpdate.Header(identity: trainer.modelIdentity, incarnation: 1, sequence: 1, from: -1, through: 0))

            let model = try ModelSpec.decode(Self.modelText)
            openMapping = try EventMapping(json: JSONValue.parse(#"{"user": {"field": "user_id", "kind": "string"}, "item": {"field": "item_id", "kind": "int64"}, "category": {"field": "category_id", "kind": "int64"}, "event": "behavior_type", "events": {"pv": "impression", "cart": "click", "buy": "purchase"}}"#))
            var openOptions = StreamTrainer.Options(topic: "ev", deadLetterTopic: "ev.dead-letter", format: .json(openMapping),
                                                    checkpointPath: "/nonexistent", groupID: "fuzz", properties: [:])
            openOptions.modelTopic = "shop.model"
            openOptions.itemsTopic = "shop.items"
            openTrainer = try StreamTrainer(model: model, options: openOptions)
            var serverOptions = StreamServer.Options(requestsTopic: "r", recommendationsTopic: "s", deadLetterTopic: "d", modelTopic: "shop.model",
                                                     groupID: "fuzz", properties: [:])
            serverOptions.format = .json(openMapping)
            openServer = try StreamServer(model: model, options: serverOptions)
            openTrainer.trainer.tracksChanges()
            openTrainer.open!.tracksChanges = true
            // Two ticks: users twice each (past the filter), items once; then other ones, so
            // the first tick's rows expire and are reused. Item records name some items'
            // categories, and a tombstone deletes one.
            for tick in 0..<2 {
                var events: [Feedback] = [], keys: [EventKeys] = []
                let records = (0..<4).map { MappedItemRecord(item: .int(Int64(9_000_000_000 + 100 * tick + $0)), category: $0 == 3 ? nil : .int(Int64($0)), tick: nil) }
                for u in 0..<12 {
                    for k in 0..<2 {
                        let item = Int64(9_000_000_000 + 100 * tick + u)
                        let h = RecordHeader(arm: 0, tick: Tick(tick), user: 0, sequence: 0)
                        events.append(Feedback(h, event: k == 0 ? .impression : .click, position: 0, item: 0, shownTick: Tick(tick)))
                        keys.append(EventKeys(user: .string("u\(tick)-\(u)"), item: .int(item), category: .int(item % 3)))
                    }
                }
                openTrainer.open!.map(tick: Int64(tick), records: records, events: &events, keys: keys, trainer: openTrainer.trainer)
                events.sort { ($0.header.user, $0.item, $0.event.rawValue) < ($1.header.user, $1.item, $1.event.rawValue) }
                openTrainer.trainer.apply(tick: Tick(tick), feedback: events[...])
            }
            openUpdate = ModelUpdate.encode(openTrainer.trainer, open: openTrainer.open, header: ModelUpdate.Header(identity: openTrainer.modelIdentity, incarnation: 1, sequence: 1, from: -1, through: 1))
        } catch {
            fatalError("the fuzz world does not build: \(error)")  // a harness bug, not an input
        }
    }
}
