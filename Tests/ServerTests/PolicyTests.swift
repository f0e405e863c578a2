import Foundation
import Testing
@testable import Models
@testable import RecCore
@testable import Scenario
@testable import Server

/// A catalog of 30 items whose click-through rates the arm has learned unevenly: item i
/// shown 40 times with i / 3 clicks, so later items look better and have tighter posteriors.
func learned() -> ItemStatistics {
    var s = ItemStatistics(items: 30)
    for i in 0..<30 {
        for _ in 0..<40 { s.recordImpression(UInt32(i)) }
        for _ in 0..<(i / 3) { s.recordClick(UInt32(i)) }
    }
    return s
}

func server(_ policy: Policy, ranking: Ranking = .ctr(priorClicks: 1, priorImpressions: 20), candidates: Int = 30) -> ArmServer {
    ArmServer(settings: ArmSettings(name: "t", share: 1, candidates: candidates, retrieval: .random, ranking: ranking, policy: policy),
              armIndex: 0, catalogSize: 30, seed: 11)
}

/// Serves the same user `n` times (different sequence numbers, so different draws) and
/// returns, per position, how often each item was there and the mean logged propensity.
func serveMany(_ policy: Policy, n: Int, slate: Int = 3) -> (counts: [[Int]], propensity: [[Double]]) {
    var s = server(policy)
    let stats = learned()
    var counts = [[Int]](repeating: [Int](repeating: 0, count: 30), count: slate)
    var sums = [[Double]](repeating: [Double](repeating: 0, count: 30), count: slate)
    var out: [SlateEntry] = []
    for q in 0..<n {
        out.removeAll()
        s.serve(Request(RecordHeader(arm: 0, tick: 0, user: 5, sequence: UInt32(q)), slateSize: UInt16(slate)), statistics: stats, into: &out)
        for (j, e) in out.enumerated() {
            counts[j][Int(e.item)] += 1
            sums[j][Int(e.item)] += Double(e.propensity)
        }
    }
    let mean = zip(counts, sums).map { c, s in zip(c, s).map { $1 / Double(max($0, 1)) } }
    return (counts, mean)
}

@Suite("Slate policies and their propensities")
struct PolicyTests {
    @Test("greedy and UCB are deterministic, with propensity 1")
    func deterministic() {
        for policy in [Policy.greedy, .ucb(bonus: 1)] {
            let r = serveMany(policy, n: 20)
            for j in 0..<3 {
                #expect(r.counts[j].filter { $0 > 0 }.count == 1, "\(policy) position \(j)")
                #expect(r.propensity[j].contains(1), "\(policy)")
            }
        }
    }

    @Test("UCB's bonus puts a barely-shown item above a better-known, slightly better one")
    func ucbExplores() {
        var stats = ItemStatistics(items: 30)
        for i in 0..<28 { for _ in 0..<400 { stats.recordImpression(UInt32(i)) } }
        for _ in 0..<400 { stats.recordImpression(28) }
        for _ in 0..<40 { stats.recordClick(28) }  // smoothed CTR 41/420
        for _ in 0..<10 { stats.recordImpression(29) }
        stats.recordClick(29)  // smoothed CTR 2/30, from 10 impressions
        var greedy = server(.greedy), ucb = server(.ucb(bonus: 3))
        var a: [SlateEntry] = [], b: [SlateEntry] = []
        let request = Request(RecordHeader(arm: 0, tick: 0, user: 1, sequence: 0), slateSize: 2)
        greedy.serve(request, statistics: stats, into: &a)
        ucb.serve(request, statistics: stats, into: &b)
        #expect(a.map(\.item) == [28, 29])
        #expect(b.map(\.item) == [29, 28])
    }

    /// The logged propensity of an item at position 0 is the chance the policy puts it
    /// there: over many requests, the observed frequency.
    @Test("logged propensities at the first position match how often each item lands there",
          arguments: [Policy.epsilonGreedy(epsilon: 0.3), .softmax(temperature: 0.7), .thompson(priorClicks: 1, priorImpressions: 20, propensitySamples: 200)])
    func propensitiesMatchFrequencies(policy: Policy) {
        let n = 6000
        let r = serveMany(policy, n: n)
        let qualified = (0..<30).filter { r.counts[0][$0] >= 40 }
        // Enough items come first often enough to check (the greedy choice and a few more).
        #expect(qualified.count >= 3, "\(policy): only \(qualified.count) items came first 40 times")
        for item in qualified {
            let frequency = Double(r.counts[0][item]) / Double(n)
            let logged = r.propensity[0][item]
            // Binomial noise of the frequency (and, for Thompson, of the estimate).
            let tolerance = 4 * (frequency * (1 - frequency) / Double(n)).squareRoot() + (policy == .softmax(temperature: 0.7) || policy == .epsilonGreedy(epsilon: 0.3) ? 0.002 : 0.03)
            #expect(abs(frequency - logged) <= tolerance, "\(policy) item \(item): frequency \(frequency), logged \(logged)")
        }
    }

    @Test("Thompson's propensities at later positions are the marginal chances too")
    func thompsonLaterPositions() {
        let n = 4000
        let r = serveMany(.thompson(priorClicks: 1, priorImpressions: 20, propensitySamples: 200), n: n)
        for j in 1..<3 {
            let qualified = (0..<30).filter { r.counts[j][$0] >= 200 }
            #expect(qualified.count >= 2, "position \(j): only \(qualified.count) items there 200 times")
            for item in qualified {
                let frequency = Double(r.counts[j][item]) / Double(n)
                #expect(abs(frequency - r.propensity[j][item]) <= 4 * (frequency * (1 - frequency) / Double(n)).squareRoot() + 0.03,
                        "position \(j) item \(item): frequency \(frequency), logged \(r.propensity[j][item])")
            }
        }
    }

    @Test("Thompson ignores a random ranking's scores and logs estimated propensities")
    func thompsonOnRandomRanking() {
        var s = server(.thompson(priorClicks: 1, priorImpressions: 20, propensitySamples: 50), ranking: .random)
        var out: [SlateEntry] = []
        s.serve(Request(RecordHeader(arm: 0, tick: 0, user: 1, sequence: 0), slateSize: 5), statistics: learned(), into: &out)
        #expect(out.count == 5)
        #expect(out.allSatisfy { $0.propensity > 0 && $0.propensity <= 1 })
        #expect(out.contains { $0.propensity != 1 / Float(30 - out.firstIndex(of: $0)!) })
    }

    /// Past the first position a propensity is conditional on the items before it: among
    /// slates that put item a first, how often b comes second is b's logged propensity.
    @Test("propensities past the first position are the policy's chances given the items before",
          arguments: [Policy.epsilonGreedy(epsilon: 0.3), .softmax(temperature: 0.7)])
    func laterPositions(policy: Policy) {
        var s = server(policy)
        let stats = learned()
        var firsts = [Int](repeating: 0, count: 30)
        var pairs: [Int: (count: Int, low: Float, high: Float)] = [:]
        var out: [SlateEntry] = []
        // Inverse propensities at each position: their mean is the number of candidates
        // left there (sum over choices of p x 1/p), the identity IPS rests on, so a
        // propensity off by a few percent shows even where single frequencies cannot.
        var inverse = [[Double]](repeating: [], count: 2)
        let n = 20_000
        for q in 0..<n {
            out.removeAll()
            s.serve(Request(RecordHeader(arm: 0, tick: 0, user: 5, sequence: UInt32(q)), slateSize: 2), statistics: stats, into: &out)
            let a = Int(out[0].item), b = Int(out[1].item), p = out[1].propensity
            for j in 0..<2 { inverse[j].append(1 / Double(out[j].propensity)) }
            firsts[a] += 1
            let seen = pairs[a * 30 + b] ?? (0, p, p)
            pairs[a * 30 + b] = (seen.count + 1, min(seen.low, p), max(seen.high, p))
        }
        for j in 0..<2 {
            let mean = inverse[j].reduce(0, +) / Double(n)
            let se = (inverse[j].reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(n - 1) / Double(n)).squareRoot()
            #expect(abs(mean - Double(30 - j)) <= 4 * se, "\(policy) position \(j): mean 1/propensity \(mean) (se \(se)), candidates left \(30 - j)")
        }
        let qualified = pairs.filter { $0.value.count >= 100 }
        #expect(qualified.count >= 5, "\(policy): only \(qualified.count) pairs came 100 times")
        for (key, pair) in qualified {
            let a = key / 30, b = key % 30
            // Scores are fixed, so given the first item the second's chance is too.
            #expect(pair.high - pair.low < 1e-6, "\(policy) (\(a), \(b)): logged \(pair.low) to \(pair.high)")
            let frequency = Double(pair.count) / Double(firsts[a])
            let tolerance = 4 * (frequency * (1 - frequency) / Double(firsts[a])).squareRoot() + 0.002
            #expect(abs(frequency - Double(pair.low)) <= tolerance,
                    "\(policy) second \(b) after \(a): frequency \(frequency) of \(firsts[a]), logged \(pair.low)")
        }
    }

    @Test("with random scores every position's propensity is 1 / (candidates left), and every item as likely there",
          arguments: [Policy.greedy, .epsilonGreedy(epsilon: 0.3), .softmax(temperature: 0.7)])
    func randomRanking(policy: Policy) {
        var s = server(policy, ranking: .random)
        let stats = learned()
        var counts = [[Int]](repeating: [Int](repeating: 0, count: 30), count: 3)
        var out: [SlateEntry] = []
        let n = 9000
        for q in 0..<n {
            out.removeAll()
            s.serve(Request(RecordHeader(arm: 0, tick: 0, user: 5, sequence: UInt32(q)), slateSize: 3), statistics: stats, into: &out)
            for (j, e) in out.enumerated() {
                #expect(e.propensity == 1 / Float(30 - j), "\(policy) position \(j): \(e.propensity)")
                counts[j][Int(e.item)] += 1
            }
        }
        let expected = Double(n) / 30, sd = (expected * (1 - 1.0 / 30)).squareRoot()
        for j in 0..<3 {
            let off = (0..<30).filter { abs(Double(counts[j][$0]) - expected) > 4.5 * sd }
            #expect(off.isEmpty, "\(policy) position \(j): items \(off) at \(off.map { counts[j][$0] }) times, expected \(expected)")
        }
    }

    @Test("popularity retrieval takes the most clicked items and explores the rest of the catalog at its share")
    func popularityExplores() {
        let items = 200
        var stats = ItemStatistics(items: items)
        for i in 0..<items { for _ in 0..<i { stats.recordClick(UInt32(i)) } }  // item i has i clicks
        var s = ArmServer(settings: ArmSettings(name: "p", share: 1, candidates: 20, retrieval: .popularity(explore: 0.3), ranking: .random, policy: .greedy),
                          armIndex: 0, catalogSize: items, seed: 3)
        s.refresh(from: stats)
        let popular = Set((items - 14)..<items)  // 20 - round(20 x 0.3) = 14 from the top
        var explored = [Int](repeating: 0, count: items)
        var out: [SlateEntry] = []
        let n = 3000
        for q in 0..<n {
            out.removeAll()
            s.serve(Request(RecordHeader(arm: 0, tick: 0, user: UInt32(q % 7), sequence: UInt32(q)), slateSize: 20), statistics: stats, into: &out)
            let shown = out.map { Int($0.item) }
            #expect(Set(shown).count == 20 && shown.filter(popular.contains).count == 14, "request \(q): \(shown)")
            for item in shown where !popular.contains(item) { explored[item] += 1 }
        }
        // The 6 explored slots are uniform over the other 186 items.
        let expected = Double(n) * 6 / 186, sd = (expected * (1 - 6.0 / 186)).squareRoot()
        let others = (0..<(items - 14))
        #expect(others.allSatisfy { explored[$0] > 0 }, "some items were never explored")
        let off = others.filter { abs(Double(explored[$0]) - expected) > 4.5 * sd }
        #expect(off.isEmpty, "explored \(off.map { explored[$0] }) times, expected \(expected)")
    }

    @Test("a retired item is never served, whatever the retrieval", arguments: [Retrieval.random, .popularity(explore: 0.3)])
    func retiredNeverServed(retrieval: Retrieval) {
        let items = 60
        var stats = ItemStatistics(items: items)
        for i in 0..<items { for _ in 0..<(i + 1) { stats.recordClick(UInt32(i)) } }
        var s = ArmServer(settings: ArmSettings(name: "r", share: 1, candidates: 20, retrieval: retrieval, ranking: .random, policy: .greedy),
                          armIndex: 0, catalogSize: items, seed: 4)
        s.refresh(from: stats)
        // Retire the most clicked items (the ones popularity wants most) and a spread of
        // others, after the popular list was built.
        let retired = Set([59, 58, 57, 40, 20, 3, 0].map(ItemID.init))
        s.updateCatalog(live: (0..<ItemID(items)).filter { !retired.contains($0) }, count: items)
        var out: [SlateEntry] = []
        var shown = Set<ItemID>()
        for q in 0..<2000 {
            out.removeAll()
            s.serve(Request(RecordHeader(arm: 0, tick: 1, user: UInt32(q % 11), sequence: UInt32(q)), slateSize: 10), statistics: stats, into: &out)
            #expect(out.count == 10)
            shown.formUnion(out.map(\.item))
        }
        #expect(shown.isDisjoint(with: retired), "served retired items \(shown.intersection(retired).sorted())")
        #expect(shown.count > 20, "only \(shown.count) items served")
        // And after a refresh from statistics that still count them.
        s.refresh(from: stats)
        out.removeAll()
        s.serve(Request(RecordHeader(arm: 0, tick: 2, user: 1, sequence: 0), slateSize: 10), statistics: stats, into: &out)
        #expect(Set(out.map(\.item)).isDisjoint(with: retired))
    }
}

@Suite("Gamma and Beta draws")
struct DistributionTests {
    @Test("Beta(a, b) and Gamma(k) draws have the right mean and variance", arguments: [(2.0, 5.0), (0.5, 0.5), (30.0, 200.0)])
    func beta(a: Double, b: Double) {
        var rng = RandomStream(seed: 3, .policy, 1, 2)
        let n = 200_000
        var sum = 0.0, squares = 0.0
        for _ in 0..<n {
            let x = rng.nextBeta(a, b)
            sum += x
            squares += x * x
        }
        let mean = sum / Double(n), variance = squares / Double(n) - mean * mean
        let m = a / (a + b), v = a * b / ((a + b) * (a + b) * (a + b + 1))
        #expect(abs(mean - m) < 5 * (v / Double(n)).squareRoot())
        #expect(abs(variance - v) / v < 0.03)
    }
}

@Suite("Off-policy logging")
struct OffPolicyLoggingTests {
    @Test("a policy evaluated on its own log has weight 1: target probabilities agree with logged propensities",
          arguments: [Policy.epsilonGreedy(epsilon: 0.3), .softmax(temperature: 0.7)])
    func selfConsistent(policy: Policy) {
        var s = server(policy)
        s.offPolicyTargets = [policy, .greedy]
        let stats = learned()
        var out: [SlateEntry] = []
        for q in 0..<300 {
            out.removeAll()
            s.serve(Request(RecordHeader(arm: 0, tick: 0, user: 2, sequence: UInt32(q)), slateSize: 3), statistics: stats, into: &out)
        }
        #expect(s.offPolicyLog.count == 300)
        for r in s.offPolicyLog {
            #expect(abs(r.targetProbability[0] / r.loggingPropensity - 1) < 1e-6)
            #expect(r.targetProbability[1] == 0 || r.targetProbability[1] == 1)
            #expect(r.predictedClick > 0 && r.predictedClick < 1)
            #expect(r.targetProbability[2].isNaN)  // no third target
        }
        // Greedy always takes the best-scored item, 27 (27-29 tie on 9 clicks; the lowest
        // id wins), so its direct-method term is that item's predicted click.
        let q27 = Double(stats.smoothedCTR(27, priorClicks: 1, priorImpressions: 20))
        #expect(s.offPolicyLog.allSatisfy { $0.targetPredictedClick[1] == q27 })
        #expect(s.offPolicyLog.contains { $0.targetProbability[1] == 1 } && s.offPolicyLog.contains { $0.targetProbability[1] == 0 })
        s.clearOffPolicyLog()
        #expect(s.offPolicyLog.isEmpty)
    }
}

/// A population-free history source: every user has clicked items 0-4.
struct FixedHistories: HistorySource {
    let entries = (0..<5).map { HistoryEntry(item: ItemID($0), tick: -1) }
    func history(of user: UserID) -> UnsafeBufferPointer<HistoryEntry> {
        entries.withUnsafeBufferPointer { $0 }
    }
}

@Suite("Tower retrieval in the server")
struct TowerRetrievalTests {
    func setup(serving: SparcServing?, policy: Policy = .greedy) -> (ArmServer, InterestTowers, InterestUsers) {
        var t = TowerSettings()
        t.dim = 8
        t.codes = serving == nil ? [] : [16, 4]
        let items = 400
        let towers = InterestTowers(t, categories: (0..<items).map { UInt32($0 % 5) }, tokens: (0..<(items * 2)).map { UInt32($0 % 50) },
                                    tokensPerItem: 2, vocabulary: 50, categoryCount: 5)
        let live = [Bool](repeating: true, count: items)
        towers.refresh(live: live)
        if let q = towers.quantizer {
            towers.itemVectors.withUnsafeBufferPointer { q.update($0.baseAddress!, count: items) }
            towers.refresh(live: live)
        }
        let users = InterestUsers(users: 3, length: 10, codes: t.codes.first ?? 0, histories: FixedHistories())
        let retrieval = TowerRetrieval(dim: 8, historyLength: 10, learningRate: 0.01, temperature: 0.1, batchSize: 16,
                                       codes: t.codes, serving: serving)
        let server = ArmServer(settings: ArmSettings(name: "s", share: 1, candidates: 60, retrieval: .towers(retrieval), ranking: .ctr(priorClicks: 1, priorImpressions: 20),
                                                     policy: policy), armIndex: 0, catalogSize: items, seed: 5)
        return (server, towers, users)
    }

    @Test("two-tower retrieval takes the items that best match the user vector")
    func twoTower() {
        var (server, towers, users) = setup(serving: nil)
        var slate: [SlateEntry] = []
        server.serve(Request(RecordHeader(arm: 0, tick: 0, user: 1, sequence: 0), slateSize: 5), statistics: ItemStatistics(items: 400),
                     models: ArmModels(settings: server.settings, towers: (towers, users)), into: &slate)
        #expect(server.candidates.count == 60 && Set(server.candidates).count == 60)
        var u = [Float](repeating: 0, count: 8)
        u.withUnsafeMutableBufferPointer { towers.servingUserVector(users.recent(1), into: $0.baseAddress!) }
        let best = u.withUnsafeBufferPointer { towers.retrieve($0.baseAddress!, live: (0..<400).map { ItemID($0) }, count: 60) }
        #expect(Set(server.candidates) == Set(best.map(\.item)))
        #expect(server.interestLog.isEmpty)
    }

    @Test("SPARC retrieves for its top interests and explores others, logging where each shown item came from")
    func sparc() {
        let serving = SparcServing(interests: 3, explore: 2, exploreTemperature: 2, exploreQuota: 5, minQuota: 5, conditioned: false,
                                   probes: 0, smoothing: 0.1, mix: 0.7, discoveryBelow: 0.05)
        var (server, towers, users) = setup(serving: serving)
        var slate: [SlateEntry] = []
        server.serve(Request(RecordHeader(arm: 0, tick: 0, user: 1, sequence: 0), slateSize: 10), statistics: ItemStatistics(items: 400),
                     models: ArmModels(settings: server.settings, towers: (towers, users)), into: &slate)
        #expect(server.candidates.count == 60 && Set(server.candidates).count == 60)
        let fromTowers = server.sources.filter { $0.interest >= 0 }
        let interests = Set(fromTowers.map(\.interest))
        #expect(interests.count <= 5 && interests.count >= 3)
        // Every candidate an interest found is in that interest's bucket.
        for s in fromTowers { #expect(towers.index.codeOf[Int(s.item)] == s.interest) }
        // Explored interests are none of the codes the user clicked lately.
        let recentCodes = Set(users.recent(1).map { towers.index.codeOf[Int($0)] })
        for s in fromTowers where s.explored { #expect(!recentCodes.contains(s.interest)) }
        #expect(server.interestLog.count == 10)
        #expect(server.interestLog.allSatisfy { $0.user == 1 && $0.sequence == 0 })
    }

    @Test("interest sampling logs the chance of the interest it drew, which is how often its item comes first")
    func interestSampling() {
        let serving = SparcServing(interests: 3, explore: 1, exploreTemperature: 2, exploreQuota: 5, minQuota: 5, conditioned: false,
                                   probes: 0, smoothing: 0.1, mix: 0.7, discoveryBelow: 0.01)
        var (server, towers, users) = setup(serving: serving, policy: .interestSampling(temperature: 0.5))
        var counts: [ItemID: Int] = [:], logged: [ItemID: Double] = [:]
        var slate: [SlateEntry] = []
        let n = 3000
        for q in 0..<n {
            slate.removeAll()
            // The same user and state each time: only the draws differ (by sequence).
            server.serve(Request(RecordHeader(arm: 0, tick: 0, user: 1, sequence: UInt32(q)), slateSize: 4), statistics: ItemStatistics(items: 400),
                         models: ArmModels(settings: server.settings, towers: (towers, users)), into: &slate)
            counts[slate[0].item, default: 0] += 1
            logged[slate[0].item] = Double(slate[0].propensity)
            #expect(slate.allSatisfy { $0.propensity > 0 && $0.propensity <= 1 })
        }
        let qualified = counts.filter { $0.value >= 100 }
        #expect(qualified.count >= 2, "only \(qualified.count) items came first 100 times")
        for (item, c) in qualified {
            let frequency = Double(c) / Double(n)
            #expect(abs(frequency - logged[item]!) <= 4 * (frequency * (1 - frequency) / Double(n)).squareRoot() + 0.005,
                    "item \(item): frequency \(frequency), logged \(logged[item]!)")
        }
    }
}

@Suite("Blend serving")
struct BlendServingTests {
    @Test("a blend scores items younger than youngTicks with Poly and the rest with its sequence model")
    func youngItemsGoToPoly() {
        var rs = RankingModelSettings()
        rs.attentionDim = 4
        rs.representationDim = 4
        rs.topK = 2
        rs.maxHistory = 5
        let categories = (0..<30).map { UInt32($0 % 3) }
        let dare = RankingModel(rs, items: 30, categories: 3)
        dare.updateCatalog(categories: categories, categoryCount: 3)
        var ps = PolyModelSettings()
        ps.dim = 8
        ps.userCodes = 2
        ps.sessions = 2
        ps.sessionSize = 2
        let poly = PolyModel(ps, vocabulary: 10, tokensPerItem: 2, categoryCount: 3, tokens: (0..<60).map { UInt32($0 * 7 % 10) }, categories: categories)
        let histories = UserHistories(users: 1, cap: 5)
        for i in [3, 9, 14] { histories.append(HistoryEntry(item: ItemID(i), tick: 0), for: 0) }
        let young = PolyRankingSettings(dim: 8, userCodes: 2, contentCodes: 4, sessions: 2, sessionSize: 2, negatives: 4, matching: .learned,
                                        temperature: 1, summaryWeight: 1, summaryTokens: 4, learningRate: 0.01, batchSize: 8)
        let established = SequenceModelSettings(design: .dare, attentionDim: 4, representationDim: 4, topK: 2, maxHistory: 5, learningRate: 0.01, batchSize: 8)
        var s = ArmServer(settings: ArmSettings(name: "b", share: 1, candidates: 30, retrieval: .random,
                                                ranking: .blend(young: young, established: established, youngTicks: 3), policy: .greedy),
                          armIndex: 0, catalogSize: 30, seed: 1)
        // Items 25-29 arrived at tick 8 (young at tick 10), item 20 at tick 2 (no longer
        // young); the rest are the initial catalog.
        var arrived = [Int32](repeating: .min, count: 30)
        for i in 25..<30 { arrived[i] = 8 }
        arrived[20] = 2
        s.updateCatalog(live: (0..<30).map { ItemID($0) }, count: 30, arrived: arrived)
        s.candidates = (0..<30).map { ItemID($0) }
        var rng = RandomStream(seed: 1, 1)
        let h = histories.history(of: 0)
        let models = ArmModels(settings: s.settings, sequence: (dare, histories), poly: (poly, histories))
        s.score(ItemStatistics(items: 30), models.ranking, user: 0, tick: 10, &rng)
        var fromDare = [Float](repeating: 0, count: 30), fromPoly = fromDare
        s.candidates.withUnsafeBufferPointer { c in
            fromDare.withUnsafeMutableBufferPointer { dare.score(history: h, candidates: c, into: $0.baseAddress!) }
            fromPoly.withUnsafeMutableBufferPointer { poly.score(history: h, candidates: c, into: $0.baseAddress!) }
        }
        for i in 0..<30 {
            #expect(s.scores[i] == (i >= 25 ? fromPoly[i] : fromDare[i]), "item \(i)")
        }
        #expect(fromPoly[25..<30] != fromDare[25..<30])
    }
}
