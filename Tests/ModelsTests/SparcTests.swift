import Foundation
import Testing
import TestSupport
@testable import Models
@testable import RecCore

/// Vectors around `clusters` random centres (spread 0.1), `perCluster` each, dim `dim`.
func clustered(clusters: Int, perCluster: Int, dim: Int, seed: UInt64) -> [Float] {
    var rng = RandomStream(seed: seed, 1, 2)
    var centres = [Float](repeating: 0, count: clusters * dim)
    for i in centres.indices { centres[i] = Float(rng.nextGaussian()) }
    var out: [Float] = []
    for i in 0..<(clusters * perCluster) {
        let c = i % clusters
        for d in 0..<dim { out.append(centres[c * dim + d] + 0.1 * Float(rng.nextGaussian())) }
    }
    return out
}

func train(_ q: ResidualQuantizer, _ data: [Float], steps: Int, batch: Int, seed: UInt64) {
    var rng = RandomStream(seed: seed, 3, 4)
    let n = data.count / q.dim
    var chunk = [Float](repeating: 0, count: batch * q.dim)
    for s in 0..<steps {
        for b in 0..<batch {
            let i = rng.nextInt(below: n)
            for d in 0..<q.dim { chunk[b * q.dim + d] = data[i * q.dim + d] }
        }
        chunk.withUnsafeBufferPointer { q.update($0.baseAddress!, count: batch) }
        if s % 50 == 49 { q.restartDeadCodes() }
    }
}

func meanError(_ q: ResidualQuantizer, _ data: [Float]) -> Float {
    let n = data.count / q.dim
    return data.withUnsafeBufferPointer { d in (0..<n).reduce(Float(0)) { $0 + q.error(d.baseAddress! + $1 * q.dim) } } / Float(n)
}

@Suite("SPARC: residual quantizer, interest index, towers")
struct SparcTests {
    @Test("reconstruction error falls as levels are added")
    func levels() {
        let data = clustered(clusters: 40, perCluster: 50, dim: 16, seed: 1)
        var errors: [Float] = []
        for levels in 1...3 {
            let q = ResidualQuantizer(dim: 16, codes: Array(repeating: 32, count: levels), seed: 7)
            train(q, data, steps: 400, batch: 128, seed: 9)
            errors.append(meanError(q, data))
        }
        #expect(errors[1] < errors[0] && errors[2] < errors[1], "\(errors)")
    }

    @Test("after training at most a quarter of level-0 codes are dead, and restarts revive the rest")
    func deadCodes() {
        // 24 clusters for 32 codes: 8 codes have nothing of their own.
        let data = clustered(clusters: 24, perCluster: 40, dim: 8, seed: 2)
        let q = ResidualQuantizer(dim: 8, codes: [32, 16], seed: 3)
        train(q, data, steps: 600, batch: 128, seed: 4)
        #expect(q.deadCodes(level: 0) <= 8, "dead: \(q.deadCodes(level: 0))")
        #expect(q.perplexity > 16, "perplexity \(q.perplexity)")
        // At least three quarters of the clusters get a level-0 code of their own.
        var owner: [Int: Int] = [:]
        data.withUnsafeBufferPointer { d in
            for i in 0..<24 { owner[i] = q.interest(of: d.baseAddress! + i * 8) }
        }
        #expect(Set(owner.values).count >= 18, "\(Set(owner.values).count) distinct codes for 24 clusters")
    }

    @Test("the same seed gives the same codes")
    func determinism() {
        let data = clustered(clusters: 10, perCluster: 20, dim: 8, seed: 5)
        let a = ResidualQuantizer(dim: 8, codes: [16, 8], seed: 11), b = ResidualQuantizer(dim: 8, codes: [16, 8], seed: 11)
        train(a, data, steps: 100, batch: 32, seed: 6)
        train(b, data, steps: 100, batch: 32, seed: 6)
        #expect(a.codebook == b.codebook)
        let c = ResidualQuantizer(dim: 8, codes: [16, 8], seed: 12)
        train(c, data, steps: 100, batch: 32, seed: 6)
        #expect(a.codebook != c.codebook)
    }

    @Test("the interest index stays consistent through moves and removals")
    func index() {
        var index = InterestIndex(codes: 5)
        var rng = RandomStream(seed: 1, 9, 9)
        var truth = [Int](repeating: -1, count: 200)
        for _ in 0..<5000 {
            let item = rng.nextInt(below: 200)
            if rng.nextDouble() < 0.1 {
                index.remove(UInt32(item))
                truth[item] = -1
            } else {
                let code = rng.nextInt(below: 5)
                index.set(UInt32(item), code: code)
                truth[item] = code
            }
        }
        for code in 0..<5 {
            #expect(Set(index.buckets[code].map(Int.init)) == Set((0..<200).filter { truth[$0] == code }))
            #expect(index.buckets[code].count == Set(index.buckets[code]).count)
        }
        #expect(index.count == truth.filter { $0 >= 0 }.count)
    }

    func towers(codes: [Int], labelAware: Bool = false) -> InterestTowers {
        var s = TowerSettings()
        s.dim = 8
        s.codes = codes
        s.labelAware = labelAware
        s.historyLength = 4
        s.seed = 3
        let items = 30, tokensPerItem = 3
        let categories = (0..<items).map { UInt32($0 % 4) }
        let tokens = (0..<(items * tokensPerItem)).map { UInt32(($0 * 7) % 20) }
        return InterestTowers(s, categories: categories, tokens: tokens, tokensPerItem: tokensPerItem, vocabulary: 20, categoryCount: 4)
    }

    func batch() -> [InterestTowers.Example] {
        [
            .init(history: [1, 2, 3], features: UserFeatures(segment: 2, region: 1, activityBucket: 0), item: 4, clicked: true),
            // The same slate: one user vector.
            .init(history: [1, 2, 3], features: UserFeatures(segment: 2, region: 1, activityBucket: 0), item: 18, clicked: false),
            .init(history: [1, 2, 3], features: UserFeatures(segment: 2, region: 1, activityBucket: 0), item: 19, clicked: true),
            // The same history, another user: the same user vector, other features.
            .init(history: [1, 2, 3], features: UserFeatures(segment: 3, region: 0, activityBucket: 2), item: 20, clicked: true),
            .init(history: [5], item: 6, clicked: false),
            .init(history: [7, 8], item: 9, clicked: true),
            .init(history: [], item: 10, clicked: true),
            .init(history: [2, 11, 12, 13], item: 14, clicked: false),
            .init(history: [15, 16], item: 17, clicked: true),
        ]
    }

    @Test("tower gradients match central finite differences", arguments: [([Int](), false), ([6, 4], false), ([6, 4], true)])
    func gradients(codes: [Int], labelAware: Bool) {
        let model = towers(codes: codes, labelAware: labelAware)
        if let q = model.quantizer {
            // Codes on the item vectors as they are, so the interest loss has something to say.
            var v = [Float](repeating: 0, count: 30 * 8)
            v.withUnsafeMutableBufferPointer { p in for i in 0..<30 { model.itemVector(i, into: p.baseAddress! + i * 8) } }
            v.withUnsafeBufferPointer { q.update($0.baseAddress!, count: 30) }
        }
        let b = batch()
        for i in model.sparse.indices { model.sparse[i].clear() }
        _ = model.loss(b, accumulate: true)
        var c = CentralDifferences { Double(model.loss(b, accumulate: false)) }
        let featureRows = [2, 3, 256, 257, 512, 514, 100]  // those the batch uses, and one it does not
        for (t, table) in [model.idTable, model.categoryTable, model.tokenTable, model.featureTable].enumerated() {
            for row in (t == 3 ? featureRows : Array(0..<table.rows)) {
                for d in 0..<table.dim {
                    let analytic: Float = model.sparse[t].slot(of: row).map { model.sparse[t].gradients[$0 * table.dim + d] } ?? 0
                    c.check("codes \(codes) table \(t) row \(row)[\(d)]", analytic: analytic,
                            read: { table.values[row * table.dim + d] }, write: { table.values[row * table.dim + d] = $0 })
                }
            }
        }
        for m in c.mismatches { Issue.record("\(m)") }
        #expect(c.checked == (30 + 4 + 20 + 7) * 8 && c.skipped == 0)
    }

    @Test("a user's interest distribution sums to 1 and moves toward the codes they engage with")
    func distributionMoves() {
        let model = towers(codes: [6, 4])
        model.refresh(live: [Bool](repeating: true, count: 30))
        var v = [Float](repeating: 0, count: 30 * 8)
        v.withUnsafeMutableBufferPointer { p in for i in 0..<30 { model.itemVector(i, into: p.baseAddress! + i * 8) } }
        v.withUnsafeBufferPointer { model.quantizer!.update($0.baseAddress!, count: 30) }
        model.refresh(live: [Bool](repeating: true, count: 30))
        // The user clicks the items of one interest, again and again.
        let target = Int(model.index.codeOf[4])
        let liked = model.index.buckets[target].prefix(4).map { $0 }
        let history = Array(liked.prefix(2))
        func probability() -> (Double, Double) {
            var u = [Float](repeating: 0, count: 8), p = [Double](repeating: 0, count: 6)
            u.withUnsafeMutableBufferPointer { ub in history.withUnsafeBufferPointer { model.servingUserVector($0, into: ub.baseAddress!) } }
            u.withUnsafeBufferPointer { ub in p.withUnsafeMutableBufferPointer { model.interestDistribution(ub.baseAddress!, into: $0.baseAddress!) } }
            return (p[target], p.reduce(0, +))
        }
        let before = probability()
        #expect(abs(before.1 - 1) < 1e-9)
        for _ in 0..<60 {
            model.train(liked.map { InterestTowers.Example(history: history[...], item: $0, clicked: true) })
            model.refresh(live: [Bool](repeating: true, count: 30))
        }
        let after = probability()
        #expect(abs(after.1 - 1) < 1e-9)
        #expect(after.0 > before.0, "p(target) \(before.0) -> \(after.0)")
    }

    @Test("retrieval through the inverted index (8 of 64 buckets) finds at least 95% of what exact retrieval finds")
    func indexRecall() {
        var s = TowerSettings()
        s.dim = 16
        s.codes = [64, 16]
        let items = 20_000
        let data = clustered(clusters: 100, perCluster: items / 100, dim: 16, seed: 8)
        let model = InterestTowers(s, categories: [UInt32](repeating: 0, count: items), tokens: [UInt32](repeating: 0, count: items),
                                   tokensPerItem: 1, vocabulary: 1, categoryCount: 1)
        // Put the data in as the item vectors (the towers' own would be random at this point).
        model.setItemVectorsForTesting(data)
        train(model.quantizer!, data, steps: 300, batch: 256, seed: 2)
        model.reindexForTesting(live: [Bool](repeating: true, count: items))
        let live = (0..<ItemID(items)).map { $0 }
        var recalls: [Double] = []
        var rng = RandomStream(seed: 4, 4, 4)
        // Interest queries as serving forms them: a user (the mean of five items they
        // clicked) plus one of their interests' code vectors.
        for _ in 0..<40 {
            var u = [Float](repeating: 0, count: 16)
            for _ in 0..<5 {
                let item = rng.nextInt(below: items)
                for j in 0..<16 { u[j] += data[item * 16 + j] / 5 }
            }
            let k = rng.nextInt(below: 64)
            var query = [Float](repeating: 0, count: 16)
            u.withUnsafeBufferPointer { ub in query.withUnsafeMutableBufferPointer { model.interestQuery(ub.baseAddress!, k, into: $0.baseAddress!) } }
            let exact = query.withUnsafeBufferPointer { model.retrieve(query: $0.baseAddress!, count: 200, live: live, probes: nil) }
            let indexed = query.withUnsafeBufferPointer { model.retrieve(query: $0.baseAddress!, count: 200, live: live, probes: 8) }
            recalls.append(Double(Set(exact.map(\.1)).intersection(indexed.map(\.1)).count) / 200)
        }
        let mean = recalls.reduce(0, +) / Double(recalls.count)
        #expect(mean >= 0.95, "recall@200 \(mean)")
    }

    @Test("items that arrived since the last refresh are not retrieved until they have a vector")
    func arrivalsWaitForRefresh() {
        let model = towers(codes: [])
        model.refresh(live: [Bool](repeating: true, count: 30))
        model.updateCatalog(categories: (0..<60).map { UInt32($0 % 4) }, tokens: (0..<180).map { UInt32(($0 * 7) % 20) }, categoryCount: 4)
        #expect(model.items == 60 && model.vectorCount == 30)
        let u = [Float](repeating: 1, count: 8)
        let found = u.withUnsafeBufferPointer { model.retrieve($0.baseAddress!, live: (0..<60).map { ItemID($0) }, count: 50) }
        #expect(found.count == 30 && found.allSatisfy { $0.item < 30 })
        model.refresh(live: [Bool](repeating: true, count: 60))
        #expect(model.vectorCount == 60)
    }
}
