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
            linear(w + l.auxW1, w + l.auxB1, x, c.zAux, outputs: l.hidden1, inputs: l.input)
            prelu(c.zAux, c.aAux, l.hidden1, w[l.auxAlpha])
            return dot(w + l.auxW2, c.aAux, l.hidden1) + w[l.auxB2]
        }
    }

    /// Adds the gradients of the auxiliary loss, given d(loss)/d(aux logit), to the
    /// worker's: the head's dense parameters, then (`backwardThroughAttention`) v_t's and
    /// every searched behaviour's representation rows and, through the softmax over all of
    /// them, every searched behaviour's attention rows and the target's.
    func auxBackward(_ target: ItemID, dLogit g: Float, _ worker: Worker) {
        let l = layout, c = worker.scratch, n = c.n, first = firstSearched(n)
        dense.withUnsafeBufferPointer { wp in
            worker.denseGradient.withUnsafeMutableBufferPointer { gp in
                let w = wp.baseAddress!, gw = gp.baseAddress!
                axpy(g, c.aAux, gw + l.auxW2, l.hidden1)
                gw[l.auxB2] += g
                for o in 0..<l.hidden1 { c.daAux[o] = g * w[l.auxW2 + o] }
                gw[l.auxAlpha] += preluBackward(c.zAux, c.daAux, c.dzAux, l.hidden1, w[l.auxAlpha])
                linearBackward(c.dzAux, c.xAux, w + l.auxW1, gw + l.auxW1, gw + l.auxB1, c.dxAux, outputs: l.hidden1, inputs: l.input)
            }
        }
        backwardThroughAttention(Int(target), dx: c.dxAux, h: c.hAll, hRaw: c.hAllRaw, positions: first..<n,
                                 weights: c.allWeights + first, dWeights: c.dAll + first, worker)
    }
}
