import Experiment
import Foundation
import Kafka
import RecCore
import RecStream
import Report
import Scenario

/// The same scenario run over many seeds, to see how often each comparison comes out
/// significant. With identical arms (an A/A test) that share is the false-positive rate,
/// which a sound engine keeps near alpha; with different arms it is the power.
public struct SeedSweep: Sendable {
    public let scenario: Scenario
    public let seeds: [UInt64]
    public let alpha: Double
    /// Per seed, per reported pair (`pairs`), per compared metric: the outcome.
    public private(set) var outcomes: [[[Outcome]]] = []

    public struct Outcome: Sendable, Equatable {
        public var pValue: Double
        public var pValueHolm: Double
        public var lift: Double
        /// The lift's 95% interval at the end.
        public var low: Double
        public var high: Double
        /// Every look since the split (per-user metrics; nil for CTR).
        public var trace: SequentialTrace?

        /// Whether the fixed-horizon interval, read at every look, ever excluded the
        /// truth: `truth(k)` at look k (a constant, or a large run's own trace when the
        /// effect moves over ticks). An undefined interval excludes nothing.
        public func everExcluded(_ truth: (Int) -> Double) -> Bool { excluded(truth, \.low, \.high) }
        /// Whether the confidence sequence ever excluded the truth.
        public func sequenceEverExcluded(_ truth: (Int) -> Double) -> Bool { excluded(truth, \.sequenceLow, \.sequenceHigh) }

        func excluded(_ truth: (Int) -> Double, _ low: KeyPath<SequentialTrace, [Double]>, _ high: KeyPath<SequentialTrace, [Double]>) -> Bool {
            guard let trace else { return false }
            let (lo, hi) = (trace[keyPath: low], trace[keyPath: high])
            return trace.ticks.indices.contains { lo[$0] > truth($0) || hi[$0] < truth($0) }
        }
        public func covers(_ value: Double) -> Bool { low <= value && value <= high }
    }

    /// The compared metrics, in table order: the per-user metrics, then CTR.
    public static let metrics: [(label: String, key: String, perUser: PerUserMetric?)] =
        PerUserMetric.allCases.map { (label(of: $0), $0.rawValue, $0) } + [("CTR", "ctr", nil)]

    static func label(of m: PerUserMetric) -> String {
        switch m {
        case .viewSeconds: "view seconds / user"
        case .gmv: "GMV / user"
        case .clicks: "clicks / user"
        case .impressions: "impressions / user"
        case .purchases: "purchases / user"
        case .activeTicks: "active ticks / user"
        }
    }

    public init(scenario: Scenario, seeds: Int, alpha: Double = 0.05) {
        self.scenario = scenario
        self.seeds = (0..<UInt64(seeds)).map { scenario.seed &+ $0 }
        self.alpha = alpha
    }

    /// Runs every seed in turn, each on topics of its own (on one embedded broker, or on
    /// the scenario's cluster), and keeps what the comparisons gave.
    public mutating func run(progress: ((Int) -> Void)? = nil) throws {
        outcomes = []
        let broker = scenario.kafka.brokers == nil ? try EmbeddedBroker() : nil
        for (i, seed) in seeds.enumerated() {
            var s = scenario
            s.seed = seed
            s.output.directory = nil
            s.kafka.topicPrefix += "-seed\(seed)"
            let results = try LockstepRun(scenario: s, broker: broker).run().results
            outcomes.append(Self.outcomes(results))
            progress?(i + 1)
        }
    }

    /// The reported pairs, as (treatment, baseline) arm indices.
    var pairs: [(treatment: Int, baseline: Int)] { scenario.comparedPairs }

    /// One run's outcome per reported pair and compared metric.
    static func outcomes(_ results: ExperimentResults) -> [[Outcome]] {
        let holm = results.holmAdjusted
        return results.pairs.enumerated().map { p, pair in
            let (t, b) = pair
            return Self.metrics.map { m in
                guard let pu = m.perUser else {
                    let r = results.compareCTR(t, b)
                    return Outcome(pValue: r.pValue, pValueHolm: .nan, lift: r.lift, low: r.liftLow, high: r.liftHigh)
                }
                let e = results.compare(t, b, pu)
                var o = Outcome(pValue: e.pValue, pValueHolm: holm[results.holmKey(pair: p, pu)] ?? .nan, lift: e.lift, low: e.liftLow, high: e.liftHigh)
                if p < results.sequential.count, let trace = results.sequential[p][pu], !trace.ticks.isEmpty { o.trace = trace }
                return o
            }
        }
    }

    /// Of the seeds, the share in which the fixed-horizon interval read at every look
    /// ever excluded the truth (`truth(k)` at look k; 0 by default: what peeking finds in
    /// an A/A test), and the share in which the confidence sequence did, each with a
    /// Wilson interval.
    public func peeking(pair t: Int, metric m: Int, truth: (Int) -> Double = { _ in 0 })
        -> (naive: (share: Double, low: Double, high: Double), sequence: (share: Double, low: Double, high: Double)) {
        let usable = outcomes.filter { $0[t][m].trace != nil }
        return (wilsonInterval(usable.filter { $0[t][m].everExcluded(truth) }.count, usable.count),
                wilsonInterval(usable.filter { $0[t][m].sequenceEverExcluded(truth) }.count, usable.count))
    }

    /// The share of seeds whose final 95% interval covers `value`, with a Wilson interval
    /// (seeds whose interval is undefined do not count).
    public func coverage(pair t: Int, metric m: Int, of value: Double) -> (share: Double, low: Double, high: Double) {
        let usable = outcomes.filter { $0[t][m].low.isFinite && $0[t][m].high.isFinite }
        return wilsonInterval(usable.filter { $0[t][m].covers(value) }.count, usable.count)
    }

    /// The median width of the final 95% intervals over seeds.
    public func medianWidth(pair t: Int, metric m: Int) -> Double {
        let w = outcomes.map { $0[t][m].high - $0[t][m].low }.filter(\.isFinite).sorted()
        guard !w.isEmpty else { return .nan }
        return w.count % 2 == 1 ? w[w.count / 2] : (w[w.count / 2 - 1] + w[w.count / 2]) / 2
    }

    /// The share of seeds in which a comparison was significant, with a Wilson 95% interval.
    public func share(pair t: Int, metric m: Int, holm: Bool = false) -> (share: Double, low: Double, high: Double) {
        let significant = outcomes.filter { (holm ? $0[t][m].pValueHolm : $0[t][m].pValue) < alpha }.count
        return Self.wilson(significant, outcomes.count)
    }

    /// Seeds in which at least one of the pair's Holm-adjusted comparisons was significant:
    /// the family-wise error rate Holm controls.
    public func familyShare(pair t: Int) -> (share: Double, low: Double, high: Double) {
        Self.wilson(outcomes.filter { $0[t].contains { $0.pValueHolm < alpha } }.count, outcomes.count)
    }

    /// The lift averaged over seeds, with a t interval that takes the seed (a whole world,
    /// split and learned path) as the unit: the honest interval when arms learn from their
    /// own traffic, whose single-run intervals count user noise only.
    public func meanLift(pair t: Int, metric m: Int) -> (mean: Double, low: Double, high: Double) {
        let lifts = outcomes.map { $0[t][m].lift }.filter(\.isFinite)
        let e = MeanEstimate(lifts)
        guard lifts.count > 1, e.standardError.isFinite else { return (e.mean, .nan, .nan) }
        let q = StudentT.quantile(0.975, df: Double(lifts.count - 1))
        return (e.mean, e.mean - q * e.standardError, e.mean + q * e.standardError)
    }

    /// Wilson's score interval for k successes in n (95%).
    static func wilson(_ k: Int, _ n: Int) -> (share: Double, low: Double, high: Double) { wilsonInterval(k, n) }

    public func table() -> String {
        var lines: [[String]] = [["metric"]]
        for (t, b) in pairs {
            let name = "\(scenario.arms[t].name) vs \(scenario.arms[b].name)"
            lines[0] += ["\(name): p < \(alpha) [95% CI]", "Holm p < \(alpha)", "read every tick: fixed / sequence", "mean lift [95% CI over seeds]"]
        }
        for (m, metric) in Self.metrics.enumerated() {
            var row = [metric.label]
            for i in pairs.indices {
                let s = share(pair: i, metric: m)
                row.append(String(format: "%.1f%% [%.1f%%, %.1f%%]", 100 * s.share, 100 * s.low, 100 * s.high))
                row.append(metric.perUser == nil ? "" : String(format: "%.1f%%", 100 * share(pair: i, metric: m, holm: true).share))
                let peek = peeking(pair: i, metric: m)
                row.append(metric.perUser == nil || peek.naive.share.isNaN ? "" : String(format: "%.1f%% / %.1f%%", 100 * peek.naive.share, 100 * peek.sequence.share))
                let l = meanLift(pair: i, metric: m)
                row.append(l.mean.isNaN ? "n/a" : l.low.isNaN ? String(format: "%+.2f%%", 100 * l.mean)
                           : String(format: "%+.2f%% [%+.2f%%, %+.2f%%]", 100 * l.mean, 100 * l.low, 100 * l.high))
            }
            lines.append(row)
        }
        var family = ["any per-user metric (Holm)"]
        for i in pairs.indices {
            let f = familyShare(pair: i)
            family += ["", String(format: "%.1f%%", 100 * f.share), "", ""]
        }
        lines.append(family)
        let design = scenario.isPaired ? "paired design, each user's difference between copies the unit" : "split design"
        var out = "\(scenario.name) over \(seeds.count) seeds (\(seeds.first!)-\(seeds.last!)), \(design): how often each pair differs at alpha \(alpha)\n\n"
        out += alignedTable(lines)
        out += "\nEach seed is \(scenario.catalog.seed == nil ? "a new world" : "new users in one world (catalog.seed is pinned)"), a new split and a new learned path. Where the arms are identical (an A/A test) the share is the false-positive rate: near \(Int(alpha * 100))% "
            + "per metric, and at most \(Int(alpha * 100))% for the Holm family, when the statistics are sound. Where they differ it is the power.\n"
            + "Read every tick: the share of seeds in which 0 fell outside the fixed-horizon 95% interval at some tick after the split (what peeking finds), and outside the confidence sequence (valid at every tick; at most \(Int(alpha * 100))% in an A/A test).\n"
            + "The mean lift's interval takes the seed as the unit, so it includes the chance in what learning arms learned.\n"
        return out
    }

    public var json: JSONValue {
        var comparisons: [JSONValue] = []
        for (i, (t, b)) in pairs.enumerated() {
            var metrics = JSONObject()
            for (m, metric) in Self.metrics.enumerated() {
                let s = share(pair: i, metric: m)
                var o: JSONObject = [
                    "significantShare": .number(s.share), "low95": .number(s.low), "high95": .number(s.high),
                    "pValues": .array(outcomes.map { .number($0[i][m].pValue) }),
                    "lifts": .array(outcomes.map { .number($0[i][m].lift) }),
                    "meanLift": .number(meanLift(pair: i, metric: m).mean),
                    "meanLiftLow95": .number(meanLift(pair: i, metric: m).low), "meanLiftHigh95": .number(meanLift(pair: i, metric: m).high),
                ]
                if metric.perUser != nil {
                    o["significantShareHolm"] = .number(share(pair: i, metric: m, holm: true).share)
                    let peek = peeking(pair: i, metric: m)
                    o["everExcludedZeroFixed"] = ["share": .number(peek.naive.share), "low95": .number(peek.naive.low), "high95": .number(peek.naive.high)]
                    o["everExcludedZeroSequence"] = ["share": .number(peek.sequence.share), "low95": .number(peek.sequence.low), "high95": .number(peek.sequence.high)]
                }
                metrics[metric.key] = .object(o)
            }
            comparisons.append(["treatment": .string(scenario.arms[t].name), "baseline": .string(scenario.arms[b].name),
                                "familyWiseShareHolm": .number(familyShare(pair: i).share), "metrics": .object(metrics)])
        }
        return [
            "recstream": ["version": .string(recstreamVersion)],
            "scenario": ["name": .string(scenario.name), "fingerprint": .string(scenario.fingerprint),
                         "control": .string(scenario.arms[scenario.controlArm].name), "design": .string(scenario.experiment.design.rawValue)],
            "seeds": .array(seeds.map { .integer(Int64(bitPattern: $0)) }),
            "alpha": .number(alpha),
            "comparisons": .array(comparisons),
        ]
    }
}
