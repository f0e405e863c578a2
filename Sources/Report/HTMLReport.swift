import Foundation
import RecCore

/// `report.html`: one self-contained page (inline CSS and SVG, no scripts, nothing
/// fetched) with the results table, a forest plot of the lifts, and each metric over ticks
/// per arm with its 95% band.
public enum HTMLReport {
    public static func html(_ report: ReportDocument) -> String {
        let table = ResultsTable(report)
        let arms = report.arms
        let colors = arms.indices.map { SVGChart.palette[$0 % SVGChart.palette.count] }
        let warmup = report.warmupTicks
        var body = "<h1>\(escape(table.title))</h1>\n"
        if let description = report.scenario["description"]?.stringValue, !description.isEmpty {
            body += "<p class=\"question\">\(escape(description))</p>\n"
        }

        body += "<h2>Results</h2>\n<table>\n<thead><tr>" + table.header.map { "<th>\(escape($0))</th>" }.joined() + "</tr></thead>\n<tbody>\n"
        for row in table.rows {
            body += "<tr>" + row.enumerated().map { i, cell in
                let tone = cell.tone == .better ? " class=\"better\"" : cell.tone == .worse ? " class=\"worse\"" : ""
                return i == 0 ? "<th>\(escape(cell.text))</th>" : "<td\(tone)>\(escape(cell.text))</td>"
            }.joined() + "</tr>\n"
        }
        body += "</tbody>\n</table>\n" + table.notes.map { "<p class=\"note\">\(escape($0))</p>\n" }.joined()

        if table.offPolicy.count > 1 {
            body += "<h2>Off-policy estimates</h2>\n<p class=\"note\">Each policy's top-slot click rate estimated from another arm's log (same candidates and scores), against what its own arm measured.</p>\n<table>\n<thead><tr>"
                + table.offPolicy[0].map { "<th>\(escape($0))</th>" }.joined() + "</tr></thead>\n<tbody>\n"
            for row in table.offPolicy.dropFirst() {
                body += "<tr>" + row.enumerated().map { i, cell in i == 0 ? "<th>\(escape(cell))</th>" : "<td>\(escape(cell))</td>" }.joined() + "</tr>\n"
            }
            body += "</tbody>\n</table>\n"
        }

        // Forest plot: each reported pair's lift on each per-user metric and CTR.
        var forest: [(label: String, color: String, estimate: Double, low: Double, high: Double)] = []
        let pairs = report.comparisons
        let pairName = { (t: Int, b: Int) in pairs.count == report.treatments.count && b == report.controlIndex ? report.name(t) : "\(report.name(t)) vs \(report.name(b))" }
        for (label, key) in [("view seconds / user", "viewSeconds"), ("GMV / user", "gmv"), ("clicks / user", "clicks"), ("purchases / user", "purchases")] {
            for (t, b, c) in pairs {
                let m = c["perUser"]?[key]
                forest.append(("\(label), \(pairName(t, b))", colors[t], number(m?["relativeLift"]), number(m?["relativeLow95"]), number(m?["relativeHigh95"])))
            }
        }
        for (t, b, c) in pairs {
            let r = c["ctr"]
            forest.append(("CTR, \(pairName(t, b))", colors[t], number(r?["relativeLift"]), number(r?["relativeLow95"]), number(r?["relativeHigh95"])))
        }
        if !forest.isEmpty {
            let allVsControl = pairs.allSatisfy { $0.baseline == report.controlIndex }
            body += "<h2>Lifts\(allVsControl ? " over \(escape(report.name(report.controlIndex)))" : "")</h2>\n" + SVGChart.forest(forest) + "\n"
        }

        // Each pair's lift on the deciding metric after every tick: the fixed-horizon interval
        // (valid at one planned look) inside the confidence sequence (valid at all of them).
        let decidingKey = report.scenario["stopWhenMetric"]?.stringValue ?? "viewSeconds"
        for (t, b, c) in pairs {
            guard let trace = c["perUser"]?[decidingKey]?["sequential"] else { continue }
            let ticks = numbers(trace["ticks"]).map { Int($0) }
            guard let last = ticks.last else { continue }
            func padded(_ key: String) -> [Double] {
                var out = [Double](repeating: .nan, count: last + 1)
                for (i, v) in zip(ticks, numbers(trace[key])) { out[i] = v }
                return out
            }
            let lift = padded("lift")
            let lines = [
                SVGChart.Line(name: "95% confidence sequence", color: "#9467bd", values: lift, low: padded("sequenceLow95"), high: padded("sequenceHigh95")),
                SVGChart.Line(name: "fixed-horizon 95% interval", color: colors[t], values: lift, low: padded("low95"), high: padded("high95")),
                SVGChart.Line(name: "no effect", color: "#7f7f7f", values: [Double](repeating: 0, count: last + 1)),
            ]
            let decided = integer(trace["firstTickDecided"]).map { "decided at tick \($0)" } ?? "not decided"
            let peeked = integer(trace["firstTickExcludingZero"]).map { "; the fixed-horizon interval first excluded 0 at tick \($0)" } ?? ""
            body += "<h3>\(escape(report.name(t))) vs \(escape(report.name(b))): lift in \(escape(decidingKey)) after every tick (\(decided)\(peeked))</h3>\n"
                + SVGChart.lines(lines, warmup: warmup, percent: true) + "\n"
        }

        body += "<h2>Over the run</h2>\n"
        let since = warmup > 0 ? " since the split (in the warm-up: since the start)" : " so far"
        for (title, key) in [("View seconds per user", "viewSeconds"), ("GMV per user", "gmv"), ("Clicks per user", "clicks")] {
            let lines = arms.indices.map { i in
                let c = arms[i]["series"]?["cumulativePerUser"]?[key]
                let mean = numbers(c?["mean"]), se = numbers(c?["standardError"])
                let ok = mean.count == se.count
                return SVGChart.Line(name: report.name(i), color: colors[i], values: mean,
                                     low: ok ? zip(mean, se).map { $0 - 1.959963984540054 * $1 } : [],
                                     high: ok ? zip(mean, se).map { $0 + 1.959963984540054 * $1 } : [])
            }
            body += "<h3>\(title)\(since), with 95% bands</h3>\n" + SVGChart.lines(lines, warmup: warmup) + "\n"
        }
        let ctr = arms.indices.map { i in
            let clicks = numbers(arms[i]["series"]?["clicks"]), impressions = numbers(arms[i]["series"]?["impressions"])
            return SVGChart.Line(name: report.name(i), color: colors[i],
                                 values: zip(clicks, impressions).map { $1 > 0 ? $0 / $1 : .nan })
        }
        body += "<h3>CTR in each tick</h3>\n" + SVGChart.lines(ctr, warmup: warmup, percent: true) + "\n"
        let regret = arms.indices.map { SVGChart.Line(name: report.name($0), color: colors[$0], values: numbers(arms[$0]["series"]?["regret"])) }
        if regret.contains(where: { $0.values.contains(where: \.isFinite) }) {
            body += "<h3>Regret against the oracle in each tick (expected clicks lost per sampled slate)</h3>\n" + SVGChart.lines(regret, warmup: warmup) + "\n"
        }
        // SPARC: how a few users' interest distributions evolved (their top codes each tick).
        for i in arms.indices {
            guard case .array(let traces)? = arms[i]["interests"]?["trace"], !traces.isEmpty else { continue }
            body += "<h3>\(escape(report.name(i))): how users' interests evolved (probability of each interest, #code, while it was among their top 3)</h3>\n"
            for trace in traces.prefix(3) {
                guard case .array(let ticks)? = trace["top"] else { continue }
                var codes: [Int] = []
                for t in ticks { if case .array(let top) = t { for e in top { if let c = integer(e["code"]), !codes.contains(c) { codes.append(c) } } } }
                let lines = codes.prefix(8).enumerated().map { n, code in
                    SVGChart.Line(name: "#\(code)", color: SVGChart.palette[n % SVGChart.palette.count], values: ticks.map { t -> Double in
                        guard case .array(let top) = t else { return .nan }
                        return top.first { integer($0["code"]) == code }.map { number($0["p"]) } ?? .nan
                    })
                }
                body += "<p class=\"note\">user \(integerText(trace["user"]))</p>\n" + SVGChart.lines(lines, warmup: warmup) + "\n"
            }
        }
        let models = arms.indices.filter { arms[$0]["model"] != nil }
        if !models.isEmpty {
            let auc = models.map { SVGChart.Line(name: report.name($0), color: colors[$0], values: numbers(arms[$0]["model"]?["progressiveAUC"])) }
            body += "<h3>Model AUC in each tick (scored before learning from it)</h3>\n" + SVGChart.lines(auc, warmup: warmup) + "\n"
        }

        if let run = report.root["run"] {
            body += "<h2>Run</h2>\n<p class=\"note\">Brokers: \(escape(run["brokers"]?.stringValue ?? "?")), "
                + "\(integerText(run["partitions"])) partition(s); world built in \(String(format: "%.2f", number(run["populationSeconds"]))) s, "
                + "run \(String(format: "%.2f", number(run["runSeconds"]))) s (\(String(format: "%.0f", number(run["messagesPerSecond"]))) messages/s). "
                + "Timings vary between runs; everything above is a function of the scenario and its seed.</p>\n"
            if case .array(let latency)? = run["serveLatencyMicroseconds"], !latency.isEmpty {
                body += "<table>\n<thead><tr><th>serving latency (µs)</th><th>requests</th><th>p50</th><th>p99</th><th>p99.9</th><th>max</th></tr></thead>\n<tbody>\n"
                for l in latency {
                    body += "<tr><th>\(escape(l["arm"]?.stringValue ?? "?"))</th><td>\(integerText(l["requests"]))</td>"
                        + ["p50", "p99", "p999", "max"].map { "<td>\(formatNumber(number(l[$0])))</td>" }.joined() + "</tr>\n"
                }
                body += "</tbody>\n</table>\n"
            }
        }
        return """
            <!DOCTYPE html>
            <html lang="en">
            <head>
            <meta charset="utf-8">
            <title>\(escape(table.title))</title>
            <style>
            body { font: 14px/1.45 system-ui, sans-serif; max-width: 980px; margin: 2em auto; padding: 0 1em; color: #222; }
            h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 2em; } h3 { font-size: 1em; font-weight: 600; }
            table { border-collapse: collapse; font-variant-numeric: tabular-nums; }
            th, td { padding: 3px 10px; border-bottom: 1px solid #ddd; text-align: right; white-space: nowrap; }
            th:first-child { text-align: left; }
            td.better { color: #1a7f37; font-weight: 600; } td.worse { color: #c62828; font-weight: 600; }
            .note { color: #555; font-size: 0.92em; } .question { font-style: italic; }
            svg { display: block; margin: 0.5em 0 1.5em; font: 11px system-ui, sans-serif; }
            svg .note { fill: #666; }
            </style>
            </head>
            <body>
            \(body)</body>
            </html>

            """
    }
}
