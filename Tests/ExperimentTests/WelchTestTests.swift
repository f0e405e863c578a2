import Foundation
import Testing
@testable import Experiment
@testable import RecCore
import Report
@testable import Scenario

/// The known-answer cases of shared/baselines/stats-fixtures.json (a copy beside this file),
/// computed with scipy 1.17.1.
func fixtureCases(kind: String) throws -> [JSONObject] {
    let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("stats-fixtures.json")
    let document = try JSONValue.parse(try String(contentsOf: url, encoding: .utf8))
    guard case .array(let cases)? = document["cases"] else { return [] }
    return cases.compactMap { c in
        guard case .object(let o) = c, o["kind"] == .string(kind) else { return nil }
        return o
    }
}

func number(_ v: JSONValue?) -> Double {
    switch v {
    case .string("NaN"): .nan
    case .string("Infinity"): .infinity
    case .string("-Infinity"): -.infinity
    default: v?.doubleValue ?? .nan
    }
}

func numbers(_ v: JSONValue?) -> [Double] {
    guard case .array(let items)? = v else { return [] }
    return items.map { number($0) }
}

/// The fixtures' suggested tolerances: NaN matches NaN only.
func close(_ got: Double, _ want: Double, relative: Double, absolute: Double = 0) -> Bool {
    if want.isNaN { return got.isNaN }
    return abs(got - want) <= max(absolute, relative * abs(want))
}

@Suite("Welch t-test against scipy")
struct WelchTestTests {
    @Test("every welch_t_test fixture matches, edge cases as NaN")
    func fixtures() throws {
        let cases = try fixtureCases(kind: "welch_t_test")
        #expect(cases.count == 8)
        for c in cases {
            let id = c["id"].map { "\($0)" } ?? "?"
            let inputs = c["inputs"]!, e = c["expected"]!
            let w = WelchTest(a: numbers(inputs["a"]), b: numbers(inputs["b"]), confidence: number(inputs["confidence"]))
            let moments: [(String, Double)] = [("mean_a", w.meanA), ("mean_b", w.meanB), ("var_a", w.varianceA), ("var_b", w.varianceB),
                                               ("difference", w.difference), ("standard_error", w.standardError), ("df", w.degreesOfFreedom),
                                               ("t", w.t)]
            for (key, got) in moments {
                #expect(close(got, number(e[key]), relative: 1e-10, absolute: 1e-12), "\(id) \(key): \(got) vs \(number(e[key]))")
            }
            #expect(close(w.pValue, number(e["p_value"]), relative: 1e-8, absolute: 1e-15), "\(id) p: \(w.pValue) vs \(number(e["p_value"]))")
            #expect(close(w.tCritical, number(e["t_critical"]), relative: 1e-8), "\(id) t_critical: \(w.tCritical)")
            #expect(close(w.low, number(e["ci_low"]), relative: 1e-9, absolute: 1e-12), "\(id) low: \(w.low) vs \(number(e["ci_low"]))")
            #expect(close(w.high, number(e["ci_high"]), relative: 1e-9, absolute: 1e-12), "\(id) high: \(w.high) vs \(number(e["ci_high"]))")
        }
    }

    @Test("t quantiles and incomplete beta on textbook values")
    func distribution() {
        #expect(abs(StudentT.quantile(0.975, df: 1) - 12.706204736174707) < 1e-9)
        #expect(abs(StudentT.quantile(0.975, df: 30) - 2.0422724563012373) < 1e-10)
        #expect(abs(regularizedIncompleteBeta(2, 3, 0.4) - 0.5248) < 1e-12)
        #expect(StudentT.twoSidedP(0, df: 5) == 1)
    }
}

@Suite("Corrections and sample ratio against statsmodels and scipy")
struct CorrectionTests {
    @Test("Holm and Benjamini-Hochberg match every multiple_testing fixture")
    func multipleTesting() throws {
        let cases = try fixtureCases(kind: "multiple_testing")
        #expect(cases.count == 3)
        for c in cases {
            let p = numbers(c["inputs"]!["p_values"]), e = c["expected"]!
            let holm = MultipleTesting.holm(p), bh = MultipleTesting.benjaminiHochberg(p)
            for (got, want) in zip(holm, numbers(e["holm_adjusted"])) { #expect(close(got, want, relative: 1e-12), "\(c["id"]!) holm \(holm)") }
            for (got, want) in zip(bh, numbers(e["bh_adjusted"])) { #expect(close(got, want, relative: 1e-12), "\(c["id"]!) bh \(bh)") }
        }
    }

    @Test("the sample-ratio check matches every srm_chisquare fixture")
    func sampleRatio() throws {
        let cases = try fixtureCases(kind: "srm_chisquare")
        #expect(cases.count == 4)
        for c in cases {
            let i = c["inputs"]!, e = c["expected"]!
            let check = SampleRatioCheck(counts: numbers(i["counts"]).map { Int($0) }, shares: numbers(i["expected_shares"]))
            #expect(close(check.chiSquare, number(e["chi_square"]), relative: 1e-10), "\(c["id"]!) chi2 \(check.chiSquare)")
            #expect(check.degreesOfFreedom == Int(number(e["df"])))
            #expect(close(check.pValue, number(e["p_value"]), relative: 1e-8, absolute: 1e-15), "\(c["id"]!) p \(check.pValue) vs \(number(e["p_value"]))")
        }
    }
}

@Suite("Results")
struct ResultsTests {
    @Test("a sample ratio mismatch is flagged in the table and the report")
    func mismatchWarning() throws {
        let scenario = try Scenario.decode(#"{"name": "srm", "arms": [{"name": "a", "share": 0.5}, {"name": "b", "share": 0.5}]}"#)
        let arms = [ArmMetrics(name: "a", users: 1000, items: 10), ArmMetrics(name: "b", users: 1200, items: 10)]
        let results = ExperimentResults(scenario: scenario, arms: arms, catalogSize: 10, messages: [:])
        #expect(results.sampleRatio.pValue < 1e-4)
        #expect(ResultsTable(ReportDocument(results: results.json)).text(color: false).contains("WARNING: sample ratio mismatch (chi-square p = "))
        #expect(results.json["sampleRatio"]?["df"] == .integer(1))
    }
}

@Suite("Delta method against the fixtures")
struct DeltaMethodTests {
    @Test("relative lifts match every relative_lift_delta fixture, the zero control mean as NaN")
    func relativeLift() throws {
        let cases = try fixtureCases(kind: "relative_lift_delta")
        #expect(cases.count == 4)
        for c in cases {
            let i = c["inputs"]!, e = c["expected"]!
            let l = RelativeLift(a: numbers(i["a"]), b: numbers(i["b"]))
            let pairs: [(String, Double)] = [("relative_lift", l.lift), ("standard_error", l.standardError), ("z", l.z), ("ci_low", l.low), ("ci_high", l.high)]
            for (key, got) in pairs { #expect(close(got, number(e[key]), relative: 1e-10, absolute: 1e-12), "\(c["id"]!) \(key): \(got)") }
            #expect(close(l.pValue, number(e["p_value"]), relative: 1e-8, absolute: 1e-15), "\(c["id"]!) p: \(l.pValue)")
        }
    }

    @Test("ratio metrics match every ratio_metric_delta fixture")
    func ratioMetric() throws {
        let cases = try fixtureCases(kind: "ratio_metric_delta")
        #expect(cases.count == 2)
        for c in cases {
            let i = c["inputs"]!, e = c["expected"]!
            let r = RatioComparison(numeratorA: numbers(i["numerator_a"]), denominatorA: numbers(i["denominator_a"]),
                                    numeratorB: numbers(i["numerator_b"]), denominatorB: numbers(i["denominator_b"]))
            let pairs: [(String, Double)] = [
                ("difference", r.difference), ("standard_error", r.standardError), ("z", r.z), ("ci_low", r.low), ("ci_high", r.high),
                ("relative_lift", r.relativeLift), ("relative_lift_standard_error", r.relativeStandardError),
                ("relative_lift_z", r.relativeZ), ("relative_lift_ci_low", r.relativeLow), ("relative_lift_ci_high", r.relativeHigh),
            ]
            for (key, got) in pairs { #expect(close(got, number(e[key]), relative: 1e-10, absolute: 1e-12), "\(c["id"]!) \(key): \(got)") }
            #expect(close(r.pValue, number(e["p_value"]), relative: 1e-8, absolute: 1e-15))
            #expect(close(r.relativePValue, number(e["relative_lift_p_value"]), relative: 1e-8, absolute: 1e-15))
            #expect(close(r.varianceA, number(e["arm_a"]?["variance"]), relative: 1e-10))
            #expect(close(r.ratioB, number(e["arm_b"]?["ratio"]), relative: 1e-12))
        }
    }
}
