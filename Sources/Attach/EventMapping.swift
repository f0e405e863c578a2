import RecCore

/// How other people's JSON events map onto recstream's feedback: which field holds the
/// user, the item, the event type, the timestamp, view seconds and the amount, and which
/// event names mean an impression, a click or a purchase. Fields are dotted paths into
/// the event ("order.total").
///
/// A mapping file is a JSON object with any of these keys (defaults in brackets):
/// `user` ["user"], `item` ["item"], `category` [none], `event` ["event"], `timestamp`
/// ["timestamp"], `tickSeconds` [1], `viewSeconds` ["viewSeconds"], `amount` ["amount"],
/// `request` [none], `events`, an object from the stream's event names to `impression`,
/// `click` or `purchase` [each name to itself], and `itemRecords` [the events' own item,
/// category and timestamp fields]: how the records of an items topic read
/// (`ItemRecordMapping`).
///
/// An id field (`user`, `item`, `category`) is a field name, or `{"field": NAME, "kind":
/// KIND}`: kind `index` [the default] is a row of a scenario's world (an integer in
/// 0...4294967295); `int64` any 64-bit integer (a string of decimal digits too); `string`
/// any string of at most 512 bytes (an integer too, as its decimal text). Ids of kind
/// int64 and string are mapped to rows by the model's `IdDictionary`.
public struct EventMapping: Sendable, Equatable {
    public var user = IdField("user")
    public var item = IdField("item")
    /// The item's category, when events carry it (for a model without a world).
    public var category: IdField?
    public var event = "event"
    /// Event time; events are grouped into ticks of `tickSeconds` of it. nil: every event
    /// falls in its partition's current tick.
    public var timestamp: String? = "timestamp"
    public var tickSeconds = 1.0
    /// Optional: absent fields read as 0.
    public var viewSeconds: String? = "viewSeconds"
    public var amount: String? = "amount"
    /// Optional: the request (slate) an impression belonged to; without it, a user's
    /// events of one tick form one slate.
    public var request: String?
    public var events: [String: FeedbackEvent] = ["impression": .impression, "click": .click, "purchase": .purchase]
    /// How item records read, when the mapping file says (`records` resolves the default).
    public var itemRecords: ItemRecordMapping?

    public init() {}

    /// How the records of an items topic read: as the mapping file's `itemRecords` says, else
    /// through the events' item and category fields (without a timestamp); nil when neither
    /// names a category (an item record is read for its category).
    public var records: ItemRecordMapping? {
        itemRecords ?? category.map { ItemRecordMapping(item: item, category: $0, timestamp: nil) }
    }

    /// The kind of the categories' ids: as the events or, failing them, the item records name them.
    public var categoryKind: IdKind { category?.kind ?? itemRecords?.category.kind ?? .int64 }

    /// The first id kind a scenario's world cannot take (int64 or string), if any.
    public var externalKind: IdKind? {
        [user.kind, item.kind].first { $0 != .index }
    }

    /// The mapping in one line, event names in sorted order (the same text in every process).
    public var canonical: String {
        let fields = [("user", user.canonical), ("item", item.canonical), ("event", event), ("timestamp", timestamp ?? "-"), ("viewSeconds", viewSeconds ?? "-"),
                      ("amount", amount ?? "-"), ("request", request ?? "-")].map { "\($0)=\($1)" } + (category.map { ["category=\($0.canonical)"] } ?? [])
            + (itemRecords.map { ["itemRecords=\($0.canonical)"] } ?? [])
        let names = events.keys.sorted().map { "\($0):\(events[$0]!)" }
        return (fields + ["tickSeconds=\(tickSeconds)", "events=" + names.joined(separator: ",")]).joined(separator: " ")
    }

    /// Reads a mapping file's JSON; every problem is an error naming its key.
    public init(json: JSONValue) throws(MappingError) {
        guard case .object(let o) = json else { throw MappingError("a mapping is a JSON object, got \(json.kindDescription)") }
        let known = ["user", "item", "category", "event", "timestamp", "tickSeconds", "viewSeconds", "amount", "request", "events", "itemRecords"]
        for key in o.keys where !known.contains(key) {
            throw MappingError("\(key): unknown key; known keys: \(known.joined(separator: ", "))")
        }
        func path(_ key: String) throws(MappingError) -> String? {
            guard let v = o[key] else { return nil }
            if case .null = v { return nil }
            guard case .string(let s) = v, !s.isEmpty else { throw MappingError("\(key): expected a field name (a string), got \(v.kindDescription)") }
            return s
        }
        func idField(_ key: String) throws(MappingError) -> IdField? {
            guard let v = o[key] else { return nil }
            return try Self.idField(v, key: key)
        }
        user = try idField("user") ?? user
        item = try idField("item") ?? item
        category = try idField("category")
        event = try path("event") ?? event
        if o["timestamp"] != nil { timestamp = try path("timestamp") }
        if o["viewSeconds"] != nil { viewSeconds = try path("viewSeconds") }
        if o["amount"] != nil { amount = try path("amount") }
        request = try path("request")
        if let t = o["tickSeconds"] {
            guard let s = t.doubleValue, s > 0, s.isFinite else { throw MappingError("tickSeconds: expected a number above 0, got \(t.kindDescription)") }
            tickSeconds = s
        }
        if let e = o["events"] {
            guard case .object(let names) = e, !names.entries.isEmpty else { throw MappingError("events: expected an object from event names to impression, click or purchase") }
            events = [:]
            for (name, target) in names.entries {
                guard case .string(let t) = target else {
                    throw MappingError("events.\(name): expected impression, click or purchase, got \(target.kindDescription)")
                }
                guard let kind = FeedbackEvent(name: t) else {
                    throw MappingError("events.\(name): expected impression, click or purchase, got '\(t)'")
                }
                events[name] = kind
            }
        }
        if let v = o["itemRecords"] { itemRecords = try ItemRecordMapping(json: v, events: self) }
    }

    /// An id field's JSON at `key`: a field name, or `{"field": NAME, "kind": KIND}`; nil for null.
    static func idField(_ v: JSONValue, key: String) throws(MappingError) -> IdField? {
        switch v {
        case .null: return nil
        case .string(let s) where !s.isEmpty: return IdField(s)
        case .object(let f):
            for k in f.keys where k != "field" && k != "kind" { throw MappingError("\(key).\(k): unknown key; an id field has field and kind") }
            guard case .string(let name)? = f["field"], !name.isEmpty else {
                throw MappingError("\(key).field: expected a field name (a string), got \(f["field"]?.kindDescription ?? "nothing")")
            }
            var kind = IdKind.index
            if let k = f["kind"] {
                guard case .string(let s) = k else { throw MappingError("\(key).kind: expected index, int64 or string, got \(k.kindDescription)") }
                guard let parsed = IdKind(rawValue: s) else { throw MappingError("\(key).kind: expected index, int64 or string, got '\(s)'") }
                kind = parsed
            }
            return IdField(name, kind: kind)
        default:
            throw MappingError("\(key): expected a field name (a string) or {\"field\": NAME, \"kind\": \"index\" | \"int64\" | \"string\"}, got \(v.kindDescription)")
        }
    }

    /// Decodes one message. Throws, with the reason, for anything that is not a JSON
    /// object carrying the mapped fields with values of the right kinds.
    public func decode(_ bytes: UnsafeRawBufferPointer) throws(EventDecodeError) -> MappedEvent {
        let value = try object(bytes)
        let name = try string(value, event, "event")
        guard let kind = events[name] else {
            let known = events.keys.sorted().map { "'\($0)'" }.joined(separator: ", ")
            throw EventDecodeError("field \"\(event)\" (event): '\(name)' is not a mapped event name; mapped: \(known)")
        }
        var out = MappedEvent(user: try id(value, user, "user"), item: try id(value, item, "item"), event: kind)
        if let category { out.category = try id(value, category, "category") }
        if let timestamp, let t = try number(value, timestamp, "timestamp") { out.tick = try tick(t, timestamp) }
        if let viewSeconds, let v = try quantity(value, viewSeconds, "viewSeconds") { out.viewSeconds = v }
        if let amount, let a = try quantity(value, amount, "amount") { out.amount = a }
        if let request { out.request = UInt32(truncatingIfNeeded: try index(value, request, "request")) }
        return out
    }

    /// Decodes one record of an items topic (`records` says how): a JSON object naming the
    /// item and its category, or an empty value (a tombstone) whose `key` is the item's id.
    /// Throws, with the reason, for anything else.
    public func decodeItemRecord(_ bytes: UnsafeRawBufferPointer, key: UnsafeRawBufferPointer) throws(EventDecodeError) -> MappedItemRecord {
        guard let records else { throw EventDecodeError("the mapping names no category field, so item records cannot be read") }
        if bytes.isEmpty {
            guard let text = String(validating: key, as: UTF8.self), !text.isEmpty else {
                throw EventDecodeError("an empty record (a tombstone) whose key is \(key.isEmpty ? "empty" : "not UTF-8"): a tombstone's key is the id of the item it deletes")
            }
            let item = try id(.object(JSONObject([("key", .string(text))])), IdField("key", kind: records.item.kind == .string ? .string : .int64), "tombstone key")
            return MappedItemRecord(item: item, category: nil, tick: nil)
        }
        let value = try object(bytes)
        var out = MappedItemRecord(item: try id(value, records.item, "item"), category: try id(value, records.category, "category"), tick: nil)
        if let timestamp = records.timestamp, let t = try number(value, timestamp, "timestamp") { out.tick = try tick(t, timestamp) }
        return out
    }

    /// Decodes a request for a slate (`recstream serve --format json`): the user (the
    /// mapping's user field), and optionally the timestamp (its tick), the request id
    /// and `slateSize` (1...255).
    public func decodeRequest(_ bytes: UnsafeRawBufferPointer) throws(EventDecodeError) -> MappedRequest {
        let value = try object(bytes)
        var out = MappedRequest(user: try id(value, user, "user"))
        if let timestamp, let t = try number(value, timestamp, "timestamp") { out.tick = try tick(t, timestamp) }
        if let request { out.request = UInt32(truncatingIfNeeded: try index(value, request, "request")) }
        if value.value(atPath: "slateSize") != nil {
            let size = try index(value, "slateSize", "slate size")
            guard (1...UInt32(Wire.maxSlateSize)).contains(size) else {
                throw EventDecodeError("field \"slateSize\" (slate size): \(size) is outside 1...\(Wire.maxSlateSize)")
            }
            out.slateSize = Int(size)
        }
        return out
    }

    func object(_ bytes: UnsafeRawBufferPointer) throws(EventDecodeError) -> JSONValue {
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw EventDecodeError("not UTF-8 text (\(bytes.count) bytes); expected a JSON object")
        }
        let value: JSONValue
        do { value = try JSONValue.parse(text) } catch { throw EventDecodeError("not JSON: \(error)") }
        guard case .object = value else { throw EventDecodeError("expected a JSON object, got \(value.kindDescription)") }
        return value
    }

    func tick(_ t: Double, _ field: String) throws(EventDecodeError) -> Tick {
        // Histories keep a behaviour's tick as an Int32: a larger tick would not fit.
        let tick = (t / tickSeconds).rounded(.down)
        guard tick >= 0, tick < Double(Int32.max) else {
            throw EventDecodeError("field \"\(field)\" (timestamp): \(t) gives tick \(tick), outside 0..<\(Int32.max)")
        }
        return Tick(tick)
    }

    /// An id of the field's kind.
    func id(_ value: JSONValue, _ field: IdField, _ role: String) throws(EventDecodeError) -> ExternalID {
        let path = field.path
        switch field.kind {
        case .index: return .int(Int64(try index(value, path, role)))
        case .int64:
            guard let v = value.value(atPath: path) else { throw EventDecodeError("field \"\(path)\" (\(role)): missing") }
            switch v {
            case .integer(let i): return .int(i)
            case .string(let s):
                guard let i = Int64(s) else { throw EventDecodeError("field \"\(path)\" (\(role)): '\(s.prefix(40))' is not a 64-bit integer id") }
                return .int(i)
            default: throw EventDecodeError("field \"\(path)\" (\(role)): expected a 64-bit integer id, got \(v.kindDescription)")
            }
        case .string:
            guard let v = value.value(atPath: path) else { throw EventDecodeError("field \"\(path)\" (\(role)): missing") }
            switch v {
            case .integer(let i): return .string(String(i))
            case .string(let s):
                guard !s.isEmpty else { throw EventDecodeError("field \"\(path)\" (\(role)): an empty id") }
                guard s.utf8.count <= ExternalID.maxStringBytes else {
                    throw EventDecodeError("field \"\(path)\" (\(role)): an id of \(s.utf8.count) bytes; ids are at most \(ExternalID.maxStringBytes)")
                }
                return .string(s)
            default: throw EventDecodeError("field \"\(path)\" (\(role)): expected a string id, got \(v.kindDescription)")
            }
        }
    }

    /// A row of the scenario's world (or a request number, or a slate size).
    func index(_ value: JSONValue, _ path: String, _ role: String) throws(EventDecodeError) -> UInt32 {
        guard let v = value.value(atPath: path) else { throw EventDecodeError("field \"\(path)\" (\(role)): missing") }
        guard case .integer(let i) = v else { throw EventDecodeError("field \"\(path)\" (\(role)): expected an integer id, got \(v.kindDescription)") }
        guard i >= 0 && i <= Int64(UInt32.max) else { throw EventDecodeError("field \"\(path)\" (\(role)): \(i) is outside 0...\(UInt32.max)") }
        return UInt32(i)
    }

    func string(_ value: JSONValue, _ path: String, _ role: String) throws(EventDecodeError) -> String {
        guard let v = value.value(atPath: path) else { throw EventDecodeError("field \"\(path)\" (\(role)): missing") }
        guard case .string(let s) = v else { throw EventDecodeError("field \"\(path)\" (\(role)): expected a string, got \(v.kindDescription)") }
        return s
    }

    /// An optional duration or amount: a number that is at least 0 and fits a Float (a
    /// value that would round to infinity is an error, not a silent `inf` in a mean).
    func quantity(_ value: JSONValue, _ path: String, _ role: String) throws(EventDecodeError) -> Float? {
        guard let d = try number(value, path, role) else { return nil }
        guard d >= 0 else { throw EventDecodeError("field \"\(path)\" (\(role)): \(d) is negative; expected a number of at least 0") }
        let f = Float(d)
        guard f.isFinite else { throw EventDecodeError("field \"\(path)\" (\(role)): \(d) is too large for a 32-bit float (at most \(Float.greatestFiniteMagnitude))") }
        return f
    }

    /// An optional number: nil when the field is absent or null.
    func number(_ value: JSONValue, _ path: String, _ role: String) throws(EventDecodeError) -> Double? {
        guard let v = value.value(atPath: path) else { return nil }
        if case .null = v { return nil }
        guard let d = v.doubleValue, d.isFinite else { throw EventDecodeError("field \"\(path)\" (\(role)): expected a number, got \(v.kindDescription)") }
        return d
    }
}

/// How an id field is read (`EventMapping`).
public enum IdKind: String, Sendable, CaseIterable {
    /// A row of a scenario's world: an integer in 0...4294967295.
    case index
    /// Any 64-bit integer (or a string of decimal digits).
    case int64
    /// Any string of at most `ExternalID.maxStringBytes` bytes (or an integer, as its text).
    case string
}

/// A field holding an id, and how it is read.
public struct IdField: Sendable, Equatable {
    public var path: String
    public var kind: IdKind
    public init(_ path: String, kind: IdKind = .index) {
        self.path = path
        self.kind = kind
    }
    /// The path, and the kind unless it is the default.
    var canonical: String { kind == .index ? path : "\(path):\(kind.rawValue)" }
}

/// How the records of an items topic (`recstream train --items-topic`) read: each is a JSON
/// object naming an item and its category (the item's latest record wins), or an empty
/// message (a tombstone, as a compacted topic deletes) whose key is the item's id.
///
/// In a mapping file, `itemRecords` is an object with `item` [the events' item field],
/// `category` [the events' category field] and `timestamp` [none: a record takes effect at
/// its partition's current tick; with a field, at its own tick, in event time]. An id
/// field given as a name reads ids of the events' kind; one that declares a kind must
/// declare the events' kind (the records and the events name the same items and
/// categories).
public struct ItemRecordMapping: Sendable, Equatable {
    public var item: IdField
    public var category: IdField
    public var timestamp: String?

    public init(item: IdField, category: IdField, timestamp: String?) {
        self.item = item
        self.category = category
        self.timestamp = timestamp
    }

    init(json: JSONValue, events: EventMapping) throws(MappingError) {
        guard case .object(let o) = json else { throw MappingError("itemRecords: expected an object with item, category and timestamp, got \(json.kindDescription)") }
        for key in o.keys where !["item", "category", "timestamp"].contains(key) {
            throw MappingError("itemRecords.\(key): unknown key; itemRecords has item, category and timestamp")
        }
        /// The field at `key`, of the events' kind (`theirs`; nil: any kind, for a category the events do not name).
        func field(_ key: String, theirs: IdField?) throws(MappingError) -> IdField? {
            guard let v = o[key], var f = try EventMapping.idField(v, key: "itemRecords.\(key)") else { return theirs }
            guard let theirs else { return f }
            if case .object(let spelled) = v, spelled["kind"] != nil {
                guard f.kind == theirs.kind else {
                    throw MappingError("itemRecords.\(key).kind: \(f.kind.rawValue), but the events' \(key) ids are \(theirs.kind.rawValue): records and events name the same \(key == "item" ? "items" : "categories")")
                }
            }
            f.kind = theirs.kind
            return f
        }
        item = try field("item", theirs: events.item)!
        guard let category = try field("category", theirs: events.category) else {
            throw MappingError("itemRecords.category: required (the events name no category field): an item record is read for its item's category")
        }
        self.category = category
        if let t = o["timestamp"] {
            switch t {
            case .null: timestamp = nil
            case .string(let s) where !s.isEmpty: timestamp = s
            default: throw MappingError("itemRecords.timestamp: expected a field name (a string) or null, got \(t.kindDescription)")
            }
        } else {
            timestamp = nil
        }
    }

    var canonical: String { "item=\(item.canonical),category=\(category.canonical),timestamp=\(timestamp ?? "-")" }
}

/// One record of an items topic, as `EventMapping.decodeItemRecord` reads it.
public struct MappedItemRecord: Sendable, Equatable {
    public var item: ExternalID
    /// nil: a tombstone (the item's record is deleted).
    public var category: ExternalID?
    /// nil when the records have no timestamp (or this one lacks it).
    public var tick: Tick?
    public init(item: ExternalID, category: ExternalID?, tick: Tick?) {
        self.item = item
        self.category = category
        self.tick = tick
    }
}

/// One event of another service's stream, as the mapping reads it. Ids of kind `index`
/// read as `.int`.
public struct MappedEvent: Sendable, Equatable {
    public var user: ExternalID
    public var item: ExternalID
    public var category: ExternalID?
    public var event: FeedbackEvent
    /// nil when the mapping has no timestamp (or the event lacks one).
    public var tick: Tick?
    public var viewSeconds: Float = 0
    public var amount: Float = 0
    public var request: UInt32?
    public init(user: ExternalID, item: ExternalID, event: FeedbackEvent, tick: Tick? = nil) {
        self.user = user
        self.item = item
        self.event = event
        self.tick = tick
    }
}

/// A request for a slate, as the mapping reads it.
public struct MappedRequest: Sendable, Equatable {
    public var user: ExternalID
    public var tick: Tick?
    public var request: UInt32?
    public var slateSize: Int?
    public init(user: ExternalID) { self.user = user }
}

extension FeedbackEvent {
    init?(name: String) {
        switch name {
        case "impression": self = .impression
        case "click": self = .click
        case "purchase": self = .purchase
        default: return nil
        }
    }
}

/// A mapping file that cannot be used.
public struct MappingError: Error, CustomStringConvertible, Sendable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// A message that does not decode or map: the reason goes in the dead letter's header.
public struct EventDecodeError: Error, CustomStringConvertible, Sendable, Equatable {
    public var reason: String
    /// It decoded, but names a user or item outside the scenario's world.
    public var outsideWorld = false
    public init(_ reason: String, outsideWorld: Bool = false) {
        self.reason = reason
        self.outsideWorld = outsideWorld
    }
    public var description: String { reason }
}
