import Foundation
import RecCore

/// The results table: one column per arm, one row per metric, then each treatment's lift
/// over the control with its interval. Built as a grid of cells, which the terminal
/// (`text`) and the HTML page (`HTMLReport`) lay out each in their own way.
public struct ResultsTable: Sendable {
    public struct Cell: Sendable, Equatable {
        public enum Tone: Sendable { case plain, better, worse }
        public var text: String
        /// A lift whose 95% interval excludes 0 is `better` or `worse`.
        public var tone: Tone = .plain
    }

    public var title: String
    public var header: [String]
    public var rows: [[Cell]]
    public var notes: [String]
    /// Off-policy estimates of each evaluated policy's top-slot click rate: a header row
    /// and one row per (target, logging arm); empty when none were evaluated.
    public var offPolicy: [[String]]

    /// Rows in display order: label, the key in each arm's `perUser` (per-user metrics)
    /// or the arm-level key, and the scenario metric that shows it.
    static let layout: [(label: String, key: String, metric: String, perUser: Bool)] = [
        ("view seconds / user", "viewSeconds", "viewSeconds", true),
        ("GMV / user", "gmv", "gmv", true),
        ("clicks / user", "clicks", "clicks", true),
        ("impressions / user", "impressions", "impressions", true),
        ("purchases / user", "purchases", "purchases", true),
        ("active ticks / user", "activeTicks", "activeTicks", true),
        ("CTR", "ctr", "ctr", false),
        ("catalog coverage", "coverage", "coverage", false),
        ("regret (clicks/slate)", "regret", "regret", false),
        ("new items reaching N", "newItems", "newItems", false),
        ("CTR of new items", "newItemCtr", "newItemCtr", false),
        ("exposure Gini", "exposureGini", "exposureGini", false),
        ("long-tail share", "longTailShare", "longTailShare", false),
    ]

    public init(_ report: ReportDocument) {
        let arms = report.arms, control = report.controlIndex, comparisons = report.comparisons
        let s = report.scenario
        let shown = Set((s["metrics"].flatMap { v -> [String]? in
            guard case .array(let a) = v else { return nil }
            return a.compactMap(\.stringValue)
        }) ?? Self.layout.map(\.metric))
        title = "\(s["name"]?.stringValue ?? "scenario"): seed \(s["seed"].map { $0.rendered(pretty: false) } ?? "?"), \(report.ticks) ticks, "
            + "\(integerText(s["users"])) users, \(integerText(s["items"])) items"
        header = ["metric"] + arms.indices.map { $0 == control ? "\(report.name($0)) (control)" : report.name($0) }
            + comparisons.map { "\(report.name($0.treatment)) vs \(report.name($0.baseline)) (95% CI)" }

        var rows: [[Cell]] = []
        rows.append([Cell(text: "users")] + arms.map { Cell(text: integerText($0["users"])) } + comparisons.map { _ in Cell(text: "") })
        for row in Self.layout where shown.contains(row.metric) {
            var label = row.label
            if row.key == "newItems", let n = arms.first?["newItems"] {
                label = "new items reaching \(integerText(n["views"])) clicks in \(integerText(n["ticks"])) ticks"
            }
            if row.key == "regret" && arms.allSatisfy({ integer($0["regret"]?["samples"]) ?? 0 == 0 }) { continue }
            if row.key == "newItemCtr" {
                // Only where new items were shown (a world without arrivals has none).
                guard arms.contains(where: { integer($0["newItemCtr"]?["impressions"]) ?? 0 > 0 }) else { continue }
                if let n = arms.first?["newItemCtr"] { label = "CTR of new items (< \(integerText(n["ticks"])) ticks old)" }
            }
            var cells = [Cell(text: label)]
            for arm in arms {
                if row.key == "regret" {
                    let r = arm["regret"]
                    cells.append(Cell(text: "\(formatNumber(number(r?["mean"]))) ± \(formatNumber(1.959963984540054 * number(r?["standardError"])))"))
                } else if row.key == "newItems" {
                    let n = arm["newItems"]
                    cells.append(Cell(text: "\(formatPercent(number(n?["share"]))) (\(integerText(n?["reached"]))/\(integerText(n?["items"])))"))
                } else if row.key == "exposureGini" {
                    cells.append(Cell(text: String(format: "%.3f", number(arm[row.key]))))
                } else if row.key == "newItemCtr" {
                    let n = arm["newItemCtr"]
                    cells.append(Cell(text: "\(formatPercent(number(n?["ctr"]))) (\(integerText(n?["clicks"]))/\(integerText(n?["impressions"])))"))
                } else if row.perUser {
                    let m = arm["perUser"]?[row.key]
                    cells.append(Cell(text: "\(formatNumber(number(m?["mean"]))) ± \(formatNumber(1.959963984540054 * number(m?["standardError"])))"))
                } else {
                    cells.append(Cell(text: formatPercent(number(arm[row.key]))))
                }
            }
            for (t, b, comparison) in comparisons {
                let arm = arms[t], base = arms[b]
                if row.perUser {
                    let m = comparison["perUser"]?[row.key]
                    cells.append(Self.lift(number(m?["relativeLift"]), number(m?["relativeLow95"]), number(m?["relativeHigh95"])))
                } else if row.key == "regret" {
                    // Less regret is better: tone by the sign of the difference.
                    let d = comparison["regret"]
                    let (diff, low, high) = (number(d?["difference"]), number(d?["low95"]), number(d?["high95"]))
                    let text = diff.isFinite ? String(format: "%+.3f [%+.3f, %+.3f]", diff, low, high) : "n/a"
                    cells.append(Cell(text: text, tone: high < 0 ? .better : low > 0 ? .worse : .plain))
                } else if row.key == "newItems" {
                    let v = number(arm["newItems"]?["share"]), b = number(base["newItems"]?["share"])
                    cells.append(Cell(text: v.isFinite && b.isFinite ? String(format: "%+.1f points", 100 * (v - b)) : ""))
                } else if row.key == "exposureGini" {
                    let v = number(arm[row.key]), b = number(base[row.key])
                    cells.append(Cell(text: v.isFinite && b.isFinite ? String(format: "%+.3f", v - b) : ""))
                } else if row.key == "newItemCtr" {
                    let v = number(arm["newItemCtr"]?["ctr"]), b = number(base["newItemCtr"]?["ctr"])
                    cells.append(Cell(text: v.isFinite && b.isFinite && b > 0 ? formatSignedPercent(v / b - 1) : ""))
                } else if row.key == "ctr" {
                    let r = comparison["ctr"]
                    cells.append(Self.lift(number(r?["relativeLift"]), number(r?["relativeLow95"]), number(r?["relativeHigh95"])))
                } else {
                    let v = number(arm[row.key]), b = number(base[row.key])
                    cells.append(Cell(text: b == 0 || b.isNaN ? "" : formatSignedPercent(v / b - 1)))
                }
            }
            rows.append(cells)
        }
        if arms.contains(where: { $0["interests"] != nil }) {
            rows.append([Cell(text: "interests discovered / user")] + arms.map { a in
                Cell(text: a["interests"].map { String(format: "%.3f", number($0["discoveriesPerUser"])) } ?? "-")
            } + comparisons.map { _ in Cell(text: "") })
            rows.append([Cell(text: "interest codes: purity / NMI")] + arms.map { a in
                Cell(text: a["interests"].map { String(format: "%.2f / %.2f", number($0["purity"]), number($0["nmi"])) } ?? "-")
            } + comparisons.map { _ in Cell(text: "") })
        }
        let auc = arms.map { Self.settledAUC($0["model"]) }
        if auc.contains(where: { $0 != nil }) {
            rows.append([Cell(text: "model AUC (progressive)")] + auc.map { Cell(text: $0.map { String(format: "%.3f", $0) } ?? "-") }
                        + comparisons.map { _ in Cell(text: "") })
        }
        self.rows = rows

        var notes = ["± is a 95% interval of the per-user mean. Lifts are each pair's first arm over its second, with 95% delta-method intervals (CTR as a ratio metric, the user as the unit)."]
        if report.isPaired {
            let from = report.warmupTicks > 0 ? "after a shared warm-up of \(report.warmupTicks) ticks" : "from the first tick"
            notes.append("Design: paired. Every arm served its own copy of all \(integerText(s["users"])) users, \(from), on common random numbers (the same draws at the same tick in every copy); intervals are on each user's difference between copies, so user-to-user noise cancels. The run simulated \(arms.count) populations.")
        }
        var offPolicy: [[String]] = []
        if case .array(let comparisons)? = report.results["offPolicy"], !comparisons.isEmpty {
            offPolicy.append(["policy of", "from the log of", "slates", "mean weight", "measured", "IPS (95% CI)", "SNIPS (95% CI)", "DR (95% CI)", "DR covers"])
            for c in comparisons {
                let clicks = c["clicks"]
                func cell(_ key: String) -> String {
                    let e = clicks?[key]
                    return "\(formatPercent(number(e?["estimate"]))) [\(formatPercent(number(e?["low95"]))), \(formatPercent(number(e?["high95"])))]"
                }
                let measured = clicks?["measured"]
                offPolicy.append([
                    c["target"]?.stringValue ?? "?", c["logging"]?.stringValue ?? "?", integerText(c["slates"]),
                    String(format: "%.3f", number(clicks?["meanWeight"])),
                    "\(formatPercent(number(measured?["value"]))) ± \(formatPercent(1.959963984540054 * number(measured?["standardError"])))",
                    cell("ips"), cell("snips"), cell("dr"),
                    clicks?["dr"]?["covers"] == .bool(true) ? "yes" : "no",
                ])
            }
        }
        self.offPolicy = offPolicy
        if arms.contains(where: { $0["interests"] != nil }) {
            notes.append("Interests discovered: a user's first click in an interest whose probability was below the arm's discoveryBelow when served. Purity and NMI: the items' level-0 codes at the end against the world's true topics.")
        }
        if auc.contains(where: { $0 != nil }) {
            notes.append("Model AUC: how the arm's ranking model (a blend's: its sequence model) ranked each tick's impressions before learning from them, over the last half of the run.")
        }
        let warmup = report.warmupTicks
        if warmup > 0 {
            let reductions = comparisons.map { number($0.value["perUser"]?["viewSeconds"]?["varianceReduction"]) }.filter(\.isFinite)
            let reduction = reductions.isEmpty ? "" : String(format: " (variance of the view-seconds difference down %.0f%%)", 100 * reductions.reduce(0, +) / Double(reductions.count))
            notes.append("Per-user metrics count ticks \(warmup)-\(report.ticks - 1); lifts are CUPED-adjusted by each user's warm-up ticks 0-\(warmup - 1)\(reduction).")
        }
        if arms.contains(where: { $0["learnsFromOwnTraffic"] == .bool(true) }) {
            notes.append("Arms that learn from their own traffic also differ by the chance path of what they learned; these intervals count user-to-user noise only. `recstream run --seeds N` shows how results spread over seeds.")
        }
        let srm = number(report.results["sampleRatio"]?["pValue"])
        if srm < 0.001 {
            notes.append("WARNING: sample ratio mismatch (chi-square p = \(String(format: "%.2g", srm))): users are not split as the shares say; do not trust the lifts.")
        } else if !srm.isNaN {
            notes.append("Users per arm match the shares (sample-ratio chi-square p = \(String(format: "%.2f", srm))). p-values, Holm-adjusted across pairs and metrics, are in report.json.")
        } else if report.isPaired {
            notes.append("p-values, Holm-adjusted across pairs and metrics, are in report.json.")
        }
        if let stopped = integer(s["stoppedAfterTick"]) {
            notes.append("Stopped after tick \(stopped) by experiment.stopWhen: the lift's 95% confidence sequence excluded 0 (the sequence is valid at every tick, so stopping on it keeps its 95%; the fixed-horizon intervals above were not built for a look chosen by the data).")
        }
        let dead = integer(report.results["messages"]?["deadLetters"]) ?? 0
        if dead > 0 { notes.append("\(dead) messages did not decode and went to the dead-letter topic.") }
        self.notes = notes
    }

    /// "+12.3% [+5.0%, +19.6%]", toned when the interval excludes 0.
    static func lift(_ lift: Double, _ low: Double, _ high: Double) -> Cell {
        let text = "\(formatSignedPercent(lift)) [\(formatSignedPercent(low)), \(formatSignedPercent(high))]"
        guard low > 0 || high < 0 else { return Cell(text: text) }
        return Cell(text: text, tone: lift > 0 ? .better : .worse)
    }

    /// Progressive AUC over the last half of the run's ticks (the model's settled
    /// quality), weighted by each tick's samples.
    static func settledAUC(_ model: JSONValue?) -> Double? {
        let auc = numbers(model?["progressiveAUC"]), samples = numbers(model?["samples"])
        guard !auc.isEmpty, auc.count == samples.count else { return nil }
        let from = auc.count - max(1, auc.count / 2)
        var total = 0.0, weighted = 0.0
        for i in from..<auc.count where !auc[i].isNaN {
            total += samples[i]
            weighted += auc[i] * samples[i]
        }
        return total > 0 ? weighted / total : nil
    }

    /// The table as the terminal shows it, with ANSI colours for lifts when `color` is true.
    public func text(color: Bool) -> String {
        func shown(_ c: Cell) -> String {
            guard color else { return c.text }
            switch c.tone {
            case .plain: return c.text
            case .better: return "\u{1B}[32m" + c.text + "\u{1B}[0m"
            case .worse: return "\u{1B}[31m" + c.text + "\u{1B}[0m"
            }
        }
        var out = title + "\n\n"
        out += alignedTable([header] + rows.map { $0.map(\.text) }, shown: [header] + rows.map { $0.map(shown) })
        out += "\n" + notes.map { $0 + "\n" }.joined()
        if !offPolicy.isEmpty {
            out += "\nOff-policy: each policy's top-slot click rate estimated from another arm's log (same candidates and scores), against what its own arm measured:\n\n"
            out += alignedTable(offPolicy, leftAligned: 2)
            out += "\nThe estimates read the logging arm's learned state; the measured value comes from the target arm's own, so a miss can be the two arms' learning diverging as well as the estimator. "
                + "A mean weight far from 1 flags propensities that are off (Thompson's are estimated; few propensitySamples overstate small ones, and IPS then reads low; SNIPS corrects for it). View seconds: offPolicy in report.json.\n"
        }
        return out
    }
}

func formatNumber(_ x: Double) -> String {
    guard x.isFinite else { return "n/a" }
    if abs(x) >= 1000 { return String(format: "%.0f", x) }
    if abs(x) >= 10 { return String(format: "%.1f", x) }
    return String(format: "%.3f", x)
}

func formatPercent(_ x: Double) -> String { x.isFinite ? String(format: "%.2f%%", x * 100) : "n/a" }

func formatSignedPercent(_ x: Double) -> String { x.isFinite ? String(format: "%+.1f%%", x * 100) : "n/a" }
