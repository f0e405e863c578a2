import Foundation
import RecCore

/// Scoring one user's history against many candidates, the server's hot path.
///
/// The history's attention and representation rows are gathered once into contiguous
/// buffers (random reads from the tables happen once per request, not once per
/// candidate); search scores and the MLP run four candidates at a time, so each key row
/// and each weight row loaded serves four candidates.
final class ScoringScratch {
    let capacity: Int
    let keys, values: UnsafeMutablePointer<Float>
    let queries: UnsafeMutablePointer<Float>   // 4 x F dA, search scales folded in
    let scores: UnsafeMutablePointer<Float>    // 4 x L
    let x: UnsafeMutablePointer<Float>         // 4 x input
    let z1, a1: UnsafeMutablePointer<Float>    // 4 x hidden1
    let z2, a2: UnsafeMutablePointer<Float>    // 4 x hidden2
    let selected: UnsafeMutablePointer<Int>
    /// Temporaries for TWIN with projections.
    let t1, t2: UnsafeMutablePointer<Float>
    let order: UnsafeMutablePointer<UInt64>
    let weights: UnsafeMutablePointer<Float>

    init(_ s: RankingModelSettings, input: Int) {
        let F = s.fields.rawValue
        capacity = s.maxHistory
        keys = .allocate(capacity: s.maxHistory * F * s.attentionDim)
        values = .allocate(capacity: s.maxHistory * F * s.representationDim)
        queries = .allocate(capacity: 4 * F * s.attentionDim)
        scores = .allocate(capacity: 4 * s.maxHistory)
        x = .allocate(capacity: 4 * input)
        z1 = .allocate(capacity: 4 * s.hidden1); a1 = .allocate(capacity: 4 * s.hidden1)
        z2 = .allocate(capacity: 4 * s.hidden2); a2 = .allocate(capacity: 4 * s.hidden2)
        selected = .allocate(capacity: s.topK)
        t1 = .allocate(capacity: max(s.attentionDim, s.representationDim))
        t2 = .allocate(capacity: max(s.attentionDim, s.representationDim))
        order = .allocate(capacity: 2 * s.maxHistory + 64)
        weights = .allocate(capacity: s.topK)
    }

    deinit {
        for p in [keys, values, queries, scores, x, z1, a1, z2, a2, weights, t1, t2] { p.deallocate() }
        selected.deallocate()
        order.deallocate()
    }
}

extension RankingModel {
    /// Scores one user's history against many candidates in one call (click
    /// probabilities), with the history's rows gathered once.
    public func score(history: UnsafeBufferPointer<HistoryEntry>, candidates: UnsafeBufferPointer<ItemID>, into out: UnsafeMutablePointer<Float>) {
        let s = settings, F = fieldCount, dA = s.attentionDim, dR = s.representationDim
        let full = window(history)
        // DIN looks at the most recent K only: the rest is never gathered. Time ids stay
        // relative to the whole window, as in training.
        let first = firstSearched(full.count), n = full.count - first, total = full.count
        let h = UnsafeBufferPointer(rebasing: full[first...])
        let kw = F * dA, vw = F * dR, l = layout
        let c = scoring

        // Gather each behaviour's attention and representation rows, fields side by side.
        for j in 0..<n {
            let item = Int(h[j].item)
            for f in 0..<F {
                let r = row(f, item: item, time: total - (first + j))
                copy(tables[attention[f]].row(r), to: c.keys + j * kw + f * dA, dA)
                copy(tables[representation[f]].row(r), to: c.values + j * vw + f * dR, dR)
            }
        }

        var start = 0
        while start < candidates.count {
            let block = min(4, candidates.count - start)
            // Queries with the search scales folded in; a short block repeats its first.
            for b in 0..<4 {
                let t = Int(candidates[start + min(b, block - 1)])
                for f in 0..<F {
                    var q = UnsafePointer(tables[attention[f]].row(row(f, item: t, time: 0)))
                    let scale = searchScale(f)
                    if s.design.projects {  // u = P_K^T P_Q q, as in training
                        dense.withUnsafeBufferPointer { w in
                            matvec(w.baseAddress! + l.projection(0, f, fields: F), q, c.t1, dA)
                            matvecT(w.baseAddress! + l.projection(1, f, fields: F), c.t1, c.t2, dA)
                        }
                        q = UnsafePointer(c.t2)
                    }
                    for d in 0..<dA { c.queries[b * kw + f * dA + d] = q[d] * scale }
                }
            }
            dot4(c.queries, c.keys, n, kw, into: c.scores, stride: c.capacity)

            for b in 0..<block {
                let t = Int(candidates[start + b])
                let scores = c.scores + b * c.capacity
                let k = selectTopK(scores, n, s.topK, into: c.selected, work: c.order)
                var top = -Float.infinity
                for i in 0..<k { top = max(top, scores[c.selected[i]]) }
                var total: Float = 0
                for i in 0..<k {
                    c.weights[i] = exp(scores[c.selected[i]] - top)
                    total += c.weights[i]
                }
                // x = [v_t, h, v_t (.) h] for this candidate.
                let x = c.x + b * l.input
                for f in 0..<F { copy(tables[representation[f]].row(row(f, item: t, time: 0)), to: x + f * dR, dR) }
                let hv = x + vw
                hv.initialize(repeating: 0, count: vw)
                for i in 0..<k { axpy(c.weights[i] / total, c.values + c.selected[i] * vw, hv, vw) }
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
            }
            if block < 4 {
                for b in block..<4 { (c.x + b * l.input).update(from: c.x, count: l.input) }
            }
            if l.hasBatchNorm {
                for b in 0..<4 { normalizeWithRunningStatistics(c.x + b * l.input, into: c.x + b * l.input) }
            }

            // MLP, four candidates per pass over each weight row.
            dense.withUnsafeBufferPointer { p in
                let w = p.baseAddress!
                dot4(c.x, w + l.w1, l.hidden1, l.input, into: c.z1, stride: l.hidden1)
                for b in 0..<4 {
                    for o in 0..<l.hidden1 { c.z1[b * l.hidden1 + o] += w[l.b1 + o] }
                    prelu(c.z1 + b * l.hidden1, c.a1 + b * l.hidden1, l.hidden1, w[l.alpha1])
                }
                dot4(c.a1, w + l.w2, l.hidden2, l.hidden1, into: c.z2, stride: l.hidden2)
                for b in 0..<block {
                    for o in 0..<l.hidden2 { c.z2[b * l.hidden2 + o] += w[l.b2 + o] }
                    prelu(c.z2 + b * l.hidden2, c.a2 + b * l.hidden2, l.hidden2, w[l.alpha2])
                    out[start + b] = sigmoid(dot(w + l.w3, c.a2 + b * l.hidden2, l.hidden2) + w[l.b3])
                }
            }
            start += block
        }
    }
}

/// scores[b * stride + j] = <queries[b], keys[j]> for four queries of `width` floats
/// against `n` contiguous rows: each row is loaded once for the four. Serves the search
/// (queries against history keys) and the MLP (inputs against weight rows).
@inline(__always)
func dot4(_ queries: UnsafePointer<Float>, _ keys: UnsafePointer<Float>, _ n: Int, _ width: Int,
          into scores: UnsafeMutablePointer<Float>, stride: Int) {
    let q0 = queries, q1 = queries + width, q2 = queries + 2 * width, q3 = queries + 3 * width
    for j in 0..<n {
        let k = keys + j * width
        var a0 = SIMD8<Float>(), a1 = SIMD8<Float>(), a2 = SIMD8<Float>(), a3 = SIMD8<Float>()
        var d = 0
        while d + 8 <= width {
            let kv = load8(k + d)
            a0 += load8(q0 + d) * kv
            a1 += load8(q1 + d) * kv
            a2 += load8(q2 + d) * kv
            a3 += load8(q3 + d) * kv
            d += 8
        }
        var s0 = a0.sum(), s1 = a1.sum(), s2 = a2.sum(), s3 = a3.sum()
        while d < width {
            s0 += q0[d] * k[d]; s1 += q1[d] * k[d]; s2 += q2[d] * k[d]; s3 += q3[d] * k[d]
            d += 1
        }
        scores[j] = s0
        scores[stride + j] = s1
        scores[2 * stride + j] = s2
        scores[3 * stride + j] = s3
    }
}

@inline(__always)
func load8(_ p: UnsafePointer<Float>) -> SIMD8<Float> {
    UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self)
}
