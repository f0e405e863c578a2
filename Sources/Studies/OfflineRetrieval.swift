import Dispatch
import Foundation
import Models
import Population
import RecCore
import RecStream
import Scenario
import Server
import Trainer

/// The offline retrieval check (issue 6): each tower arm of the scenario (two-tower,
/// SPARC) is trained on clicks logged from the world, then asked for each test user's
/// candidates; Recall@K is the share of the oracle's top K items (by the true click
/// probability) among the retrieved top K, and NDCG@K weighs the retrieved list by the
/// true click probabilities against the oracle's order. K = 50, 100, 200; a mean over
/// `offline.seeds` worlds with a 95% t interval.
public struct OfflineRetrieval {
    public let scenario: Scenario
    public static let ks = [50, 100, 200]
    public var testUsers = 300
    public init(scenario: Scenario) { self.scenario = scenario }

    public var arms: [(name: String, retrieval: TowerRetrieval, settings: ArmSettings)] {
        scenario.arms.compactMap { arm in
            if case .towers(let t) = arm.retrieval { return (arm.name, t, arm) }
            return nil
        }
    }

    public struct Row: Sendable {
        public var arm: String
        public var k: Int
        public var recall: [Double] = []
        public var ndcg: [Double] = []
    }

    public func run(progress: (String) -> Void = { _ in }) -> [Row] {
        let o = scenario.offline
        var rows: [Row] = []
        for (name, _, _) in arms { for k in Self.ks { rows.append(Row(arm: name, k: k)) } }
        for seedIndex in 0..<o.seeds {
            var s = scenario
            s.seed = scenario.seed &+ UInt64(seedIndex)
            progress("offline retrieval: world \(seedIndex + 1)/\(o.seeds)")
            let world = Population(s)
            let (train, _) = OfflineExperiment(scenario: s).logged(world, seed: s.seed)
            var rng = RandomStream(seed: s.seed, 78, 1)
            let users = (0..<testUsers).map { _ in UserID(rng.nextInt(below: world.userCount)) }
            // The oracle's ranking per test user: every live item by true click probability.
            let oracle = users.map { world.oracleSlate(user: $0, k: Self.ks.max()!) }
            for (a, arm) in arms.enumerated() {
                let (recall, ndcg) = evaluate(arm, world: world, train: train, users: users, oracle: oracle, seed: s.seed, epochs: o.epochs)
                for j in Self.ks.indices {
                    rows[a * Self.ks.count + j].recall.append(recall[j])
                    rows[a * Self.ks.count + j].ndcg.append(ndcg[j])
                }
            }
        }
        return rows
    }

    func evaluate(_ arm: (name: String, retrieval: TowerRetrieval, settings: ArmSettings), world: Population, train: [LabeledSample],
                  users: [UserID], oracle: [[ItemID]], seed: UInt64, epochs: Int) -> ([Double], [Double]) {
        let c = world.catalog
        let categoryCount = c.settings.topCategories * c.settings.subcategories
        let learner = TowerLearner(arm.retrieval, users: world.userCount, histories: world.histories,
                                   categories: c.subcategory.map(UInt32.init), categoryCount: categoryCount, tokens: c.tokens,
                                   tokensPerItem: c.settings.tokensPerItem, vocabulary: c.settings.vocabulary, live: c.alive,
                                   userFeatures: (0..<world.userCount).map { world.features(of: UserID($0)) }, seed: seed)
        // Logged impressions as feedback: one slate per sample, the click when labelled 1.
        for _ in 0..<epochs {
            var feedback: [Feedback] = []
            for (i, sample) in train.enumerated() {
                let header = RecordHeader(arm: 0, tick: 0, user: sample.user, sequence: UInt32(i))
                feedback.append(Feedback(header, event: .impression, position: 0, item: sample.target, shownTick: 0))
                if sample.label == 1 { feedback.append(Feedback(header, event: .click, position: 0, item: sample.target, shownTick: 0, viewSeconds: 1)) }
            }
            feedback.sort { ($0.header.user, $0.header.sequence, $0.event.rawValue) < ($1.header.user, $1.header.sequence, $1.event.rawValue) }
            learner.learn(feedback[...])
            learner.endTick(live: c.alive)
        }
        // Retrieve as many as the largest K, whatever the arm hands its ranker online.
        var settings = arm.settings
        settings.candidates = max(settings.candidates, Self.ks.max()!)
        var server = ArmServer(settings: settings, armIndex: 0, catalogSize: c.count, seed: seed)
        server.updateCatalog(live: c.liveItems, count: c.count)
        var recall = [Double](repeating: 0, count: Self.ks.count), ndcg = recall
        for (u, user) in users.enumerated() {
            let retrieved = server.retrieveCandidates(for: user, sequence: 0, towers: learner.towers, users: learner.users)
            // Discounted gains once per list; each K reads a prefix of the running sums.
            let truth = oracle[u]
            func discounted(_ list: ArraySlice<ItemID>) -> [Double] {
                var sum = 0.0
                return list.enumerated().map { r, item in
                    sum += Double(world.trueClickProbability(user: user, item: item)) / log2(Double(r) + 2)
                    return sum
                }
            }
            let dcg = discounted(retrieved.prefix(Self.ks.max()!)), idcg = discounted(truth[...])
            let rankInTruth = Dictionary(uniqueKeysWithValues: truth.enumerated().map { ($1, $0) })
            for (j, k) in Self.ks.enumerated() {
                let top = retrieved.prefix(k)
                recall[j] += Double(top.filter { (rankInTruth[$0] ?? k) < k }.count) / Double(k)
                let ideal = idcg.isEmpty ? 0 : idcg[min(k, idcg.count) - 1]
                ndcg[j] += ideal > 0 && !dcg.isEmpty ? dcg[min(k, dcg.count) - 1] / ideal : 0
            }
        }
        return (recall.map { $0 / Double(users.count) }, ndcg.map { $0 / Double(users.count) })
    }

    public static func table(_ rows: [Row], seeds: Int) -> String {
        var lines = [["arm", "K", "Recall@K", "NDCG@K"]]
        for r in rows {
            lines.append([r.arm, "\(r.k)", OfflineExperiment.interval(r.recall), OfflineExperiment.interval(r.ndcg)])
        }
        var out = alignedTable(lines)
        out += "\nMean over \(seeds) world(s) ± half-width of a 95% t interval. Recall@K: share of the oracle's top K (true click probability over the live catalog) among the retrieved top K; NDCG@K: the retrieved order weighed by true click probabilities against the oracle's.\n"
        return out
    }

    public static func json(_ rows: [Row]) -> JSONValue {
        func stat(_ xs: [Double]) -> JSONValue {
            let (mean, half) = OfflineExperiment.meanAndHalfWidth(xs)
            return ["mean": .number(mean), "halfWidth95": .number(half), "values": .array(xs.map { .number($0) })]
        }
        return .array(rows.map { ["arm": .string($0.arm), "k": .integer(Int64($0.k)), "recall": stat($0.recall), "ndcg": stat($0.ndcg)] })
    }
}
