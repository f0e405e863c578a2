import Foundation

// Statistics of a paired design: each user is measured under both arms (on two copies of
// the population drawing common random numbers), so the unit is the user's difference,
// and the two arms' means are correlated. Conventions follow the stats fixtures' (B minus
// A, ddof 1, two-sided, t intervals for t tests, normal ones for the delta method), and
// Tests/ExperimentTests/paired-fixtures.json checks every one against scipy.

/// The paired t test of B against A on per-user values, as
/// scipy.stats.ttest_rel(b, a) computes it: t on the differences d = b - a with n - 1
/// degrees of freedom and a t interval. NaN where undefined (fewer than two users, or
/// every difference equal, so the standard error is 0).
public struct PairedTest: Sendable, Equatable {
    public var n: Int
    public var difference, standardError, degreesOfFreedom, t, pValue, low, high: Double

    public init(a: [Double], b: [Double], confidence: Double = 0.95) {
        precondition(a.count == b.count, "a paired test needs one value per user in each arm, got \(a.count) and \(b.count)")
        self.init(differences: zip(b, a).map { $0 - $1 }, confidence: confidence)
    }

    /// The test on the differences themselves (b - a per user).
    public init(differences d: [Double], confidence: Double = 0.95) {
        n = d.count
        let (mean, variance) = WelchTest.moments(d)
        difference = mean
        standardError = (variance / Double(n)).squareRoot()
        degreesOfFreedom = Double(n - 1)
        guard standardError > 0, standardError.isFinite else {
            (t, pValue, low, high) = (.nan, .nan, .nan, .nan)
            return
        }
        t = difference / standardError
        pValue = StudentT.twoSidedP(t, df: degreesOfFreedom)
        let critical = StudentT.quantile(1 - (1 - confidence) / 2, df: degreesOfFreedom)
        low = difference - critical * standardError
        high = difference + critical * standardError
    }
}

/// The relative lift of B over A on the same users, mean(b)/mean(a) - 1, by the delta
/// method with the covariance of the two means:
/// Var = (s_b^2 - 2 r s_ab + r^2 s_a^2) / (n mean(a)^2), r = mean(b)/mean(a).
/// A normal interval and z test; NaN when the baseline's mean is 0.
public struct PairedRelativeLift: Sendable, Equatable {
    public var lift, standardError, z, pValue, low, high: Double

    public init(a: [Double], b: [Double]) {
        precondition(a.count == b.count, "a paired lift needs one value per user in each arm, got \(a.count) and \(b.count)")
        let n = Double(a.count)
        let (ma, va) = WelchTest.moments(a), (mb, vb) = WelchTest.moments(b)
        guard ma != 0, ma.isFinite, a.count > 1 else {
            (lift, standardError, z, pValue, low, high) = (.nan, .nan, .nan, .nan, .nan, .nan)
            return
        }
        var sab = 0.0
        for (x, y) in zip(a, b) { sab += (x - ma) * (y - mb) }
        sab /= n - 1
        let r = mb / ma
        lift = r - 1
        standardError = (max(0, vb - 2 * r * sab + r * r * va) / (n * ma * ma)).squareRoot()
        (z, pValue, low, high) = normalTest(lift, standardError)
    }
}

/// A ratio metric (sum of numerators over sum of denominators, the user as the unit) on
/// the same users under two arms: the difference and the relative lift by the delta
/// method, through each user's linearised contribution
/// l_u = (y_u - R x_u) / mean(x) to its arm's ratio R, so the arms' covariance counts.
public struct PairedRatioComparison: Sendable, Equatable {
    public var ratioA, ratioB: Double
    public var difference, standardError, z, pValue, low, high: Double
    public var relativeLift, relativeStandardError, relativeZ, relativePValue, relativeLow, relativeHigh: Double

    public init(numeratorA: [Double], denominatorA: [Double], numeratorB: [Double], denominatorB: [Double]) {
        let n = numeratorA.count
        precondition(denominatorA.count == n && numeratorB.count == n && denominatorB.count == n,
                     "a paired ratio needs every user in both arms, got \(n), \(denominatorA.count), \(numeratorB.count) and \(denominatorB.count) values")
        func linearised(_ y: [Double], _ x: [Double]) -> (ratio: Double, terms: [Double]) {
            let my = y.reduce(0, +) / Double(n), mx = x.reduce(0, +) / Double(n)
            let r = my / mx
            return (r, zip(y, x).map { ($0 - r * $1) / mx })
        }
        let (ra, la) = linearised(numeratorA, denominatorA), (rb, lb) = linearised(numeratorB, denominatorB)
        ratioA = ra
        ratioB = rb
        difference = rb - ra
        standardError = (WelchTest.moments(zip(lb, la).map { $0 - $1 }).1 / Double(n)).squareRoot()
        (z, pValue, low, high) = normalTest(difference, standardError)
        relativeLift = rb / ra - 1
        let q = rb / ra
        relativeStandardError = (WelchTest.moments(zip(lb, la).map { ($0 - q * $1) / ra }).1 / Double(n)).squareRoot()
        (relativeZ, relativePValue, relativeLow, relativeHigh) = normalTest(relativeLift, relativeStandardError)
    }
}

/// CUPED on paired data: each arm's per-user values adjusted by the shared pre-period
/// covariate X (the warm-up, which both copies lived through as one), y - theta (x - mean
/// x) with theta = cov(y, x) / var(x) per arm, then the paired t test and the paired
/// lift on the adjusted values. X is the same in both arms and centred at its own mean,
/// so the means (and the lift's estimate) do not move; only the variance of the
/// difference falls, by the share of it X explains (theta_B - theta_A = cov(d, x) /
/// var(x), the regression of the differences on X).
public struct PairedCuped: Sendable, Equatable {
    public var thetaA, thetaB: Double
    public var adjusted: PairedTest
    public var unadjusted: PairedTest
    /// 1 - se_adjusted^2 / se_unadjusted^2.
    public var varianceReduction: Double
    public var relativeLift: PairedRelativeLift

    public init(a: [Double], b: [Double], x: [Double], confidence: Double = 0.95) {
        precondition(a.count == x.count && b.count == x.count, "paired CUPED needs one covariate per user, got \(a.count), \(b.count) values and \(x.count) covariates")
        let n = Double(x.count)
        let mx = x.reduce(0, +) / n
        func theta(_ y: [Double]) -> Double {
            let my = y.reduce(0, +) / n
            var sxy = 0.0, sxx = 0.0
            for (yi, xi) in zip(y, x) { sxy += (yi - my) * (xi - mx); sxx += (xi - mx) * (xi - mx) }
            return sxx > 0 ? sxy / sxx : 0  // a constant covariate: no adjustment
        }
        thetaA = theta(a)
        thetaB = theta(b)
        let (ta, tb) = (thetaA, thetaB)
        let adjustedA = zip(a, x).map { y, xi in y - ta * (xi - mx) }
        let adjustedB = zip(b, x).map { y, xi in y - tb * (xi - mx) }
        adjusted = PairedTest(a: adjustedA, b: adjustedB, confidence: confidence)
        unadjusted = PairedTest(a: a, b: b, confidence: confidence)
        varianceReduction = Experiment.varianceReduction(adjusted.standardError, of: unadjusted.standardError)
        relativeLift = PairedRelativeLift(a: adjustedA, b: adjustedB)
    }
}
