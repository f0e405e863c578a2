import Experiment
import Foundation
import Kafka
import RecCore
import RecStream
import Report
import Scenario

/// Do the intervals cover the truth? (`recstream calibrate`.) In one world (the catalog's
/// seed pinned), a large paired run measures each reported pair's true lift; then many
/// small runs, each with new users and new draws, are run split (at the scenario's users)
/// and paired (at users / arms per copy, the same simulation cost), and the share of
/// their 95% intervals that cover the truth is counted, with the widths of the two designs
/// and how often each interval, read at every tick, ever excluded the truth.
///
/// The arms should not learn from their own traffic (a planted effect on fixed policies,
/// `arms[].oracleShare`): a learning arm's lift depends on the chance path of what it
/// learned, which differs from run to run and which no single run's interval counts.
public struct Calibration: Sendable {
    public let scenario: Scenario
    public let seeds: Int
    /// The truth has this many times the scenario's users per copy, run in chunks of at
    /// most `chunkScale` times (each chunk a paired run of its own seed, so memory stays
    /// that of one chunk).
    public let truthScale: Int
    public static let chunkScale = 10
    /// The truth's paired runs, once run.
    public private(set) var truths: [ExperimentResults] = []
    public private(set) var split: SeedSweep
    public private(set) var paired: SeedSweep

    /// `scenario` with its catalog seed pinned (to its seed, when it names none).
    public init(scenario: Scenario, seeds: Int, truthScale: Int = 50) {
        var s = scenario
        if s.catalog.seed == nil { s.catalog.seed = s.seed }
        s.output.directory = nil
        // Every run reads every tick: the truth's trace is held against each seed's.
        s.experiment.stopWhen = nil
        self.scenario = s
        self.seeds = seeds
        self.truthScale = truthScale
        var sp = s
        sp.experiment.design = .split
        sp.kafka.topicPrefix += "-split"
        split = SeedSweep(scenario: sp, seeds: seeds)
        var pd = s
        pd.experiment.design = .paired
        pd.population.users = max(1, s.population.users / s.arms.count)
        pd.kafka.topicPrefix += "-paired"
        paired = SeedSweep(scenario: pd, seeds: seeds)
    }

    /// The truth's chunks: paired runs at seeds below the sweeps' (so no small run shares
    /// their users), together `truthScale` times the scenario's users per copy.
    public var truthScenarios: [Scenario] {
        let chunks = (truthScale + Self.chunkScale - 1) / Self.chunkScale
        return (0..<chunks).map { c in
            var t = scenario
            t.experiment.design = .paired
            t.population.users = scenario.population.users * min(Self.chunkScale, truthScale - c * Self.chunkScale)
            t.seed = scenario.seed &- UInt64(c + 1)
            t.kafka.topicPrefix += "-truth\(c)"
            return t
        }
    }

    /// Users per copy in the truth, over its chunks.
    public var truthUsers: Int { truthScenarios.reduce(0) { $0 + $1.population.users } }

    /// Runs the truth, then the split and the paired sweeps; `progress(stage, done, of)`.
    public mutating func run(progress: ((String, Int, Int) -> Void)? = nil) throws {
        let chunks = truthScenarios
        truths = []
        for (c, t) in chunks.enumerated() {
            progress?("truth", c, chunks.count)
            truths.append(try LockstepRun(scenario: t).run().results)
        }
        progress?("truth", chunks.count, chunks.count)
        let n = seeds
        try split.run { progress?("split", $0, n) }
        try paired.run { progress?("paired", $0, n) }
    }

    /// The true lift of pair `p` on compared metric `m`: the mean of the chunks' lifts,
    /// its standard error from theirs (nil before the truth has run).
    public func trueLift(pair p: Int, metric m: Int) -> LiftEstimate? {
        guard !truths.isEmpty else { return nil }
        let chunks = truths.map { truth -> LiftEstimate in
            let (t, b) = truth.pairs[p]
            if let pu = SeedSweep.metrics[m].perUser { return truth.compare(t, b, pu) }
            return truth.compareCTR(t, b)
        }
        let k = Double(chunks.count)
        let lift = chunks.reduce(0) { $0 + $1.lift } / k
        let se = chunks.reduce(0) { $0 + $1.liftStandardError * $1.liftStandardError }.squareRoot() / k
        return LiftEstimate(method: "mean over \(chunks.count) paired runs", difference: .nan, low: .nan, high: .nan, pValue: .nan,
                            lift: lift, liftLow: lift - z95 * se, liftHigh: lift + z95 * se, liftStandardError: se)
    }

    /// The truth run's lift after every tick since the split (the effect can move over
    /// ticks, as purchases lag clicks: each look is held to the truth at its own tick).
    public func trueTrace(pair p: Int, metric m: Int) -> [Double]? {
        guard let pu = SeedSweep.metrics[m].perUser, let first = truths.first, p < first.sequential.count,
              let looks = first.sequential[p][pu]?.lift.count else { return nil }
        return (0..<looks).map { k in truths.reduce(0) { $0 + ($1.sequential[p][pu]?.lift[k] ?? .nan) } / Double(truths.count) }
    }

    public func table() -> String {
        var out = "\(scenario.name): calibration over \(seeds) seeds (\(split.seeds.first!)-\(split.seeds.last!)) in one world (catalog seed \(scenario.catalogSeed))\n"
        out += "Truth: paired runs of \(truthUsers) users per copy in all (\(truthScenarios.count) of them, seeds \(truthScenarios.last!.seed)-\(truthScenarios[0].seed)). "
            + "Small runs: split with \(scenario.population.users) users, paired with \(paired.scenario.population.users) per copy (the same simulation cost).\n"
        for (p, pair) in scenario.comparedPairs.enumerated() {
            out += "\n\(scenario.arms[pair.treatment].name) vs \(scenario.arms[pair.baseline].name):\n\n"
            var lines = [["metric", "true lift [95% CI]", "split covers", "paired covers", "width split / paired", "ratio",
                          "split read every tick: fixed / sequence miss", "paired: fixed / sequence miss"]]
            for (m, metric) in SeedSweep.metrics.enumerated() {
                guard let e = trueLift(pair: p, metric: m) else { continue }
                func share(_ s: (share: Double, low: Double, high: Double)) -> String {
                    s.share.isNaN ? "n/a" : String(format: "%.1f%% [%.1f, %.1f]", 100 * s.share, 100 * s.low, 100 * s.high)
                }
                let ws = split.medianWidth(pair: p, metric: m), wp = paired.medianWidth(pair: p, metric: m)
                func misses(_ sweep: SeedSweep) -> String {
                    guard let truth = trueTrace(pair: p, metric: m) else { return "" }
                    let peek = sweep.peeking(pair: p, metric: m) { truth[$0] }
                    return peek.naive.share.isNaN ? "n/a" : String(format: "%.1f%% / %.1f%% [%.1f, %.1f]", 100 * peek.naive.share, 100 * peek.sequence.share,
                                                                    100 * peek.sequence.low, 100 * peek.sequence.high)
                }
                lines.append([
                    metric.label,
                    e.lift.isFinite ? String(format: "%+.2f%% [%+.2f, %+.2f]", 100 * e.lift, 100 * e.liftLow, 100 * e.liftHigh) : "n/a",
                    share(split.coverage(pair: p, metric: m, of: e.lift)), share(paired.coverage(pair: p, metric: m, of: e.lift)),
                    ws.isFinite && wp.isFinite ? String(format: "%.2f / %.2f pts", 100 * ws, 100 * wp) : "n/a",
                    ws.isFinite && wp > 0 ? String(format: "%.1fx", ws / wp) : "n/a",
                    misses(split), misses(paired),
                ])
            }
            out += alignedTable(lines)
        }
        out += "\nCovers: the share of runs whose final 95% interval of the lift holds the true lift (Wilson 95% interval, in points); a calibrated interval gives 95%. "
            + "Width: the median width of those intervals, in lift points; the ratio is how much narrower paired is at the same cost. "
            + "Read every tick: the share of runs in which the true lift at some tick after the split (the truth run's own lift at that tick) fell outside the fixed-horizon interval, and outside the confidence sequence (at most 5% when it is valid).\n"
        return out
    }

    public var json: JSONValue {
        var pairs: [JSONValue] = []
        for (p, pair) in scenario.comparedPairs.enumerated() {
            var metrics = JSONObject()
            for (m, metric) in SeedSweep.metrics.enumerated() {
                guard let e = trueLift(pair: p, metric: m) else { continue }
                func design(_ sweep: SeedSweep) -> JSONValue {
                    let c = sweep.coverage(pair: p, metric: m, of: e.lift)
                    var o: JSONObject = [
                        "users": .integer(Int64(sweep.scenario.population.users)),
                        "coverage": ["share": .number(c.share), "low95": .number(c.low), "high95": .number(c.high)],
                        "medianWidth": .number(sweep.medianWidth(pair: p, metric: m)),
                        "lows": .array(sweep.outcomes.map { .number($0[p][m].low) }),
                        "highs": .array(sweep.outcomes.map { .number($0[p][m].high) }),
                    ]
                    if let truth = trueTrace(pair: p, metric: m) {
                        let peek = sweep.peeking(pair: p, metric: m) { truth[$0] }
                        o["everMissedFixed"] = ["share": .number(peek.naive.share), "low95": .number(peek.naive.low), "high95": .number(peek.naive.high)]
                        o["everMissedSequence"] = ["share": .number(peek.sequence.share), "low95": .number(peek.sequence.low), "high95": .number(peek.sequence.high)]
                    }
                    return .object(o)
                }
                metrics[metric.key] = [
                    "trueLift": .number(e.lift), "trueLiftLow95": .number(e.liftLow), "trueLiftHigh95": .number(e.liftHigh),
                    "split": design(split), "paired": design(paired),
                    "widthRatio": .number(split.medianWidth(pair: p, metric: m) / paired.medianWidth(pair: p, metric: m)),
                ]
            }
            pairs.append(["treatment": .string(scenario.arms[pair.treatment].name), "baseline": .string(scenario.arms[pair.baseline].name),
                          "metrics": .object(metrics)])
        }
        return [
            "recstream": ["version": .string(recstreamVersion)],
            "scenario": ["name": .string(scenario.name), "fingerprint": .string(scenario.fingerprint), "catalogSeed": .integer(Int64(bitPattern: scenario.catalogSeed))],
            "seeds": .array(split.seeds.map { .integer(Int64(bitPattern: $0)) }),
            "truth": ["usersPerCopy": .integer(Int64(truthUsers)), "seeds": .array(truthScenarios.map { .integer(Int64(bitPattern: $0.seed)) })],
            "comparisons": .array(pairs),
        ]
    }
}

/// How many users (split: in all; paired: per copy) and ticks a lift needs for a power
/// (`recstream power`), from one pilot run of the scenario. Power is that of the test
/// whose p-value the report gives: the difference of per-user means (CUPED, paired or
/// Welch), against lift x the baseline's mean. Its standard error, relative to that mean,
/// shrinks as 1/sqrt(users), so n = n_pilot (z_{1-alpha/2} + z_power)^2 se_pilot^2 / lift^2;
/// over ticks it shrinks as the pilot's trace shows, extrapolated from its last looks as
/// se ~ t^-beta. (The relative lift's own interval is wider when the effect is additive:
/// it also carries the baseline mean's uncertainty.)
public struct PowerEstimate: Sendable {
    public let scenario: Scenario
    public let metric: PerUserMetric
    public let lift: Double
    public let power: Double
    public let alpha: Double
    /// The pilot's lift, and the standard error of its difference relative to the
    /// baseline's mean, at the scenario's users and ticks.
    public let pilotLift: Double
    public let pilotStandardError: Double
    /// Users needed at the scenario's ticks (split: in all; paired: per copy).
    public let users: Int
    /// Ticks needed (warm-up included) at the scenario's users: the pilot's first look
    /// precise enough, or beyond the pilot, its trace extrapolated; nil when the trace gives
    /// no rate to extrapolate.
    public let ticks: Int?
    /// The exponent of se ~ t^-beta over the pilot's last looks.
    public let beta: Double

    public init(pilot results: ExperimentResults, pair: Int = 0, metric: PerUserMetric, lift: Double, power: Double = 0.8, alpha: Double = 0.05) throws(PowerError) {
        scenario = results.scenario
        self.metric = metric
        self.lift = lift
        self.power = power
        self.alpha = alpha
        let (t, b) = results.pairs[pair]
        let e = results.compare(t, b, metric)
        pilotLift = e.lift
        let baselineMean = MeanEstimate(results.arms[b].perUser(metric)).mean
        pilotStandardError = e.standardError / abs(baselineMean)
        let names = "\(results.arms[t].name) vs \(results.arms[b].name)"
        guard baselineMean != 0, baselineMean.isFinite else {
            throw PowerError("the pilot's \(results.arms[b].name) has a mean \(metric.rawValue) of 0: a relative lift of it is undefined (try a larger pilot or another metric)")
        }
        guard pilotStandardError > 0, pilotStandardError.isFinite else {
            throw PowerError("the pilot's \(names) difference in \(metric.rawValue) has no spread (standard error \(pilotStandardError)): \(scenario.isPaired ? "the copies do not differ on it" : "too few users") to size from")
        }
        // The trace holds the lift's intervals; scale them to the difference's.
        let scale = pilotStandardError / e.liftStandardError
        let z = normalQuantile(1 - alpha / 2) + normalQuantile(power)
        let ratio = z * pilotStandardError / abs(lift)
        let n = (Double(scenario.population.users) * ratio * ratio).rounded(.up)
        guard let users = Int(exactly: min(n, 1e15)) else { throw PowerError("the pilot's \(names) gives no usable size (\(n) users)") }
        self.users = users
        // Over ticks: the needed se is se_pilot / ratio; se_t = se_T (t / T)^-beta.
        let trace = pair < results.sequential.count ? results.sequential[pair][metric] : nil
        var beta = Double.nan
        if let trace, trace.ticks.count >= 4 {
            let n = trace.ticks.count
            let se = zip(trace.high, trace.low).map { ($0 - $1) / (2 * z95) * scale }
            let (t0, t1) = (Double(trace.ticks[n / 2] + 1 - scenario.experiment.warmupTicks), Double(trace.ticks[n - 1] + 1 - scenario.experiment.warmupTicks))
            beta = log(se[n / 2] / se[n - 1]) / log(t1 / t0)
        }
        self.beta = beta
        if ratio <= 1, let trace, !trace.ticks.isEmpty {
            // Reached within the pilot: its first look whose interval is narrow enough.
            let needed = abs(lift) / z
            let k = trace.ticks.indices.first { (trace.high[$0] - trace.low[$0]) / (2 * z95) * scale <= needed } ?? trace.ticks.count - 1
            ticks = trace.ticks[k] + 1
        } else if beta > 0.05, beta.isFinite {
            // se_t = se_T (t / T)^-beta reaches se_T / ratio at t = T ratio^(1 / beta).
            let looks = (Double(scenario.ticks - scenario.experiment.warmupTicks) * pow(ratio, 1 / beta)).rounded(.up)
            ticks = looks < 1e9 ? scenario.experiment.warmupTicks + Int(looks) : nil
        } else {
            ticks = nil
        }
    }

    public var summary: String {
        let who = scenario.isPaired ? "users per copy" : "users (all arms)"
        var out = String(format: "Pilot (%@, seed %llu, %d users, %d ticks): %@ lift %+.2f%% with standard error %.2f points.\n",
                         scenario.experiment.design.rawValue, scenario.seed, scenario.population.users, scenario.ticks, metric.rawValue,
                         100 * pilotLift, 100 * pilotStandardError)
        out += String(format: "For %.0f%% power at alpha %.2f (two-sided) on a lift of %+.2f%%: %d %@ at %d ticks",
                      100 * power, alpha, 100 * lift, users, who, scenario.ticks)
        if let ticks {
            let how = ticks <= scenario.ticks ? "the pilot's own trace" : String(format: "its standard error fell as ticks^-%.2f over the pilot's last looks", beta)
            out += String(format: ", or %d ticks at %d users (%@).\n", ticks, scenario.population.users, how)
        } else {
            out += "; the pilot's trace gives no rate at which more ticks would help.\n"
        }
        return out
    }
}

/// Why a pilot cannot size a run.
public struct PowerError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// The standard normal quantile (Acklam's rational approximation, refined by one Halley
/// step on erfc: about 1e-15 relative).
public func normalQuantile(_ p: Double) -> Double {
    precondition(p > 0 && p < 1, "a quantile needs 0 < p < 1, got \(p)")
    // The upper half by symmetry: the refinement below compares p with a tail
    // probability, which keeps its digits only on the lower side.
    if p > 0.5 { return -normalQuantile(1 - p) }
    let a = [-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02, 1.383577518672690e+02, -3.066479806614716e+01, 2.506628277459239e+00]
    let b = [-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02, 6.680131188771972e+01, -1.328068155288572e+01]
    let c = [-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00, -2.549732539343734e+00, 4.374664141464968e+00, 2.938163982698783e+00]
    let d = [7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00, 3.754408661907416e+00]
    var x: Double
    if p < 0.02425 {
        let q = (-2 * log(p)).squareRoot()
        x = (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1)
    } else if p <= 1 - 0.02425 {
        let q = p - 0.5, r = q * q
        x = (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q / (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1)
    } else {
        let q = (-2 * log(1 - p)).squareRoot()
        x = -(((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1)
    }
    let e = 0.5 * erfc(-x / 2.0.squareRoot()) - p
    let u = e * (2 * Double.pi).squareRoot() * exp(x * x / 2)
    x -= u / (1 + x * u / 2)
    return x
}
