import CKernels
import Dispatch
import Foundation
import RecCore

// MARK: Kernels

/// The indices of the `k` largest of `scores[0..<n]` (ties: the later index), ascending,
/// written to `out`; returns how many (min(k, n)). `work` holds at least 2n + 64 keys.
///
/// A bisection on the score value, each step a vectorised count of the scores at or
/// above it, finds a threshold with between k and k + 4 scores above it (a handful of
/// steps over a row in L1, no scatter). One branch-free pass collects, in index order, the
/// keys of those; the k-th largest key is then the (excess + 1)-th smallest of the few,
/// found by taking out the smallest a few times (a quickselect when the bisection could
/// not narrow, as with ties), and the collected keys at or above it are the answer, already
/// in index order: nothing is sorted. Each key is (score bits in unsigned order) << 32 |
/// index, so one integer comparison orders by score and then by index, and no two keys
/// are equal.
func selectTopK(_ scores: UnsafePointer<Float>, _ n: Int, _ k: Int, into out: UnsafeMutablePointer<Int>, work: UnsafeMutablePointer<UInt64>) -> Int {
    if n <= k {
        for i in 0..<n { out[i] = i }
        return n
    }
    @inline(__always) func key(_ j: Int) -> UInt64 {
        let b = (scores[j] + 0).bitPattern  // -0 + 0 is +0: the zeros tie, as they compare
        let ordered = b & 0x8000_0000 != 0 ? ~b : b | 0x8000_0000
        return UInt64(ordered) << 32 | UInt64(j)
    }
    let (lo, hi) = minMax(scores, n)
    var m = 0
    // count(scores >= a) >= k holds throughout (a starts at the minimum: every score).
    var a = lo, b = hi
    if lo.isFinite && hi.isFinite && lo < hi {
        let enough = k + 4
        for _ in 0..<32 {
            let mid = a + (b - a) * 0.5
            guard mid > a && mid < b else { break }
            let c = countAtLeast(scores, n, mid)
            if c < k {
                b = mid
            } else {
                a = mid
                if c <= enough { break }
            }
        }
        // The indices of the scores at or above the threshold (a few in a hundred), packed
        // eight at a time without a branch, into the second half of `work` (free until the
        // copy below); then only their keys, in index order.
        m = (work + n + 64).withMemoryRebound(to: Int32.self, capacity: 2 * n) { indices in
            let whole = n & ~7
            var m = recstream_collect_at_least(scores, whole, a, indices)
            for j in whole..<n {
                indices[m] = Int32(truncatingIfNeeded: j)
                m &+= scores[j] >= a ? 1 : 0
            }
            for i in 0..<m { work[i] = key(Int(indices[i])) }
            return m
        }
    }
    if m < k {  // all equal, or not finite (NaN is never at or above a threshold): every key
        for j in 0..<n { work[j] = key(j) }
        m = n
    }
    let copy = work + n + 64
    copy.update(from: work, count: m)
    let threshold = m - k <= 8 ? smallest(copy, m, rank: m - k + 1) : kthLargest(copy, m, k)
    var o = 0
    for i in 0..<m where work[i] >= threshold {
        out[o] = Int(truncatingIfNeeded: work[i] & 0xFFFF_FFFF)
        o += 1
    }
    return k
}

/// The smallest and largest of `x[0..<n]` (n >= 1), eight lanes at a time.
@inline(__always)
func minMax(_ x: UnsafePointer<Float>, _ n: Int) -> (Float, Float) {
    var lo = SIMD8<Float>(repeating: x[0]), hi = lo
    var j = 0
    while j + 8 <= n {
        let v = load8(x + j)
        // (replace, not pointwiseMin/Max: those stay generic calls here)
        lo.replace(with: v, where: v .< lo)
        hi.replace(with: v, where: v .> hi)
        j += 8
    }
    var l = lo.min(), h = hi.max()
    while j < n {
        l = min(l, x[j])
        h = max(h, x[j])
        j += 1
    }
    return (l, h)
}

/// How many of `x[0..<n]` are >= t, eight lanes at a time.
@inline(__always)
func countAtLeast(_ x: UnsafePointer<Float>, _ n: Int, _ t: Float) -> Int {
    let tv = SIMD8<Float>(repeating: t), one = SIMD8<Int32>(repeating: 1)
    var counts = SIMD8<Int32>(), more = SIMD8<Int32>()
    var j = 0
    // Four vectors a turn, in two counts: the loop's own work is then a small part.
    while j &+ 32 <= n {
        counts.replace(with: counts &+ one, where: load8(x + j) .>= tv)
        more.replace(with: more &+ one, where: load8(x + (j &+ 8)) .>= tv)
        counts.replace(with: counts &+ one, where: load8(x + (j &+ 16)) .>= tv)
        more.replace(with: more &+ one, where: load8(x + (j &+ 24)) .>= tv)
        j &+= 32
    }
    while j &+ 8 <= n {
        counts.replace(with: counts &+ one, where: load8(x + j) .>= tv)
        j &+= 8
    }
    var c = Int((counts &+ more).wrappedSum())
    while j < n {
        c += x[j] >= t ? 1 : 0
        j += 1
    }
    return c
}

/// The `rank`-th smallest (from 1) of `a[0..<m]`, distinct keys, for a small rank: takes
/// out the smallest `rank` times, each a branch-free scan; overwrites `a`.
@inline(__always)
func smallest(_ a: UnsafeMutablePointer<UInt64>, _ m: Int, rank: Int) -> UInt64 {
    var low = UInt64.max
    for _ in 0..<rank {
        low = UInt64.max
        var at = 0
        for i in 0..<m {
            let key = a[i], less = key < low
            low = less ? key : low
            at = less ? i : at
        }
        a[at] = .max
    }
    return low
}

/// The k-th largest (from 1) of `a[0..<m]`, distinct keys, by quickselect (median of
/// three pivots); reorders `a`.
func kthLargest(_ a: UnsafeMutablePointer<UInt64>, _ m: Int, _ k: Int) -> UInt64 {
    precondition(k >= 1 && k <= m)
    var lo = 0, hi = m - 1
    let target = k - 1  // its index in descending order
    while lo < hi {
        let mid = lo + (hi - lo) / 2
        // Order a[lo] >= a[mid] >= a[hi]; the median is the pivot.
        if a[lo] < a[mid] { a.swapAt(lo, mid) }
        if a[lo] < a[hi] { a.swapAt(lo, hi) }
        if a[mid] < a[hi] { a.swapAt(mid, hi) }
        let pivot = a[mid]
        var i = lo, j = hi
        while i <= j {
            while a[i] > pivot { i += 1 }
            while a[j] < pivot { j -= 1 }
            if i <= j {
                a.swapAt(i, j)
                i += 1
                j -= 1
            }
        }
        // Now a[lo...j] >= pivot >= a[i...hi], and a[j+1..<i] == pivot.
        if target <= j {
            hi = j
        } else if target >= i {
            lo = i
        } else {
            return a[target]
        }
    }
    return a[lo]
}

extension UnsafeMutablePointer where Pointee == UInt64 {
    @inline(__always)
    func swapAt(_ i: Int, _ j: Int) {
        let t = self[i]
        self[i] = self[j]
        self[j] = t
    }
}

@inline(__always)
func sigmoid(_ x: Float) -> Float { 1 / (1 + exp(-x)) }

/// out = P x for a row-major d x d matrix.
@inline(__always)
func matvec(_ p: UnsafePointer<Float>, _ x: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>, _ d: Int) {
    for a in 0..<d { out[a] = dot(p + a * d, x, d) }
}

/// out = P^T x for a row-major d x d matrix.
@inline(__always)
func matvecT(_ p: UnsafePointer<Float>, _ x: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>, _ d: Int) {
    out.initialize(repeating: 0, count: d)
    for a in 0..<d { axpy(x[a], p + a * d, out, d) }
}

/// G += a b^T for a row-major d x d matrix.
@inline(__always)
func outer(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ g: UnsafeMutablePointer<Float>, _ d: Int) {
    for i in 0..<d { axpy(a[i], b, g + i * d, d) }
}

/// y += alpha x.
@inline(__always)
func axpy(_ alpha: Float, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int) {
    var i = 0
    let a = SIMD8<Float>(repeating: alpha)
    while i + 8 <= n {
        store8(load8(y + i) + a * load8(x + i), y + i)
        i += 8
    }
    while i < n {
        y[i] += alpha * x[i]
        i += 1
    }
}

@inline(__always)
func copy(_ from: UnsafePointer<Float>, to: UnsafeMutablePointer<Float>, _ n: Int) {
    to.update(from: from, count: n)
}

/// z = W x + b, W row-major (outputs x inputs).
@inline(__always)
func linear(_ w: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ x: UnsafePointer<Float>, _ z: UnsafeMutablePointer<Float>,
            outputs: Int, inputs: Int) {
    for o in 0..<outputs { z[o] = dot(w + o * inputs, x, inputs) + b[o] }
}

/// The backward pass of `linear` from dz: gW += dz x^T, gb += dz, and dx = W^T dz.
@inline(__always)
func linearBackward(_ dz: UnsafePointer<Float>, _ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>, _ gw: UnsafeMutablePointer<Float>,
                    _ gb: UnsafeMutablePointer<Float>, _ dx: UnsafeMutablePointer<Float>, outputs: Int, inputs: Int) {
    dx.initialize(repeating: 0, count: inputs)
    for o in 0..<outputs {
        axpy(dz[o], x, gw + o * inputs, inputs)
        gb[o] += dz[o]
        axpy(dz[o], w + o * inputs, dx, inputs)
    }
}

@inline(__always)
func prelu(_ z: UnsafePointer<Float>, _ a: UnsafeMutablePointer<Float>, _ n: Int, _ alpha: Float) {
    for i in 0..<n { a[i] = z[i] > 0 ? z[i] : alpha * z[i] }
}

/// dz = da (.) prelu'(z); returns d(loss)/d(alpha).
@inline(__always)
func preluBackward(_ z: UnsafePointer<Float>, _ da: UnsafePointer<Float>, _ dz: UnsafeMutablePointer<Float>, _ n: Int, _ alpha: Float) -> Float {
    var dAlpha: Float = 0
    for i in 0..<n {
        if z[i] > 0 {
            dz[i] = da[i]
        } else {
            dz[i] = alpha * da[i]
            dAlpha += da[i] * z[i]
        }
    }
    return dAlpha
}

// MARK: Matrix products

/// C = A B for row-major A (m x k, row stride `lda`), B (k x n, `ldb`) and C (m x n,
/// `ldc`). B and C are read and written in whole 8-column chunks: their strides must hold
/// n rounded up to 8, and the columns past n (finite values, such as zeros) give columns
/// of C past n that the caller does not read.
///
/// Each element of C is one FMA chain over p = 0..<k in order, from zero, whichever tile
/// computes it: so an element's bits depend on its row of A and column of B alone, never
/// on m, n or where it sits (a candidate scores the same alone or among others).
/// Register-blocked: 4 rows x 16 columns of C in 8 vector accumulators, B's rows loaded
/// once per 4 rows of A. With `accumulate`, each chain starts from C's element instead of
/// zero (C += A B: a product split over two ranges of p is one chain).
func gemm(_ a: UnsafePointer<Float>, lda: Int, _ b: UnsafePointer<Float>, ldb: Int, _ c: UnsafeMutablePointer<Float>, ldc: Int,
          m: Int, n: Int, k: Int, accumulate: Bool = false) {
    let width = (n + 7) / 8 * 8
    // p in blocks of `depth`, each continuing the chains the one before left in C: A's
    // block (m x depth; the MLP's first layer is 200 x 576) stays in L2 while every
    // column block of B passes, instead of all of A streaming from L3 once per 16 columns.
    let depth = 256
    var p0 = 0
    repeat {
        let kk = min(depth, k - p0), adding = accumulate || p0 > 0, a = a + p0, b = b + p0 * ldb
        var j = 0
        while j < width {
            let wide = j + 16 <= width
            var i = 0
            while i + 4 <= m {
                if wide {
                    gemmTile4x16(a + i * lda, lda, b + j, ldb, c + i * ldc + j, ldc, kk, adding)
                } else {
                    gemmTile4x8(a + i * lda, lda, b + j, ldb, c + i * ldc + j, ldc, kk, adding)
                }
                i += 4
            }
            while i < m {
                gemmTile1(a + i * lda, b + j, ldb, c + i * ldc + j, kk, wide: wide, adding)
                i += 1
            }
            j += wide ? 16 : 8
        }
        p0 += depth
    } while p0 < k
}

@inline(__always)
private func gemmTile4x16(_ a: UnsafePointer<Float>, _ lda: Int, _ b: UnsafePointer<Float>, _ ldb: Int, _ c: UnsafeMutablePointer<Float>, _ ldc: Int, _ k: Int,
                          _ accumulate: Bool) {
    var c00 = SIMD8<Float>(), c01 = SIMD8<Float>(), c10 = SIMD8<Float>(), c11 = SIMD8<Float>()
    var c20 = SIMD8<Float>(), c21 = SIMD8<Float>(), c30 = SIMD8<Float>(), c31 = SIMD8<Float>()
    if accumulate {
        c00 = load8(c); c01 = load8(c + 8); c10 = load8(c + ldc); c11 = load8(c + ldc + 8)
        c20 = load8(c + 2 * ldc); c21 = load8(c + 2 * ldc + 8); c30 = load8(c + 3 * ldc); c31 = load8(c + 3 * ldc + 8)
    }
    let a0 = a, a1 = a + lda, a2 = a + 2 * lda, a3 = a + 3 * lda
    for p in 0..<k {
        let row = b + p * ldb
        let b0 = load8(row), b1 = load8(row + 8)
        var s = SIMD8<Float>(repeating: a0[p])
        c00.addProduct(s, b0); c01.addProduct(s, b1)
        s = SIMD8<Float>(repeating: a1[p])
        c10.addProduct(s, b0); c11.addProduct(s, b1)
        s = SIMD8<Float>(repeating: a2[p])
        c20.addProduct(s, b0); c21.addProduct(s, b1)
        s = SIMD8<Float>(repeating: a3[p])
        c30.addProduct(s, b0); c31.addProduct(s, b1)
    }
    store8(c00, c); store8(c01, c + 8)
    store8(c10, c + ldc); store8(c11, c + ldc + 8)
    store8(c20, c + 2 * ldc); store8(c21, c + 2 * ldc + 8)
    store8(c30, c + 3 * ldc); store8(c31, c + 3 * ldc + 8)
}

@inline(__always)
private func gemmTile4x8(_ a: UnsafePointer<Float>, _ lda: Int, _ b: UnsafePointer<Float>, _ ldb: Int, _ c: UnsafeMutablePointer<Float>, _ ldc: Int, _ k: Int,
                         _ accumulate: Bool) {
    var c0 = SIMD8<Float>(), c1 = SIMD8<Float>(), c2 = SIMD8<Float>(), c3 = SIMD8<Float>()
    if accumulate { c0 = load8(c); c1 = load8(c + ldc); c2 = load8(c + 2 * ldc); c3 = load8(c + 3 * ldc) }
    let a0 = a, a1 = a + lda, a2 = a + 2 * lda, a3 = a + 3 * lda
    for p in 0..<k {
        let b0 = load8(b + p * ldb)
        c0.addProduct(SIMD8<Float>(repeating: a0[p]), b0)
        c1.addProduct(SIMD8<Float>(repeating: a1[p]), b0)
        c2.addProduct(SIMD8<Float>(repeating: a2[p]), b0)
        c3.addProduct(SIMD8<Float>(repeating: a3[p]), b0)
    }
    store8(c0, c); store8(c1, c + ldc); store8(c2, c + 2 * ldc); store8(c3, c + 3 * ldc)
}

@inline(__always)
private func gemmTile1(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ ldb: Int, _ c: UnsafeMutablePointer<Float>, _ k: Int, wide: Bool,
                       _ accumulate: Bool) {
    var c0 = SIMD8<Float>(), c1 = SIMD8<Float>()
    if accumulate {
        c0 = load8(c)
        if wide { c1 = load8(c + 8) }
    }
    for p in 0..<k {
        let s = SIMD8<Float>(repeating: a[p]), row = b + p * ldb
        c0.addProduct(s, load8(row))
        if wide { c1.addProduct(s, load8(row + 8)) }
    }
    store8(c0, c)
    if wide { store8(c1, c + 8) }
}

@inline(__always)
func load8(_ p: UnsafePointer<Float>) -> SIMD8<Float> {
    UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self)
}

@inline(__always)
func store8(_ v: SIMD8<Float>, _ p: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD8<Float>.self)
}

/// This core's fp32 FMA rate, GFLOP/s: a plain loop of 12 independent 8-lane FMA chains
/// (no memory traffic) for about `seconds`. What `recstream bench models` measures its
/// stages against.
package func measureFMAPeak(seconds: Double = 0.2) -> Double {
    var acc = (0..<12).map { SIMD8<Float>(repeating: Float($0) * 1e-3) }
    let x = SIMD8<Float>(repeating: 0.999_999), y = SIMD8<Float>(repeating: 1e-7)
    var best = 0.0
    let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
    while ContinuousClock.now < deadline {
        let iterations = 200_000
        let start = ContinuousClock.now
        acc.withUnsafeMutableBufferPointer { a in
            var a0 = a[0], a1 = a[1], a2 = a[2], a3 = a[3], a4 = a[4], a5 = a[5]
            var a6 = a[6], a7 = a[7], a8 = a[8], a9 = a[9], a10 = a[10], a11 = a[11]
            for _ in 0..<iterations {
                a0.addProduct(x, y); a1.addProduct(x, y); a2.addProduct(x, y); a3.addProduct(x, y)
                a4.addProduct(x, y); a5.addProduct(x, y); a6.addProduct(x, y); a7.addProduct(x, y)
                a8.addProduct(x, y); a9.addProduct(x, y); a10.addProduct(x, y); a11.addProduct(x, y)
            }
            a[0] = a0; a[1] = a1; a[2] = a2; a[3] = a3; a[4] = a4; a[5] = a5
            a[6] = a6; a[7] = a7; a[8] = a8; a[9] = a9; a[10] = a10; a[11] = a11
        }
        let elapsed = (ContinuousClock.now - start).components
        let t = Double(elapsed.seconds) + Double(elapsed.attoseconds) * 1e-18
        best = max(best, Double(iterations * 12 * 8 * 2) / t / 1e9)
    }
    // Keep the chains' results alive.
    if acc.contains(where: { $0[0].isNaN }) { return -1 }
    return best
}
