import Foundation
import RecCore

/// What one arm did, accumulated from the requests and feedback that crossed the
/// transport: totals, per-user aggregates (the unit of the statistics) and a per-tick
/// series.
public struct ArmMetrics: Sendable {
    public let name: String
    public let users: Int
    // Per user, indexed by the user's slot in the arm.
    var requests: [UInt32]
    var impressions: [UInt32]
    var clicks: [UInt32]
    var purchases: [UInt32]
    var viewSeconds: [Double]
    var gmv: [Double]
    /// Ticks in which the user asked for at least one slate: retention.
    var activeTicks: [UInt32]
    var lastActive: [Int32]
    /// Impressions per item (the item-level measures: coverage, exposure Gini, long tail).
    var exposures: [UInt32]
    /// Clicks per item in its first `newItemTicks` ticks (page views of new items).
    var earlyClicks: [UInt32]
    let newItemTicks: Int
    /// Impressions and clicks of items younger than `newItemTicks` that arrived during the
    /// run (tick 1 on): how well the arm serves items nobody knew at the start.
    public private(set) var youngImpressions = 0
    public private(set) var youngClicks = 0
    /// Click-through rate of young items (NaN when none were shown).
    public var youngCTR: Double { youngImpressions > 0 ? Double(youngClicks) / Double(youngImpressions) : .nan }
    /// Regret against the oracle on the sampled slates: expected clicks the oracle's slate
    /// would have had minus the served slate's.
    public private(set) var regret = Regret()
    /// SPARC: per user, the interests they have clicked in (a bitset), and how many of
    /// those first clicks came in an interest below the discovery threshold when served.
    var engaged: [UInt64] = []
    var wordsPerUser = 0
    public private(set) var discoveries = 0
    public private(set) var firstEngagements = 0
    /// What the arm's interest model looked like at the end (SPARC arms only).
    public var interestSummary: InterestSummary?
    /// A few users' most probable interests after each tick (SPARC arms only): how their
    /// distributions evolved.
    public var interestTrace: [InterestTrace] = []
    var distinctShown = 0
    /// Per tick: clicks, view seconds, GMV.
    public private(set) var series: [TickTotals] = []
    /// After each tick, the per-user means so far (since the split, or in the warm-up)
    /// with their standard errors: the report's charts and their interval bands.
    public private(set) var cumulative: [[PerUserMetric: MeanEstimate]] = []
    /// The metrics `cumulative` follows.
    public static let charted: [PerUserMetric] = [.viewSeconds, .gmv, .clicks]
    var current = TickTotals()
    /// Each user's metrics over the warm-up ticks (the CUPED covariate), once they end.
    var warmup: [PerUserMetric: [Double]] = [:]
    /// Ticks counted as warm-up (0 when the run has none).
    public private(set) var warmupTicks = 0
    /// The top slot of every slate (after the warm-up): what off-policy estimates of this
    /// arm's policy are checked against.
    public private(set) var topSlot = TopSlot()

    public struct TopSlot: Sendable, Equatable {
        public var requests = 0
        public var clicks = 0
        public var viewSeconds = 0.0
        public var viewSecondsSquares = 0.0
        /// Mean click per slate at the top slot, and its standard error.
        public var clickRate: (value: Double, standardError: Double) {
            let p = Double(clicks) / Double(requests)
            return (p, (p * (1 - p) / Double(requests - 1)).squareRoot())
        }
        /// Mean view seconds per slate from the top slot, and its standard error.
        public var viewSecondsRate: (value: Double, standardError: Double) {
            let n = Double(requests), m = viewSeconds / n
            return (m, (max(0, viewSecondsSquares - n * m * m) / (n - 1) / n).squareRoot())
        }
    }

    public struct TickTotals: Sendable, Equatable {
        public var requests = 0
        public var impressions = 0
        public var clicks = 0
        public var purchases = 0
        public var viewSeconds = 0.0
        public var gmv = 0.0
        /// Summed regret of the tick's sampled slates, and how many were sampled.
        public var regret = 0.0
        public var regretSamples = 0
    }

    public struct Regret: Sendable, Equatable {
        public var samples = 0
        public var sum = 0.0, squares = 0.0, oracle = 0.0
        mutating func add(_ r: Double, oracle o: Double) {
            samples += 1
            sum += r
            squares += r * r
            oracle += o
        }
        /// Mean expected clicks lost per slate, with its standard error.
        public var mean: Double { samples > 0 ? sum / Double(samples) : .nan }
        public var standardError: Double {
            guard samples > 1 else { return .nan }
            let n = Double(samples), m = sum / n
            return (max(0, squares - n * m * m) / (n - 1) / n).squareRoot()
        }
        /// Share of the oracle's expected clicks the served slates achieved.
        public var shareOfOracle: Double { oracle > 0 ? 1 - sum / oracle : .nan }
    }

    public init(name: String, users: Int, items: Int, newItemTicks: Int = 5) {
        self.newItemTicks = newItemTicks
        self.name = name
        self.users = users
        requests = [UInt32](repeating: 0, count: users)
        impressions = requests
        clicks = requests
        purchases = requests
        viewSeconds = [Double](repeating: 0, count: users)
        gmv = viewSeconds
        activeTicks = requests
        lastActive = [Int32](repeating: -1, count: users)
        exposures = [UInt32](repeating: 0, count: items)
        earlyClicks = exposures
    }

    @inline(__always)
    public mutating func recordRequest(slot: Int, tick: Tick) {
        if lastActive[slot] != Int32(tick) {
            lastActive[slot] = Int32(tick)
            activeTicks[slot] += 1
        }
        requests[slot] += 1
        current.requests += 1
        topSlot.requests += 1
    }

    mutating func grow(to item: Int) {
        let n = max(item + 1, exposures.count * 2)
        exposures.append(contentsOf: repeatElement(0, count: n - exposures.count))
        earlyClicks.append(contentsOf: repeatElement(0, count: n - earlyClicks.count))
    }

    /// Records a feedback event of a user of this arm; `itemBorn` is the tick the item
    /// arrived (0 for the initial catalog).
    @inline(__always)
    public mutating func record(_ f: Feedback, slot: Int, itemBorn: Int32 = 0) {
        switch f.event {
        case .impression:
            impressions[slot] += 1
            current.impressions += 1
            let item = Int(f.item)
            if item >= exposures.count { grow(to: item) }
            if exposures[item] == 0 { distinctShown += 1 }
            exposures[item] += 1
            if itemBorn >= 1 && Int(f.header.tick) - Int(itemBorn) < newItemTicks { youngImpressions += 1 }
        case .click:
            clicks[slot] += 1
            viewSeconds[slot] += Double(f.viewSeconds)
            current.clicks += 1
            current.viewSeconds += Double(f.viewSeconds)
            let item = Int(f.item)
            if Int(f.header.tick) - Int(itemBorn) < newItemTicks {
                if item >= earlyClicks.count { grow(to: item) }
                earlyClicks[item] += 1
                if itemBorn >= 1 { youngClicks += 1 }
            }
            if f.position == 0 {
                topSlot.clicks += 1
                topSlot.viewSeconds += Double(f.viewSeconds)
                topSlot.viewSecondsSquares += Double(f.viewSeconds) * Double(f.viewSeconds)
            }
        case .purchase:
            purchases[slot] += 1
            gmv[slot] += Double(f.amount)
            current.purchases += 1
            current.gmv += Double(f.amount)
        }
    }

    /// One sampled slate's expected clicks against the oracle's.
    public mutating func recordRegret(served: Double, oracle: Double) {
        regret.add(oracle - served, oracle: oracle)
        current.regret += oracle - served
        current.regretSamples += 1
    }

    public mutating func endTick() {
        series.append(current)
        current = TickTotals()
        var point: [PerUserMetric: MeanEstimate] = [:]
        for metric in Self.charted { point[metric] = MeanEstimate(perUser(metric)) }
        cumulative.append(point)
    }

    /// Ends the warm-up: what each user did so far becomes their covariate, and the
    /// experiment's counters (per user, items shown) start from zero. The per-tick series
    /// goes on, so charts show the warm-up too.
    public mutating func endWarmup() {
        for metric in PerUserMetric.allCases { warmup[metric] = perUser(metric) }
        warmupTicks = series.count
        for i in 0..<users {
            requests[i] = 0; impressions[i] = 0; clicks[i] = 0; purchases[i] = 0; activeTicks[i] = 0
            viewSeconds[i] = 0; gmv[i] = 0
        }
        for i in exposures.indices { exposures[i] = 0 }
        distinctShown = 0
        youngImpressions = 0
        youngClicks = 0
        topSlot = TopSlot()
        regret = Regret()
    }

    /// The same metric per user over the warm-up ticks, if the run had any.
    public func covariate(_ metric: PerUserMetric) -> [Double]? { warmup[metric] }

    /// Per-user values of a metric, over every user assigned to the arm (users who never
    /// came count as zero: the arm's effect on whether they come is part of the result).
    public func perUser(_ metric: PerUserMetric) -> [Double] {
        switch metric {
        case .viewSeconds: viewSeconds
        case .gmv: gmv
        case .clicks: clicks.map(Double.init)
        case .impressions: impressions.map(Double.init)
        case .purchases: purchases.map(Double.init)
        case .activeTicks: activeTicks.map(Double.init)
        }
    }

    public var totalRequests: Int { requests.reduce(0) { $0 + Int($1) } }
    public var totalImpressions: Int { impressions.reduce(0) { $0 + Int($1) } }
    public var totalClicks: Int { clicks.reduce(0) { $0 + Int($1) } }
    public var totalPurchases: Int { purchases.reduce(0) { $0 + Int($1) } }
    public var totalViewSeconds: Double { viewSeconds.reduce(0, +) }
    public var totalGMV: Double { gmv.reduce(0, +) }
    public var activeUsers: Int { requests.reduce(0) { $0 + ($1 > 0 ? 1 : 0) } }
    public var ctr: Double { totalImpressions == 0 ? .nan : Double(totalClicks) / Double(totalImpressions) }
    public var itemsShown: Int { distinctShown }

    /// A click on an item SPARC retrieved for `interest`, which had `probability` in the
    /// user's serving distribution: the user's first click in that interest counts as a
    /// discovery when the probability was below `threshold`.
    public mutating func recordInterestClick(slot: Int, interest: Int, probability: Float, codes: Int, threshold: Double) {
        if wordsPerUser == 0 {
            wordsPerUser = (codes + 63) / 64
            engaged = [UInt64](repeating: 0, count: users * wordsPerUser)
        }
        let word = slot * wordsPerUser + interest / 64, bit = UInt64(1) << UInt64(interest % 64)
        guard engaged[word] & bit == 0 else { return }
        engaged[word] |= bit
        firstEngagements += 1
        if Double(probability) < threshold { discoveries += 1 }
    }

    /// Gini coefficient of impressions over the first `items` items (those never shown
    /// count as 0): 0 when every item is shown equally, near 1 when a few take it all.
    public func exposureGini(items: Int) -> Double {
        var x = (0..<items).map { $0 < exposures.count ? Double(exposures[$0]) : 0 }
        x.sort()
        let total = x.reduce(0, +)
        guard total > 0, items > 1 else { return .nan }
        var weighted = 0.0
        for (i, v) in x.enumerated() { weighted += Double(2 * (i + 1) - items - 1) * v }
        return weighted / (Double(items) * total)
    }

    /// Share of impressions that went to items `head` does not mark.
    public func longTailShare(head: [Bool]) -> Double {
        var tail = 0.0, total = 0.0
        for (i, e) in exposures.enumerated() where e > 0 {
            total += Double(e)
            if i >= head.count || !head[i] { tail += Double(e) }
        }
        return total > 0 ? tail / total : .nan
    }

    /// Of the items born in `eligible` (ticks whose window of `newItemTicks` ended within
    /// the run), how many reached `views` clicks in their window, and how many there were.
    public func newItemsReaching(_ views: Int, born: [Int32], eligible: Range<Int>) -> (reached: Int, items: Int) {
        var reached = 0, items = 0
        for (i, b) in born.enumerated() where eligible.contains(Int(b)) {
            items += 1
            if i < earlyClicks.count && earlyClicks[i] >= UInt32(views) { reached += 1 }
        }
        return (reached, items)
    }
}

public enum PerUserMetric: String, Sendable, CaseIterable {
    case viewSeconds, gmv, clicks, impressions, purchases, activeTicks
}

/// The state of a SPARC arm's interests at the end of a run, against the world's truth.
public struct InterestSummary: Sendable, Equatable {
    public var codes: Int
    /// Level-0 codes holding at least one live item.
    public var codesInUse: Int
    /// exp(entropy) of the codebook's level-0 usage.
    public var perplexity: Double
    public var deadCodes: Int
    public var restarts: Int
    /// Share of items whose code's most common true topic is their own.
    public var purity: Double
    /// Normalised mutual information of codes and true topics (sqrt normalisation).
    public var nmi: Double

    public init(codes: Int, codesInUse: Int, perplexity: Double, deadCodes: Int, restarts: Int, purity: Double, nmi: Double) {
        (self.codes, self.codesInUse, self.perplexity, self.deadCodes, self.restarts, self.purity, self.nmi) =
            (codes, codesInUse, perplexity, deadCodes, restarts, purity, nmi)
    }

    /// Purity and NMI of a clustering (`code`, -1 for unassigned) against `topic`.
    public static func agreement(code: [Int32], topic: [Int]) -> (purity: Double, nmi: Double) {
        var joint: [Int: [Int: Int]] = [:], codeCount: [Int: Int] = [:], topicCount: [Int: Int] = [:]
        var n = 0
        for (i, c) in code.enumerated() where c >= 0 && i < topic.count {
            joint[Int(c), default: [:]][topic[i], default: 0] += 1
            codeCount[Int(c), default: 0] += 1
            topicCount[topic[i], default: 0] += 1
            n += 1
        }
        guard n > 0 else { return (.nan, .nan) }
        let purity = Double(joint.values.reduce(0) { $0 + ($1.values.max() ?? 0) }) / Double(n)
        let nn = Double(n)
        // Sums in key order: a dictionary's order changes from run to run, and the bits of a
        // floating-point sum with it.
        var mi = 0.0
        for c in joint.keys.sorted() {
            let row = joint[c]!
            for t in row.keys.sorted() {
                let pxy = Double(row[t]!) / nn
                mi += pxy * log(pxy / (Double(codeCount[c]!) / nn * Double(topicCount[t]!) / nn))
            }
        }
        func entropy(_ counts: [Int: Int]) -> Double {
            counts.keys.sorted().reduce(0.0) { $0 - Double(counts[$1]!) / nn * log(Double(counts[$1]!) / nn) }
        }
        let h = (entropy(codeCount) * entropy(topicCount)).squareRoot()
        return (purity, h > 0 ? mi / h : .nan)
    }
}

/// One user's top interests, with their serving probabilities, after each tick.
public struct InterestTrace: Sendable, Equatable {
    public var user: UserID
    /// Per tick: (code, probability), most probable first.
    public var ticks: [[(code: Int, probability: Double)]] = []
    public init(user: UserID) { self.user = user }
    public static func == (a: Self, b: Self) -> Bool {
        a.user == b.user && a.ticks.count == b.ticks.count
            && zip(a.ticks, b.ticks).allSatisfy { x, y in x.count == y.count && zip(x, y).allSatisfy { $0.code == $1.code && $0.probability == $1.probability } }
    }
}
