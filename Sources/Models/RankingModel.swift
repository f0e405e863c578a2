import Dispatch
import Foundation
import RecCore

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
    /// Whether a training step searches a user's adjacent samples together (tests turn it
    /// off to compare with the search one sample at a time).
    var searchesTogether = true
    /// Where training steps' time goes, when set (`recstream bench models`).
    package var profile: TrainingProfile?
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
    }

    // MARK: Tables that grow with a stream's ids (a model without a world)

    /// Rows of the category tables (0 when the model reads the item alone).
    public var categoryRows: Int { fieldCount == 3 ? tables[attention[1]].rows : 0 }

    /// Grows the item tables to `items` rows (new items have category 0) and the category
    /// tables to `categories` rows.
    public func grow(items: Int, categories: Int) {
        if items > categoryOf.count { categoryOf.append(contentsOf: repeatElement(0, count: items - categoryOf.count)) }
        tables[attention[0]].grow(to: items)
        tables[representation[0]].grow(to: items)
        if fieldCount == 3 {
            tables[attention[1]].grow(to: categories)
            tables[representation[1]].grow(to: categories)
        }
    }

    /// Item `item` is of category `category` (both rows the tables have).
    public func setCategory(item: Int, category: UInt32) {
        precondition(item < categoryOf.count && (fieldCount < 3 || Int(category) < categoryRows))
        categoryOf[item] = category
    }

    /// Item row `item` starts over (initial values, category 0): its id expired.
    public func reset(item: Int) {
        tables[attention[0]].reset(row: item)
        if representation[0] != attention[0] { tables[representation[0]].reset(row: item) }
        categoryOf[item] = 0
    }

    /// Category row `category` starts over: its id expired.
    public func reset(category: Int) {
        guard fieldCount == 3 else { return }
        tables[attention[1]].reset(row: category)
        if representation[1] != attention[1] { tables[representation[1]].reset(row: category) }
    }
}

/// The time of training steps by part, summed over `steps` steps.
package struct TrainingProfile: Sendable {
    /// Forward and backward passes on every thread, and writing the predictions.
    package var gradients = Duration.zero
    /// Adding the other threads' gradients into the first's (part of `gradients`).
    package var merge = Duration.zero
    /// Adam on the dense layers.
    package var denseOptimizer = Duration.zero
    /// Lazy (or dense) Adam on the embedding tables' touched rows.
    package var tableOptimizer = Duration.zero
    package var steps = 0
    package init() {}
}
