import Foundation

/// Mean and standard error of per-user values, and the difference against a control arm
/// with a 95% interval from the normal approximation with Welch's standard error.
///
/// A first cut: the experiment issue brings Welch's t quantiles, the delta method for
/// relative lifts and ratio metrics, multiple-testing correction, SRM and CUPED.
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

public struct Difference: Sendable, Equatable {
    /// Treatment minus control.
    public var absolute: Double
    public var low95: Double
    public var high95: Double
    /// absolute / control mean.
    public var relative: Double

    public init(treatment t: MeanEstimate, control c: MeanEstimate) {
        absolute = t.mean - c.mean
        let se = (t.variance / Double(t.n) + c.variance / Double(c.n)).squareRoot()
        low95 = absolute - 1.959963984540054 * se
        high95 = absolute + 1.959963984540054 * se
        relative = c.mean == 0 ? .nan : absolute / c.mean
    }
}
