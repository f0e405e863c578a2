import Foundation
import Testing
@testable import Population
@testable import RecCore
@testable import Scenario

/// A world for validity tests; `population` and `catalog` merge over the defaults.
func world(users: Int = 2000, items: Int = 3000, population: JSONObject = [:], catalog: JSONObject = [:],
           threads: Int? = nil, seed: UInt64 = 5) throws -> Population {
    var p: JSONObject = ["users": .integer(Int64(users)), "requestProbability": 1.0, "activitySpread": 0, "history": ["median": 300, "max": 3000]]
    for (k, v) in population.entries { p[k] = v }
    var c: JSONObject = ["items": .integer(Int64(items)), "arrivalsPerTick": 0]
    for (k, v) in catalog.entries { c[k] = v }
    let scenario = try Scenario.decode(JSONValue.object([
        "name": "world", "seed": .integer(Int64(seed)), "population": .object(p), "catalog": .object(c),
        "arms": [["name": "a", "share": 1, "candidates": 10]],
    ]).rendered())
    return Population(scenario, threads: threads)
}

/// Runs one tick: every user who asks gets the slate `choose` builds; returns the feedback.
func tick(_ w: Population, _ t: Tick, choose: (UserID, inout RandomStream) -> [ItemID]) -> [Feedback] {
    var requests: [Request] = []
    w.requests(at: t, into: &requests)
    var headers: [(header: SlateHeader, start: Int)] = []
    var entries: [SlateEntry] = []
    for r in requests {
        var rng = RandomStream(seed: 99, UInt64(r.header.user), UInt64(t))
        let items = choose(r.header.user, &rng)
        headers.append((SlateHeader(r.header, policy: 0, itemCount: items.count), entries.count))
        entries += items.map { SlateEntry(item: $0, propensity: 1) }
    }
    var feedback: [Feedback] = []
    w.respond(to: headers, entries: entries, at: t, into: &feedback)
    w.endTick(t)
    return feedback
}

func randomSlate(_ w: Population, k: Int = 10) -> (UserID, inout RandomStream) -> [ItemID] {
    let live = w.catalog.liveItems
    return { _, rng in
        var seen = Set<ItemID>()
        while seen.count < k { seen.insert(live[rng.nextInt(below: live.count)]) }
        return seen.sorted()
    }
}

@Suite("The simulated world behaves as designed", .serialized)
struct WorldValidityTests {
    @Test("position bias is visible in CTR by position")
    func positionBias() throws {
        let w = try world(population: ["fatigue": ["weight": 0]])
        var impressions = [Int](repeating: 0, count: 10), clicks = [Int](repeating: 0, count: 10)
        for t in 0..<10 {
            for f in tick(w, Tick(t), choose: randomSlate(w)) {
                if f.event == .impression { impressions[Int(f.position)] += 1 }
                if f.event == .click { clicks[Int(f.position)] += 1 }
            }
        }
        let ctr = (0..<10).map { Double(clicks[$0]) / Double(impressions[$0]) }
        // 20,000 impressions per position at a CTR of a few percent: standard errors are
        // about 3% of each CTR, while examination falls from 1 to 10^-0.7 = 0.2.
        #expect(ctr[0] > ctr[3] && ctr[3] > ctr[9], "\(ctr)")
        let ratio = ctr[0] / ctr[9]
        #expect(ratio > 3.5 && ratio < 7, "CTR(0)/CTR(9) = \(ratio), examination ratio 5.0")
    }

    @Test("under the cascade model CTR falls with position too")
    func cascade() throws {
        let w = try world(population: ["fatigue": ["weight": 0], "positionBias": ["type": "cascade", "continueProbability": 0.8]])
        var impressions = [Int](repeating: 0, count: 10), clicks = [Int](repeating: 0, count: 10)
        for t in 0..<5 {
            for f in tick(w, Tick(t), choose: randomSlate(w)) {
                if f.event == .impression { impressions[Int(f.position)] += 1 }
                if f.event == .click { clicks[Int(f.position)] += 1 }
            }
        }
        let ctr = (0..<10).map { Double(clicks[$0]) / Double(impressions[$0]) }
        // Reaching position 9 takes nine continuations: at most 0.8^9 = 0.13.
        #expect(ctr[9] < 0.3 * ctr[0], "\(ctr)")
    }

    @Test("fatigue lowers response to repeated exposure to one category")
    func fatigue() throws {
        func laterCTR(sameCategory: Bool) throws -> Double {
            let w = try world(population: ["fatigue": ["weight": 0.5, "decay": 0.7], "positionBias": ["type": "position-based", "exponent": 0]])
            let byCategory = Dictionary(grouping: w.catalog.liveItems) { w.catalog.topCategory[Int($0)] }
            var shown = 0, clicked = 0
            for t in 0..<6 {
                let feedback = tick(w, Tick(t)) { _, rng in
                    if sameCategory {
                        let list = byCategory[UInt16(rng.nextInt(below: byCategory.count))]!
                        return (0..<10).map { _ in list[rng.nextInt(below: list.count)] }
                    }
                    return randomSlate(w)(0, &rng)
                }
                for f in feedback where f.position >= 5 {
                    if f.event == .impression { shown += 1 }
                    if f.event == .click { clicked += 1 }
                }
            }
            return Double(clicked) / Double(shown)
        }
        let same = try laterCTR(sameCategory: true), diverse = try laterCTR(sameCategory: false)
        // By position 5 of a one-category slate fatigue is >= 5 (e^-2.5 = 0.08 of the odds);
        // in a mixed slate of 8 categories it is about 0.6. 60,000 impressions each side.
        #expect(same < 0.5 * diverse, "same category \(same), mixed \(diverse)")
    }

    @Test("a dormant interest wakes only after exposure and a click")
    func dormantWakes() throws {
        let w = try world(users: 1000, population: ["interests": ["dormantAppeal": 1.0, "dormantBelow": 0]])
        let dormantTopics = (0..<1000).map { u in Set(w.interests(of: UserID(u)).filter { !$0.active }.map(\.topic)) }
        // Slates that never show a user's dormant topics: nothing may wake.
        for t in 0..<5 {
            _ = tick(w, Tick(t)) { user, rng in
                var items: [ItemID] = []
                let live = w.catalog.liveItems
                while items.count < 10 {
                    let item = live[rng.nextInt(below: live.count)]
                    if !dormantTopics[Int(user)].contains(Int(w.catalog.topic[Int(item)])) && !items.contains(item) { items.append(item) }
                }
                return items
            }
        }
        for u in 0..<1000 {
            let active = Set(w.interests(of: UserID(u)).filter(\.active).map(\.topic))
            #expect(active.isDisjoint(with: dormantTopics[u]), "user \(u) woke an interest without exposure")
        }
        // Now show each user items of one dormant topic: those who click wake it, no one else.
        let index = w.catalog.topicIndex()
        var clickedTopic = [Int: Int]()
        for t in 5..<8 {
            let feedback = tick(w, Tick(t)) { user, rng in
                guard let topic = dormantTopics[Int(user)].min() else { return randomSlate(w)(user, &rng) }
                return Array(Set((0..<30).compactMap { _ in index.draw(topic: topic, &rng) }).sorted().prefix(10))
            }
            for f in feedback where f.event == .click && dormantTopics[Int(f.header.user)].min() == Int(w.catalog.topic[Int(f.item)]) {
                clickedTopic[Int(f.header.user)] = Int(w.catalog.topic[Int(f.item)])
            }
        }
        var woke = 0
        for u in 0..<1000 {
            guard let topic = dormantTopics[u].min() else { continue }
            let isActive = w.interests(of: UserID(u)).contains { $0.topic == topic && $0.active }
            #expect(isActive == (clickedTopic[u] != nil), "user \(u): active \(isActive), clicked \(clickedTopic[u] != nil)")
            if isActive { woke += 1 }
        }
        #expect(woke > 100, "only \(woke) of 1000 users woke a dormant interest after three ticks of exposure")
    }

    @Test("the top interest's log-weight drifts at the configured rate")
    func drift() throws {
        let w = try world(population: ["interests": ["drift": 0.08, "decay": 0, "reinforcement": 0, "dormantBelow": 0]])
        let c = w.columns
        func topSlot(_ u: Int) -> Int {
            (0..<c.slots).filter { c.slotActive[u * c.slots + $0] }.max { c.slotLogWeight[u * c.slots + $0] < c.slotLogWeight[u * c.slots + $1] }!
        }
        let slots = (0..<2000).map(topSlot)
        let before = (0..<2000).map { c.slotLogWeight[$0 * c.slots + slots[$0]] }
        w.endTick(0)  // no slates: drift alone
        let steps = (0..<2000).map { Double(c.slotLogWeight[$0 * c.slots + slots[$0]] - before[$0]) }
        let mean = steps.reduce(0, +) / Double(steps.count)
        let sd = (steps.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(steps.count - 1)).squareRoot()
        // 2000 draws: the sample SD is within 1.6% (one standard error) of 0.08 two times in
        // three; 10% is over six standard errors.
        #expect(abs(sd - 0.08) < 0.008, "sd \(sd)")
        #expect(abs(mean) < 0.01, "mean \(mean)")
    }

    @Test("an oracle slate beats a random one by a wide margin on every metric")
    func oracle() throws {
        let w = try world(users: 100)
        for objective in Population.Objective.allCases {
            var oracleValue: Float = 0, randomValue: Float = 0
            for u in 0..<100 {
                let user = UserID(u)
                var rng = RandomStream(seed: 1, UInt64(u))
                let random = randomSlate(w)(user, &rng)
                let best = w.oracleSlate(user: user, k: 10, objective: objective)
                func value(_ slate: [ItemID]) -> Float {
                    slate.enumerated().reduce(0) { sum, e in
                        switch objective {
                        case .clicks: sum + w.trueClickProbability(user: user, item: e.element, position: e.offset)
                        case .viewSeconds: sum + w.expectedViewSeconds(user: user, item: e.element, position: e.offset)
                        case .gmv: sum + w.expectedGMV(user: user, item: e.element, position: e.offset)
                        }
                    }
                }
                oracleValue += value(best)
                randomValue += value(random)
            }
            #expect(oracleValue > 3 * randomValue, "\(objective): oracle \(oracleValue), random \(randomValue)")
        }
    }

    @Test("for most targets the most relevant history behaviours lie outside the most recent 50")
    func relevantBehavioursAreOld() throws {
        let w = try world(users: 400, population: ["history": ["median": 1000, "max": 10_000]])
        let index = w.catalog.topicIndex()
        var targets = 0, mostlyOld = 0
        for u in 0..<400 {
            let user = UserID(u)
            let history = w.histories.history(of: user)
            guard history.count >= 200 else { continue }
            // A target the user would engage with: an item of one of their active interests.
            var rng = RandomStream(seed: 3, UInt64(u))
            let active = w.interests(of: user).filter(\.active)
            let target = index.draw(topic: active[rng.nextInt(below: active.count)].topic, &rng)!
            let relevance = history.map { w.relevance(of: $0.item, to: target) }
            let ranked = history.indices.sorted { relevance[$0] > relevance[$1] }
            let old = ranked.prefix(20).filter { $0 < history.count - 50 }.count
            targets += 1
            if old > 10 { mostlyOld += 1 }
        }
        // The recent 50 hold one or two interest episodes of ~30; a target comes from any of
        // three active interests, so its relevant episodes are usually further back.
        #expect(Double(mostlyOld) > 0.7 * Double(targets), "\(mostlyOld) of \(targets) targets")
    }

    @Test("new items get clicks only after they are shown")
    func coldStart() throws {
        let w = try world(users: 500, catalog: ["arrivalsPerTick": 50])
        var firstShown: [ItemID: Int] = [:]
        var newClicked = 0
        for t in 0..<6 {
            w.advanceCatalog(to: Tick(t))
            var index = 0
            for f in tick(w, Tick(t), choose: randomSlate(w)) {
                index += 1
                if f.event == .impression, firstShown[f.item] == nil { firstShown[f.item] = index }
                if f.event == .click {
                    // The impression of a shown item comes before its click in the stream.
                    #expect(firstShown[f.item] != nil, "item \(f.item) clicked before it was ever shown")
                    if w.catalog.bornTick[Int(f.item)] > 0 { newClicked += 1 }
                }
            }
        }
        let never = (0..<w.catalog.count).filter { w.catalog.bornTick[$0] > 0 && firstShown[ItemID($0)] == nil }
        #expect(!never.isEmpty)
        #expect(newClicked > 0, "new items that were shown should get some clicks")
    }

    @Test("histories are 8 bytes an entry, and the same on 1 thread and on 4")
    func histories() throws {
        #expect(MemoryLayout<HistoryEntry>.stride == 8)
        let one = try world(users: 500, threads: 1), four = try world(users: 500, threads: 4)
        #expect(one.histories.offsets == four.histories.offsets)
        #expect(Array(one.histories.entries) == Array(four.histories.entries))
        let lengths = (0..<500).map { one.histories.history(of: UserID($0)).count }
        #expect(lengths.max()! <= 3000 && lengths.min()! >= 1)
        // Past behaviours are in the past, in time order.
        for u in 0..<500 {
            let h = one.histories.history(of: UserID(u))
            #expect(h.allSatisfy { $0.tick < 0 })
            #expect(zip(h, h.dropFirst()).allSatisfy { $0.tick <= $1.tick })
        }
    }
}

@Suite("Memory estimate")
struct MemoryEstimateTests {
    @Test("the estimate's logged histories are within 10% of the store a world builds", arguments: [(300, 1.0, 3000), (1000, 0.5, 1200), (200, 1.5, 400)])
    func historiesMatchTheStore(median: Int, spread: Double, max: Int) throws {
        let s = try Scenario.decode(#"{"name": "h", "population": {"users": 3000, "history": {"median": \#(median), "spread": \#(spread), "max": \#(max)}}, "arms": [{"name": "a", "share": 1}]}"#)
        let built = Double(Population(s).histories.offsets.last!) * 8
        let estimated = try #require(s.memoryEstimate.parts.first { $0.name == "logged histories" }).bytes
        #expect(abs(estimated / built - 1) < 0.10, "estimated \(estimated) B, built \(built) B")
    }

    @Test("10 million users with 1,000 behaviours each need over 80 GB, and the histories lead the breakdown")
    func largeWorld() throws {
        let s = try Scenario.decode(#"{"name": "big", "population": {"users": 10000000, "history": {"median": 1000, "spread": 0, "max": 1000}}, "arms": [{"name": "a", "share": 1}]}"#)
        let e = s.memoryEstimate
        #expect(e.totalBytes > 80e9)
        #expect(e.breakdown.first == "logged histories: 74.5 GB (population.users 10000000 x about 1000 entries (population.history.median 1000, .spread 0.0, .max 1000) x 8 B)")
    }

    @Test("sizes parse with K, M, G and T suffixes (powers of 1,024) and print in the largest fitting unit")
    func sizes() {
        #expect(MemoryEstimate.parseSize("16G") == Double(16 << 30))
        #expect(MemoryEstimate.parseSize("512MiB") == Double(512 << 20))
        #expect(MemoryEstimate.parseSize("2gb") == Double(2 << 30))
        #expect(MemoryEstimate.parseSize("1000") == 1000)
        #expect(MemoryEstimate.parseSize("lots") == nil && MemoryEstimate.parseSize("-1G") == nil && MemoryEstimate.parseSize("G") == nil)
        #expect(MemoryEstimate.describe(bytes: 1536) == "1.5 KB" && MemoryEstimate.describe(bytes: 100) == "100 B")
    }
}

@Suite("Common random numbers")
struct CommonRandomNumberTests {
    /// Two copies of a paired world's population, shown the same random slates except at
    /// position 2; per later position where either copy clicked, whether both did.
    func agreementAfterADifference(paired: Bool) throws -> (agree: Int, either: Int) {
        let scenario = try Scenario.decode(JSONValue.object([
            "name": "crn", "seed": 3,
            "population": ["users": 3000, "requestProbability": 1.0, "activitySpread": 0, "slateSize": 10, "history": ["median": 50, "max": 200],
                           "response": ["clickBias": -1.0]],
            "catalog": ["items": 2000, "arrivalsPerTick": 0],
            "arms": [["name": "a", "share": 0.5, "candidates": 10], ["name": "b", "share": 0.5, "candidates": 10]],
            "experiment": ["design": .string(paired ? "paired" : "split")],
        ]).rendered())
        let original = Population(scenario)
        let a = Population(copying: original, arm: 0, arms: 2), b = Population(copying: original, arm: 1, arms: 2)
        let live = original.catalog.liveItems
        var agree = 0, either = 0
        for t in 0..<Tick(3) {
            var slates: [[ItemID]] = []
            let fa = tick(a, t) { _, rng in
                let s = (0..<10).map { _ in live[rng.nextInt(below: live.count)] }
                slates.append(s)
                return s
            }
            var n = 0
            let fb = tick(b, t) { _, rng in
                var s = slates[n]
                n += 1
                s[2] = live[rng.nextInt(below: live.count)]
                return s
            }
            func clicks(_ f: [Feedback]) -> Set<[UInt32]> {
                Set(f.filter { $0.event == .click && $0.position > 2 }.map { [$0.header.user, UInt32($0.position)] })
            }
            let (ca, cb) = (clicks(fa), clicks(fb))
            agree += ca.intersection(cb).count
            either += ca.union(cb).count
        }
        return (agree, either)
    }

    @Test("copies of a paired world shown slates that differ at one position still click alike further down")
    func synchronizedDraws() throws {
        let paired = try agreementAfterADifference(paired: true)
        let split = try agreementAfterADifference(paired: false)
        #expect(paired.either > 1000)
        // Only what the differing item changed (fatigue, an engaged interest) can move a later click.
        #expect(Double(paired.agree) / Double(paired.either) > 0.9, "\(paired)")
        // One stream per slate falls out of step after a click that differs.
        #expect(Double(split.agree) / Double(paired.either) < Double(paired.agree) / Double(paired.either) - 0.05, "\(split)")
    }
}
