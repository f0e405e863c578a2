import Models
import RecCore
import Scenario

/// The streaming trainer of one arm: applies that arm's feedback, a tick at a time in
/// (user, sequence) order, to its models: item statistics always (popularity and CTR
/// ranking use them), and a long-sequence model when the arm ranks with DARE or TWIN.
public final class ArmTrainer {
    public private(set) var statistics: ItemStatistics
    public let sequence: SequenceLearner?
    /// Retrieval towers (two-tower or SPARC), when the arm retrieves with them.
    public let towers: TowerLearner?
    public private(set) var eventsApplied = 0

    /// - Parameters:
    ///   - histories: the users' logged histories, which a sequence model starts from.
    ///   - categories: each item's category (the catalog feed).
    public init<H: HistorySource>(items: Int, ranking: Ranking, retrieval: Retrieval = .random, users: Int, histories: H,
                                  categories: [UInt32], categoryCount: Int, content: TowerInputs? = nil, seed: UInt64) {
        statistics = ItemStatistics(items: items)
        if case .towers(let t) = retrieval, let content {
            towers = TowerLearner(t, users: users, histories: histories, categories: categories, categoryCount: categoryCount,
                                  tokens: content.tokens, tokensPerItem: content.tokensPerItem, vocabulary: content.vocabulary,
                                  live: content.live, userFeatures: content.userFeatures, seed: seed &+ 0x70_77)
        } else {
            towers = nil
        }
        if case .sequence(let m) = ranking {
            var s = RankingModelSettings()
            s.design = EmbeddingDesign(rawValue: m.design) ?? .dare
            s.attentionDim = m.attentionDim
            s.representationDim = m.representationDim
            s.topK = m.topK
            s.maxHistory = m.maxHistory
            s.adam = AdamSettings(learningRate: Float(m.learningRate))
            s.seed = seed
            let model = RankingModel(s, items: items, categories: categoryCount)
            model.updateCatalog(categories: categories, categoryCount: categoryCount)
            sequence = SequenceLearner(model: model, histories: UserHistories(users: users, cap: m.maxHistory, initial: histories),
                                       batchSize: m.batchSize)
        } else {
            sequence = nil
        }
    }

    /// Takes in the catalog feed (new items get embedding rows).
    public func updateCatalog(categories: [UInt32], categoryCount: Int, tokens: [UInt32] = []) {
        sequence?.model.updateCatalog(categories: categories, categoryCount: categoryCount)
        towers?.updateCatalog(categories: categories, categoryCount: categoryCount, tokens: tokens)
    }

    /// The end of a tick: the towers take in what they learned for serving (`live` marks
    /// the items retrieval may return).
    public func endTick(live: [Bool]) {
        towers?.endTick(live: live)
    }

    /// Applies one tick's feedback of this arm, sorted by (user, sequence, position, event).
    public func apply(tick: Tick, feedback: ArraySlice<Feedback>) {
        for f in feedback {
            switch f.event {
            case .impression: statistics.recordImpression(f.item)
            case .click: statistics.recordClick(f.item, viewSeconds: f.viewSeconds)
            case .purchase: break
            }
        }
        sequence?.learn(tick: tick, feedback: feedback)
        towers?.learn(feedback)
        eventsApplied += feedback.count
    }
}

/// What the retrieval towers read of the world: each item's content tokens and whether it
/// can be served, and each user's observable features.
public struct TowerInputs: Sendable {
    public var tokens: [UInt32]
    public var tokensPerItem: Int
    public var vocabulary: Int
    public var live: [Bool]
    public var userFeatures: [UserFeatures]
    public init(tokens: [UInt32], tokensPerItem: Int, vocabulary: Int, live: [Bool], userFeatures: [UserFeatures] = []) {
        self.tokens = tokens
        self.tokensPerItem = tokensPerItem
        self.vocabulary = vocabulary
        self.live = live
        self.userFeatures = userFeatures
    }
}
