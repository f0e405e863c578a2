import Allocator
import Foundation
import Models
import RecCore

/// `recstream bench models`: training samples per second and scoring candidates per second
/// of DARE and TWIN, in the configurations of the PyTorch reference scripts in
/// shared/baselines (item-id tables, B = 256, K = 64, d_att = 32, d_rep = 64, vocabulary
/// 1,000,000, random ids and labels), at history lengths 1,000 and 5,000; the search
/// stage's achieved memory bandwidth; and memory per embedding row and history entry.
public struct ModelsBench: Sendable {
    public var vocabulary = 1_000_000
    public var batch = 256
    public var topK = 64
    public var attentionDim = 32
    public var representationDim = 64
    public var lengths = [1000, 5000]
    public var users = 2048
    public var steps = 20
    public var warmup = 3
    public var scoreCalls = 200
    /// Threads of a training step (the PyTorch reference's training step uses 2).
    public var trainingThreads = 2
    public init() {}

    func model(_ design: EmbeddingDesign, length: Int, auxLossWeight: Float = 0, batchNorm: Bool = false) -> RankingModel {
        var s = RankingModelSettings()
        s.auxLossWeight = auxLossWeight
        s.batchNorm = batchNorm
        s.design = design
        s.fields = .item
        s.attentionDim = design == .dare ? attentionDim : representationDim
        s.representationDim = representationDim
        s.topK = topK
        s.maxHistory = length
        s.seed = 7
        s.threads = trainingThreads
        let m = RankingModel(s, items: vocabulary, categories: 1)
        m.updateCatalog(categories: [UInt32](repeating: 0, count: vocabulary), categoryCount: 1)
        return m
    }

    public func run(progress: (String) -> Void = { _ in }) -> BenchReport {
        var results: [BenchResult] = []
        var notes: [String] = []
        var rng = RandomStream(seed: 11, 1)
        for length in lengths {
            let histories = UserHistories(users: users, cap: length)
            for user in 0..<users {
                for _ in 0..<length { histories.append(HistoryEntry(item: ItemID(rng.nextInt(below: vocabulary)), tick: -1), for: UserID(user)) }
            }
            let samples = (0..<batch * (steps + warmup)).map { _ in
                LabeledSample(user: UserID(rng.nextInt(below: users)), target: ItemID(rng.nextInt(below: vocabulary)),
                              label: rng.nextDouble() < 0.5 ? 1 : 0)
            }
            for design in EmbeddingDesign.allCases {
                progress("models: \(design) L=\(length)")
                let before = AllocatorStats.current().total
                let m = model(design, length: length)
                let modelBytes = AllocatorStats.current().total - before

                // Training: median step time over `steps` steps after `warmup`.
                var stepSeconds: [Double] = []
                var parts: [TrainingProfile] = []
                for s in 0..<(steps + warmup) {
                    m.profile = TrainingProfile()
                    let start = ContinuousClock.now
                    m.train(samples[s * batch..<(s + 1) * batch], histories: histories)
                    if s >= warmup {
                        stepSeconds.append((ContinuousClock.now - start).seconds)
                        parts.append(m.profile!)
                    }
                }
                m.profile = nil
                results.append(BenchResult(name: "\(design).train.L\(length)", unit: "samples/s",
                                           samples: stepSeconds.map { Double(batch) / $0 }))
                // Where a step's time goes.
                if design == .dare {
                    let share: [(String, (TrainingProfile) -> Duration)] = [
                        ("forward and backward", { $0.gradients - $0.merge }), ("gradient merge", { $0.merge }),
                        ("dense optimizer", { $0.denseOptimizer }), ("table optimizer", { $0.tableOptimizer }),
                    ]
                    for (part, time) in share {
                        results.append(BenchResult(name: "dare.train.L\(length) \(part)", unit: "ms per step", samples: parts.map { time($0).seconds * 1e3 }))
                    }
                }
                // The reference's auxiliary head (all L behaviours get gradient) and its
                // BatchNorm (two passes on one thread), at the first length.
                if design == .dare && length == lengths.first {
                    for (variant, aux, batchNorm) in [("the auxiliary head", Float(1), false), ("BatchNorm", 0, true)] {
                        progress("models: dare with \(variant), L=\(length)")
                        let a = model(design, length: length, auxLossWeight: aux, batchNorm: batchNorm)
                        var variantSeconds: [Double] = []
                        for s in 0..<(steps / 2 + warmup) {
                            let start = ContinuousClock.now
                            a.train(samples[s * batch..<(s + 1) * batch], histories: histories)
                            if s >= warmup { variantSeconds.append((ContinuousClock.now - start).seconds) }
                        }
                        results.append(BenchResult(name: "dare.train.L\(length) with \(variant)", unit: "samples/s",
                                                   samples: variantSeconds.map { Double(batch) / $0 },
                                                   baselineSamples: stepSeconds.map { Double(batch) / $0 }))
                    }
                }

                // Scoring: one user's history against 100 candidates per call, in two
                // workloads. The reference's (dare_torch_score.py): eight fixed (user,
                // candidates) pairs in turn, so after a turn their rows are in cache. Cold:
                // each call a different user of thousands and new random candidates, so
                // the rows come from memory, as for a large population.
                let warmPairs = (0..<8).map { u in (UserID(u), (0..<100).map { _ in ItemID(rng.nextInt(below: vocabulary)) }) }
                results += scoring(m, name: "\(design).score.L\(length)", histories: histories, warmup: 20, stages: design == .dare) { warmPairs[$0 % 8] }
                results += scoring(m, name: "\(design).score.L\(length) cold", histories: histories, warmup: 0, stages: design == .dare) { call in
                    (UserID(call % users), (0..<100).map { _ in ItemID(rng.nextInt(below: vocabulary)) })
                }

                // The search stage alone: bytes of attention rows read per second.
                if design == .dare {
                    var searchSeconds: [Double] = []
                    for s in 0..<steps {
                        let start = ContinuousClock.now
                        for sample in samples[s * batch..<(s + 1) * batch] { _ = m.search(history: histories.history(of: sample.user), target: sample.target) }
                        searchSeconds.append((ContinuousClock.now - start).seconds)
                    }
                    let bytes = Double(batch * length * attentionDim * 4)
                    results.append(BenchResult(name: "dare.search.L\(length) bandwidth", unit: "GB/s",
                                               samples: searchSeconds.map { bytes / $0 / 1e9 }))
                    if length == lengths.first {  // the tables do not depend on L
                        results.append(BenchResult(name: "\(design) memory per embedding row (values + Adam)", unit: "bytes",
                                                   samples: [Double(modelBytes) / Double(vocabulary)]))
                    }
                }
                withExtendedLifetime(m) {}
            }
        }
        // The e2e benchmark's serving shape: item, category and time fields, 200
        // candidates, L = 1,000, 100k items in 200 categories; the reference's warm workload.
        progress("models: DARE scoring in the e2e benchmark's shape")
        do {
            var s = RankingModelSettings()
            s.design = .dare
            s.attentionDim = attentionDim
            s.representationDim = representationDim
            s.topK = topK
            s.maxHistory = 1000
            s.seed = 7
            let items = 100_000, categories = 200
            let m = RankingModel(s, items: items, categories: categories)
            m.updateCatalog(categories: (0..<items).map { _ in UInt32(rng.nextInt(below: categories)) }, categoryCount: categories)
            let histories = UserHistories(users: 8, cap: 1000)
            for user in 0..<8 {
                for _ in 0..<1000 { histories.append(HistoryEntry(item: ItemID(rng.nextInt(below: items)), tick: -1), for: UserID(user)) }
            }
            let pairs = (0..<8).map { u in (UserID(u), (0..<200).map { _ in ItemID(rng.nextInt(below: items)) }) }
            results += scoring(m, name: "dare.score e2e shape", histories: histories, warmup: 20, stages: true) { pairs[$0 % 8] }
        }
        progress("models: fp32 FMA peak")
        results.append(BenchResult(name: "fp32 FMA peak, 1 core (plain loop)", unit: "GFLOP/s", samples: (0..<5).map { _ in measureFMAPeak(seconds: 0.1) }))
        let before = AllocatorStats.current().allocated
        let store = UserHistories(users: 10_000, cap: 1000)
        for u in 0..<10_000 { for i in 0..<1000 { store.append(HistoryEntry(item: ItemID(i), tick: 0), for: UserID(u)) } }
        let storeBytes = AllocatorStats.current().allocated - before
        results.append(BenchResult(name: "trainer history store per entry", unit: "bytes",
                                   samples: [Double(storeBytes) / Double(store.totalEntries)]))
        notes.append("Training: B=\(batch), K=\(topK), d_att=\(attentionDim), d_rep=\(representationDim) (TWIN: one table of \(representationDim)), vocabulary \(vocabulary), item-id tables, random ids and labels, row-wise lazy Adam, \(trainingThreads) threads (data-parallel mini-batch); median of \(steps) steps after \(warmup).")
        notes.append("Scoring: one user against 100 candidates, 1 thread, median of \(scoreCalls) calls. dare.score.L1000 is the PyTorch reference's workload (dare_torch_score.py: eight fixed users with fixed candidates in turn, after 20 warm-up calls; their rows stay in cache); the cold lines give each call a different user (of \(users)) and new random candidates, so rows come from memory. dare.score e2e shape is the model and request of bench e2e's DARE case (item, category and time fields; 200 candidates; 100k items in 200 categories; the warm workload): there the time field's search row and its block of the MLP's first layer are computed once per request, and the rates count the work as done. Search bandwidth: attention rows read by the search stage alone; this machine's single-core bandwidth is about 11-15 GB/s.")
        notes.append("Scoring's passes (ScoringStage): gather (the history's rows; rate: bytes of rows read), queries, search (S = Q keysT; GFLOP/s), topK (each row of S; rate: scores read), softmax (over each row's K), aggregate (each candidate's MLP input; rate: representation rows read), mlp (two products and the output; GFLOP/s). Compare the GFLOP/s with the FMA peak measured in the same run.")
        notes.append("PyTorch reference: shared/baselines/compare_dare.py runs its scripts beside this benchmark and prints the ratios (measured together on an AMD EPYC host on 2026-12-07, three runs: train 3.00-3.97x, score 3.17-4.24x).")
        notes.append("The auxiliary head's and BatchNorm's figures have the plain DARE step as their baseline: the ratio is their cost. A BatchNorm step runs on one thread, in two passes (its batch statistics couple the samples).")
        return BenchReport(bench: "models", results: results, notes: notes)
    }

    /// Scoring figures over `scoreCalls` calls after `warmup`, each scoring `pair(call)`:
    /// candidates/s, then, with `stages`, each pass's time per call and the rate it achieves
    /// (the products in GFLOP/s, against the peak measured in the same run).
    func scoring(_ m: RankingModel, name: String, histories: UserHistories, warmup: Int, stages: Bool,
                 pair: (Int) -> (UserID, [ItemID])) -> [BenchResult] {
        var results: [BenchResult] = [], rates: [Double] = []
        var stageSeconds = [[Double]](repeating: [], count: ScoringStage.passes.count)
        var scores: [Float] = [], candidateCount = 0, searched = 0
        // Call `index`'s pair, drawn outside the clock.
        func call(_ index: Int, _ body: (UnsafeBufferPointer<HistoryEntry>, UnsafeBufferPointer<ItemID>, UnsafeMutablePointer<Float>) -> Void) {
            let (user, candidates) = pair(index)
            let history = histories.history(of: user)
            searched = min(m.settings.maxHistory, history.count)
            candidateCount = candidates.count
            if scores.count < candidateCount { scores = [Float](repeating: 0, count: candidateCount) }
            candidates.withUnsafeBufferPointer { c in scores.withUnsafeMutableBufferPointer { body(history, c, $0.baseAddress!) } }
        }
        for i in 0..<warmup + scoreCalls {
            call(i) { h, c, out in
                let start = ContinuousClock.now
                m.score(history: h, candidates: c, into: out)
                if i >= warmup { rates.append(Double(c.count) / (ContinuousClock.now - start).seconds) }
            }
        }
        // The same number of calls pass by pass, on pairs of their own (for the cold
        // workload, users not yet scored), so that they are as cold as the timed calls.
        for i in stages ? scoreCalls..<2 * scoreCalls : 0..<0 {
            call(i) { h, c, out in
                for (k, stage) in ScoringStage.passes.enumerated() {
                    let start = ContinuousClock.now
                    m.score(stage, history: h, candidates: c, into: out)
                    stageSeconds[k].append((ContinuousClock.now - start).seconds)
                }
            }
        }
        results.append(BenchResult(name: name, unit: "candidates/s", samples: rates))
        guard stages else { return results }

        // Work per call as the passes do it: with the time field, its search row and its
        // block of W1 are computed once for all candidates.
        let s = m.settings, F = s.fields.rawValue, own = m.candidateFields
        let c = Double(candidateCount), l = Double(searched)
        let dA = Double(s.attentionDim), dR = Double(s.representationDim), h1 = Double(s.hidden1), h2 = Double(s.hidden2)
        let flops: [ScoringStage: Double] = [
            .search: 2 * l * dA * (c * Double(own) + Double(F - own)),
            .mlp: 2 * c * (Double(3 * F - (F - own)) * dR * h1 + h1 * h2 + h2),
        ]
        let bytes: [ScoringStage: Double] = [
            .gather: l * Double(F) * (dA + dR) * 4,
            .topK: c * l * 4,
            .aggregate: c * Double(s.topK + 1) * Double(F) * dR * 4,
        ]
        for (k, stage) in ScoringStage.passes.enumerated() {
            results.append(BenchResult(name: "\(name) \(stage)", unit: "us per call", samples: stageSeconds[k].map { $0 * 1e6 }))
            if let f = flops[stage] {
                results.append(BenchResult(name: "\(name) \(stage) rate", unit: "GFLOP/s", samples: stageSeconds[k].map { f / $0 / 1e9 }))
            } else if let b = bytes[stage] {
                results.append(BenchResult(name: "\(name) \(stage) rate", unit: "GB/s", samples: stageSeconds[k].map { b / $0 / 1e9 }))
            }
        }
        return results
    }
}
