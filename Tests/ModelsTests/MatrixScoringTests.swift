import Foundation
import Testing
@testable import Models
@testable import RecCore

@Suite("Scoring as matrix products")
struct MatrixScoringTests {
    /// A model at widths that run every vector body and tile edge (8-lane chunks, 16-column
    /// tiles, 4-row tiles and single rows), unlike `tinyModel`'s 4s.
    static func wideModel(_ design: EmbeddingDesign, fields: Fields, attention: Int, representation: Int, maxHistory: Int,
                          batchNorm: Bool = false, threads: Int = 1, aux: Float = 0) -> RankingModel {
        var s = RankingModelSettings()
        s.threads = threads
        s.auxLossWeight = aux
        s.design = design
        s.fields = fields
        s.batchNorm = batchNorm
        s.attentionDim = design == .dare ? attention : representation
        s.representationDim = representation
        s.topK = 7
        s.maxHistory = maxHistory
        s.hidden1 = 21
        s.hidden2 = 10
        s.initScale = 0.3
        s.seed = 9
        let model = RankingModel(s, items: 300, categories: 11)
        model.updateCatalog(categories: (0..<300).map { UInt32($0 % 11) }, categoryCount: 11)
        return model
    }

    @Test("gemm agrees with a double-precision product at every edge shape, each element one FMA chain in order, and writes nothing past its rows",
          arguments: [0, 1, 7, 8, 9, 32, 33, 256, 257, 600])
    func gemmShapes(k: Int) {
        var rng = RandomStream(seed: 5, UInt64(k))
        for m in 1...7 {
            for n in [1, 7, 8, 9, 15, 16, 17, 24, 33] {
                let lda = k + 3, ldb = (n + 7) / 8 * 8 + 8, ldc = ldb
                let a = (0..<(m * lda)).map { _ in Float(rng.nextDouble() * 2 - 1) }
                // The pad columns of B hold finite values the caller never reads back.
                let b = (0..<max(1, k * ldb)).map { _ in Float(rng.nextDouble() * 2 - 1) }
                let sentinel: Float = 12345
                var c = [Float](repeating: sentinel, count: (m + 1) * ldc)
                a.withUnsafeBufferPointer { a in
                    b.withUnsafeBufferPointer { b in
                        c.withUnsafeMutableBufferPointer { gemm(a.baseAddress!, lda: lda, b.baseAddress!, ldb: ldb, $0.baseAddress!, ldc: ldc, m: m, n: n, k: k) }
                    }
                }
                for i in 0..<m {
                    for j in 0..<n {
                        var exact = 0.0
                        for p in 0..<k { exact += Double(a[i * lda + p]) * Double(b[p * ldb + j]) }
                        #expect(abs(Double(c[i * ldc + j]) - exact) <= 1e-5 * Double(k), "m \(m) n \(n) k \(k) at (\(i), \(j))")
                        // The same bits as one fused chain over p in order, whatever the
                        // tile or the depth blocks that computed it.
                        var chain: Float = 0
                        for p in 0..<k { chain.addProduct(a[i * lda + p], b[p * ldb + j]) }
                        #expect(c[i * ldc + j].bitPattern == chain.bitPattern, "m \(m) n \(n) k \(k) at (\(i), \(j)): not the chain's bits")
                    }
                    // Columns past the padded width are untouched.
                    for j in (n + 7) / 8 * 8..<ldc { #expect(c[i * ldc + j] == sentinel) }
                }
                #expect(c[(m * ldc)..<((m + 1) * ldc)].allSatisfy { $0 == sentinel }, "m \(m) n \(n): a row past m was written")
                // Accumulating the same product onto C doubles it, and still writes nothing
                // past the padded width or below row m.
                let once = c
                a.withUnsafeBufferPointer { a in
                    b.withUnsafeBufferPointer { b in
                        c.withUnsafeMutableBufferPointer {
                            gemm(a.baseAddress!, lda: lda, b.baseAddress!, ldb: ldb, $0.baseAddress!, ldc: ldc, m: m, n: n, k: k, accumulate: true)
                        }
                    }
                }
                for i in 0..<m {
                    for j in 0..<n { #expect(abs(c[i * ldc + j] - 2 * once[i * ldc + j]) <= 1e-5 * Float(k), "accumulate: m \(m) n \(n) k \(k) at (\(i), \(j))") }
                    for j in (n + 7) / 8 * 8..<ldc { #expect(c[i * ldc + j] == sentinel) }
                }
                #expect(c[(m * ldc)..<((m + 1) * ldc)].allSatisfy { $0 == sentinel })
            }
        }
    }

    static let shapes: [(EmbeddingDesign, Fields, Int, Int, Int)] = [
        (.dare, .item, 32, 64, 200), (.dare, .itemCategoryTime, 12, 24, 33), (.twin, .itemCategoryTime, 8, 16, 17),
        (.twinProjection, .item, 12, 12, 40), (.din, .itemCategoryTime, 8, 16, 50), (.dare, .item, 8, 8, 1),
        (.dare, .itemCategoryTime, 8, 48, 33),  // an input of 144: two 64-float blocks and a tail
    ]

    @Test("scoring many candidates at once agrees with scoring each alone at widths that run every kernel path", arguments: 0..<7)
    func agreesAtWidth(shape: Int) {
        let (design, fields, attention, representation, length) = Self.shapes[shape]
        for batchNorm in [false, true] {
            let model = Self.wideModel(design, fields: fields, attention: attention, representation: representation, maxHistory: length, batchNorm: batchNorm)
            var rng = RandomStream(seed: 2, UInt64(shape))
            let history = (0..<length).map { j in HistoryEntry(item: ItemID(rng.nextInt(below: 300)), tick: Int32(j - length)) }
            for count in [1, 5, 17, 100] {
                let candidates = (0..<count).map { _ in ItemID(rng.nextInt(below: 300)) }
                expectBatchMatchesAlone(model, history: history, candidates: candidates, "\(design) \(fields) BN \(batchNorm) C \(count)")
            }
        }
    }

    @Test("a user's adjacent samples searched (and their MLP run) together train as when each runs alone (two threads, short, long and empty histories)",
          arguments: 0..<6)
    func searchedTogether(shape: Int) {
        // The last two keep the MLP per sample: the auxiliary head, an input of 3 x 3 x 10.
        let cases: [(EmbeddingDesign, Fields, Float, Int)] = [
            (.dare, .itemCategoryTime, 0, 24), (.twin, .itemCategoryTime, 0, 24), (.din, .itemCategoryTime, 0, 24), (.dare, .item, 0, 24),
            (.dare, .itemCategoryTime, 0.5, 24), (.dare, .itemCategoryTime, 0, 10),
        ]
        let (design, fields, aux, representation) = cases[shape]
        func model() -> RankingModel {
            Self.wideModel(design, fields: fields, attention: 12, representation: representation, maxHistory: 33, threads: 2, aux: aux)
        }
        #expect(model().trainsMLPTogether == (shape < 4))
        var rng = RandomStream(seed: 4, UInt64(shape))
        // User 4's history is longer than the window; user 5 has none.
        let lists = (0..<6).map { u in (0..<(u == 5 ? 0 : 10 + 8 * u)).map { j in HistoryEntry(item: ItemID(rng.nextInt(below: 300)), tick: Int32(j - 60)) } }
        let histories = historyStore(lists)
        // Runs of one user's samples, as a tick's slates give them (and runs that the two
        // threads' halves cut).
        var batch: [LabeledSample] = []
        for (run, length) in [3, 1, 7, 12, 2, 5, 1, 4, 9, 6, 40, 2].enumerated() {
            for _ in 0..<length {
                batch.append(LabeledSample(user: UserID(run % 6), target: ItemID(rng.nextInt(below: 300)), label: rng.nextDouble() < 0.3 ? 1 : 0))
            }
        }
        let together = model(), alone = model()
        alone.searchesTogether = false
        for step in 0..<3 {
            var first = [Float](repeating: .nan, count: batch.count), second = first
            let a = first.withUnsafeMutableBufferPointer { together.train(batch[...], histories: histories, predictions: $0.baseAddress!) }
            let b = second.withUnsafeMutableBufferPointer { alone.train(batch[...], histories: histories, predictions: $0.baseAddress!) }
            #expect(abs(a - b) < 1e-5, "\(design) \(fields) step \(step): loss \(a) vs \(b)")
            for i in batch.indices { #expect(abs(first[i] - second[i]) < 1e-5, "\(design) \(fields) step \(step) sample \(i): \(first[i]) vs \(second[i])") }
        }
        // The steps moved both models alike: the layers, and the rows of every table.
        for i in together.dense.indices { #expect(abs(together.dense[i] - alone.dense[i]) < 1e-4, "\(design) \(fields) dense[\(i)]") }
        for (t, table) in together.tables.enumerated() {
            for r in 0..<min(table.rows, 300) {
                for d in 0..<table.dim { #expect(abs(table.row(r)[d] - alone.tables[t].row(r)[d]) < 1e-4, "\(design) table \(t) row \(r)") }
            }
        }
    }

    @Test("a candidate's probability has the same bits alone, anywhere in a list, repeated, and after a larger request")
    func positionInvariant() {
        let model = Self.wideModel(.dare, fields: .itemCategoryTime, attention: 16, representation: 24, maxHistory: 90)
        var rng = RandomStream(seed: 8, 1)
        let history = (0..<90).map { j in HistoryEntry(item: ItemID(rng.nextInt(below: 300)), tick: Int32(j - 90)) }
        let list = (0..<37).map { _ in ItemID(rng.nextInt(below: 300)) }
        func score(_ candidates: [ItemID]) -> [Float] {
            var out = [Float](repeating: .nan, count: candidates.count)
            history.withUnsafeBufferPointer { h in
                candidates.withUnsafeBufferPointer { c in out.withUnsafeMutableBufferPointer { model.score(history: h, candidates: c, into: $0.baseAddress!) } }
            }
            return out
        }
        let together = score(list)
        for (i, item) in list.enumerated() {
            #expect(score([item])[0].bitPattern == together[i].bitPattern, "candidate \(i) alone")
        }
        let shuffled = Array(list.reversed()) + list
        let again = score(shuffled)
        for (i, item) in shuffled.enumerated() {
            #expect(again[i].bitPattern == together[list.firstIndex(of: item)!].bitPattern, "position \(i)")
        }
        // After the larger request the scratch has grown: the first list scores the same.
        #expect(score(list).map(\.bitPattern) == together.map(\.bitPattern))
    }

    @Test("an empty history or no candidates: probabilities from the candidate alone, nothing written")
    func edges() {
        let model = Self.wideModel(.dare, fields: .item, attention: 8, representation: 8, maxHistory: 10)
        var out: [Float] = [.nan, .nan]
        let empty: [HistoryEntry] = []
        empty.withUnsafeBufferPointer { h in
            [ItemID(3), 4].withUnsafeBufferPointer { c in out.withUnsafeMutableBufferPointer { model.score(history: h, candidates: c, into: $0.baseAddress!) } }
            #expect(abs(out[0] - model.score(history: h, target: 3)) < 1e-6 && out[1].isFinite)
            var untouched: [Float] = [7]
            [ItemID]().withUnsafeBufferPointer { c in untouched.withUnsafeMutableBufferPointer { model.score(history: h, candidates: c, into: $0.baseAddress!) } }
            #expect(untouched == [7])
        }
    }
}
