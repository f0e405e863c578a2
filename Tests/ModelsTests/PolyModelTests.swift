import Foundation
import Testing
import TestSupport
@testable import Models
@testable import Population
@testable import RecCore
@testable import Scenario

func tinyPoly(_ matching: PolyMatching, negatives: Int = 2, summaryNegatives: Int = 256) -> PolyModel {
    var s = PolyModelSettings()
    s.dim = 8
    s.userCodes = 3
    s.contentCodes = 2
    s.sessions = 3
    s.sessionSize = 2
    s.negatives = negatives
    s.summaryTokens = 4
    s.summaryNegatives = summaryNegatives
    s.matching = matching
    s.seed = 7
    let items = 20, perItem = 3
    var draw = RandomStream(seed: 8, 1)
    let tokens = (0..<items * perItem).map { _ in UInt32(draw.nextInt(below: 12)) }
    let model = PolyModel(s, vocabulary: 12, tokensPerItem: perItem, categoryCount: 3, tokens: tokens,
                          categories: (0..<items).map { UInt32($0 * 7 % 3) })
    // Large enough parameters that no gradient is lost in rounding; W_c non-zero so the
    // session path carries gradient.
    var rng = RandomStream(seed: 9, 1)
    for i in model.dense.indices where i < model.layout.outputBias { model.dense[i] += 0.3 * Float(rng.nextGaussian()) }
    return model
}

@Suite("Poly-attention (EmbSum)")
struct PolyModelTests {
    /// Two users: one with seven clicks (three sessions, the last partial; the window keeps
    /// six), one with none (the prior summary). Slates: two clicks with one non-click, and
    /// one click with no non-click (random negatives only).
    func batch() -> (UserHistories, [PolySlate], [ItemID]) {
        let histories = historyStore([(0..<7).map { HistoryEntry(item: ItemID($0 * 3 % 20), tick: Int32($0)) }, []])
        let items: [ItemID] = [4, 9, 13, 11]
        return (histories, [PolySlate(user: 0, start: 0, clicked: 2, shown: 3), PolySlate(user: 1, start: 3, clicked: 1, shown: 1)], items)
    }

    static let gradientCases: [(PolyMatching, Int, Bool)] = [
        (.learned, 256, false), (.learned, 5, false), (.plain, 256, false), (.plain, 5, false), (.learned, 256, true),
    ]

    @Test("gradients match central finite differences (matching, summary negatives, running summary state)", arguments: gradientCases)
    func gradientCheck(matching: PolyMatching, summaryNegatives: Int, profiles: Bool) {
        let model = tinyPoly(matching, summaryNegatives: summaryNegatives)
        let (histories, slates, items) = batch()
        if profiles { model.profiles = TokenProfiles(users: 2, histories: histories, model: model, slots: 6) }
        func loss() -> Double {
            let l = items.withUnsafeBufferPointer { model.accumulateGradients(slates[...], items: $0, histories: histories).value }
            for i in model.denseGradient.indices { model.denseGradient[i] = 0 }
            model.sparse.clear()
            return Double(l)
        }
        _ = items.withUnsafeBufferPointer { model.accumulateGradients(slates[...], items: $0, histories: histories) }
        let dense = model.denseGradient
        var sparse: [Int: [Float]] = [:]
        for (slot, row) in model.sparse.touched.enumerated() {
            sparse[Int(row)] = Array(model.sparse.gradients[slot * 8..<(slot + 1) * 8])
        }
        for i in model.denseGradient.indices { model.denseGradient[i] = 0 }
        model.sparse.clear()

        var c = CentralDifferences(loss: loss)
        for i in model.dense.indices {
            c.check("dense[\(i)]", analytic: dense[i], read: { model.dense[i] }, write: { model.dense[i] = $0 })
        }
        for row in 0..<model.tokens.rows {
            for d in 0..<8 {
                c.check("token \(row)[\(d)]", analytic: sparse[row]?[d] ?? 0,
                        read: { model.tokens.values[row * 8 + d] }, write: { model.tokens.values[row * 8 + d] = $0 })
            }
        }
        for m in c.mismatches { Issue.record("\(matching) \(m)") }
        let checked = c.checked, nonzero = c.nonzero
        // Every part of the model gets gradient: encoder, sessions, summary, both codes, W^s.
        let l = model.layout
        for (name, range) in [("W_h", l.wh..<l.sos), ("W_c", l.wc..<l.prior), ("prior", l.prior..<l.prior + 8),
                              ("summary", l.summaryPooling.w..<l.user.w), ("UPE", l.user.w..<l.content.w),
                              ("CPE", l.content.w..<l.ws)] {
            #expect(range.contains { abs(dense[$0]) > 1e-5 }, "\(name) gets no gradient: \(range) \(dense[range].prefix(20))")
        }
        if matching == .learned { #expect((l.ws..<l.outputBias).contains { abs(dense[$0]) > 1e-5 }, "W^s gets no gradient") }
        #expect(checked == 596 && nonzero > 450, "\(checked) checked, \(nonzero) non-zero")
    }

    @Test("scoring a slate of candidates agrees with the training path, and the CPE cache follows training")
    func scoringAgrees() {
        let model = tinyPoly(.learned)
        let (histories, slates, items) = batch()
        let candidates: [ItemID] = [0, 5, 13, 19, 5]
        func scores() -> [Float] {
            var out = [Float](repeating: 0, count: candidates.count)
            candidates.withUnsafeBufferPointer { c in out.withUnsafeMutableBufferPointer { model.logits(history: histories.history(of: 0), candidates: c, into: $0.baseAddress!) } }
            return out
        }
        func direct(_ item: ItemID) -> Float {
            model.encodeUser(histories.history(of: 0))
            let slot = model.items[1]
            model.encodeItem(Int(item), slot)
            return model.match(slot.cpe, slot.g, products: slot.products, weights: slot.weights)
        }
        let before = scores()
        for (i, c) in candidates.enumerated() { #expect(abs(before[i] - direct(c)) < 1e-5) }
        #expect(before[1] == before[4])
        items.withUnsafeBufferPointer { _ = model.train(slates[...], items: $0, histories: histories) }
        let after = scores()
        for (i, c) in candidates.enumerated() { #expect(abs(after[i] - direct(c)) < 1e-5, "stale cache for item \(c)") }
        #expect(after != before)
    }

    @Test("the Platt calibration recovers a known scale and bias, from far away, and survives a batch without clicks")
    func calibration() {
        let model = tinyPoly(.learned)
        var rng = RandomStream(seed: 3, 1)
        let logits = (0..<20_000).map { _ in Float(rng.nextGaussian()) * 15 }
        let labels = logits.map { rng.nextFloat() < 1 / (1 + exp(-(0.2 * $0 - 3))) ? Float(1) : 0 }
        logits.withUnsafeBufferPointer { l in labels.withUnsafeBufferPointer { model.calibrate(logits: l, labels: $0) } }
        #expect(abs(model.calibrationScale - 0.2) < 0.02 && abs(model.calibrationBias + 3) < 0.2,
                "scale \(model.calibrationScale), bias \(model.calibrationBias)")
        let none = [Float](repeating: 0, count: 50)
        logits.prefix(50).withUnsafeBufferPointer { l in none.withUnsafeBufferPointer { model.calibrate(logits: l, labels: $0) } }
        #expect(model.calibrationScale.isFinite && model.calibrationBias.isFinite && model.calibrationBias < -3)
    }

    @Test("the running summary state: decayed token counts that reach past the window, in a fixed number of slots")
    func profiles() {
        let model = tinyPoly(.learned)
        let p = TokenProfiles(users: 2, slots: 8, decay: 0.5)  // room for every token of two items
        p.add(item: 0, of: model, for: 1)
        let first = Dictionary(p.profile(of: 1).map { ($0.token, $0.weight) }, uniquingKeysWith: +)
        let tokens0 = (0..<3).map { model.itemTokens[$0] }
        for t in Set(tokens0) { #expect(first[t] == Float(tokens0.filter { $0 == t }.count)) }
        #expect(p.profile(of: 0).isEmpty)
        // A second click halves what was there and adds the new item's tokens.
        p.add(item: 1, of: model, for: 1)
        let second = Dictionary(p.profile(of: 1).map { ($0.token, $0.weight) }, uniquingKeysWith: +)
        let tokens1 = (0..<3).map { model.itemTokens[model.rowsPerItem + $0] }
        for t in Set(tokens0 + tokens1) {
            let want = 0.5 * Float(tokens0.filter { $0 == t }.count) + Float(tokens1.filter { $0 == t }.count)
            #expect(abs((second[t] ?? 0) - want) < 1e-6, "token \(t): \(second[t] ?? 0) vs \(want)")
        }
        // With fewer slots than tokens, new tokens take the lightest slot (inheriting its
        // weight); many clicks later the heaviest slots hold the most recent tokens.
        let small = TokenProfiles(users: 2, slots: 4, decay: 0.5)
        for i in 0..<20 { small.add(item: i, of: model, for: 1) }
        #expect(small.profile(of: 1).count == 4)
        let recent = Set((17..<20).flatMap { i in (0..<3).map { model.itemTokens[i * model.rowsPerItem + $0] } })
        let top = small.profile(of: 1).sorted { $0.weight > $1.weight }.prefix(2).map(\.token)
        #expect(top.allSatisfy(recent.contains), "top \(top), recent \(recent)")
    }

    @Test("the catalog grows (new items, new categories) without moving existing rows")
    func sizes() {
        let model = tinyPoly(.plain)
        #expect(model.itemCount == 20)
        #expect(model.tokens.rows == 12 + 3)
        // Growing the catalog adds items (and categories) without touching existing rows.
        let row = Array(UnsafeBufferPointer(start: model.tokens.row(3), count: 8))
        model.updateCatalog(tokens: (0..<22 * 3).map { UInt32($0 % 12) }, categories: (0..<22).map { UInt32($0 % 4) }, categoryCount: 4)
        #expect(model.itemCount == 22 && model.tokens.rows == 16)
        #expect(Array(UnsafeBufferPointer(start: model.tokens.row(3), count: 8)) == row)
    }

    @Test("learns from content alone: ranks items it never trained on well above chance, and its summary names the user's tokens")
    func coldStart() throws {
        let scenario = try Scenario.decode("""
        {"name": "poly", "seed": 4,
         "population": {"users": 500, "history": {"median": 60, "max": 200}},
         "catalog": {"items": 1000, "topics": 10, "topCategories": 4, "subcategories": 3, "vocabulary": 600, "arrivalsPerTick": 0},
         "arms": [{"name": "a", "share": 1, "candidates": 10}]}
        """)
        let world = Population(scenario, threads: 1)
        let index = world.catalog.topicIndex()
        var s = PolyModelSettings()
        s.dim = 32
        s.adam = AdamSettings(learningRate: 3e-3)
        let c = scenario.catalog
        let model = PolyModel(s, vocabulary: c.vocabulary, tokensPerItem: c.tokensPerItem, categoryCount: c.topCategories * c.subcategories,
                              tokens: world.catalog.tokens, categories: world.catalog.subcategory.map(UInt32.init))
        // Even items train, odd items are never seen in training (not even as negatives).
        model.updateCatalog(tokens: world.catalog.tokens, categories: world.catalog.subcategory.map(UInt32.init),
                            categoryCount: c.topCategories * c.subcategories, live: (0..<1000).filter { $0 % 2 == 0 }.map(ItemID.init))
        var rng = RandomStream(seed: 5, 1)
        func draw(_ user: UserID, odd: Bool) -> ItemID {
            let interests = world.interests(of: user).filter(\.active)
            for _ in 0..<50 {
                let item = rng.nextDouble() < 0.5
                    ? index.draw(topic: interests[rng.nextInt(below: interests.count)].topic, &rng)!
                    : ItemID(rng.nextInt(below: 1000))
                if (item % 2 == 1) == odd { return item }
            }
            return odd ? 1 : 0
        }
        for _ in 0..<60 {
            var slates: [PolySlate] = [], items: [ItemID] = []
            for _ in 0..<128 {
                let user = UserID(rng.nextInt(below: 500))
                let shown = (0..<6).map { _ in draw(user, odd: false) }
                let clicked = shown.filter { rng.nextFloat() < world.trueClickProbability(user: user, item: $0) }
                slates.append(PolySlate(user: user, start: items.count, clicked: clicked.count, shown: shown.count))
                items += clicked + shown.filter { !clicked.contains($0) }
            }
            items.withUnsafeBufferPointer { _ = model.train(slates[...], items: $0, histories: world.histories) }
        }
        var scores: [Float] = [], labels: [Bool] = []
        for _ in 0..<3000 {
            let user = UserID(rng.nextInt(below: 500)), item = draw(user, odd: true)
            var out: Float = 0
            [item].withUnsafeBufferPointer { model.logits(history: world.histories.history(of: user), candidates: $0, into: &out) }
            scores.append(out)
            labels.append(rng.nextFloat() < world.trueClickProbability(user: user, item: item))
        }
        let auc = BinaryMetrics.auc(scores: scores, labels: labels)
        #expect(auc > 0.6, "AUC on never-trained items \(auc)")

        // The summary's top tokens overlap the tokens of the user's history.
        var overlap = 0.0
        for user in UserID(0)..<50 {
            let history = world.histories.history(of: user)
            let own = Set(history.suffix(60).flatMap { e in world.catalog.tokens[Int(e.item) * c.tokensPerItem..<(Int(e.item) + 1) * c.tokensPerItem] })
            let named = model.summary(history: history, count: 10)
            overlap += Double(named.filter(own.contains).count) / 10
        }
        // By chance: the share of the vocabulary a 60-item history holds (at most 60 x 12
        // of 600 tokens, far less with repeats); measured: see the expectation's message.
        let chance = Double(Set(world.histories.history(of: 0).suffix(60).flatMap { e in
            world.catalog.tokens[Int(e.item) * c.tokensPerItem..<(Int(e.item) + 1) * c.tokensPerItem] }).count) / 600
        #expect(overlap / 50 > chance + 0.2, "summary overlap \(overlap / 50), chance about \(chance)")
    }
}
