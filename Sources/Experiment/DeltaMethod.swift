import Foundation

/// The relative lift of B over A, mean(b)/mean(a) - 1, with its delta-method standard
/// error (independent arms) and a normal interval and z-test, as the stats fixtures
/// specify: symmetric around the lift, not Fieller and not log-scale. NaN when the
/// control mean is 0.
public struct RelativeLift: Sendable, Equatable {
    public var lift, standardError, z, pValue, low, high: Double

    public init(a: [Double], b: [Double]) {
        let (ma, va) = WelchTest.moments(a), (mb, vb) = WelchTest.moments(b)
        let varA = va / Double(a.count), varB = vb / Double(b.count)
        guard ma != 0, ma.isFinite else {
            (lift, standardError, z, pValue, low, high) = (.nan, .nan, .nan, .nan, .nan, .nan)
            return
        }
        lift = mb / ma - 1
        let variance = varB / (ma * ma) + mb * mb * varA / (ma * ma * ma * ma)
        standardError = variance.squareRoot()
        (z, pValue, low, high) = normalTest(lift, standardError)
    }
}

/// A ratio metric per arm (sum of numerators / sum of denominators over users, the user
/// being the unit, e.g. CTR = clicks / impressions) compared between arms by the delta
/// method: the difference and the relative lift, each with a normal interval and z-test.
public struct RatioComparison: Sendable, Equatable {
    public var ratioA, ratioB, varianceA, varianceB: Double
    public var difference, standardError, z, pValue, low, high: Double
    public var relativeLift, relativeStandardError, relativeZ, relativePValue, relativeLow, relativeHigh: Double

    public init(numeratorA: [Double], denominatorA: [Double], numeratorB: [Double], denominatorB: [Double]) {
        (ratioA, varianceA) = Self.ratio(numeratorA, denominatorA)
        (ratioB, varianceB) = Self.ratio(numeratorB, denominatorB)
        difference = ratioB - ratioA
        standardError = (varianceA + varianceB).squareRoot()
        (z, pValue, low, high) = normalTest(difference, standardError)
        relativeLift = ratioB / ratioA - 1
        relativeStandardError = (varianceB / (ratioA * ratioA) + ratioB * ratioB * varianceA / (ratioA * ratioA * ratioA * ratioA)).squareRoot()
        (relativeZ, relativePValue, relativeLow, relativeHigh) = normalTest(relativeLift, relativeStandardError)
    }

    /// R = ybar / xbar and Var(R) = (s_y^2/xbar^2 - 2 ybar s_xy/xbar^3 + ybar^2 s_x^2/xbar^4) / n.
    static func ratio(_ y: [Double], _ x: [Double]) -> (Double, Double) {
        let n = Double(y.count)
        let (my, vy) = WelchTest.moments(y), (mx, vx) = WelchTest.moments(x)
        var sxy = 0.0
        for (yi, xi) in zip(y, x) { sxy += (yi - my) * (xi - mx) }
        sxy /= n - 1
        let r = my / mx
        let variance = (vy / (mx * mx) - 2 * my * sxy / (mx * mx * mx) + my * my * vx / (mx * mx * mx * mx)) / n
        return (r, variance)
    }
}

/// What the report reads of a ratio metric's comparison, independent arms or paired.
protocol RatioEstimate {
    var difference: Double { get }
    var low: Double { get }
    var high: Double { get }
    var relativeLift: Double { get }
    var relativeStandardError: Double { get }
    var relativePValue: Double { get }
    var relativeLow: Double { get }
    var relativeHigh: Double { get }
}

extension RatioComparison: RatioEstimate {}
extension PairedRatioComparison: RatioEstimate {}

/// z, two-sided p = erfc(|z| / sqrt 2) and the 95% normal interval of an estimate.
func normalTest(_ estimate: Double, _ se: Double) -> (Double, Double, Double, Double) {
    guard se > 0, se.isFinite, estimate.isFinite else { return (.nan, .nan, .nan, .nan) }
    let z = estimate / se
    return (z, erfc(abs(z) / 2.0.squareRoot()), estimate - z95 * se, estimate + z95 * se)
}
