import Models
import RecCore
import Scenario

/// Trains the poly-attention model online from one arm's feedback.
///
/// Each tick: the feedback is grouped into slates (one request's impressions, clicked ones
/// first); the model scores every impression before learning from it (progressive AUC and,
/// through its calibration, log loss); the calibration takes a step on those scores; the
/// model takes a step per `batchSize` slates; and only then are the tick's clicks appended
/// to the users' histories, so a slate never sees its own clicks.
public final class PolyLearner {
    public let model: PolyModel
    public let histories: UserHistories
    public let batchSize: Int
    var slates: [PolySlate] = []
    var items: [ItemID] = []
    var skippedItems: [ItemID] = []
    var logits: [Float] = []
    var labels: [Float] = []
    public internal(set) var evaluations: [TickEvaluation] = []
    /// Events naming a user or item the model has no row for: counted, never a crash.
    public private(set) var skipped = 0

    public init(model: PolyModel, histories: UserHistories, batchSize: Int) {
        self.model = model
        self.histories = histories
        self.batchSize = batchSize
    }

    /// The model a scenario's knobs describe.
    public static func model(_ p: PolyRankingSettings, vocabulary: Int, tokensPerItem: Int, categoryCount: Int,
                             tokens: [UInt32], categories: [UInt32], seed: UInt64) -> PolyModel {
        var s = PolyModelSettings()
        s.dim = p.dim
        s.userCodes = p.userCodes
        s.contentCodes = p.contentCodes
        s.sessions = p.sessions
        s.sessionSize = p.sessionSize
        s.negatives = p.negatives
        s.matching = PolyMatching(p.matching)
        s.temperature = Float(p.temperature)
        s.summaryWeight = Float(p.summaryWeight)
        s.summaryTokens = p.summaryTokens
        s.adam = AdamSettings(learningRate: Float(p.learningRate))
        s.seed = seed
        return PolyModel(s, vocabulary: vocabulary, tokensPerItem: tokensPerItem, categoryCount: categoryCount, tokens: tokens, categories: categories)
    }

    /// Learns from one tick's feedback of this arm, sorted by (user, sequence, position, event).
    public func learn(tick: Tick, feedback: ArraySlice<Feedback>) {
        slates.removeAll(keepingCapacity: true)
        items.removeAll(keepingCapacity: true)
        var i = feedback.startIndex
        while i < feedback.endIndex {
            let user = feedback[i].header.user, sequence = feedback[i].header.sequence
            var j = i
            while j < feedback.endIndex && feedback[j].header.user == user && feedback[j].header.sequence == sequence { j += 1 }
            addSlate(feedback[i..<j])
            i = j
        }
        if !slates.isEmpty {
            evaluate(tick)
            items.withUnsafeBufferPointer { shown in
                for start in stride(from: 0, to: slates.count, by: batchSize) {
                    model.train(slates[start..<min(start + batchSize, slates.count)], items: shown, histories: histories)
                }
            }
        }
        for f in feedback where f.event == .click && Int(f.item) < model.itemCount && Int(f.header.user) < histories.userCount {
            histories.append(HistoryEntry(item: f.item, tick: Int32(tick)), for: f.header.user)
            model.profiles?.add(item: Int(f.item), of: model, for: f.header.user)
        }
    }

    /// One request's events: impressions with the click that follows each, clicked first.
    func addSlate(_ events: ArraySlice<Feedback>) {
        let user = events.first!.header.user
        guard Int(user) < histories.userCount else {
            skipped += events.count
            return
        }
        skippedItems.removeAll(keepingCapacity: true)
        let start = items.count
        var e = events.startIndex
        while e < events.endIndex {
            let f = events[e]
            e = events.index(after: e)
            guard f.event == .impression else { continue }
            guard Int(f.item) < model.itemCount else {
                skipped += 1
                continue
            }
            let clicked = e < events.endIndex && events[e].event == .click && events[e].position == f.position
            if clicked { items.append(f.item) } else { skippedItems.append(f.item) }
        }
        let clicked = items.count - start
        items += skippedItems
        guard items.count > start else { return }
        slates.append(PolySlate(user: user, start: start, clicked: clicked, shown: items.count - start))
    }

    /// Test-then-train: the scores the model gives the tick's impressions before it learns
    /// from them; then one calibration step on them.
    func evaluate(_ tick: Tick) {
        logits.removeAll(keepingCapacity: true)
        labels.removeAll(keepingCapacity: true)
        var out = [Float](repeating: 0, count: slates.map(\.shown).max() ?? 0)
        items.withUnsafeBufferPointer { shown in
            out.withUnsafeMutableBufferPointer { o in
                for s in slates {
                    model.logits(history: histories.history(of: s.user), candidates: UnsafeBufferPointer(rebasing: shown[s.start..<s.start + s.shown]),
                                 into: o.baseAddress!)
                    for k in 0..<s.shown {
                        logits.append(o[k])
                        labels.append(k < s.clicked ? 1 : 0)
                    }
                }
            }
        }
        let probabilities = logits.map(model.calibrated)
        let truth = labels.map { $0 == 1 }
        evaluations.append(TickEvaluation(
            tick: tick, samples: logits.count, positives: truth.filter { $0 }.count,
            auc: BinaryMetrics.auc(scores: logits, labels: truth),
            logLoss: BinaryMetrics.logLoss(probabilities: probabilities, labels: truth)))
        logits.withUnsafeBufferPointer { l in labels.withUnsafeBufferPointer { model.calibrate(logits: l, labels: $0) } }
    }
}
