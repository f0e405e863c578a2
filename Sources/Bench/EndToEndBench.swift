import Experiment
import Foundation
import RecStream
import Scenario

/// `recstream bench e2e`: user steps per second (a request answered with a slate and its
/// feedback applied by the arm's trainer) through the embedded broker, and where the time
/// went: population, Kafka, serving, training, statistics. Compared with RecSim's 5.5k
/// user steps/s measured on this kind of machine (shared/baselines/peers-and-kafka.md).
public struct EndToEndBench: Sendable {
    public struct Case: Sendable {
        public var name: String
        public var scenario: String
        public var repeats: Int
    }

    public static let recSimUserStepsPerSecond = 5_500.0

    public var cases: [Case]
    public var threads: Int?

    public init(quick: Bool = false) {
        let large = quick ? 20_000 : 100_000
        cases = [
            Case(name: "quickstart", scenario: Self.quickstart, repeats: quick ? 1 : 3),
            Case(name: "large (\(large / 1000)k users, \(large / 1000)k items), random policy", scenario: Self.large(users: large, items: large, dare: false), repeats: quick ? 1 : 3),
            Case(name: "large (\(large / 1000)k users, \(large / 1000)k items), DARE over 200 candidates, L = 1000, training online",
                 scenario: Self.large(users: large, items: large, dare: true), repeats: 1),
        ]
    }

    /// scenarios/quickstart.json, without its output directory.
    static let quickstart = """
    {"name": "quickstart", "seed": 42, "ticks": 30,
     "population": {"users": 2000, "requestProbability": 0.5, "slateSize": 10},
     "catalog": {"items": 5000, "topCategories": 8, "subcategories": 6, "arrivalsPerTick": 5},
     "arms": [
       {"name": "random", "share": 0.5, "retrieval": {"type": "random"}, "ranking": {"type": "random"}, "policy": {"type": "greedy"}},
       {"name": "popularity", "share": 0.5, "candidates": 200, "retrieval": {"type": "popularity", "explore": 0.25},
        "ranking": {"type": "ctr", "priorClicks": 1, "priorImpressions": 20}, "policy": {"type": "epsilon-greedy", "epsilon": 0.1}}],
     "experiment": {"salt": "quickstart", "control": "random", "warmupTicks": 5},
     "kafka": {"topicPrefix": "bench-quickstart", "partitions": 4}, "output": {"progress": false}}
    """

    static func large(users: Int, items: Int, dare: Bool) -> String {
        let arm = dare
            ? #""candidates": 200, "retrieval": {"type": "random"}, "ranking": {"type": "dare", "attentionDim": 32, "representationDim": 64, "topK": 64, "maxHistory": 1000, "batchSize": 256}, "policy": {"type": "greedy"}"#
            : #""candidates": 10, "retrieval": {"type": "random"}, "ranking": {"type": "random"}, "policy": {"type": "greedy"}"#
        return """
        {"name": "large", "seed": 7, "ticks": \(dare ? 3 : 6),
         "population": {"users": \(users), "requestProbability": \(dare ? 0.1 : 0.5), "slateSize": 10,
                        "history": {"median": \(dare ? 1000 : 20), "spread": \(dare ? 0 : 1), "max": 2000}},
         "catalog": {"items": \(items), "topCategories": 20, "subcategories": 10, "topics": 64, "arrivalsPerTick": 20},
         "arms": [{"name": "a", "share": 0.5, \(arm)}, {"name": "b", "share": 0.5, \(arm)}],
         "experiment": {"regretSample": 0},
         "kafka": {"topicPrefix": "bench-large-\(dare ? "dare" : "random")", "partitions": 4}, "output": {"progress": false}}
        """
    }

    public func run(progress: (String) -> Void = { _ in }) throws -> BenchReport {
        var results: [BenchResult] = []
        var notes: [String] = []
        for c in cases {
            let scenario: Scenario
            do {
                scenario = try Scenario.decode(c.scenario, source: "bench \(c.name)")
            } catch {
                throw BenchError(error.description)
            }
            var rates: [Double] = []
            var last: RunReport?
            for r in 0..<c.repeats {
                progress("e2e: \(c.name), run \(r + 1) of \(c.repeats)")
                let run = try LockstepRun(scenario: scenario)
                run.options.threads = threads
                let report = try run.run()
                let steps = report.results.arms.reduce(0) { $0 + $1.series.reduce(0) { $0 + $1.requests } }
                rates.append(Double(steps) / report.run.runSeconds)
                last = report
            }
            results.append(BenchResult(name: "\(c.name): user steps", unit: "steps/s", samples: rates,
                                       baselineSamples: [Self.recSimUserStepsPerSecond]))
            if let last {
                let shares = last.run.phases.shares.map { String(format: "%@ %.0f%%", $0.name, 100 * $0.share) }.joined(separator: ", ")
                let latency = last.run.serveLatency.map { "\($0.arm) \($0.summary)" }.joined(separator: "; ")
                notes.append("\(c.name): time in \(shares); serving p50/p99/p99.9 \(latency); world built in \(String(format: "%.1f", last.run.populationSeconds)) s.")
            }
        }
        notes.append("A user step is a request answered with a slate of 10 and its feedback applied, through the embedded broker (4 partitions). "
            + "The baseline column is RecSim's 5.5k user steps/s on this machine (shared/baselines/peers-and-kafka.md; not run here). "
            + "Targets: random policy at least 20x; DARE at least 1x with Kafka under 30% of the time.")
        return BenchReport(bench: "e2e", results: results, notes: notes)
    }
}
