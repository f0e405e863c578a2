import Foundation
import Models
import RecCore

/// `recstream bench sparc`: SPARC's retrieval latency over a large catalog (4 interests x
/// top 200, exactly over every item and through the interest index), tower training
/// samples per second, and the memory of codebook, index and item vectors.
public struct SparcBench: Sendable {
    public var items = 1_000_000
    public var requests = 300
    public var trainingBatches = 20
    public init() {}

    public func run(progress: (String) -> Void = { _ in }) -> BenchReport {
        var s = TowerSettings()
        s.dim = 32
        s.codes = [64, 32, 32]
        s.historyLength = 50
        let tokensPerItem = 12, vocabulary = 20_000, categories = 60
        progress("sparc: building \(items) items")
        var rng = RandomStream(seed: 1, 77, 1)
        let categoryOf = (0..<items).map { _ in UInt32(rng.nextInt(below: categories)) }
        let tokens = (0..<(items * tokensPerItem)).map { _ in UInt32(rng.nextInt(below: vocabulary)) }
        let towers = InterestTowers(s, categories: categoryOf, tokens: tokens, tokensPerItem: tokensPerItem, vocabulary: vocabulary, categoryCount: categories)
        let live = [Bool](repeating: true, count: items)
        towers.refresh(live: live)
        progress("sparc: codebook on a sample, then every item's code")
        let q = towers.quantizer!
        let sample = 100_000
        towers.itemVectors.withUnsafeBufferPointer { x in
            for start in stride(from: 0, to: sample, by: 4096) {
                q.update(x.baseAddress! + start * s.dim, count: min(4096, sample - start))
            }
        }
        let refreshStart = ContinuousClock.now
        towers.refresh(live: live)
        let refreshSeconds = (ContinuousClock.now - refreshStart).seconds
        let liveItems = (0..<ItemID(items)).map { $0 }

        // Requests: a user of 50 recent clicks, their distribution, the top 4 interests.
        var exact: [Double] = [], bucket: [Double] = [], probed: [Double] = []
        var u = [Float](repeating: 0, count: s.dim), query = [Float](repeating: 0, count: s.dim)
        var p = [Double](repeating: 0, count: s.codes[0])
        var sink = 0
        for r in 0..<requests {
            if r % 50 == 0 { progress("sparc: request \(r) of \(requests)") }
            let history = (0..<50).map { _ in UInt32(rng.nextInt(below: items)) }
            func timed(_ body: () -> Int) -> Double {
                let start = ContinuousClock.now
                sink &+= body()
                return (ContinuousClock.now - start).seconds * 1e3
            }
            func interests() -> [Int] {
                u.withUnsafeMutableBufferPointer { ub in history.withUnsafeBufferPointer { towers.servingUserVector($0, into: ub.baseAddress!) } }
                u.withUnsafeBufferPointer { ub in p.withUnsafeMutableBufferPointer { towers.interestDistribution(ub.baseAddress!, into: $0.baseAddress!) } }
                return (0..<s.codes[0]).sorted { (p[$0], $1) > (p[$1], $0) }.prefix(4).map { $0 }
            }
            bucket.append(timed {
                interests().reduce(0) { n, k in n + u.withUnsafeBufferPointer { towers.retrieve(query: $0.baseAddress!, bucket: k, count: 200).count } }
            })
            probed.append(timed {
                interests().reduce(0) { n, k in
                    u.withUnsafeBufferPointer { ub in query.withUnsafeMutableBufferPointer { towers.interestQuery(ub.baseAddress!, k, into: $0.baseAddress!) } }
                    return n + query.withUnsafeBufferPointer { towers.retrieve(query: $0.baseAddress!, count: 200, live: liveItems, probes: 8).count }
                }
            })
            if r < requests / 10 {
                exact.append(timed {
                    interests().reduce(0) { n, k in
                        u.withUnsafeBufferPointer { ub in query.withUnsafeMutableBufferPointer { towers.interestQuery(ub.baseAddress!, k, into: $0.baseAddress!) } }
                        return n + query.withUnsafeBufferPointer { towers.retrieve(query: $0.baseAddress!, count: 200, live: liveItems, probes: nil).count }
                    }
                })
            }
        }
        if sink < 0 { print(sink) }

        progress("sparc: training")
        var rates: [Double] = []
        for _ in 0..<trainingBatches {
            var histories: [UInt32] = []
            var ranges: [(Int, Int, UInt32, Bool)] = []
            for slate in 0..<26 {
                let start = histories.count
                for _ in 0..<50 { histories.append(UInt32(rng.nextInt(below: items))) }
                for position in 0..<10 where ranges.count < 256 {
                    ranges.append((start, 50, UInt32(rng.nextInt(below: items)), (slate + position) % 10 == 0))
                }
            }
            let batch = ranges.map { InterestTowers.Example(history: histories[$0.0..<($0.0 + $0.1)], item: $0.2, clicked: $0.3) }
            let start = ContinuousClock.now
            towers.train(batch)
            rates.append(Double(batch.count) / (ContinuousClock.now - start).seconds)
        }

        func percentile(_ xs: [Double], _ q: Double) -> Double {
            let s = xs.sorted()
            return s[min(s.count - 1, Int((Double(s.count - 1) * q).rounded()))]
        }
        var results: [BenchResult] = []
        for (name, xs) in [("interest buckets ranked by u (the default)", bucket), ("index, query u + e0_k, 8 of 64 buckets", probed),
                           ("exact, query u + e0_k over every item", exact)] {
            results.append(BenchResult(name: "retrieval 4 x top-200, \(name): p50", unit: "ms", samples: [percentile(xs, 0.5)]))
            results.append(BenchResult(name: "retrieval 4 x top-200, \(name): p99", unit: "ms", samples: [percentile(xs, 0.99)]))
        }
        results.append(BenchResult(name: "tower training (batch 256, histories of 50, dim 32)", unit: "samples/s", samples: rates))
        results.append(BenchResult(name: "refresh: every item's vector and code", unit: "s", samples: [refreshSeconds]))
        let codebookBytes = q.codebook.count * 4
        let indexBytes = items * (4 + 4 + 4)  // bucket entry, code, position
        let vectorBytes = towers.itemVectors.count * 4
        results.append(BenchResult(name: "memory: codebook", unit: "bytes", samples: [Double(codebookBytes)]))
        results.append(BenchResult(name: "memory: interest index", unit: "bytes/item", samples: [Double(indexBytes) / Double(items)]))
        results.append(BenchResult(name: "memory: item vectors (serving cache)", unit: "bytes/item", samples: [Double(vectorBytes) / Double(items)]))
        let layoutBytes = (towers.bucketRows.count + towers.bucketItems.count) * 4 + towers.bucketStart.count * 8
        results.append(BenchResult(name: "memory: buckets laid out for search", unit: "bytes/item", samples: [Double(layoutBytes) / Double(items)]))
        let sizes = towers.index.buckets.map { Double($0.count) }
        let entropy = sizes.filter { $0 > 0 }.reduce(0.0) { $0 - $1 / Double(items) * log($1 / Double(items)) }
        let notes = [
            "\(items) items, dim 32, codes 64/32/32, one core; \(requests) requests (exact: \(exact.count)), each from a user vector over 50 clicks and its 4 most probable interests.",
            String(format: "Buckets: the largest holds %.1f%% of the items; exp(entropy) of bucket sizes %.1f of 64 (untrained towers: the codebook learned on a 100k sample of initial item vectors).",
                   100 * (sizes.max() ?? 0) / Double(items), exp(entropy)),
            "Target (issue 6): p99 under 5 ms on one core with the index. Tables (id, category, token rows with Adam moments) take 3 x 4 x 32 bytes per row beside these.",
        ]
        return BenchReport(bench: "sparc", results: results, notes: notes)
    }
}
