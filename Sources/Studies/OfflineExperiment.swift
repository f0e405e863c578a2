import Dispatch
import Experiment
import Foundation
import Models
import Population
import RecCore
import RecStream
import Scenario
import Trainer

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

    /// A model the table compares.
    public enum Model: Sendable {
        case sequence(SequenceModelSettings)
        case poly(PolyRankingSettings)
    }

    /// The models compared: the scenario's arms that rank with DARE, TWIN, DIN or Poly (a
    /// blend is two of these, each on its own share of the items, which logged data
    /// without arrivals does not have).
    public var models: [(name: String, settings: Model)] {
        scenario.arms.compactMap { arm in
            switch arm.ranking {
            case .sequence(let m): (arm.name, .sequence(m))
            case .poly(let p): (arm.name, .poly(p))
            default: nil
            }
        }
    }

    public struct Cell: Sendable {
        public var model: String
        public var dim: Int
        public var auc: [Double] = []
        public var gauc: [Double] = []
        public var logLoss: [Double] = []
        public var ndcg: [Double] = []
        /// AUC over the test samples whose target was held out of training.
        public var coldAUC: [Double] = []
    }

    public func run(progress: (String) -> Void = { _ in }) throws -> [Cell] {
        let o = scenario.offline
        guard !models.isEmpty else {
            throw RunError("\(scenario.name): no arm ranks with a sequence model (dare, twin, twin-proj or din) or poly; nothing to compare offline")
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
            let results = UnsafeMutableBufferPointer<OfflineScores>.allocate(capacity: jobs.count)
            defer { results.deallocate() }
            let work = OfflineWork(world: world, train: train, test: test, cold: held(world), results: results)
            let specs = jobs.map { i in (models.first { $0.name == cells[i].model }!.settings, cells[i].dim) }
            let worldSeed = s.seed
            DispatchQueue.concurrentPerform(iterations: jobs.count) { job in
                switch specs[job].0 {
                case .sequence(let m): work.results[job] = Self.evaluate(m, dim: specs[job].1, seed: worldSeed, epochs: o.epochs, work)
                case .poly(let p): work.results[job] = Self.evaluate(p, dim: specs[job].1, seed: worldSeed, epochs: o.epochs, work)
                }
            }
            for (i, r) in results.enumerated() {
                cells[i].auc.append(r.auc)
                cells[i].gauc.append(r.gauc)
                cells[i].logLoss.append(r.logLoss)
                cells[i].ndcg.append(r.ndcg)
                cells[i].coldAUC.append(r.coldAUC)
            }
        }
        return cells
    }

    /// Items held out of training (`offline.coldShare` of them, by a hash of the item): the
    /// test's cold items.
    func held(_ world: Population) -> [Bool] {
        let share = scenario.offline.coldShare
        return (0..<world.catalog.count).map { share > 0 && Double(SplitMix64.mix(UInt64($0) ^ 0xC01D) >> 11) / Double(1 << 53) < share }
    }

    /// The logged samples of one world: train first, then test. No training sample has a
    /// held-out target.
    func logged(_ world: Population, seed: UInt64) -> ([LabeledSample], [LabeledSample]) {
        let o = scenario.offline
        let index = world.catalog.topicIndex()
        let cold = held(world)
        var rng = RandomStream(seed: seed, 77, 1)
        var samples: [LabeledSample] = []
        for n in 0..<(o.trainSamples + o.testSamples) {
            let user = UserID(rng.nextInt(below: world.userCount))
            var target: ItemID
            repeat {
                target = world.catalog.liveItems[rng.nextInt(below: world.catalog.liveItems.count)]
                if rng.nextDouble() < o.relevantShare {
                    let interests = world.interests(of: user).filter(\.active)
                    target = index.draw(topic: interests[rng.nextInt(below: interests.count)].topic, &rng) ?? target
                }
            } while n < o.trainSamples && cold[Int(target)]
            let p = world.trueClickProbability(user: user, item: target)
            samples.append(LabeledSample(user: user, target: target, label: rng.nextFloat() < p ? 1 : 0))
        }
        return (Array(samples[..<o.trainSamples]), Array(samples[o.trainSamples...]))
    }

    static func evaluate(_ m: SequenceModelSettings, dim: Int, seed: UInt64, epochs: Int, _ w: OfflineWork) -> OfflineScores {
        let world = w.world
        // The offline study sweeps one width for both table sets.
        var settings = RankingModelSettings(m, seed: seed)
        settings.attentionDim = dim
        settings.representationDim = dim
        let categories = world.catalog.settings.topCategories * world.catalog.settings.subcategories
        let model = RankingModel(settings, items: world.catalog.count, categories: categories)
        model.updateCatalog(categories: world.catalog.subcategory.map(UInt32.init), categoryCount: categories)
        for _ in 0..<epochs {
            for start in stride(from: 0, to: w.train.count, by: m.batchSize) {
                model.train(w.train[start..<min(start + m.batchSize, w.train.count)], histories: world.histories)
            }
        }
        var scores: [Float] = []
        var ndcgTotal = 0.0, ndcgCount = 0
        for sample in w.test {
            let history = world.histories.history(of: sample.user)
            let p = model.score(history: history, target: sample.target)
            scores.append(p)
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
        var scored = OfflineScores.measure(w.test, scores: scores, cold: w.cold)
        scored.ndcg = ndcgCount > 0 ? ndcgTotal / Double(ndcgCount) : .nan
        return scored
    }

    /// Poly at one dimension: trained with its NCE on the logged samples (each user's
    /// samples of a batch form a slate: clicks first, the others its first negatives),
    /// calibrated on its training scores, and scored on the test split. It has no search
    /// stage, so no retrieval NDCG.
    static func evaluate(_ p: PolyRankingSettings, dim: Int, seed: UInt64, epochs: Int, _ w: OfflineWork) -> OfflineScores {
        let world = w.world, c = world.catalog.settings
        var settings = p
        settings.dim = dim
        let categories = c.topCategories * c.subcategories
        let model = PolyLearner.model(settings, vocabulary: c.vocabulary, tokensPerItem: c.tokensPerItem, categoryCount: categories,
                                      tokens: world.catalog.tokens, categories: world.catalog.subcategory.map(UInt32.init), seed: seed)
        // Random negatives only from items training may see.
        model.updateCatalog(tokens: world.catalog.tokens, categories: world.catalog.subcategory.map(UInt32.init), categoryCount: categories,
                            live: world.catalog.liveItems.filter { !w.cold[Int($0)] })
        let histories = UserHistories(users: world.userCount, cap: p.sessions * p.sessionSize, initial: world.histories)
        model.profiles = TokenProfiles(users: world.userCount, histories: world.histories, model: model)
        // Batches of samples, grouped by user into slates.
        var slates: [[PolySlate]] = [], items: [[ItemID]] = []
        for start in stride(from: 0, to: w.train.count, by: p.batchSize) {
            let batch = w.train[start..<min(start + p.batchSize, w.train.count)].sorted { ($0.user, -$0.label) < ($1.user, -$1.label) }
            var s: [PolySlate] = [], shown: [ItemID] = []
            var i = 0
            while i < batch.count {
                var j = i
                while j < batch.count && batch[j].user == batch[i].user { j += 1 }
                let clicked = batch[i..<j].filter { $0.label == 1 }.count
                s.append(PolySlate(user: batch[i].user, start: shown.count, clicked: clicked, shown: j - i))
                shown += batch[i..<j].map(\.target)
                i = j
            }
            slates.append(s)
            items.append(shown)
        }
        for _ in 0..<epochs {
            for (s, shown) in zip(slates, items) { shown.withUnsafeBufferPointer { _ = model.train(s[...], items: $0, histories: histories) } }
        }
        func logits(_ samples: [LabeledSample]) -> [Float] {
            samples.map { sample in
                var out: Float = 0
                var target = sample.target  // one candidate, without an array per sample
                withUnsafePointer(to: &target) {
                    model.logits(history: histories.history(of: sample.user), candidates: UnsafeBufferPointer(start: $0, count: 1), into: &out)
                }
                return out
            }
        }
        let fit = logits(w.train), labels = w.train.map(\.label)
        for _ in 0..<2 { fit.withUnsafeBufferPointer { f in labels.withUnsafeBufferPointer { model.calibrate(logits: f, labels: $0) } } }
        return OfflineScores.measure(w.test, scores: logits(w.test).map(model.calibrated), cold: w.cold)
    }

    /// The table, one row per model and dimension: mean ± 95% t interval over seeds.
    public static func table(_ cells: [Cell], seeds: Int) -> String {
        let cold = cells.contains { $0.coldAUC.contains { !$0.isNaN } }
        var rows = [["model", "dim", "AUC", "GAUC", "logloss", "retrieval NDCG"] + (cold ? ["AUC, held-out items"] : [])]
        for c in cells {
            rows.append([c.model, "\(c.dim)", interval(c.auc), interval(c.gauc), interval(c.logLoss), interval(c.ndcg)]
                        + (cold ? [interval(c.coldAUC)] : []))
        }
        var out = alignedTable(rows)
        out += "\nMean over \(seeds) world(s) ± half-width of a 95% t interval. Retrieval NDCG: the search stage's kept behaviours, in its order, against the true relevance of each behaviour to the target (none for Poly, which has no search stage).\n"
        if cold { out += "Held-out items: targets no training sample had (they may still appear in users' histories); only content tells a model about them.\n" }
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
                 "logLoss": stat(c.logLoss), "retrievalNDCG": stat(c.ndcg), "heldOutAUC": stat(c.coldAUC)]
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
    /// Items held out of training.
    let cold: [Bool]
    let results: UnsafeMutableBufferPointer<OfflineScores>
}

/// One (model, dimension, world) cell's test measures.
struct OfflineScores {
    var auc = Double.nan, gauc = Double.nan, logLoss = Double.nan, ndcg = Double.nan, coldAUC = Double.nan

    /// AUC, GAUC (per-user AUC over users with both outcomes, weighted by their samples),
    /// log loss, and the AUC over held-out targets, of click probabilities on `test`.
    static func measure(_ test: [LabeledSample], scores: [Float], cold: [Bool]) -> OfflineScores {
        let labels = test.map { $0.label == 1 }
        var byUser: [UserID: (scores: [Float], labels: [Bool])] = [:]
        for (i, sample) in test.enumerated() {
            byUser[sample.user, default: ([], [])].scores.append(scores[i])
            byUser[sample.user, default: ([], [])].labels.append(labels[i])
        }
        var gaucSum = 0.0, gaucWeight = 0.0
        for (_, u) in byUser.sorted(by: { $0.key < $1.key }) {
            let auc = BinaryMetrics.auc(scores: u.scores, labels: u.labels)
            if !auc.isNaN {
                gaucSum += auc * Double(u.scores.count)
                gaucWeight += Double(u.scores.count)
            }
        }
        let coldIndices = test.indices.filter { cold[Int(test[$0].target)] }
        return OfflineScores(
            auc: BinaryMetrics.auc(scores: scores, labels: labels), gauc: gaucWeight > 0 ? gaucSum / gaucWeight : .nan,
            logLoss: BinaryMetrics.logLoss(probabilities: scores, labels: labels),
            coldAUC: coldIndices.isEmpty ? .nan : BinaryMetrics.auc(scores: coldIndices.map { scores[$0] }, labels: coldIndices.map { labels[$0] }))
    }
}
