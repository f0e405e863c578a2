import Foundation

/// CUPED (Deng et al. 2013): the difference between arms of a per-user metric Y, with the
/// variance explained by a pre-period covariate X (the same metric in the warm-up ticks,
/// before the arms diverged) taken out. As the stats fixtures specify: one
/// theta = cov(Y, X) / var(X) over both arms concatenated, X centred at its mean over both
/// arms, then Welch's test on the adjusted values. The standard error ignores theta's own
/// estimation error (negligible at the arm sizes a simulation has).
///
/// Because X is measured before the treatment could act, adjusting by it leaves the
/// difference unbiased; the better X predicts Y, the narrower the interval.
public struct Cuped: Sendable, Equatable {
    public var theta: Double
    public var adjusted: WelchTest
    public var unadjusted: WelchTest
    /// 1 - se_adjusted^2 / se_unadjusted^2: the share of the difference's variance removed.
    public var varianceReduction: Double
    /// The relative lift of the adjusted means, with its delta-method interval.
    public var relativeLift: RelativeLift

    public init(yA: [Double], xA: [Double], yB: [Double], xB: [Double], confidence: Double = 0.95) {
        precondition(yA.count == xA.count && yB.count == xB.count, "CUPED needs one covariate per user")
        let n = yA.count + yB.count
        var sumX = 0.0, sumY = 0.0
        for v in xA { sumX += v }
        for v in xB { sumX += v }
        for v in yA { sumY += v }
        for v in yB { sumY += v }
        let mx = sumX / Double(n), my = sumY / Double(n)
        var sxy = 0.0, sxx = 0.0
        for (y, x) in zip(yA, xA) { sxy += (y - my) * (x - mx); sxx += (x - mx) * (x - mx) }
        for (y, x) in zip(yB, xB) { sxy += (y - my) * (x - mx); sxx += (x - mx) * (x - mx) }
        // A constant covariate carries no information: no adjustment (theta 0), not NaN.
        let t = sxx > 0 ? sxy / sxx : 0
        theta = t
        let adjustedA = zip(yA, xA).map { y, x in y - t * (x - mx) }
        let adjustedB = zip(yB, xB).map { y, x in y - t * (x - mx) }
        adjusted = WelchTest(a: adjustedA, b: adjustedB, confidence: confidence)
        unadjusted = WelchTest(a: yA, b: yB, confidence: confidence)
        varianceReduction = Experiment.varianceReduction(adjusted.standardError, of: unadjusted.standardError)
        relativeLift = RelativeLift(a: adjustedA, b: adjustedB)
    }
}

/// 1 - se_adjusted^2 / se_unadjusted^2: the share of a difference's variance an
/// adjustment removed (NaN when there was none to remove).
func varianceReduction(_ adjusted: Double, of unadjusted: Double) -> Double {
    unadjusted > 0 ? 1 - (adjusted * adjusted) / (unadjusted * unadjusted) : .nan
}
