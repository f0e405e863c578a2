import Foundation
import RecCore

/// A residual quantizer over item vectors: `levels` codebooks, each of `codes[l]` vectors
/// of `dim` floats. Level l quantizes what the levels before it left over:
///
///     r_0 = z;  c_l = argmin_k |r_l - e^l_k|^2;  r_{l+1} = r_l - e^l_{c_l};  q = sum_l e^l_{c_l}
///
/// Codebooks learn by exponential moving averages (the reference's option B, the stable
/// choice in a stream): per code an EMA of how many vectors chose it and of their sum,
/// Laplace-smoothed. A code whose usage falls below `deadThreshold` is restarted on a
/// recent residual of its level: an interest dying and another being born. The level-0
/// code of an item is its interest (shared/baselines/sparc-reference.md, section 2.1).
public final class ResidualQuantizer {
    public let dim: Int
    public let codes: [Int]
    public let decay: Float
    public let epsilon: Float
    public let deadThreshold: Float
    /// Codebooks, level after level, each `codes[l] x dim`.
    public private(set) var codebook: [Float]
    /// Per level, per code: EMA of usage and of the sum of assigned residuals.
    var usage: [Float]
    var sums: [Float]
    let offsets: [Int]  // first code of each level in `usage`
    /// Recent residuals per level (a ring), what dead codes restart on.
    var recent: [[Float]]
    var recentNext: [Int]
    let recentCapacity = 256
    var rng: RandomStream
    public private(set) var restarts = 0
    var initialised: [Bool]

    public init(dim: Int, codes: [Int], decay: Float = 0.99, epsilon: Float = 1e-5, deadThreshold: Float = 0.05, seed: UInt64) {
        precondition(dim > 0 && !codes.isEmpty && codes.allSatisfy { $0 > 0 }, "a quantizer needs a dimension and codes at every level")
        self.dim = dim
        self.codes = codes
        self.decay = decay
        self.epsilon = epsilon
        self.deadThreshold = deadThreshold
        var o: [Int] = [], total = 0
        for c in codes { o.append(total); total += c }
        offsets = o
        codebook = [Float](repeating: 0, count: total * dim)
        usage = [Float](repeating: 0, count: total)
        sums = [Float](repeating: 0, count: total * dim)
        recent = codes.map { _ in [] }
        recentNext = codes.map { _ in 0 }
        initialised = codes.map { _ in false }
        rng = RandomStream(seed: seed, 0x5350_4152, 1)
    }

    public var levels: Int { codes.count }

    @inline(__always)
    func code(_ level: Int, _ k: Int) -> Int { (offsets[level] + k) * dim }

    /// The codes of `z` at every level (into `out`, `levels` entries) and, if asked, the
    /// quantized vector q (into `quantized`, `dim` floats).
    public func encode(_ z: UnsafePointer<Float>, into out: UnsafeMutablePointer<Int32>, quantized: UnsafeMutablePointer<Float>? = nil) {
        withUnsafeTemporaryAllocation(of: Float.self, capacity: dim) { r in
            r.baseAddress!.update(from: z, count: dim)
            quantized?.initialize(repeating: 0, count: dim)
            codebook.withUnsafeBufferPointer { cb in
                for l in 0..<levels {
                    let k = nearest(l, r.baseAddress!, cb.baseAddress!)
                    out[l] = Int32(k)
                    let e = cb.baseAddress! + code(l, k)
                    for d in 0..<dim {
                        r[d] -= e[d]
                        quantized?[d] += e[d]
                    }
                }
            }
        }
    }

    /// The level-0 code of `z`: its interest.
    public func interest(of z: UnsafePointer<Float>) -> Int {
        codebook.withUnsafeBufferPointer { nearest(0, z, $0.baseAddress!) }
    }

    @inline(__always)
    func nearest(_ level: Int, _ r: UnsafePointer<Float>, _ cb: UnsafePointer<Float>) -> Int {
        var best = 0, bestDistance = Float.infinity
        for k in 0..<codes[level] {
            let e = cb + code(level, k)
            var d2: Float = 0
            for d in 0..<dim { let x = r[d] - e[d]; d2 += x * x }
            if d2 < bestDistance { bestDistance = d2; best = k }
        }
        return best
    }

    /// The squared quantization error of `z` (|z - q|^2).
    public func error(_ z: UnsafePointer<Float>) -> Float {
        var c = [Int32](repeating: 0, count: levels), q = [Float](repeating: 0, count: dim)
        encode(z, into: &c, quantized: &q)
        var e: Float = 0
        for d in 0..<dim { e += (z[d] - q[d]) * (z[d] - q[d]) }
        return e
    }

    /// One EMA step on a batch of `count` vectors (`count x dim`, row after row): each
    /// level's codes move toward the mean of the residuals that chose them. The first
    /// batch a level sees initialises its codes on random residuals of that batch.
    public func update(_ batch: UnsafePointer<Float>, count: Int) {
        guard count > 0 else { return }
        var residual = [Float](repeating: 0, count: count * dim)
        residual.withUnsafeMutableBufferPointer { r in r.baseAddress!.update(from: batch, count: count * dim) }
        var counts = [Float](repeating: 0, count: codes.max()!)
        var batchSums = [Float](repeating: 0, count: codes.max()! * dim)
        var chosen = [Int](repeating: 0, count: count)
        for l in 0..<levels {
            if !initialised[l] { initialise(level: l, from: residual, count: count) }
            for k in 0..<codes[l] { counts[k] = 0 }
            for i in 0..<(codes[l] * dim) { batchSums[i] = 0 }
            codebook.withUnsafeBufferPointer { cb in
                residual.withUnsafeBufferPointer { r in
                    for i in 0..<count { chosen[i] = nearest(l, r.baseAddress! + i * dim, cb.baseAddress!) }
                }
            }
            for i in 0..<count {
                let k = chosen[i]
                counts[k] += 1
                for d in 0..<dim { batchSums[k * dim + d] += residual[i * dim + d] }
                remember(level: l, residual, i)
            }
            // EMA of usage and sums, then each code is its smoothed mean.
            var totalUsage: Float = 0
            for k in 0..<codes[l] {
                let u = offsets[l] + k
                usage[u] = decay * usage[u] + (1 - decay) * counts[k]
                totalUsage += usage[u]
                for d in 0..<dim { sums[u * dim + d] = decay * sums[u * dim + d] + (1 - decay) * batchSums[k * dim + d] }
            }
            for k in 0..<codes[l] {
                let u = offsets[l] + k
                let smoothed = (usage[u] + epsilon) / (totalUsage + Float(codes[l]) * epsilon) * totalUsage
                guard smoothed > 0 else { continue }
                for d in 0..<dim { codebook[u * dim + d] = sums[u * dim + d] / smoothed }
            }
            // The residual the next level quantizes.
            for i in 0..<count {
                let base = code(l, chosen[i])
                for d in 0..<dim { residual[i * dim + d] -= codebook[base + d] }
            }
        }
    }

    /// Restarts every code whose usage fell below the threshold on a recent residual of its
    /// level (with usage set to the threshold, so it is not restarted again at once).
    /// Returns how many codes restarted.
    @discardableResult
    public func restartDeadCodes() -> Int {
        var n = 0
        for l in 0..<levels where !recent[l].isEmpty {
            let stored = recent[l].count / dim
            for k in 0..<codes[l] where usage[offsets[l] + k] < deadThreshold {
                let u = offsets[l] + k
                let pick = rng.nextInt(below: stored)
                for d in 0..<dim {
                    codebook[u * dim + d] = recent[l][pick * dim + d]
                    sums[u * dim + d] = recent[l][pick * dim + d] * deadThreshold
                }
                usage[u] = deadThreshold
                n += 1
            }
        }
        restarts += n
        return n
    }

    /// Codes at `level` whose usage is below the dead threshold.
    public func deadCodes(level: Int) -> Int {
        (0..<codes[level]).filter { usage[offsets[level] + $0] < deadThreshold }.count
    }

    /// exp(entropy) of level-0 usage: how many interests are effectively in use.
    public var perplexity: Double {
        let u = usage[0..<codes[0]].map(Double.init), total = u.reduce(0, +)
        guard total > 0 else { return 0 }
        var h = 0.0
        for x in u where x > 0 { h -= x / total * log(x / total) }
        return exp(h)
    }

    /// A level-0 code vector.
    public func interestVector(_ k: Int) -> UnsafePointer<Float> {
        codebook.withUnsafeBufferPointer { $0.baseAddress! + code(0, k) }
    }

    func initialise(level l: Int, from residual: [Float], count: Int) {
        for k in 0..<codes[l] {
            let pick = rng.nextInt(below: count)
            let u = offsets[l] + k
            for d in 0..<dim {
                // A little noise keeps codes initialised on the same vector apart.
                codebook[u * dim + d] = residual[pick * dim + d] + 1e-3 * Float(rng.nextGaussian())
                sums[u * dim + d] = codebook[u * dim + d]
            }
            usage[u] = 1
        }
        initialised[l] = true
    }

    func remember(level l: Int, _ residual: [Float], _ i: Int) {
        if recent[l].count < recentCapacity * dim {
            recent[l].append(contentsOf: residual[(i * dim)..<((i + 1) * dim)])
        } else {
            let slot = recentNext[l]
            for d in 0..<dim { recent[l][slot * dim + d] = residual[i * dim + d] }
            recentNext[l] = (slot + 1) % recentCapacity
        }
    }
}
