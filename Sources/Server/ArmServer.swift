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
    /// The items already among this request's candidates.
    var seen: StampMarks
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
    public internal(set) var offPolicyLog: [OffPolicyRecord] = []
    /// SPARC: where each shown item came from (interest, its probability, explored or
    /// not), per request served since `clearOffPolicyLog()`, in serving order.
    public internal(set) var interestLog: [InterestLogEntry] = []
    /// Tower retrieval: each candidate's source, aligned with `candidates`; and each
    /// candidate item's index in `candidates` (valid where `seen` marks it).
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
    var interestsSeen = StampMarks(count: 0)
    /// The tick each item arrived in the run (Int32.min for the initial catalog), and a
    /// blend's young candidates: their indices, items and Poly scores.
    var arrived: [Int32]
    var youngIndex: [Int] = []
    var youngItems: [ItemID] = []
    var youngScores: [Float] = []

    /// Draw the policy's numbers from a stream keyed by (user, tick) alone, not by arm: a
    /// paired design's arms then draw the same numbers for the same user at the same tick
    /// (common random numbers), so arms that differ in one respect part only there.
    public var commonDraws = false

    public init(settings: ArmSettings, armIndex: Int, catalogSize: Int, seed: UInt64) {
        self.settings = settings
        self.armIndex = armIndex
        self.seed = seed
        liveItems = (0..<ItemID(catalogSize)).map { $0 }
        isLive = [Bool](repeating: true, count: catalogSize)
        seen = StampMarks(count: catalogSize)
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
            seen.grow(to: count)
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

    /// Builds the slate for `request` with the arm's `models` (see `ArmModels`), appending
    /// its entries to `slate`. Sequence and poly-attention models score with the user's
    /// history as the arm's trainer holds it.
    public mutating func serve(_ request: Request, statistics: ItemStatistics, models: ArmModels, into slate: inout [SlateEntry]) {
        let h = request.header
        var rng = commonDraws ? RandomStream(seed: seed, .policy, 1 << 63 | UInt64(h.user), UInt64(h.tick))
            : RandomStream(seed: seed, .policy, UInt64(armIndex) << 32 | UInt64(h.user), UInt64(h.sequence))
        switch models.retrieval {
        case .catalog: retrieve(&rng)
        case .towers(let t, let towers, let users): retrieveWithTowers(request.header.user, t, towers, users, &rng)
        }
        score(statistics, models.ranking, user: request.header.user, tick: request.header.tick, &rng)
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

    /// Builds the slate of an arm that needs no model (random, popularity or CTR ranking
    /// over random or popularity retrieval).
    public mutating func serve(_ request: Request, statistics: ItemStatistics, into slate: inout [SlateEntry]) {
        serve(request, statistics: statistics, models: ArmModels(settings: settings), into: &slate)
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
}
