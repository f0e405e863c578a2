import Foundation
import RecCore

/// How the m x n dot products between user and content embeddings become one score.
public enum PolyMatching: String, Sendable, CaseIterable {
    /// EmbSum's attention-matched form: weights softmax(flatten(A gelu(B W^s)^T)).
    case learned
    /// The plain form: weights softmax(flatten(A B^T)).
    case plain
}

public struct PolyModelSettings: Sendable, Equatable {
    /// Width of token states, content vectors and poly embeddings (also the context codes').
    public var dim = 64
    /// m: user poly-embeddings (UPE).
    public var userCodes = 32
    /// n: content poly-embeddings (CPE).
    public var contentCodes = 4
    /// The history is the last sessions x sessionSize clicks, split into sessions that are
    /// encoded independently.
    public var sessionSize = 4
    public var sessions = 15
    /// r: sampled negatives per positive in the NCE loss (impression non-clicks first).
    public var negatives = 4
    public var temperature: Float = 1
    public var matching = PolyMatching.learned
    /// lambda: weight of the summary loss (the stand-in for EmbSum's summarisation loss).
    public var summaryWeight: Float = 1
    /// T: the user's top TF-IDF tokens the summary vector must predict.
    public var summaryTokens = 16
    /// Sampled-softmax negatives of the summary decoder (a full softmax when the vocabulary
    /// is no larger than this).
    public var summaryNegatives = 256
    public var adam = AdamSettings(learningRate: 0.01)
    public var seed: UInt64 = 1
    public init() {}

    /// Clicks the model reads per user.
    public var historyLength: Int { sessions * sessionSize }
}

/// EmbSum-style poly-attention ranking (Zhang et al., RecSys 2024, arXiv 2405.11441) over
/// the simulator's content tokens, with hand-written forward and backward passes
/// (shared/baselines/embsum-reference.md §4, the stand-in without a language model):
///
/// - content: a token table (content tokens, then one token per category); an item's token
///   states are its tokens' rows; a history item's content vector is
///   h = LN(W_h mean(token states) + e_sos);
/// - sessions: the last g x p clicks in g sessions of p, encoded independently: each
///   content vector meets only its own session, z_i = h_i + W_c mean(h in its session);
/// - summary: s_u = attention pooling of the z_i with one learned query (a user with no
///   history gets a learned prior), trained to predict the user's top TF-IDF tokens
///   through the tied token table (standing in for the T5 decoder and the LLM summary);
/// - UPE: m codes attend over [z_1..z_P; s_u]; CPE: n codes attend over the item's token
///   states; score s = sum_jk w_jk <A_j, B_k> with w = softmax(flatten(A gelu(B W^s)^T));
/// - NCE over each click and r negatives, plus lambda times the summary loss; Adam (row-wise
///   lazy on the token table).
///
/// Nothing reads an item's id: a new item is scored from its tokens on its first tick.
/// Click probabilities for serving come from a Platt calibration of the score fitted on
/// impressions (the NCE score is a relative logit, not a probability), so Poly's scores
/// sit on the same scale as the other models' and a blend can compare them.
public final class PolyModel {
    public let settings: PolyModelSettings
    /// Content tokens (the catalog's vocabulary); category c has token row vocabulary + c.
    public let vocabulary: Int
    let tokens: EmbeddingTable
    let layout: PolyLayout
    var dense: [Float]
    var denseM: [Float]
    var denseV: [Float]
    var denseGradient: [Float]
    var sparse: SparseGradient
    /// Each item's token rows (tokensPerItem content tokens and its category's row).
    public private(set) var itemTokens: [UInt32] = []
    public let tokensPerItem: Int
    /// Token rows per item: its content tokens and its category.
    var rowsPerItem: Int { tokensPerItem + 1 }
    /// Items holding each content token (the summary target's IDF).
    var documentFrequency: [Int32]
    /// Items negatives are drawn from (the live catalog).
    var negativePool: [ItemID] = []
    public internal(set) var step = 0
    /// Platt calibration: P(click) = sigmoid(calibrationScale s + calibrationBias).
    public internal(set) var calibrationScale: Float = 1
    public internal(set) var calibrationBias: Float = -2
    let user: UserScratch
    let items: [ItemScratch]
    /// The users' running summary states, whose top TF-IDF tokens the summary vector is
    /// trained to predict; nil: the tokens of the clicks in the model's window.
    public var profiles: TokenProfiles?
    /// Per item served: its CPE and gelu(B W^s), valid while `cacheStep` equals `step`.
    var cacheSlot: [Int32] = []
    var cacheStep: [Int32] = []
    var cache: [Float] = []

    /// - Parameters:
    ///   - tokens: items x tokensPerItem content tokens, each below `vocabulary`.
    ///   - categories: each item's category, below `categoryCount`.
    public init(_ settings: PolyModelSettings, vocabulary: Int, tokensPerItem: Int, categoryCount: Int,
                tokens itemContent: [UInt32], categories: [UInt32]) {
        let s = settings, d = s.dim
        precondition(d > 0 && s.userCodes > 0 && s.contentCodes > 0 && s.negatives > 0 && s.sessions > 0 && s.sessionSize > 0)
        self.settings = settings
        self.vocabulary = vocabulary
        self.tokensPerItem = tokensPerItem
        tokens = EmbeddingTable(rows: vocabulary + categoryCount, dim: d, seed: s.seed, tableID: 40,
                                initScale: 1 / Float(d).squareRoot())
        sparse = SparseGradient(dim: d)
        layout = PolyLayout(d: d, m: s.userCodes, n: s.contentCodes, vocabulary: vocabulary)
        dense = layout.initialValues(seed: s.seed)
        denseM = [Float](repeating: 0, count: layout.count)
        denseV = denseM
        denseGradient = denseM
        documentFrequency = [Int32](repeating: 0, count: vocabulary)
        user = UserScratch(s, vocabulary: vocabulary)
        items = (0...s.negatives).map { _ in ItemScratch(s, rows: tokensPerItem + 1) }
        updateCatalog(tokens: itemContent, categories: categories, categoryCount: categoryCount)
    }

    /// Takes in the catalog feed: every item's tokens and category (new items at the end),
    /// and which items negatives may be drawn from.
    public func updateCatalog(tokens itemContent: [UInt32], categories: [UInt32], categoryCount: Int, live: [ItemID]? = nil) {
        let known = itemTokens.count / rowsPerItem
        let count = categories.count
        precondition(itemContent.count >= count * tokensPerItem)
        tokens.grow(to: vocabulary + categoryCount)
        itemTokens.reserveCapacity(count * rowsPerItem)
        for item in known..<count {
            for k in 0..<tokensPerItem {
                let t = itemContent[item * tokensPerItem + k]
                precondition(Int(t) < vocabulary, "item \(item) has token \(t), outside the vocabulary of \(vocabulary)")
                itemTokens.append(t)
                documentFrequency[Int(t)] += 1
            }
            itemTokens.append(UInt32(vocabulary) + categories[item])
        }
        negativePool = live ?? (0..<ItemID(count)).map { $0 }
        cacheSlot.append(contentsOf: repeatElement(-1, count: max(0, count - cacheSlot.count)))
    }

    /// Items the model has content for.
    public var itemCount: Int { itemTokens.count / rowsPerItem }

    /// Bytes of the parameters with their optimizer state.
    public var bytes: Int { tokens.rows * tokens.bytesPerRow + layout.count * 4 * 4 }

    // MARK: User side

    /// Encodes a user (history oldest first; the last g x p clicks are read) into the
    /// scratch: content vectors, sessions, summary and the m user poly-embeddings (A).
    func encodeUser(_ history: UnsafeBufferPointer<HistoryEntry>) {
        let s = settings, d = s.dim, c = user, l = layout
        let count = min(history.count, s.historyLength)
        let window = history.count - count
        c.count = count
        dense.withUnsafeBufferPointer { wp in
            let p = wp.baseAddress!
            for i in 0..<count {
                let item = Int(history[window + i].item)
                c.items[i] = Int32(item)
                // x = mean of the item's token rows; u = W_h x + e_sos; h = LN(u).
                let x = c.meanTokens + i * d
                x.initialize(repeating: 0, count: d)
                let rows = itemTokens.withUnsafeBufferPointer { $0.baseAddress! + item * rowsPerItem }
                for r in 0..<rowsPerItem { axpy(1 / Float(rowsPerItem), tokens.row(Int(rows[r])), x, d) }
                let u = c.normalized + i * d
                for o in 0..<d { u[o] = dot(p + l.wh + o * d, x, d) + p[l.sos + o] }
                c.sigma[i] = layerNorm(u, d)
                let z = c.z + i * d
                for o in 0..<d { z[o] = p[l.gamma + o] * u[o] + p[l.beta + o] }
            }
            // Sessions of p consecutive clicks: each content vector meets its own session's
            // mean through W_c (zero at first, so the encoder starts from plain content).
            for k in 0..<c.sessionCount {
                let range = c.session(k), mean = c.sessionMean + k * d
                mean.initialize(repeating: 0, count: d)
                for i in range { axpy(1 / Float(range.count), c.z + i * d, mean, d) }
                c.mixed.initialize(repeating: 0, count: d)
                for o in 0..<d { c.mixed[o] = dot(p + l.wc + o * d, mean, d) }
                for i in range { axpy(1, c.mixed, c.z + i * d, d) }
            }
            // Summary s_u, appended as the last row of Z.
            let summary = c.z + count * d
            if count == 0 {
                summary.update(from: p + l.prior, count: d)
            } else {
                l.summaryPooling.forward(p, z: c.z, count, tanhStates: c.summaryStates, alpha: c.summaryAlpha, out: summary)
            }
            l.user.forward(p, z: c.z, count + 1, tanhStates: c.userStates, alpha: c.userAlpha, out: c.upe)
        }
    }

    // MARK: Item side

    /// The item's n content poly-embeddings (B) and gelu(B W^s) (G), into `slot`.
    func encodeItem(_ item: Int, _ slot: ItemScratch) {
        let d = settings.dim, n = settings.contentCodes, l = layout
        let rows = itemTokens.withUnsafeBufferPointer { $0.baseAddress! + item * rowsPerItem }
        for r in 0..<rowsPerItem { (slot.states + r * d).update(from: tokens.row(Int(rows[r])), count: d) }
        dense.withUnsafeBufferPointer { wp in
            let p = wp.baseAddress!
            l.content.forward(p, z: slot.states, rowsPerItem, tanhStates: slot.tanhStates, alpha: slot.alpha, out: slot.cpe)
            guard settings.matching == .learned else { return }
            for k in 0..<n {
                let pre = slot.pre + k * d
                pre.initialize(repeating: 0, count: d)
                for a in 0..<d { axpy(slot.cpe[k * d + a], p + l.ws + a * d, pre, d) }
                for b in 0..<d { slot.g[k * d + b] = gelu(pre[b]) }
            }
        }
    }

    /// The matching score of the encoded user against B (and G): fills the m x n products
    /// and weights in `k` and `w` when given.
    func match(_ b: UnsafePointer<Float>, _ g: UnsafePointer<Float>, products k: UnsafeMutablePointer<Float>, weights w: UnsafeMutablePointer<Float>) -> Float {
        let d = settings.dim, m = settings.userCodes, n = settings.contentCodes, a = user.upe
        var top = -Float.infinity
        for j in 0..<m {
            for c in 0..<n {
                k[j * n + c] = dot(a + j * d, b + c * d, d)
                w[j * n + c] = settings.matching == .learned ? dot(a + j * d, g + c * d, d) : k[j * n + c]
                top = max(top, w[j * n + c])
            }
        }
        var total: Float = 0
        for i in 0..<m * n {
            w[i] = exp(w[i] - top)
            total += w[i]
        }
        var score: Float = 0
        for i in 0..<m * n {
            w[i] /= total
            score += w[i] * k[i]
        }
        return score
    }

    // MARK: Scoring

    /// Raw matching scores (the NCE logits) of one user against many candidates: the user
    /// is encoded once; each candidate's CPE comes from a cache that lives until the next
    /// training step.
    public func logits(history: UnsafeBufferPointer<HistoryEntry>, candidates: UnsafeBufferPointer<ItemID>, into out: UnsafeMutablePointer<Float>) {
        encodeUser(history)
        let d = settings.dim, n = settings.contentCodes, width = 2 * n * d
        let slot = items[0]
        for (i, candidate) in candidates.enumerated() {
            let item = Int(candidate)
            var at = Int(cacheSlot[item])
            if at < 0 {
                at = cacheStep.count
                cacheSlot[item] = Int32(at)
                cacheStep.append(-1)
                cache.append(contentsOf: repeatElement(0, count: width))
            }
            if cacheStep[at] != Int32(truncatingIfNeeded: step) {
                encodeItem(item, slot)
                cache.withUnsafeMutableBufferPointer { c in
                    (c.baseAddress! + at * width).update(from: slot.cpe, count: n * d)
                    (c.baseAddress! + at * width + n * d).update(from: slot.g, count: n * d)
                }
                cacheStep[at] = Int32(truncatingIfNeeded: step)
            }
            out[i] = cache.withUnsafeBufferPointer { c in
                match(c.baseAddress! + at * width, c.baseAddress! + at * width + n * d, products: slot.products, weights: slot.weights)
            }
        }
    }

    /// Click probabilities (calibrated) of one user against many candidates.
    public func score(history: UnsafeBufferPointer<HistoryEntry>, candidates: UnsafeBufferPointer<ItemID>, into out: UnsafeMutablePointer<Float>) {
        logits(history: history, candidates: candidates, into: out)
        for i in 0..<candidates.count { out[i] = calibrated(out[i]) }
    }

    /// The calibrated click probability of a matching score.
    @inline(__always)
    public func calibrated(_ logit: Float) -> Float { sigmoid(calibrationScale * logit + calibrationBias) }

    /// Refits the Platt calibration on one batch of raw scores and click labels: damped
    /// Newton steps of the two-parameter logistic regression from the current fit (each
    /// step halved until the loss falls), with a small ridge toward the current fit so a
    /// batch without clicks cannot send it to infinity. The model itself is untouched.
    public func calibrate(logits: UnsafeBufferPointer<Float>, labels: UnsafeBufferPointer<Float>) {
        guard !logits.isEmpty else { return }
        let ridge = 1e-3 * Double(logits.count)
        let a0 = Double(calibrationScale), b0 = Double(calibrationBias)
        func loss(_ a: Double, _ b: Double) -> Double {
            var total = 0.5 * ridge * ((a - a0) * (a - a0) + (b - b0) * (b - b0))
            for i in logits.indices {
                let z = a * Double(logits[i]) + b
                total += max(z, 0) - z * Double(labels[i]) + Foundation.log1p(Foundation.exp(-abs(z)))
            }
            return total
        }
        var a = a0, b = b0, current = loss(a, b)
        for _ in 0..<8 {
            var ga = ridge * (a - a0), gb = ridge * (b - b0)
            var haa = ridge, hab = 0.0, hbb = ridge
            for i in logits.indices {
                let x = Double(logits[i])
                let p = 1 / (1 + Foundation.exp(-(a * x + b)))
                let r = p - Double(labels[i]), w = p * (1 - p)
                ga += r * x; gb += r
                haa += w * x * x; hab += w * x; hbb += w
            }
            let det = haa * hbb - hab * hab
            guard det > 0, det.isFinite else { break }
            var da = (hbb * ga - hab * gb) / det, db = (haa * gb - hab * ga) / det
            var accepted = false
            for _ in 0..<20 {
                let next = loss(a - da, b - db)
                if next <= current {
                    a -= da
                    b -= db
                    accepted = current - next > 1e-9 * max(1, current)
                    current = next
                    break
                }
                da /= 2
                db /= 2
            }
            if !accepted { break }
        }
        calibrationScale = Float(a)
        calibrationBias = Float(b)
    }

    /// The stand-in for EmbSum's generated summary: the `count` tokens the user's summary
    /// vector predicts best.
    public func summary(history: UnsafeBufferPointer<HistoryEntry>, count: Int) -> [UInt32] {
        encodeUser(history)
        let d = settings.dim, s = user.z + user.count * d
        var scored: [(Float, UInt32)] = []
        dense.withUnsafeBufferPointer { p in
            for t in 0..<vocabulary { scored.append((dot(tokens.row(t), s, d) + p[layout.outputBias + t], UInt32(t))) }
        }
        return scored.sorted { $0 > $1 }.prefix(count).map(\.1)
    }
}

/// Normalises `u` in place to zero mean and unit variance (epsilon 1e-5); returns sigma.
@inline(__always)
func layerNorm(_ u: UnsafeMutablePointer<Float>, _ d: Int) -> Float {
    var mean: Float = 0
    for i in 0..<d { mean += u[i] }
    mean /= Float(d)
    var variance: Float = 0
    for i in 0..<d { variance += (u[i] - mean) * (u[i] - mean) }
    let sigma = (variance / Float(d) + 1e-5).squareRoot()
    for i in 0..<d { u[i] = (u[i] - mean) / sigma }
    return sigma
}

/// Where each dense parameter lives in the flat parameter array.
struct PolyLayout {
    let d: Int
    /// Content encoder: W_h (d x d, out x in), e_sos, LayerNorm gain and bias.
    let wh, sos, gamma, beta: Int
    /// Session mixing W_c (out x in), and the prior summary of a user with no history.
    let wc, prior: Int
    /// Summary decoder's per-token bias (vocabulary).
    let outputBias: Int
    /// W^s of the learned matching (d x d, in x out).
    let ws: Int
    let summaryPooling, user, content: PolyAttention
    let count: Int

    init(d: Int, m: Int, n: Int, vocabulary: Int) {
        self.d = d
        var next = 0
        func take(_ size: Int) -> Int {
            defer { next += size }
            return next
        }
        wh = take(d * d); sos = take(d); gamma = take(d); beta = take(d)
        wc = take(d * d); prior = take(d)
        summaryPooling = PolyAttention(w: take(d * d), codes: take(d), count: 1, d: d)
        user = PolyAttention(w: take(d * d), codes: take(m * d), count: m, d: d)
        content = PolyAttention(w: take(d * d), codes: take(n * d), count: n, d: d)
        ws = take(d * d)
        outputBias = take(vocabulary)
        count = next
    }

    /// Matrices N(0, 1/d) (W_c zero, so sessions start unmixed); codes N(0, (5/3)^2 / d)
    /// (tanh's gain, as the reference's xavier init); LayerNorm gain 1; biases and the
    /// prior's offsets 0, e_sos and the prior small.
    func initialValues(seed: UInt64) -> [Float] {
        var rng = RandomStream(seed: seed, 41, 1)
        var v = [Float](repeating: 0, count: count)
        let scale = 1 / Float(d).squareRoot()
        func fill(_ at: Int, _ size: Int, _ s: Float) { for i in at..<at + size { v[i] = s * Float(rng.nextGaussian()) } }
        fill(wh, d * d, scale)
        fill(sos, d, 0.1)
        for i in gamma..<gamma + d { v[i] = 1 }
        fill(prior, d, 0.1)
        for a in [summaryPooling, user, content] {
            fill(a.w, d * d, scale)
            fill(a.codes, a.count * d, 5 / 3 * scale)
        }
        fill(ws, d * d, scale)
        return v
    }
    // No L2 penalty: the reference sheet gives none.
}

/// The user side's working memory, allocated once.
final class UserScratch {
    let d, m, sessionSize: Int
    var count = 0
    var sessionCount: Int { (count + sessionSize - 1) / sessionSize }
    func session(_ k: Int) -> Range<Int> { k * sessionSize..<min(count, (k + 1) * sessionSize) }
    let items: UnsafeMutablePointer<Int32>
    /// Per history position: mean token row, normalised u (x hat), sigma.
    let meanTokens, normalized, sigma: UnsafeMutablePointer<Float>
    /// Z: the session-encoded content vectors, then the summary (P + 1 rows).
    let z: UnsafeMutablePointer<Float>
    let sessionMean, mixed: UnsafeMutablePointer<Float>
    let summaryStates, summaryAlpha, userStates, userAlpha: UnsafeMutablePointer<Float>
    /// A (m x d) and its gradient.
    let upe, dUpe: UnsafeMutablePointer<Float>
    // Backward.
    let dz, dSessions, work, dh, du, dx: UnsafeMutablePointer<Float>
    let summaryTargets: UnsafeMutablePointer<Int32>
    let summaryWeights, summaryLogits: UnsafeMutablePointer<Float>
    var tokenCounts: [Int32]
    /// The history's distinct tokens and their TF-IDF weights; the NCE logits of a click.
    var seen: [Int32] = []
    var ranked: [(Float, Int32)] = []
    let nceLogits: UnsafeMutablePointer<Float>
    private var all: [UnsafeMutableRawPointer] = []

    init(_ s: PolyModelSettings, vocabulary: Int) {
        let d = s.dim, length = s.historyLength
        self.d = d
        m = s.userCodes
        sessionSize = s.sessionSize
        var all: [UnsafeMutableRawPointer] = []
        func f(_ n: Int) -> UnsafeMutablePointer<Float> {
            let p = UnsafeMutablePointer<Float>.allocate(capacity: max(1, n))
            p.initialize(repeating: 0, count: max(1, n))
            all.append(UnsafeMutableRawPointer(p))
            return p
        }
        items = .allocate(capacity: length)
        meanTokens = f(length * d); normalized = f(length * d); sigma = f(length)
        z = f((length + 1) * d)
        sessionMean = f(s.sessions * d); mixed = f(d)
        summaryStates = f(length * d); summaryAlpha = f(length)
        userStates = f((length + 1) * d); userAlpha = f(m * (length + 1))
        upe = f(m * d); dUpe = f(m * d)
        dz = f((length + 1) * d); dSessions = f(s.sessions * d)
        work = f(m * (length + 1) + 2 * d)
        dh = f(d); du = f(d); dx = f(d)
        let candidates = s.summaryTokens + min(vocabulary, s.summaryNegatives)
        summaryTargets = .allocate(capacity: candidates)
        summaryWeights = f(candidates); summaryLogits = f(candidates)
        tokenCounts = [Int32](repeating: 0, count: vocabulary)
        nceLogits = f(s.negatives + 1)
        self.all = all
    }

    deinit {
        for p in all { p.deallocate() }
        items.deallocate()
        summaryTargets.deallocate()
    }
}

/// One candidate item's working memory.
final class ItemScratch {
    /// Token states (rows x d), their tanh states, CPE attention (n x rows), B and the
    /// matching's pre-activations and G (n x d), the m x n products and weights.
    let states, tanhStates, alpha, cpe, pre, g, products, weights: UnsafeMutablePointer<Float>
    var item = 0
    var score: Float = 0
    // Backward.
    let dStates, dCpe, dG, work: UnsafeMutablePointer<Float>
    private var all: [UnsafeMutablePointer<Float>] = []

    init(_ s: PolyModelSettings, rows: Int) {
        let d = s.dim, n = s.contentCodes, m = s.userCodes
        var all: [UnsafeMutablePointer<Float>] = []
        func f(_ count: Int) -> UnsafeMutablePointer<Float> {
            let p = UnsafeMutablePointer<Float>.allocate(capacity: max(1, count))
            p.initialize(repeating: 0, count: max(1, count))
            all.append(p)
            return p
        }
        states = f(rows * d); tanhStates = f(rows * d); alpha = f(n * rows)
        cpe = f(n * d); pre = f(n * d); g = f(n * d); products = f(m * n); weights = f(m * n)
        dStates = f(rows * d); dCpe = f(n * d); dG = f(n * d); work = f(n * rows + 2 * d)
        self.all = all
    }

    deinit { for p in all { p.deallocate() } }
}
