import Foundation
import Testing
@testable import Experiment
@testable import RecCore
@testable import RecStream
@testable import Scenario
import Report

/// A small paired world: churn (returnSensitivity) and a cascade, so copies that part
/// keep parting; `arms` as JSON.
func pairedScenario(arms: String, warmup: Int = 3, partitions: Int = 2, prefix: String = "pd", extra: String = "") throws -> Scenario {
    try Scenario.decode("""
    {
      "name": "paired", "seed": 11, "ticks": 8,
      "population": {"users": 300, "requestProbability": 0.6, "slateSize": 5, "purchaseDelayTicks": 2, "returnSensitivity": 0.3,
                     "history": {"median": 100, "max": 500}, "positionBias": {"type": "cascade"}},
      "catalog": {"items": 400, "topCategories": 4, "subcategories": 3, "topics": 12, "arrivalsPerTick": 3, "retireProbability": 0.01},
      "arms": \(arms),
      "experiment": {"design": "paired", "warmupTicks": \(warmup)\(extra)},
      "kafka": {"partitions": \(partitions), "topicPrefix": "\(prefix)"}
    }
    """)
}

let learningArm = #"{"candidates": 40, "retrieval": {"type": "popularity", "explore": 0.5}, "ranking": {"type": "ctr"}, "policy": {"type": "epsilon-greedy", "epsilon": 0.2}}"#

func arm(_ name: String, _ body: String = learningArm, oracle: Double = 0, share: Double = 0.5) -> String {
    var b = body
    b.removeLast()
    return b + #", "name": "\#(name)", "share": \#(share), "oracleShare": \#(oracle)}"#
}

@Suite("Paired design", .serialized)
struct PairedDesignTests {
    @Test("identical arms on common random numbers stay identical copies: every user's every metric equal, with churn and a cascade")
    func identicalArmsStayIdentical() throws {
        let s = try pairedScenario(arms: "[\(arm("A")), \(arm("A2"))]")
        let r = try LockstepRun(scenario: s).run().results
        let (a, b) = (r.arms[0], r.arms[1])
        #expect(a.users == 300 && b.users == 300)
        for m in PerUserMetric.allCases { #expect(a.perUser(m) == b.perUser(m), "\(m)") }
        #expect(a.series == b.series)
        #expect(a.totalClicks > 0)
        // Every difference is 0, so the paired test is undefined (NaN), never "significant".
        let e = r.compare(1, 0, .clicks)
        #expect(e.difference == 0 && e.pValue.isNaN)
    }

    @Test("the warm-up is one shared history; after it, a planted oracle parts the copies where it acts")
    func sharedWarmupThenSplit() throws {
        let s = try pairedScenario(arms: "[\(arm("A")), \(arm("oracle", oracle: 0.3))]")
        let r = try LockstepRun(scenario: s).run().results
        let (a, b) = (r.arms[0], r.arms[1])
        #expect(a.series.prefix(3) == b.series.prefix(3))
        for m in PerUserMetric.allCases { #expect(a.covariate(m) == b.covariate(m), "\(m)") }
        #expect(a.series.suffix(5) != b.series.suffix(5))
        // The oracle's slates get more clicks, and most users' values still agree (they
        // part only where the oracle acted, or through what it changed).
        #expect(b.totalClicks > a.totalClicks)
        let same = zip(a.perUser(.clicks), b.perUser(.clicks)).filter { $0 == $1 }.count
        #expect(same > 50, "\(same) of 300 users with equal clicks")
        let e = r.compare(1, 0, .clicks)
        #expect(e.method.hasPrefix("paired cuped"))
        #expect(e.low > 0)
        // Paired intervals are narrower than the same numbers treated as independent arms.
        let welch = WelchTest(a: a.perUser(.clicks), b: b.perUser(.clicks))
        #expect(e.high - e.low < (welch.high - welch.low) / 2)
    }

    @Test("an oracle share of 1 serves the oracle's slate every time: no regret after the warm-up")
    func oracleShareOne() throws {
        var s = try pairedScenario(arms: "[\(arm("A")), \(arm("oracle", oracle: 1))]", extra: #", "regretSample": 1"#)
        s.population.positionBias = .positionBased(exponent: 1)
        let r = try LockstepRun(scenario: s).run().results
        #expect(r.arms[1].regret.samples > 100)
        #expect(r.arms[1].regret.sum == 0)
        #expect(r.arms[0].regret.mean > 0.1)
    }

    @Test("paired results are the same with 1 and 3 partitions, and the report names the design")
    func deterministic() throws {
        var s = try pairedScenario(arms: "[\(arm("A", share: 0.25)), \(arm("random", #"{"candidates": 20}"#, share: 0.25)), \(arm("oracle", oracle: 0.2))]",
                                   extra: #", "comparisons": [{"treatment": "oracle", "baseline": "random"}, {"treatment": "A", "baseline": "random"}]"#)
        s.kafka.partitions = 1
        let one = try LockstepRun(scenario: s).run()
        s.kafka.partitions = 3
        s.kafka.topicPrefix = "pd3"
        let three = try LockstepRun(scenario: s).run()
        #expect(one.results.json.rendered() == three.results.json.rendered())
        let json = one.results.json
        #expect(json["scenario"]?["design"] == "paired")
        #expect(json["sampleRatio"] == nil)
        guard case .array(let pairs)? = json["comparisons"] else { Issue.record("no comparisons"); return }
        #expect(pairs.map { [$0["treatment"], $0["baseline"]] } == [["oracle", "random"], ["A", "random"]])
        #expect(one.results.holmAdjusted.count == 2 * PerUserMetric.allCases.count)
        let table = one.results.table(color: false)
        #expect(table.contains("oracle vs random (95% CI)") && table.contains("A vs random (95% CI)"))
        #expect(table.contains("Design: paired"))
        // No per-arm "vs control" fields that would treat the copies as independent.
        guard case .array(let arms)? = json["arms"] else { return }
        #expect(arms.allSatisfy { $0["perUser"]?["clicks"]?["differenceVsControl"] == nil && $0["ctrVsControl"] == nil })
    }

    @Test("a split run reports each arm against the control as a comparison, with the Holm family over them")
    func splitComparisons() throws {
        var s = try pairedScenario(arms: "[\(arm("A")), \(arm("random", #"{"candidates": 20}"#))]", prefix: "sp")
        s.experiment.design = .split
        let r = try LockstepRun(scenario: s).run().results
        guard case .array(let pairs)? = r.json["comparisons"], let first = pairs.first else { Issue.record("no comparisons"); return }
        #expect(pairs.count == 1 && first["treatment"] == "random" && first["baseline"] == "A")
        let e = r.compare(1, 0, .viewSeconds)
        #expect(e.method.hasPrefix("cuped"))
        #expect(first["perUser"]?["viewSeconds"]?["relativeLift"]?.doubleValue == e.lift)
        #expect(r.json["sampleRatio"] != nil)
    }
}

@Suite("Sequential reading", .serialized)
struct SequentialRunTests {
    @Test("every tick after the split is read; the last reading is the report's; stopWhen ends the run at the first decided tick")
    func stopWhen() throws {
        var s = try pairedScenario(arms: "[\(arm("random", #"{"candidates": 20}"#)), \(arm("oracle", #"{"candidates": 20}"#, oracle: 0.5))]", prefix: "sq")
        let full = try LockstepRun(scenario: s).run().results
        let trace = try #require(full.sequential.first?[.clicks])
        #expect(trace.ticks == Array(3..<8))
        let e = full.compare(1, 0, .clicks)
        #expect(trace.lift.last == e.lift && trace.low.last == e.liftLow && trace.high.last == e.liftHigh)
        #expect(zip(trace.sequenceLow, trace.low).allSatisfy { $0 < $1 })
        let decided = try #require(trace.firstTickDecided)
        #expect(decided < 7)
        s.experiment.stopWhen = StopRule(metric: .clicks)
        s.kafka.topicPrefix = "sq2"
        let stopped = try LockstepRun(scenario: s).run().results
        #expect(stopped.stoppedAfter == decided)
        #expect(stopped.scenario.ticks == decided + 1 && stopped.arms[0].series.count == decided + 1)
        #expect(stopped.json["scenario"]?["stoppedAfterTick"] == .integer(Int64(decided)))
        #expect(stopped.table(color: false).contains("Stopped after tick \(decided) by experiment.stopWhen"))
        // The same ticks ran the same way.
        #expect(stopped.sequential[0][.clicks]!.lift == Array(trace.lift.prefix(decided - 2)))
    }

    @Test("stopWhen names a reported pair and leaves ticks to run")
    func validation() throws {
        let arms = #"[{"name": "a", "share": 0.5}, {"name": "b", "share": 0.5}]"#
        #expect(throws: ScenarioError.self) { try Scenario.decode(#"{"name": "x", "arms": \#(arms), "experiment": {"stopWhen": {"comparison": 1}}}"#) }
        do {
            _ = try Scenario.decode(#"{"name": "x", "ticks": 10, "arms": \#(arms), "experiment": {"warmupTicks": 4, "stopWhen": {"minTicks": 7}}}"#)
            Issue.record("accepted")
        } catch {
            #expect(error.description.contains("experiment.stopWhen.minTicks: must be at most the ticks after the warm-up (6), got 7"))
        }
        let s = try Scenario.decode(#"{"name": "x", "arms": \#(arms), "experiment": {"stopWhen": {}}}"#)
        #expect(s.experiment.stopWhen == StopRule(metric: .viewSeconds, comparison: 0, minTicks: 1))
    }
}

@Suite("Users are independent", .serialized)
struct UserIndependenceTests {
    /// Under arms that learn nothing, a user's outcome is theirs alone: the first 300 users
    /// of a 900-user world (same seed, same catalog) do exactly what a 300-user world's do.
    /// So a small run's users are a sample of a large run's, and a large run's lift is the
    /// small runs' truth.
    @Test("a user's metrics under non-learning arms do not depend on how many others there are", arguments: [Design.split, .paired])
    func independentOfPopulationSize(design: Design) throws {
        var s = try pairedScenario(arms: "[\(arm("random", #"{"candidates": 20}"#)), \(arm("oracle", #"{"candidates": 20}"#, oracle: 0.1))]", prefix: "ind")
        s.experiment.design = design
        s.catalog.seed = 99
        s.population.users = 300
        let small = try LockstepRun(scenario: s).run().results
        s.population.users = 900
        s.kafka.topicPrefix = "ind9"
        let large = try LockstepRun(scenario: s).run().results
        let assignment = ArmAssignment(s)
        for arm in 0..<2 {
            for m in PerUserMetric.allCases {
                let a = small.arms[arm].perUser(m), b = large.arms[arm].perUser(m)
                // In a split design, slots are per arm: the small world's users of this arm are
                // the large world's first ones of it.
                let n = design == .paired ? 300 : (0..<300).filter { Int(assignment.arm[$0]) == arm }.count
                #expect(Array(a.prefix(n)) == Array(b.prefix(n)), "\(design) arm \(arm) \(m)")
            }
        }
    }
}
