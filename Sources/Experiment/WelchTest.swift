import Foundation

/// Welch's two-sample t-test on per-user values, B minus A (treatment minus control), as
/// scipy.stats.ttest_ind(b, a, equal_var=False) computes it: sample variances with
/// ddof 1, the Welch-Satterthwaite degrees of freedom (not rounded), a two-sided p-value
/// and a t interval. Where a result is undefined (an arm of one user; both arms constant,
/// so the standard error is 0) it is NaN, never a finite number that could read as
/// "significant". Checked against shared/baselines/stats-fixtures.json.
public struct WelchTest: Sendable, Equatable {
    public var nA, nB: Int
    public var meanA, meanB, varianceA, varianceB: Double
    public var difference, standardError, degreesOfFreedom, t, pValue: Double
    public var low, high, tCritical: Double

    public init(a: [Double], b: [Double], confidence: Double = 0.95) {
        nA = a.count
        nB = b.count
        (meanA, varianceA) = Self.moments(a)
        (meanB, varianceB) = Self.moments(b)
        difference = meanB - meanA
        let ea = varianceA / Double(nA), eb = varianceB / Double(nB)
        standardError = (ea + eb).squareRoot()
        // Written in scipy's order of operations.
        degreesOfFreedom = (ea + eb) * (ea + eb) / (ea * ea / Double(nA - 1) + eb * eb / Double(nB - 1))
        guard standardError > 0, standardError.isFinite, degreesOfFreedom.isFinite else {
            (degreesOfFreedom, t, pValue, low, high, tCritical) = (.nan, .nan, .nan, .nan, .nan, .nan)
            return
        }
        t = difference / standardError
        pValue = StudentT.twoSidedP(t, df: degreesOfFreedom)
        tCritical = StudentT.quantile(1 - (1 - confidence) / 2, df: degreesOfFreedom)
        low = difference - tCritical * standardError
        high = difference + tCritical * standardError
    }

    /// Mean and sample variance (ddof 1; NaN for fewer than two values).
    static func moments(_ x: [Double]) -> (Double, Double) {
        guard !x.isEmpty else { return (.nan, .nan) }
        let mean = x.reduce(0, +) / Double(x.count)
        guard x.count > 1 else { return (mean, .nan) }
        let squares = x.reduce(0) { $0 + ($1 - mean) * ($1 - mean) }
        return (mean, squares / Double(x.count - 1))
    }
}

/// Student's t distribution with real (non-integer) degrees of freedom.
public enum StudentT {
    /// P(|T| >= |t|) = I_x(df/2, 1/2) with x = df / (df + t^2): computed directly, so small
    /// p-values keep their relative precision.
    public static func twoSidedP(_ t: Double, df: Double) -> Double {
        guard t.isFinite else { return t.isNaN ? .nan : 0 }
        return regularizedIncompleteBeta(df / 2, 0.5, df / (df + t * t))
    }

    /// The p-quantile (p > 0.5) by bisection on the two-sided tail, to full precision.
    public static func quantile(_ p: Double, df: Double) -> Double {
        let tail = 2 * (1 - p)
        var lo = 0.0, hi = 1.0
        while twoSidedP(hi, df: df) > tail { hi *= 2 }
        for _ in 0..<200 {
            let mid = (lo + hi) / 2
            if mid == lo || mid == hi { break }
            if twoSidedP(mid, df: df) > tail { lo = mid } else { hi = mid }
        }
        return (lo + hi) / 2
    }
}

/// The regularized incomplete beta function I_x(a, b), by its continued fraction (modified
/// Lentz), on the side of x where it converges fast.
public func regularizedIncompleteBeta(_ a: Double, _ b: Double, _ x: Double) -> Double {
    if x <= 0 { return 0 }
    if x >= 1 { return 1 }
    let front = exp(lgamma(a + b) - lgamma(a) - lgamma(b) + a * log(x) + b * log1p(-x))
    if x < (a + 1) / (a + b + 2) {
        return front * betaContinuedFraction(a, b, x) / a
    }
    return 1 - front * betaContinuedFraction(b, a, 1 - x) / b
}

func betaContinuedFraction(_ a: Double, _ b: Double, _ x: Double) -> Double {
    let tiny = 1e-300, epsilon = 1e-16
    var c = 1.0
    var d = 1 - (a + b) * x / (a + 1)
    if abs(d) < tiny { d = tiny }
    d = 1 / d
    var h = d
    for m in 1...1000 {
        let m = Double(m), m2 = 2 * m
        var aa = m * (b - m) * x / ((a + m2 - 1) * (a + m2))
        d = 1 + aa * d; if abs(d) < tiny { d = tiny }
        c = 1 + aa / c; if abs(c) < tiny { c = tiny }
        d = 1 / d
        h *= d * c
        aa = -(a + m) * (a + b + m) * x / ((a + m2) * (a + m2 + 1))
        d = 1 + aa * d; if abs(d) < tiny { d = tiny }
        c = 1 + aa / c; if abs(c) < tiny { c = tiny }
        d = 1 / d
        let delta = d * c
        h *= delta
        if abs(delta - 1) < epsilon { break }
    }
    return h
}
