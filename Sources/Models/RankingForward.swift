import CKernels
import Dispatch
import Foundation
import RecCore

extension RankingModel {
    // MARK: Forward

    /// The click probability of `target` for a user with this history (oldest first; the
    /// last `maxHistory` behaviours are used).
    public func score(history: UnsafeBufferPointer<HistoryEntry>, target: ItemID) -> Float {
        sigmoid(forward(window(history), target))
    }

    func window(_ history: UnsafeBufferPointer<HistoryEntry>) -> UnsafeBufferPointer<HistoryEntry> {
        history.count <= settings.maxHistory ? history : UnsafeBufferPointer(rebasing: history[(history.count - settings.maxHistory)...])
    }

    /// The row of field `f` for a behaviour: the item, its category, or its time id (the
    /// relative position: 1 for the most recent, 0 for the target).
    @inline(__always)
    func row(_ f: Int, item: Int, time: Int) -> Int {
        f == 0 ? item : f == 1 ? Int(categoryOf[item]) : time
    }

    /// The search stage (DARE eq. 2): scores the behaviours of the window attention may
    /// look at against the target, keeps the top K in `c.selected` (window positions,
    /// ascending) and returns K. Scores, items and selections are left in `c`.
    func searchStage(_ history: UnsafeBufferPointer<HistoryEntry>, _ t: Int, _ c: Scratch) -> Int {
        let dA = settings.attentionDim, F = fieldCount, n = history.count
        c.n = n
        for f in 0..<F {
            c.keyBase[f] = tables[attention[f]].values
            c.query[f] = c.keyBase[f] + row(f, item: t, time: 0) * dA
            c.scale[f] = searchScale(f)
            if settings.design.projects {
                // <P_Q q, P_K k> = <P_K^T P_Q q, k>: project the query once, keep keys raw.
                dense.withUnsafeBufferPointer { w in
                    let l = layout
                    matvec(w.baseAddress! + l.projection(0, f, fields: F), c.query[f], c.projY + f * dA, dA)
                    matvecT(w.baseAddress! + l.projection(1, f, fields: F), c.projY + f * dA, c.projU + f * dA, dA)
                }
                c.query[f] = c.projU + f * dA
            }
        }
        let first = firstSearched(n)
        // The keys are random rows of large tables: ask for those `ahead` behaviours on
        // while scoring these, so that their misses overlap.
        let ahead = 32
        @inline(__always) func prefetch(_ j: Int) {
            let item = Int(history[j].item)
            for f in 0..<F { recstream_prefetch(c.keyBase[f] + row(f, item: item, time: n - j) * dA, dA * 4) }
        }
        for j in first..<min(n, first + ahead) { prefetch(j) }
        for j in first..<n {
            if j + ahead < n { prefetch(j + ahead) }
            let item = Int(history[j].item)
            c.items[j] = Int32(item)
            var score: Float = 0
            for f in 0..<F { score += dot(c.query[f], c.keyBase[f] + row(f, item: item, time: n - j) * dA, dA) * c.scale[f] }
            c.scores[j] = score
        }
        return keepTopK(c, first: first, n: n)
    }

    /// Top K of the scores at window positions first..<n in the scratch, into its
    /// `selected` as window positions (ascending); returns how many.
    func keepTopK(_ c: Scratch, first: Int, n: Int) -> Int {
        let k = selectTopK(c.scores + first, n - first, settings.topK, into: c.selected, work: c.order)
        for i in 0..<k { c.selected[i] += first }
        return k
    }

    /// The first behaviour of an n-long window that attention may look at: all of them for
    /// search-based designs, the most recent K for DIN.
    @inline(__always)
    func firstSearched(_ n: Int) -> Int {
        settings.design == .din ? max(0, n - settings.topK) : 0
    }

    /// The search scale of field `f`: the semantic fields (item, category) share one
    /// scaled dot product, time has its own (reference: attention_pytorch.py).
    @inline(__always)
    func searchScale(_ f: Int) -> Float {
        let dA = Float(settings.attentionDim)
        return f == 2 ? 1 / dA.squareRoot() : 1 / (dA * Float(min(fieldCount, 2))).squareRoot()
    }

    func forward(_ history: UnsafeBufferPointer<HistoryEntry>, _ target: ItemID) -> Float {
        forward(history, target, workers[0])
    }

    /// Runs the model on one sample, leaving every intermediate in the worker's scratch;
    /// returns the logit. Reads the parameters only. With BatchNorm, the input is
    /// normalised by the running statistics (as in serving).
    func forward(_ history: UnsafeBufferPointer<HistoryEntry>, _ target: ItemID, _ worker: Worker) -> Float {
        embed(history, target, worker)
        return forwardEmbedded(worker)
    }

    /// `forward` after `embed` (or `embedSearched`): the MLP on the scratch's input.
    func forwardEmbedded(_ worker: Worker) -> Float {
        let c = worker.scratch
        if layout.hasBatchNorm {
            normalizeWithRunningStatistics(c.x, into: c.y)
            return mlpForward(c.y, c)
        }
        return mlpForward(c.x, c)
    }

    /// The embedding part of the forward pass: the search, the softmax over the K kept,
    /// h, and the MLP's input x = [v_t, h, v_t (.) h] in the scratch.
    func embed(_ history: UnsafeBufferPointer<HistoryEntry>, _ target: ItemID, _ worker: Worker) {
        worker.scratch.k = searchStage(history, Int(target), worker.scratch)
        embedSearched(history, target, worker)
    }

    /// `embed` after its search stage, whose results (the scores and items of the window,
    /// the K kept) are in the worker's scratch.
    func embedSearched(_ history: UnsafeBufferPointer<HistoryEntry>, _ target: ItemID, _ worker: Worker) {
        let dR = settings.representationDim, F = fieldCount
        let n = history.count
        let t = Int(target)
        let c = worker.scratch

        // Softmax over the K kept scores only.
        var top = -Float.infinity
        for i in 0..<c.k { top = max(top, c.scores[c.selected[i]]) }
        var total: Float = 0
        for i in 0..<c.k {
            c.weights[i] = exp(c.scores[c.selected[i]] - top)
            total += c.weights[i]
        }
        for i in 0..<c.k { c.weights[i] /= total }

        // v_t and h = sum_i w_i e_i in the representation set; x = [v_t, h, v_t (.) h].
        let width = F * dR
        c.h.initialize(repeating: 0, count: width)
        for f in 0..<F {
            let table = tables[representation[f]]
            for i in 0..<c.k { let j = c.selected[i]; recstream_prefetch(table.row(row(f, item: Int(c.items[j]), time: n - j)), dR * 4) }
        }
        for f in 0..<F {
            let table = tables[representation[f]]
            copy(table.row(row(f, item: t, time: 0)), to: c.vt + f * dR, dR)
            for i in 0..<c.k {
                let j = c.selected[i]
                axpy(c.weights[i], table.row(row(f, item: Int(c.items[j]), time: n - j)), c.h + f * dR, dR)
            }
            if settings.design.projects {
                // v_t = P_VT e_t; h = sum_i w_i P_VB e_i = P_VB (sum_i w_i e_i).
                dense.withUnsafeBufferPointer { w in
                    let l = layout, vt = c.vt + f * dR, h = c.h + f * dR
                    copy(vt, to: c.dr, dR)
                    matvec(w.baseAddress! + l.projection(2, f, fields: F), c.dr, vt, dR)
                    copy(h, to: c.hRaw + f * dR, dR)
                    matvec(w.baseAddress! + l.projection(3, f, fields: F), c.hRaw + f * dR, h, dR)
                }
            }
        }
        let x = c.x
        copy(c.vt, to: x, width)
        copy(c.h, to: x + width, width)
        for d in 0..<width { x[2 * width + d] = c.vt[d] * c.h[d] }
    }

    /// The MLP on `x` (the scratch's x, or its normalised y): returns the logit and leaves
    /// the activations in the scratch.
    func mlpForward(_ x: UnsafePointer<Float>, _ c: Scratch) -> Float {
        dense.withUnsafeBufferPointer { p in
            let w = p.baseAddress!, l = layout
            linear(w + l.w1, w + l.b1, x, c.z1, outputs: l.hidden1, inputs: l.input)
            prelu(c.z1, c.a1, l.hidden1, w[l.alpha1])
            linear(w + l.w2, w + l.b2, c.a1, c.z2, outputs: l.hidden2, inputs: l.hidden1)
            prelu(c.z2, c.a2, l.hidden2, w[l.alpha2])
            return dot(w + l.w3, c.a2, l.hidden2) + w[l.b3]
        }
    }

    /// The search stage alone (scores over the window and the top-K choice): for measuring
    /// its memory traffic. Returns how many behaviours were kept.
    public func search(history: UnsafeBufferPointer<HistoryEntry>, target: ItemID) -> Int {
        searchStage(window(history), Int(target), scratch)
    }

    /// The behaviours the search stage keeps for `target`, best first: their positions in
    /// `history` and their search scores (for measuring retrieval against the truth).
    public func retrieve(history: UnsafeBufferPointer<HistoryEntry>, target: ItemID) -> [(position: Int, score: Float)] {
        let k = search(history: history, target: target)
        let offset = history.count - window(history).count
        return (0..<k).map { (offset + scratch.selected[$0], scratch.scores[scratch.selected[$0]]) }
            .sorted { ($0.score, $0.position) > ($1.score, $1.position) }
    }

    /// Bytes of the model: tables with their optimizer state, and the dense layers.
    public var bytes: Int {
        var seen = Set<ObjectIdentifier>()
        var total = layout.count * 4 * 4
        for t in tables where seen.insert(ObjectIdentifier(t)).inserted { total += t.rows * t.bytesPerRow }
        return total
    }
}
