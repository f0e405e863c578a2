import Foundation
import Testing
@testable import Experiment
import RecCore
@testable import RecStream
@testable import Scenario
@testable import Studies

@Suite("Seed sweeps", .serialized)
struct SeedSweepTests {
    /// Two identical arms in a small world, with a warm-up (so CUPED is in play).
    func aa(seed: UInt64 = 500) throws -> Scenario {
        try Scenario.decode("""
        {
          "name": "aa", "seed": \(seed), "ticks": 5,
          "population": {"users": 300, "requestProbability": 0.6, "slateSize": 5, "history": {"median": 20, "max": 100}},
          "catalog": {"items": 300, "topCategories": 3, "subcategories": 2, "topics": 8, "arrivalsPerTick": 1},
          "arms": [
            {"name": "A", "share": 0.5, "candidates": 20},
            {"name": "A2", "share": 0.5, "candidates": 20}
          ],
          "experiment": {"warmupTicks": 1},
          "kafka": {"partitions": 1, "topicPrefix": "aa"}
        }
        """)
    }

    @Test("an A/A test over 200 seeds rejects at about alpha: the statistics are calibrated")
    func falsePositiveRate() throws {
        var sweep = SeedSweep(scenario: try aa(), seeds: 200)
        try sweep.run()
        #expect(sweep.outcomes.count == 200)
        var pooled = 0, tests = 0
        for m in SeedSweep.metrics.indices {
            let rate = sweep.share(pair: 0, metric: m).share
            pooled += sweep.outcomes.filter { $0[0][m].pValue < 0.05 }.count
            tests += sweep.outcomes.count
            // Each metric alone: within a loose band (binomial noise over 200 seeds is
            // +-1.5 points; sparse purchases make GMV's t-test a little conservative).
            #expect(rate <= 0.10, "\(SeedSweep.metrics[m].label): \(rate)")
        }
        let rate = Double(pooled) / Double(tests)
        #expect(rate >= 0.02 && rate <= 0.08, "pooled false-positive rate \(rate)")
        let view = sweep.share(pair: 0, metric: 0).share
        #expect(view >= 0.02 && view <= 0.08, "view seconds false-positive rate \(view)")
        #expect(sweep.familyShare(pair: 0).share <= 0.08, "Holm family-wise rate \(sweep.familyShare(pair: 0).share)")
    }

    @Test("a real difference is found in most seeds (power), and the JSON has every seed")
    func power() throws {
        var s = try aa()
        s.arms[1].ranking = .ctr(priorClicks: 1, priorImpressions: 20)
        s.arms[1].retrieval = .popularity(explore: 0.3)
        var sweep = SeedSweep(scenario: s, seeds: 10)
        try sweep.run()
        #expect(sweep.share(pair: 0, metric: 2).share >= 0.5)  // clicks / user
        guard case .array(let arms)? = sweep.json["comparisons"], case .array(let p)? = arms.first?["metrics"]?["clicks"]?["pValues"] else {
            Issue.record("no per-seed p-values in the JSON")
            return
        }
        #expect(p.count == 10)
        #expect(sweep.table().contains("split design: how often each pair differs at alpha 0.05"))
        #expect(sweep.table().contains("A2 vs A: p < 0.05"))
    }

    @Test("Wilson intervals match the known values")
    func wilson() {
        let w = SeedSweep.wilson(10, 200)
        // Computed with the score-interval formula in Python: 0.027382645600764, 0.089578148138776.
        #expect(abs(w.low - 0.027382645600764) < 1e-12 && abs(w.high - 0.089578148138776) < 1e-12)
        #expect(SeedSweep.wilson(0, 20).low == 0)
    }
}

@Suite("Calibration and power")
struct CalibrationTests {
    @Test("the normal quantile matches scipy's norm.ppf")
    func normalQuantiles() throws {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("ExperimentTests/paired-fixtures.json")
        let document = try JSONValue.parse(try String(contentsOf: url, encoding: .utf8))
        guard case .array(let cases)? = document["normalQuantiles"] else { Issue.record("no cases"); return }
        #expect(cases.count == 9)
        for c in cases {
            let p = c["p"]!.doubleValue!, z = c["z"]!.doubleValue!
            #expect(abs(normalQuantile(p) - z) <= 1e-12 * max(1, abs(z)), "p \(p): \(normalQuantile(p)) vs \(z)")
        }
    }

    @Test("power: users scale as 1 / lift^2 and with the pilot's variance; a paired pilot needs fewer users per copy")
    func power() throws {
        var s = try Scenario.decode("""
        {"name": "pw", "seed": 5, "ticks": 8,
         "population": {"users": 400, "requestProbability": 0.6, "slateSize": 5, "history": {"median": 50, "max": 200}},
         "catalog": {"items": 400, "topics": 12, "arrivalsPerTick": 0},
         "arms": [{"name": "random", "share": 0.5, "candidates": 20},
                  {"name": "oracle", "share": 0.5, "candidates": 20, "oracleShare": 0.05}],
         "experiment": {"warmupTicks": 2}, "kafka": {"topicPrefix": "pw", "partitions": 1}}
        """)
        let split = try LockstepRun(scenario: s).run().results
        let a = try PowerEstimate(pilot: split, metric: .clicks, lift: 0.05), b = try PowerEstimate(pilot: split, metric: .clicks, lift: 0.10)
        #expect(a.users > 0 && abs(Double(a.users) / Double(b.users) - 4) < 0.05)
        // n = n_pilot (z_0.975 + z_0.8)^2 se^2 / lift^2.
        let z = 1.959963984540054 + 0.8416212335729143
        #expect(abs(Double(a.users) - 400 * pow(z * a.pilotStandardError / 0.05, 2)) <= 1)
        #expect(a.summary.contains("For 80% power at alpha 0.05"))
        s.experiment.design = .paired
        s.population.users = 200
        s.kafka.topicPrefix = "pw2"
        let pairedPilot = try LockstepRun(scenario: s).run().results
        let paired = try PowerEstimate(pilot: pairedPilot, metric: .clicks, lift: 0.05)
        #expect(paired.users < a.users / 2, "paired \(paired.users) per copy against split \(a.users)")
        #expect(paired.summary.contains("users per copy"))
        // Identical copies on a metric: nothing to size from, a clear error, not a crash.
        #expect(throws: PowerError.self) { try PowerEstimate(pilot: pairedPilot, metric: .impressions, lift: 0.05) }
    }
}
