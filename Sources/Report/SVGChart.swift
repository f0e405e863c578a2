import Foundation

/// Small inline SVG charts for the HTML report: lines over ticks with interval bands, and a
/// forest plot of lifts. Plain strings, no scripts, so the page works offline and prints.
struct SVGChart {
    struct Line {
        var name: String
        var color: String
        var values: [Double]
        /// Lower and upper edge of a band around the line (empty: none).
        var low: [Double] = []
        var high: [Double] = []
    }

    static let palette = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22"]

    static let width = 640.0, height = 280.0
    static let left = 64.0, right = 36.0, top = 30.0, bottom = 40.0

    /// Lines over ticks 0..<n, with a grey region over the warm-up ticks.
    static func lines(_ lines: [Line], xLabel: String = "tick", warmup: Int = 0, percent: Bool = false) -> String {
        let n = lines.map(\.values.count).max() ?? 0
        let all = lines.flatMap { $0.values + $0.low + $0.high }.filter(\.isFinite)
        guard n > 0, let lo = all.min(), let hi = all.max() else { return "<p class=\"empty\">No data.</p>" }
        let (yTicks, y0, y1) = niceTicks(lo, hi)
        let plotW = width - left - right, plotH = height - top - bottom
        func x(_ t: Double) -> Double { left + (n > 1 ? t / Double(n - 1) : 0.5) * plotW }
        func y(_ v: Double) -> Double { top + (1 - (v - y0) / (y1 - y0)) * plotH }
        var svg = open()
        if warmup > 0 {
            let w = x(Double(min(warmup, n - 1))) - left
            svg += "<rect x=\"\(f(left))\" y=\"\(f(top))\" width=\"\(f(w))\" height=\"\(f(plotH))\" fill=\"#eeeeee\"/>"
            svg += "<text x=\"\(f(left + 4))\" y=\"\(f(top + 12))\" class=\"note\">warm-up</text>"
        }
        let step = yTicks.count > 1 ? yTicks[1] - yTicks[0] : 1
        svg += axes(yTicks.map { (y($0), label($0, step: step, percent: percent)) }, plotW: plotW)
        for t in xTicks(n) {
            svg += "<text x=\"\(f(x(Double(t))))\" y=\"\(f(top + plotH + 16))\" text-anchor=\"middle\">\(t)</text>"
        }
        svg += "<text x=\"\(f(left + plotW / 2))\" y=\"\(f(height - 4))\" text-anchor=\"middle\" class=\"note\">\(escape(xLabel))</text>"
        for line in lines {
            // Bands first, under every line; a band breaks where a value is undefined.
            if line.low.count == line.values.count && !line.low.isEmpty {
                for run in finiteRuns(line.values.indices.map { line.low[$0] + line.high[$0] }) where run.count > 1 {
                    let upper = run.map { "\(f(x(Double($0)))),\(f(y(line.high[$0])))" }
                    let lower = run.reversed().map { "\(f(x(Double($0)))),\(f(y(line.low[$0])))" }
                    svg += "<polygon points=\"\((upper + lower).joined(separator: " "))\" fill=\"\(line.color)\" fill-opacity=\"0.15\" stroke=\"none\"/>"
                }
            }
        }
        for line in lines {
            for run in finiteRuns(line.values) {
                let points = run.map { "\(f(x(Double($0)))),\(f(y(line.values[$0])))" }.joined(separator: " ")
                svg += "<polyline points=\"\(points)\" fill=\"none\" stroke=\"\(line.color)\" stroke-width=\"2\"/>"
            }
        }
        svg += legend(lines.map { ($0.name, $0.color) })
        return svg + "</svg>"
    }

    /// A forest plot: one row per estimate, a point and its interval, a line at zero.
    static func forest(_ rows: [(label: String, color: String, estimate: Double, low: Double, high: Double)]) -> String {
        let finite = rows.flatMap { [$0.estimate, $0.low, $0.high] }.filter(\.isFinite)
        guard !rows.isEmpty, let lo = finite.min(), let hi = finite.max() else { return "<p class=\"empty\">No lifts to show.</p>" }
        let labelW = 230.0, rowH = 22.0
        let h = top + Double(rows.count) * rowH + bottom
        let (ticks, x0, x1) = niceTicks(min(lo, 0), max(hi, 0))
        let plotW = width - labelW - right
        func x(_ v: Double) -> Double { labelW + (v - x0) / (x1 - x0) * plotW }
        var svg = open(height: h)
        for t in ticks {
            svg += "<line x1=\"\(f(x(t)))\" y1=\"\(f(top))\" x2=\"\(f(x(t)))\" y2=\"\(f(h - bottom))\" stroke=\"\(t == 0 ? "#555" : "#e0e0e0")\"/>"
            svg += "<text x=\"\(f(x(t)))\" y=\"\(f(h - bottom + 16))\" text-anchor=\"middle\">\(label(t, step: ticks.count > 1 ? ticks[1] - ticks[0] : 1, percent: true, signed: true))</text>"
        }
        svg += "<text x=\"\(f(labelW + plotW / 2))\" y=\"\(f(h - 4))\" text-anchor=\"middle\" class=\"note\">relative lift over the control, 95% interval</text>"
        for (i, r) in rows.enumerated() {
            let cy = top + (Double(i) + 0.5) * rowH
            svg += "<text x=\"\(f(labelW - 8))\" y=\"\(f(cy + 4))\" text-anchor=\"end\">\(escape(r.label))</text>"
            guard r.estimate.isFinite else { continue }
            if r.low.isFinite && r.high.isFinite {
                svg += "<line x1=\"\(f(x(r.low)))\" y1=\"\(f(cy))\" x2=\"\(f(x(r.high)))\" y2=\"\(f(cy))\" stroke=\"\(r.color)\" stroke-width=\"2\"/>"
            }
            svg += "<circle cx=\"\(f(x(r.estimate)))\" cy=\"\(f(cy))\" r=\"4\" fill=\"\(r.color)\"><title>\(escape(r.label)): \(formatSignedPercent(r.estimate)) [\(formatSignedPercent(r.low)), \(formatSignedPercent(r.high))]</title></circle>"
        }
        return svg + "</svg>"
    }

    static func open(height: Double = height) -> String {
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 \(f(width)) \(f(height))\" width=\"\(f(width))\" height=\"\(f(height))\" "
            + "font-family=\"system-ui, sans-serif\" font-size=\"11\" role=\"img\">"
    }

    /// An axis label with as many decimals as the tick step needs.
    static func label(_ v: Double, step: Double, percent: Bool, signed: Bool = false) -> String {
        let scaled = percent ? v * 100 : v, scaledStep = percent ? step * 100 : step
        let magnitude = floor(log10(scaledStep) + 1e-9)
        let decimals = scaledStep > 0 && scaledStep.isFinite
            ? max(0, min(6, Int(-magnitude) + (scaledStep / pow(10, magnitude) == 2.5 ? 1 : 0))) : 0
        let text = String(format: signed ? "%+.\(decimals)f" : "%.\(decimals)f", scaled)
        return percent ? text + "%" : text
    }

    static func axes(_ yTicks: [(Double, String)], plotW: Double) -> String {
        var svg = ""
        for (y, label) in yTicks {
            svg += "<line x1=\"\(f(left))\" y1=\"\(f(y))\" x2=\"\(f(left + plotW))\" y2=\"\(f(y))\" stroke=\"#e0e0e0\"/>"
            svg += "<text x=\"\(f(left - 6))\" y=\"\(f(y + 4))\" text-anchor=\"end\">\(label)</text>"
        }
        return svg
    }

    static func legend(_ entries: [(String, String)]) -> String {
        var svg = "", x = left + 8
        for (name, color) in entries {
            svg += "<rect x=\"\(f(x))\" y=\"10\" width=\"12\" height=\"3\" fill=\"\(color)\"/>"
            svg += "<text x=\"\(f(x + 16))\" y=\"15\">\(escape(name))</text>"
            x += 32 + Double(name.count) * 7
        }
        return svg
    }

    /// Up to about 6 round tick values covering [lo, hi], and the range they span.
    static func niceTicks(_ lo: Double, _ hi: Double) -> ([Double], Double, Double) {
        var lo = lo, hi = hi
        if hi - lo < 1e-12 * max(1, abs(hi)) { lo -= max(1, abs(lo)) * 0.5; hi += max(1, abs(hi)) * 0.5 }
        let raw = (hi - lo) / 5
        let magnitude = pow(10, floor(log10(raw)))
        let step = [1.0, 2, 2.5, 5, 10].map { $0 * magnitude }.first { $0 >= raw } ?? 10 * magnitude
        let first = floor(lo / step) * step, last = ceil(hi / step) * step
        var ticks: [Double] = []
        var v = first
        while v <= last + step / 2 { ticks.append(abs(v) < step * 1e-9 ? 0 : v); v += step }
        return (ticks, first, last)
    }

    static func xTicks(_ n: Int) -> [Int] {
        guard n > 1 else { return [0] }
        let step = max(1, Int((Double(n - 1) / 8).rounded(.up)))
        var t = Array(stride(from: 0, to: n, by: step))
        if t.last != n - 1 && (n - 1 - t.last!) * 2 >= step { t.append(n - 1) }
        return t
    }

    /// Maximal runs of consecutive indices whose values are finite.
    static func finiteRuns(_ values: [Double]) -> [[Int]] {
        var runs: [[Int]] = [], current: [Int] = []
        for (i, v) in values.enumerated() {
            if v.isFinite { current.append(i) } else if !current.isEmpty { runs.append(current); current = [] }
        }
        if !current.isEmpty { runs.append(current) }
        return runs
    }

    static func f(_ x: Double) -> String { String(format: "%.1f", x) }
}

func escape(_ s: String) -> String {
    var out = ""
    for c in s {
        switch c {
        case "&": out += "&amp;"
        case "<": out += "&lt;"
        case ">": out += "&gt;"
        case "\"": out += "&quot;"
        case "'": out += "&#39;"
        default: out.append(c)
        }
    }
    return out
}
