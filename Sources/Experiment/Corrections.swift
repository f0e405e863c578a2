import Foundation

/// Adjusted p-values for many comparisons at once (arms x metrics), in input order,
/// clipped at 1, as statsmodels' multipletests computes them.
public enum MultipleTesting {
    /// Holm's step-down: adj_(i) = min(1, max_{j<=i} (m - j + 1) p_(j)). Controls the
    /// family-wise error rate. NaN p-values stay NaN and do not count in m.
    public static func holm(_ p: [Double]) -> [Double] {
        let valid = p.indices.filter { !p[$0].isNaN }.sorted { (p[$0], $0) < (p[$1], $1) }
        let m = Double(valid.count)
        var out = p
        var running = 0.0
        for (rank, i) in valid.enumerated() {
            running = max(running, (m - Double(rank)) * p[i])
            out[i] = min(1, running)
        }
        return out
    }

    /// Benjamini-Hochberg's step-up: adj_(i) = min(1, min_{j>=i} (m / j) p_(j)). Controls
    /// the false discovery rate.
    public static func benjaminiHochberg(_ p: [Double]) -> [Double] {
        let valid = p.indices.filter { !p[$0].isNaN }.sorted { (p[$0], $0) < (p[$1], $1) }
        let m = Double(valid.count)
        var out = p
        var running = 1.0
        for (rank, i) in valid.enumerated().reversed() {
            running = min(running, m / Double(rank + 1) * p[i])
            out[i] = min(1, running)
        }
        return out
    }
}

/// The sample-ratio-mismatch check: are users split across arms as the shares say?
/// Pearson's chi-square of the observed counts against total x share, df = arms - 1.
/// A tiny p-value means the assignment (or the logging) is broken, and no lift can be
/// trusted.
public struct SampleRatioCheck: Sendable, Equatable {
    public var chiSquare: Double
    public var degreesOfFreedom: Int
    public var pValue: Double

    public init(counts: [Int], shares: [Double]) {
        let total = Double(counts.reduce(0, +))
        var x = 0.0
        for (o, share) in zip(counts, shares) {
            let e = total * share
            x += (Double(o) - e) * (Double(o) - e) / e
        }
        chiSquare = x
        degreesOfFreedom = counts.count - 1
        pValue = degreesOfFreedom > 0 ? regularizedUpperGamma(Double(degreesOfFreedom) / 2, x / 2) : .nan
    }
}

/// Q(a, x) = Gamma(a, x) / Gamma(a): the chi-square tail is Q(df/2, x/2). A series below
/// x = a + 1, a continued fraction (modified Lentz) above (Numerical Recipes' gammq).
public func regularizedUpperGamma(_ a: Double, _ x: Double) -> Double {
    if x.isNaN { return .nan }
    if x <= 0 { return 1 }
    let logFront = -x + a * log(x) - lgamma(a)
    if x < a + 1 {
        var term = 1 / a, sum = term, ap = a
        for _ in 0..<10_000 {
            ap += 1
            term *= x / ap
            sum += term
            if abs(term) < abs(sum) * 1e-17 { break }
        }
        return 1 - sum * exp(logFront)
    }
    let tiny = 1e-300
    var b = x + 1 - a, c = 1 / tiny, d = 1 / b, h = d
    for i in 1...10_000 {
        let an = -Double(i) * (Double(i) - a)
        b += 2
        d = an * d + b; if abs(d) < tiny { d = tiny }
        c = b + an / c; if abs(c) < tiny { c = tiny }
        d = 1 / d
        let delta = d * c
        h *= delta
        if abs(delta - 1) < 1e-16 { break }
    }
    return exp(logFront) * h
}
