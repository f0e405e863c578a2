import Foundation
import RecCore

// A user's adjacent samples in a training batch (a slate's impressions) share a history:
// `BatchJob.run` searches them together, as serving does, and runs their MLP as matrix
// products over the group; each sample's embedding and its backward still run alone.

/// The MLP part of a training step for a user's samples searched together, as matrix
/// products over the group: one pass of the first layer's weights (200 x 576 floats with
/// three fields, more than L2 holds) for the whole group instead of three per sample (the
/// forward product, W1^T dz and the outer product dW1 += dz x^T).
final class GroupScratch {
    /// Columns of the per-sample matrices: the most samples a group holds, rounded up to
    /// 8 (the products' strides hold whole 8-float chunks).
    let capacity = (RankingModel.groupLimit + 7) / 8 * 8
    /// The input and the first hidden layer, rounded up to 8 (rows of the padded copies).
    let inputStride, hiddenStride: Int
    /// Each sample's x as a row (zero pads), and as a column of xT.
    let xRows, xT: UnsafeMutablePointer<Float>
    /// The layers' pre-activations (without their bias), activations and gradients, one
    /// column per sample.
    let z1, a1, dz1, z2, a2, dz2: UnsafeMutablePointer<Float>
    let logits, dLogits: UnsafeMutablePointer<Float>
    /// A1 and dZ1 transposed (a sample per row), W2 transposed, the products that become
    /// dW1 and dW2, and dX (a sample per row).
    let a1T, dz1T, w2T, dW1, dW2, dX: UnsafeMutablePointer<Float>
    /// Each sample's kept behaviours, their count and softmax weights.
    let kept: UnsafeMutablePointer<Int>
    let keptCount: UnsafeMutablePointer<Int>
    let keptWeights: UnsafeMutablePointer<Float>
    /// Eight of xRows's rows, as `transpose8` takes them.
    let eightRows = UnsafeMutablePointer<UnsafePointer<Float>>.allocate(capacity: 8)
    private var floats: [UnsafeMutablePointer<Float>] = []

    init(_ s: RankingModelSettings, input: Int) {
        inputStride = (input + 7) / 8 * 8
        hiddenStride = (s.hidden1 + 7) / 8 * 8
        let n = capacity
        func f(_ count: Int) -> UnsafeMutablePointer<Float> {
            let p = UnsafeMutablePointer<Float>.allocate(capacity: max(count, 1))
            p.initialize(repeating: 0, count: max(count, 1))
            return p
        }
        xRows = f(n * inputStride); xT = f(input * n)
        z1 = f(s.hidden1 * n); a1 = f(s.hidden1 * n); dz1 = f(s.hidden1 * n)
        z2 = f(s.hidden2 * n); a2 = f(s.hidden2 * n); dz2 = f(s.hidden2 * n)
        logits = f(n); dLogits = f(n)
        a1T = f(n * hiddenStride); dz1T = f(n * hiddenStride); w2T = f(s.hidden1 * s.hidden2)
        dW1 = f(s.hidden1 * inputStride); dW2 = f(s.hidden2 * hiddenStride); dX = f(n * inputStride)
        keptWeights = f(n * s.topK)
        floats = [xRows, xT, z1, a1, dz1, z2, a2, dz2, logits, dLogits, a1T, dz1T, w2T, dW1, dW2, dX, keptWeights]
        kept = .allocate(capacity: n * s.topK)
        keptCount = .allocate(capacity: n)
    }

    deinit {
        for p in floats { p.deallocate() }
        kept.deallocate()
        keptCount.deallocate()
        eightRows.deallocate()
    }
}

extension RankingModel {
    /// The most samples searched together (a slate's impressions are 10 by default).
    static let groupLimit = 32

    /// The search stage for targets that share one history (`history` is the window), as
    /// serving runs it: the history's attention rows gathered once, every target's query
    /// meeting every key in one product. `takeSearched` then gives each target's scores
    /// and top K to the worker's scratch, as `searchStage` would (the scores differ from
    /// its dot products by float rounding, which can swap two near-tied behaviours in or
    /// out of the top K).
    func searchTogether(_ history: UnsafeBufferPointer<HistoryEntry>, targets: UnsafeBufferPointer<ItemID>, _ worker: Worker) {
        let g = worker.group, c = worker.scratch
        for stage in ScoringStage.passes[..<3] { score(stage, history: history, candidates: targets, into: nil, scratch: g) }  // gather, queries, search
        c.n = history.count
        for j in g.first..<history.count { c.items[j] = Int32(truncatingIfNeeded: history[j].item) }
    }

    /// Target `i` of the last `searchTogether`: its scores over the window and its top K,
    /// into the worker's scratch.
    func takeSearched(_ i: Int, _ history: UnsafeBufferPointer<HistoryEntry>, _ worker: Worker) {
        let g = worker.group, c = worker.scratch, first = g.first, n = history.count
        (c.scores + first).update(from: g.scores + i * g.keyStride, count: n - first)
        c.k = keepTopK(c, first: first, n: n)
    }

    /// Whether a group of samples searched together can also run its MLP as products:
    /// not with BatchNorm or the auxiliary head (their per-sample state), and with an
    /// input a multiple of 8 (the products read W1's rows in whole 8-float chunks).
    var trainsMLPTogether: Bool {
        !layout.hasBatchNorm && settings.auxLossWeight == 0 && layout.input % 8 == 0
    }

    /// The forward passes of the last `searchTogether`'s `count` samples: each one's
    /// embedding alone, then the MLP over all of them as products. Leaves the logits in
    /// the worker's `mlpGroup.logits`.
    func forwardTogether(_ history: UnsafeBufferPointer<HistoryEntry>, targets: UnsafeBufferPointer<ItemID>, _ worker: Worker) {
        let g = worker.mlpGroup, c = worker.scratch, l = layout, K = settings.topK, n = g.capacity, r = targets.count
        for i in 0..<r {
            takeSearched(i, history, worker)
            embedSearched(history, targets[i], worker)
            copy(c.x, to: g.xRows + i * g.inputStride, l.input)
            g.keptCount[i] = c.k
            (g.kept + i * K).update(from: c.selected, count: c.k)
            copy(c.weights, to: g.keptWeights + i * K, c.k)
        }
        // X as columns, eight samples at a time (rows past r: finite, never read).
        for i0 in stride(from: 0, to: r, by: 8) {
            for i in 0..<8 { g.eightRows[i] = UnsafePointer(g.xRows + (i0 + i) * g.inputStride) }
            transpose8(g.eightRows, l.input, into: g.xT + i0, stride: n)
        }
        dense.withUnsafeBufferPointer { p in
            let w = p.baseAddress!
            gemm(w + l.w1, lda: l.input, g.xT, ldb: n, g.z1, ldc: n, m: l.hidden1, n: r, k: l.input)
            mlpAboveFirstProduct(w, bias1: w + l.b1, z1: g.z1, a1: g.a1, z2: g.z2, a2: g.a2, logits: g.logits, stride: n, count: r)
            for i in 0..<r { g.logits[i] += w[l.b3] }
        }
    }

    /// The backward passes of the group `forwardTogether` left, given each sample's
    /// d(loss)/d(logit) in `mlpGroup.dLogits`: the MLP's as products, adding its dense
    /// gradients to the worker's, then each sample's embedding backward, in sample order.
    func backwardTogether(targets: UnsafeBufferPointer<ItemID>, _ worker: Worker) {
        let g = worker.mlpGroup, c = worker.scratch, l = layout, K = settings.topK, n = g.capacity, r = targets.count
        let h1 = l.hidden1, h2 = l.hidden2, hs = g.hiddenStride, xs = g.inputStride
        dense.withUnsafeBufferPointer { wp in
            worker.denseGradient.withUnsafeMutableBufferPointer { gp in
                let w = wp.baseAddress!, gw = gp.baseAddress!, dl = g.dLogits
                // Output layer, sample by sample as the one-sample pass adds them.
                for o in 0..<h2 {
                    var sum = gw[l.w3 + o]
                    for i in 0..<r { sum += dl[i] * g.a2[o * n + i] }
                    gw[l.w3 + o] = sum
                }
                for i in 0..<r { gw[l.b3] += dl[i] }
                // A PReLU layer's backward over the group's columns, in place on dz (which
                // holds dA): the pre-activation is z + bias; returns d(loss)/d(alpha).
                func preluBackwardColumns(_ z: UnsafePointer<Float>, bias: Int, _ dz: UnsafeMutablePointer<Float>, rows: Int, alpha: Float) -> Float {
                    var dAlpha: Float = 0
                    for o in 0..<rows {
                        for i in 0..<r {
                            let da = dz[o * n + i], v = z[o * n + i] + w[bias + o]
                            if v > 0 {
                                dz[o * n + i] = da
                            } else {
                                dz[o * n + i] = alpha * da
                                dAlpha += da * v
                            }
                        }
                    }
                    return dAlpha
                }
                // PReLU 2, from dA2 = w3 dlogit (zero past the group's columns).
                for o in 0..<h2 {
                    for i in 0..<r { g.dz2[o * n + i] = dl[i] * w[l.w3 + o] }
                    for i in r..<n { g.dz2[o * n + i] = 0 }
                }
                gw[l.alpha2] += preluBackwardColumns(g.z2, bias: l.b2, g.dz2, rows: h2, alpha: w[l.alpha2])
                // Layer 2: dW2 += dZ2 A1^T, db2 += dZ2 1, dA1 = W2^T dZ2.
                for i in 0..<r { for o in 0..<h1 { g.a1T[i * hs + o] = g.a1[o * n + i] } }
                gemm(g.dz2, lda: n, g.a1T, ldb: hs, g.dW2, ldc: hs, m: h2, n: h1, k: r)
                for o in 0..<h2 {
                    for p in 0..<h1 { gw[l.w2 + o * h1 + p] += g.dW2[o * hs + p] }
                    for i in 0..<r { gw[l.b2 + o] += g.dz2[o * n + i] }
                }
                for o in 0..<h2 { for p in 0..<h1 { g.w2T[p * h2 + o] = w[l.w2 + o * h1 + p] } }
                gemm(g.w2T, lda: h2, g.dz2, ldb: n, g.dz1, ldc: n, m: h1, n: r, k: h2)
                // PReLU 1, in place on dA1.
                gw[l.alpha1] += preluBackwardColumns(g.z1, bias: l.b1, g.dz1, rows: h1, alpha: w[l.alpha1])
                // Layer 1: dW1 += dZ1 X, db1 += dZ1 1, dX = dZ1^T W1.
                gemm(g.dz1, lda: n, g.xRows, ldb: xs, g.dW1, ldc: xs, m: h1, n: l.input, k: r)
                for o in 0..<h1 {
                    for d in 0..<l.input { gw[l.w1 + o * l.input + d] += g.dW1[o * xs + d] }
                    for i in 0..<r { gw[l.b1 + o] += g.dz1[o * n + i] }
                }
                for i in 0..<r { for o in 0..<h1 { g.dz1T[i * hs + o] = g.dz1[o * n + i] } }
                gemm(g.dz1T, lda: hs, w + l.w1, ldb: l.input, g.dX, ldc: xs, m: r, n: l.input, k: h1)
            }
        }
        // Each sample's embedding backward, from its dx, with its v_t, h and kept list
        // put back in the scratch (x = [v_t, h, v_t (.) h]).
        let width = l.input / 3
        for i in 0..<r {
            let x = g.xRows + i * xs
            copy(g.dX + i * xs, to: c.dx, l.input)
            copy(x, to: c.vt, width)
            copy(x + width, to: c.h, width)
            c.k = g.keptCount[i]
            c.selected.update(from: g.kept + i * K, count: c.k)
            copy(g.keptWeights + i * K, to: c.weights, c.k)
            embedBackward(targets[i], worker)
        }
    }
}
