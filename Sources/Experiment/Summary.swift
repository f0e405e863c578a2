import Foundation

/// Mean and standard error of per-user values (differences between arms: `WelchTest`).
public struct MeanEstimate: Sendable, Equatable {
    public var n: Int
    public var mean: Double
    /// Sample variance (ddof 1).
    public var variance: Double
    public var standardError: Double { n > 0 ? (variance / Double(n)).squareRoot() : .nan }

    public init(_ values: [Double]) {
        n = values.count
        guard n > 0 else { mean = .nan; variance = .nan; return }
        // Two passes, summed in index order: the same values always give the same bits.
        var sum = 0.0
        for v in values { sum += v }
        mean = sum / Double(n)
        var squares = 0.0
        for v in values { squares += (v - mean) * (v - mean) }
        variance = n > 1 ? squares / Double(n - 1) : .nan
    }
}

/// The two-sided 95% quantile of the standard normal, z_0.975.
public let z95 = 1.959963984540054

/// Wilson's 95% score interval for a share: k successes in n (as scipy's
/// binomtest(k, n).proportion_ci(method="wilson")); NaN for n = 0.
public func wilsonInterval(_ k: Int, _ n: Int) -> (share: Double, low: Double, high: Double) {
    guard n > 0 else { return (.nan, .nan, .nan) }
    let z = z95, nn = Double(n), p = Double(k) / nn
    let centre = (p + z * z / (2 * nn)) / (1 + z * z / nn)
    let half = z / (1 + z * z / nn) * (p * (1 - p) / nn + z * z / (4 * nn * nn)).squareRoot()
    return (p, max(0, centre - half), min(1, centre + half))
}
