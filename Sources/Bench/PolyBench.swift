import Allocator
import Foundation
import Models
import RecCore

/// `recstream bench poly`: the poly-attention model (m = 32 user codes, n = 4 content
/// codes, d = 64, 15 sessions of 4 clicks, r = 4 negatives) on a synthetic catalog:
/// training samples (clicks, each with its r negatives) per second, and scoring
/// candidates per second for one user against 100 candidates, with each candidate's
/// content embeddings cached (as within a tick) and re-encoded (the first request after a
/// training step). Beside it, in the same run, DARE scoring the same requests in
/// cold-start.json's configuration (three fields of 16, L = 100, K = 20).
public struct PolyBench: Sendable {
    public var items = 100_000
    public var vocabulary = 5000
    public var tokensPerItem = 12
    public var categories = 24
    public var users = 2000
    public var dim = 64
    public var userCodes = 32
    public var contentCodes = 4
    public var slates = 32
    public var shown = 10
    public var clicks = 2
    public var steps = 20
    public var warmup = 3
    public var scoreCalls = 300
    public init() {}

    public func run(progress: (String) -> Void = { _ in }) -> BenchReport {
        var rng = RandomStream(seed: 12, 1)
        let tokens = (0..<items * tokensPerItem).map { _ in UInt32(rng.nextInt(below: vocabulary)) }
        let categoryOf = (0..<items).map { _ in UInt32(rng.nextInt(below: categories)) }
        var s = PolyModelSettings()
        s.dim = dim
        s.userCodes = userCodes
        s.contentCodes = contentCodes
        s.seed = 5
        let before = AllocatorSnapshot()
        let model = PolyModel(s, vocabulary: vocabulary, tokensPerItem: tokensPerItem, categoryCount: categories, tokens: tokens, categories: categoryOf)
        let modelBytes = before.grown
        let histories = UserHistories(users: users, cap: s.historyLength)
        for u in 0..<users {
            for t in 0..<s.historyLength { histories.append(HistoryEntry(item: ItemID(rng.nextInt(below: items)), tick: Int32(t)), for: UserID(u)) }
        }
        var results: [BenchResult] = []

        // Training: `slates` slates per step, `clicks` of `shown` clicked in each.
        progress("poly: training")
        var stepSeconds: [Double] = []
        var batch: [PolySlate] = [], shownItems: [ItemID] = []
        for step in 0..<(steps + warmup) {
            batch.removeAll(keepingCapacity: true)
            shownItems.removeAll(keepingCapacity: true)
            for _ in 0..<slates {
                batch.append(PolySlate(user: UserID(rng.nextInt(below: users)), start: shownItems.count, clicked: clicks, shown: shown))
                for _ in 0..<shown { shownItems.append(ItemID(rng.nextInt(below: items))) }
            }
            let start = ContinuousClock.now
            shownItems.withUnsafeBufferPointer { _ = model.train(batch[...], items: $0, histories: histories) }
            if step >= warmup { stepSeconds.append((ContinuousClock.now - start).seconds) }
        }
        results.append(BenchResult(name: "poly.train", unit: "samples/s", samples: stepSeconds.map { Double(slates * clicks) / $0 }))

        // Scoring: re-encoded candidates (cache cold), then the same requests again (warm).
        progress("poly: scoring")
        let requests = (0..<scoreCalls).map { call in
            (UserID(call % users), (0..<100).map { _ in ItemID(rng.nextInt(below: items)) })
        }
        var scores = [Float](repeating: 0, count: 100)
        func score(_ m: PolyModel) -> [Double] {
            requests.map { user, candidates in
                let start = ContinuousClock.now
                candidates.withUnsafeBufferPointer { c in
                    scores.withUnsafeMutableBufferPointer { m.score(history: histories.history(of: user), candidates: c, into: $0.baseAddress!) }
                }
                return 100 / (ContinuousClock.now - start).seconds
            }
        }
        let cachedBefore = AllocatorSnapshot()
        let cold = score(model)
        let cacheBytes = cachedBefore.grown
        let warm = score(model)

        // DARE, cold-start.json's configuration, on the same requests.
        var d = RankingModelSettings()
        d.attentionDim = 16
        d.representationDim = 16
        d.topK = 20
        d.maxHistory = 100
        let dare = RankingModel(d, items: items, categories: categories)
        dare.updateCatalog(categories: categoryOf, categoryCount: categories)
        let dareHistories = UserHistories(users: users, cap: 100, initial: histories)
        let dareRates = requests.map { user, candidates in
            let start = ContinuousClock.now
            candidates.withUnsafeBufferPointer { c in
                scores.withUnsafeMutableBufferPointer { dare.score(history: dareHistories.history(of: user), candidates: c, into: $0.baseAddress!) }
            }
            return 100 / (ContinuousClock.now - start).seconds
        }
        results.append(BenchResult(name: "poly.score (content embeddings re-encoded) vs DARE", unit: "candidates/s", samples: cold, baselineSamples: dareRates))
        results.append(BenchResult(name: "poly.score (content embeddings cached) vs DARE", unit: "candidates/s", samples: warm, baselineSamples: dareRates))
        results.append(BenchResult(name: "poly parameters with Adam state", unit: "MB", samples: [Double(modelBytes) / 1e6]))
        results.append(BenchResult(name: "poly content-embedding cache per item scored", unit: "bytes",
                                   samples: [Double(cacheBytes) / Double(Set(requests.flatMap(\.1)).count)]))
        withExtendedLifetime(model) {}
        return BenchReport(bench: "poly", results: results, notes: [
            "Poly: d=\(dim), m=\(userCodes), n=\(contentCodes), \(s.sessions) sessions of \(s.sessionSize), r=\(s.negatives) negatives, summary over the top \(s.summaryTokens) TF-IDF tokens with \(s.summaryNegatives) sampled negatives; \(items) items of \(tokensPerItem) tokens from \(vocabulary), learned matching.",
            "Training: \(slates) slates of \(shown) shown with \(clicks) clicks per step (a sample is one click with its negatives), 1 thread, median of \(steps) steps after \(warmup).",
            "Scoring: one user against 100 random candidates per call, 1 thread, median of \(scoreCalls) calls; the user is encoded once per call. Baseline: DARE (3 fields of 16, L=100, K=20) on the same calls.",
        ])
    }
}

/// Bytes the program holds (allocated, and mapped for tables) beyond this snapshot's.
struct AllocatorSnapshot {
    let held = AllocatorStats.current().total
    var grown: Int { AllocatorStats.current().total - held }
}
