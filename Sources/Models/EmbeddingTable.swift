import CKernels
import Foundation
import RecCore

/// An embedding table with row-wise lazy Adam state: only rows that received gradient in a
/// step are updated, with the global step's bias correction (as the hand-shaped reference
/// trainer does; dense Adam would touch every row of a million-row table every step).
///
/// Rows are initialised from a stream keyed by (seed, table, row), so a table that grows
/// as items arrive gets the same rows whatever order it grows in. Values and Adam moments
/// live in buffers the kernels read through plain pointers (valid until the next `grow`).
public final class EmbeddingTable {
    public let dim: Int
    let seed: UInt64
    let tableID: UInt64
    let initScale: Float
    public private(set) var rows = 0
    private var capacity = 0
    public private(set) var values: UnsafeMutablePointer<Float>
    private(set) var m: UnsafeMutablePointer<Float>
    private(set) var v: UnsafeMutablePointer<Float>
    /// Whether steps record the rows they change (for model updates that carry changed
    /// rows only): `changedRows` lists each once, in the order first changed.
    public var tracksChanges = false
    public private(set) var changedRows: [Int32] = []
    var isChanged: [Bool] = []

    public init(rows: Int, dim: Int, seed: UInt64, tableID: UInt64, initScale: Float) {
        self.dim = dim
        self.seed = seed
        self.tableID = tableID
        self.initScale = initScale
        values = allocateRows(0)
        m = allocateRows(0)
        v = allocateRows(0)
        grow(to: rows)
    }

    deinit {
        freeRows(values, count: capacity * dim)
        freeRows(m, count: capacity * dim)
        freeRows(v, count: capacity * dim)
    }

    /// Adds rows up to `count` (never shrinks); may move the buffers.
    public func grow(to count: Int) {
        guard count > rows else { return }
        if count > capacity {
            let newCapacity = max(count, capacity * 2, 16)
            for buffer in [\EmbeddingTable.values, \EmbeddingTable.m, \EmbeddingTable.v] as [ReferenceWritableKeyPath<EmbeddingTable, UnsafeMutablePointer<Float>>] {
                let fresh = allocateRows(newCapacity * dim)
                fresh.update(from: self[keyPath: buffer], count: rows * dim)
                freeRows(self[keyPath: buffer], count: capacity * dim)
                self[keyPath: buffer] = fresh
            }
            capacity = newCapacity
        }
        for row in rows..<count {
            var rng = RandomStream(seed: seed, 100 + tableID, UInt64(row))
            for d in 0..<dim { values[row * dim + d] = initScale * Float(rng.nextGaussian()) }
        }
        (m + rows * dim).initialize(repeating: 0, count: (count - rows) * dim)
        (v + rows * dim).initialize(repeating: 0, count: (count - rows) * dim)
        rows = count
    }

    @inline(__always)
    public func row(_ r: Int) -> UnsafeMutablePointer<Float> { values + r * dim }

    /// Puts row `r` back as it started (its initial values, no Adam moments), for a row
    /// whose id expired and that another id takes over.
    public func reset(row r: Int) {
        precondition(r < rows)
        var rng = RandomStream(seed: seed, 100 + tableID, UInt64(r))
        for d in 0..<dim { values[r * dim + d] = initScale * Float(rng.nextGaussian()) }
        (m + r * dim).update(repeating: 0, count: dim)
        (v + r * dim).update(repeating: 0, count: dim)
        if tracksChanges { markChanged(r) }
    }

    @inline(__always)
    func markChanged(_ row: Int) {
        if row >= isChanged.count { isChanged.append(contentsOf: repeatElement(false, count: max(rows, row + 1) - isChanged.count)) }
        if !isChanged[row] {
            isChanged[row] = true
            changedRows.append(Int32(row))
        }
    }

    /// Forgets the changes recorded so far.
    public func clearChanges() {
        for row in changedRows { isChanged[Int(row)] = false }
        changedRows.removeAll(keepingCapacity: true)
    }

    /// Bytes per row: values and the two Adam moments.
    public var bytesPerRow: Int { dim * 4 * 3 }
}

/// Room for `count` floats of table rows, to give back with `freeRows(_:count:)`: a large
/// table on its own huge-page mapping (`HugePages`; rows are read at random), a small one
/// from the allocator.
func allocateRows(_ count: Int) -> UnsafeMutablePointer<Float> {
    let bytes = max(count, 1) * MemoryLayout<Float>.stride
    if bytes >= HugePages.minimumBytes { return HugePages.allocate(bytes: bytes).bindMemory(to: Float.self, capacity: count) }
    return .allocate(capacity: max(count, 1))
}

/// Gives back what `allocateRows(count)` returned.
func freeRows(_ p: UnsafeMutablePointer<Float>, count: Int) {
    let bytes = max(count, 1) * MemoryLayout<Float>.stride
    if bytes >= HugePages.minimumBytes { HugePages.free(UnsafeMutableRawPointer(p), bytes: bytes) } else { p.deallocate() }
}

/// Gradients for a few rows of one table, gathered during a batch: a slot per touched row.
/// A class, so that threads may fill the gradients of different tables at once.
///
/// A row finds its slot through a small open-addressing hash table (linear probing, at
/// most half full) sized by the rows touched, not by the table: a step touches a few
/// thousand rows of a table of millions, so the lookups stay in cache where an array
/// indexed by row would miss on every one.
final class SparseGradient {
    let dim: Int
    /// The rows touched, in the order first touched: slot i holds `touched[i]`'s gradient.
    private(set) var touched: [Int32] = []
    var gradients: [Float] = []
    /// Each entry: (row + 1) << 32 | slot; 0 is empty.
    private var entries: UnsafeMutablePointer<UInt64>
    private var mask: Int

    init(dim: Int) {
        self.dim = dim
        mask = 1023
        entries = .allocate(capacity: mask + 1)
        entries.initialize(repeating: 0, count: mask + 1)
    }

    deinit { entries.deallocate() }

    /// Entries in the hash table.
    var capacity: Int { mask + 1 }

    /// Where a probe for `row` starts (Fibonacci hashing).
    @inline(__always)
    static func home(_ row: Int, mask: Int) -> Int {
        Int(truncatingIfNeeded: (UInt64(row) &* 0x9E37_79B9_7F4A_7C15) >> 40) & mask
    }

    /// Where `row`'s entry is, or the empty entry where it would go.
    @inline(__always)
    private func position(_ row: Int) -> Int {
        let key = UInt64(row + 1) << 32
        var i = Self.home(row, mask: mask)
        while true {
            let e = entries[i]
            if e == 0 || e & 0xFFFF_FFFF_0000_0000 == key { return i }
            i = (i + 1) & mask
        }
    }

    /// The slot of `row`'s gradient, if the row was touched.
    func slot(of row: Int) -> Int? {
        let e = entries[position(row)]
        return e == 0 ? nil : Int(e & 0xFFFF_FFFF)
    }

    /// The offset in `gradients` where the row's gradient accumulates (a fresh row gets a
    /// zero gradient).
    @inline(__always)
    func slot(_ row: Int) -> Int {
        let i = position(row)
        let e = entries[i]
        if e != 0 { return Int(e & 0xFFFF_FFFF) * dim }
        let slot = touched.count
        entries[i] = UInt64(row + 1) << 32 | UInt64(slot)
        touched.append(Int32(row))
        gradients.append(contentsOf: repeatElement(0, count: dim))
        if touched.count * 2 > mask + 1 { rehash(capacity: 2 * (mask + 1)) }
        return slot * dim
    }

    private func rehash(capacity: Int) {
        entries.deallocate()
        mask = capacity - 1
        entries = .allocate(capacity: capacity)
        entries.initialize(repeating: 0, count: capacity)
        for (slot, row) in touched.enumerated() { entries[position(Int(row))] = UInt64(Int(row) + 1) << 32 | UInt64(slot) }
    }

    /// gradient[row] += vector.
    @inline(__always)
    func add(_ vector: UnsafePointer<Float>, row: Int) {
        let offset = slot(row)
        gradients.withUnsafeMutableBufferPointer { g in axpy(1, vector, g.baseAddress! + offset, dim) }
    }

    /// The offset in `gradients` of a row that has a slot.
    @inline(__always)
    private func offset(_ row: Int) -> Int { Int(entries[position(row)] & 0xFFFF_FFFF) * dim }

    /// gradient[rows[i]] += scales[i] vector for i in 0..<count, in order (a row may repeat):
    /// the rows' slots first (which may grow the gradients), then the sums, with the
    /// gradients taken once.
    func add(_ vector: UnsafePointer<Float>, scales: UnsafePointer<Float>, rows: UnsafePointer<Int>, count: Int) {
        for i in 0..<count { _ = slot(rows[i]) }
        gradients.withUnsafeMutableBufferPointer { g in
            for i in 0..<count { axpy(scales[i], vector, g.baseAddress! + offset(rows[i]), dim) }
        }
    }

    /// Adds `other`'s gradients into these (rows in `other`'s order).
    func add(_ other: SparseGradient) {
        for row in other.touched { _ = slot(Int(row)) }
        other.gradients.withUnsafeBufferPointer { g in
            gradients.withUnsafeMutableBufferPointer { d in
                for (slot, row) in other.touched.enumerated() { axpy(1, g.baseAddress! + slot * dim, d.baseAddress! + offset(Int(row)), dim) }
            }
        }
    }

    func clear() {
        if touched.count * 16 < mask + 1 {
            // Last in, first out: a row's probe from its hash passes only entries placed
            // before it, which are still there. (After a rehash the table is at least a
            // quarter full, so the whole-table wipe below runs instead.)
            for row in touched.reversed() { entries[position(Int(row))] = 0 }
        } else {
            entries.update(repeating: 0, count: mask + 1)
        }
        touched.removeAll(keepingCapacity: true)
        gradients.removeAll(keepingCapacity: true)
    }
}

/// Adam's constants (Kingma and Ba 2015; PyTorch's defaults).
public struct AdamSettings: Sendable, Equatable {
    public var learningRate: Float = 0.01
    public var beta1: Float = 0.9
    public var beta2: Float = 0.999
    public var epsilon: Float = 1e-8
    public init(learningRate: Float = 0.01) { self.learningRate = learningRate }
}

extension EmbeddingTable {
    /// Applies one dense Adam step, as the reference's optimizer does for its tables:
    /// every row's moments decay, and every row with a moment moves, whether or not it got
    /// gradient this step (rows without gradient see zero).
    func applyDenseAdam(_ gradient: SparseGradient, step: Int, _ adam: AdamSettings) {
        let bc1 = 1 - pow(adam.beta1, Float(step)), bc2 = 1 - pow(adam.beta2, Float(step))
        let rate = adam.learningRate / bc1
        for row in 0..<rows {
            if tracksChanges { markChanged(row) }
            let slot = gradient.slot(of: row)
            let base = row * dim
            for d in 0..<dim {
                let gd = slot.map { gradient.gradients[$0 * dim + d] } ?? 0
                m[base + d] = adam.beta1 * m[base + d] + (1 - adam.beta1) * gd
                v[base + d] = adam.beta2 * v[base + d] + (1 - adam.beta2) * gd * gd
                values[base + d] -= rate * m[base + d] / ((v[base + d] / bc2).squareRoot() + adam.epsilon)
            }
        }
    }

    /// Applies one lazy Adam step to every row `gradient` touched, on this thread.
    func applyAdam(_ gradient: SparseGradient, step: Int, _ adam: AdamSettings) {
        if tracksChanges { markChanged(gradient) }
        applyAdam(gradient, slots: 0..<gradient.touched.count, step: step, adam)
    }

    /// Records the rows `gradient` touched as changed (before `applyAdam` on them, which
    /// may run on several threads at once).
    func markChanged(_ gradient: SparseGradient) {
        for row in gradient.touched { markChanged(Int(row)) }
    }

    /// Applies one lazy Adam step to the rows of `gradient`'s slots `slots`; `step` is the
    /// global step (from 1) used for bias correction. Different slots of one table may be
    /// updated on different threads at once: each touches its own rows only. Eight lanes
    /// at a time, each lane the scalar formula's operations in its order.
    func applyAdam(_ gradient: SparseGradient, slots: Range<Int>, step: Int, _ adam: AdamSettings) {
        let bc1 = 1 - pow(adam.beta1, Float(step)), bc2 = 1 - pow(adam.beta2, Float(step))
        let rate = adam.learningRate / bc1
        let b1 = adam.beta1, b2 = adam.beta2, c1 = 1 - adam.beta1, c2 = 1 - adam.beta2, eps = adam.epsilon
        let b1v = SIMD8(repeating: b1), b2v = SIMD8(repeating: b2), c1v = SIMD8(repeating: c1), c2v = SIMD8(repeating: c2)
        let bc2v = SIMD8(repeating: bc2), ratev = SIMD8(repeating: rate), epsv = SIMD8(repeating: eps)
        let dim = dim, values = values, m = m, v = v, vector = dim / 8 * 8
        gradient.touched.withUnsafeBufferPointer { touched in
            gradient.gradients.withUnsafeBufferPointer { gp in
                let g = gp.baseAddress!
                // The rows are random: ask for a few ahead while updating these.
                let ahead = 4
                @inline(__always) func prefetch(_ slot: Int) {
                    let base = Int(touched[slot]) * dim
                    recstream_prefetch(values + base, dim * 4)
                    recstream_prefetch(m + base, dim * 4)
                    recstream_prefetch(v + base, dim * 4)
                }
                for slot in slots.prefix(ahead) { prefetch(slot) }
                for slot in slots {
                    if slot + ahead < slots.upperBound { prefetch(slot + ahead) }
                    let base = Int(touched[slot]) * dim, gb = g + slot * dim
                    let mr = m + base, vr = v + base, xr = values + base
                    var d = 0
                    while d < vector {
                        let gd = load8(gb + d)
                        let md = b1v * load8(mr + d) + c1v * gd
                        let vd = b2v * load8(vr + d) + c2v * gd * gd
                        store8(md, mr + d)
                        store8(vd, vr + d)
                        store8(load8(xr + d) - ratev * md / ((vd / bc2v).squareRoot() + epsv), xr + d)
                        d += 8
                    }
                    while d < dim {
                        let gd = gb[d]
                        mr[d] = b1 * mr[d] + c1 * gd
                        vr[d] = b2 * vr[d] + c2 * gd * gd
                        xr[d] -= rate * mr[d] / ((vr[d] / bc2).squareRoot() + eps)
                        d += 1
                    }
                }
            }
        }
    }
}
