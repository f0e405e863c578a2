import Foundation
import RecCore
import Scenario

/// How one user responds to one slate. Reads the catalog, and reads and writes only the
/// user's own row of the columns (fatigue, interests, satisfaction), so slates of
/// different users can be answered on different threads.
struct ResponseModel: @unchecked Sendable {
    let s: PopulationSettings
    let catalog: Catalog
    let c: UserColumns
    let seed: UInt64
    let medianPrice: Float
    /// Draw each position's numbers from a stream of its own (a paired design's copies).
    let synchronized: Bool

    init(_ s: PopulationSettings, _ catalog: Catalog, _ c: UserColumns, _ seed: UInt64, synchronized: Bool = false) {
        self.synchronized = synchronized
        self.s = s
        self.catalog = catalog
        self.c = c
        self.seed = seed
        medianPrice = Float(catalog.settings.medianPrice)
    }

    /// The user's true affinity for an item: their taste . the item's topic vector.
    @inline(__always)
    func affinity(_ user: Int, _ item: Int) -> Float {
        catalog.vectors.withUnsafeBufferPointer { v in
            dot(c.preference.baseAddress! + user * c.dim, v.baseAddress! + item * c.dim, c.dim)
        }
    }

    /// Click probability given examination, before the position's examination.
    @inline(__always)
    func attraction(_ user: Int, _ item: Int, affinity a: Float) -> Float {
        let r = s.response
        let category = Int(catalog.topCategory[item])
        let logit = Float(r.clickBias) + Float(r.affinityScale) * a + Float(r.qualityWeight) * (catalog.quality[item] - 0.5)
            + Float(r.popularityWeight) * catalog.popularity[item] - Float(s.fatigue.weight) * c.fatigue[user * c.categories + category]
        return sigmoid(logit)
    }

    /// Expected share of the item watched, given a click.
    @inline(__always)
    func completion(affinity a: Float) -> Float {
        sigmoid(Float(s.response.completionBias) + Float(s.response.completionScale) * a)
    }

    /// Purchase probability given a click.
    @inline(__always)
    func purchaseProbability(_ user: Int, _ item: Int, affinity a: Float) -> Float {
        let r = s.response
        let shopping = catalog.shopping[Int(catalog.topCategory[item])]
        return sigmoid(Float(r.purchaseBias) + Float(r.purchaseAffinityScale) * a + 3 * (shopping - 0.5)
                       - c.priceSensitivity[user] * log(catalog.price[item] / medianPrice))
    }

    /// Examination probability of a position under the position-based model (for the
    /// cascade, the chance of reaching it without clicks before).
    @inline(__always)
    func examination(_ position: Int) -> Float {
        switch s.positionBias {
        case .positionBased(let exponent): Float(pow(1 + Double(position), -exponent))
        case .cascade(let go, _): Float(pow(go, Double(position)))
        }
    }

    func respond(to slate: SlateHeader, entries: UnsafeBufferPointer<SlateEntry>, at tick: Tick,
                 feedback: inout [Feedback], purchases: inout [Feedback]) {
        let h = slate.header
        let user = Int(h.user)
        var rng = RandomStream(seed: seed, .responses, UInt64(user), UInt64(h.sequence))
        let header = RecordHeader(arm: h.arm, tick: tick, user: h.user, sequence: h.sequence)
        var scanning = true  // cascade: still going down the slate
        var clicked = false
        for (position, entry) in entries.enumerated() {
            if synchronized {
                // Common random numbers: a stream per (user, tick, position), so copies of the
                // user shown different slates draw the same numbers at the same place. (One
                // stream per slate, as below, falls out of step after the first click that
                // differs, and a sequence number falls out of step once one copy's user
                // skips a tick.) Bit 63 keeps these keys apart from the sequences'.
                rng = RandomStream(seed: seed, .responses, UInt64(user), 1 << 63 | UInt64(tick) << 8 | UInt64(position))
            }
            let item = Int(entry.item)
            feedback.append(Feedback(header, event: .impression, position: UInt8(position), item: entry.item, shownTick: h.tick))
            let a = affinity(user, item)
            let p = attraction(user, item, affinity: a)
            // Exposure tires: the next item of this category will attract less.
            c.fatigue[user * c.categories + Int(catalog.topCategory[item])] += 1
            let examined: Bool
            switch s.positionBias {
            case .positionBased: examined = rng.nextFloat() < examination(position)
            case .cascade: examined = scanning
            }
            let click = examined && rng.nextFloat() < p
            if case .cascade(let go, let goAfterClick) = s.positionBias, scanning {
                scanning = rng.nextDouble() < (click ? goAfterClick : go)
            }
            guard click else { continue }
            clicked = true
            let watched = min(1, max(0.02, completion(affinity: a) * Float(exp(0.25 * rng.nextGaussian()))))
            feedback.append(Feedback(header, event: .click, position: UInt8(position), item: entry.item, shownTick: h.tick,
                                     viewSeconds: catalog.durationSeconds[item] * watched))
            engage(user, topic: catalog.topic[item])
            if rng.nextFloat() < purchaseProbability(user, item, affinity: a) {
                var later = header
                later.tick = tick + Tick(s.purchaseDelayTicks)
                purchases.append(Feedback(later, event: .purchase, position: UInt8(position), item: entry.item,
                                          shownTick: h.tick, amount: catalog.price[item]))
            }
        }
        c.satisfaction[user] = 0.8 * c.satisfaction[user] + (clicked ? 0.2 : 0)
    }

    /// A click strengthens the interest it belongs to, or wakes it if it was dormant.
    func engage(_ user: Int, topic: UInt16) {
        let base = user * c.slots
        guard let k = (0..<c.slots).first(where: { c.slotTopic[base + $0] == topic }) else { return }
        if c.slotActive[base + k] {
            c.slotLogWeight[base + k] += Float(s.interests.reinforcement)
        } else {
            // Wake with `wakeShare` of the mixture: w = log(share / (1 - share)) + logsumexp(active).
            var top = -Float.infinity
            for j in 0..<c.slots where c.slotActive[base + j] { top = max(top, c.slotLogWeight[base + j]) }
            var total: Float = 0
            for j in 0..<c.slots where c.slotActive[base + j] { total += exp(c.slotLogWeight[base + j] - top) }
            let share = Float(s.interests.wakeShare)
            c.slotLogWeight[base + k] = share >= 1 ? top + 10 : log(share / (1 - share)) + top + log(total)
            c.slotActive[base + k] = true
        }
        c.slotEngaged[base + k] = true
        Population.updatePreference(user: user, c, catalog, s)
    }
}

@inline(__always)
func sigmoid(_ x: Float) -> Float { 1 / (1 + exp(-x)) }
