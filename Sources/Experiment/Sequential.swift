import Foundation
import RecCore
import Scenario

/// An always-valid 95% confidence sequence for a lift read after every tick: the
/// asymptotic confidence sequence of Waudby-Smith et al. (2023), in the normal-mixture form
/// GrowthBook documents, written in information time.
///
/// With the estimate's variance V at a look (its information 1/V), the half-width is
///
///     sqrt( V (V + tau^2) / tau^2 * ( ln(1 + tau^2 / V) + 2 ln(1 / alpha) ) )
///
/// which is GrowthBook's sigma sqrt(2 (n rho^2 + 1) / (n^2 rho^2) ln(sqrt(n rho^2 + 1) /
/// alpha)) with V = sigma^2 / n and tau^2 = sigma^2 rho^2. It comes from Robbins' normal
/// mixture over the drift of the estimate's path, which a cumulative per-user mean follows
/// (a Brownian motion in information time: increments independent given each user's level,
/// the canonical joint distribution); the chance that the sequence ever excludes the truth,
/// at any look, is at most alpha. Why this and not a mixture SPRT: the same martingale, but
/// this reads as an interval around the estimate the report shows, with the report's own
/// variance (paired, CUPED or Welch), so the two sit side by side.
///
/// tau^2 is the one tuning knob: the width is least where tau^2 / V = -2 ln alpha +
/// ln(1 - 2 ln alpha) (GrowthBook's rho for a planned n*). It is fixed at the first look
/// for the run's last tick, taking information to grow in proportion to ticks: any fixed
/// tau keeps the guarantee; a poor one only widens the sequence.
public struct ConfidenceSequence: Sendable, Equatable {
    public let alpha: Double
    /// Looks the run plans (post-warm-up ticks), for tuning tau.
    public let plannedLooks: Int
    /// The mixture's variance, set at the first look with a usable variance.
    public private(set) var tau2: Double?

    public init(alpha: Double = 0.05, plannedLooks: Int) {
        self.alpha = alpha
        self.plannedLooks = max(1, plannedLooks)
    }

    /// GrowthBook's optimal rho^2 n*: where tau^2 / V should be at the planned end.
    public var tuning: Double { -2 * log(alpha) + log(1 - 2 * log(alpha)) }

    /// The half-width at a look whose estimate has variance `variance`; NaN when the
    /// variance is not a positive number.
    public mutating func halfWidth(variance v: Double) -> Double {
        guard v > 0, v.isFinite else { return .nan }
        if tau2 == nil { tau2 = tuning * v / Double(plannedLooks) }
        return Self.halfWidth(variance: v, tau2: tau2!, alpha: alpha)
    }

    public static func halfWidth(variance v: Double, tau2: Double, alpha: Double) -> Double {
        (v * (v + tau2) / tau2 * (log(1 + tau2 / v) + 2 * log(1 / alpha))).squareRoot()
    }
}

/// One reported pair's lift on one per-user metric, read after every tick since the split:
/// the fixed-horizon 95% interval (valid at one pre-planned look only) beside the
/// confidence sequence (valid at every look at once).
public struct SequentialTrace: Sendable, Equatable {
    /// The tick of each look.
    public var ticks: [Int] = []
    public var lift: [Double] = []
    /// The fixed-horizon interval at each look.
    public var low: [Double] = []
    public var high: [Double] = []
    /// The confidence sequence at each look.
    public var sequenceLow: [Double] = []
    public var sequenceHigh: [Double] = []
    public var sequence: ConfidenceSequence

    public init(plannedLooks: Int) { sequence = ConfidenceSequence(plannedLooks: plannedLooks) }

    mutating func add(tick: Int, _ e: LiftEstimate) {
        ticks.append(tick)
        lift.append(e.lift)
        low.append(e.liftLow)
        high.append(e.liftHigh)
        let h = sequence.halfWidth(variance: e.liftStandardError * e.liftStandardError)
        sequenceLow.append(e.lift - h)
        sequenceHigh.append(e.lift + h)
    }

    /// The first tick whose fixed-horizon interval excluded 0 (what peeking at a
    /// fixed-horizon test would have stopped on).
    public var firstTickExcludingZero: Int? { first(low, high) }
    /// The first tick whose confidence sequence excluded 0: decided, validly.
    public var firstTickDecided: Int? { first(sequenceLow, sequenceHigh) }
    /// Whether the latest look's confidence sequence excludes 0.
    public var decidedNow: Bool { (sequenceLow.last ?? .nan) > 0 || (sequenceHigh.last ?? .nan) < 0 }

    func first(_ lo: [Double], _ hi: [Double]) -> Int? {
        ticks.indices.first { lo[$0] > 0 || hi[$0] < 0 }.map { ticks[$0] }
    }

    var json: JSONValue {
        func opt(_ t: Int?) -> JSONValue { t.map { .integer(Int64($0)) } ?? .null }
        return [
            "method": "asymptotic confidence sequence (normal mixture, Waudby-Smith et al. 2023), tau fixed at the first look for the last",
            "tau2": .number(sequence.tau2 ?? .nan),
            "ticks": .array(ticks.map { .integer(Int64($0)) }),
            "lift": .array(lift.map(JSONValue.number)),
            "low95": .array(low.map(JSONValue.number)), "high95": .array(high.map(JSONValue.number)),
            "sequenceLow95": .array(sequenceLow.map(JSONValue.number)), "sequenceHigh95": .array(sequenceHigh.map(JSONValue.number)),
            "firstTickExcludingZero": opt(firstTickExcludingZero), "firstTickDecided": opt(firstTickDecided),
        ]
    }
}
