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
        for item in 0..<30 where r.counts[0][item] >= 100 {
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
            for item in 0..<30 where r.counts[j][item] >= 200 {
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
                     towers: towers, interestUsers: users, into: &slate)
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
                     towers: towers, interestUsers: users, into: &slate)
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
                         towers: towers, interestUsers: users, into: &slate)
            counts[slate[0].item, default: 0] += 1
            logged[slate[0].item] = Double(slate[0].propensity)
            #expect(slate.allSatisfy { $0.propensity > 0 && $0.propensity <= 1 })
        }
        #expect(counts.count >= 2)
        for (item, c) in counts where c >= 100 {
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
        let young = PolyRankingSettings(dim: 8, userCodes: 2, contentCodes: 4, sessions: 2, sessionSize: 2, negatives: 4, matching: "learned",
                                        temperature: 1, summaryWeight: 1, summaryTokens: 4, learningRate: 0.01, batchSize: 8)
        let established = SequenceModelSettings(design: "dare", attentionDim: 4, representationDim: 4, topK: 2, maxHistory: 5, learningRate: 0.01, batchSize: 8)
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
        s.score(ItemStatistics(items: 30), model: dare, history: h, poly: poly, polyHistory: h, tick: 10, &rng)
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
