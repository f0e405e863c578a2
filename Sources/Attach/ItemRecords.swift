import Models
import RecCore

/// The latest record of each item of an items topic (`recstream train --items-topic`):
/// the category it names, until a later record or a tombstone replaces it. Records are
/// taken in tick order, as events are, so what is held at each tick is a function of the
/// stream alone, and a checkpoint carries all of it.
///
/// Items are held whether or not they have a row in the items table (a record often comes
/// before the item's first event, and an item whose row expired keeps its record); at
/// most `capacity` at once. A record of a further new item is refused and counted, never
/// dropped silently.
public final class ItemRecords {
    /// The items' ids, each with a row here (a row of this map, not of the items table).
    let ids: IdDictionary
    /// Per row: the category its item's latest record names (nil: a freed row).
    var categoryOf: [ExternalID?] = [nil]

    /// What the records did, exactly (a checkpoint carries these).
    public struct Counters: Sendable, Equatable {
        /// Records taken (an item's first or a newer one).
        public var taken = 0
        /// Tombstones that deleted a held record.
        public var deleted = 0
        /// Records refused: their item was new and `capacity` items were held.
        public var refused = 0

        static var fields: [(String, WritableKeyPath<Counters, Int>)] {
            [("taken", \.taken), ("deleted", \.deleted), ("refused", \.refused)]
        }
    }
    public internal(set) var counters = Counters()

    init(itemKind: IdDictionary.Kind, capacity: Int) {
        ids = IdDictionary(kind: itemKind, settings: IdDictionary.Settings(capacity: capacity))
    }

    private init(ids: IdDictionary, categoryOf: [ExternalID?], counters: Counters) {
        self.ids = ids
        self.categoryOf = categoryOf
        self.counters = counters
    }

    /// Items held.
    public var count: Int { ids.occupied }
    public var capacity: Int { ids.settings.capacity }
    /// Bytes held, approximately: the ids' dictionary exactly, and a category slot per row
    /// (not the heap bytes of long string categories).
    public var memoryBytes: Int { ids.memoryBytes + categoryOf.capacity * MemoryLayout<ExternalID?>.stride }

    /// Takes one record at `tick`: `category` becomes the item's, or with nil (a tombstone)
    /// the item's record is deleted. Returns whether the record was taken.
    @discardableResult
    func take(item: ExternalID, category: ExternalID?, tick: UInt32) -> Bool {
        guard let category else {
            if let r = ids.forget(item, tick: tick) {
                categoryOf[Int(r)] = nil
                counters.deleted += 1
            }
            _ = ids.takeFreedRows()
            return true
        }
        let r = Int(ids.row(for: item, tick: tick))
        guard r > 0 else {
            counters.refused += 1
            return false
        }
        if r >= categoryOf.count { categoryOf.append(contentsOf: repeatElement(nil, count: r + 1 - categoryOf.count)) }
        categoryOf[r] = category
        counters.taken += 1
        return true
    }

    /// The category the item's latest record names, if one is held.
    func category(of item: ExternalID) -> ExternalID? {
        guard ids.occupied > 0, let r = ids.lookup(item) else { return nil }
        return categoryOf[Int(r)]
    }

    // MARK: Checkpoints

    /// Counters, the ids (`IdDictionary.write`), then per row a flag and its category.
    func write(to w: inout BinaryWriter) {
        for (_, field) in Counters.fields { w.write(UInt64(counters[keyPath: field])) }
        ids.write(to: &w)
        for r in 1..<ids.rows {
            if let c = r < categoryOf.count ? categoryOf[r] : nil {
                w.write(UInt8(1))
                IdDictionary.write(c, to: &w)
            } else {
                w.write(UInt8(0))
            }
        }
    }

    static func read(from r: inout BinaryReader, itemKind: IdDictionary.Kind, categoryKind: IdDictionary.Kind, capacity: Int) throws(BinaryReadError) -> ItemRecords {
        var counters = Counters()
        for (name, field) in Counters.fields {
            let at = r.offset
            counters[keyPath: field] = try r.readInt("item records \(name)")
            guard counters[keyPath: field] < 1 << 62 else { throw BinaryReadError("implausible item records \(name)", at: at) }
        }
        let ids = try IdDictionary.read(from: &r, kind: itemKind, settings: IdDictionary.Settings(capacity: capacity))
        var categoryOf: [ExternalID?] = [nil]
        for row in 1..<ids.rows {
            let at = r.offset
            let flag = try r.read(UInt8.self, "item record flag")
            let held = ids.id(ofRow: row) != nil
            guard flag == (held ? 1 : 0) else {
                throw BinaryReadError("item record row \(row): flag \(flag), but the row is \(held ? "held" : "free")", at: at)
            }
            categoryOf.append(flag == 1 ? try IdDictionary.read(categoryKind, from: &r) : nil)
        }
        return ItemRecords(ids: ids, categoryOf: categoryOf, counters: counters)
    }
}
