import Foundation
import Models
import RecCore
import Scenario

/// Serves one arm: retrieves candidates, scores them with the arm's ranking model and
/// builds a slate with its policy, logging the propensity of every item it shows.
///
/// A propensity is the probability, given the candidates and their scores, that the
/// policy put that item at that position (conditional on the positions before it).
/// With random ranking every ordering of the candidates is equally likely, so the
/// propensity at position j of n candidates is 1 / (n - j) whatever the policy.
/// Thompson sampling has no closed form: its propensity is the marginal probability of
/// the item at that position, estimated by resampling the posteriors.
///
/// All scratch space is allocated once; serving a request allocates nothing.
public struct ArmServer: Sendable {
    public let settings: ArmSettings
    let armIndex: Int
    let seed: UInt64
    /// Items that can be served (the catalog feed), ascending.
    var liveItems: [ItemID]
    var isLive: [Bool]
    /// Refreshed from the trainer at the end of each tick.
    var popular: [ItemID] = []
    // Scratch, reused by every request.
    var seenStamp: [UInt32]
    var stamp: UInt32 = 0
    var candidates: [ItemID]
    var scores: [Float]
    var order: [Int32]
    var taken: [Bool]
    var hits: [Int] = []
    var shownIndex: [Int] = []
    /// The ranking's scores before a policy changed them (UCB, Thompson).
    var baseScores: [Float]

    /// Policies of other arms to evaluate off-policy on this arm's top slot: for each
    /// request served, the chance each would have put the shown top item there.
    public var offPolicyTargets: [Policy] = []
    /// One record per request served since `clearOffPolicyLog()`, in serving order.
    public private(set) var offPolicyLog: [OffPolicyRecord] = []
    /// SPARC: where each shown item came from (interest, its probability, explored or
    /// not), per request served since `clearOffPolicyLog()`, in serving order.
    public private(set) var interestLog: [InterestLogEntry] = []
    /// Tower retrieval: each candidate's source, aligned with `candidates`; and each
    /// candidate item's index in `candidates` (valid where its stamp is current).
    var sources: [RetrievedCandidate] = []
    var candidateIndex: [Int32]
    var userVector: [Float] = []
    var distribution: [Double] = []
    var serving: [Double] = []
    var chosen: [Int] = []
    var weights: [Double] = []
    var query: [Float] = []
    var top = TopItems(), probing = TopItems()
    var merged: [(key: Float, item: ItemID, source: RetrievedCandidate)] = []
    /// Interest sampling: each interest's best untaken candidate and its weight, and
    /// which interests a position has seen (by stamp).
    var firsts: [(candidate: Int, weight: Double)] = []
    var interestSeen: [UInt32] = []
    var interestStamp: UInt32 = 0
    /// The tick each item arrived in the run (Int32.min for the initial catalog), and a
    /// blend's young candidates: their indices, items and Poly scores.
    var arrived: [Int32]
    var youngIndex: [Int] = []
    var youngItems: [ItemID] = []
    var youngScores: [Float] = []

    public init(settings: ArmSettings, armIndex: Int, catalogSize: Int, seed: UInt64) {
        self.settings = settings
        self.armIndex = armIndex
        self.seed = seed
        liveItems = (0..<ItemID(catalogSize)).map { $0 }
        isLive = [Bool](repeating: true, count: catalogSize)
        seenStamp = [UInt32](repeating: 0, count: catalogSize)
        candidates = []
        candidates.reserveCapacity(settings.candidates)
        scores = [Float](repeating: 0, count: settings.candidates)
        order = [Int32](repeating: 0, count: settings.candidates)
        taken = [Bool](repeating: false, count: settings.candidates)
        baseScores = scores
        candidateIndex = [Int32](repeating: 0, count: catalogSize)
        arrived = [Int32](repeating: .min, count: catalogSize)
    }

    /// Takes in the catalog feed: which items exist and can be served, and the tick each
    /// arrived (Int32.min for items of the initial catalog; nil: none arrived).
    public mutating func updateCatalog(live: [ItemID], count: Int, arrived: [Int32]? = nil) {
        liveItems = live
        if let arrived { self.arrived = arrived }
        if self.arrived.count < count { self.arrived.append(contentsOf: repeatElement(.min, count: count - self.arrived.count)) }
        if isLive.count < count {
            isLive.append(contentsOf: repeatElement(false, count: count - isLive.count))
            seenStamp.append(contentsOf: repeatElement(0, count: count - seenStamp.count))
            candidateIndex.append(contentsOf: repeatElement(0, count: count - candidateIndex.count))
        }
        for i in isLive.indices { isLive[i] = false }
        for item in live { isLive[Int(item)] = true }
        popular.removeAll { !isLive[Int($0)] }
    }

    /// Takes in what the arm's trainer has learned (once per tick, after feedback).
    public mutating func refresh(from statistics: ItemStatistics) {
        if case .popularity(let explore) = settings.retrieval {
            let fromPopular = settings.candidates - Int((Double(settings.candidates) * explore).rounded())
            let live = isLive
            popular = statistics.mostClicked(fromPopular) { Int($0) < live.count && live[Int($0)] }
        }
    }

    /// Builds the slate for `request`, appending its entries to `slate`. A sequence model
    /// (DARE, TWIN) and a poly-attention model score with the user's history as the arm's
    /// trainer holds it.
    public mutating func serve(_ request: Request, statistics: ItemStatistics, model: RankingModel? = nil,
                               histories: UserHistories? = nil, towers: InterestTowers? = nil, interestUsers: InterestUsers? = nil,
                               poly: PolyModel? = nil, polyHistories: UserHistories? = nil,
                               into slate: inout [SlateEntry]) {
        var rng = RandomStream(seed: seed, .policy, UInt64(armIndex) << 32 | UInt64(request.header.user), UInt64(request.header.sequence))
        if case .towers(let t) = settings.retrieval {
            guard let towers, let interestUsers else { preconditionFailure("a tower-retrieval arm is served without its towers") }
            retrieveWithTowers(request.header.user, t, towers, interestUsers, &rng)
        } else {
            retrieve(&rng)
        }
        score(statistics, model: model, history: histories?.history(of: request.header.user),
              poly: poly, polyHistory: polyHistories?.history(of: request.header.user), tick: request.header.tick, &rng)
        let first = slate.count
        select(k: min(Int(request.slateSize), candidates.count), statistics: statistics, &rng, into: &slate)
        if !offPolicyTargets.isEmpty, slate.count > first {
            logOffPolicy(request, shown: slate[first], statistics: statistics)
        }
        if case .towers(let t) = settings.retrieval, t.serving != nil {
            for e in slate[first...] {
                let s = sources[Int(candidateIndex[Int(e.item)])]
                interestLog.append(InterestLogEntry(user: request.header.user, sequence: request.header.sequence, item: e.item,
                                                    interest: s.interest, probability: s.interestProbability, explored: s.explored))
            }
        }
    }

    /// The candidates tower retrieval gives a user, in retrieval order (the offline
    /// retrieval check calls this; serving goes through `serve`).
    public mutating func retrieveCandidates(for user: UserID, sequence: UInt32, towers: InterestTowers, users: InterestUsers) -> [ItemID] {
        guard case .towers(let t) = settings.retrieval else { return [] }
        var rng = RandomStream(seed: seed, .policy, UInt64(armIndex) << 32 | UInt64(user), UInt64(sequence))
        retrieveWithTowers(user, t, towers, users, &rng)
        // Only what the towers found: random fill-ins are not retrieval.
        return zip(candidates, sources).filter { $0.1.interestProbability > 0 }.map(\.0)
    }

    public mutating func clearOffPolicyLog() {
        offPolicyLog.removeAll(keepingCapacity: true)
        interestLog.removeAll(keepingCapacity: true)
    }

    mutating func retrieve(_ rng: inout RandomStream) {
        candidates.removeAll(keepingCapacity: true)
        stamp &+= 1
        if stamp == 0 {  // the stamps wrapped: clear them once every 2^32 requests
            for i in seenStamp.indices { seenStamp[i] = 0 }
            stamp = 1
        }
        if case .popularity = settings.retrieval {
            for item in popular where candidates.count < settings.candidates {
                seenStamp[Int(item)] = stamp
                candidates.append(item)
            }
        }
        // The rest uniformly at random from the live items, without repeats (rejection
        // against the stamps); if retirements left too few, fewer candidates.
        let wanted = min(settings.candidates, liveItems.count)
        while candidates.count < wanted {
            let item = liveItems[rng.nextInt(below: liveItems.count)]
            if seenStamp[Int(item)] != stamp {
                seenStamp[Int(item)] = stamp
                candidates.append(item)
            }
        }
    }

    /// Two-tower or SPARC retrieval into `candidates` (and each one's source into `sources`).
    ///
    /// SPARC (shared/baselines/sparc-reference.md section 3): the user's serving
    /// distribution is p^mix pi^(1 - mix), normalised, from the towers' p(k | u) and the
    /// user's running distribution pi; the `interests` most probable codes are retrieved
    /// for, with quotas following their probabilities; `explore` more codes are drawn in
    /// proportion to p^(1/T) among codes the user has not clicked lately, each retrieving
    /// `exploreQuota` items of its own bucket. An interest's items are its bucket ranked
    /// by u (the default), or found with the query u_k = u + e0_k through the index. The
    /// union, deduplicated, is ordered by p_k sigma(score) and cut to `candidates`; random
    /// live items fill what the buckets could not.
    mutating func retrieveWithTowers(_ user: UserID, _ t: TowerRetrieval, _ towers: InterestTowers, _ users: InterestUsers,
                                     _ rng: inout RandomStream) {
        candidates.removeAll(keepingCapacity: true)
        sources.removeAll(keepingCapacity: true)
        stamp &+= 1
        if stamp == 0 {
            for i in seenStamp.indices { seenStamp[i] = 0 }
            stamp = 1
        }
        let d = towers.settings.dim
        if userVector.count != d { userVector = [Float](repeating: 0, count: d) }
        userVector.withUnsafeMutableBufferPointer { towers.servingUserVector(users.recent(user), into: $0.baseAddress!) }
        func add(_ item: ItemID, _ source: RetrievedCandidate) {
            guard Int(item) < seenStamp.count, isLive[Int(item)], seenStamp[Int(item)] != stamp, candidates.count < settings.candidates else { return }
            seenStamp[Int(item)] = stamp
            candidateIndex[Int(item)] = Int32(candidates.count)
            candidates.append(item)
            sources.append(source)
        }
        if let s = t.serving, let quantizer = towers.quantizer {
            let k0 = quantizer.codes[0]
            if distribution.count != k0 {
                distribution = [Double](repeating: 0, count: k0)
                serving = distribution
            }
            userVector.withUnsafeBufferPointer { u in
                distribution.withUnsafeMutableBufferPointer { p in
                    serving.withUnsafeMutableBufferPointer { out in
                        towers.servingDistribution(u.baseAddress!, features: users.features(user), running: users.running(user), mix: s.mix,
                                                   towerDistribution: p.baseAddress!, into: out.baseAddress!)
                    }
                }
            }
            // The top interests, most probable first (ties to the lower code).
            chosen.removeAll(keepingCapacity: true)
            for _ in 0..<min(s.interests, k0) {
                var best = -1
                for k in 0..<k0 where !chosen.contains(k) && (best < 0 || serving[k] > serving[best]) { best = k }
                chosen.append(best)
            }
            let exploit = chosen.count
            // Exploration among codes the user has not clicked lately.
            if weights.count != k0 { weights = [Double](repeating: 0, count: k0) }
            for k in 0..<k0 { weights[k] = chosen.contains(k) ? 0 : pow(serving[k], 1 / s.exploreTemperature) }
            for item in users.recent(user) where Int(item) < towers.index.codeOf.count {
                let c = Int(towers.index.codeOf[Int(item)])
                if c >= 0 { weights[c] = 0 }
            }
            for _ in 0..<s.explore {
                let sum = weights.reduce(0, +)
                guard sum > 0 else { break }
                var r = rng.nextDouble() * sum, pick = -1
                for k in 0..<k0 where weights[k] > 0 {
                    pick = k
                    if r < weights[k] { break }
                    r -= weights[k]
                }
                guard pick >= 0 else { break }
                chosen.append(pick)
                weights[pick] = 0
            }
            // Quotas, retrieval, merge.
            let exploreTotal = (chosen.count - exploit) * s.exploreQuota
            let budget = max(0, settings.candidates - exploreTotal)
            let exploitMass = chosen.prefix(exploit).reduce(0.0) { $0 + serving[$1] }
            merged.removeAll(keepingCapacity: true)
            if query.count != d { query = [Float](repeating: 0, count: d) }
            for (n, k) in chosen.enumerated() {
                let explored = n >= exploit
                let quota = explored ? s.exploreQuota : max(s.minQuota, Int((Double(budget) * serving[k] / max(exploitMass, 1e-12)).rounded()))
                top.reset(count: quota)
                if s.conditioned {
                    userVector.withUnsafeBufferPointer { u in query.withUnsafeMutableBufferPointer { towers.interestQuery(u.baseAddress!, k, into: $0.baseAddress!) } }
                    query.withUnsafeBufferPointer { q in
                        if explored {
                            towers.retrieve(query: q.baseAddress!, bucket: k, into: &top)
                        } else {
                            towers.retrieve(query: q.baseAddress!, live: liveItems, probes: s.probes == 0 ? nil : s.probes, into: &top, probing: &probing)
                        }
                    }
                } else {
                    userVector.withUnsafeBufferPointer { towers.retrieve(query: $0.baseAddress!, bucket: k, into: &top) }
                }
                for (score, item) in top.heap {
                    merged.append((Float(serving[k]) / (1 + exp(-score)), item,
                                   RetrievedCandidate(item: item, score: score, interest: Int32(k), explored: explored, interestProbability: Float(serving[k]))))
                }
            }
            merged.sort { ($0.key, $1.item) > ($1.key, $0.item) }
            for m in merged { add(m.item, m.source) }
        } else {
            top.reset(count: settings.candidates)
            userVector.withUnsafeBufferPointer { towers.retrieve($0.baseAddress!, live: liveItems, into: &top) }
            top.sortBestFirst()
            for (score, item) in top.heap {
                add(item, RetrievedCandidate(item: item, score: score, interest: -1, explored: false, interestProbability: 1))
            }
        }
        // What the towers could not fill, random live items fill (as other retrieval does).
        let wanted = min(settings.candidates, liveItems.count)
        while candidates.count < wanted {
            add(liveItems[rng.nextInt(below: liveItems.count)], RetrievedCandidate(item: 0, score: 0, interest: -1, explored: false, interestProbability: 0))
        }
    }

    mutating func score(_ statistics: ItemStatistics, model: RankingModel?, history: UnsafeBufferPointer<HistoryEntry>?,
                        poly: PolyModel? = nil, polyHistory: UnsafeBufferPointer<HistoryEntry>? = nil, tick: Tick = 0,
                        _ rng: inout RandomStream) {
        let n = candidates.count
        switch settings.ranking {
        case .sequence:
            guard let model, let history else { preconditionFailure("a sequence-model arm is served without its model") }
            candidates.withUnsafeBufferPointer { c in
                scores.withUnsafeMutableBufferPointer { s in model.score(history: history, candidates: c, into: s.baseAddress!) }
            }
        case .poly:
            guard let poly, let polyHistory else { preconditionFailure("a poly arm is served without its model") }
            candidates.withUnsafeBufferPointer { c in
                scores.withUnsafeMutableBufferPointer { s in poly.score(history: polyHistory, candidates: c, into: s.baseAddress!) }
            }
        case .blend(_, _, let youngTicks):
            guard let model, let history, let poly, let polyHistory else { preconditionFailure("a blend arm is served without its models") }
            // Both give click probabilities: the sequence model's for every candidate, then
            // Poly's in place of it for the young ones (whose id rows have learned little).
            youngIndex.removeAll(keepingCapacity: true)
            youngItems.removeAll(keepingCapacity: true)
            for i in 0..<n where Int64(tick) - Int64(arrived[Int(candidates[i])]) < Int64(youngTicks) {
                youngIndex.append(i)
                youngItems.append(candidates[i])
            }
            candidates.withUnsafeBufferPointer { c in
                scores.withUnsafeMutableBufferPointer { s in model.score(history: history, candidates: c, into: s.baseAddress!) }
            }
            if !youngItems.isEmpty {
                if youngScores.count < youngItems.count { youngScores = [Float](repeating: 0, count: settings.candidates) }
                youngItems.withUnsafeBufferPointer { c in
                    youngScores.withUnsafeMutableBufferPointer { s in poly.score(history: polyHistory, candidates: c, into: s.baseAddress!) }
                }
                for (k, i) in youngIndex.enumerated() { scores[i] = youngScores[k] }
            }
        case .random:
            for i in 0..<n { scores[i] = rng.nextFloat() }
        case .popularity:
            for i in 0..<n { scores[i] = statistics.clickCount(candidates[i]) }
        case .ctr(let a, let b):
            for i in 0..<n { scores[i] = statistics.smoothedCTR(candidates[i], priorClicks: Float(a), priorImpressions: Float(b)) }
        }
        if !offPolicyTargets.isEmpty {
            for i in 0..<n { baseScores[i] = scores[i] }
        }
        switch settings.policy {
        case .ucb(let bonus):
            // Standardised, so the bonus means the same for every model.
            standardiseScores()
            let total = log(statistics.totalImpressions + 1)
            for i in 0..<n {
                scores[i] += Float(bonus * (total / (Double(statistics.impressionCount(candidates[i])) + 1)).squareRoot())
            }
        case .thompson(let a, let b, _):
            for i in 0..<n { scores[i] = Float(thompsonDraw(candidates[i], statistics, a, b, &rng)) }
        default:
            break
        }
        // Best first; equal scores by item id, so the order is a function of the inputs.
        for i in 0..<n { order[i] = Int32(i) }
        order.withUnsafeMutableBufferPointer { o in
            scores.withUnsafeBufferPointer { s in
                candidates.withUnsafeBufferPointer { c in
                    o[0..<n].sort { (s[Int($0)], c[Int($1)]) > (s[Int($1)], c[Int($0)]) }
                }
            }
        }
    }

    /// z-scores of the candidates' scores (all 0 when they are all equal).
    mutating func standardiseScores() {
        let n = candidates.count
        var mean = 0.0, squares = 0.0
        for i in 0..<n { mean += Double(scores[i]) }
        mean /= Double(n)
        for i in 0..<n { squares += (Double(scores[i]) - mean) * (Double(scores[i]) - mean) }
        let sd = (squares / Double(n)).squareRoot()
        for i in 0..<n { scores[i] = sd > 0 ? Float((Double(scores[i]) - mean) / sd) : 0 }
    }

    /// A draw of the item's click-through rate from its Beta posterior: prior Beta(a, b - a)
    /// updated with the arm's clicks and non-clicks.
    func thompsonDraw(_ item: ItemID, _ statistics: ItemStatistics, _ a: Double, _ b: Double, _ rng: inout RandomStream) -> Double {
        let clicks = Double(statistics.clickCount(item)), shown = Double(statistics.impressionCount(item))
        return rng.nextBeta(a + clicks, b - a + max(0, shown - clicks))
    }

    mutating func select(k: Int, statistics: ItemStatistics, _ rng: inout RandomStream, into slate: inout [SlateEntry]) {
        let n = candidates.count
        for i in 0..<n { taken[i] = false }
        // Random scores make every ordering equally likely, unless Thompson replaced them.
        let uniform: Bool
        if case .thompson = settings.policy { uniform = false } else { uniform = settings.ranking == .random }
        var nextBest = 0  // index into `order` of the best candidate not yet taken
        func advance(_ nextBest: inout Int, _ taken: [Bool], _ order: [Int32]) {
            while nextBest < n && taken[Int(order[nextBest])] { nextBest += 1 }
        }
        for position in 0..<k {
            let remaining = n - position
            var chosen: Int
            var propensity: Float
            switch settings.policy {
            case .greedy:
                chosen = Int(order[nextBest])
                propensity = 1
            case .epsilonGreedy(let epsilon):
                let best = Int(order[nextBest])
                if rng.nextDouble() < epsilon {
                    chosen = nthUntaken(rng.nextInt(below: remaining))
                } else {
                    chosen = best
                }
                propensity = Float(epsilon / Double(remaining)) + (chosen == best ? Float(1 - epsilon) : 0)
            case .softmax(let temperature):
                (chosen, propensity) = drawSoftmax(temperature: temperature, &rng)
            case .ucb, .thompson:
                // Greedy on the index (UCB) or the posterior draws (Thompson); Thompson's
                // propensities are estimated once the slate is complete.
                chosen = Int(order[nextBest])
                propensity = 1
            case .interestSampling(let temperature):
                (chosen, propensity) = drawInterest(temperature: temperature, &rng)
            }
            if uniform { propensity = 1 / Float(remaining) }
            taken[chosen] = true
            advance(&nextBest, taken, order)
            slate.append(SlateEntry(item: candidates[chosen], propensity: propensity))
        }
        if case .thompson(let a, let b, let samples) = settings.policy, k > 0 {
            estimateThompsonPropensities(slate: &slate, k: k, statistics: statistics, a: a, b: b, samples: samples, &rng)
        }
    }

    /// The chance that each shown item lands at its position when the posteriors are
    /// drawn again: (1 + resamples that put it there) / (1 + resamples), counting the draw
    /// that built the slate, so an estimate is never 0.
    mutating func estimateThompsonPropensities(slate: inout [SlateEntry], k: Int, statistics: ItemStatistics,
                                              a: Double, b: Double, samples: Int, _ rng: inout RandomStream) {
        let n = candidates.count, first = slate.count - k
        // The draws go into `scores`, no longer needed once the slate is built.
        hits.removeAll(keepingCapacity: true)
        shownIndex.removeAll(keepingCapacity: true)
        for j in 0..<k {
            hits.append(1)
            shownIndex.append(candidates.firstIndex(of: slate[first + j].item)!)
        }
        for _ in 0..<samples {
            for i in 0..<n { scores[i] = Float(thompsonDraw(candidates[i], statistics, a, b, &rng)) }
            for j in 0..<k {
                let mine = scores[shownIndex[j]]
                var above = 0
                for i in 0..<n where scores[i] > mine || (scores[i] == mine && candidates[i] < candidates[shownIndex[j]]) { above += 1 }
                if above == j { hits[j] += 1 }
            }
        }
        for j in 0..<k { slate[first + j].propensity = Float(hits[j]) / Float(samples + 1) }
    }

    /// SPARC's interest sampling: an interest drawn in proportion to p^(1/T) among those the
    /// untaken candidates came from (each interest once, whatever its number of
    /// candidates), then its best-ranked untaken candidate. The propensity is the draw's
    /// probability: within the interest the choice is certain.
    mutating func drawInterest(temperature: Double, _ rng: inout RandomStream) -> (Int, Float) {
        let n = candidates.count
        // The best untaken candidate of each interest, in rank order (`order`).
        var total = 0.0
        firsts.removeAll(keepingCapacity: true)
        interestStamp &+= 1
        if interestStamp == 0 {
            for k in interestSeen.indices { interestSeen[k] = 0 }
            interestStamp = 1
        }
        for r in 0..<n {
            let i = Int(order[r])
            guard !taken[i], i < sources.count else { continue }
            // Random fill-ins (interest -1) form an interest of their own.
            let slot = Int(sources[i].interest) + 1
            if slot >= interestSeen.count { interestSeen.append(contentsOf: repeatElement(0, count: slot + 1 - interestSeen.count)) }
            guard interestSeen[slot] != interestStamp else { continue }
            interestSeen[slot] = interestStamp
            let p = Double(max(sources[i].interestProbability, 1e-12))
            let w = pow(p, 1 / temperature)
            firsts.append((i, w))
            total += w
        }
        var u = rng.nextDouble() * total
        for f in firsts {
            if u < f.weight { return (f.candidate, Float(f.weight / total)) }
            u -= f.weight
        }
        let last = firsts[firsts.count - 1]
        return (last.candidate, Float(last.weight / total))
    }

    /// The index of the `n`-th candidate not yet taken, in candidate order.
    func nthUntaken(_ n: Int) -> Int {
        var seen = 0
        for i in 0..<candidates.count where !taken[i] {
            if seen == n { return i }
            seen += 1
        }
        preconditionFailure("fewer untaken candidates than drawn")
    }

    /// Draws a remaining candidate with probability proportional to exp(z / T), where z is
    /// the score standardised over all candidates (so T means the same for every model).
    func drawSoftmax(temperature: Double, _ rng: inout RandomStream) -> (Int, Float) {
        let n = candidates.count
        var mean = 0.0, squares = 0.0
        for i in 0..<n { mean += Double(scores[i]) }
        mean /= Double(n)
        for i in 0..<n { squares += (Double(scores[i]) - mean) * (Double(scores[i]) - mean) }
        let sd = max((squares / Double(n)).squareRoot(), 1e-12)
        // Subtract the largest remaining exponent for numerical safety.
        var top = -Double.infinity
        for i in 0..<n where !taken[i] { top = max(top, (Double(scores[i]) - mean) / sd / temperature) }
        var total = 0.0
        for i in 0..<n where !taken[i] { total += exp((Double(scores[i]) - mean) / sd / temperature - top) }
        var u = rng.nextDouble() * total
        var last = 0
        for i in 0..<n where !taken[i] {
            let w = exp((Double(scores[i]) - mean) / sd / temperature - top)
            last = i
            if u < w { return (i, Float(w / total)) }
            u -= w
        }
        let w = exp((Double(scores[last]) - mean) / sd / temperature - top)
        return (last, Float(w / total))
    }

    // MARK: Off-policy evaluation

    /// For the request just served: the logging propensity of the top item, the reward
    /// model's prediction for it, and for each target policy the chance it would have put
    /// that item on top and its expected predicted reward (the direct method's term), all
    /// from the same candidates and ranking scores. The reward model is the arm's smoothed
    /// click-through rate of the item (1 click in 20 impressions as prior).
    mutating func logOffPolicy(_ request: Request, shown: SlateEntry, statistics: ItemStatistics) {
        let n = candidates.count
        guard let top = candidates.firstIndex(of: shown.item) else { return }
        func q(_ i: Int) -> Double { Double(statistics.smoothedCTR(candidates[i], priorClicks: 1, priorImpressions: 20)) }
        var record = OffPolicyRecord(user: request.header.user, sequence: request.header.sequence,
                                     loggingPropensity: Double(shown.propensity), predictedClick: q(top),
                                     viewSecondsPerClick: statistics.meanViewSecondsPerClick)
        // The best candidate by score (ties to the lower id), as greedy would take it.
        func argmax(_ value: (Int) -> Double) -> Int {
            var best = 0
            for i in 1..<n where (value(i), candidates[best]) > (value(best), candidates[i]) { best = i }
            return best
        }
        var mean = 0.0, squares = 0.0, meanQ = 0.0
        for i in 0..<n { mean += Double(baseScores[i]); meanQ += q(i) }
        mean /= Double(n)
        meanQ /= Double(n)
        for i in 0..<n { squares += (Double(baseScores[i]) - mean) * (Double(baseScores[i]) - mean) }
        let sd = (squares / Double(n)).squareRoot()
        func z(_ i: Int) -> Double { sd > 0 ? (Double(baseScores[i]) - mean) / sd : 0 }
        let greedy = argmax { Double(self.baseScores[$0]) }
        for (t, policy) in offPolicyTargets.enumerated() where t < OffPolicyRecord.maxTargets {
            var p = Double.nan, dm = Double.nan
            switch policy {
            case .greedy:
                p = top == greedy ? 1 : 0
                dm = q(greedy)
            case .epsilonGreedy(let e):
                p = e / Double(n) + (top == greedy ? 1 - e : 0)
                dm = e * meanQ + (1 - e) * q(greedy)
            case .softmax(let temperature):
                var largest = -Double.infinity
                for i in 0..<n { largest = max(largest, z(i) / temperature) }
                var total = 0.0, weighted = 0.0
                for i in 0..<n {
                    let w = exp(z(i) / temperature - largest)
                    total += w
                    weighted += w * q(i)
                }
                p = exp(z(top) / temperature - largest) / total
                dm = weighted / total
            case .ucb(let bonus):
                let logTotal = log(statistics.totalImpressions + 1)
                let best = argmax { z($0) + bonus * (logTotal / (Double(statistics.impressionCount(self.candidates[$0])) + 1)).squareRoot() }
                p = top == best ? 1 : 0
                dm = q(best)
            case .thompson, .interestSampling:
                break  // no closed form from these scores; not evaluated
            }
            record.targetProbability[t] = p
            record.targetPredictedClick[t] = dm
        }
        offPolicyLog.append(record)
    }
}
