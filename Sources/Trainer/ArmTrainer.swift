import Models
import RecCore
import Scenario

/// The streaming trainer of one arm: applies that arm's feedback, a tick at a time in
/// (user, sequence) order, to its models: item statistics always (popularity and CTR
/// ranking use them), and a long-sequence model when the arm ranks with DARE or TWIN.
public final class ArmTrainer {
    public internal(set) var statistics: ItemStatistics
    public let sequence: SequenceLearner?
    /// Retrieval towers (two-tower or SPARC), when the arm retrieves with them.
    public let towers: TowerLearner?
    /// The poly-attention model, when the arm ranks (or blends) with it.
    public let poly: PolyLearner?
    public private(set) var eventsApplied = 0

    /// The ranking model's progressive evaluation per tick: the sequence model's (a blend's
    /// established-item model), else Poly's.
    public var evaluations: [TickEvaluation] { sequence?.evaluations ?? poly?.evaluations ?? [] }

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
        if let p = ranking.polyModel, let content {
            let model = PolyLearner.model(p, vocabulary: content.vocabulary, tokensPerItem: content.tokensPerItem, categoryCount: categoryCount,
                                          tokens: content.tokens, categories: categories, seed: seed &+ 0x70_6f_6c_79)
            model.updateCatalog(tokens: content.tokens, categories: categories, categoryCount: categoryCount,
                                live: content.live.indices.filter { content.live[$0] }.map(ItemID.init))
            // The running summary states start from the whole logged history, beyond the window.
            model.profiles = TokenProfiles(users: users, histories: histories, model: model)
            poly = PolyLearner(model: model, histories: UserHistories(users: users, cap: p.sessions * p.sessionSize, initial: histories),
                               batchSize: p.batchSize)
        } else {
            poly = nil
        }
        if let m = ranking.sequenceModel {
            let model = Self.freshSequenceModel(m, items: items, categories: categories, categoryCount: categoryCount, seed: seed)
            let learner = SequenceLearner(model: model, histories: UserHistories(users: users, cap: m.maxHistory, initial: histories),
                                          batchSize: m.batchSize)
            Self.configure(learner, m)
            sequence = learner
        } else {
            sequence = nil
        }
    }

    /// A sequence model as a fresh trainer starts it (the scenario's settings, the seed's
    /// initial values, the catalog taken in): what a server that follows the trainer
    /// starts from too.
    public static func freshSequenceModel(_ m: SequenceModelSettings, items: Int, categories: [UInt32], categoryCount: Int, seed: UInt64) -> RankingModel {
        let model = RankingModel(RankingModelSettings(m, seed: seed), items: items, categories: categoryCount)
        model.updateCatalog(categories: categories, categoryCount: categoryCount)
        return model
    }

    /// A trainer restored from a checkpoint: its statistics and sequence learner (state),
    /// with the arm's settings (`ranking`) applied as a new trainer's are.
    public init(restoring statistics: ItemStatistics, sequence: SequenceLearner?, ranking: Ranking) {
        self.statistics = statistics
        self.sequence = sequence
        if let sequence, let m = ranking.sequenceModel { Self.configure(sequence, m) }
        towers = nil
        poly = nil
    }

    /// The learner settings a scenario gives that a checkpoint does not hold.
    static func configure(_ learner: SequenceLearner, _ m: SequenceModelSettings) {
        learner.viewSecondsWeight = Float(m.viewSecondsWeight)
        learner.purchaseWeight = Float(m.purchaseWeight)
    }

    /// Takes in the catalog feed (new items get embedding rows, or content for Poly).
    public func updateCatalog(categories: [UInt32], categoryCount: Int, tokens: [UInt32] = [], live: [ItemID]? = nil) {
        sequence?.model.updateCatalog(categories: categories, categoryCount: categoryCount)
        poly?.model.updateCatalog(tokens: tokens, categories: categories, categoryCount: categoryCount, live: live)
        towers?.updateCatalog(categories: categories, categoryCount: categoryCount, tokens: tokens)
    }

    // MARK: A model without a world: tables that grow, and rows that start over

    /// Grows the users' histories, the item tables (and statistics) and the category tables
    /// to the rows of the model's id dictionaries.
    public func grow(users: Int, items: Int, categories: Int) {
        sequence?.histories.grow(to: users)
        sequence?.model.grow(items: items, categories: categories)
        statistics.grow(to: items - 1)
    }

    /// User row `user` has a new user: no history (logged for model updates).
    public func clearHistory(of user: UserID, tick: Tick) {
        sequence?.clearHistory(of: user, tick: tick)
    }

    /// Item row `item` has a new item: initial values, no counts, category 0.
    public func reset(item: ItemID) {
        statistics.reset(item)
        sequence?.model.reset(item: Int(item))
    }

    /// Category row `category` has a new category: initial values.
    public func reset(category: UInt32) {
        sequence?.model.reset(category: Int(category))
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
        poly?.learn(tick: tick, feedback: feedback)
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
