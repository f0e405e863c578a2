import Foundation
import RecCore
import Scenario

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

    public init(scenario: Scenario, arms: [ArmMetrics], catalogSize: Int, modelEvaluations: [[TickEvaluation]] = [], messages: [String: Int]) {
        self.scenario = scenario
        self.arms = arms
        self.catalogSize = catalogSize
        self.modelEvaluations = modelEvaluations
        self.messages = messages
    }

    /// Progressive AUC over the last half of the run's ticks (the model's settled quality).
    func settledAUC(_ arm: Int) -> Double? {
        guard arm < modelEvaluations.count, !modelEvaluations[arm].isEmpty else { return nil }
        let e = modelEvaluations[arm].suffix(max(1, modelEvaluations[arm].count / 2)).filter { !$0.auc.isNaN }
        let total = e.reduce(0) { $0 + $1.samples }
        guard total > 0 else { return nil }
        return e.reduce(0.0) { $0 + $1.auc * Double($1.samples) } / Double(total)
    }

    public var control: Int { scenario.controlArm }

    /// A row of the comparison: per-user metrics get a mean, a standard error and a
    /// difference with the control; ratios (CTR, coverage) get their value.
    struct Row {
        var label: String
        var metric: Metric
        var perUser: PerUserMetric?
        var value: (ArmMetrics) -> Double
    }

    var rows: [Row] {
        let all: [Row] = [
            Row(label: "view seconds / user", metric: .viewSeconds, perUser: .viewSeconds) { MeanEstimate($0.perUser(.viewSeconds)).mean },
            Row(label: "GMV / user", metric: .gmv, perUser: .gmv) { MeanEstimate($0.perUser(.gmv)).mean },
            Row(label: "clicks / user", metric: .clicks, perUser: .clicks) { MeanEstimate($0.perUser(.clicks)).mean },
            Row(label: "impressions / user", metric: .impressions, perUser: .impressions) { MeanEstimate($0.perUser(.impressions)).mean },
            Row(label: "purchases / user", metric: .purchases, perUser: .purchases) { MeanEstimate($0.perUser(.purchases)).mean },
            Row(label: "CTR", metric: .ctr, perUser: nil) { $0.ctr },
            Row(label: "catalog coverage", metric: .coverage, perUser: nil) { [catalogSize] in Double($0.itemsShown) / Double(catalogSize) },
        ]
        return all.filter { scenario.metrics.contains($0.metric) }
    }

    /// Are users split across arms as the shares say?
    public var sampleRatio: SampleRatioCheck {
        SampleRatioCheck(counts: arms.map(\.users), shares: scenario.arms.map(\.share))
    }

    /// CUPED for a treatment arm against the control, with each user's warm-up value of
    /// the metric as covariate; nil when the run had no warm-up.
    func cuped(_ arm: Int, _ metric: PerUserMetric) -> Cuped? {
        guard let xA = arms[control].covariate(metric), let xB = arms[arm].covariate(metric) else { return nil }
        return Cuped(yA: arms[control].perUser(metric), xA: xA, yB: arms[arm].perUser(metric), xB: xB)
    }

    /// The p-value the report leads with: CUPED's when the run had a warm-up, else Welch's.
    func pValue(_ arm: Int, _ metric: PerUserMetric) -> Double {
        cuped(arm, metric)?.adjusted.pValue ?? WelchTest(a: arms[control].perUser(metric), b: arms[arm].perUser(metric)).pValue
    }

    /// Holm-adjusted p-values of every treatment arm x per-user metric comparison, keyed
    /// "arm/metric" (one family: all the lifts the report shows).
    var holmAdjusted: [String: Double] {
        var keys: [String] = [], p: [Double] = []
        for (i, arm) in arms.enumerated() where i != control {
            for metric in PerUserMetric.allCases {
                keys.append("\(arm.name)/\(metric.rawValue)")
                p.append(pValue(i, metric))
            }
        }
        return Dictionary(uniqueKeysWithValues: zip(keys, MultipleTesting.holm(p)))
    }

    /// CTR (clicks / impressions, user as the unit) of an arm against the control.
    func ctrComparison(_ arm: Int) -> RatioComparison {
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
            ]
            var perUser = JSONObject()
            for metric in PerUserMetric.allCases {
                let e = MeanEstimate(arm.perUser(metric))
                var m: JSONObject = ["mean": .number(e.mean), "standardError": .number(e.standardError)]
                if i != control {
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
                    if let cu = cuped(i, metric) {
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
                    m["pValueHolm"] = .number(holm["\(arm.name)/\(metric.rawValue)"] ?? .nan)
                    m["pValueHolmOf"] = .string(cuped(i, metric) == nil ? "differenceVsControl" : "cupedVsControl")
                }
                perUser[metric.rawValue] = .object(m)
            }
            o["perUser"] = .object(perUser)
            if i != control {
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
            o["series"] = [
                "requests": .array(arm.series.map { .integer(Int64($0.requests)) }),
                "clicks": .array(arm.series.map { .integer(Int64($0.clicks)) }),
                "viewSeconds": .array(arm.series.map { .number($0.viewSeconds) }),
                "gmv": .array(arm.series.map { .number($0.gmv) }),
            ]
            armValues.append(.object(o))
        }
        return [
            "scenario": [
                "name": .string(scenario.name), "seed": .integer(Int64(bitPattern: scenario.seed)),
                "ticks": .integer(Int64(scenario.ticks)), "users": .integer(Int64(scenario.population.users)),
                "items": .integer(Int64(catalogSize)), "control": .string(arms[control].name),
                "warmupTicks": .integer(Int64(scenario.experiment.warmupTicks)),
            ],
            "messages": .object(JSONObject(messages.keys.sorted().map { (key: $0, value: .integer(Int64(messages[$0]!))) })),
            "sampleRatio": [
                "chiSquare": .number(sampleRatio.chiSquare), "df": .integer(Int64(sampleRatio.degreesOfFreedom)),
                "pValue": .number(sampleRatio.pValue),
            ],
            "arms": .array(armValues),
        ]
    }

    // MARK: Terminal table

    /// "+12.3% [+5.0%, +19.6%]", green or red when the interval excludes 0.
    func liftCell(_ lift: Double, _ low: Double, _ high: Double, color: Bool) -> String {
        let text = "\(signedPercent(lift)) [\(signedPercent(low)), \(signedPercent(high))]"
        guard color, low > 0 || high < 0 else { return text }
        return (lift > 0 ? "\u{1B}[32m" : "\u{1B}[31m") + text + "\u{1B}[0m"
    }

    /// The results table, with ANSI colours for lifts when `color` is true.
    public func table(color: Bool) -> String {
        let c = arms[control]
        var header = ["metric"] + arms.enumerated().map { $0 == control ? "\($1.name) (control)" : $1.name }
        let treatments = arms.indices.filter { $0 != control }
        header += treatments.map { "\(arms[$0].name) vs control (95% CI)" }
        var lines: [[String]] = [header]
        lines.append(["users"] + arms.map { "\($0.users)" } + treatments.map { _ in "" })
        for row in rows {
            var cells = [row.label]
            for arm in arms {
                if let pu = row.perUser {
                    let e = MeanEstimate(arm.perUser(pu))
                    cells.append("\(number(e.mean)) ± \(number(1.959963984540054 * e.standardError))")
                } else {
                    cells.append(percent(row.value(arm)))
                }
            }
            for t in treatments {
                if let pu = row.perUser {
                    let l = cuped(t, pu)?.relativeLift ?? RelativeLift(a: c.perUser(pu), b: arms[t].perUser(pu))
                    cells.append(liftCell(l.lift, l.low, l.high, color: color))
                } else if row.metric == .ctr {
                    let r = ctrComparison(t)
                    cells.append(liftCell(r.relativeLift, r.relativeLow, r.relativeHigh, color: color))
                } else {
                    let v = row.value(arms[t]), b = row.value(c)
                    cells.append(b == 0 ? "" : signedPercent(v / b - 1))
                }
            }
            lines.append(cells)
        }
        if arms.indices.contains(where: { settledAUC($0) != nil }) {
            lines.append(["model AUC (progressive)"] + arms.indices.map { a in settledAUC(a).map { String(format: "%.3f", $0) } ?? "-" }
                         + treatments.map { _ in "" })
        }
        let widths = (0..<header.count).map { col in lines.map { visibleWidth($0[col]) }.max()! }
        var out = "\(scenario.name): seed \(scenario.seed), \(scenario.ticks) ticks, \(scenario.population.users) users, \(catalogSize) items\n\n"
        for (i, line) in lines.enumerated() {
            out += zip(line, widths).enumerated().map { col, pair in
                let pad = String(repeating: " ", count: pair.1 - visibleWidth(pair.0))
                return col == 0 ? pair.0 + pad : pad + pair.0
            }.joined(separator: "   ").trimmingTrailingSpaces() + "\n"
            if i == 0 { out += widths.map { String(repeating: "-", count: $0) }.joined(separator: "   ") + "\n" }
        }
        out += "\n± is a 95% interval of the per-user mean. Lifts are relative to \(c.name), with 95% delta-method intervals (CTR as a ratio metric, the user as the unit).\n"
        let warmup = scenario.experiment.warmupTicks
        if warmup > 0 {
            let reductions = treatments.compactMap { t in cuped(t, .viewSeconds)?.varianceReduction }.filter(\.isFinite)
            let reduction = reductions.isEmpty ? "" : String(format: " (variance of the view-seconds difference down %.0f%%)", 100 * reductions.reduce(0, +) / Double(reductions.count))
            out += "Per-user metrics count ticks \(warmup)-\(scenario.ticks - 1); lifts are CUPED-adjusted by each user's warm-up ticks 0-\(warmup - 1)\(reduction).\n"
        }
        if arms.indices.contains(where: { settledAUC($0) != nil }) {
            out += "Model AUC: how the arm's sequence model ranked each tick's impressions before learning from them, over the last half of the run.\n"
        }
        let srm = sampleRatio
        if srm.pValue < 0.001 {
            out += "WARNING: sample ratio mismatch (chi-square p = \(String(format: "%.2g", srm.pValue))): users are not split as the shares say; do not trust the lifts.\n"
        } else if !srm.pValue.isNaN {
            out += "Users per arm match the shares (sample-ratio chi-square p = \(String(format: "%.2f", srm.pValue))). p-values, Holm-adjusted across arms and metrics, are in report.json.\n"
        }
        let dead = messages["deadLetters"] ?? 0
        if dead > 0 { out += "\(dead) messages did not decode and went to the dead-letter topic.\n" }
        return out
    }
}

func number(_ x: Double) -> String {
    guard x.isFinite else { return "n/a" }
    if abs(x) >= 1000 { return String(format: "%.0f", x) }
    if abs(x) >= 10 { return String(format: "%.1f", x) }
    return String(format: "%.3f", x)
}

func percent(_ x: Double) -> String { x.isFinite ? String(format: "%.2f%%", x * 100) : "n/a" }

func signedPercent(_ x: Double) -> String { x.isFinite ? String(format: "%+.1f%%", x * 100) : "n/a" }

extension String {
    func trimmingTrailingSpaces() -> String {
        var s = self
        while s.hasSuffix(" ") { s.removeLast() }
        return s
    }
}

func visibleWidth(_ s: String) -> Int {
    // ANSI colour sequences take no columns.
    var width = 0, escaping = false
    for ch in s {
        if ch == "\u{1B}" { escaping = true } else if escaping { if ch == "m" { escaping = false } } else { width += 1 }
    }
    return width
}
