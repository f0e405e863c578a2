import Foundation
import Testing
@testable import Experiment
@testable import RecCore

@Suite("Confidence sequences")
struct SequentialTests {
    func fixtures() throws -> JSONValue {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("paired-fixtures.json")
        return try JSONValue.parse(try String(contentsOf: url, encoding: .utf8))
    }

    @Test("the half-width is GrowthBook's formula, written in information time")
    func growthBookForm() throws {
        guard case .array(let cases)? = try fixtures()["confidenceSequences"] else { Issue.record("no cases"); return }
        #expect(cases.count == 3)
        for c in cases {
            let got = ConfidenceSequence.halfWidth(variance: number(c["variance"]), tau2: number(c["tau2"]), alpha: number(c["alpha"]))
            #expect(close(got, number(c["halfWidth"]), relative: 1e-12), "\(got) vs \(number(c["halfWidth"]))")
        }
    }

    @Test("Wilson intervals match scipy's")
    func wilson() throws {
        guard case .array(let cases)? = try fixtures()["wilson"] else { Issue.record("no cases"); return }
        #expect(cases.count == 5)
        for c in cases {
            let w = wilsonInterval(Int(number(c["k"])), Int(number(c["n"])))
            #expect(close(w.low, number(c["low"]), relative: 1e-12, absolute: 1e-15) && close(w.high, number(c["high"]), relative: 1e-12), "\(c)")
        }
    }

    @Test("tau is tuned at the first look so the sequence is tightest at the planned last, and never narrower than the fixed interval")
    func tuning() {
        var cs = ConfidenceSequence(plannedLooks: 20)
        let v1 = 0.04
        let first = cs.halfWidth(variance: v1)
        #expect(abs(cs.tau2! - cs.tuning * v1 / 20) < 1e-15)
        // Information grows with looks: at the 20th the variance is v1 / 20.
        let widths = stride(from: 0.5, through: 3, by: 0.25).map { ConfidenceSequence.halfWidth(variance: v1 / 20, tau2: cs.tau2! * $0, alpha: 0.05) }
        #expect(widths.min() == widths[2], "tightest at the tuned tau")
        for look in 1...20 {
            let v = v1 / Double(look)
            #expect(cs.halfWidth(variance: v) > 1.959963984540054 * v.squareRoot())
        }
        #expect(first > 0 && cs.halfWidth(variance: 0).isNaN && cs.halfWidth(variance: .nan).isNaN)
    }

    /// A/A paths: 300 users, each with a level of their own (persistent) and noise each
    /// tick; both arms alike. The fixed-horizon test read at every tick errs far more often
    /// than 5%; the sequence at most 5%.
    @Test("under the null, peeking at every tick: the fixed interval errs often, the sequence at most alpha")
    func nullCalibration() {
        let replicates = 400, users = 300, looks = 30
        var naive = 0, sequence = 0
        for r in 0..<replicates {
            var rng = RandomStream(seed: 77, UInt64(r))
            let level = (0..<2 * users).map { _ in 1 + rng.nextGaussian() }
            var totals = [Double](repeating: 0, count: 2 * users)
            var cs = ConfidenceSequence(plannedLooks: looks)
            var naiveHit = false, sequenceHit = false
            for _ in 0..<looks {
                for u in 0..<2 * users { totals[u] += max(0, level[u] + rng.nextGaussian()) }
                let l = RelativeLift(a: Array(totals[..<users]), b: Array(totals[users...]))
                if l.low > 0 || l.high < 0 { naiveHit = true }
                let h = cs.halfWidth(variance: l.standardError * l.standardError)
                if l.lift - h > 0 || l.lift + h < 0 { sequenceHit = true }
            }
            naive += naiveHit ? 1 : 0
            sequence += sequenceHit ? 1 : 0
        }
        let n = wilsonInterval(naive, replicates), s = wilsonInterval(sequence, replicates)
        #expect(n.low > 0.08, "fixed-horizon under peeking: \(n)")
        #expect(s.share <= 0.05, "sequence: \(s)")
    }
}
