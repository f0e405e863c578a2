import Foundation
import Testing
@testable import Models
@testable import Population
@testable import RecCore
@testable import Scenario
import TestSupport

/// Histories for tests, in the store the models read from (cap = the longest, so nothing
/// falls off).
func historyStore(_ lists: [[HistoryEntry]]) -> UserHistories {
    let store = UserHistories(users: lists.count, cap: max(1, lists.map(\.count).max() ?? 1))
    for (user, list) in lists.enumerated() { for entry in list { store.append(entry, for: UserID(user)) } }
    return store
}

/// Expects `model` to score `candidates` in one call as it scores each alone (within 1e-5:
/// the summation order differs, so rounding only); `label` names the case.
func expectBatchMatchesAlone(_ model: RankingModel, history: [HistoryEntry], candidates: [ItemID], _ label: String) {
    var batch = [Float](repeating: .nan, count: candidates.count)
    history.withUnsafeBufferPointer { h in
        candidates.withUnsafeBufferPointer { c in batch.withUnsafeMutableBufferPointer { model.score(history: h, candidates: c, into: $0.baseAddress!) } }
        for (i, candidate) in candidates.enumerated() {
            let alone = model.score(history: h, target: candidate)
            #expect(abs(batch[i] - alone) < 1e-5, "\(label) candidate \(candidate): \(batch[i]) vs \(alone)")
        }
    }
}

func tinyModel(_ design: EmbeddingDesign, fields: Fields = .itemCategoryTime, seed: UInt64 = 3, aux: Float = 0, batchNorm: Bool = false) -> RankingModel {
    var s = RankingModelSettings()
    s.auxLossWeight = aux
    s.batchNorm = batchNorm
    s.design = design
    s.fields = fields
    s.attentionDim = 4
    s.representationDim = 4
    s.topK = 3
    s.maxHistory = 8
    s.hidden1 = 6
    s.hidden2 = 5
    s.initScale = 0.4  // large enough that every gradient is far from zero
    s.seed = seed
    let model = RankingModel(s, items: 20, categories: 4)
    model.updateCatalog(categories: (0..<20).map { UInt32($0 % 4) }, categoryCount: 4)
    return model
}

/// The sample's loss as training sees it: BCE of the main logit, plus the auxiliary
/// head's BCE times its weight when the model has one.
func sampleLoss(_ model: RankingModel, _ history: UnsafeBufferPointer<HistoryEntry>, _ sample: LabeledSample) -> Double {
    func bce(_ logit: Float) -> Double {
        let z = Double(logit), y = Double(sample.label)
        let softplus: Double = Foundation.log1p(Foundation.exp(-Swift.abs(z)))
        let linear: Double = Swift.max(z, 0) - z * y
        return linear + softplus
    }
    var loss = bce(model.forward(model.window(history), sample.target))
    let auxWeight = model.settings.auxLossWeight
    if auxWeight > 0 { loss += Double(auxWeight) * bce(model.auxForward(sample.target, model.workers[0])) }
    return loss
}

/// Compares the gradients in the model's worker 0 with central finite differences of
/// `loss`, for the dense parameters in `dense` and every table value. `loss` also returns
/// its regime (which behaviours are kept, which side of zero each PReLU input is on): a
/// step that changes it crosses a kink, where a finite difference means nothing, and is
/// skipped. Returns how many parameters were checked and skipped.
func finiteDifferences(_ model: RankingModel, dense: Range<Int>, label: String,
                       loss: @escaping () -> (loss: Double, regime: [Int])) -> (checked: Int, skipped: Int) {
    var c = CentralDifferences(loss: loss)
    for i in dense {
        c.check("dense[\(i)]", analytic: model.denseGradient[i], read: { model.dense[i] }, write: { model.dense[i] = $0 })
    }
    for (t, table) in model.tables.enumerated() {
        for row in 0..<table.rows {
            for d in 0..<table.dim {
                let analytic: Float = model.sparse[t].slot(of: row).map { model.sparse[t].gradients[$0 * table.dim + d] } ?? 0
                c.check("table \(t) row \(row)[\(d)]", analytic: analytic,
                        read: { table.values[row * table.dim + d] }, write: { table.values[row * table.dim + d] = $0 })
            }
        }
    }
    for m in c.mismatches { Issue.record("\(label) \(m)") }
    return (c.checked, c.skipped)
}

@Suite("Ranking models")
struct RankingModelTests {
    @Test("gradients match central finite differences, with and without the auxiliary head",
          arguments: EmbeddingDesign.allCases, [(Fields.itemCategoryTime, Float(0)), (.item, 0), (.itemCategoryTime, 0.7), (.item, 0.7)])
    func gradientCheck(design: EmbeddingDesign, variant: (fields: Fields, aux: Float)) throws {
      let fields = variant.fields
      for label: Float in [1, 0] {
        let model = tinyModel(design, fields: fields, aux: variant.aux)
        var entries: [HistoryEntry] = []
        for j in 0..<10 { entries.append(HistoryEntry(item: ItemID((j * 7 + 3) % 20), tick: Int32(j - 10))) }
        let histories = historyStore([entries])
        let sample = LabeledSample(user: 0, target: 5, label: label)
        let history = histories.history(of: 0)
        _ = model.accumulateGradients([sample], histories: histories)
        /// Which behaviours are kept and which side of zero each PReLU input is on: a step
        /// that changes either crosses a kink, where a finite difference means nothing.
        func regime() -> [Int] {
            let c = model.scratch
            return (0..<c.k).map { c.selected[$0] } + [-1]
                + (0..<model.layout.hidden1).map { c.z1[$0] > 0 ? 1 : 0 } + (0..<model.layout.hidden2).map { c.z2[$0] > 0 ? 1 : 0 }
                + (model.layout.hasAux ? (0..<model.layout.hidden1).map { c.zAux[$0] > 0 ? 1 : 0 } : [])
        }
        let (checked, skipped) = finiteDifferences(model, dense: 0..<model.layout.count, label: "\(design) aux \(variant.aux)") {
            (sampleLoss(model, history, sample), regime())
        }
        #expect(checked > 100 * fields.rawValue, "only \(checked) parameters checked (\(skipped) skipped)")
      }
    }

    @Test("gradient reaches only the target's and the K kept behaviours' rows")
    func sparseRows() throws {
        let model = tinyModel(.dare)
        var entries: [HistoryEntry] = []
        for j in 0..<8 { entries.append(HistoryEntry(item: ItemID(j + 10), tick: Int32(j - 8))) }
        let histories = historyStore([entries])
        _ = model.accumulateGradients([LabeledSample(user: 0, target: 2, label: 1)], histories: histories)
        let kept = (0..<model.scratch.k).map { Int(model.scratch.items[model.scratch.selected[$0]]) }
        #expect(kept.count == 3)
        // Item rows of the attention table: the target and the three kept behaviours, nothing else.
        #expect(Set(model.sparse[model.attention[0]].touched.map(Int.init)) == Set(kept + [2]))
        #expect(Set(model.sparse[model.representation[0]].touched.map(Int.init)) == Set(kept + [2]))
    }

    @Test("the auxiliary head sends gradient to every searched behaviour; scoring never uses it")
    func auxHead() throws {
        let plain = tinyModel(.dare), aux = tinyModel(.dare, aux: 1)
        var entries: [HistoryEntry] = []
        for j in 0..<8 { entries.append(HistoryEntry(item: ItemID(j + 10), tick: Int32(j - 8))) }
        let histories = historyStore([entries])
        // Same parameters but the head's (it comes last in the layout): same scores.
        #expect(Array(aux.dense[..<plain.layout.count]) == plain.dense)
        #expect(aux.layout.count == plain.layout.count + plain.layout.hidden1 * plain.layout.input + 2 * plain.layout.hidden1 + 2)
        let history = histories.history(of: 0)
        #expect(aux.score(history: history, target: 2) == plain.score(history: history, target: 2))
        _ = aux.accumulateGradients([LabeledSample(user: 0, target: 2, label: 1)], histories: histories)
        // All eight behaviours (not only the K = 3 kept) and the target get attention gradient.
        #expect(Set(aux.sparse[aux.attention[0]].touched.map(Int.init)) == Set((10..<18).map { $0 } + [2]))
        #expect(Set(aux.sparse[aux.representation[0]].touched.map(Int.init)) == Set((10..<18).map { $0 } + [2]))
        // The head learns: its loss falls on a repeated sample.
        func auxLoss() -> Double {
            _ = aux.forward(aux.window(history), 2)
            let z = Double(aux.auxForward(2, aux.workers[0]))
            return Foundation.log1p(Foundation.exp(-z))
        }
        let before = auxLoss()
        for _ in 0..<20 { aux.train([LabeledSample(user: 0, target: 2, label: 1)], histories: histories) }
        #expect(auxLoss() < before * 0.5)
    }

    @Test("BatchNorm with batch statistics: gradients over a batch match central finite differences", arguments: EmbeddingDesign.allCases)
    func batchNormGradients(design: EmbeddingDesign) throws {
        let model = tinyModel(design, batchNorm: true)
        // Start BatchNorm away from the identity, so gamma and beta matter.
        for d in 0..<model.layout.input {
            model.dense[model.layout.bnGamma + d] = 0.7 + 0.05 * Float(d % 7)
            model.dense[model.layout.bnBeta + d] = 0.1 * Float(d % 5) - 0.2
        }
        var lists: [[HistoryEntry]] = []
        for u in 0..<4 { lists.append((0..<9).map { j in HistoryEntry(item: ItemID((j * 7 + 3 * u + 1) % 20), tick: Int32(j - 9)) }) }
        let histories = historyStore(lists)
        let batch = [LabeledSample(user: 0, target: 5, label: 1), LabeledSample(user: 1, target: 9, label: 0),
                     LabeledSample(user: 2, target: 14, label: 1, weight: 1.5), LabeledSample(user: 3, target: 2, label: 0)]
        let means = Array(model.dense[model.layout.bnMean..<model.layout.bnMean + model.layout.input])
        _ = model.accumulateGradients(batch[...], histories: histories)
        // The step's running statistics moved (and steps never touch them by gradient).
        #expect(Array(model.dense[model.layout.bnMean..<model.layout.bnMean + model.layout.input]) != means)
        #expect((model.layout.bnMean..<model.layout.count).allSatisfy { model.denseGradient[$0] == 0 })
        let (checked, skipped) = finiteDifferences(model, dense: 0..<model.layout.bnMean, label: "\(design)") {
            var regime: [Int] = []
            let loss = model.batchNormLoss(batch[...], histories: histories, regime: &regime)
            return (loss, regime)
        }
        #expect(checked > 300, "only \(checked) parameters checked (\(skipped) skipped)")
    }

    @Test("BatchNorm scores with its running statistics, the same through batch scoring and one at a time")
    func batchNormScoring() throws {
        let model = tinyModel(.dare, batchNorm: true)
        var lists: [[HistoryEntry]] = []
        for u in 0..<3 { lists.append((0..<8).map { j in HistoryEntry(item: ItemID((j * 5 + u) % 20), tick: Int32(j - 8)) }) }
        let histories = historyStore(lists)
        for _ in 0..<5 {
            model.train([LabeledSample(user: 0, target: 3, label: 1), LabeledSample(user: 1, target: 7, label: 0),
                         LabeledSample(user: 2, target: 11, label: 1)], histories: histories)
        }
        let candidates: [ItemID] = [3, 7, 11, 12, 19]
        var batchScores = [Float](repeating: 0, count: candidates.count)
        candidates.withUnsafeBufferPointer { c in
            batchScores.withUnsafeMutableBufferPointer { model.score(history: histories.history(of: 0), candidates: c, into: $0.baseAddress!) }
        }
        for (i, item) in candidates.enumerated() {
            #expect(abs(batchScores[i] - model.score(history: histories.history(of: 0), target: item)) < 1e-5)
        }
        // Running statistics are in use: resetting them changes the scores.
        for d in 0..<model.layout.input { model.dense[model.layout.bnMean + d] = 0; model.dense[model.layout.bnVar + d] = 1 }
        #expect(model.score(history: histories.history(of: 0), target: 3) != batchScores[0])
    }

    @Test("lazy Adam leaves rows without gradient alone; dense Adam, the reference's, moves every row with a moment")
    func tableOptimizers() throws {
        func run(_ optimizer: TableOptimizer) -> (untouched: Bool, movedAfter: Bool) {
            var s = RankingModelSettings()
            s.attentionDim = 4
            s.representationDim = 4
            s.topK = 2
            s.maxHistory = 4
            s.hidden1 = 6
            s.hidden2 = 4
            s.tableOptimizer = optimizer
            let m = RankingModel(s, items: 20, categories: 4)
            m.updateCatalog(categories: (0..<20).map { UInt32($0 % 4) }, categoryCount: 4)
            let histories = historyStore([[HistoryEntry(item: 1, tick: -2), HistoryEntry(item: 2, tick: -1)],
                                          [HistoryEntry(item: 11, tick: -2), HistoryEntry(item: 12, tick: -1)]])
            let item = m.attention[0], row = { Array(UnsafeBufferPointer(start: m.tables[item].row(1), count: 4)) }
            let never = Array(UnsafeBufferPointer(start: m.tables[item].row(19), count: 4))
            m.train([LabeledSample(user: 0, target: 5, label: 1)], histories: histories)  // touches item 1's row
            let afterFirst = row()
            m.train([LabeledSample(user: 1, target: 15, label: 0)], histories: histories)  // does not
            return (Array(UnsafeBufferPointer(start: m.tables[item].row(19), count: 4)) == never, row() != afterFirst)
        }
        let lazy = run(.lazyAdam), dense = run(.adam)
        #expect(lazy.untouched && !lazy.movedAfter)
        // Dense: a row that never had gradient has zero moments and stays; one that had moves on.
        #expect(dense.untouched && dense.movedAfter)
    }

    @Test("a mini-batch split over two workers gives the one-worker gradient")
    func dataParallel() throws {
        func model(threads: Int) -> RankingModel {
            var s = RankingModelSettings()
            s.attentionDim = 4
            s.representationDim = 6
            s.topK = 3
            s.maxHistory = 8
            s.hidden1 = 8
            s.hidden2 = 5
            s.initScale = 0.3
            s.threads = threads
            let m = RankingModel(s, items: 20, categories: 4)
            m.updateCatalog(categories: (0..<20).map { UInt32($0 % 4) }, categoryCount: 4)
            return m
        }
        var histories: [[HistoryEntry]] = []
        var rng = RandomStream(seed: 4, 1)
        for _ in 0..<10 { histories.append((0..<8).map { j in HistoryEntry(item: ItemID(rng.nextInt(below: 20)), tick: Int32(j)) }) }
        let source = historyStore(histories)
        let batch = (0..<64).map { i in LabeledSample(user: UserID(i % 10), target: ItemID(rng.nextInt(below: 20)), label: Float(i % 3 == 0 ? 1 : 0)) }
        let one = model(threads: 1), two = model(threads: 2)
        let lossOne = one.accumulateGradients(batch[...], histories: source)
        let lossTwo = two.accumulateGradients(batch[...], histories: source)
        #expect(abs(lossOne - lossTwo) < 1e-5)
        for i in 0..<one.layout.count {
            #expect(abs(one.denseGradient[i] - two.denseGradient[i]) <= 1e-6 + 1e-4 * abs(one.denseGradient[i]), "dense[\(i)]")
        }
        for t in one.tables.indices {
            #expect(Set(one.sparse[t].touched) == Set(two.sparse[t].touched))
            for row in one.sparse[t].touched {
                let a = one.sparse[t].slot(of: Int(row))!, b = two.sparse[t].slot(of: Int(row))!, dim = one.tables[t].dim
                for d in 0..<dim {
                    let x = one.sparse[t].gradients[a * dim + d], y = two.sparse[t].gradients[b * dim + d]
                    #expect(abs(x - y) <= 1e-6 + 1e-4 * abs(x), "table \(t) row \(row)")
                }
            }
        }
        // The second worker's buffers were merged and cleared.
        #expect(two.workers[1].sparse.allSatisfy { $0.touched.isEmpty } && two.workers[1].denseGradient.allSatisfy { $0 == 0 })
    }

    @Test("DIN attends to the most recent K behaviours and nothing else")
    func dinRecent() throws {
        let model = tinyModel(.din)
        var entries: [HistoryEntry] = []
        for j in 0..<12 { entries.append(HistoryEntry(item: ItemID(j + 4), tick: Int32(j - 12))) }
        let histories = historyStore([entries])
        _ = model.accumulateGradients([LabeledSample(user: 0, target: 1, label: 1)], histories: histories)
        let kept = (0..<model.scratch.k).map { Int(model.scratch.items[model.scratch.selected[$0]]) }
        #expect(kept == [13, 14, 15])  // the last three of the window
        #expect(Set(model.sparse[model.attention[0]].touched.map(Int.init)) == [1, 13, 14, 15])
    }

    @Test("scoring many candidates at once agrees with scoring each alone", arguments: EmbeddingDesign.allCases, Fields.allCases)
    func batchScoring(design: EmbeddingDesign, fields: Fields) {
        let model = tinyModel(design, fields: fields)
        var entries: [HistoryEntry] = []
        for j in 0..<8 { entries.append(HistoryEntry(item: ItemID((j * 3 + 1) % 20), tick: Int32(j - 8))) }
        let candidates: [ItemID] = [0, 3, 7, 11, 19, 2, 5]  // not a multiple of four
        expectBatchMatchesAlone(model, history: entries, candidates: candidates, "\(design) \(fields)")
    }

    @Test("AUC is exact on known cases")
    func auc() {
        #expect(BinaryMetrics.auc(scores: [0.1, 0.4, 0.35, 0.8], labels: [false, false, true, true]) == 0.75)
        #expect(BinaryMetrics.auc(scores: [0.5, 0.5], labels: [false, true]) == 0.5)
        #expect(BinaryMetrics.auc(scores: [1, 2], labels: [true, true]).isNaN)
    }

    @Test("DARE and TWIN learn on a small simulated world", arguments: EmbeddingDesign.allCases)
    func learns(design: EmbeddingDesign) throws {
        let scenario = try Scenario.decode("""
        {"name": "learn", "seed": 4,
         "population": {"users": 600, "history": {"median": 150, "max": 600}},
         "catalog": {"items": 800, "topics": 12, "topCategories": 4, "subcategories": 3, "arrivalsPerTick": 0},
         "arms": [{"name": "a", "share": 1, "candidates": 10}]}
        """)
        let world = Population(scenario, threads: 1)
        let index = world.catalog.topicIndex()
        // Targets: half from the user's interests, half at random; labels from the truth.
        var samples: [LabeledSample] = []
        var rng = RandomStream(seed: 5, 1)
        for i in 0..<24_000 {
            let user = UserID(rng.nextInt(below: 600))
            let target: ItemID
            if i % 2 == 0 {
                let interests = world.interests(of: user).filter(\.active)
                target = index.draw(topic: interests[rng.nextInt(below: interests.count)].topic, &rng)!
            } else {
                target = ItemID(rng.nextInt(below: world.catalog.count))
            }
            let p = world.trueClickProbability(user: user, item: target)
            samples.append(LabeledSample(user: user, target: target, label: rng.nextFloat() < p ? 1 : 0))
        }
        var settings = RankingModelSettings()
        settings.design = design
        settings.topK = 16
        settings.maxHistory = 150
        let model = RankingModel(settings, items: world.catalog.count, categories: 12)
        model.updateCatalog(categories: world.catalog.subcategory.map(UInt32.init), categoryCount: 12)
        let train = samples[..<20_000], test = samples[20_000...]
        for _ in 0..<2 {
            for start in stride(from: 0, to: train.count, by: 256) {
                model.train(train[start..<min(start + 256, train.count)], histories: world.histories)
            }
        }
        let scores = test.map { model.score(history: world.histories.history(of: $0.user), target: $0.target) }
        let auc = BinaryMetrics.auc(scores: scores, labels: test.map { $0.label == 1 })
        // The truth's own AUC on these samples is 0.81 and 0.5 is chance; both designs reach
        // about 0.66. 4,000 test samples with 1,155 positives put the AUC's standard error
        // near 0.01, so 0.6 is well clear of chance and of the values reached.
        #expect(auc > 0.6, "\(design) test AUC \(auc)")
    }
}
