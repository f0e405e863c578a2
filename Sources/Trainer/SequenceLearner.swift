import Foundation
import Models
import RecCore

/// Trains a long-sequence model (DARE, TWIN) online from one arm's feedback.
///
/// Each tick: every impression becomes a sample, labelled 1 if the user clicked it; the
/// model scores the tick's samples before learning from them (progressive evaluation:
/// AUC and log loss per tick), takes mini-batch steps, and only then appends the tick's
/// clicks to the users' histories, so a sample never sees its own label in the history.
public final class SequenceLearner {
    public let model: RankingModel
    public let histories: UserHistories
    public let batchSize: Int
    var samples: [LabeledSample] = []
    /// Purchases (delayed labels), trained after the tick's impressions.
    var delayed: [LabeledSample] = []
    var predictions: [Float] = []
    public internal(set) var evaluations: [TickEvaluation] = []
    /// Samples and clicks skipped because they named a user or item the model has no row
    /// for (a stream that is not this world's): counted, never a crash.
    public private(set) var skipped = 0
    /// Weighted targets: a click's sample weighs 1 + viewSecondsWeight x ln(1 + view
    /// seconds). A purchase is a delayed label: it arrives ticks after the click it follows,
    /// and is then trained as a positive of weight purchaseWeight (0: not at all) against
    /// the user's history at that time. It is not held back to join its impression: the
    /// impression was trained on when it happened, and waiting would hold every sample.
    public var viewSecondsWeight: Float = 0
    public var purchaseWeight: Float = 0
    /// Whether `learn` keeps the clicks it appends to the histories in `historyAppends`
    /// (for model updates).
    public var logsHistoryAppends = false
    public internal(set) var historyAppends: [(user: UserID, entry: HistoryEntry)] = []
    /// Users below this row keep no history (a model without a world's row 0, shared by
    /// every user without a row of its own: their clicks label samples, but belong to no
    /// one's history).
    public var historyFloor: UserID = 0

    /// Empties user `user`'s history at `tick` (its id expired and the row has a new
    /// user); logged for model updates as an append of item `ModelUpdate.historyCleared`.
    public func clearHistory(of user: UserID, tick: Tick) {
        histories.clear(user)
        if logsHistoryAppends { historyAppends.append((user, HistoryEntry(item: ModelUpdate.historyCleared, tick: Int32(tick)))) }
    }

    public init(model: RankingModel, histories: UserHistories, batchSize: Int) {
        self.model = model
        self.histories = histories
        self.batchSize = batchSize
    }

    /// Learns from one tick's feedback of this arm, sorted by (user, sequence, position, event).
    public func learn(tick: Tick, feedback: ArraySlice<Feedback>) {
        samples.removeAll(keepingCapacity: true)
        delayed.removeAll(keepingCapacity: true)
        var i = feedback.startIndex
        while i < feedback.endIndex {
            let f = feedback[i]
            guard Int(f.item) < model.categoryOf.count, Int(f.header.user) < histories.userCount else {
                skipped += 1
                i = feedback.index(after: i)
                continue
            }
            if f.event == .impression {
                // The click on this impression, if any, follows it directly.
                let next = feedback.index(after: i)
                let clicked = next < feedback.endIndex && feedback[next].event == .click
                    && feedback[next].header.user == f.header.user && feedback[next].header.sequence == f.header.sequence
                    && feedback[next].position == f.position && feedback[next].item == f.item
                let weight = clicked && viewSecondsWeight > 0 ? 1 + viewSecondsWeight * log1p(max(0, feedback[next].viewSeconds)) : 1
                samples.append(LabeledSample(user: f.header.user, target: f.item, label: clicked ? 1 : 0, weight: weight))
            } else if f.event == .purchase && purchaseWeight > 0 {
                delayed.append(LabeledSample(user: f.header.user, target: f.item, label: 1, weight: purchaseWeight))
            }
            i = feedback.index(after: i)
        }
        // The impressions are evaluated (test-then-train); purchases train after them.
        let impressions = samples.count
        samples += delayed
        if !samples.isEmpty {
            if predictions.count < samples.count { predictions = [Float](repeating: 0, count: samples.count) }
            predictions.withUnsafeMutableBufferPointer { p in
                for start in stride(from: 0, to: samples.count, by: batchSize) {
                    let end = min(start + batchSize, samples.count)
                    model.train(samples[start..<end], histories: histories, predictions: p.baseAddress! + start)
                }
            }
        }
        if impressions > 0 {
            let labels = samples[..<impressions].map { $0.label == 1 }
            let scores = Array(predictions[..<impressions])
            evaluations.append(TickEvaluation(
                tick: tick, samples: impressions, positives: labels.filter { $0 }.count,
                auc: BinaryMetrics.auc(scores: scores, labels: labels),
                logLoss: BinaryMetrics.logLoss(probabilities: scores, labels: labels)))
        }
        for f in feedback where f.event == .click && Int(f.item) < model.categoryOf.count && Int(f.header.user) < histories.userCount
            && f.header.user >= historyFloor {
            let entry = HistoryEntry(item: f.item, tick: Int32(tick))
            histories.append(entry, for: f.header.user)
            if logsHistoryAppends { historyAppends.append((f.header.user, entry)) }
        }
    }
}
