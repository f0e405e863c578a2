import Dispatch
import Foundation
import RecCore

extension RankingModel {
    // MARK: Backward

    /// Adds d(loss)/d(parameters) of the sample in the worker's scratch to the worker's
    /// gradients, given d(loss)/d(logit).
    func backward(_ target: ItemID, dLogit g: Float, _ worker: Worker) {
        let c = worker.scratch
        if layout.hasBatchNorm {
            // A batch of one (the reference drops BatchNorm there): the running statistics
            // are constants, dx = dy (.) gamma / sqrt(var + eps).
            mlpBackward(c.y, dLogit: g, worker)
            backwardThroughRunningStatistics(c.x, worker)
        } else {
            mlpBackward(c.x, dLogit: g, worker)
        }
        embedBackward(target, worker)
    }

    /// The MLP's backward pass for input `x`: adds its dense gradients to the worker's and
    /// leaves d(loss)/d(x) in the scratch's dx.
    func mlpBackward(_ x: UnsafePointer<Float>, dLogit g: Float, _ worker: Worker) {
        let l = layout, c = worker.scratch
        dense.withUnsafeBufferPointer { wp in
            worker.denseGradient.withUnsafeMutableBufferPointer { gp in
                let w = wp.baseAddress!, gw = gp.baseAddress!
                // Output layer.
                axpy(g, c.a2, gw + l.w3, l.hidden2)
                gw[l.b3] += g
                for o in 0..<l.hidden2 { c.da2[o] = g * w[l.w3 + o] }
                // PReLU 2, layer 2.
                gw[l.alpha2] += preluBackward(c.z2, c.da2, c.dz2, l.hidden2, w[l.alpha2])
                linearBackward(c.dz2, c.a1, w + l.w2, gw + l.w2, gw + l.b2, c.da1, outputs: l.hidden2, inputs: l.hidden1)
                // PReLU 1, layer 1.
                gw[l.alpha1] += preluBackward(c.z1, c.da1, c.dz1, l.hidden1, w[l.alpha1])
                linearBackward(c.dz1, x, w + l.w1, gw + l.w1, gw + l.b1, c.dx, outputs: l.hidden1, inputs: l.input)
            }
        }
    }

    /// The embedding part's backward pass, from d(loss)/d(x) in the scratch's dx (the
    /// scratch holding the sample's `embed`).
    func embedBackward(_ target: ItemID, _ worker: Worker) {
        let c = worker.scratch
        backwardThroughAttention(Int(target), dx: c.dx, h: c.h, hRaw: c.hRaw, positions: UnsafeBufferPointer(start: c.selected, count: c.k),
                                 weights: c.weights, dWeights: c.dWeights, worker)
    }

    /// Back from d(loss)/d(x), x = [v_t, h, v_t (.) h], where h = sum_i weights[i] e_i over
    /// the behaviours at window `positions` (representation rows; through P_VB with
    /// projections, `hRaw` being the sum before it) and the weights are a softmax over those
    /// behaviours' search scores: adds the gradients of the target's and the behaviours'
    /// representation and attention rows, and of the projections. It serves the main head
    /// (the K kept behaviours) and the auxiliary one (every searched behaviour). The scratch
    /// holds the sample's `embed`; its dvt, dh, dq, dy and dr are overwritten.
    func backwardThroughAttention<P: Collection<Int>>(_ t: Int, dx: UnsafePointer<Float>, h: UnsafePointer<Float>, hRaw: UnsafePointer<Float>,
                                                       positions: P, weights: UnsafePointer<Float>, dWeights: UnsafeMutablePointer<Float>,
                                                       _ worker: Worker) {
        let s = settings, dA = s.attentionDim, dR = s.representationDim, l = layout
        let c = worker.scratch, n = c.n
        // x = [v_t, h, v_t (.) h]: gradients of v_t and h.
        let F = fieldCount, width = F * dR
        for d in 0..<width {
            c.dvt[d] = dx[d] + dx[2 * width + d] * h[d]
            c.dh[d] = dx[width + d] + dx[2 * width + d] * c.vt[d]
        }
        // h = sum_i w_i e_i: each behaviour's representation gets w_i dh; the weights get <dh, e_i>.
        // With projections, h = P_VB r and v_t = P_VT e_t: first back through the matrices.
        for i in 0..<positions.count { dWeights[i] = 0 }
        for f in 0..<F {
            let table = tables[representation[f]]
            let target = table.row(row(f, item: t, time: 0))
            var dvt = c.dvt + f * dR, dh = c.dh + f * dR
            if s.design.projects {
                dense.withUnsafeBufferPointer { wp in
                    worker.denseGradient.withUnsafeMutableBufferPointer { gp in
                        let w = wp.baseAddress!, gw = gp.baseAddress!
                        let pvt = l.projection(2, f, fields: F), pvb = l.projection(3, f, fields: F)
                        outer(c.dvt + f * dR, target, gw + pvt, dR)                // dP_VT += dvt e_t^T
                        matvecT(w + pvt, c.dvt + f * dR, c.dy, dR)               // de_t = P_VT^T dvt
                        outer(c.dh + f * dR, hRaw + f * dR, gw + pvb, dR)        // dP_VB += dh r^T
                        matvecT(w + pvb, c.dh + f * dR, c.dr, dR)                // dr = P_VB^T dh
                    }
                }
                dvt = c.dy
                dh = c.dr
            }
            let rows = c.rows
            for (i, j) in positions.enumerated() { rows[i] = row(f, item: Int(c.items[j]), time: n - j) }
            let gradient = worker.sparse[representation[f]]
            gradient.add(dvt, row: row(f, item: t, time: 0))
            gradient.add(dh, scales: weights, rows: rows, count: positions.count)
            for i in 0..<positions.count { dWeights[i] += dot(dh, table.row(rows[i]), dR) }
        }
        var weighted: Float = 0
        for i in 0..<positions.count { weighted += weights[i] * dWeights[i] }
        // Softmax: dscore_i = w_i (dw_i - sum_k w_k dw_k); then the scaled dot products.
        c.dq.initialize(repeating: 0, count: F * dA)
        for f in 0..<F {
            let table = tables[attention[f]], scale = searchScale(f)
            let rawQuery = table.row(row(f, item: t, time: 0))
            // The query the keys met: raw, or u = P_K^T P_Q q with projections.
            let q = s.design.projects ? UnsafeMutablePointer(c.projU + f * dA) : rawQuery
            let rows = c.rows, ds = c.dScores
            for (i, j) in positions.enumerated() {
                rows[i] = row(f, item: Int(c.items[j]), time: n - j)
                ds[i] = weights[i] * (dWeights[i] - weighted) * scale
                axpy(ds[i], table.row(rows[i]), c.dq + f * dA, dA)
            }
            worker.sparse[attention[f]].add(q, scales: ds, rows: rows, count: positions.count)
            if s.design.projects {
                // dq holds du; u = P_K^T y, y = P_Q q.
                dense.withUnsafeBufferPointer { wp in
                    worker.denseGradient.withUnsafeMutableBufferPointer { gp in
                        let w = wp.baseAddress!, gw = gp.baseAddress!
                        let pq = l.projection(0, f, fields: F), pk = l.projection(1, f, fields: F)
                        outer(c.projY + f * dA, c.dq + f * dA, gw + pk, dA)  // dP_K += y du^T
                        matvec(w + pk, c.dq + f * dA, c.dy, dA)              // dy = P_K du
                        outer(c.dy, rawQuery, gw + pq, dA)                    // dP_Q += dy q^T
                        matvecT(w + pq, c.dy, c.dq + f * dA, dA)             // dq = P_Q^T dy
                    }
                }
            }
            worker.sparse[attention[f]].add(c.dq + f * dA, row: row(f, item: t, time: 0))
        }
    }
}
