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
