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
        values = .allocate(capacity: 0)
        m = .allocate(capacity: 0)
        v = .allocate(capacity: 0)
        grow(to: rows)
    }

    deinit {
        values.deallocate()
        m.deallocate()
        v.deallocate()
    }

    /// Adds rows up to `count` (never shrinks); may move the buffers.
    public func grow(to count: Int) {
        guard count > rows else { return }
        if count > capacity {
            let newCapacity = max(count, capacity * 2, 16)
            for buffer in [\EmbeddingTable.values, \EmbeddingTable.m, \EmbeddingTable.v] as [ReferenceWritableKeyPath<EmbeddingTable, UnsafeMutablePointer<Float>>] {
                let fresh = UnsafeMutablePointer<Float>.allocate(capacity: newCapacity * dim)
                fresh.update(from: self[keyPath: buffer], count: rows * dim)
                self[keyPath: buffer].deallocate()
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

/// Gradients for a few rows of one table, gathered during a batch: a slot per touched row.
struct SparseGradient {
    let dim: Int
    var slotOfRow: [Int32]
    var touched: [Int32] = []
    var gradients: [Float] = []

    init(rows: Int, dim: Int) {
        self.dim = dim
        slotOfRow = [Int32](repeating: -1, count: rows)
    }

    mutating func grow(to rows: Int) {
        if rows > slotOfRow.count { slotOfRow.append(contentsOf: repeatElement(-1, count: rows - slotOfRow.count)) }
    }

    /// The offset in `gradients` where the row's gradient accumulates.
    @inline(__always)
    mutating func slot(_ row: Int) -> Int {
        let s = slotOfRow[row]
        if s >= 0 { return Int(s) * dim }
        slotOfRow[row] = Int32(touched.count)
        touched.append(Int32(row))
        gradients.append(contentsOf: repeatElement(0, count: dim))
        return (touched.count - 1) * dim
    }

    mutating func clear() {
        for row in touched { slotOfRow[Int(row)] = -1 }
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
            let slot = Int(gradient.slotOfRow[row])
            let base = row * dim
            for d in 0..<dim {
                let gd = slot >= 0 ? gradient.gradients[slot * dim + d] : 0
                m[base + d] = adam.beta1 * m[base + d] + (1 - adam.beta1) * gd
                v[base + d] = adam.beta2 * v[base + d] + (1 - adam.beta2) * gd * gd
                values[base + d] -= rate * m[base + d] / ((v[base + d] / bc2).squareRoot() + adam.epsilon)
            }
        }
    }

    /// Applies one lazy Adam step to the rows `gradient` touched; `step` is the global step
    /// (from 1) used for bias correction.
    func applyAdam(_ gradient: SparseGradient, step: Int, _ adam: AdamSettings) {
        let bc1 = 1 - pow(adam.beta1, Float(step)), bc2 = 1 - pow(adam.beta2, Float(step))
        let rate = adam.learningRate / bc1
        if tracksChanges { for row in gradient.touched { markChanged(Int(row)) } }
        gradient.gradients.withUnsafeBufferPointer { g in
            for (slot, row) in gradient.touched.enumerated() {
                let base = Int(row) * dim, gb = slot * dim
                for d in 0..<dim {
                    let gd = g[gb + d]
                    m[base + d] = adam.beta1 * m[base + d] + (1 - adam.beta1) * gd
                    v[base + d] = adam.beta2 * v[base + d] + (1 - adam.beta2) * gd * gd
                    values[base + d] -= rate * m[base + d] / ((v[base + d] / bc2).squareRoot() + adam.epsilon)
                }
            }
        }
    }
}
