import Models
import RecCore
import Scenario
import Trainer

/// The tables of a model without a world (`--model`): the id dictionaries of its users,
/// items and item categories, as its trainer grows them and its servers follow them.
///
/// Each tick, the trainer maps the tick's events to rows in the order it consumed them
/// (partition by partition, by offset), so the rows are a function of the stream alone;
/// rows freed that tick (expired ids) start over before anything trains on them.
///
/// **Categories.** An item's category is the latest, in tick order, of those its events
/// name and those its item records name (`--items-topic`; a tick's records are taken
/// before its events). When the events carry no category field, an item takes its latest
/// record's with its row.
public final class OpenWorld {
    public let spec: ModelSpec
    public let users: IdDictionary
    public let items: IdDictionary
    public let categories: IdDictionary
    /// The latest record of each item of the items topic (empty without one).
    public let records: ItemRecords
    /// Item rows whose category changed since the last model update, and whether each is listed.
    var changedCategories: [Int32] = []
    var isCategoryChanged: [Bool] = []
    public var tracksChanges = false {
        didSet { for d in dictionaries { d.tracksChanges = tracksChanges } }
    }

    public init(spec: ModelSpec, mapping: EventMapping) {
        self.spec = spec
        users = IdDictionary(kind: Self.kind(mapping.user.kind), settings: Self.settings(spec.users))
        items = IdDictionary(kind: Self.kind(mapping.item.kind), settings: Self.settings(spec.items))
        categories = IdDictionary(kind: Self.kind(mapping.categoryKind), settings: Self.settings(spec.categories))
        records = ItemRecords(itemKind: Self.kind(mapping.item.kind), capacity: spec.itemRecords)
    }

    init(spec: ModelSpec, users: IdDictionary, items: IdDictionary, categories: IdDictionary, records: ItemRecords) {
        self.spec = spec
        self.users = users
        self.items = items
        self.categories = categories
        self.records = records
    }

    var dictionaries: [IdDictionary] { [users, items, categories] }

    static func kind(_ k: IdKind) -> IdDictionary.Kind { k == .string ? .string : .int64 }

    /// The mapping a model without a world reads its JSON through (`role`: "trains on JSON
    /// events", "serves JSON requests"), or why it cannot run on `format`.
    static func mapping(_ format: StreamTrainer.Format, role: String) throws(AttachError) -> EventMapping {
        guard case .json(let mapping) = format else {
            throw AttachError("a model without a world \(role) (--format json with --mapping); recstream's records name a scenario's rows")
        }
        return mapping
    }

    /// Refuses, for a scenario's `role` (train, serve), a mapping of ids or fields only a
    /// model without a world reads.
    static func refuseInWorld(_ format: StreamTrainer.Format, role: String) throws(AttachError) {
        guard case .json(let mapping) = format else { return }
        if let kind = mapping.externalKind {
            throw AttachError("--mapping reads \(kind) ids, which a scenario's world does not have (its users and items are rows 0, 1, ...): \(role) a model without a world, --model FILE, on such a stream")
        }
        if mapping.category != nil || mapping.itemRecords != nil {
            throw AttachError("--mapping names a category field\(mapping.category == nil ? " (itemRecords)" : ""), but a scenario's items take their categories from its catalog: \(role) a model without a world, --model FILE, to take them from the stream")
        }
    }

    static func settings(_ t: ModelSpec.TableSettings) -> IdDictionary.Settings {
        IdDictionary.Settings(capacity: t.capacity, minCount: t.minCount, expireAfterTicks: t.expireAfterTicks, candidates: t.candidates)
    }

    /// Takes tick `t`'s item records (in the order consumed), then maps its events
    /// (`keys[i]` names `events[i]`'s user, item and category) to rows, and brings `trainer`
    /// along: its tables grow to the rows, freed rows start over, items take their categories.
    package func map(tick t: Int64, records itemRecords: [MappedItemRecord] = [], events: inout [Feedback], keys: [EventKeys], trainer: ArmTrainer) {
        let tick = UInt32(clamping: t)
        for d in dictionaries { d.advance(to: t) }
        let model = trainer.sequence?.model
        for record in itemRecords {
            // An item with a row takes a record's category at once (a server follows it
            // before the item's next event), even when the map is full; one without, with its row.
            records.take(item: record.item, category: record.category, tick: tick)
            guard let c = record.category, let item = items.lookup(record.item) else { continue }
            let category = categories.row(for: c, tick: tick)
            trainer.grow(users: users.rows, items: items.rows, categories: categories.rows)
            if let model { setCategory(item, category, model) }
        }
        var categoryOf: [(item: Int32, category: Int32)] = []
        let recordsHeld = records.count > 0
        for i in events.indices {
            let k = keys[i]
            let user = users.row(for: k.user, tick: tick)
            let item = items.row(for: k.item, tick: tick)
            events[i].header.user = UserID(user)
            events[i].item = ItemID(item)
            if let c = k.category ?? (recordsHeld && item > 0 ? records.category(of: k.item) : nil) {
                let category = categories.row(for: c, tick: tick)
                if item > 0 { categoryOf.append((item, category)) }
            }
        }
        trainer.grow(users: users.rows, items: items.rows, categories: categories.rows)
        for u in users.takeFreedRows() { trainer.clearHistory(of: UserID(u), tick: tick) }
        for i in items.takeFreedRows() {
            trainer.reset(item: ItemID(i))
            noteCategoryChange(i)
        }
        for c in categories.takeFreedRows() { trainer.reset(category: UInt32(c)) }
        if let model {
            for (item, category) in categoryOf { setCategory(item, category, model) }
        }
    }

    func setCategory(_ item: Int32, _ category: Int32, _ model: RankingModel) {
        guard model.categoryOf[Int(item)] != UInt32(category) else { return }
        model.setCategory(item: Int(item), category: UInt32(category))
        noteCategoryChange(item)
    }

    func noteCategoryChange(_ item: Int32) {
        guard tracksChanges else { return }
        let i = Int(item)
        if i >= isCategoryChanged.count { isCategoryChanged.append(contentsOf: repeatElement(false, count: i + 1 - isCategoryChanged.count)) }
        if !isCategoryChanged[i] {
            isCategoryChanged[i] = true
            changedCategories.append(item)
        }
    }

    /// One line on the tables: rows held, candidates, expired, filtered (and item records, when any came).
    public var summary: String {
        let tables = zip(["users", "items", "categories"], dictionaries).map { name, d in
            let c = d.counters
            return "\(name) \(d.occupied) of \(d.settings.capacity) rows (\(c.created) created, \(c.expired) expired, \(d.candidateCount) under the filter, \(c.filtered + c.untracked + c.refused) occurrences on row 0)"
        }
        let r = records.counters
        let held = r.taken + r.deleted + r.refused == 0 ? [] : ["item records \(records.count) of \(records.capacity) (\(r.taken) taken, \(r.deleted) deleted, \(r.refused) refused)"]
        return (tables + held).joined(separator: "; ")
    }

    // MARK: Model updates

    /// What a model update carries first for a model without a world: each dictionary's row
    /// changes (`IdDictionary.writeChanges`), then the items whose category changed (count,
    /// then item row and category row, as they are now). Forgets the changes.
    func writeChanges(to w: inout BinaryWriter, model: RankingModel?) {
        for d in dictionaries { d.writeChanges(to: &w) }
        let listed = model == nil ? [] : changedCategories
        w.write(UInt32(listed.count))
        for item in listed {
            w.write(UInt32(item))
            w.write(model!.categoryOf[Int(item)])
        }
        for item in changedCategories { isCategoryChanged[Int(item)] = false }
        changedCategories.removeAll(keepingCapacity: true)
    }

    // MARK: Checkpoints

    /// The dictionaries (users, items, categories), then the item records.
    func write(to w: inout BinaryWriter) {
        for d in dictionaries { d.write(to: &w) }
        records.write(to: &w)
    }

    static func read(from r: inout BinaryReader, spec: ModelSpec, mapping: EventMapping) throws(BinaryReadError) -> OpenWorld {
        let users = try IdDictionary.read(from: &r, kind: kind(mapping.user.kind), settings: settings(spec.users))
        let items = try IdDictionary.read(from: &r, kind: kind(mapping.item.kind), settings: settings(spec.items))
        let categories = try IdDictionary.read(from: &r, kind: kind(mapping.categoryKind), settings: settings(spec.categories))
        let records = try ItemRecords.read(from: &r, itemKind: kind(mapping.item.kind), categoryKind: kind(mapping.categoryKind), capacity: spec.itemRecords)
        return OpenWorld(spec: spec, users: users, items: items, categories: categories, records: records)
    }
}

/// The ids of one event of a model without a world, until its tick maps them to rows.
package struct EventKeys {
    var user: ExternalID
    var item: ExternalID
    var category: ExternalID?
    package init(user: ExternalID, item: ExternalID, category: ExternalID?) {
        self.user = user
        self.item = item
        self.category = category
    }
}

extension ModelUpdate {
    /// The messages of one update of `trainer`, with a model without a world's dictionary
    /// changes first (so a server grows its tables before the rows the rest names).
    package static func encode(_ trainer: ArmTrainer, open: OpenWorld?, header: Header) -> [[UInt8]] {
        guard let open else { return encode(trainer, header: header) }
        var payload = BinaryWriter()
        open.writeChanges(to: &payload, model: trainer.sequence?.model)
        trainer.writeChanges(to: &payload)
        return seal(payload: payload.bytes, header: header)
    }
}
