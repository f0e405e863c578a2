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
