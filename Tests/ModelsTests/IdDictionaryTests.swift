import Testing
@testable import Models
@testable import RecCore

@Suite("IdDictionary")
struct IdDictionaryTests {
    static func string(_ capacity: Int, minCount: Int = 1, expire: Int64? = nil, candidates: Int? = nil) -> IdDictionary {
        IdDictionary(kind: .string, settings: .init(capacity: capacity, minCount: minCount, expireAfterTicks: expire, candidates: candidates))
    }

    @Test("ids get rows 1, 2, ... at first sight, keep them, and map back")
    func rowsAtFirstSight() {
        let d = Self.string(10)
        #expect(d.row(for: .string("u_8f3a"), tick: 0) == 1)
        #expect(d.row(for: .string("u_77"), tick: 0) == 2)
        #expect(d.row(for: .string("u_8f3a"), tick: 1) == 1)
        #expect(d.row(for: .string(""), tick: 1) == 3)
        #expect(d.lookup(.string("u_77")) == 2)
        #expect(d.lookup(.string("never")) == nil)
        #expect(d.id(ofRow: 1) == .string("u_8f3a"))
        #expect(d.id(ofRow: 3) == .string(""))
        #expect(d.id(ofRow: 0) == nil)
        #expect(d.rows == 4 && d.occupied == 3)
        #expect(d.counters.lookups == 4 && d.counters.created == 3)
    }

    @Test("64-bit ids beyond 32 bits, negative ones too, are distinct keys")
    func int64Keys() {
        let d = IdDictionary(kind: .int64, settings: .init(capacity: 100))
        let ids: [Int64] = [123_456_789_012, -1, 0, Int64.max, Int64.min, 4_294_967_296, 1]
        for (i, id) in ids.enumerated() { #expect(d.row(for: .int(id), tick: 0) == Int32(i + 1)) }
        for (i, id) in ids.enumerated() { #expect(d.lookup(.int(id)) == Int32(i + 1)) }
        #expect(d.id(ofRow: 1) == .int(123_456_789_012))
    }

    @Test("the frequency filter gives a row at the n-th occurrence; until then the default row")
    func frequencyFilter() {
        let d = Self.string(10, minCount: 3)
        #expect(d.row(for: .string("a"), tick: 0) == 0)
        #expect(d.row(for: .string("b"), tick: 0) == 0)
        #expect(d.row(for: .string("a"), tick: 1) == 0)
        #expect(d.row(for: .string("a"), tick: 2) == 1)
        #expect(d.row(for: .string("a"), tick: 2) == 1)
        #expect(d.lookup(.string("b")) == nil)
        #expect(d.candidateCount == 1)
        #expect(d.counters.filtered == 3 && d.counters.created == 1)
    }

    @Test("a full candidate list leaves new ids untracked; a full table refuses rows")
    func limits() {
        let d = Self.string(1, minCount: 2, candidates: 2)
        _ = d.row(for: .string("a"), tick: 0)
        _ = d.row(for: .string("b"), tick: 0)
        #expect(d.row(for: .string("c"), tick: 0) == 0)
        #expect(d.counters.untracked == 1)
        #expect(d.row(for: .string("a"), tick: 0) == 1)
        #expect(d.row(for: .string("b"), tick: 0) == 0)  // passed the filter, but the one row is a's
        #expect(d.counters.refused == 1)
        // b is still a candidate: it gets a row once one is free.
        #expect(d.candidateCount == 1)
    }

    @Test("rows unseen for T ticks are freed at the next look and reused, reported once")
    func expiry() {
        let d = Self.string(3, expire: 8)  // looks every tick (8 / 8)
        d.advance(to: 0)
        #expect(d.row(for: .string("old"), tick: 0) == 1)
        #expect(d.row(for: .string("kept"), tick: 0) == 2)
        for t in 1...7 {
            d.advance(to: Int64(t))
            _ = d.row(for: .string("kept"), tick: UInt32(t))
        }
        #expect(d.takeFreedRows().isEmpty)
        d.advance(to: 8)  // "old" last seen at 0: 8 ticks unseen
        #expect(d.lookup(.string("old")) == nil)
        #expect(d.lookup(.string("kept")) == 2)
        #expect(d.takeFreedRows() == [1])
        #expect(d.takeFreedRows().isEmpty)
        #expect(d.row(for: .string("new"), tick: 8) == 1)
        #expect(d.id(ofRow: 1) == .string("new"))
        #expect(d.counters.expired == 1)
    }

    @Test("a full table with expiry looks for expired rows at once, at most once a tick")
    func forcedSweep() {
        let d = Self.string(2, expire: 800)  // looks every 100 ticks by schedule
        d.advance(to: 0)
        _ = d.row(for: .string("a"), tick: 0)
        _ = d.row(for: .string("b"), tick: 500)
        // No scheduled look at 801 (advance is not called): the full table looks itself.
        #expect(d.row(for: .string("c"), tick: 801) == 1)  // a expired (unseen 801 ticks): its row reused
        #expect(d.row(for: .string("d"), tick: 801) == 0)  // b is fresh: refused
        #expect(d.counters.refused == 1 && d.counters.expired == 1)
    }

    @Test("many ids with expiry and reuse: the index stays consistent with the rows")
    func churn() {
        let d = IdDictionary(kind: .int64, settings: .init(capacity: 5_000, minCount: 2, expireAfterTicks: 16, candidates: 3_000))
        var rng = RandomStream(seed: 7, 1)
        for t in 0..<200 {
            d.advance(to: Int64(t))
            for _ in 0..<400 { _ = d.row(for: .int(Int64(rng.nextInt(below: 20_000)) * 1_000_003), tick: UInt32(t)) }
            _ = d.takeFreedRows()
        }
        // Every row's id looks up to that row; every free row has no id.
        var held = 0
        for r in 1..<d.rows {
            if let id = d.id(ofRow: r) {
                #expect(d.lookup(id) == Int32(r))
                held += 1
            }
        }
        #expect(held == d.occupied)
        #expect(d.indexCount == d.entries)
        #expect(d.counters.expired > 0 && d.counters.forgotten > 0)
    }

    @Test("a dictionary written and read back maps every later id as the original does")
    func roundTrip() throws {
        func drive(_ d: IdDictionary, ticks: Range<Int>) -> [Int32] {
            var rng = RandomStream(seed: 3, UInt64(ticks.lowerBound))
            var out: [Int32] = []
            for t in ticks {
                d.advance(to: Int64(t))
                for _ in 0..<300 { out.append(d.row(for: .string("user-\(rng.nextInt(below: 3_000))"), tick: UInt32(t))) }
                out += d.takeFreedRows()
            }
            return out
        }
        let settings = IdDictionary.Settings(capacity: 800, minCount: 2, expireAfterTicks: 10, candidates: 500)
        let straight = IdDictionary(kind: .string, settings: settings)
        let first = drive(straight, ticks: 0..<40)
        let rest = drive(straight, ticks: 40..<80)

        let interrupted = IdDictionary(kind: .string, settings: settings)
        #expect(drive(interrupted, ticks: 0..<40) == first)
        var w = BinaryWriter()
        interrupted.write(to: &w)
        let restored = try w.bytes.withUnsafeBytes { raw in
            var r = BinaryReader(raw)
            return try IdDictionary.read(from: &r, kind: .string, settings: settings)
        }
        #expect(drive(restored, ticks: 40..<80) == rest)
        var a = BinaryWriter(), b = BinaryWriter()
        straight.write(to: &a)
        restored.write(to: &b)
        #expect(a.bytes == b.bytes)
        #expect(restored.counters == straight.counters)
    }

    @Test("a forged dictionary is an error naming what is wrong, never a trap")
    func forged() {
        let settings = IdDictionary.Settings(capacity: 4)
        let d = IdDictionary(kind: .string, settings: settings)
        _ = d.row(for: .string("a"), tick: 0)
        _ = d.row(for: .string("b"), tick: 0)
        var w = BinaryWriter()
        d.write(to: &w)
        func error(_ bytes: [UInt8], kind: IdDictionary.Kind = .string, settings s: IdDictionary.Settings = settings) -> String? {
            bytes.withUnsafeBytes { raw in
                var r = BinaryReader(raw)
                do { _ = try IdDictionary.read(from: &r, kind: kind, settings: s) } catch { return "\(error)" }
                return nil
            }
        }
        #expect(error(w.bytes) == nil)
        #expect(error(w.bytes, kind: .int64)?.contains("holds string ids; this one takes int64 ids") == true)
        #expect(error(w.bytes, settings: .init(capacity: 1))?.contains("3 rows, outside 1...2") == true)
        // Both entries claim row 1.
        var twice = w.bytes
        let rowsAt = 1 + 8 * IdDictionary.Counters.fields.count + 16
        let secondRowAt = rowsAt + 8 + 4 + 2 + 1 + 8
        #expect(twice[secondRowAt] == 2)
        twice[secondRowAt] = 1
        #expect(error(twice)?.contains("row 1 is held twice") == true)
        // Every prefix is an error, not a trap.
        for n in 0..<w.bytes.count { #expect(error(Array(w.bytes[..<n])) != nil) }
    }

    @Test("a server's dictionary follows the trainer's changes")
    func follows() throws {
        let settings = IdDictionary.Settings(capacity: 3, expireAfterTicks: 2)
        let trainer = IdDictionary(kind: .string, settings: settings)
        trainer.tracksChanges = true
        let server = IdDictionary(kind: .string, settings: settings)
        for (t, ids) in [["a", "b"], ["b"], ["b", "c"], ["d", "e"]].enumerated() {
            trainer.advance(to: Int64(t))
            for id in ids { _ = trainer.row(for: .string(id), tick: UInt32(t)) }
            var w = BinaryWriter()
            trainer.writeChanges(to: &w)
            try w.bytes.withUnsafeBytes { raw in
                var r = BinaryReader(raw)
                for c in try server.readChanges(from: &r) { server.apply(c) }
            }
            for r in 1..<trainer.rows { #expect(server.id(ofRow: r) == trainer.id(ofRow: r)) }
            for id in ["a", "b", "c", "d", "e"] { #expect(server.lookup(.string(id)) == trainer.lookup(.string(id))) }
        }
        #expect(trainer.lookup(.string("a")) == nil)  // expired at tick 2, its row given to c
        #expect(server.lookup(.string("c")) == 1)
    }
}
