import Dispatch
import Foundation
import RecCore

/// How a long-sequence ranking model embeds behaviours: DARE's two independent sets of
/// tables (attention for search and weighting, representation for what is summed), or
/// TWIN's one set shared by both roles. Everything else is the same code, so an
/// experiment between them differs only in the embedding design.
public enum EmbeddingDesign: String, Sendable, CaseIterable {
    case dare, twin
    /// DIN-style: TWIN's shared tables, attention over the most recent `topK` behaviours
    /// only, no search. (The reference DIN's learnable attention unit is not implemented:
    /// here it is the same scaled dot product, so only the choice of behaviours differs.)
    case din
    /// TWIN with projections (the DARE paper's "TWIN (w/ proj.)"): TWIN's shared tables,
    /// with bias-free square projections per field for the query, the keys, the target's
    /// representation and the behaviours' representation.
    case twinProjection = "twin-proj"

    var sharesTables: Bool { self != .dare }
    var projects: Bool { self == .twinProjection }
}

public struct RankingModelSettings: Sendable, Equatable {
    public var design: EmbeddingDesign = .dare
    /// Which features describe a behaviour: the reference's item, category and time
    /// (relative position) fields, or the item id alone (the PyTorch benchmark's shape).
    public var fields: Fields = .itemCategoryTime
    /// Per field: the attention vector is fields x this.
    public var attentionDim = 16
    /// Per field: the representation vector is fields x this.
    public var representationDim = 16
    /// Behaviours kept by the search stage.
    public var topK = 20
    /// The most recent behaviours the model looks at (the time table has this + 1 rows).
    public var maxHistory = 200
    public var hidden1 = 200
    public var hidden2 = 80
    public var adam = AdamSettings()
    /// L2 penalty on dense weights (not biases, not embeddings), as the reference.
    public var l2: Float = 1e-6
    /// Standard deviation of the initial weights (the reference: 0.01).
    public var initScale: Float = 0.01
    public var seed: UInt64 = 1
    /// Threads a training step splits its mini-batch over (data parallel; the result
    /// depends on this number, never on timing).
    public var threads = 1
    /// The reference's auxiliary head: its loss, times this weight, joins the main one
    /// (0: no head; the reference trains with 1). See `RankingModel`.
    public var auxLossWeight: Float = 0
    /// How the embedding tables step: row-wise lazy Adam (only rows with gradient move:
    /// the streaming default), or the reference's dense Adam (every row's moments decay
    /// and every row moves, each step).
    public var tableOptimizer: TableOptimizer = .lazyAdam
    /// The reference's BatchNorm on the MLP's input: a training step normalises by its
    /// batch's statistics, scoring by running ones (see BatchNorm.swift). Off for
    /// streaming; on, for measuring what dropping it costs.
    public var batchNorm = false
    public init() {}
}

public enum TableOptimizer: String, Sendable, CaseIterable {
    case lazyAdam = "lazy-adam"
    case adam
}

public enum Fields: Int, Sendable, CaseIterable {
    case item = 1
    case itemCategoryTime = 3
}

/// One training example: the user (whose history the model reads), the target item,
/// whether it was clicked, and its weight in the loss (1 unless a weighted target, such as
/// view seconds or a purchase, says otherwise).
public struct LabeledSample: Sendable, Equatable {
    public var user: UserID
    public var target: ItemID
    public var label: Float
    public var weight: Float
    public init(user: UserID, target: ItemID, label: Float, weight: Float = 1) {
        self.user = user
        self.target = target
        self.label = label
        self.weight = weight
    }
}

/// DARE (Feng et al., ICLR 2025, arXiv 2410.02604) and TWIN, as thuml/DARE runs them,
/// with hand-written forward and backward passes (shared/baselines/dare-reference.md):
///
/// - search: score_j = <q_sem, k_j,sem>/sqrt(2 d_att) + <q_time, k_j,time>/sqrt(d_att) over
///   the last L behaviours, keep the top K (no gradient through the choice);
/// - weights w = softmax over the K scores only; h = sum_i w_i e_i (representation);
/// - MLP on [v_t, h, v_t (.) h] -> hidden1 -> PReLU -> hidden2 -> PReLU -> 1 logit; BCE.
///
/// Changes for streaming, and why: no BatchNorm by default (a tick's few hundred samples
/// give noisy, drifting batch statistics, and serving one user at a time has none;
/// `batchNorm` puts it back, and measured offline and online it helped: README); one logit with
/// binary cross-entropy instead of a 2-way softmax (the same model family without the
/// redundant output); row-wise lazy Adam on the tables (only rows that got gradient move:
/// dense Adam would touch every row of a million-row table each step; `tableOptimizer`
/// `.adam` runs the reference's dense Adam, for offline comparison).
///
/// The reference's auxiliary head (`auxLossWeight` > 0; training only): a softmax over
/// *all* searched scores, not the top K, weights every behaviour's representation into
/// h_all; [v_t, h_all, v_t (.) h_all] -> hidden1 -> PReLU -> 1 logit, BCE on the same
/// label. So every behaviour's attention row gets gradient, not only the K kept ones, at
/// the cost of touching L rows per sample. Serving never runs it.
public final class RankingModel {
    public let settings: RankingModelSettings
    let tables: [EmbeddingTable]
    /// Table index per field (item, category, time) of the attention and representation
    /// sets (the same tables for TWIN).
    let attention: [Int]
    let representation: [Int]
    let fieldCount: Int
    /// Each item's category, as the model knows it (the catalog feed).
    public internal(set) var categoryOf: [UInt32] = []
    let layout: DenseLayout
    var dense: [Float]
    var denseM: [Float]
    var denseV: [Float]
    /// Per-thread working state: worker 0 serves single-threaded calls.
    let workers: [Worker]
    public internal(set) var step = 0
    var scratch: Scratch { workers[0].scratch }
    var denseGradient: [Float] { workers[0].denseGradient }
    var sparse: [SparseGradient] { workers[0].sparse }
    lazy var scoring = ScoringScratch(settings, input: layout.input)
    /// BatchNorm training steps' per-batch buffers (BatchNorm.swift).
    var batchNormScratch = FloatBuffer(capacity: 0)

    public init(_ settings: RankingModelSettings, items: Int, categories: Int) {
        precondition(settings.attentionDim > 0 && settings.representationDim > 0 && settings.topK > 0 && settings.maxHistory > 0)
        if settings.design.sharesTables { precondition(settings.attentionDim == settings.representationDim, "TWIN and DIN share one table set") }
        self.settings = settings
        let s = settings
        func table(_ id: UInt64, _ rows: Int, _ dim: Int) -> EmbeddingTable {
            EmbeddingTable(rows: rows, dim: dim, seed: s.seed, tableID: id, initScale: s.initScale)
        }
        let rows = [items, categories, s.maxHistory + 1]
        fieldCount = s.fields.rawValue
        var tables = (0..<fieldCount).map { table(UInt64($0), rows[$0], s.attentionDim) }
        attention = Array(0..<fieldCount)
        switch s.design {
        case .dare:
            tables += (0..<fieldCount).map { table(UInt64(3 + $0), rows[$0], s.representationDim) }
            representation = Array(fieldCount..<2 * fieldCount)
        case .twin, .din, .twinProjection:
            representation = attention
        }
        self.tables = tables
        layout = DenseLayout(input: 3 * fieldCount * s.representationDim, hidden1: s.hidden1, hidden2: s.hidden2,
                             projections: s.design.projects ? 4 * fieldCount : 0, projectionDim: s.representationDim,
                             aux: s.auxLossWeight > 0, batchNorm: s.batchNorm)
        dense = layout.initialValues(seed: s.seed, scale: s.initScale)
        denseM = [Float](repeating: 0, count: layout.count)
        denseV = denseM
        let layoutCount = layout.count
        workers = (0..<max(1, s.threads)).map { _ in Worker(s, tables: tables, denseCount: layoutCount) }
        categoryOf = [UInt32](repeating: 0, count: items)
    }

    /// Takes in the catalog feed: item `i` has category `categories[i]`. Tables grow to fit.
    public func updateCatalog(categories: [UInt32], categoryCount: Int) {
        categoryOf = categories
        tables[attention[0]].grow(to: categories.count)
        tables[representation[0]].grow(to: categories.count)
        if fieldCount == 3 {
            tables[attention[1]].grow(to: categoryCount)
            tables[representation[1]].grow(to: categoryCount)
        }
        for w in workers { for i in tables.indices { w.sparse[i].grow(to: tables[i].rows) } }
    }

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
        for j in first..<n {
            let item = Int(history[j].item)
            c.items[j] = Int32(item)
            var score: Float = 0
            for f in 0..<F { score += dot(c.query[f], c.keyBase[f] + row(f, item: item, time: n - j) * dA, dA) * c.scale[f] }
            c.scores[j] = score
        }
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
        let dR = settings.representationDim, F = fieldCount
        let n = history.count
        let t = Int(target)
        let c = worker.scratch
        c.k = searchStage(history, t, c)

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
            accumulate(worker, representation[f], row(f, item: t, time: 0), dvt, 1, dR)
            for (i, j) in positions.enumerated() {
                let r = row(f, item: Int(c.items[j]), time: n - j)
                accumulate(worker, representation[f], r, dh, weights[i], dR)
                dWeights[i] += dot(dh, table.row(r), dR)
            }
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
            for (i, j) in positions.enumerated() {
                let r = row(f, item: Int(c.items[j]), time: n - j)
                let ds = weights[i] * (dWeights[i] - weighted) * scale
                axpy(ds, table.row(r), c.dq + f * dA, dA)
                accumulate(worker, attention[f], r, q, ds, dA)
            }
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
            accumulate(worker, attention[f], row(f, item: t, time: 0), c.dq + f * dA, 1, dA)
        }
    }

    /// gradient[table][row] += scale * vector.
    @inline(__always)
    func accumulate(_ worker: Worker, _ table: Int, _ row: Int, _ vector: UnsafePointer<Float>, _ scale: Float, _ dim: Int) {
        let offset = worker.sparse[table].slot(row)
        worker.sparse[table].gradients.withUnsafeMutableBufferPointer { g in axpy(scale, vector, g.baseAddress! + offset, dim) }
    }

    // MARK: Training

    /// Mean binary cross-entropy of a batch; adds its gradients (mean over the batch) to
    /// worker 0's. The probabilities the model gave before learning from the batch go to
    /// `predictions`. With several workers, each takes a contiguous share of the batch and
    /// their gradients are then added into worker 0's in worker order.
    func accumulateGradients<H: HistorySource>(_ batch: ArraySlice<LabeledSample>, histories: H, predictions: UnsafeMutablePointer<Float>? = nil) -> Float {
        if layout.hasBatchNorm && batch.count > 1 { return accumulateGradientsBatchNorm(batch, histories: histories, predictions: predictions) }
        let scale = 1 / Float(batch.count)
        let parts = min(workers.count, max(1, batch.count / 16))
        let per = (batch.count + parts - 1) / parts
        let losses = UnsafeMutableBufferPointer<Float>.allocate(capacity: parts)
        defer { losses.deallocate() }
        let job = BatchJob(model: self, batch: batch, histories: histories, predictions: predictions, losses: losses)
        if parts == 1 {
            job.run(part: 0, per: per, scale: scale)
        } else {
            DispatchQueue.concurrentPerform(iterations: parts) { part in job.run(part: part, per: per, scale: scale) }
            for part in 1..<parts { workers[0].add(workers[part]) }
        }
        return losses.reduce(0, +) * scale
    }

    /// One optimisation step on a mini-batch: returns its mean loss before the step, and
    /// writes the probabilities given before the step to `predictions` (test-then-train).
    @discardableResult
    public func train<H: HistorySource>(_ batch: ArraySlice<LabeledSample>, histories: H, predictions: UnsafeMutablePointer<Float>? = nil) -> Float {
        guard !batch.isEmpty else { return 0 }
        let loss = accumulateGradients(batch, histories: histories, predictions: predictions)
        step += 1
        applyDenseAdam()
        let w = workers[0]
        for i in tables.indices {
            switch settings.tableOptimizer {
            case .lazyAdam: tables[i].applyAdam(w.sparse[i], step: step, settings.adam)
            case .adam: tables[i].applyDenseAdam(w.sparse[i], step: step, settings.adam)
            }
            w.sparse[i].clear()
        }
        return loss
    }

    func applyDenseAdam() {
        let a = settings.adam, l = layout
        let bc1 = 1 - pow(a.beta1, Float(step)), bc2 = 1 - pow(a.beta2, Float(step))
        let w = workers[0]
        for i in 0..<l.count {
            var g = w.denseGradient[i]
            if l.isWeight(i) { g += 2 * settings.l2 * dense[i] }
            denseM[i] = a.beta1 * denseM[i] + (1 - a.beta1) * g
            denseV[i] = a.beta2 * denseV[i] + (1 - a.beta2) * g * g
            dense[i] -= a.learningRate / bc1 * denseM[i] / ((denseV[i] / bc2).squareRoot() + a.epsilon)
            w.denseGradient[i] = 0
        }
    }
}

/// One thread's working state: scratch for a sample, and the gradients it accumulates.
final class Worker {
    let scratch: Scratch
    var denseGradient: [Float]
    var sparse: [SparseGradient]

    init(_ s: RankingModelSettings, tables: [EmbeddingTable], denseCount: Int) {
        scratch = Scratch(s)
        denseGradient = [Float](repeating: 0, count: denseCount)
        sparse = tables.map { SparseGradient(rows: $0.rows, dim: $0.dim) }
    }

    /// Adds `other`'s gradients into these (rows in `other`'s order) and clears `other`'s.
    func add(_ other: Worker) {
        for i in denseGradient.indices {
            denseGradient[i] += other.denseGradient[i]
            other.denseGradient[i] = 0
        }
        for t in sparse.indices {
            let dim = sparse[t].dim
            for (slot, row) in other.sparse[t].touched.enumerated() {
                let offset = sparse[t].slot(Int(row))
                other.sparse[t].gradients.withUnsafeBufferPointer { g in
                    sparse[t].gradients.withUnsafeMutableBufferPointer { d in axpy(1, g.baseAddress! + slot * dim, d.baseAddress! + offset, dim) }
                }
            }
            other.sparse[t].clear()
        }
    }
}

/// One mini-batch's gradient work, shared by the workers. `@unchecked Sendable` because
/// worker `part` writes only its own scratch and gradients, `predictions` and `losses` at
/// its own indices, and everyone only reads the parameters, which no one writes until all
/// workers are done.
struct BatchJob<H: HistorySource>: @unchecked Sendable {
    let model: RankingModel
    let batch: ArraySlice<LabeledSample>
    let histories: H
    let predictions: UnsafeMutablePointer<Float>?
    let losses: UnsafeMutableBufferPointer<Float>

    func run(part: Int, per: Int, scale: Float) {
        let worker = model.workers[part]
        var loss: Float = 0
        let start = batch.startIndex + part * per, end = min(batch.endIndex, start + per)
        for index in start..<max(start, end) {
            let sample = batch[index]
            let logit = model.forward(model.window(histories.history(of: sample.user)), sample.target, worker)
            predictions?[index - batch.startIndex] = sigmoid(logit)
            // Weighted BCE with logits: w (softplus(z) - y z), computed stably.
            loss += sample.weight * (max(logit, 0) - logit * sample.label + log1p(exp(-abs(logit))))
            model.backward(sample.target, dLogit: sample.weight * (sigmoid(logit) - sample.label) * scale, worker)
            let auxWeight = model.settings.auxLossWeight
            if auxWeight > 0 {
                let aux = model.auxForward(sample.target, worker)
                loss += auxWeight * sample.weight * (max(aux, 0) - aux * sample.label + log1p(exp(-abs(aux))))
                model.auxBackward(sample.target, dLogit: auxWeight * sample.weight * (sigmoid(aux) - sample.label) * scale, worker)
            }
        }
        losses[part] = loss
    }
}

/// Where each dense parameter lives in the flat parameter array.
struct DenseLayout {
    let input, hidden1, hidden2: Int
    let w1, b1, alpha1, w2, b2, alpha2, w3, b3, count: Int
    /// TWIN with projections: `projections` square matrices of `projectionDim`, from `proj`.
    let proj, projections, projectionDim: Int
    /// The auxiliary head, when there is one (after everything else, so a model without it
    /// has the same layout and initial values as before it existed): input -> hidden1 ->
    /// PReLU -> 1.
    let hasAux: Bool
    let auxW1, auxB1, auxAlpha, auxW2, auxB2: Int
    /// BatchNorm on the input, when there is one (last of all): gamma and beta (learned),
    /// then the running mean and variance (state that steps never move: their gradient
    /// is always 0, so Adam leaves them, and they are not penalised).
    let hasBatchNorm: Bool
    let bnGamma, bnBeta, bnMean, bnVar: Int

    init(input: Int, hidden1: Int, hidden2: Int, projections: Int = 0, projectionDim: Int = 0, aux: Bool = false, batchNorm: Bool = false) {
        self.input = input
        self.hidden1 = hidden1
        self.hidden2 = hidden2
        self.projections = projections
        self.projectionDim = projectionDim
        w1 = 0
        b1 = w1 + hidden1 * input
        alpha1 = b1 + hidden1
        w2 = alpha1 + 1
        b2 = w2 + hidden2 * hidden1
        alpha2 = b2 + hidden2
        w3 = alpha2 + 1
        b3 = w3 + hidden2
        proj = b3 + 1
        hasAux = aux
        auxW1 = proj + projections * projectionDim * projectionDim
        auxB1 = auxW1 + hidden1 * input
        auxAlpha = auxB1 + hidden1
        auxW2 = auxAlpha + 1
        auxB2 = auxW2 + hidden1
        hasBatchNorm = batchNorm
        bnGamma = aux ? auxB2 + 1 : auxW1
        bnBeta = bnGamma + input
        bnMean = bnBeta + input
        bnVar = bnMean + input
        count = batchNorm ? bnVar + input : bnGamma
    }

    /// The projection of `role` (0 query, 1 keys, 2 target representation, 3 behaviour
    /// representation) for field `f`, row-major.
    func projection(_ role: Int, _ f: Int, fields: Int) -> Int {
        proj + (role * fields + f) * projectionDim * projectionDim
    }

    /// Weights and PReLU slopes (penalised, drawn N(0, scale^2)); biases are the rest.
    func isWeight(_ i: Int) -> Bool {
        if hasBatchNorm && i >= bnBeta { return false }  // beta, running mean and variance
        return !((b1..<b1 + hidden1).contains(i) || (b2..<b2 + hidden2).contains(i) || i == b3
                 || (hasAux && ((auxB1..<auxB1 + hidden1).contains(i) || i == auxB2)))
    }

    /// The reference's init: N(0, scale^2) for every non-bias tensor (PReLU slopes
    /// included), U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for biases (PyTorch's default).
    func initialValues(seed: UInt64, scale: Float) -> [Float] {
        var rng = RandomStream(seed: seed, 99, 1)
        return (0..<count).map { i in
            // BatchNorm starts as the identity (PyTorch's init): gamma 1, beta 0, mean 0, var 1.
            if hasBatchNorm && i >= bnGamma { return i < bnBeta || i >= bnVar ? 1 : 0 }
            if isWeight(i) { return scale * Float(rng.nextGaussian()) }
            let fanIn = i < alpha1 ? input : i < alpha2 ? hidden1 : i < proj ? hidden2 : i < auxAlpha ? input : hidden1
            return Float(rng.nextDouble() * 2 - 1) / Float(fanIn).squareRoot()
        }
    }
}

/// Per-sample working memory, allocated once.
final class Scratch {
    var n = 0, k = 0
    let scores: UnsafeMutablePointer<Float>
    let items: UnsafeMutablePointer<Int32>
    let selected: UnsafeMutablePointer<Int>
    let order: UnsafeMutablePointer<UInt64>
    let weights, dWeights: UnsafeMutablePointer<Float>
    let vt, h, dvt, dh, dq, x, dx, z1, a1, dz1, da1, z2, a2, dz2, da2: UnsafeMutablePointer<Float>
    /// TWIN with projections: y = P_Q q and u = P_K^T y per field, the unprojected
    /// weighted sum of representations, and backward temporaries.
    let projY, projU, hRaw, dr, dy: UnsafeMutablePointer<Float>
    /// The auxiliary head: the softmax over every searched score and its gradients, h_all
    /// (raw and as the head sees it), its input, activations and their gradients.
    let allWeights, dAll, hAll, hAllRaw, xAux, dxAux, zAux, aAux, dzAux, daAux: UnsafeMutablePointer<Float>
    /// BatchNorm: the normalised input the MLP reads.
    let y: UnsafeMutablePointer<Float>
    /// Per field: the attention table's base, the target's query row, the search scale.
    let keyBase = UnsafeMutablePointer<UnsafeMutablePointer<Float>>.allocate(capacity: 3)
    let query = UnsafeMutablePointer<UnsafeMutablePointer<Float>>.allocate(capacity: 3)
    let scale = UnsafeMutablePointer<Float>.allocate(capacity: 3)
    private var all: [UnsafeMutableRawPointer] = []

    init(_ s: RankingModelSettings) {
        func f(_ count: Int) -> UnsafeMutablePointer<Float> {
            let p = UnsafeMutablePointer<Float>.allocate(capacity: max(count, 1))
            p.initialize(repeating: 0, count: max(count, 1))
            return p
        }
        let dR = s.representationDim * s.fields.rawValue, dA = s.attentionDim * s.fields.rawValue
        scores = f(s.maxHistory)
        items = .allocate(capacity: s.maxHistory)
        selected = .allocate(capacity: s.topK)
        order = .allocate(capacity: 2 * s.maxHistory + 64)
        weights = f(s.topK); dWeights = f(s.topK)
        vt = f(dR); h = f(dR); dvt = f(dR); dh = f(dR); dq = f(dA)
        x = f(3 * dR); dx = f(3 * dR)
        z1 = f(s.hidden1); a1 = f(s.hidden1); dz1 = f(s.hidden1); da1 = f(s.hidden1)
        z2 = f(s.hidden2); a2 = f(s.hidden2); dz2 = f(s.hidden2); da2 = f(s.hidden2)
        projY = f(dA); projU = f(dA); hRaw = f(dR); dr = f(dR); dy = f(dA)
        let auxOn = s.auxLossWeight > 0
        allWeights = f(auxOn ? s.maxHistory : 0); dAll = f(auxOn ? s.maxHistory : 0)
        hAll = f(dR); hAllRaw = f(dR); xAux = f(3 * dR); dxAux = f(3 * dR)
        zAux = f(s.hidden1); aAux = f(s.hidden1); dzAux = f(s.hidden1); daAux = f(s.hidden1)
        y = f(3 * dR)
        let floats: [UnsafeMutablePointer<Float>] = [projY, projU, hRaw, dr, dy, scores, weights, dWeights, vt, h, dvt, dh, dq, x, dx,
                                                     z1, a1, dz1, da1, z2, a2, dz2, da2,
                                                     allWeights, dAll, hAll, hAllRaw, xAux, dxAux, zAux, aAux, dzAux, daAux, y]
        all = floats.map { UnsafeMutableRawPointer($0) }
        all += [UnsafeMutableRawPointer(items), UnsafeMutableRawPointer(selected), UnsafeMutableRawPointer(order), UnsafeMutableRawPointer(keyBase),
               UnsafeMutableRawPointer(query), UnsafeMutableRawPointer(scale)]
    }

    deinit { for p in all { p.deallocate() } }
}

// MARK: Kernels

/// The indices of the `k` largest of `scores[0..<n]` (ties: the later index), ascending,
/// written to `out`; returns how many (min(k, n)). `work` holds at least 2n + 64 keys.
///
/// A bisection on the score value, each step a vectorised count of the scores at or
/// above it, finds a threshold with between k and about k + k/4 scores above it (a few
/// steps, no scatter). One branch-free pass collects, in index order, the keys of those;
/// a quickselect on a copy of the few finds the k-th largest key, and the collected keys
/// at or above it are the answer, already in index order: nothing is sorted. Each key is
/// (score bits in unsigned order) << 32 | index, so one integer comparison orders by score
/// and then by index, and no two keys are equal.
func selectTopK(_ scores: UnsafePointer<Float>, _ n: Int, _ k: Int, into out: UnsafeMutablePointer<Int>, work: UnsafeMutablePointer<UInt64>) -> Int {
    if n <= k {
        for i in 0..<n { out[i] = i }
        return n
    }
    @inline(__always) func key(_ j: Int) -> UInt64 {
        let b = scores[j].bitPattern
        let ordered = b & 0x8000_0000 != 0 ? ~b : b | 0x8000_0000
        return UInt64(ordered) << 32 | UInt64(j)
    }
    let (lo, hi) = minMax(scores, n)
    var m = 0
    // count(scores >= a) >= k holds throughout (a starts at the minimum: every score).
    var a = lo, b = hi
    if lo.isFinite && hi.isFinite && lo < hi {
        let enough = k + max(16, k / 4)
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
        for j in 0..<n {
            work[m] = key(j)
            m &+= scores[j] >= a ? 1 : 0
        }
    }
    if m < k {  // all equal, or not finite (NaN is never at or above a threshold): every key
        for j in 0..<n { work[j] = key(j) }
        m = n
    }
    let copy = work + n + 64
    copy.update(from: work, count: m)
    let threshold = kthLargest(copy, m, k)
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
        let v = UnsafeRawPointer(x + j).loadUnaligned(as: SIMD8<Float>.self)
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
    var counts = SIMD8<Int32>()
    var j = 0
    while j + 8 <= n {
        let v = UnsafeRawPointer(x + j).loadUnaligned(as: SIMD8<Float>.self)
        counts.replace(with: counts &+ one, where: v .>= tv)
        j += 8
    }
    var c = Int(counts.wrappedSum())
    while j < n {
        c += x[j] >= t ? 1 : 0
        j += 1
    }
    return c
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
        let yi = UnsafeRawPointer(y + i).loadUnaligned(as: SIMD8<Float>.self) + a * UnsafeRawPointer(x + i).loadUnaligned(as: SIMD8<Float>.self)
        UnsafeMutableRawPointer(y + i).storeBytes(of: yi, as: SIMD8<Float>.self)
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
