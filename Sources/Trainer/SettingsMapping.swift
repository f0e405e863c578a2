import Models
import Scenario

// The scenario's choices as the models' types: exhaustive, so a new case in either is a
// compile error here, not a silent default.

extension EmbeddingDesign {
    public init(_ design: SequenceDesign) {
        switch design {
        case .dare: self = .dare
        case .twin: self = .twin
        case .din: self = .din
        case .twinProjection: self = .twinProjection
        }
    }
}

extension TableOptimizer {
    public init(_ kind: OptimizerKind) {
        switch kind {
        case .lazyAdam: self = .lazyAdam
        case .adam: self = .adam
        }
    }
}

extension PolyMatching {
    public init(_ kind: MatchingKind) {
        switch kind {
        case .learned: self = .learned
        case .plain: self = .plain
        }
    }
}

extension RankingModelSettings {
    /// A sequence arm's model settings, as the scenario gives them.
    public init(_ m: SequenceModelSettings, seed: UInt64) {
        self.init()
        design = EmbeddingDesign(m.design)
        attentionDim = m.attentionDim
        representationDim = m.representationDim
        topK = m.topK
        maxHistory = m.maxHistory
        adam = AdamSettings(learningRate: Float(m.learningRate))
        auxLossWeight = Float(m.auxLossWeight)
        tableOptimizer = TableOptimizer(m.optimizer)
        batchNorm = m.batchNorm
        self.seed = seed
    }
}
