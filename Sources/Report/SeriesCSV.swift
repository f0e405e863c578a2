import Foundation
import RecCore

/// One arm's per-tick series as CSV (RFC 4180, one header line): what happened in each
/// tick, the per-user means so far with their standard errors, and the arm model's
/// progressive evaluation. Numbers are written in their shortest exact form; a value
/// that is undefined (NaN) is an empty field.
public enum SeriesCSV {
    public static let header = [
        "tick", "phase", "requests", "impressions", "clicks", "purchases", "view_seconds", "gmv", "ctr",
        "view_seconds_per_user", "view_seconds_per_user_se", "gmv_per_user", "gmv_per_user_se",
        "clicks_per_user", "clicks_per_user_se", "model_auc", "model_logloss", "model_samples", "regret",
    ]

    /// The CSV of arm `arm` of `report`.
    public static func csv(_ report: ReportDocument, arm: Int) -> String {
        let a = report.arms[arm], s = a["series"], c = s?["cumulativePerUser"], m = a["model"]
        let columns: [[Double]] = [
            numbers(s?["requests"]), numbers(s?["impressions"]), numbers(s?["clicks"]), numbers(s?["purchases"]),
            numbers(s?["viewSeconds"]), numbers(s?["gmv"]),
        ]
        let cumulative: [[Double]] = ["viewSeconds", "gmv", "clicks"].flatMap { key in
            [numbers(c?[key]?["mean"]), numbers(c?[key]?["standardError"])]
        }
        let model = [numbers(m?["progressiveAUC"]), numbers(m?["progressiveLogLoss"]), numbers(m?["samples"])]
        let ticks = columns[0].count
        var out = header.joined(separator: ",") + "\r\n"
        for t in 0..<ticks {
            var fields = [String(t), t < report.warmupTicks ? "warmup" : "experiment"]
            fields += columns.map { field($0, t) }
            let impressions = columns[1][t], clicks = columns[2][t]
            fields.append(impressions > 0 ? field(clicks / impressions) : "")
            fields += cumulative.map { field($0, t) }
            fields += model.map { field($0, t) }
            fields.append(field(numbers(s?["regret"]), t))
            out += fields.joined(separator: ",") + "\r\n"
        }
        return out
    }

    /// A file name for an arm's CSV: `ticks-<arm>.csv`, the name reduced to characters
    /// safe in a file name, with the arm's index added if that made two names equal.
    public static func fileNames(_ report: ReportDocument) -> [String] {
        let safe = report.arms.indices.map { i in
            String(report.name(i).map { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == "." ? $0 : "_" })
        }
        return safe.enumerated().map { i, name in
            safe.filter { $0 == name }.count > 1 || name.isEmpty ? "ticks-\(i)-\(name).csv" : "ticks-\(name).csv"
        }
    }

    static func field(_ column: [Double], _ t: Int) -> String { t < column.count ? field(column[t]) : "" }

    static func field(_ x: Double) -> String {
        guard x.isFinite else { return "" }
        if x == x.rounded(), abs(x) < 1e15 { return String(Int64(x)) }
        return "\(x)"
    }
}
