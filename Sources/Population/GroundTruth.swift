import Foundation
import RecCore
import Scenario

/// What the simulator knows and no arm may see: true probabilities and expectations,
/// oracle slates, and how relevant each history behaviour is to a target.
extension Population {
    var model: ResponseModel { ResponseModel(settings, catalog, columns, seed) }

    /// The user's true affinity for the item now: their taste . the item's topic vector.
    public func trueAffinity(user: UserID, item: ItemID) -> Float {
        model.affinity(Int(user), Int(item))
    }

    /// The true probability that the user clicks the item shown at `position`, now.
    /// (Under the cascade model: assuming no click above it.)
    public func trueClickProbability(user: UserID, item: ItemID, position: Int = 0) -> Float {
        let m = model
        return m.examination(position) * m.attraction(Int(user), Int(item), affinity: m.affinity(Int(user), Int(item)))
    }

    /// Expected view seconds from showing the item at `position`, now.
    public func expectedViewSeconds(user: UserID, item: ItemID, position: Int = 0) -> Float {
        let m = model
        let a = m.affinity(Int(user), Int(item))
        return m.examination(position) * m.attraction(Int(user), Int(item), affinity: a)
            * catalog.durationSeconds[Int(item)] * m.completion(affinity: a)
    }

    /// Expected GMV from showing the item at `position`, now.
    public func expectedGMV(user: UserID, item: ItemID, position: Int = 0) -> Float {
        let m = model
        let a = m.affinity(Int(user), Int(item))
        return m.examination(position) * m.attraction(Int(user), Int(item), affinity: a)
            * m.purchaseProbability(Int(user), Int(item), affinity: a) * catalog.price[Int(item)]
    }

    public enum Objective: String, Sendable, CaseIterable { case clicks, viewSeconds, gmv }

    /// The best `k` live items for the user by `objective`, best first: the oracle slate
    /// that regret is measured against.
    public func oracleSlate(user: UserID, k: Int, objective: Objective = .clicks) -> [ItemID] {
        var scored: [(Float, ItemID)] = []
        scored.reserveCapacity(catalog.liveItems.count)
        for item in catalog.liveItems {
            let v: Float = switch objective {
            case .clicks: trueClickProbability(user: user, item: item)
            case .viewSeconds: expectedViewSeconds(user: user, item: item)
            case .gmv: expectedGMV(user: user, item: item)
            }
            scored.append((v, item))
        }
        scored.sort { ($0.0, $1.1) > ($1.0, $0.1) }
        return scored.prefix(k).map(\.1)
    }

    /// Expected clicks of a slate for the user now: the sum over positions of the true
    /// click probability at that position (exact under the position-based model; under
    /// the cascade model, an upper bound that orders slates the same way).
    public func expectedClicks(user: UserID, slate: some Collection<ItemID>) -> Double {
        let m = model
        var total = 0.0
        for (position, item) in slate.enumerated() {
            total += Double(m.examination(position) * m.attraction(Int(user), Int(item), affinity: m.affinity(Int(user), Int(item))))
        }
        return total
    }

    /// Expected clicks of the oracle's slate of `k`: the k most attractive live items,
    /// most attractive on top (examination falls with position, so this is the best order).
    public func oracleExpectedClicks(user: UserID, k: Int) -> Double {
        let m = model
        var total = 0.0
        for (j, a) in oracle(user: user, k: k).attraction.enumerated() { total += Double(m.examination(j) * a) }
        return total
    }

    /// The oracle's slate of `k` for the user now: the k most attractive live items, most
    /// attractive first (ties to the lower item id), with their attraction.
    public func oracle(user: UserID, k: Int) -> (items: [ItemID], attraction: [Float]) {
        guard k > 0 else { return ([], []) }
        let m = model
        var best = [Float](repeating: 0, count: k)  // descending
        var items = [ItemID](repeating: 0, count: k)
        var filled = 0
        for item in catalog.liveItems {
            let a = m.attraction(Int(user), Int(item), affinity: m.affinity(Int(user), Int(item)))
            guard filled < k || a > best[k - 1] else { continue }
            var j = min(filled, k - 1)
            while j > 0 && best[j - 1] < a { best[j] = best[j - 1]; items[j] = items[j - 1]; j -= 1 }
            best[j] = a
            items[j] = item
            filled = min(k, filled + 1)
        }
        return (Array(items[..<filled]), Array(best[..<filled]))
    }

    /// How relevant a history behaviour is to a target item, in [0, 1]: the cosine of
    /// their topic vectors, floored at 0 (the graded relevance of retrieval NDCG).
    public func relevance(of behaviour: ItemID, to target: ItemID) -> Float {
        max(0, catalog.similarity(behaviour, target))
    }

    /// The user's interests now: topic, share of the active mixture (0 when dormant).
    public func interests(of user: UserID) -> [(topic: Int, share: Float, active: Bool)] {
        let c = columns, base = Int(user) * c.slots
        var top = -Float.infinity
        for k in 0..<c.slots where c.slotActive[base + k] { top = max(top, c.slotLogWeight[base + k]) }
        var total: Float = 0
        for k in 0..<c.slots where c.slotActive[base + k] { total += exp(c.slotLogWeight[base + k] - top) }
        return (0..<c.slots).map { k in
            (Int(c.slotTopic[base + k]), c.slotActive[base + k] ? exp(c.slotLogWeight[base + k] - top) / total : 0, c.slotActive[base + k])
        }
    }

    /// The catalog as JSON lines (one per item), for `--export-truth`.
    public func itemTruthLines(from first: Int = 0) -> [String] {
        (first..<catalog.count).map { item in
            let v = catalog.vector(ItemID(item)).map { JSONValue.number(Double($0)) }
            let o: JSONValue = [
                "kind": "item", "item": .integer(Int64(item)), "born": .integer(Int64(catalog.bornTick[item])),
                "topCategory": .integer(Int64(catalog.topCategory[item])), "subcategory": .integer(Int64(catalog.subcategory[item])),
                "topic": .integer(Int64(catalog.topic[item])), "quality": .number(Double(catalog.quality[item])),
                "popularity": .number(Double(catalog.popularity[item])), "price": .number(Double(catalog.price[item])),
                "durationSeconds": .number(Double(catalog.durationSeconds[item])), "vector": .array(v),
            ]
            return o.rendered(pretty: false)
        }
    }

    /// Every user's interests at `tick` as JSON lines, for `--export-truth`.
    /// `copy`: in a paired design, the arm whose copy of the population this is (the
    /// lines then carry it as "arm").
    public func userTruthLines(tick: Tick, copy: Int? = nil) -> [String] {
        (0..<settings.users).map { user in
            let interests = self.interests(of: UserID(user)).map { i -> JSONValue in
                ["topic": .integer(Int64(i.topic)), "share": .number(Double(i.share)), "active": .bool(i.active)]
            }
            var o: JSONObject = ["kind": "user", "tick": .integer(Int64(tick)), "user": .integer(Int64(user)), "interests": .array(interests)]
            if let copy { o["arm"] = .integer(Int64(copy)) }
            return JSONValue.object(o).rendered(pretty: false)
        }
    }
}
