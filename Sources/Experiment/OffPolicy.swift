import Foundation

/// Off-policy estimates of a target policy's value (mean reward per logged decision) from
/// data logged under another policy: inverse propensity scoring, its self-normalised form
/// and the doubly robust estimator, each with a standard error and a normal 95% interval,
/// as the stats fixtures specify (target probabilities used as given, no weight clipping).
///
/// Accumulates one logged decision at a time, so a run can feed it from its feedback
/// stream without keeping the log.
public struct OffPolicyEstimate: Sendable, Equatable {
    public struct Interval: Sendable, Equatable {
        public var estimate, standardError, low, high: Double
    }

    // Running means and co-moments (Welford's updates: stable when the means are large
    // against the spread; the same log in the same order gives the same bits).
    var n = 0
    var meanW = 0.0, meanWR = 0.0, meanDR = 0.0, meanDM = 0.0
    var m2W = 0.0, m2WR = 0.0, cWRW = 0.0, m2DR = 0.0

    public init() {}

    /// One logged decision: the target policy's probability of the logged action, the
    /// logging propensity, the observed reward; for the doubly robust estimator also the
    /// reward model's prediction for the logged action and its expectation under the
    /// target policy (sum over actions of pi(a) q(a)).
    public mutating func add(targetProbability: Double, loggingPropensity: Double, reward: Double,
                             predicted: Double = 0, predictedUnderTarget: Double = 0) {
        let w = targetProbability / loggingPropensity
        let wr = w * reward
        let dr = predictedUnderTarget + w * (reward - predicted)
        n += 1
        let k = Double(n)
        let dW = w - meanW, dWR = wr - meanWR, dDR = dr - meanDR
        meanW += dW / k
        meanWR += dWR / k
        meanDR += dDR / k
        meanDM += (predictedUnderTarget - meanDM) / k
        m2W += dW * (w - meanW)
        m2WR += dWR * (wr - meanWR)
        cWRW += dWR * (w - meanW)
        m2DR += dDR * (dr - meanDR)
    }

    public var count: Int { n }
    public var meanWeight: Double { n == 0 ? .nan : meanW }

    /// (1/n) sum w r; se = sd(w r) / sqrt n.
    public var ips: Interval { mean(meanWR, m2WR) }

    /// sum w r / sum w; se by the delta method for the ratio of means (y = w r, x = w):
    /// sqrt(var(w (r - v)) / n) / mean(w), where var(wr - v w) expands into the co-moments.
    public var snips: Interval {
        guard n > 1, meanW > 0 else { return Interval(estimate: .nan, standardError: .nan, low: .nan, high: .nan) }
        let v = meanWR / meanW
        let variance = max((m2WR - 2 * v * cWRW + v * v * m2W) / Double(n - 1), 0)
        return Self.interval(v, (variance / Double(n)).squareRoot() / meanW)
    }

    /// The direct method: the reward model's mean prediction under the target policy.
    public var directMethod: Double { n == 0 ? .nan : meanDM }

    /// (1/n) sum [ sum_a pi(a) q(a) + w (r - q(action)) ]; se = sd of those terms / sqrt n.
    public var doublyRobust: Interval { mean(meanDR, m2DR) }

    func mean(_ m: Double, _ m2: Double) -> Interval {
        guard n > 1 else { return Interval(estimate: n == 1 ? m : .nan, standardError: .nan, low: .nan, high: .nan) }
        return Self.interval(m, (m2 / Double(n - 1) / Double(n)).squareRoot())
    }

    static func interval(_ estimate: Double, _ se: Double) -> Interval {
        Interval(estimate: estimate, standardError: se, low: estimate - z95 * se, high: estimate + z95 * se)
    }
}

/// One arm's policy evaluated off-policy on another arm's log: the top slot's clicks and
/// view seconds per slate, estimated from the logging arm's traffic, to be set against
/// what the target arm measured running the policy itself.
public struct OffPolicyComparison: Sendable {
    public var logging: Int
    public var target: Int
    public var clicks = OffPolicyEstimate()
    public var viewSeconds = OffPolicyEstimate()

    public init(logging: Int, target: Int) {
        self.logging = logging
        self.target = target
    }
}
