import Dispatch
import Experiment
import Foundation
import Models
import Population
import RecCore
import Scenario

/// `recstream offline`: the DARE paper's kind of table. Data is logged from the simulated
/// world under a logging policy (a share of targets from the user's interests, the rest
/// uniform; labels drawn from the true click probability), every sequence-model arm of
/// the scenario is trained on it at each embedding dimension, and the test split is
/// scored: AUC, GAUC (per-user AUC, weighted by the user's samples), log loss, and the
/// search stage's retrieval NDCG@K against the world's true relevance of each behaviour
/// to the target. Each cell is a mean over `seeds` worlds with a 95% t interval.
public struct OfflineExperiment {
    public let scenario: Scenario
    public init(scenario: Scenario) { self.scenario = scenario }

    /// The models compared: the scenario's arms that rank with DARE or TWIN.
    public var models: [(name: String, settings: SequenceModelSettings)] {
        scenario.arms.compactMap { arm in
            if case .sequence(let m) = arm.ranking { return (arm.name, m) }
            return nil
        }
    }

    public struct Cell: Sendable {
        public var model: String
        public var dim: Int
        public var auc: [Double] = []
        public var gauc: [Double] = []
        public var logLoss: [Double] = []
        public var ndcg: [Double] = []
    }

    public func run(progress: (String) -> Void = { _ in }) throws -> [Cell] {
        let o = scenario.offline
        guard !models.isEmpty else {
            throw RunError("\(scenario.name): no arm ranks with a sequence model (dare, twin, twin-proj or din); nothing to compare offline")
        }
        var cells: [Cell] = []
        for (name, _) in models { for dim in o.dims { cells.append(Cell(model: name, dim: dim)) } }
        for seedIndex in 0..<o.seeds {
            var s = scenario
            s.seed = scenario.seed &+ UInt64(seedIndex)
            progress("offline: world \(seedIndex + 1)/\(o.seeds)")
            let world = Population(s)
            let (train, test) = logged(world, seed: s.seed)
            // Every (model, dim) cell of this world is independent: train them two at a time.
            let jobs = cells.indices.map { $0 }
            let results = UnsafeMutableBufferPointer<(Double, Double, Double, Double)>.allocate(capacity: jobs.count)
            defer { results.deallocate() }
            let work = OfflineWork(world: world, train: train, test: test, results: results)
            let specs = jobs.map { i in (models.first { $0.name == cells[i].model }!.settings, cells[i].dim) }
            let worldSeed = s.seed
            DispatchQueue.concurrentPerform(iterations: jobs.count) { job in
                work.results[job] = Self.evaluate(specs[job].0, dim: specs[job].1, seed: worldSeed, epochs: o.epochs, work)
            }
            for (i, r) in results.enumerated() {
                cells[i].auc.append(r.0)
                cells[i].gauc.append(r.1)
                cells[i].logLoss.append(r.2)
                cells[i].ndcg.append(r.3)
            }
        }
        return cells
    }

    /// The logged samples of one world: train first, then test.
    func logged(_ world: Population, seed: UInt64) -> ([LabeledSample], [LabeledSample]) {
        let o = scenario.offline
        let index = world.catalog.topicIndex()
        var rng = RandomStream(seed: seed, 77, 1)
        var samples: [LabeledSample] = []
        for _ in 0..<(o.trainSamples + o.testSamples) {
            let user = UserID(rng.nextInt(below: world.userCount))
            var target = world.catalog.liveItems[rng.nextInt(below: world.catalog.liveItems.count)]
            if rng.nextDouble() < o.relevantShare {
                let interests = world.interests(of: user).filter(\.active)
                target = index.draw(topic: interests[rng.nextInt(below: interests.count)].topic, &rng) ?? target
            }
            let p = world.trueClickProbability(user: user, item: target)
            samples.append(LabeledSample(user: user, target: target, label: rng.nextFloat() < p ? 1 : 0))
        }
        return (Array(samples[..<o.trainSamples]), Array(samples[o.trainSamples...]))
    }

    static func evaluate(_ m: SequenceModelSettings, dim: Int, seed: UInt64, epochs: Int, _ w: OfflineWork) -> (Double, Double, Double, Double) {
        let world = w.world
        var settings = RankingModelSettings()
        settings.design = EmbeddingDesign(rawValue: m.design) ?? .dare
        settings.attentionDim = dim
        settings.representationDim = dim
        settings.topK = m.topK
        settings.maxHistory = m.maxHistory
        settings.adam = AdamSettings(learningRate: Float(m.learningRate))
        settings.seed = seed
        let categories = world.catalog.settings.topCategories * world.catalog.settings.subcategories
        let model = RankingModel(settings, items: world.catalog.count, categories: categories)
        model.updateCatalog(categories: world.catalog.subcategory.map(UInt32.init), categoryCount: categories)
        for _ in 0..<epochs {
            for start in stride(from: 0, to: w.train.count, by: m.batchSize) {
                model.train(w.train[start..<min(start + m.batchSize, w.train.count)], histories: world.histories)
            }
        }
        var scores: [Float] = [], labels: [Bool] = []
        var byUser: [UserID: (scores: [Float], labels: [Bool])] = [:]
        var ndcgTotal = 0.0, ndcgCount = 0
        for sample in w.test {
            let history = world.histories.history(of: sample.user)
            let p = model.score(history: history, target: sample.target)
            scores.append(p)
            labels.append(sample.label == 1)
            byUser[sample.user, default: ([], [])].scores.append(p)
            byUser[sample.user, default: ([], [])].labels.append(sample.label == 1)
            // Retrieval NDCG@K of the search stage against the true relevance.
            let window = max(0, history.count - m.maxHistory)..<history.count
            guard !window.isEmpty else { continue }
            let truth = window.map { Double(world.relevance(of: history[$0].item, to: sample.target)) }
            let ideal = truth.sorted(by: >).prefix(m.topK)
            let idcg = ideal.enumerated().reduce(0.0) { $0 + $1.element / log2(Double($1.offset) + 2) }
            guard idcg > 0 else { continue }
            let kept = model.retrieve(history: history, target: sample.target)
            let dcg = kept.enumerated().reduce(0.0) { $0 + truth[$1.element.position - window.lowerBound] / log2(Double($1.offset) + 2) }
            ndcgTotal += dcg / idcg
            ndcgCount += 1
        }
        // GAUC: per-user AUC over users with both outcomes, weighted by their samples.
        var gaucSum = 0.0, gaucWeight = 0.0
        for (_, u) in byUser.sorted(by: { $0.key < $1.key }) {
            let auc = BinaryMetrics.auc(scores: u.scores, labels: u.labels)
            if !auc.isNaN {
                gaucSum += auc * Double(u.scores.count)
                gaucWeight += Double(u.scores.count)
            }
        }
        return (BinaryMetrics.auc(scores: scores, labels: labels), gaucWeight > 0 ? gaucSum / gaucWeight : .nan,
                BinaryMetrics.logLoss(probabilities: scores, labels: labels), ndcgCount > 0 ? ndcgTotal / Double(ndcgCount) : .nan)
    }

    /// The table, one row per model and dimension: mean ± 95% t interval over seeds.
    public static func table(_ cells: [Cell], seeds: Int) -> String {
        var rows = [["model", "dim", "AUC", "GAUC", "logloss", "retrieval NDCG"]]
        for c in cells {
            rows.append([c.model, "\(c.dim)", interval(c.auc), interval(c.gauc), interval(c.logLoss), interval(c.ndcg)])
        }
        var out = alignedTable(rows)
        out += "\nMean over \(seeds) world(s) ± half-width of a 95% t interval. Retrieval NDCG: the search stage's kept behaviours, in its order, against the true relevance of each behaviour to the target.\n"
        return out
    }

    public static func json(_ cells: [Cell], scenario: Scenario) -> JSONValue {
        func stat(_ xs: [Double]) -> JSONValue {
            let (mean, half) = meanAndHalfWidth(xs)
            return ["mean": .number(mean), "halfWidth95": .number(half), "values": .array(xs.map { .number($0) })]
        }
        return [
            "scenario": .string(scenario.name), "seed": .integer(Int64(bitPattern: scenario.seed)),
            "seeds": .integer(Int64(scenario.offline.seeds)),
            "rows": .array(cells.map { c in
                ["model": .string(c.model), "dim": .integer(Int64(c.dim)), "auc": stat(c.auc), "gauc": stat(c.gauc),
                 "logLoss": stat(c.logLoss), "retrievalNDCG": stat(c.ndcg)]
            }),
        ]
    }

    static func interval(_ xs: [Double]) -> String {
        let (mean, half) = meanAndHalfWidth(xs)
        return half.isNaN ? String(format: "%.4f", mean) : String(format: "%.4f ± %.4f", mean, half)
    }

    /// Mean and the half-width of a 95% t interval (NaN for one value).
    static func meanAndHalfWidth(_ xs: [Double]) -> (Double, Double) {
        let n = xs.count
        let mean = xs.reduce(0, +) / Double(max(n, 1))
        guard n > 1 else { return (mean, .nan) }
        let sd = (xs.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(n - 1)).squareRoot()
        return (mean, StudentT.quantile(0.975, df: Double(n - 1)) * sd / Double(n).squareRoot())
    }
}

/// What the parallel evaluations share. `@unchecked Sendable`: the world and the samples
/// are only read, and job `i` writes only `results[i]`.
struct OfflineWork: @unchecked Sendable {
    let world: Population
    let train: [LabeledSample]
    let test: [LabeledSample]
    let results: UnsafeMutableBufferPointer<(Double, Double, Double, Double)>
}
