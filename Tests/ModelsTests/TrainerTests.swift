import Testing
@testable import Models
@testable import RecCore
@testable import Trainer

@Suite("Streaming trainer")
struct TrainerTests {
    @Test("the history store keeps the latest behaviours, in order, up to its cap")
    func historyCap() {
        let store = UserHistories(users: 2, cap: 5)
        for i in 0..<3 { store.append(HistoryEntry(item: ItemID(i), tick: Int32(i)), for: 1) }
        #expect(store.history(of: 1).map(\.item) == [0, 1, 2])
        for i in 3..<23 { store.append(HistoryEntry(item: ItemID(i), tick: Int32(i)), for: 1) }
        #expect(store.history(of: 1).map(\.item) == [18, 19, 20, 21, 22])
        #expect(store.history(of: 0).isEmpty)
        let seeded = UserHistories(users: 2, cap: 3, initial: store)
        #expect(seeded.history(of: 1).map(\.item) == [20, 21, 22])
    }

    @Test("impressions become samples labelled by their clicks; clicks join the history only after training")
    func samplesAndLeakage() {
        var s = RankingModelSettings()
        s.attentionDim = 4
        s.representationDim = 4
        s.topK = 2
        s.maxHistory = 10
        s.hidden1 = 4
        s.hidden2 = 3
        let model = RankingModel(s, items: 10, categories: 2)
        model.updateCatalog(categories: (0..<10).map { UInt32($0 % 2) }, categoryCount: 2)
        let learner = SequenceLearner(model: model, histories: UserHistories(users: 2, cap: 10), batchSize: 4)
        let h0 = RecordHeader(arm: 0, tick: 3, user: 0, sequence: 0), h1 = RecordHeader(arm: 0, tick: 3, user: 1, sequence: 0)
        let feedback: [Feedback] = [
            Feedback(h0, event: .impression, position: 0, item: 4, shownTick: 3),
            Feedback(h0, event: .impression, position: 1, item: 5, shownTick: 3),
            Feedback(h0, event: .click, position: 1, item: 5, shownTick: 3, viewSeconds: 10),
            Feedback(h1, event: .impression, position: 0, item: 6, shownTick: 3),
            Feedback(h1, event: .click, position: 0, item: 6, shownTick: 3, viewSeconds: 5),
            Feedback(h1, event: .impression, position: 1, item: 7, shownTick: 3),
        ]
        learner.learn(tick: 3, feedback: feedback[...])
        #expect(learner.samples.map(\.label) == [0, 1, 1, 0])
        #expect(learner.samples.map(\.target) == [4, 5, 6, 7])
        // Trained with empty histories (the model cannot have seen its own labels), then
        // the clicks were appended.
        #expect(learner.histories.history(of: 0).map(\.item) == [5])
        #expect(learner.histories.history(of: 1).map(\.item) == [6])
        #expect(learner.evaluations == [TickEvaluation(tick: 3, samples: 4, positives: 2, auc: learner.evaluations[0].auc,
                                                       logLoss: learner.evaluations[0].logLoss)])
        #expect(model.step == 1)
    }
}
