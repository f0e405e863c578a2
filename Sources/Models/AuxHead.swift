import Foundation
import RecCore

/// The reference's auxiliary head (thuml/DARE, `-use_aux_loss`; shared/baselines/
/// dare-reference.md, "Loss"): training only, after the main head has run on the sample.
///
/// a = softmax over every searched score (all L for DARE and TWIN, not the top K);
/// h_all = sum_j a_j e_j in the representation set (through P_VB with projections);
/// x_aux = [v_t, h_all, v_t (.) h_all] -> hidden1 -> PReLU -> 1 logit.
extension RankingModel {
    /// The auxiliary logit of the sample the worker's scratch holds (run `forward` first:
    /// it leaves the scores, the behaviours and v_t there).
    func auxForward(_ target: ItemID, _ worker: Worker) -> Float {
        let s = settings, dR = s.representationDim, F = fieldCount, l = layout
        let c = worker.scratch, n = c.n, first = firstSearched(n)
        var top = -Float.infinity
        for j in first..<n { top = max(top, c.scores[j]) }
        var total: Float = 0
        for j in first..<n {
            c.allWeights[j] = exp(c.scores[j] - top)
            total += c.allWeights[j]
        }
        for j in first..<n { c.allWeights[j] /= total }
        let width = F * dR
        c.hAllRaw.initialize(repeating: 0, count: width)
        for f in 0..<F {
            let table = tables[representation[f]]
            for j in first..<n { axpy(c.allWeights[j], table.row(row(f, item: Int(c.items[j]), time: n - j)), c.hAllRaw + f * dR, dR) }
            if s.design.projects {
                dense.withUnsafeBufferPointer { w in
                    matvec(w.baseAddress! + l.projection(3, f, fields: F), c.hAllRaw + f * dR, c.hAll + f * dR, dR)
                }
            } else {
                copy(c.hAllRaw + f * dR, to: c.hAll + f * dR, dR)
            }
        }
        let x = c.xAux
        copy(c.vt, to: x, width)
        copy(c.hAll, to: x + width, width)
        for d in 0..<width { x[2 * width + d] = c.vt[d] * c.hAll[d] }
        return dense.withUnsafeBufferPointer { p in
            let w = p.baseAddress!
            for o in 0..<l.hidden1 { c.zAux[o] = dot(w + l.auxW1 + o * l.input, x, l.input) + w[l.auxB1 + o] }
            prelu(c.zAux, c.aAux, l.hidden1, w[l.auxAlpha])
            return dot(w + l.auxW2, c.aAux, l.hidden1) + w[l.auxB2]
        }
    }

    /// Adds the gradients of the auxiliary loss, given d(loss)/d(aux logit), to the
    /// worker's: the head's dense parameters, v_t's and every searched behaviour's
    /// representation rows, and, through the softmax over all of them, every searched
    /// behaviour's attention rows and the target's.
    func auxBackward(_ target: ItemID, dLogit g: Float, _ worker: Worker) {
        let s = settings, dA = s.attentionDim, dR = s.representationDim, l = layout, F = fieldCount
        let c = worker.scratch, n = c.n, first = firstSearched(n), t = Int(target)
        let width = F * dR
        dense.withUnsafeBufferPointer { wp in
            worker.denseGradient.withUnsafeMutableBufferPointer { gp in
                let w = wp.baseAddress!, gw = gp.baseAddress!
                axpy(g, c.aAux, gw + l.auxW2, l.hidden1)
                gw[l.auxB2] += g
                for o in 0..<l.hidden1 { c.daAux[o] = g * w[l.auxW2 + o] }
                gw[l.auxAlpha] += preluBackward(c.zAux, c.daAux, c.dzAux, l.hidden1, w[l.auxAlpha])
                c.dxAux.initialize(repeating: 0, count: l.input)
                for o in 0..<l.hidden1 {
                    axpy(c.dzAux[o], c.xAux, gw + l.auxW1 + o * l.input, l.input)
                    gw[l.auxB1 + o] += c.dzAux[o]
                    axpy(c.dzAux[o], w + l.auxW1 + o * l.input, c.dxAux, l.input)
                }
            }
        }
        for d in 0..<width {
            c.dvt[d] = c.dxAux[d] + c.dxAux[2 * width + d] * c.hAll[d]
            c.dhAll[d] = c.dxAux[width + d] + c.dxAux[2 * width + d] * c.vt[d]
        }
        for j in first..<n { c.dAll[j] = 0 }
        for f in 0..<F {
            let table = tables[representation[f]]
            let targetRow = row(f, item: t, time: 0)
            var dvt = c.dvt + f * dR, dh = c.dhAll + f * dR
            if s.design.projects {  // v_t = P_VT e_t, h_all = P_VB r_all (TWIN with projections: dA == dR)
                dense.withUnsafeBufferPointer { wp in
                    worker.denseGradient.withUnsafeMutableBufferPointer { gp in
                        let w = wp.baseAddress!, gw = gp.baseAddress!
                        let pvt = l.projection(2, f, fields: F), pvb = l.projection(3, f, fields: F)
                        outer(c.dvt + f * dR, table.row(targetRow), gw + pvt, dR)
                        matvecT(w + pvt, c.dvt + f * dR, c.dy, dR)
                        outer(c.dhAll + f * dR, c.hAllRaw + f * dR, gw + pvb, dR)
                        matvecT(w + pvb, c.dhAll + f * dR, c.dr, dR)
                    }
                }
                dvt = c.dy
                dh = c.dr
            }
            accumulate(worker, representation[f], targetRow, dvt, 1, dR)
            for j in first..<n {
                let r = row(f, item: Int(c.items[j]), time: n - j)
                accumulate(worker, representation[f], r, dh, c.allWeights[j], dR)
                c.dAll[j] += dot(dh, table.row(r), dR)
            }
        }
        var weighted: Float = 0
        for j in first..<n { weighted += c.allWeights[j] * c.dAll[j] }
        c.dq.initialize(repeating: 0, count: F * dA)
        for f in 0..<F {
            let table = tables[attention[f]], scale = searchScale(f)
            let rawQuery = table.row(row(f, item: t, time: 0))
            let q = s.design.projects ? UnsafeMutablePointer(c.projU + f * dA) : rawQuery
            for j in first..<n {
                let r = row(f, item: Int(c.items[j]), time: n - j)
                let ds = c.allWeights[j] * (c.dAll[j] - weighted) * scale
                axpy(ds, table.row(r), c.dq + f * dA, dA)
                accumulate(worker, attention[f], r, q, ds, dA)
            }
            if s.design.projects {
                dense.withUnsafeBufferPointer { wp in
                    worker.denseGradient.withUnsafeMutableBufferPointer { gp in
                        let w = wp.baseAddress!, gw = gp.baseAddress!
                        let pq = l.projection(0, f, fields: F), pk = l.projection(1, f, fields: F)
                        outer(c.projY + f * dA, c.dq + f * dA, gw + pk, dA)
                        matvec(w + pk, c.dq + f * dA, c.dy, dA)
                        outer(c.dy, rawQuery, gw + pq, dA)
                        matvecT(w + pq, c.dy, c.dq + f * dA, dA)
                    }
                }
            }
            accumulate(worker, attention[f], row(f, item: t, time: 0), c.dq + f * dA, 1, dA)
        }
    }
}
