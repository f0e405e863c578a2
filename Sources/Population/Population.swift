import Foundation
import RecCore
import Scenario

/// The simulated users: who asks for a slate each tick, and how they respond to what
/// they are shown (impressions, clicks with view seconds, purchases some ticks later).
///
/// A placeholder world with the seams the population issue fills in: each user has two
/// favourite categories and an activity level; a click depends on position, quality,
/// popularity and whether the item is in a favourite category. All randomness comes from
/// streams keyed by (seed, user, tick), so a response never depends on processing order.
public final class Population {
    public let catalog: Catalog
    public let assignment: ArmAssignment
    let settings: PopulationSettings
    let seed: UInt64
    let favourites: [UInt32]  // two per user
    let activity: [Float]
    var sequence: [UInt32]
    /// Purchases waiting for their tick, in the order they were scheduled.
    var pending: [Feedback] = []

    public init(_ scenario: Scenario) {
        settings = scenario.population
        seed = scenario.seed
        catalog = Catalog(scenario.catalog, seed: scenario.seed)
        assignment = ArmAssignment(scenario)
        var favourites = [UInt32](), activity = [Float]()
        favourites.reserveCapacity(settings.users * 2)
        for user in 0..<settings.users {
            var rng = RandomStream(seed: seed, .users, UInt64(user))
            favourites.append(UInt32(rng.nextInt(below: scenario.catalog.categories)))
            favourites.append(UInt32(rng.nextInt(below: scenario.catalog.categories)))
            // Heavy and light users around the scenario's request probability.
            let a = settings.requestProbability * (0.5 + rng.nextDouble())
            activity.append(Float(min(1, a)))
        }
        self.favourites = favourites
        self.activity = activity
        sequence = [UInt32](repeating: 0, count: settings.users)
    }

    public var userCount: Int { settings.users }

    /// The requests users make at `tick`, in user order.
    public func requests(at tick: Tick, _ emit: (Request) throws -> Void) rethrows {
        for user in 0..<settings.users {
            var rng = RandomStream(seed: seed, .requests, UInt64(user), UInt64(tick))
            guard rng.nextFloat() < activity[user] else { continue }
            let header = RecordHeader(arm: assignment.arm[user], tick: tick, user: UserID(user), sequence: sequence[user])
            sequence[user] += 1
            try emit(Request(header, slateSize: UInt16(settings.slateSize)))
        }
    }

    /// The user's true affinity for an item, in [0, 1].
    public func affinity(user: UserID, item: ItemID) -> Float {
        let c = catalog.category[Int(item)]
        let match: Float = favourites[Int(user) * 2] == c || favourites[Int(user) * 2 + 1] == c ? 1 : 0
        return 0.45 * catalog.quality[Int(item)] + 0.2 * catalog.popularity[Int(item)] + 0.35 * match
    }

    /// The true click probability of an item shown at `position`.
    public func clickProbability(user: UserID, item: ItemID, position: Int) -> Float {
        let examination = 1 / (1 + 0.25 * Float(position))
        let logit = -3.2 + 5 * affinity(user: user, item: item)
        return examination / (1 + exp(-logit))
    }

    /// How the user responds to a slate: an impression per item, clicks with view seconds,
    /// and purchases scheduled `purchaseDelayTicks` later.
    public func respond(to slate: SlateHeader, entries: ArraySlice<SlateEntry>, at tick: Tick, _ emit: (Feedback) throws -> Void) rethrows {
        let h = slate.header
        var rng = RandomStream(seed: seed, .responses, UInt64(h.user), UInt64(h.sequence))
        for (position, entry) in entries.enumerated() {
            let header = RecordHeader(arm: h.arm, tick: tick, user: h.user, sequence: h.sequence)
            try emit(Feedback(header, event: .impression, position: UInt8(position), item: entry.item, shownTick: h.tick))
            let p = clickProbability(user: h.user, item: entry.item, position: position)
            guard rng.nextFloat() < p else { continue }
            let a = affinity(user: h.user, item: entry.item)
            let completion = min(1, max(0.05, 0.2 + 0.7 * a + 0.1 * Float(rng.nextGaussian())))
            let seconds = catalog.durationSeconds[Int(entry.item)] * completion
            try emit(Feedback(header, event: .click, position: UInt8(position), item: entry.item, shownTick: h.tick, viewSeconds: seconds))
            if rng.nextFloat() < 0.15 * a * a {
                var purchase = header
                purchase.tick = tick + Tick(settings.purchaseDelayTicks)
                pending.append(Feedback(purchase, event: .purchase, position: UInt8(position), item: entry.item,
                                        shownTick: h.tick, amount: catalog.price[Int(entry.item)]))
            }
        }
    }

    /// Purchases that happen at `tick` (scheduled by earlier clicks).
    public func purchases(at tick: Tick, _ emit: (Feedback) throws -> Void) rethrows {
        guard !pending.isEmpty else { return }
        var kept: [Feedback] = []
        for f in pending {
            if f.header.tick == tick { try emit(f) } else { kept.append(f) }
        }
        pending = kept
    }

    /// Purchases scheduled after the last tick (reported, never silently dropped).
    public var purchasesPending: Int { pending.count }
}
