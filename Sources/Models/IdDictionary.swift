import Foundation
import RecCore

/// The dense rows of a table whose ids come from someone else's stream: string or
/// 64-bit ids in, rows out, as production trainers keep them (Monolith's collisionless
/// tables with a frequency filter and expiry; TorchRec's managed collision handling).
///
/// - **Collisionless.** Each id that has a row has it alone; the dictionary keeps the id
///   itself (strings in one byte arena), never just a hash of it.
/// - **Grows, up to `capacity` rows.** Rows are handed out as ids arrive. Row 0 is the
///   shared *default row*: every id without a row of its own reads and trains it.
/// - **Frequency filter.** An id gets a row at its `minCount`-th occurrence; until then it
///   is a *candidate*, counted, and maps to the default row. At most `candidates` ids are
///   counted at once; occurrences of further new ids are `untracked` (default row).
/// - **Expiry.** With `expireAfterTicks` T, an id unseen for T ticks loses its row (and a
///   candidate its count). The dictionary looks every max(1, T/8) ticks, and at once when
///   an id needs a row and none is free. Freed rows are reused; `takeFreedRows` hands them
///   to the owner of the tables, which resets them before the row's next owner trains.
///
/// Everything is a function of the calls made (ids, ticks, in order), never of timing or
/// the process: hashing only places ids in the index, which nothing observable depends
/// on. So a trainer restored from `write(to:)` maps every id to the row an uninterrupted
/// one does.
public final class IdDictionary {
    public enum Kind: String, Sendable, CaseIterable {
        case string, int64
    }

    public struct Settings: Sendable, Equatable {
        /// Rows for ids (the default row is one more).
        public var capacity: Int
        /// Occurrences before an id gets a row (1: at first sight).
        public var minCount: Int
        /// Ticks unseen after which an id's row is freed; nil keeps rows forever.
        public var expireAfterTicks: Int64?
        /// Ids counted under the frequency filter at once (nil: `capacity`).
        public var candidates: Int?

        public init(capacity: Int, minCount: Int = 1, expireAfterTicks: Int64? = nil, candidates: Int? = nil) {
            self.capacity = capacity
            self.minCount = minCount
            self.expireAfterTicks = expireAfterTicks
            self.candidates = candidates
        }

        public var candidateLimit: Int { minCount <= 1 ? 0 : (candidates ?? capacity) }
        /// Ticks between looks for expired ids.
        public var sweepEvery: Int64 { max(1, (expireAfterTicks ?? 0) / 8) }

        /// The largest capacity: rows are 32-bit, and entries (rows and candidates) too.
        public static let maxCapacity = 1 << 30
    }

    /// What the dictionary did, exactly (a checkpoint carries these).
    public struct Counters: Sendable, Equatable {
        /// Occurrences looked up (ids seen).
        public var lookups = 0
        /// Rows handed to ids.
        public var created = 0
        /// Occurrences answered by the default row because their id was under the filter.
        public var filtered = 0
        /// Occurrences of new ids that were not counted: the candidate list was full.
        public var untracked = 0
        /// Occurrences of ids that passed the filter but found every row taken.
        public var refused = 0
        /// Rows freed after `expireAfterTicks` unseen.
        public var expired = 0
        /// Candidates forgotten after `expireAfterTicks` unseen.
        public var forgotten = 0
        public init() {}

        public static var fields: [(String, WritableKeyPath<Counters, Int>)] { [
            ("lookups", \.lookups), ("created", \.created), ("filtered", \.filtered), ("untracked", \.untracked),
            ("refused", \.refused), ("expired", \.expired), ("forgotten", \.forgotten),
        ] }
    }

    /// A row given to an id (`key`) or freed (`key` nil), at `tick`: what a model update
    /// carries so a server's dictionary follows the trainer's.
    public struct Change: Sendable, Equatable {
        public var tick: UInt32
        public var row: Int32
        public var key: ExternalID?
    }

    public let kind: Kind
    public let settings: Settings
    public internal(set) var counters = Counters()

    // Per entry (an id with a row, or a candidate): its key (an integer id's bits, or a
    // string's arena offset << 16 | byte count), row (-1: a candidate; -2: a free entry),
    // occurrences while a candidate, and the last tick it was seen.
    var keys: [UInt64] = []
    var rowOf: [Int32] = []
    var counts: [UInt32] = []
    var lastSeen: [UInt32] = []
    var freeEntries: [Int32] = []
    /// Per row: its entry, or -1 (the default row, and freed rows).
    var entryOf: [Int32] = [-1]
    var freeRows: [Int32] = []
    public private(set) var candidateCount = 0
    var arena: [UInt8] = []
    var arenaGarbage = 0
    /// Open addressing, linear probing: 0 empty, else the key's 32-bit hash << 32 | entry + 1.
    var index: [UInt64] = [UInt64](repeating: 0, count: 16)
    var indexCount = 0
    var nextSweep: Int64 = 0
    var lastForcedSweep: Int64 = -1
    /// Rows freed since the last `takeFreedRows`.
    var freed: [Int32] = []
    /// Whether row changes are logged in `changes` (for model updates).
    public var tracksChanges = false
    public internal(set) var changes: [Change] = []

    public init(kind: Kind, settings: Settings) {
        precondition(settings.capacity >= 1 && settings.capacity <= Settings.maxCapacity && settings.minCount >= 1)
        precondition(settings.candidateLimit <= Settings.maxCapacity)
        self.kind = kind
        self.settings = settings
    }

    /// Rows of the tables this dictionary indexes: the default row and every row handed out.
    public var rows: Int { entryOf.count }
    /// Rows held by ids now.
    public var occupied: Int { entryOf.count - 1 - freeRows.count }
    /// Ids held (with rows, or counted under the filter).
    public var entries: Int { occupied + candidateCount }

    /// Bytes the dictionary holds, its arrays' capacities included.
    public var memoryBytes: Int {
        keys.capacity * 8 + rowOf.capacity * 4 + counts.capacity * 4 + lastSeen.capacity * 4 + freeEntries.capacity * 4
            + entryOf.capacity * 4 + freeRows.capacity * 4 + arena.capacity + index.capacity * 8
    }

    // MARK: Mapping

    /// The row of one occurrence of `id` at `tick` (ticks never fall between calls): its
    /// own, a new one, or 0, the default row (under the filter, untracked, or refused).
    public func row(for id: ExternalID, tick: UInt32) -> Int32 {
        counters.lookups += 1
        let h = Self.hash(id)
        let (slot, found) = find(id, hash: h)
        if let e = found {
            lastSeen[e] = tick
            if rowOf[e] >= 0 { return rowOf[e] }
            if counts[e] < UInt32.max { counts[e] += 1 }
            guard Int(counts[e]) >= settings.minCount else {
                counters.filtered += 1
                return 0
            }
            guard let r = takeRow(tick: tick) else {
                counters.refused += 1
                return 0
            }
            candidateCount -= 1
            give(row: r, to: e, tick: tick)
            return r
        }
        if settings.minCount <= 1 {
            let held = indexCount
            guard let r = takeRow(tick: tick) else {
                counters.refused += 1
                return 0
            }
            // A forced sweep moves ids in the index: then the slot is looked for again.
            let e = insert(id, hash: h, slot: indexCount == held ? slot : nil, row: r, tick: tick)
            give(row: r, to: e, tick: tick)
            return r
        }
        guard candidateCount < settings.candidateLimit else {
            counters.untracked += 1
            return 0
        }
        let e = insert(id, hash: h, slot: slot, row: -1, tick: tick)
        counts[e] = 1
        candidateCount += 1
        counters.filtered += 1
        return 0
    }

    /// The row `id` holds, if any (no counting: what a server looks up).
    public func lookup(_ id: ExternalID) -> Int32? {
        guard let e = find(id, hash: Self.hash(id)).entry, rowOf[e] >= 0 else { return nil }
        return rowOf[e]
    }

    /// The id holding `row`, if any.
    public func id(ofRow row: Int) -> ExternalID? {
        guard row > 0, row < entryOf.count, entryOf[row] >= 0 else { return nil }
        return key(Int(entryOf[row]))
    }

    /// The ticks' start: frees the rows of ids unseen for `expireAfterTicks` when a look is due.
    public func advance(to tick: Int64) {
        guard settings.expireAfterTicks != nil, tick >= nextSweep else { return }
        sweep(tick: tick)
    }

    /// The rows freed since the last call: their owner resets them (fresh values, no
    /// history) before they train again.
    public func takeFreedRows() -> [Int32] {
        defer { freed.removeAll(keepingCapacity: true) }
        return freed
    }

    /// Frees `id`'s row now (its owner deleted the id), or forgets it as a candidate;
    /// returns the row freed. The row is handed out by `takeFreedRows` as an expired one is.
    @discardableResult
    public func forget(_ id: ExternalID, tick: UInt32) -> Int32? {
        guard let e = find(id, hash: Self.hash(id)).entry else { return nil }
        let r = rowOf[e]
        if r >= 0 {
            entryOf[Int(r)] = -1
            freeRows.append(r)
            freed.append(r)
            if tracksChanges { changes.append(Change(tick: tick, row: r, key: nil)) }
        } else {
            candidateCount -= 1
        }
        remove(entry: e)
        compactArenaIfWasteful()
        return r >= 0 ? r : nil
    }

    /// Forgets the changes logged so far.
    public func clearChanges() { changes.removeAll(keepingCapacity: true) }

    // MARK: Internals

    func give(row r: Int32, to e: Int, tick: UInt32) {
        rowOf[e] = r
        counts[e] = 0
        entryOf[Int(r)] = Int32(e)
        counters.created += 1
        if tracksChanges { changes.append(Change(tick: tick, row: r, key: key(e))) }
    }

    /// A free row: a freed one, else a new one below the capacity, else (with expiry) one
    /// freed by a sweep made now, at most once a tick.
    func takeRow(tick: UInt32) -> Int32? {
        if let r = freeRows.popLast() { return r }
        if entryOf.count - 1 < settings.capacity {
            entryOf.append(-1)
            return Int32(entryOf.count - 1)
        }
        guard settings.expireAfterTicks != nil, lastForcedSweep != Int64(tick) else { return nil }
        lastForcedSweep = Int64(tick)
        sweep(tick: Int64(tick))
        return freeRows.popLast()
    }

    /// Frees every id unseen for `expireAfterTicks`, in entry order.
    func sweep(tick: Int64) {
        guard let ttl = settings.expireAfterTicks else { return }
        nextSweep = tick + settings.sweepEvery
        for e in rowOf.indices where rowOf[e] != -2 && Int64(lastSeen[e]) + ttl <= tick {
            let r = rowOf[e]
            if r >= 0 {
                entryOf[Int(r)] = -1
                freeRows.append(r)
                freed.append(r)
                counters.expired += 1
                if tracksChanges { changes.append(Change(tick: UInt32(clamping: tick), row: r, key: nil)) }
            } else {
                candidateCount -= 1
                counters.forgotten += 1
            }
            remove(entry: e)
        }
        compactArenaIfWasteful()
    }

    static func hash(_ id: ExternalID) -> UInt32 {
        var h = Hasher()
        switch id {
        case .int(let v): h.combine(v)
        case .string(var s): s.withUTF8 { h.combine(bytes: UnsafeRawBufferPointer($0)) }
        }
        return UInt32(truncatingIfNeeded: h.finalize())
    }

    /// The slot where `id` is (or would go), and its entry if present.
    func find(_ id: ExternalID, hash h: UInt32) -> (slot: Int, entry: Int?) {
        let mask = index.count - 1
        var i = Int(h) & mask
        switch id {
        case .int(let v):
            let bits = UInt64(bitPattern: v)
            while true {
                let s = index[i]
                if s == 0 { return (i, nil) }
                if UInt32(s >> 32) == h, keys[Int(UInt32(truncatingIfNeeded: s)) - 1] == bits { return (i, Int(UInt32(truncatingIfNeeded: s)) - 1) }
                i = (i + 1) & mask
            }
        case .string(var text):
            return text.withUTF8 { bytes in
                while true {
                    let s = index[i]
                    if s == 0 { return (i, nil) }
                    let e = Int(UInt32(truncatingIfNeeded: s)) - 1
                    if UInt32(s >> 32) == h, Int(keys[e] & 0xFFFF) == bytes.count,
                       arena.withUnsafeBufferPointer({ a in bytes.count == 0 || memcmp(a.baseAddress! + Int(keys[e] >> 16), bytes.baseAddress!, bytes.count) == 0 }) {
                        return (i, e)
                    }
                    i = (i + 1) & mask
                }
            }
        }
    }

    /// Adds `id` as a new entry (at `slot` when that is still its place in the index).
    func insert(_ id: ExternalID, hash h: UInt32, slot: Int?, row: Int32, tick: UInt32) -> Int {
        let e: Int
        if let free = freeEntries.popLast() {
            e = Int(free)
        } else {
            e = keys.count
            keys.append(0)
            rowOf.append(-2)
            counts.append(0)
            lastSeen.append(0)
        }
        store(id, at: e, hash: h, slot: slot, row: row, tick: tick)
        return e
    }

    /// Fills entry `e` (a free one) with `id` and indexes it.
    func store(_ id: ExternalID, at e: Int, hash h: UInt32, slot: Int?, row: Int32, tick: UInt32) {
        switch id {
        case .int(let v): keys[e] = UInt64(bitPattern: v)
        case .string(var s):
            precondition(s.utf8.count <= ExternalID.maxStringBytes, "string ids are checked against ExternalID.maxStringBytes before they get here")
            keys[e] = UInt64(arena.count) << 16 | UInt64(s.utf8.count)
            s.withUTF8 { arena.append(contentsOf: $0) }
        }
        rowOf[e] = row
        counts[e] = 0
        lastSeen[e] = tick
        if (indexCount + 1) * 5 > index.count * 4 {
            growIndex()
            place(h, entry: e)
        } else if let slot {
            index[slot] = UInt64(h) << 32 | UInt64(e + 1)
        } else {
            place(h, entry: e)
        }
        indexCount += 1
    }

    func place(_ h: UInt32, entry e: Int) {
        let mask = index.count - 1
        var i = Int(h) & mask
        while index[i] != 0 { i = (i + 1) & mask }
        index[i] = UInt64(h) << 32 | UInt64(e + 1)
    }

    func growIndex() {
        let old = index
        index = [UInt64](repeating: 0, count: old.count * 2)
        for s in old where s != 0 { place(UInt32(s >> 32), entry: Int(UInt32(truncatingIfNeeded: s)) - 1) }
    }

    /// Removes entry `e` from the index (backward-shift deletion: no tombstones) and frees it.
    func remove(entry e: Int) {
        let mask = index.count - 1
        // The entry's slot: probe from its home for the slot that points at it.
        var hole = Int(storedHash(e)) & mask
        while UInt32(truncatingIfNeeded: index[hole]) != UInt32(e + 1) { hole = (hole + 1) & mask }
        var j = hole
        while true {
            j = (j + 1) & mask
            let s = index[j]
            if s == 0 { break }
            let home = Int(UInt32(s >> 32)) & mask
            // Move s back into the hole unless its home lies cyclically in (hole, j].
            let stays = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j)
            if !stays {
                index[hole] = s
                hole = j
            }
        }
        index[hole] = 0
        indexCount -= 1
        if kind == .string { arenaGarbage += Int(keys[e] & 0xFFFF) }
        rowOf[e] = -2
        counts[e] = 0
        freeEntries.append(Int32(e))
    }

    /// Entry `e`'s hash, as `hash(_:)` gives its id's, read from the stored key.
    func storedHash(_ e: Int) -> UInt32 {
        var h = Hasher()
        switch kind {
        case .int64: h.combine(Int64(bitPattern: keys[e]))
        case .string:
            let at = Int(keys[e] >> 16), n = Int(keys[e] & 0xFFFF)
            arena.withUnsafeBytes { h.combine(bytes: UnsafeRawBufferPointer(rebasing: $0[at..<at + n])) }
        }
        return UInt32(truncatingIfNeeded: h.finalize())
    }

    func key(_ e: Int) -> ExternalID {
        switch kind {
        case .int64: return .int(Int64(bitPattern: keys[e]))
        case .string:
            let at = Int(keys[e] >> 16), n = Int(keys[e] & 0xFFFF)
            return .string(arena.withUnsafeBufferPointer { String(decoding: UnsafeBufferPointer(rebasing: $0[at..<at + n]), as: UTF8.self) })
        }
    }

    /// Rewrites the arena without the bytes of freed ids once they are most of it.
    func compactArenaIfWasteful() {
        guard kind == .string, arenaGarbage > 1 << 16, arenaGarbage * 2 > arena.count else { return }
        var fresh: [UInt8] = []
        fresh.reserveCapacity(arena.count - arenaGarbage)
        for e in rowOf.indices where rowOf[e] != -2 {
            let at = Int(keys[e] >> 16), n = Int(keys[e] & 0xFFFF)
            keys[e] = UInt64(fresh.count) << 16 | UInt64(n)
            fresh.append(contentsOf: arena[at..<at + n])
        }
        arena = fresh
        arenaGarbage = 0
    }
}

// MARK: Checkpoints and model updates

extension IdDictionary {
    /// The whole state: counters, schedule, entries in order, free lists.
    public func write(to w: inout BinaryWriter) {
        w.write(UInt8(kind == .string ? 1 : 0))
        for (_, field) in Counters.fields { w.write(UInt64(counters[keyPath: field])) }
        w.write(nextSweep)
        w.write(lastForcedSweep)
        w.write(UInt32(entryOf.count))
        w.write(UInt32(rowOf.count))
        for e in rowOf.indices {
            w.write(rowOf[e])
            guard rowOf[e] != -2 else { continue }
            // As `write(_ id:)` writes an id, straight from the stored key.
            switch kind {
            case .int64: w.write(Int64(bitPattern: keys[e]))
            case .string:
                let at = Int(keys[e] >> 16), n = Int(keys[e] & 0xFFFF)
                w.write(UInt16(n))
                arena.withUnsafeBufferPointer { w.writeBytes(UnsafeBufferPointer(rebasing: $0[at..<at + n])) }
            }
            w.write(counts[e])
            w.write(lastSeen[e])
        }
        w.write(UInt32(freeEntries.count))
        for e in freeEntries { w.write(e) }
        w.write(UInt32(freeRows.count))
        for r in freeRows { w.write(r) }
    }

    /// Reads what `write(to:)` wrote, for a dictionary of `kind` with `settings`, checking
    /// every row, count and list against them (a forged file is an error, never a trap).
    public static func read(from r: inout BinaryReader, kind: Kind, settings: Settings) throws(BinaryReadError) -> IdDictionary {
        let d = IdDictionary(kind: kind, settings: settings)
        let kindAt = r.offset
        let storedKind = try r.read(UInt8.self, "id kind")
        guard storedKind == (kind == .string ? 1 : 0) else {
            throw BinaryReadError("the dictionary holds \(storedKind == 1 ? "string" : "int64") ids; this one takes \(kind.rawValue) ids", at: kindAt)
        }
        for (name, field) in Counters.fields {
            let at = r.offset
            d.counters[keyPath: field] = try r.readInt(name)
            // Room to count on for centuries, and no overflow trap from a forged file.
            guard d.counters[keyPath: field] < 1 << 62 else { throw BinaryReadError("implausible \(name) \(d.counters[keyPath: field])", at: at) }
        }
        d.nextSweep = try r.read(Int64.self, "next sweep")
        d.lastForcedSweep = try r.read(Int64.self, "last forced sweep")
        let rowsAt = r.offset
        let rows = Int(try r.read(UInt32.self, "rows"))
        guard rows >= 1, rows - 1 <= settings.capacity else {
            throw BinaryReadError("\(rows) rows, outside 1...\(settings.capacity + 1) (the capacity and the default row)", at: rowsAt)
        }
        // Each row is an entry's or listed free (4 bytes at least): the file must hold them.
        guard rows - 1 <= r.remaining / 4 else { throw BinaryReadError("implausible \(rows) rows with \(r.remaining) bytes left", at: rowsAt) }
        d.entryOf = [Int32](repeating: -1, count: rows)
        let entries = try r.readCount32("entries", elementSize: 4)
        guard entries <= settings.capacity + settings.candidateLimit else {
            throw BinaryReadError("\(entries) entries, more than the capacity and candidates allow", at: r.offset - 4)
        }
        d.keys = [UInt64](repeating: 0, count: entries)
        d.rowOf = [Int32](repeating: -2, count: entries)
        d.counts = [UInt32](repeating: 0, count: entries)
        d.lastSeen = [UInt32](repeating: 0, count: entries)
        for e in 0..<entries {
            let at = r.offset
            let row = try r.read(Int32.self, "entry row")
            guard row >= -2, row < Int32(rows), row != 0 else { throw BinaryReadError("entry \(e): row \(row), outside the \(rows) rows", at: at) }
            guard row != -2 else { continue }
            let id = try read(kind, from: &r)
            let count = try r.read(UInt32.self, "entry count")
            let seen = try r.read(UInt32.self, "entry tick")
            let h = hash(id)
            let (slot, existing) = d.find(id, hash: h)
            guard existing == nil else { throw BinaryReadError("entry \(e): id \(id) is held twice", at: at) }
            d.store(id, at: e, hash: h, slot: slot, row: row, tick: seen)
            d.counts[e] = count
            if row >= 0 {
                guard d.entryOf[Int(row)] == -1 else { throw BinaryReadError("entry \(e): row \(row) is held twice", at: at) }
                d.entryOf[Int(row)] = Int32(e)
            } else {
                d.candidateCount += 1
            }
        }
        guard d.candidateCount <= settings.candidateLimit else {
            throw BinaryReadError("\(d.candidateCount) candidates, more than the \(settings.candidateLimit) the settings allow", at: r.offset)
        }
        let freeEntries = try r.readCount32("free entries", elementSize: 4)
        var seen = Set<Int32>()
        for _ in 0..<freeEntries {
            let at = r.offset
            let e = try r.read(Int32.self, "free entry")
            guard e >= 0, Int(e) < entries, d.rowOf[Int(e)] == -2, seen.insert(e).inserted else {
                throw BinaryReadError("free entry \(e) is not a free entry", at: at)
            }
            d.freeEntries.append(e)
        }
        guard d.freeEntries.count == d.rowOf.count(where: { $0 == -2 }) else {
            throw BinaryReadError("the free entries list misses some free entries", at: r.offset)
        }
        let freeRows = try r.readCount32("free rows", elementSize: 4)
        seen = []
        for _ in 0..<freeRows {
            let at = r.offset
            let row = try r.read(Int32.self, "free row")
            guard row > 0, Int(row) < rows, d.entryOf[Int(row)] == -1, seen.insert(row).inserted else {
                throw BinaryReadError("free row \(row) is not a free row", at: at)
            }
            d.freeRows.append(row)
        }
        guard d.freeRows.count == d.entryOf.dropFirst().count(where: { $0 == -1 }) else {
            throw BinaryReadError("the free rows list misses some rows no id holds", at: r.offset)
        }
        return d
    }

    package static func write(_ id: ExternalID, to w: inout BinaryWriter) {
        switch id {
        case .int(let v): w.write(v)
        case .string(let s):
            w.write(UInt16(s.utf8.count))
            for b in s.utf8 { w.write(b) }
        }
    }

    package static func read(_ kind: Kind, from r: inout BinaryReader) throws(BinaryReadError) -> ExternalID {
        switch kind {
        case .int64: return .int(try r.read(Int64.self, "id"))
        case .string:
            let at = r.offset
            let n = Int(try r.read(UInt16.self, "id length"))
            guard n <= ExternalID.maxStringBytes, n <= r.remaining else {
                throw BinaryReadError("a string id of \(n) bytes (at most \(ExternalID.maxStringBytes), \(r.remaining) left)", at: at)
            }
            var bytes = [UInt8](repeating: 0, count: n)
            if n > 0 { try bytes.withUnsafeMutableBufferPointer { (b) throws(BinaryReadError) in try r.readValues(bytes: b) } }
            guard let s = String(validating: bytes, as: UTF8.self) else { throw BinaryReadError("a string id that is not UTF-8", at: at) }
            return .string(s)
        }
    }

    /// The row changes logged since `clearChanges`, then clears them.
    public func writeChanges(to w: inout BinaryWriter) {
        w.write(UInt8(kind == .string ? 1 : 0))
        w.write(UInt32(changes.count))
        for c in changes {
            w.write(c.tick)
            w.write(c.row)
            if let key = c.key {
                w.write(UInt8(1))
                Self.write(key, to: &w)
            } else {
                w.write(UInt8(0))
            }
        }
        clearChanges()
    }

    /// Reads the changes `writeChanges` wrote, checked against this dictionary's capacity.
    public func readChanges(from r: inout BinaryReader) throws(BinaryReadError) -> [Change] {
        let kindAt = r.offset
        let theirs = try r.read(UInt8.self, "id kind")
        guard theirs == (kind == .string ? 1 : 0) else {
            throw BinaryReadError("the trainer's ids are \(theirs == 1 ? "string" : theirs == 0 ? "int64" : "of kind \(theirs)"); this dictionary takes \(kind.rawValue) ids (give the server a --mapping declaring the trainer's id kinds)", at: kindAt)
        }
        let count = try r.readCount32("row changes", elementSize: 9)
        var out: [Change] = []
        out.reserveCapacity(count)
        for _ in 0..<count {
            let at = r.offset
            let tick = try r.read(UInt32.self, "change tick")
            let row = try r.read(Int32.self, "change row")
            guard row > 0, Int(row) <= settings.capacity else { throw BinaryReadError("row change of row \(row): outside 1...\(settings.capacity)", at: at + 4) }
            let flag = try r.read(UInt8.self, "change flag")
            guard flag <= 1 else { throw BinaryReadError("row change flag \(flag)", at: at + 8) }
            out.append(Change(tick: tick, row: row, key: flag == 1 ? try Self.read(kind, from: &r) : nil))
        }
        return out
    }

    /// Follows a trainer's dictionary (a server's): row `change.row` now holds
    /// `change.key`, or nothing. An id moving rows leaves its old one.
    public func apply(_ change: Change) {
        let r = Int(change.row)
        if r >= entryOf.count { entryOf.append(contentsOf: repeatElement(-1, count: r + 1 - entryOf.count)) }
        if entryOf[r] >= 0 { remove(entry: Int(entryOf[r])); entryOf[r] = -1 }
        guard let id = change.key else { return }
        let h = Self.hash(id)
        let (slot, existing) = find(id, hash: h)
        if let e = existing {
            if rowOf[e] >= 0 { entryOf[Int(rowOf[e])] = -1 }
            rowOf[e] = change.row
            entryOf[r] = Int32(e)
        } else {
            let e = insert(id, hash: h, slot: slot, row: change.row, tick: change.tick)
            entryOf[r] = Int32(e)
        }
        compactArenaIfWasteful()
    }
}
