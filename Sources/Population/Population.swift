import Dispatch
import Foundation
import RecCore
import Scenario

/// The simulated users: who asks for a slate each tick, how they respond to what they are
/// shown, and how their interests move. It also knows the truth about them (see
/// GroundTruth.swift), which no arm may see.
///
/// Each user has a few active interests (topics, with log-weights that drift and decay
/// without engagement, and grow with clicks) and a few dormant ones, which attract at a
/// reduced appeal and wake only when the user is shown an item of theirs and clicks it.
/// A response depends on the examination of the position, the user's true affinity for
/// the item (its vector against the user's taste), its quality and popularity, and the
/// user's fatigue with its top category. All randomness comes from streams keyed by
/// (seed, user, tick or sequence), so stepping users on several threads gives the same
/// results as one.
public final class Population {
    public let settings: PopulationSettings
    public private(set) var catalog: Catalog
    public let assignment: ArmAssignment
    public let histories: HistoryStore
    let seed: UInt64
    let columns: UserColumns
    /// Threads used to step users (1: no parallelism).
    public let threads: Int
    /// Seconds spent generating the lifelong histories.
    public let historySeconds: Double
    /// Whether responses draw from a stream per (user, tick, position) rather than one per
    /// slate: a paired design's populations do, so that its copies share every draw. Both
    /// are the same model; the split design keeps the per-slate stream, which the
    /// published figures were measured with.
    public let synchronizedDraws: Bool
    /// Purchases waiting for their tick, in (tick scheduled, user) order.
    var pending: [Feedback] = []
    var chunkFeedback: [[Feedback]] = []
    var chunkPurchases: [[Feedback]] = []

    public init(_ scenario: Scenario, threads: Int? = nil) {
        settings = scenario.population
        seed = scenario.seed
        catalog = Catalog(scenario.catalog, seed: scenario.catalogSeed)
        assignment = ArmAssignment(scenario)
        synchronizedDraws = scenario.isPaired
        self.threads = max(1, threads ?? ProcessInfo.processInfo.activeProcessorCount)
        let s = settings
        columns = UserColumns(users: s.users, slots: s.interests.slots, dim: catalog.dim, categories: scenario.catalog.topCategories)
        let columns = self.columns
        let catalog = self.catalog
        let seed = self.seed
        Self.parallel(users: s.users, threads: self.threads) { range in
            for user in range { Self.initialise(user: user, columns, catalog, s, seed) }
        }
        let historyStart = ContinuousClock.now
        histories = HistoryStore(population: s.history, users: s.users, columns: columns, catalog: catalog, seed: seed, threads: self.threads)
        let elapsed = ContinuousClock.now - historyStart
        historySeconds = elapsed.seconds
        chunkFeedback = Array(repeating: [], count: self.threads)
        chunkPurchases = Array(repeating: [], count: self.threads)
    }

    /// A copy of `other` whose requests carry `arm` (a paired design's copy for that arm):
    /// the same users in the same state, the same catalog and pending purchases. Random
    /// streams are keyed by (seed, user, tick or sequence, purpose), so from here on the two
    /// draw the same numbers and part only where what they are shown differs.
    public init(copying other: Population, arm: Int, arms: Int) {
        settings = other.settings
        seed = other.seed
        catalog = other.catalog
        assignment = ArmAssignment(everyone: other.settings.users, arm: arm, arms: arms)
        synchronizedDraws = other.synchronizedDraws
        histories = other.histories
        columns = UserColumns(copying: other.columns)
        threads = other.threads
        historySeconds = 0
        // Purchases the warm-up's clicks scheduled land in this copy now, as its own.
        pending = other.pending.map { f in
            var f = f
            f.header.arm = UInt16(arm)
            return f
        }
        chunkFeedback = Array(repeating: [], count: threads)
        chunkPurchases = Array(repeating: [], count: threads)
    }

    public var userCount: Int { settings.users }

    public func features(of user: UserID) -> UserFeatures { columns.features[Int(user)] }

    // MARK: Setup

    static func initialise(user: Int, _ c: UserColumns, _ catalog: Catalog, _ s: PopulationSettings, _ seed: UInt64) {
        var rng = RandomStream(seed: seed, .users, UInt64(user))
        let base = user * c.slots
        // Distinct topics for the user's interests (rejection: slots <= topics is checked).
        var chosen = 0
        while chosen < c.slots {
            let t = UInt16(rng.nextInt(below: catalog.settings.topics))
            if !(0..<chosen).contains(where: { c.slotTopic[base + $0] == t }) {
                c.slotTopic[base + chosen] = t
                c.slotActive[base + chosen] = chosen < s.interests.active
                c.slotLogWeight[base + chosen] = Float(rng.nextGaussian() * 0.5)
                chosen += 1
            }
        }
        let z = rng.nextGaussian()
        c.activity[user] = Float(min(1, s.requestProbability * exp(s.activitySpread * z)))
        c.priceSensitivity[user] = Float(s.response.priceSensitivity * exp(0.3 * rng.nextGaussian()))
        c.features[user] = UserFeatures(
            segment: UInt8(rng.nextInt(below: s.segments)), region: UInt8(rng.nextInt(below: s.regions)),
            activityBucket: z < -0.43 ? 0 : z < 0.43 ? 1 : 2)  // terciles of the activity draw
        updatePreference(user: user, c, catalog, s)
    }

    /// The user's taste: active interests by share, dormant ones at `dormantAppeal` times
    /// an average active share.
    static func updatePreference(user: Int, _ c: UserColumns, _ catalog: Catalog, _ s: PopulationSettings) {
        let base = user * c.slots
        var top = -Float.infinity
        var activeCount = 0
        for k in 0..<c.slots where c.slotActive[base + k] {
            top = max(top, c.slotLogWeight[base + k])
            activeCount += 1
        }
        var total: Float = 0
        for k in 0..<c.slots where c.slotActive[base + k] { total += exp(c.slotLogWeight[base + k] - top) }
        let dormantWeight = Float(s.interests.dormantAppeal) / Float(max(activeCount, 1))
        let p = c.preference.baseAddress! + user * c.dim
        for d in 0..<c.dim { p[d] = 0 }
        catalog.centroids.withUnsafeBufferPointer { centroids in
            for k in 0..<c.slots {
                let w = c.slotActive[base + k] ? exp(c.slotLogWeight[base + k] - top) / total : dormantWeight
                let centroid = centroids.baseAddress! + Int(c.slotTopic[base + k]) * c.dim
                for d in 0..<c.dim { p[d] += w * centroid[d] }
            }
        }
    }

    // MARK: Each tick

    /// New items arrive and old ones retire; returns whether the catalog changed.
    @discardableResult
    public func advanceCatalog(to tick: Tick) -> Bool {
        catalog.advance(to: tick)
    }

    /// The requests users make at `tick`, in user order, appended to `out`. A user comes
    /// with probability activity x (1 - returnSensitivity x (1 - satisfaction)).
    public func requests(at tick: Tick, into out: inout [Request]) {
        let c = columns
        let sensitivity = Float(settings.returnSensitivity)
        for user in 0..<settings.users {
            var rng = RandomStream(seed: seed, .requests, UInt64(user), UInt64(tick))
            let p = c.activity[user] * (1 - sensitivity * (1 - c.satisfaction[user]))
            guard rng.nextFloat() < p else { continue }
            let header = RecordHeader(arm: assignment.arm[user], tick: tick, user: UserID(user), sequence: c.sequence[user])
            c.sequence[user] += 1
            out.append(Request(header, slateSize: UInt16(settings.slateSize)))
        }
    }

    /// How users respond to this tick's slates (sorted by user, one per user): feedback in
    /// slate order appended to `out`, then the purchases that fall due at `tick`.
    public func respond(to slates: [(header: SlateHeader, start: Int)], entries: [SlateEntry], at tick: Tick, into out: inout [Feedback]) {
        let chunks = min(threads, max(1, slates.count / 64))
        let per = (slates.count + chunks - 1) / max(chunks, 1)
        let model = ResponseModel(settings, catalog, columns, seed, synchronized: synchronizedDraws)
        let results = UnsafeMutableBufferPointer<[Feedback]>.allocate(capacity: chunks * 2)
        results.initialize(repeating: [])
        defer { results.deinitialize().deallocate() }
        // Each buffer is moved, never shared, so appends never copy it.
        for i in 0..<chunks {
            swap(&results[2 * i], &chunkFeedback[i])
            results[2 * i].removeAll(keepingCapacity: true)
            swap(&results[2 * i + 1], &chunkPurchases[i])
            results[2 * i + 1].removeAll(keepingCapacity: true)
        }
        let shared = UnsafeSendable(results)
        slates.withUnsafeBufferPointer { slatesBuffer in
            entries.withUnsafeBufferPointer { entriesBuffer in
                let s = UnsafeSendable((slatesBuffer, entriesBuffer))
                DispatchQueue.concurrentPerform(iterations: chunks) { chunk in
                    let (slates, entries) = s.value
                    var feedback: [Feedback] = []
                    var purchases: [Feedback] = []
                    swap(&feedback, &shared.value[2 * chunk])
                    swap(&purchases, &shared.value[2 * chunk + 1])
                    for i in chunk * per..<min(slates.count, (chunk + 1) * per) {
                        let (h, start) = slates[i]
                        model.respond(to: h, entries: UnsafeBufferPointer(rebasing: entries[start..<start + h.itemCount]),
                                      at: tick, feedback: &feedback, purchases: &purchases)
                    }
                    swap(&feedback, &shared.value[2 * chunk])
                    swap(&purchases, &shared.value[2 * chunk + 1])
                }
            }
        }
        for i in 0..<chunks {
            out.append(contentsOf: results[2 * i])
            pending.append(contentsOf: results[2 * i + 1])
            swap(&results[2 * i], &chunkFeedback[i])
            swap(&results[2 * i + 1], &chunkPurchases[i])
        }
        purchases(at: tick, into: &out)
    }

    /// Purchases that happen at `tick` (scheduled by earlier clicks), in the order scheduled.
    func purchases(at tick: Tick, into out: inout [Feedback]) {
        guard !pending.isEmpty else { return }
        var kept: [Feedback] = []
        for f in pending {
            if f.header.tick == tick { out.append(f) } else { kept.append(f) }
        }
        pending = kept
    }

    /// Purchases scheduled after the last tick (reported, never silently dropped).
    public var purchasesPending: Int { pending.count }

    /// Interests drift and decay, dormant ones fall asleep, fatigue fades: the end of a tick.
    public func endTick(_ tick: Tick) {
        let c = columns, s = settings, catalog = self.catalog, seed = self.seed
        Self.parallel(users: s.users, threads: threads) { range in
            for user in range { Self.step(user: user, tick: tick, c, catalog, s, seed) }
        }
    }

    static func step(user: Int, tick: Tick, _ c: UserColumns, _ catalog: Catalog, _ s: PopulationSettings, _ seed: UInt64) {
        var rng = RandomStream(seed: seed, .drift, UInt64(user), UInt64(tick))
        let i = s.interests
        let base = user * c.slots
        var activeCount = 0
        for k in 0..<c.slots where c.slotActive[base + k] {
            var w = c.slotLogWeight[base + k] + Float(i.drift * rng.nextGaussian())
            if !c.slotEngaged[base + k] { w -= Float(i.decay) }
            c.slotLogWeight[base + k] = w
            activeCount += 1
        }
        // An active interest whose share has fallen too low goes dormant (never the last).
        if i.dormantBelow > 0 && activeCount > 1 {
            var top = -Float.infinity
            for k in 0..<c.slots where c.slotActive[base + k] { top = max(top, c.slotLogWeight[base + k]) }
            var total: Float = 0
            for k in 0..<c.slots where c.slotActive[base + k] { total += exp(c.slotLogWeight[base + k] - top) }
            for k in 0..<c.slots where c.slotActive[base + k] && activeCount > 1 {
                if exp(c.slotLogWeight[base + k] - top) / total < Float(i.dormantBelow) {
                    c.slotActive[base + k] = false
                    activeCount -= 1
                }
            }
        }
        for k in 0..<c.slots { c.slotEngaged[base + k] = false }
        let decay = Float(s.fatigue.decay)
        for k in 0..<c.categories { c.fatigue[user * c.categories + k] *= decay }
        updatePreference(user: user, c, catalog, s)
    }

    /// Runs `body` over contiguous ranges of users on up to `threads` threads.
    static func parallel(users: Int, threads: Int, _ body: @Sendable (Range<Int>) -> Void) {
        let chunks = min(threads, max(1, users / 256))
        let per = (users + chunks - 1) / chunks
        DispatchQueue.concurrentPerform(iterations: chunks) { chunk in
            body(chunk * per..<min(users, (chunk + 1) * per))
        }
    }
}

/// Hands pointers to `concurrentPerform` workers that write disjoint elements (see
/// `UserColumns` for the argument). Never used to share anything else.
struct UnsafeSendable<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}
