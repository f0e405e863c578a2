import Foundation
import Testing
@testable import Models
@testable import RecCore

/// The models' kernels against plain scalar loops, at every length around the SIMD width
/// (so the vector body, the scalar tail and both together are each exercised).
@Suite("Kernels")
struct KernelTests {
    static let lengths = Array(0...19) + [31, 40, 64, 67, 75]

    /// Random floats, some negative, some zero.
    static func vector(_ n: Int, _ rng: inout RandomStream) -> [Float] {
        (0..<n).map { _ in rng.nextInt(below: 7) == 0 ? 0 : Float(rng.nextGaussian()) }
    }

    /// |a - b| within float rounding of a sum of `terms` products of size `scale`.
    static func close(_ a: Float, _ b: Double, terms: Int, scale: Double = 4) -> Bool {
        abs(Double(a) - b) <= 1e-6 * Double(max(terms, 1)) * scale + 1e-7
    }

    @Test("dot and axpy")
    func dotAxpy() {
        var rng = RandomStream(seed: 21, 1)
        for n in Self.lengths {
            let x = Self.vector(n, &rng), y = Self.vector(n, &rng)
            let expected = zip(x, y).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
            #expect(Self.close(dot(x, y, n), expected, terms: n), "n \(n)")
            var out = y
            out.withUnsafeMutableBufferPointer { axpy(0.75, x, $0.baseAddress!, n) }
            for i in 0..<n { #expect(out[i] == y[i] + 0.75 * x[i], "n \(n), i \(i)") }
        }
    }

    @Test("matvec, its transpose and the outer product")
    func matrices() {
        var rng = RandomStream(seed: 22, 1)
        for d in [1, 3, 7, 8, 9, 16, 17] {
            let p = Self.vector(d * d, &rng), x = Self.vector(d, &rng), b = Self.vector(d, &rng)
            var out = [Float](repeating: .nan, count: d), outT = out
            out.withUnsafeMutableBufferPointer { matvec(p, x, $0.baseAddress!, d) }
            outT.withUnsafeMutableBufferPointer { matvecT(p, x, $0.baseAddress!, d) }
            for a in 0..<d {
                let row = (0..<d).reduce(0.0) { $0 + Double(p[a * d + $1]) * Double(x[$1]) }
                let column = (0..<d).reduce(0.0) { $0 + Double(p[$1 * d + a]) * Double(x[$1]) }
                #expect(Self.close(out[a], row, terms: d) && Self.close(outT[a], column, terms: d), "d \(d), a \(a)")
            }
            var g = p
            g.withUnsafeMutableBufferPointer { outer(x, b, $0.baseAddress!, d) }
            for i in 0..<d { for j in 0..<d { #expect(g[i * d + j] == p[i * d + j] + x[i] * b[j], "d \(d), (\(i), \(j))") } }
        }
    }

    @Test("a linear layer forward and backward")
    func linearLayer() {
        var rng = RandomStream(seed: 23, 1)
        for (outputs, inputs) in [(1, 1), (3, 5), (8, 8), (5, 17), (16, 12)] {
            let w = Self.vector(outputs * inputs, &rng), b = Self.vector(outputs, &rng), x = Self.vector(inputs, &rng)
            let dz = Self.vector(outputs, &rng)
            var z = [Float](repeating: .nan, count: outputs)
            z.withUnsafeMutableBufferPointer { linear(w, b, x, $0.baseAddress!, outputs: outputs, inputs: inputs) }
            var gw = Self.vector(outputs * inputs, &rng), gb = Self.vector(outputs, &rng)
            let gw0 = gw, gb0 = gb
            var dx = [Float](repeating: .nan, count: inputs)
            gw.withUnsafeMutableBufferPointer { gwp in
                gb.withUnsafeMutableBufferPointer { gbp in
                    dx.withUnsafeMutableBufferPointer {
                        linearBackward(dz, x, w, gwp.baseAddress!, gbp.baseAddress!, $0.baseAddress!, outputs: outputs, inputs: inputs)
                    }
                }
            }
            for o in 0..<outputs {
                let expected = Double(b[o]) + (0..<inputs).reduce(0.0) { $0 + Double(w[o * inputs + $1]) * Double(x[$1]) }
                #expect(Self.close(z[o], expected, terms: inputs + 1), "z[\(o)]")
                #expect(gb[o] == gb0[o] + dz[o])
                for i in 0..<inputs { #expect(gw[o * inputs + i] == gw0[o * inputs + i] + dz[o] * x[i], "gW[\(o), \(i)]") }
            }
            for i in 0..<inputs {
                let expected = (0..<outputs).reduce(0.0) { $0 + Double(w[$1 * inputs + i]) * Double(dz[$1]) }
                #expect(Self.close(dx[i], expected, terms: outputs), "dx[\(i)]")
            }
        }
    }

    @Test("PReLU forward and backward, with alpha's gradient")
    func preluLayer() {
        var rng = RandomStream(seed: 24, 1)
        for n in Self.lengths {
            let z = Self.vector(n, &rng), da = Self.vector(n, &rng), alpha: Float = 0.25
            var a = [Float](repeating: .nan, count: n), dz = a
            a.withUnsafeMutableBufferPointer { prelu(z, $0.baseAddress!, n, alpha) }
            let dAlpha = dz.withUnsafeMutableBufferPointer { preluBackward(z, da, $0.baseAddress!, n, alpha) }
            var expected = 0.0
            for i in 0..<n {
                #expect(a[i] == (z[i] > 0 ? z[i] : alpha * z[i]))
                #expect(dz[i] == (z[i] > 0 ? da[i] : alpha * da[i]))
                if z[i] <= 0 { expected += Double(da[i]) * Double(z[i]) }
            }
            #expect(Self.close(dAlpha, expected, terms: n), "n \(n)")
        }
    }

    @Test("min, max and counts at a threshold")
    func reductions() {
        var rng = RandomStream(seed: 25, 1)
        for n in Self.lengths where n > 0 {
            let x = Self.vector(n, &rng)
            let (lo, hi) = minMax(x, n)
            #expect(lo == x.min()! && hi == x.max()!, "n \(n)")
            for t in [-1, 0, 0.5, Float(x[n / 2])] {
                #expect(countAtLeast(x, n, t) == x.filter { $0 >= t }.count, "n \(n), t \(t)")
            }
        }
    }

    @Test("the k-th largest key, by quickselect and by taking out the smallest")
    func quickselect() {
        var rng = RandomStream(seed: 26, 1)
        for m in 1...40 {
            var keys = Set<UInt64>()
            while keys.count < m { keys.insert(rng.next() >> 20) }
            let sorted = keys.sorted(by: >)
            for k in 1...m {
                var a = Array(keys)
                #expect(a.withUnsafeMutableBufferPointer { kthLargest($0.baseAddress!, m, k) } == sorted[k - 1], "m \(m), k \(k)")
                var b = Array(keys)
                #expect(b.withUnsafeMutableBufferPointer { smallest($0.baseAddress!, m, rank: m - k + 1) } == sorted[k - 1], "m \(m), rank \(m - k + 1)")
            }
        }
    }

    @Test("top-K selection agrees with a full sort, ties to the later behaviour")
    func topK() {
        var rng = RandomStream(seed: 8, 1)
        for trial in 0..<500 {
            let n = 1 + rng.nextInt(below: trial % 5 == 0 ? 2000 : 300), k = 1 + rng.nextInt(below: 80)
            // Coarse values so that ties are common, negatives and zeros (of both signs) included.
            let scores = (0..<n).map { _ in trial % 3 == 0 ? Float(rng.nextGaussian()) : Float(rng.nextInt(below: 20) - 10) * (trial % 2 == 0 ? 1 : -1) }
            let out = UnsafeMutablePointer<Int>.allocate(capacity: k)
            let work = UnsafeMutablePointer<UInt64>.allocate(capacity: 2 * n + 64)
            defer { out.deallocate(); work.deallocate() }
            let got = scores.withUnsafeBufferPointer { selectTopK($0.baseAddress!, n, k, into: out, work: work) }
            let expected = Array(scores.indices.sorted { (scores[$0], $0) > (scores[$1], $1) }.prefix(k)).sorted()
            #expect(Array(UnsafeBufferPointer(start: out, count: got)) == expected, "trial \(trial)")
        }
    }

    @Test("sparse gradients: every row finds its own slot through growth, clears and reuse")
    func sparseGradient() {
        let g = SparseGradient(dim: 3)
        var rng = RandomStream(seed: 5, 1)
        let one: [Float] = [1, 2, 3]
        for round in 0..<4 {
            // Multiples of 1024 (every third row) and random rows, some repeated: enough to
            // rehash the table twice in the first round. (Rows whose probes start at one
            // entry are tried below.)
            var expected: [Int: Float] = [:]
            var order: [Int32] = []
            let rows = (0..<3000).map { i in i % 3 == 0 ? (i % 700) * 1024 : rng.nextInt(below: 5_000_000) }
            for (i, row) in rows.enumerated() {
                let scale = Float(i % 5 + 1)
                if expected[row] == nil { order.append(Int32(row)) }
                expected[row, default: 0] += scale
                var s = [scale]
                one.withUnsafeBufferPointer { v in s.withUnsafeMutableBufferPointer { sp in
                    withUnsafePointer(to: row) { r in g.add(v.baseAddress!, scales: sp.baseAddress!, rows: r, count: 1) }
                } }
            }
            #expect(g.touched == order, "round \(round): rows in the order first touched")
            for (row, total) in expected {
                guard let slot = g.slot(of: row) else { Issue.record("round \(round): row \(row) lost"); continue }
                #expect(g.gradients[slot * 3 ..< slot * 3 + 3] == [total, 2 * total, 3 * total][...], "round \(round) row \(row)")
            }
            #expect(g.slot(of: 5_000_000) == nil, "a row never touched")
            g.clear()
            #expect(g.touched.isEmpty && g.gradients.isEmpty)
            #expect(expected.keys.allSatisfy { g.slot(of: $0) == nil }, "round \(round): clear leaves no row behind")
            // A few rows that start their probe at one entry: the clear that visits the
            // touched rows one by one must find each, whatever order they went in.
            let home = SparseGradient.home(7, mask: g.capacity - 1)
            let colliding = Array((0...).lazy.filter { SparseGradient.home($0, mask: g.capacity - 1) == home }.prefix(4))
            let ordered = round % 2 == 0 ? colliding : colliding.reversed()
            #expect(ordered.map { g.slot($0) } == [0, 3, 6, 9])
            g.clear()
            #expect(colliding.allSatisfy { g.slot(of: $0) == nil }, "round \(round): a colliding row outlived its clear")
            #expect(ordered.map { g.slot($0) } == [0, 3, 6, 9] && g.touched == ordered.map(Int32.init), "round \(round): fresh slots after the clear")
            g.clear()
        }
    }

    @Test("lazy Adam on rows split in chunks (as the threads split them) gives the bits of one pass and of the scalar formula")
    func lazyAdamInChunks() {
        let dim = 12, rows = 50  // 12: the 8-lane body and a scalar tail
        func table() -> EmbeddingTable { EmbeddingTable(rows: rows, dim: dim, seed: 4, tableID: 1, initScale: 0.1) }
        let whole = table(), chunked = table(), scalar = table()
        let g = SparseGradient(dim: dim)
        var rng = RandomStream(seed: 9, 1)
        let adam = AdamSettings(learningRate: 0.05)
        for step in 1...3 {
            for _ in 0..<30 {
                let vector = (0..<dim).map { _ in Float(rng.nextGaussian()) }
                vector.withUnsafeBufferPointer { g.add($0.baseAddress!, row: rng.nextInt(below: rows)) }
            }
            let n = g.touched.count
            whole.applyAdam(g, slots: 0..<n, step: step, adam)
            for range in [0..<n / 3, n / 3..<2 * n / 3, 2 * n / 3..<n] { chunked.applyAdam(g, slots: range, step: step, adam) }
            let bc1 = 1 - pow(adam.beta1, Float(step)), bc2 = 1 - pow(adam.beta2, Float(step)), rate = adam.learningRate / bc1
            for (slot, row) in g.touched.enumerated() {
                for d in 0..<dim {
                    let i = Int(row) * dim + d, gd = g.gradients[slot * dim + d]
                    scalar.m[i] = adam.beta1 * scalar.m[i] + (1 - adam.beta1) * gd
                    scalar.v[i] = adam.beta2 * scalar.v[i] + (1 - adam.beta2) * gd * gd
                    scalar.values[i] -= rate * scalar.m[i] / ((scalar.v[i] / bc2).squareRoot() + adam.epsilon)
                }
            }
            g.clear()
        }
        for (name, other) in [("chunks", chunked), ("scalar", scalar)] {
            let differing = (0..<rows * dim).filter {
                whole.values[$0].bitPattern != other.values[$0].bitPattern || whole.m[$0].bitPattern != other.m[$0].bitPattern
                    || whole.v[$0].bitPattern != other.v[$0].bitPattern
            }
            #expect(differing.isEmpty, "\(name): \(differing.count) floats differ")
        }
        let start = table()
        #expect((0..<rows * dim).contains { whole.values[$0] != start.values[$0] }, "the steps moved rows")
    }
}
