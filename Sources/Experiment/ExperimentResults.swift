import Foundation
import RecCore
import Scenario

/// Facts of the catalog the item-level measures need: when each item arrived, and which
/// items are the head of the popularity prior (the rest is the long tail).
public struct ItemFacts: Sendable {
    public var born: [Int32]
    public var head: [Bool]
    public init(born: [Int32], head: [Bool]) {
        self.born = born
        self.head = head
    }
}

/// The outcome of an experiment: per-arm metrics and their comparison with the control.
/// Everything here is a function of (scenario, seed): no timings, no transport details,
/// so two runs can be compared bit for bit through `json`.
public struct ExperimentResults: Sendable {
    public let scenario: Scenario
    public let arms: [ArmMetrics]
    public let catalogSize: Int
    /// Message counts per topic and other counters (dead letters, purchases pending).
    public let messages: [String: Int]
    /// Per arm with a learned sequence model: how it predicted each tick before learning.
    public let modelEvaluations: [[TickEvaluation]]
    /// Arms' policies estimated off-policy from other arms' logs.
    public let offPolicy: [OffPolicyComparison]
    /// What the item-level measures need to know of the catalog.
    public let items: ItemFacts
    /// Per reported pair (`pairs`), per per-user metric: the lift read after every tick
    /// since the split, with its confidence sequence.
    public let sequential: [[PerUserMetric: SequentialTrace]]
    /// The tick a `stopWhen` rule ended the run after, if it did.
    public let stoppedAfter: Int?

    public init(scenario: Scenario, arms: [ArmMetrics], catalogSize: Int, items: ItemFacts? = nil,
                modelEvaluations: [[TickEvaluation]] = [], offPolicy: [OffPolicyComparison] = [], messages: [String: Int],
                sequential: [[PerUserMetric: SequentialTrace]] = [], stoppedAfter: Int? = nil) {
        self.sequential = sequential
        self.stoppedAfter = stoppedAfter
        self.scenario = scenario
        self.arms = arms
        self.catalogSize = catalogSize
        self.items = items ?? ItemFacts(born: [Int32](repeating: 0, count: catalogSize), head: [Bool](repeating: false, count: catalogSize))
        self.modelEvaluations = modelEvaluations
        self.offPolicy = offPolicy
        self.messages = messages
    }

    public var control: Int { scenario.controlArm }

    /// Are users split across arms as the shares say? (Meaningless in a paired design,
    /// where every arm has every user; its report leaves it out.)
    public var sampleRatio: SampleRatioCheck {
        SampleRatioCheck(counts: arms.map(\.users), shares: scenario.arms.map(\.share))
    }

    /// CUPED for a treatment arm against the control, with each user's warm-up value of
    /// the metric as covariate; nil when the run had no warm-up.
    public func cuped(_ arm: Int, _ metric: PerUserMetric) -> Cuped? {
        guard let xA = arms[control].covariate(metric), let xB = arms[arm].covariate(metric) else { return nil }
        return Cuped(yA: arms[control].perUser(metric), xA: xA, yB: arms[arm].perUser(metric), xB: xB)
    }

    /// The reported pairs, as (treatment, baseline) arm indices.
    public var pairs: [(treatment: Int, baseline: Int)] { scenario.comparedPairs }

    /// The comparison of `treatment` with `baseline` on a per-user metric that the report
    /// leads with. Split design: CUPED with Welch's test when the run had a warm-up, else
    /// Welch's test and the delta method's lift. Paired: the same on each user's
    /// difference (the paired t test, paired CUPED, the delta method with the arms'
    /// covariance).
    public func compare(_ treatment: Int, _ baseline: Int, _ metric: PerUserMetric) -> LiftEstimate {
        Self.compare(arms, scenario, treatment, baseline, metric)
    }

    /// `compare` on arms' metrics as they stand (the ledger reads it after every tick).
    static func compare(_ arms: [ArmMetrics], _ scenario: Scenario, _ treatment: Int, _ baseline: Int, _ metric: PerUserMetric) -> LiftEstimate {
        let a = arms[baseline].perUser(metric), b = arms[treatment].perUser(metric)
        if scenario.isPaired {
            if let x = arms[baseline].covariate(metric) {
                let c = PairedCuped(a: a, b: b, x: x)
                return LiftEstimate(method: "paired cuped (shared warm-up value as covariate) + paired t", test: c.adjusted, lift: c.relativeLift,
                                    varianceReduction: c.varianceReduction)
            }
            return LiftEstimate(method: "paired t; delta method with the arms' covariance", test: PairedTest(a: a, b: b), lift: PairedRelativeLift(a: a, b: b))
        }
        if let xa = arms[baseline].covariate(metric), let xb = arms[treatment].covariate(metric) {
            let c = Cuped(yA: a, xA: xa, yB: b, xB: xb)
            return LiftEstimate(method: "cuped (warm-up value as covariate) + welch-t", test: c.adjusted, lift: c.relativeLift,
                                varianceReduction: c.varianceReduction)
        }
        return LiftEstimate(method: "welch-t; delta method", test: WelchTest(a: a, b: b), lift: RelativeLift(a: a, b: b))
    }

    /// CTR (clicks / impressions, user as the unit) of `treatment` against `baseline`, by
    /// the delta method (with the arms' covariance in a paired design).
    public func compareCTR(_ treatment: Int, _ baseline: Int) -> LiftEstimate {
        let c = arms[baseline], t = arms[treatment]
        if scenario.isPaired {
            let r = PairedRatioComparison(numeratorA: c.perUser(.clicks), denominatorA: c.perUser(.impressions),
                                          numeratorB: t.perUser(.clicks), denominatorB: t.perUser(.impressions))
            return LiftEstimate(method: "paired delta (ratio of sums, user as unit; p of the relative lift)", ratio: r)
        }
        let r = RatioComparison(numeratorA: c.perUser(.clicks), denominatorA: c.perUser(.impressions),
                                numeratorB: t.perUser(.clicks), denominatorB: t.perUser(.impressions))
        return LiftEstimate(method: "delta (ratio of sums, user as unit; p of the relative lift)", ratio: r)
    }

    /// Holm-adjusted p-values of every reported pair x per-user metric, keyed by
    /// `holmKey` (one family: all the lifts the report shows).
    public var holmAdjusted: [String: Double] {
        var keys: [String] = [], p: [Double] = []
        for (i, (t, b)) in pairs.enumerated() {
            for metric in PerUserMetric.allCases {
                keys.append(holmKey(pair: i, metric))
                p.append(compare(t, b, metric).pValue)
            }
        }
        return Dictionary(uniqueKeysWithValues: zip(keys, MultipleTesting.holm(p)))
    }

    /// The key of reported pair `pair` (its index in `pairs`) and a metric in `holmAdjusted`.
    public func holmKey(pair: Int, _ metric: PerUserMetric) -> String { "\(pair)/\(metric.rawValue)" }

    /// CTR (clicks / impressions, user as the unit) of an arm against the control.
    public func ctrComparison(_ arm: Int) -> RatioComparison {
        let c = arms[control], t = arms[arm]
        return RatioComparison(numeratorA: c.perUser(.clicks), denominatorA: c.perUser(.impressions),
                               numeratorB: t.perUser(.clicks), denominatorB: t.perUser(.impressions))
    }

    // MARK: JSON

    /// The results section of report.json.
    public var json: JSONValue {
        let c = arms[control]
        let holm = holmAdjusted
        var armValues: [JSONValue] = []
        for (i, arm) in arms.enumerated() {
            var o: JSONObject = [
                "name": .string(arm.name),
                "control": .bool(i == control),
                "learnsFromOwnTraffic": .bool(scenario.arms[i].learnsFromOwnTraffic),
                "users": .integer(Int64(arm.users)),
                "activeUsers": .integer(Int64(arm.activeUsers)),
                "requests": .integer(Int64(arm.totalRequests)),
                "impressions": .integer(Int64(arm.totalImpressions)),
                "clicks": .integer(Int64(arm.totalClicks)),
                "purchases": .integer(Int64(arm.totalPurchases)),
                "viewSeconds": .number(arm.totalViewSeconds),
                "gmv": .number(arm.totalGMV),
                "ctr": .number(arm.ctr),
                "itemsShown": .integer(Int64(arm.itemsShown)),
                "coverage": .number(Double(arm.itemsShown) / Double(catalogSize)),
                "exposureGini": .number(arm.exposureGini(items: catalogSize)),
                "longTailShare": .number(arm.longTailShare(head: items.head)),
            ]
            let e = scenario.experiment
            // Items whose window ended within the run (none when the run is shorter than a window).
            let firstEligible = max(1, e.warmupTicks)
            let pv = arm.newItemsReaching(e.newItemViews, born: items.born, eligible: firstEligible..<max(firstEligible, scenario.ticks - e.newItemTicks + 1))
            o["newItems"] = [
                "views": .integer(Int64(e.newItemViews)), "ticks": .integer(Int64(e.newItemTicks)),
                "reached": .integer(Int64(pv.reached)), "items": .integer(Int64(pv.items)),
                "share": .number(pv.items > 0 ? Double(pv.reached) / Double(pv.items) : .nan),
            ]
            o["newItemCtr"] = [
                "ticks": .integer(Int64(e.newItemTicks)), "impressions": .integer(Int64(arm.youngImpressions)),
                "clicks": .integer(Int64(arm.youngClicks)), "ctr": .number(arm.youngCTR),
            ]
            o["regret"] = [
                "samples": .integer(Int64(arm.regret.samples)), "mean": .number(arm.regret.mean),
                "standardError": .number(arm.regret.standardError), "shareOfOracle": .number(arm.regret.shareOfOracle),
            ]
            if let s = arm.interestSummary {
                o["interests"] = [
                    "codes": .integer(Int64(s.codes)), "codesInUse": .integer(Int64(s.codesInUse)), "perplexity": .number(s.perplexity),
                    "deadCodes": .integer(Int64(s.deadCodes)), "restarts": .integer(Int64(s.restarts)),
                    "purity": .number(s.purity), "nmi": .number(s.nmi),
                    "firstEngagements": .integer(Int64(arm.firstEngagements)), "discoveries": .integer(Int64(arm.discoveries)),
                    "discoveriesPerUser": .number(Double(arm.discoveries) / Double(max(arm.users, 1))),
                    "trace": .array(arm.interestTrace.map { trace in
                        [
                            "user": .integer(Int64(trace.user)),
                            "top": .array(trace.ticks.map { tick in .array(tick.map { ["code": .integer(Int64($0.code)), "p": .number($0.probability)] }) }),
                        ]
                    }),
                ]
            }
            if i != control && !scenario.isPaired {
                let diff = arm.regret.mean - c.regret.mean
                let se = (arm.regret.standardError * arm.regret.standardError + c.regret.standardError * c.regret.standardError).squareRoot()
                o["regretVsControl"] = [
                    "difference": .number(diff), "low95": .number(diff - z95 * se), "high95": .number(diff + z95 * se),
                ]
            }
            var perUser = JSONObject()
            for metric in PerUserMetric.allCases {
                let e = MeanEstimate(arm.perUser(metric))
                var m: JSONObject = ["mean": .number(e.mean), "standardError": .number(e.standardError)]
                if i != control && !scenario.isPaired {
                    let w = WelchTest(a: c.perUser(metric), b: arm.perUser(metric))
                    let l = RelativeLift(a: c.perUser(metric), b: arm.perUser(metric))
                    m["relativeLiftVsControl"] = [
                        "method": "delta", "estimate": .number(l.lift), "low95": .number(l.low), "high95": .number(l.high),
                        "z": .number(l.z), "pValue": .number(l.pValue),
                    ]
                    m["differenceVsControl"] = [
                        "method": "welch-t",
                        "absolute": .number(w.difference), "low95": .number(w.low), "high95": .number(w.high),
                        "relative": .number(w.meanA == 0 ? .nan : w.difference / w.meanA),
                        "t": .number(w.t), "df": .number(w.degreesOfFreedom), "pValue": .number(w.pValue),
                    ]
                    let cu = cuped(i, metric)
                    if let cu {
                        m["cupedVsControl"] = [
                            "method": "cuped (warm-up value as covariate) + welch-t",
                            "theta": .number(cu.theta),
                            "absolute": .number(cu.adjusted.difference), "low95": .number(cu.adjusted.low), "high95": .number(cu.adjusted.high),
                            "t": .number(cu.adjusted.t), "df": .number(cu.adjusted.degreesOfFreedom), "pValue": .number(cu.adjusted.pValue),
                            "varianceReduction": .number(cu.varianceReduction),
                            "relativeLift": .number(cu.relativeLift.lift), "relativeLow95": .number(cu.relativeLift.low),
                            "relativeHigh95": .number(cu.relativeLift.high),
                        ]
                    }
                    if let pair = pairs.firstIndex(where: { $0 == (i, control) }), let p = holm[holmKey(pair: pair, metric)] {
                        m["pValueHolm"] = .number(p)
                        m["pValueHolmOf"] = .string(cu == nil ? "differenceVsControl" : "cupedVsControl")
                    }
                }
                perUser[metric.rawValue] = .object(m)
            }
            o["perUser"] = .object(perUser)
            if i != control && !scenario.isPaired {
                let r = ctrComparison(i)
                o["ctrVsControl"] = [
                    "method": "delta (ratio of sums, user as unit)", "difference": .number(r.difference), "low95": .number(r.low),
                    "high95": .number(r.high), "pValue": .number(r.pValue), "relativeLift": .number(r.relativeLift),
                    "relativeLow95": .number(r.relativeLow), "relativeHigh95": .number(r.relativeHigh), "relativePValue": .number(r.relativePValue),
                ]
            }
            if i < modelEvaluations.count, !modelEvaluations[i].isEmpty {
                o["model"] = [
                    "progressiveAUC": .array(modelEvaluations[i].map { .number($0.auc) }),
                    "progressiveLogLoss": .array(modelEvaluations[i].map { .number($0.logLoss) }),
                    "samples": .array(modelEvaluations[i].map { .integer(Int64($0.samples)) }),
                ]
            }
            var cumulative = JSONObject()
            for metric in ArmMetrics.charted {
                cumulative[metric.rawValue] = [
                    "mean": .array(arm.cumulative.map { .number($0[metric]!.mean) }),
                    "standardError": .array(arm.cumulative.map { .number($0[metric]!.standardError) }),
                ]
            }
            o["series"] = [
                "requests": .array(arm.series.map { .integer(Int64($0.requests)) }),
                "impressions": .array(arm.series.map { .integer(Int64($0.impressions)) }),
                "clicks": .array(arm.series.map { .integer(Int64($0.clicks)) }),
                "purchases": .array(arm.series.map { .integer(Int64($0.purchases)) }),
                "viewSeconds": .array(arm.series.map { .number($0.viewSeconds) }),
                "gmv": .array(arm.series.map { .number($0.gmv) }),
                "regret": .array(arm.series.map { .number($0.regretSamples > 0 ? $0.regret / Double($0.regretSamples) : .nan) }),
                "cumulativePerUser": .object(cumulative),
            ]
            armValues.append(.object(o))
        }
        var document: JSONObject = [
            "scenario": [
                "name": .string(scenario.name), "description": .string(scenario.description),
                "seed": .integer(Int64(bitPattern: scenario.seed)), "fingerprint": .string(scenario.fingerprint),
                "ticks": .integer(Int64(scenario.ticks)), "users": .integer(Int64(scenario.population.users)),
                "items": .integer(Int64(catalogSize)), "control": .string(arms[control].name),
                "warmupTicks": .integer(Int64(scenario.experiment.warmupTicks)),
                "design": .string(scenario.experiment.design.rawValue),
                "stoppedAfterTick": stoppedAfter.map { .integer(Int64($0)) } ?? .null,
                "stopWhenMetric": scenario.experiment.stopWhen.map { .string($0.metric.rawValue) } ?? .null,
                "metrics": .array(scenario.metrics.map { .string($0.rawValue) }),
            ],
            "messages": .object(JSONObject(messages.keys.sorted().map { (key: $0, value: .integer(Int64(messages[$0]!))) })),
            "arms": .array(armValues),
            "comparisons": .array(pairs.indices.map { comparisonJSON($0, holm: holm) }),
            "offPolicy": .array(offPolicy.map(offPolicyJSON)),
        ]
        // A paired design has every user in every arm: there is no split to check.
        if !scenario.isPaired {
            document["sampleRatio"] = [
                "chiSquare": .number(sampleRatio.chiSquare), "df": .integer(Int64(sampleRatio.degreesOfFreedom)),
                "pValue": .number(sampleRatio.pValue),
            ]
        }
        return .object(document)
    }

    /// One reported pair: per-user metrics, CTR and regret, each with the method used.
    func comparisonJSON(_ index: Int, holm: [String: Double]) -> JSONValue {
        let (t, b) = pairs[index]
        var perUser = JSONObject()
        for metric in PerUserMetric.allCases {
            var o = compare(t, b, metric).json
            o["pValueHolm"] = .number(holm[holmKey(pair: index, metric)] ?? .nan)
            if index < sequential.count, let trace = sequential[index][metric] { o["sequential"] = trace.json }
            perUser[metric.rawValue] = .object(o)
        }
        // Regret is sampled by a hash of (user, sequence), so a paired design's copies
        // sample overlapping slates; the two samples are treated as independent, which
        // overstates the difference's variance when they correlate.
        let (rt, rb) = (arms[t].regret, arms[b].regret)
        let diff = rt.mean - rb.mean
        let se = (rt.standardError * rt.standardError + rb.standardError * rb.standardError).squareRoot()
        return [
            "treatment": .string(arms[t].name), "baseline": .string(arms[b].name),
            "design": .string(scenario.experiment.design.rawValue),
            "perUser": .object(perUser),
            "ctr": .object(compareCTR(t, b).json),
            "regret": ["difference": .number(diff), "low95": .number(diff - z95 * se), "high95": .number(diff + z95 * se)],
        ]
    }

    /// An off-policy comparison: each estimator's interval, the value the target arm
    /// measured, the estimate's bias against it and whether the interval covers it.
    func offPolicyJSON(_ c: OffPolicyComparison) -> JSONValue {
        func reward(_ e: OffPolicyEstimate, measured: (value: Double, standardError: Double)) -> JSONValue {
            var o: JSONObject = ["directMethod": .number(e.directMethod), "meanWeight": .number(e.meanWeight)]
            for (name, i) in [("ips", e.ips), ("snips", e.snips), ("dr", e.doublyRobust)] {
                o[name] = [
                    "estimate": .number(i.estimate), "standardError": .number(i.standardError),
                    "low95": .number(i.low), "high95": .number(i.high),
                    "bias": .number(i.estimate - measured.value),
                    "covers": .bool(i.low <= measured.value && measured.value <= i.high),
                ]
            }
            o["measured"] = ["value": .number(measured.value), "standardError": .number(measured.standardError)]
            return .object(o)
        }
        let target = arms[c.target].topSlot
        return [
            "logging": .string(arms[c.logging].name), "target": .string(arms[c.target].name),
            "unit": "the top slot of a slate", "slates": .integer(Int64(c.clicks.count)),
            "clicks": reward(c.clicks, measured: target.clickRate),
            "viewSeconds": reward(c.viewSeconds, measured: target.viewSecondsRate),
        ]
    }
}

/// A comparison of two arms on one metric as the report gives it: the difference (B minus
/// A) with its interval and p-value, and the relative lift with its interval.
public struct LiftEstimate: Sendable, Equatable {
    public var method: String
    public var difference, low, high, pValue: Double
    /// The difference's standard error (what `pValue` tests).
    public var standardError: Double = .nan
    public var lift, liftLow, liftHigh, liftStandardError: Double
    /// The share of the difference's variance CUPED removed (NaN without CUPED).
    public var varianceReduction: Double

    public init(method: String, difference: Double, low: Double, high: Double, pValue: Double,
                lift: Double, liftLow: Double, liftHigh: Double, liftStandardError: Double, varianceReduction: Double = .nan) {
        (self.method, self.difference, self.low, self.high, self.pValue) = (method, difference, low, high, pValue)
        (self.lift, self.liftLow, self.liftHigh, self.liftStandardError) = (lift, liftLow, liftHigh, liftStandardError)
        self.varianceReduction = varianceReduction
    }

    init(method: String, test: WelchTest, lift: RelativeLift, varianceReduction: Double = .nan) {
        self.init(method: method, difference: test.difference, low: test.low, high: test.high, pValue: test.pValue,
                  lift: lift.lift, liftLow: lift.low, liftHigh: lift.high, liftStandardError: lift.standardError, varianceReduction: varianceReduction)
        standardError = test.standardError
    }

    /// A ratio metric's: the difference's interval, the relative lift's test and interval.
    init(method: String, ratio r: some RatioEstimate) {
        self.init(method: method, difference: r.difference, low: r.low, high: r.high, pValue: r.relativePValue,
                  lift: r.relativeLift, liftLow: r.relativeLow, liftHigh: r.relativeHigh, liftStandardError: r.relativeStandardError)
    }

    init(method: String, test: PairedTest, lift: PairedRelativeLift, varianceReduction: Double = .nan) {
        self.init(method: method, difference: test.difference, low: test.low, high: test.high, pValue: test.pValue,
                  lift: lift.lift, liftLow: lift.low, liftHigh: lift.high, liftStandardError: lift.standardError, varianceReduction: varianceReduction)
        standardError = test.standardError
    }

    /// Width of the relative lift's 95% interval.
    public var liftWidth: Double { liftHigh - liftLow }

    var json: JSONObject {
        var o: JSONObject = [
            "method": .string(method), "absolute": .number(difference), "low95": .number(low), "high95": .number(high),
            "pValue": .number(pValue), "relativeLift": .number(lift), "relativeLow95": .number(liftLow), "relativeHigh95": .number(liftHigh),
        ]
        if !varianceReduction.isNaN { o["varianceReduction"] = .number(varianceReduction) }
        return o
    }
}
