import CKernels
import Foundation
import RecCore

/// Scoring one user's history against many candidates, the server's hot path, as a few
/// matrix products.
///
/// The history's attention rows are gathered once, transposed (keysT: the F x d_att
/// attention features by L behaviours), and its representation rows once, side by side;
/// then every candidate's query (Q: C x F d_att) meets every key in one product, S = Q
/// keysT; top K and the softmax run on each row of S; each candidate's MLP input is built
/// into a column of XT (input x C), and the MLP is two products over all candidates,
/// Z1 = W1 XT and Z2 = W2 A1, and a weighted sum of A2's rows. Each product's element is
/// one FMA chain in a fixed order (`gemm`), so a candidate's probability has the same
/// bits alone, anywhere in a list, or repeated. The stages are separate passes
/// (`ScoringStage`) so that a benchmark can time each.
final class ScoringScratch {
    /// The columns of keysT and the rows of S: the history's capacity, padded to 8.
    let keyStride: Int
    let keysT, values: UnsafeMutablePointer<Float>
    /// Candidates the per-candidate buffers hold; grown (never per request once served).
    private(set) var candidateCapacity = 0
    /// The columns of XT, Z1, A1, Z2, A2: the candidate capacity padded to 8.
    private(set) var candidateStride = 0
    private(set) var queries: UnsafeMutablePointer<Float>   // C x F dA, search scales folded in
    private(set) var scores: UnsafeMutablePointer<Float>    // C x keyStride
    private(set) var selected: UnsafeMutablePointer<Int32>  // C x K window positions
    private(set) var weights: UnsafeMutablePointer<Float>   // C x K softmax weights
    private(set) var selectedCount: UnsafeMutablePointer<Int32>
    private(set) var xT: UnsafeMutablePointer<Float>        // input x candidateStride
    private(set) var z1, a1: UnsafeMutablePointer<Float>    // hidden1 x candidateStride
    private(set) var z2, a2: UnsafeMutablePointer<Float>    // hidden2 x candidateStride
    private(set) var logits: UnsafeMutablePointer<Float>    // candidateStride
    /// Eight candidates' inputs, before they go into XT as eight columns.
    let x: UnsafeMutablePointer<Float>
    /// Eight behaviours' attention rows per field, before they go into keysT as eight
    /// columns; a row of zeros pads the last eight.
    let keyRows: UnsafeMutablePointer<UnsafePointer<Float>>
    let zeros: UnsafeMutablePointer<Float>
    let xRows: UnsafeMutablePointer<UnsafePointer<Float>>
    let picked: UnsafeMutablePointer<Int>
    /// Temporaries for TWIN with projections.
    let t1, t2: UnsafeMutablePointer<Float>
    let order: UnsafeMutablePointer<UInt64>
    let kw, topK, input, hidden1, hidden2: Int
    /// What the last gather left: behaviours searched, the first searched, the window's length.
    var n = 0, first = 0, total = 0

    init(_ s: RankingModelSettings, input: Int) {
        let F = s.fields.rawValue
        keyStride = (s.maxHistory + 7) / 8 * 8
        kw = F * s.attentionDim
        topK = s.topK
        self.input = input
        hidden1 = s.hidden1
        hidden2 = s.hidden2
        keysT = .allocate(capacity: kw * keyStride)
        keysT.initialize(repeating: 0, count: kw * keyStride)
        values = .allocate(capacity: s.maxHistory * F * s.representationDim)
        x = .allocate(capacity: 8 * input)
        x.initialize(repeating: 0, count: 8 * input)
        keyRows = .allocate(capacity: 8 * F)
        xRows = .allocate(capacity: 8)
        zeros = .allocate(capacity: s.attentionDim)
        zeros.initialize(repeating: 0, count: s.attentionDim)
        picked = .allocate(capacity: s.topK)
        t1 = .allocate(capacity: max(s.attentionDim, s.representationDim))
        t2 = .allocate(capacity: max(s.attentionDim, s.representationDim))
        order = .allocate(capacity: 2 * s.maxHistory + 64)
        queries = .allocate(capacity: 0); scores = .allocate(capacity: 0); selected = .allocate(capacity: 0)
        weights = .allocate(capacity: 0); selectedCount = .allocate(capacity: 0); xT = .allocate(capacity: 0)
        z1 = .allocate(capacity: 0); a1 = .allocate(capacity: 0); z2 = .allocate(capacity: 0); a2 = .allocate(capacity: 0)
        logits = .allocate(capacity: 0)
    }

    /// Makes room for `count` candidates (buffers only grow; their pads are zero, so the
    /// padded columns of every product are finite and never read).
    func reserve(candidates count: Int) {
        guard count > candidateCapacity else { return }
        freeCandidateBuffers()
        let c = max(count, 2 * candidateCapacity), stride = (c + 7) / 8 * 8
        candidateCapacity = c
        candidateStride = stride
        func zeroed<T: Numeric>(_ n: Int, _: T.Type) -> UnsafeMutablePointer<T> {
            let p = UnsafeMutablePointer<T>.allocate(capacity: n)
            p.initialize(repeating: 0, count: n)
            return p
        }
        queries = zeroed(c * kw, Float.self)
        scores = zeroed(c * keyStride, Float.self)
        selected = zeroed(c * topK, Int32.self)
        weights = zeroed(c * topK, Float.self)
        selectedCount = zeroed(c, Int32.self)
        xT = zeroed(input * stride, Float.self)
        z1 = zeroed(hidden1 * stride, Float.self); a1 = zeroed(hidden1 * stride, Float.self)
        z2 = zeroed(hidden2 * stride, Float.self); a2 = zeroed(hidden2 * stride, Float.self)
        logits = zeroed(stride, Float.self)
    }

    private func freeCandidateBuffers() {
        for p in [queries, scores, weights, xT, z1, a1, z2, a2, logits] { p.deallocate() }
        selected.deallocate()
        selectedCount.deallocate()
    }

    deinit {
        freeCandidateBuffers()
        for p in [keysT, values, x, t1, t2, zeros] { p.deallocate() }
        keyRows.deallocate()
        xRows.deallocate()
        picked.deallocate()
        order.deallocate()
    }
}

/// The passes of `RankingModel.score(history:candidates:into:)`, in order; each works on
/// what the one before left in the scratch.
package enum ScoringStage: CaseIterable, Sendable {
    /// The history's attention rows into keysT, its representation rows into values.
    case gather
    /// Each candidate's query, search scales folded in (projected, for TWIN-proj).
    case queries
    /// S = Q keysT: every candidate's search score against every behaviour.
    case search
    /// Top K of each row of S.
    case topK
    /// The softmax weights of each row's K.
    case softmax
    /// Each candidate's MLP input [v_t, h, v_t (.) h], into a column of XT.
    case aggregate
    /// The MLP over all candidates: two products, a weighted sum, the sigmoid.
    case mlp
}

extension RankingModel {
    /// Scores one user's history against many candidates in one call (click
    /// probabilities), as matrix products (see `ScoringScratch`).
    public func score(history: UnsafeBufferPointer<HistoryEntry>, candidates: UnsafeBufferPointer<ItemID>, into out: UnsafeMutablePointer<Float>) {
        guard !candidates.isEmpty else { return }
        for stage in ScoringStage.allCases { score(stage, history: history, candidates: candidates, into: out) }
    }

    /// Runs one pass of `score(history:candidates:into:)`; the passes run in
    /// `ScoringStage.allCases` order on the same arguments (a benchmark times each).
    package func score(_ stage: ScoringStage, history: UnsafeBufferPointer<HistoryEntry>, candidates: UnsafeBufferPointer<ItemID>,
                       into out: UnsafeMutablePointer<Float>) {
        let s = settings, F = fieldCount, dA = s.attentionDim, dR = s.representationDim
        let kw = F * dA, vw = F * dR, l = layout, K = s.topK
        let c = scoring, C = candidates.count
        switch stage {
        case .gather:
            c.reserve(candidates: C)
            let full = window(history)
            // DIN looks at the most recent K only: the rest is never gathered. Time ids stay
            // relative to the whole window, as in training.
            c.first = firstSearched(full.count)
            c.n = full.count - c.first
            c.total = full.count
            let ks = c.keyStride
            // The rows are random reads from large tables: ask for those `ahead` behaviours
            // on while copying these, so their misses overlap.
            let ahead = 16
            @inline(__always) func prefetch(_ j: Int) {
                let item = Int(full[c.first + j].item)
                for f in 0..<F {
                    let r = row(f, item: item, time: c.total - (c.first + j))
                    recstream_prefetch(tables[attention[f]].row(r), dA * 4)
                    recstream_prefetch(tables[representation[f]].row(r), dR * 4)
                }
            }
            for j in 0..<min(ahead, c.n) { prefetch(j) }
            // Eight behaviours at a time: their attention rows go into keysT as eight whole
            // columns (one vector store per feature, not eight scattered ones); the last
            // eight are padded with zeros, so padded scores are finite (never read).
            var j0 = 0
            while j0 < c.n {
                let count = min(8, c.n - j0)
                for j in j0..<j0 + count {
                    if j + ahead < c.n { prefetch(j + ahead) }
                    let item = Int(full[c.first + j].item)
                    for f in 0..<F {
                        let r = row(f, item: item, time: c.total - (c.first + j))
                        c.keyRows[f * 8 + j - j0] = UnsafePointer(tables[attention[f]].row(r))
                        copy(tables[representation[f]].row(r), to: c.values + j * vw + f * dR, dR)
                    }
                }
                for f in 0..<F {
                    let p = c.keyRows + f * 8
                    for i in count..<8 { p[i] = UnsafePointer(c.zeros) }
                    transpose8(p, dA, into: c.keysT + f * dA * ks + j0, stride: ks)
                }
                j0 += 8
            }

        case .queries:
            for b in 0..<min(8, C) { for f in 0..<F { recstream_prefetch(tables[attention[f]].row(row(f, item: Int(candidates[b]), time: 0)), dA * 4) } }
            for b in 0..<C {
                if b + 8 < C { for f in 0..<F { recstream_prefetch(tables[attention[f]].row(row(f, item: Int(candidates[b + 8]), time: 0)), dA * 4) } }
                let t = Int(candidates[b])
                for f in 0..<F {
                    var q = UnsafePointer(tables[attention[f]].row(row(f, item: t, time: 0)))
                    if s.design.projects {  // u = P_K^T P_Q q, as in training
                        dense.withUnsafeBufferPointer { w in
                            matvec(w.baseAddress! + l.projection(0, f, fields: F), q, c.t1, dA)
                            matvecT(w.baseAddress! + l.projection(1, f, fields: F), c.t1, c.t2, dA)
                        }
                        q = UnsafePointer(c.t2)
                    }
                    let scale = searchScale(f)
                    for d in 0..<dA { c.queries[b * kw + f * dA + d] = q[d] * scale }
                }
            }

        case .search:
            gemm(c.queries, lda: kw, c.keysT, ldb: c.keyStride, c.scores, ldc: c.keyStride, m: C, n: c.n, k: kw)

        case .topK:
            for b in 0..<C {
                let k = selectTopK(c.scores + b * c.keyStride, c.n, K, into: c.picked, work: c.order)
                let selected = c.selected + b * K
                for i in 0..<k { selected[i] = Int32(truncatingIfNeeded: c.picked[i]) }
                c.selectedCount[b] = Int32(k)
            }

        case .softmax:
            for b in 0..<C {
                let scores = c.scores + b * c.keyStride, k = Int(c.selectedCount[b])
                let weights = c.weights + b * K, selected = c.selected + b * K
                var top = -Float.infinity
                for i in 0..<k { top = max(top, scores[Int(selected[i])]) }
                var total: Float = 0
                for i in 0..<k {
                    weights[i] = exp(scores[Int(selected[i])] - top)
                    total += weights[i]
                }
                for i in 0..<k { weights[i] /= total }
            }

        case .aggregate:
            let stride = c.candidateStride
            for b in 0..<min(8, C) { for f in 0..<F { recstream_prefetch(tables[representation[f]].row(row(f, item: Int(candidates[b]), time: 0)), dR * 4) } }
            for b in 0..<C {
                if b + 8 < C { for f in 0..<F { recstream_prefetch(tables[representation[f]].row(row(f, item: Int(candidates[b + 8]), time: 0)), dR * 4) } }
                let t = Int(candidates[b])
                // x = [v_t, h, v_t (.) h] for this candidate, the (b mod 8)-th of eight.
                let x = c.x + b % 8 * l.input, hv = x + vw
                for f in 0..<F { copy(tables[representation[f]].row(row(f, item: t, time: 0)), to: x + f * dR, dR) }
                let weights = c.weights + b * K, selected = c.selected + b * K
                weightedSum(c.values, rows: selected, weights: weights, count: Int(c.selectedCount[b]), width: vw, into: hv)
                if s.design.projects {  // v_t = P_VT e_t, h = P_VB (sum_i w_i e_i)
                    dense.withUnsafeBufferPointer { w in
                        for f in 0..<F {
                            copy(x + f * dR, to: c.t1, dR)
                            matvec(w.baseAddress! + l.projection(2, f, fields: F), c.t1, x + f * dR, dR)
                            copy(hv + f * dR, to: c.t1, dR)
                            matvec(w.baseAddress! + l.projection(3, f, fields: F), c.t1, hv + f * dR, dR)
                        }
                    }
                }
                for d in 0..<vw { x[2 * vw + d] = x[d] * hv[d] }
                if l.hasBatchNorm { normalizeWithRunningStatistics(x, into: x) }
                // Every eighth candidate, and the last, the eight go into XT as eight
                // columns (past C: an earlier candidate's finite values, never read).
                if b % 8 == 7 || b == C - 1 {
                    for i in 0..<8 { c.xRows[i] = UnsafePointer(c.x + i * l.input) }
                    transpose8(c.xRows, l.input, into: c.xT + b / 8 * 8, stride: stride)
                }
            }

        case .mlp:
            let stride = c.candidateStride, width = (C + 7) / 8 * 8
            dense.withUnsafeBufferPointer { p in
                let w = p.baseAddress!
                gemm(w + l.w1, lda: l.input, c.xT, ldb: stride, c.z1, ldc: stride, m: l.hidden1, n: C, k: l.input)
                for o in 0..<l.hidden1 { biasPReLU(c.z1 + o * stride, c.a1 + o * stride, width, bias: w[l.b1 + o], alpha: w[l.alpha1]) }
                gemm(w + l.w2, lda: l.hidden1, c.a1, ldb: stride, c.z2, ldc: stride, m: l.hidden2, n: C, k: l.hidden1)
                for o in 0..<l.hidden2 { biasPReLU(c.z2 + o * stride, c.a2 + o * stride, width, bias: w[l.b2 + o], alpha: w[l.alpha2]) }
                // The output: one FMA chain over hidden2 per candidate, as the products do.
                gemm(w + l.w3, lda: l.hidden2, c.a2, ldb: stride, c.logits, ldc: stride, m: 1, n: C, k: l.hidden2)
                for b in 0..<C { out[b] = sigmoid(c.logits[b] + w[l.b3]) }
            }
        }
    }
}

/// out = sum_i weights[i] values[rows[i]] over `count` rows of `width` floats (out starts
/// at zero), in i order: each lane's sum is axpy's (a multiply, then an add), but 64 floats
/// at a time stay in registers, so the rows' loads overlap instead of each waiting on the
/// previous row's store.
@inline(__always)
func weightedSum(_ values: UnsafePointer<Float>, rows: UnsafePointer<Int32>, weights: UnsafePointer<Float>, count: Int, width: Int,
                 into out: UnsafeMutablePointer<Float>) {
    var c0 = 0
    while c0 + 64 <= width {
        var a0 = SIMD8<Float>(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0
        for i in 0..<count {
            let w = SIMD8<Float>(repeating: weights[i]), r = values + Int(rows[i]) * width + c0
            a0 = a0 + w * load8(r); a1 = a1 + w * load8(r + 8); a2 = a2 + w * load8(r + 16); a3 = a3 + w * load8(r + 24)
            a4 = a4 + w * load8(r + 32); a5 = a5 + w * load8(r + 40); a6 = a6 + w * load8(r + 48); a7 = a7 + w * load8(r + 56)
        }
        let o = out + c0
        store8(a0, o); store8(a1, o + 8); store8(a2, o + 16); store8(a3, o + 24)
        store8(a4, o + 32); store8(a5, o + 40); store8(a6, o + 48); store8(a7, o + 56)
        c0 += 64
    }
    if c0 < width {
        (out + c0).initialize(repeating: 0, count: width - c0)
        for i in 0..<count { axpy(weights[i], values + Int(rows[i]) * width + c0, out + c0, width - c0) }
    }
}

/// Columns j..<j + 8 of a row-major matrix with row stride `stride` (its rows 0..<count)
/// from eight vectors of `count` floats: out[d * stride + i] = rows[i][d].
@inline(__always)
func transpose8(_ rows: UnsafePointer<UnsafePointer<Float>>, _ count: Int, into out: UnsafeMutablePointer<Float>, stride: Int) {
    let r0 = rows[0], r1 = rows[1], r2 = rows[2], r3 = rows[3], r4 = rows[4], r5 = rows[5], r6 = rows[6], r7 = rows[7]
    for d in 0..<count { store8(SIMD8(r0[d], r1[d], r2[d], r3[d], r4[d], r5[d], r6[d], r7[d]), out + d * stride) }
}

/// a = PReLU(z + bias) over `n` floats (a multiple of 8).
@inline(__always)
func biasPReLU(_ z: UnsafeMutablePointer<Float>, _ a: UnsafeMutablePointer<Float>, _ n: Int, bias: Float, alpha: Float) {
    let b = SIMD8<Float>(repeating: bias), al = SIMD8<Float>(repeating: alpha), zero = SIMD8<Float>()
    var i = 0
    while i < n {
        let v = load8(z + i) + b
        UnsafeMutableRawPointer(a + i).storeBytes(of: v.replacing(with: v * al, where: v .<= zero), as: SIMD8<Float>.self)
        i += 8
    }
}
