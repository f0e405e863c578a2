import Foundation
import RecCore

/// The knobs of the retrieval towers (SPARC and the single-vector two-tower baseline).
public struct TowerSettings: Sendable, Equatable {
    /// Width of item and user vectors.
    public var dim = 32
    /// Codes per residual level (SPARC); empty for the two-tower baseline.
    public var codes: [Int] = [64, 32, 32]
    /// The user vector is the mean of the last `historyLength` clicked items' vectors.
    public var historyLength = 50
    /// InfoNCE temperature (in-batch negatives).
    public var temperature: Float = 0.1
    /// Temperature of the interest distribution p(k | u) = softmax(u . e_k / tau).
    public var interestTemperature: Float = 1
    public var interestWeight: Float = 0.5
    public var contrastiveWeight: Float = 1
    /// The RQ-VAE's commitment term, beta sum over levels |r_l - sg(e_l)|^2 on each
    /// example's item vector, weighted by `quantizerWeight` (SPARC only; the codebook
    /// itself moves by EMA, so its own term is dropped, as the reference's option B says).
    public var commitment: Float = 0.25
    public var quantizerWeight: Float = 1
    public var learningRate: Float = 0.01
    public var batchSize = 256
    /// Train with the query conditioned on the positive's interest, q = u + e0_c (the
    /// label-aware trick); off, the towers learn u . x and interests only choose buckets.
    public var labelAware = false
    /// Dead-code restarts: every `restartEvery` steps, codes used less than `deadBelow`.
    public var restartEvery = 50
    public var deadBelow: Float = 0.05
    public var seed: UInt64 = 1
    public init() {}
    public var multiInterest: Bool { !codes.isEmpty }
}

/// Item and user towers trained online from clicks, with (for SPARC) a residual-quantized
/// codebook of interests over the item vectors and an interest distribution per user.
///
/// - Item tower: x_i = e_id[i] + e_cat[category(i)] + mean over its tokens of e_tok[t].
/// - User tower: u = mean of x over the user's last `historyLength` clicks (before the
///   event being learned).
/// - Score: s = q . x_i, with q = u; with `labelAware`, q = u + e0_{c0(i)}: the user
///   conditioned on the item's interest, so that at serving u_k = u + e0_k retrieves
///   interest k's items. (Measured: the conditioned query lets the loss lean on the code
///   vector, which also separates in-batch negatives of other interests, and u learns
///   less; so by default interests choose buckets and u ranks within them.)
/// - Losses per mini-batch of impressions: BCE of sigma(s) against the click; in-batch
///   InfoNCE over the batch's clicks at temperature tau; for SPARC, the interest
///   cross-entropy -log p(c0(i) | u, f), with the interest tower
///   p(k | u, f) = softmax_k((u + f) . e0_k / tau_p) over the user's behaviour summary u
///   and features f = e_segment + e_region + e_activity, tied to the codes themselves so
///   it follows them as they move. (Features feed the interest tower only: added to the
///   retrieval query they made both towers retrieve worse, offline and online.)
/// - The codebook learns by EMA on the clicked items' vectors (shared/baselines/
///   sparc-reference.md section 2.3, option B); gradients do not reach it.
///
/// Gradients are hand-written and checked against finite differences; tables use the
/// ranking models' row-wise lazy Adam.
public final class InterestTowers {
    public let settings: TowerSettings
    let idTable, categoryTable, tokenTable: EmbeddingTable
    /// User features: 256 segment rows, 256 region rows, 3 activity rows.
    let featureTable: EmbeddingTable
    var itemCategory: [UInt32]
    var itemTokens: [UInt32]
    let tokensPerItem: Int
    public let quantizer: ResidualQuantizer?
    var step = 0
    var sparse: [SparseGradient]
    /// Item vectors as of the last `refresh()`: what serving reads.
    public private(set) var itemVectors: [Float] = []
    /// Each item's interest (level-0 code) as of the last `refresh()`, and the inverted index.
    public private(set) var index: InterestIndex
    /// Per level-0 code, the largest |x - e0_k| of its items: with it, q . e0_k + |q| radius
    /// bounds q . x over the bucket, which orders the buckets an index search probes.
    public private(set) var radius: [Float] = []
    /// The index's buckets laid out for search: each bucket's items and their vectors
    /// side by side (bucket k at `bucketStart[k]..<bucketStart[k + 1]`), so a bucket is
    /// read in one sequential pass instead of rows scattered over the item cache.
    public private(set) var bucketStart: [Int] = []
    public private(set) var bucketItems: [UInt32] = []
    public private(set) var bucketRows: [Float] = []

    public init(_ settings: TowerSettings, categories: [UInt32], tokens: [UInt32], tokensPerItem: Int, vocabulary: Int, categoryCount: Int) {
        self.settings = settings
        let items = categories.count, d = settings.dim
        let scale = 1 / Float(d).squareRoot()
        idTable = EmbeddingTable(rows: items, dim: d, seed: settings.seed, tableID: 20, initScale: scale)
        categoryTable = EmbeddingTable(rows: categoryCount, dim: d, seed: settings.seed, tableID: 21, initScale: scale)
        tokenTable = EmbeddingTable(rows: vocabulary, dim: d, seed: settings.seed, tableID: 22, initScale: scale)
        featureTable = EmbeddingTable(rows: 256 + 256 + 3, dim: d, seed: settings.seed, tableID: 23, initScale: 0.1 * scale)
        itemCategory = categories
        itemTokens = tokens
        self.tokensPerItem = tokensPerItem
        quantizer = settings.multiInterest ? ResidualQuantizer(dim: d, codes: settings.codes, deadThreshold: settings.deadBelow, seed: settings.seed) : nil
        sparse = [idTable, categoryTable, tokenTable, featureTable].map { _ in SparseGradient(dim: d) }
        index = InterestIndex(codes: settings.codes.first ?? 1)
    }

    public var items: Int { itemCategory.count }
    /// Items with a cached vector (those known at the last `refresh()`): serving reads no
    /// further, so an item that arrived since is not served until its vector exists.
    public var vectorCount: Int { itemVectors.count / settings.dim }

    /// Takes in new items (the catalog feed): their categories and tokens.
    public func updateCatalog(categories: [UInt32], tokens: [UInt32], categoryCount: Int) {
        itemCategory = categories
        itemTokens = tokens
        idTable.grow(to: categories.count)
        categoryTable.grow(to: categoryCount)
    }

    // MARK: Towers

    /// x_i into `out` (`dim` floats), from the current tables.
    func itemVector(_ item: Int, into out: UnsafeMutablePointer<Float>) {
        let d = settings.dim
        let e = idTable.row(item), c = categoryTable.row(Int(itemCategory[item]))
        for k in 0..<d { out[k] = e[k] + c[k] }
        let share = 1 / Float(tokensPerItem)
        for t in 0..<tokensPerItem {
            let tok = tokenTable.row(Int(itemTokens[item * tokensPerItem + t]))
            for k in 0..<d { out[k] += share * tok[k] }
        }
    }

    /// The feature rows of a user: segment, region, activity.
    @inline(__always)
    static func featureRows(_ f: UserFeatures) -> (Int, Int, Int) {
        (Int(f.segment), 256 + Int(f.region), 512 + min(Int(f.activityBucket), 2))
    }

    func addFeatures(_ f: UserFeatures?, into out: UnsafeMutablePointer<Float>) {
        guard let f else { return }
        let (a, b, c) = Self.featureRows(f), d = settings.dim
        let ra = featureTable.row(a), rb = featureTable.row(b), rc = featureTable.row(c)
        for k in 0..<d { out[k] += ra[k] + rb[k] + rc[k] }
    }

    /// u into `out`: the mean of the history items' vectors (zero for an empty history).
    func userVector(_ history: UnsafeBufferPointer<UInt32>, into out: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>) {
        let d = settings.dim
        out.initialize(repeating: 0, count: d)
        guard !history.isEmpty else { return }
        let share = 1 / Float(history.count)
        for h in history {
            itemVector(Int(h), into: scratch)
            for k in 0..<d { out[k] += share * scratch[k] }
        }
    }

    /// u from the cached item vectors (serving).
    public func servingUserVector(_ history: UnsafeBufferPointer<UInt32>, into out: UnsafeMutablePointer<Float>) {
        let d = settings.dim
        out.initialize(repeating: 0, count: d)
        guard !history.isEmpty else { return }
        let share = 1 / Float(history.count)
        itemVectors.withUnsafeBufferPointer { x in
            for h in history where Int(h) < vectorCount {
                let row = x.baseAddress! + Int(h) * d
                for k in 0..<d { out[k] += share * row[k] }
            }
        }
    }

    /// p(k | u) over the level-0 codes into `out` (SPARC only).
    public func interestDistribution(_ u: UnsafePointer<Float>, into out: UnsafeMutablePointer<Double>) {
        guard let q = quantizer else { return }
        let n = q.codes[0], tau = Double(settings.interestTemperature)
        var top = -Double.infinity
        for k in 0..<n {
            out[k] = Double(dot(u, q.interestVector(k), settings.dim)) / tau
            top = max(top, out[k])
        }
        var total = 0.0
        for k in 0..<n { out[k] = exp(out[k] - top); total += out[k] }
        for k in 0..<n { out[k] /= total }
    }

    // MARK: Training

    /// One training example: the user's recent clicks before the event, the item shown,
    /// and whether it was clicked.
    public struct Example {
        public var history: ArraySlice<UInt32>
        public var features: UserFeatures?
        public var item: UInt32
        public var clicked: Bool
        public init(history: ArraySlice<UInt32>, features: UserFeatures? = nil, item: UInt32, clicked: Bool) {
            self.history = history
            self.features = features
            self.item = item
            self.clicked = clicked
        }
    }

    /// The loss of a batch and, when `accumulate`, its gradients in `sparse`.
    func loss(_ batch: [Example], accumulate: Bool) -> Float {
        let d = settings.dim, n = batch.count
        guard n > 0 else { return 0 }
        var u = [Float](repeating: 0, count: n * d), x = [Float](repeating: 0, count: n * d), q = [Float](repeating: 0, count: n * d)
        var du = [Float](repeating: 0, count: n * d), dx = [Float](repeating: 0, count: n * d)
        var scratch = [Float](repeating: 0, count: d)
        var code = [Int](repeating: 0, count: n)
        // Examples from one slate share their history: the user vector is computed once per
        // run of consecutive examples with the same history, and its gradient sent back once.
        var leader = [Int](repeating: 0, count: n)
        for (b, e) in batch.enumerated() {
            if b > 0, batch[b - 1].history.count == e.history.count, batch[b - 1].history.elementsEqual(e.history) {
                leader[b] = leader[b - 1]
                for k in 0..<d { u[b * d + k] = u[leader[b] * d + k] }
            } else {
                leader[b] = b
                u.withUnsafeMutableBufferPointer { ub in
                    scratch.withUnsafeMutableBufferPointer { s in
                        e.history.withUnsafeBufferPointer { h in userVector(h, into: ub.baseAddress! + b * d, scratch: s.baseAddress!) }
                    }
                }
            }
            x.withUnsafeMutableBufferPointer { itemVector(Int(e.item), into: $0.baseAddress! + b * d) }
            for k in 0..<d { q[b * d + k] = u[b * d + k] }
            if let quantizer {
                // The item's interest as the codebook stands (no gradient to the codes).
                code[b] = x.withUnsafeBufferPointer { quantizer.interest(of: $0.baseAddress! + b * d) }
                if settings.labelAware {
                    let e0 = quantizer.interestVector(code[b])
                    for k in 0..<d { q[b * d + k] += e0[k] }
                }
            }
        }
        var total: Float = 0
        // BCE of sigma(q . x) against the click, every impression.
        for b in 0..<n {
            let s = (0..<d).reduce(Float(0)) { $0 + q[b * d + $1] * x[b * d + $1] }
            let y: Float = batch[b].clicked ? 1 : 0
            total += (max(s, 0) - s * y + log1p(exp(-abs(s)))) / Float(n)
            let g = (1 / (1 + exp(-s)) - y) / Float(n)
            for k in 0..<d {
                du[b * d + k] += g * x[b * d + k]
                dx[b * d + k] += g * q[b * d + k]
            }
        }
        // In-batch InfoNCE over the clicks: each clicked pair against the batch's other clicks.
        let positives = (0..<n).filter { batch[$0].clicked }
        let p = Float(positives.count)
        if positives.count > 1 {
            let tau = settings.temperature, w = settings.contrastiveWeight
            var logits = [Float](repeating: 0, count: positives.count)
            for (a, i) in positives.enumerated() {
                var top = -Float.infinity
                for (c, j) in positives.enumerated() {
                    logits[c] = (0..<d).reduce(Float(0)) { $0 + q[i * d + $1] * x[j * d + $1] } / tau
                    top = max(top, logits[c])
                }
                var z: Float = 0
                for c in logits.indices { logits[c] = exp(logits[c] - top); z += logits[c] }
                total += w * -log(logits[a] / z) / p
                for (c, j) in positives.enumerated() {
                    let g = w * (logits[c] / z - (c == a ? 1 : 0)) / (p * tau)
                    for k in 0..<d {
                        du[i * d + k] += g * x[j * d + k]
                        dx[j * d + k] += g * q[i * d + k]
                    }
                }
            }
        }
        // The commitment term: each item vector pulled toward its residual codes. With the
        // encoder and decoder the identity, r_0 = x and r_{l+1} = r_l - e_l, so
        // d/dx sum_l |r_l - e_l|^2 = 2 sum_l (r_l - e_l); the codes are constants here.
        if let quantizer, settings.quantizerWeight > 0 {
            let w = settings.quantizerWeight * settings.commitment / Float(n)
            var codes = [Int32](repeating: 0, count: quantizer.levels)
            var r = [Float](repeating: 0, count: d)
            for b in 0..<n {
                x.withUnsafeBufferPointer { xb in codes.withUnsafeMutableBufferPointer { quantizer.encode(xb.baseAddress! + b * d, into: $0.baseAddress!) } }
                for k in 0..<d { r[k] = x[b * d + k] }
                for l in 0..<quantizer.levels {
                    let e = quantizer.codebook.withUnsafeBufferPointer { $0.baseAddress! + quantizer.code(l, Int(codes[l])) }
                    for k in 0..<d {
                        let diff = r[k] - e[k]
                        total += w * diff * diff
                        dx[b * d + k] += 2 * w * diff
                        r[k] = diff
                    }
                }
            }
        }
        // The interest cross-entropy: p(c0(i) | u) for each click.
        if let quantizer, !positives.isEmpty {
            let codes = quantizer.codes[0], lambda = settings.interestWeight
            var dist = [Double](repeating: 0, count: codes)
            var input = [Float](repeating: 0, count: d), dInput = input
            for i in positives {
                for j in 0..<d { input[j] = u[i * d + j]; dInput[j] = 0 }
                input.withUnsafeMutableBufferPointer { addFeatures(batch[i].features, into: $0.baseAddress!) }
                input.withUnsafeBufferPointer { ib in dist.withUnsafeMutableBufferPointer { interestDistribution(ib.baseAddress!, into: $0.baseAddress!) } }
                total += lambda * -Float(log(max(dist[code[i]], 1e-30))) / p
                for k in 0..<codes {
                    let g = lambda * (Float(dist[k]) - (k == code[i] ? 1 : 0)) / (p * settings.interestTemperature)
                    let e = quantizer.interestVector(k)
                    for j in 0..<d { dInput[j] += g * e[j] }
                }
                for j in 0..<d { du[i * d + j] += dInput[j] }
                if accumulate, let f = batch[i].features {
                    let (r0, r1, r2) = Self.featureRows(f)
                    for row in [r0, r1, r2] {
                        let slot = sparse[3].slot(row)
                        for j in 0..<d { sparse[3].gradients[slot + j] += dInput[j] }
                    }
                }
            }
        }
        guard accumulate else { return total }
        // Back through the towers: x to its tables; u (summed over the examples sharing
        // it) to the history items.
        for b in (0..<n).reversed() where leader[b] != b {
            for k in 0..<d { du[leader[b] * d + k] += du[b * d + k] }
        }
        for (b, e) in batch.enumerated() {
            backItem(Int(e.item), dx, b * d)
            if leader[b] == b && !e.history.isEmpty {
                let share = 1 / Float(e.history.count)
                for k in 0..<d { du[b * d + k] *= share }
                for h in e.history { backItem(Int(h), du, b * d) }
            }
        }
        return total
    }

    /// Adds the gradient `g[offset..<offset + dim]` with respect to x_item to its rows.
    func backItem(_ item: Int, _ g: [Float], _ offset: Int) {
        let d = settings.dim
        let a = sparse[0].slot(item)
        for k in 0..<d { sparse[0].gradients[a + k] += g[offset + k] }
        let c = sparse[1].slot(Int(itemCategory[item]))
        for k in 0..<d { sparse[1].gradients[c + k] += g[offset + k] }
        let share = 1 / Float(tokensPerItem)
        for t in 0..<tokensPerItem {
            let s = sparse[2].slot(Int(itemTokens[item * tokensPerItem + t]))
            for k in 0..<d { sparse[2].gradients[s + k] += share * g[offset + k] }
        }
    }

    /// Learns from a batch: one Adam step on the rows it touched, then the codebook's EMA
    /// step on the clicked items' new vectors. Returns the batch's loss before the step.
    @discardableResult
    public func train(_ batch: [Example]) -> Float {
        for i in sparse.indices { sparse[i].clear() }
        let l = loss(batch, accumulate: true)
        step += 1
        let adam = AdamSettings(learningRate: settings.learningRate)
        for (table, g) in zip([idTable, categoryTable, tokenTable, featureTable], sparse) { table.applyAdam(g, step: step, adam) }
        if let quantizer {
            let clicked = batch.filter(\.clicked)
            var vectors = [Float](repeating: 0, count: clicked.count * settings.dim)
            vectors.withUnsafeMutableBufferPointer { v in
                for (i, e) in clicked.enumerated() { itemVector(Int(e.item), into: v.baseAddress! + i * settings.dim) }
            }
            vectors.withUnsafeBufferPointer { quantizer.update($0.baseAddress!, count: clicked.count) }
            if step % settings.restartEvery == 0 { quantizer.restartDeadCodes() }
        }
        return l
    }

    /// Recomputes every item's vector and (SPARC) its interest, moving items between the
    /// index's buckets; `live` marks the items retrieval may return.
    public func refresh(live: [Bool]) {
        let d = settings.dim
        if itemVectors.count < items * d { itemVectors.append(contentsOf: repeatElement(0, count: items * d - itemVectors.count)) }
        itemVectors.withUnsafeMutableBufferPointer { x in
            for i in 0..<items { itemVector(i, into: x.baseAddress! + i * d) }
        }
        guard let quantizer else { return }
        for i in 0..<items {
            if i < live.count && live[i] {
                let k = itemVectors.withUnsafeBufferPointer { quantizer.interest(of: $0.baseAddress! + i * d) }
                index.set(UInt32(i), code: k)
            } else {
                index.remove(UInt32(i))
            }
        }
        updateRadii()
        layOutBuckets()
    }

    func layOutBuckets() {
        let d = settings.dim
        bucketStart.removeAll(keepingCapacity: true)
        bucketItems.removeAll(keepingCapacity: true)
        bucketRows.removeAll(keepingCapacity: true)
        bucketRows.reserveCapacity(index.count * d)
        itemVectors.withUnsafeBufferPointer { x in
            for bucket in index.buckets {
                bucketStart.append(bucketItems.count)
                for item in bucket {
                    bucketItems.append(item)
                    bucketRows.append(contentsOf: UnsafeBufferPointer(start: x.baseAddress! + Int(item) * d, count: d))
                }
            }
        }
        bucketStart.append(bucketItems.count)
    }

    func updateRadii() {
        guard let quantizer else { return }
        let d = settings.dim
        radius = [Float](repeating: 0, count: quantizer.codes[0])
        itemVectors.withUnsafeBufferPointer { x in
            for k in 0..<quantizer.codes[0] {
                let e = quantizer.interestVector(k)
                for item in index.buckets[k] {
                    let row = x.baseAddress! + Int(item) * d
                    var r2: Float = 0
                    for j in 0..<d { r2 += (row[j] - e[j]) * (row[j] - e[j]) }
                    radius[k] = max(radius[k], r2.squareRoot())
                }
            }
        }
    }

    /// Tests: item vectors given directly, as if the towers had produced them.
    func setItemVectorsForTesting(_ vectors: [Float]) { itemVectors = vectors }

    /// Tests: re-assigns every live item's interest from the current item vectors.
    func reindexForTesting(live: [Bool]) {
        guard let quantizer else { return }
        for i in 0..<items where live[i] {
            let k = itemVectors.withUnsafeBufferPointer { quantizer.interest(of: $0.baseAddress! + i * settings.dim) }
            index.set(UInt32(i), code: k)
        }
        updateRadii()
        layOutBuckets()
    }
}
