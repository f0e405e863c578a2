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
    /// Which items this arm has shown at least once.
    var shown: [Bool]
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
    }

    public init(name: String, users: Int, items: Int) {
        self.name = name
        self.users = users
        requests = [UInt32](repeating: 0, count: users)
        impressions = requests
        clicks = requests
        purchases = requests
        viewSeconds = [Double](repeating: 0, count: users)
        gmv = viewSeconds
        shown = [Bool](repeating: false, count: items)
    }

    @inline(__always)
    public mutating func recordRequest(slot: Int) {
        requests[slot] += 1
        current.requests += 1
        topSlot.requests += 1
    }

    @inline(__always)
    public mutating func record(_ f: Feedback, slot: Int) {
        switch f.event {
        case .impression:
            impressions[slot] += 1
            current.impressions += 1
            let item = Int(f.item)
            if item >= shown.count { shown.append(contentsOf: repeatElement(false, count: item + 1 - shown.count)) }
            if !shown[item] {
                shown[item] = true
                distinctShown += 1
            }
        case .click:
            clicks[slot] += 1
            viewSeconds[slot] += Double(f.viewSeconds)
            current.clicks += 1
            current.viewSeconds += Double(f.viewSeconds)
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
            requests[i] = 0; impressions[i] = 0; clicks[i] = 0; purchases[i] = 0
            viewSeconds[i] = 0; gmv[i] = 0
        }
        for i in shown.indices { shown[i] = false }
        distinctShown = 0
        topSlot = TopSlot()
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
}

public enum PerUserMetric: String, Sendable, CaseIterable {
    case viewSeconds, gmv, clicks, impressions, purchases
}
