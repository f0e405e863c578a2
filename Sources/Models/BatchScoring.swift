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
/// bits alone, anywhere in a list, or repeated. What every candidate shares is computed
/// once: with the time field, the target's time row is position 0's for every candidate,
/// so its search scores are one row added to each row of S, and W1 times v_t's time block
/// is one vector folded into the first layer's bias. The stages are separate passes
/// (`ScoringStage`) so that a benchmark can time each.
final class ScoringScratch {
    /// The columns of keysT and the rows of S: the history's capacity, padded to 8.
    let keyStride: Int
    let keysT, values: UnsafeMutablePointer<Float>
    /// Whether the gather copies the representation rows into `values` (serving needs
    /// them; a training step's search reads its K rows from the tables).
    let gathersValues: Bool
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
    /// What every candidate shares (the time field's target row is position 0 for all):
    /// the time query, its scores against the history, and W1 times v_t's time block plus
    /// the first layer's bias.
    let timeQuery, timeScores, firstBias: UnsafeMutablePointer<Float>
    let order: UnsafeMutablePointer<UInt64>
    /// The attention tables' rows by field, then the representation tables' (`bind`).
    let tableRows: UnsafeMutablePointer<UnsafeMutablePointer<Float>>
    let kw, topK, input, hidden1, hidden2: Int
    /// What the last gather left: behaviours searched, the first searched, the window's length.
    var n = 0, first = 0, total = 0

    init(_ s: RankingModelSettings, input: Int, gathersValues: Bool = true) {
        let F = s.fields.rawValue
        keyStride = (s.maxHistory + 7) / 8 * 8
        kw = F * s.attentionDim
        topK = s.topK
        self.input = input
        hidden1 = s.hidden1
        hidden2 = s.hidden2
        keysT = .allocate(capacity: kw * keyStride)
        keysT.initialize(repeating: 0, count: kw * keyStride)
        self.gathersValues = gathersValues
        values = .allocate(capacity: gathersValues ? s.maxHistory * F * s.representationDim : 0)
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
        tableRows = .allocate(capacity: 2 * F)
        timeQuery = .allocate(capacity: s.attentionDim)
        timeScores = .allocate(capacity: keyStride)
        timeScores.initialize(repeating: 0, count: keyStride)
        firstBias = .allocate(capacity: s.hidden1)
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

    /// Reads the model's table addresses (a table that grew has moved).
    func bind(_ model: RankingModel) {
        for f in 0..<model.fieldCount {
            tableRows[f] = model.tables[model.attention[f]].values
            tableRows[model.fieldCount + f] = model.tables[model.representation[f]].values
        }
    }

    private func freeCandidateBuffers() {
        for p in [queries, scores, weights, xT, z1, a1, z2, a2, logits] { p.deallocate() }
        selected.deallocate()
        selectedCount.deallocate()
    }

    deinit {
        freeCandidateBuffers()
        for p in [keysT, values, x, t1, t2, zeros, timeQuery, timeScores, firstBias] { p.deallocate() }
        keyRows.deallocate()
        tableRows.deallocate()
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

    /// The passes in order (held once: `allCases` builds its array at each call).
    package static let passes = allCases
}

extension RankingModel {
    /// Scores one user's history against many candidates in one call (click
    /// probabilities), as matrix products (see `ScoringScratch`).
    public func score(history: UnsafeBufferPointer<HistoryEntry>, candidates: UnsafeBufferPointer<ItemID>, into out: UnsafeMutablePointer<Float>) {
        guard !candidates.isEmpty else { return }
        for stage in ScoringStage.passes { score(stage, history: history, candidates: candidates, into: out) }
    }

    /// The fields whose target row differs by candidate (item, category): the time field's,
    /// when there is one, is position 0's for every candidate, so its terms are shared.
    package var candidateFields: Int { fieldCount == 3 ? 2 : fieldCount }

    /// Runs one pass of `score(history:candidates:into:)`; the passes run in
    /// `ScoringStage.passes` order on the same arguments (a benchmark times each).
    package func score(_ stage: ScoringStage, history: UnsafeBufferPointer<HistoryEntry>, candidates: UnsafeBufferPointer<ItemID>,
                       into out: UnsafeMutablePointer<Float>) {
        score(stage, history: history, candidates: candidates, into: out, scratch: scoring)
    }

    /// A pass on a given scratch: a training worker runs the first three (gather, queries,
    /// search) on its own, for a user's targets searched together.
    func score(_ stage: ScoringStage, history: UnsafeBufferPointer<HistoryEntry>, candidates: UnsafeBufferPointer<ItemID>,
               into out: UnsafeMutablePointer<Float>?, scratch c: ScoringScratch) {
        let s = settings, F = fieldCount, dA = s.attentionDim, dR = s.representationDim
        let kw = F * dA, vw = F * dR, l = layout, K = s.topK
        let C = candidates.count
        guard C > 0 else { return }
        let own = candidateFields
        // The loops below read locals only: each read of a class's stored `var` (the
        // scratch's counts and buffers, the tables, the catalog) is a run-time exclusivity
        // check, which per behaviour cost more than the copying.
        c.bind(self)
        let attentionRows = UnsafePointer(c.tableRows), representationRows = UnsafePointer(c.tableRows + F)
        let categories = categoryOf
        @inline(__always) func fieldRow(_ f: Int, _ item: Int, _ time: Int) -> Int {
            f == 0 ? item : f == 1 ? Int(categories[item]) : time
        }
        switch stage {
        case .gather:
            c.reserve(candidates: C)
            let full = window(history)
            // DIN looks at the most recent K only: the rest is never gathered. Time ids stay
            // relative to the whole window, as in training.
            let first = firstSearched(full.count), n = full.count - first, total = full.count
            c.first = first
            c.n = n
            c.total = total
            let ks = c.keyStride, keysT = c.keysT, values = c.values, keyRows = c.keyRows, zeros = UnsafePointer(c.zeros)
            let gathersValues = c.gathersValues
            // The rows are random reads from large tables: ask for those `ahead` behaviours
            // on while copying these, so their misses overlap.
            let ahead = 16
            @inline(__always) func prefetch(_ j: Int) {
                let item = Int(full[first + j].item)
                for f in 0..<F {
                    let r = fieldRow(f, item, total - (first + j))
                    recstream_prefetch(attentionRows[f] + r * dA, dA * 4)
                    if gathersValues { recstream_prefetch(representationRows[f] + r * dR, dR * 4) }
                }
            }
            for j in 0..<min(ahead, n) { prefetch(j) }
            // Eight behaviours at a time: their attention rows go into keysT as eight whole
            // columns (one vector store per feature, not eight scattered ones); the last
            // eight are padded with zeros, so padded scores are finite (never read).
            var j0 = 0
            while j0 < n {
                let count = min(8, n - j0)
                for j in j0..<j0 + count {
                    if j + ahead < n { prefetch(j + ahead) }
                    let item = Int(full[first + j].item)
                    for f in 0..<F {
                        let r = fieldRow(f, item, total - (first + j))
                        keyRows[f * 8 + j - j0] = UnsafePointer(attentionRows[f] + r * dA)
                        if gathersValues { copy(representationRows[f] + r * dR, to: values + j * vw + f * dR, dR) }
                    }
                }
                for f in 0..<F {
                    let p = keyRows + f * 8
                    for i in count..<8 { p[i] = zeros }
                    transpose8(p, dA, into: keysT + f * dA * ks + j0, stride: ks)
                }
                j0 += 8
            }

        case .queries:
            // Field f's query for a target, search scale folded in.
            func query(_ f: Int, item t: Int, into out: UnsafeMutablePointer<Float>) {
                var q = UnsafePointer(attentionRows[f] + fieldRow(f, t, 0) * dA)
                if s.design.projects {  // u = P_K^T P_Q q, as in training
                    dense.withUnsafeBufferPointer { w in
                        matvec(w.baseAddress! + l.projection(0, f, fields: F), q, c.t1, dA)
                        matvecT(w.baseAddress! + l.projection(1, f, fields: F), c.t1, c.t2, dA)
                    }
                    q = UnsafePointer(c.t2)
                }
                let scale = searchScale(f)
                for d in 0..<dA { out[d] = q[d] * scale }
            }
            let queries = c.queries
            for b in 0..<min(8, C) { for f in 0..<own { recstream_prefetch(attentionRows[f] + fieldRow(f, Int(candidates[b]), 0) * dA, dA * 4) } }
            for b in 0..<C {
                if b + 8 < C { for f in 0..<own { recstream_prefetch(attentionRows[f] + fieldRow(f, Int(candidates[b + 8]), 0) * dA, dA * 4) } }
                for f in 0..<own { query(f, item: Int(candidates[b]), into: queries + b * kw + f * dA) }
            }
            if own < F { query(own, item: 0, into: c.timeQuery) }

        case .search:
            let ks = c.keyStride, n = c.n, scores = c.scores, timeScores = c.timeScores
            gemm(c.queries, lda: kw, c.keysT, ldb: ks, scores, ldc: ks, m: C, n: n, k: own * dA)
            if own < F {  // the time field's scores: one row, added to every candidate's
                gemm(c.timeQuery, lda: dA, c.keysT + own * dA * ks, ldb: ks, timeScores, ldc: ks, m: 1, n: n, k: dA)
                let width = (n + 7) / 8 * 8
                for b in 0..<C {
                    let row = scores + b * ks
                    var j = 0
                    while j < width {
                        store8(load8(row + j) + load8(timeScores + j), row + j)
                        j += 8
                    }
                }
            }

        case .topK:
            let scores = c.scores, selected = c.selected, counts = c.selectedCount, picked = c.picked, order = c.order
            let n = c.n, ks = c.keyStride
            for b in 0..<C {
                let k = selectTopK(scores + b * ks, n, K, into: picked, work: order)
                let row = selected + b * K
                for i in 0..<k { row[i] = Int32(truncatingIfNeeded: picked[i]) }
                counts[b] = Int32(k)
            }

        case .softmax:
            let scores = c.scores, selected = c.selected, counts = c.selectedCount, weights = c.weights, ks = c.keyStride
            for b in 0..<C {
                let row = scores + b * ks, k = Int(counts[b])
                let w = weights + b * K, picked = selected + b * K
                var top = -Float.infinity
                for i in 0..<k { top = max(top, row[Int(picked[i])]) }
                var total: Float = 0
                for i in 0..<k {
                    w[i] = exp(row[Int(picked[i])] - top)
                    total += w[i]
                }
                for i in 0..<k { w[i] /= total }
            }

        case .aggregate:
            precondition(c.gathersValues, "a scratch that does not gather the representation rows cannot aggregate")
            let stride = c.candidateStride, values = UnsafePointer(c.values), xs = c.x, xRows = c.xRows, xT = c.xT
            let selected = c.selected, counts = c.selectedCount, weights = c.weights
            for b in 0..<min(8, C) { for f in 0..<F { recstream_prefetch(representationRows[f] + fieldRow(f, Int(candidates[b]), 0) * dR, dR * 4) } }
            for b in 0..<C {
                if b + 8 < C { for f in 0..<F { recstream_prefetch(representationRows[f] + fieldRow(f, Int(candidates[b + 8]), 0) * dR, dR * 4) } }
                let t = Int(candidates[b])
                // x = [v_t, h, v_t (.) h] for this candidate, the (b mod 8)-th of eight.
                let x = xs + b % 8 * l.input, hv = x + vw
                for f in 0..<F { copy(representationRows[f] + fieldRow(f, t, 0) * dR, to: x + f * dR, dR) }
                weightedSum(values, rows: selected + b * K, weights: weights + b * K, count: Int(counts[b]), width: vw, into: hv)
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
                    for i in 0..<8 { xRows[i] = UnsafePointer(xs + i * l.input) }
                    transpose8(xRows, l.input, into: xT + b / 8 * 8, stride: stride)
                }
            }

        case .mlp:
            let stride = c.candidateStride
            let xT = c.xT, z1 = c.z1, a1 = c.a1, z2 = c.z2, a2 = c.a2, logits = c.logits
            let bias = c.firstBias, t1 = c.t1
            dense.withUnsafeBufferPointer { p in
                let w = p.baseAddress!
                for o in 0..<l.hidden1 { bias[o] = w[l.b1 + o] }
                if own < F {
                    // v_t's time block (rows [block, block + dR) of XT) is the same in every
                    // column: W1's product with it is one vector, added to the bias.
                    let block = own * dR, rest = block + dR
                    for d in 0..<dR { t1[d] = xT[(block + d) * stride] }
                    for o in 0..<l.hidden1 { bias[o] += dot(w + l.w1 + o * l.input + block, t1, dR) }
                    gemm(w + l.w1, lda: l.input, xT, ldb: stride, z1, ldc: stride, m: l.hidden1, n: C, k: block)
                    gemm(w + l.w1 + rest, lda: l.input, xT + rest * stride, ldb: stride, z1, ldc: stride, m: l.hidden1, n: C,
                         k: l.input - rest, accumulate: true)
                } else {
                    gemm(w + l.w1, lda: l.input, xT, ldb: stride, z1, ldc: stride, m: l.hidden1, n: C, k: l.input)
                }
                mlpAboveFirstProduct(w, bias1: bias, z1: z1, a1: a1, z2: z2, a2: a2, logits: logits, stride: stride, count: C)
                if let out { for b in 0..<C { out[b] = sigmoid(logits[b] + w[l.b3]) } }
            }
        }
    }

    /// The MLP above its first product, over `count` columns (row stride `stride`):
    /// A1 = PReLU(Z1 + bias1), Z2 = W2 A1, A2 = PReLU(Z2 + b2), and the logits w3 A2 without
    /// b3 (one FMA chain over hidden2 per column, as the products do). Serving and a
    /// training group's forward pass share it.
    func mlpAboveFirstProduct(_ w: UnsafePointer<Float>, bias1: UnsafePointer<Float>, z1: UnsafeMutablePointer<Float>, a1: UnsafeMutablePointer<Float>,
                              z2: UnsafeMutablePointer<Float>, a2: UnsafeMutablePointer<Float>, logits: UnsafeMutablePointer<Float>,
                              stride: Int, count: Int) {
        let l = layout, width = (count + 7) / 8 * 8
        for o in 0..<l.hidden1 { biasPReLU(z1 + o * stride, a1 + o * stride, width, bias: bias1[o], alpha: w[l.alpha1]) }
        gemm(w + l.w2, lda: l.hidden1, a1, ldb: stride, z2, ldc: stride, m: l.hidden2, n: count, k: l.hidden1)
        for o in 0..<l.hidden2 { biasPReLU(z2 + o * stride, a2 + o * stride, width, bias: w[l.b2 + o], alpha: w[l.alpha2]) }
        gemm(w + l.w3, lda: l.hidden2, a2, ldb: stride, logits, ldc: stride, m: 1, n: count, k: l.hidden2)
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
