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
    var current = TickTotals()

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
    }

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
