import Foundation
import Testing
@testable import Experiment
@testable import RecCore

/// The paired-design statistics against paired-fixtures.json (beside this file), which
/// scripts/paired-fixtures.py computes with scipy 1.17.1 and numpy 2.4.6.
@Suite("Paired statistics against scipy")
struct PairedTestsTests {
    func cases() throws -> [JSONObject] {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("paired-fixtures.json")
        let document = try JSONValue.parse(try String(contentsOf: url, encoding: .utf8))
        guard case .array(let cases)? = document["cases"] else { return [] }
        return cases.compactMap { if case .object(let o) = $0 { o } else { nil } }
    }

    func expectClose(_ got: Double, _ want: JSONValue?, _ what: String, relative: Double = 1e-9) {
        let w = number(want)
        #expect(close(got, w, relative: relative, absolute: 1e-12), "\(what): \(got) vs \(w)")
    }

    func check(_ t: PairedTest, _ e: JSONValue?, _ id: String) {
        expectClose(t.difference, e?["difference"], "\(id) difference", relative: 1e-10)
        expectClose(t.standardError, e?["standardError"], "\(id) standard error", relative: 1e-10)
        expectClose(t.degreesOfFreedom, e?["df"], "\(id) df")
        expectClose(t.t, e?["t"], "\(id) t", relative: 1e-10)
        expectClose(t.pValue, e?["pValue"], "\(id) p", relative: 1e-8)
        expectClose(t.low, e?["low"], "\(id) low")
        expectClose(t.high, e?["high"], "\(id) high")
    }

    func check(_ l: PairedRelativeLift, _ e: JSONValue?, _ id: String) {
        expectClose(l.lift, e?["lift"], "\(id) lift", relative: 1e-10)
        expectClose(l.standardError, e?["standardError"], "\(id) lift se", relative: 1e-10)
        expectClose(l.pValue, e?["pValue"], "\(id) lift p", relative: 1e-8)
        expectClose(l.low, e?["low"], "\(id) lift low")
        expectClose(l.high, e?["high"], "\(id) lift high")
    }

    @Test("paired t, paired lift, paired ratio and paired CUPED match every case")
    func fixtures() throws {
        let all = try cases()
        #expect(all.count == 5)
        var checked = 0
        for c in all {
            let id = c["id"].map { "\($0)" } ?? "?"
            let i = c["inputs"]!, e = c["expected"]!
            let a = numbers(i["a"]), b = numbers(i["b"])
            check(PairedTest(a: a, b: b), e["pairedT"], id)
            guard let lift = e["pairedLift"] else { continue }
            check(PairedRelativeLift(a: a, b: b), lift, id)
            let r = PairedRatioComparison(numeratorA: numbers(i["numeratorA"]), denominatorA: numbers(i["denominatorA"]),
                                          numeratorB: numbers(i["numeratorB"]), denominatorB: numbers(i["denominatorB"]))
            let er = e["pairedRatio"]
            for (key, got) in [("ratioA", r.ratioA), ("ratioB", r.ratioB), ("difference", r.difference), ("standardError", r.standardError),
                               ("pValue", r.pValue), ("low", r.low), ("high", r.high), ("relativeLift", r.relativeLift),
                               ("relativeStandardError", r.relativeStandardError), ("relativePValue", r.relativePValue),
                               ("relativeLow", r.relativeLow), ("relativeHigh", r.relativeHigh)] {
                expectClose(got, er?[key], "\(id) ratio \(key)", relative: 1e-8)
            }
            let cu = PairedCuped(a: a, b: b, x: numbers(i["x"]))
            let ec = e["pairedCuped"]
            expectClose(cu.thetaA, ec?["thetaA"], "\(id) thetaA", relative: 1e-10)
            expectClose(cu.thetaB, ec?["thetaB"], "\(id) thetaB", relative: 1e-10)
            check(cu.adjusted, ec?["adjusted"], "\(id) cuped")
            check(cu.unadjusted, ec?["unadjusted"], "\(id) cuped raw")
            expectClose(cu.varianceReduction, ec?["varianceReduction"], "\(id) variance reduction", relative: 1e-8)
            check(cu.relativeLift, ec?["relativeLift"], "\(id) cuped lift")
            checked += 1
        }
        #expect(checked == 4)
    }

    @Test("pairing removes the users' shared level: the paired interval is narrower than Welch's on the same numbers")
    func pairingNarrows() {
        // Users differ a lot (the level), the arms a little and consistently.
        let level = (0..<200).map { Double($0 % 37) * 3 + Double($0 % 11) }
        let a = level.enumerated().map { $1 + Double($0 % 5) * 0.1 }
        let b = level.enumerated().map { $1 + 1 + Double($0 % 7) * 0.1 }
        let paired = PairedTest(a: a, b: b), welch = WelchTest(a: a, b: b)
        #expect(abs(paired.difference - welch.difference) < 1e-12)
        #expect(paired.high - paired.low < (welch.high - welch.low) / 10)
        #expect(paired.pValue < 1e-10 && welch.pValue > 0.05)
        // The lift's delta method counts the arms' covariance too.
        let lift = PairedRelativeLift(a: a, b: b), independent = RelativeLift(a: a, b: b)
        #expect(abs(lift.lift - independent.lift) < 1e-15)
        #expect(lift.standardError < independent.standardError / 10)
    }

    @Test("paired CUPED leaves the means alone and never widens the interval")
    func cupedKeepsMeans() {
        let x = (0..<100).map { Double($0 % 13) }
        let a = x.enumerated().map { 2 * $1 + Double($0 % 3) }
        let b = x.enumerated().map { 2.5 * $1 + Double($0 % 4) }  // the effect grows with x
        let c = PairedCuped(a: a, b: b, x: x)
        #expect(abs(c.adjusted.difference - c.unadjusted.difference) < 1e-12)
        #expect(c.varianceReduction > 0.5)
        #expect(c.adjusted.standardError < c.unadjusted.standardError)
        // A constant covariate adjusts nothing (theta 0), and is not NaN.
        let flat = PairedCuped(a: a, b: b, x: [Double](repeating: 1, count: 100))
        #expect(flat.thetaA == 0 && flat.thetaB == 0 && flat.adjusted == flat.unadjusted)
    }
}
