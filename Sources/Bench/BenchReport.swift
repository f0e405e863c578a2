import Foundation
import RecCore

/// One figure a benchmark prints: the median over its repeats, and where a baseline ran
/// beside it in the same process, the baseline's median and the ratio ours / baseline.
public struct BenchResult: Sendable {
    public var name: String
    public var unit: String
    public var median: Double
    public var baseline: Double?
    /// ours / baseline; above 1 is better for rates, worse for times.
    public var ratio: Double? { baseline.map { median / $0 } }
    public var samples: [Double]
    public var baselineSamples: [Double]

    public init(name: String, unit: String, samples: [Double], baselineSamples: [Double] = []) {
        self.name = name
        self.unit = unit
        self.samples = samples
        self.baselineSamples = baselineSamples
        self.median = Self.median(samples)
        self.baseline = baselineSamples.isEmpty ? nil : Self.median(baselineSamples)
    }

    static func median(_ xs: [Double]) -> Double {
        let s = xs.sorted()
        guard !s.isEmpty else { return .nan }
        return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
    }
}

/// What `recstream bench NAME` prints: a table, or with `--json`
/// `{"bench": NAME, "results": [{"name", "unit", "median", "baseline", "ratio"}]}`.
public struct BenchReport: Sendable {
    public var bench: String
    public var results: [BenchResult]
    public var notes: [String]

    public var json: JSONValue {
        [
            "bench": .string(bench),
            "results": .array(results.map { r in
                [
                    "name": .string(r.name), "unit": .string(r.unit), "median": .number(r.median),
                    "baseline": r.baseline.map { .number($0) } ?? .null,
                    "ratio": r.ratio.map { .number($0) } ?? .null,
                    "samples": .array(r.samples.map { .number($0) }),
                    "baselineSamples": .array(r.baselineSamples.map { .number($0) }),
                ]
            }),
            "notes": .array(notes.map { .string($0) }),
        ]
    }

    public var table: String {
        var rows = [["benchmark", "unit", "median", "baseline", "ratio"]]
        for r in results {
            rows.append([r.name, r.unit, figure(r.median), r.baseline.map(figure) ?? "-", r.ratio.map { String(format: "%.2fx", $0) } ?? "-"])
        }
        var out = alignedTable(rows, leftAligned: 2)
        for note in notes { out += note + "\n" }
        return out
    }
}

func figure(_ x: Double) -> String {
    if x >= 1e6 { return String(format: "%.3fM", x / 1e6) }
    if x >= 1e4 { return String(format: "%.1fk", x / 1e3) }
    if x >= 100 { return String(format: "%.0f", x) }
    return String(format: "%.2f", x)
}
