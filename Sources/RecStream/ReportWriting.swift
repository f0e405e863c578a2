import Experiment
import Histogram
import RecCore
import Report

// Where a run's outcome meets its renderings: report.json, report.html and the CSVs, and
// the terminal table, all built from the report's JSON (as `recstream report` builds
// them from a file).

extension RunReport {
    /// Writes report.json, report.html and a per-tick CSV per arm into `directory`
    /// (created if missing); returns the paths, report.json first.
    @discardableResult
    public func write(to directory: String) throws -> [String] {
        do {
            return try ReportFiles.write(document, to: directory, json: true)
        } catch {
            throw RunError(error.description)
        }
    }

    /// The report as `recstream report` reads it back.
    public var document: ReportDocument { ReportDocument(built: json) }
}

extension ExperimentResults {
    /// The results table, with ANSI colours for lifts when `color` is true: rendered from
    /// `json`, as `recstream report` renders it from report.json.
    public func table(color: Bool) -> String {
        ResultsTable(ReportDocument(results: json)).text(color: color)
    }
}

extension ServeLatency {
    /// From an HDR histogram of every request's serving time, in nanoseconds.
    public init(arm: String, histogram h: Histogram<UInt64>) {
        let any = h.totalCount > 0
        self.init(arm: arm, requests: Int(h.totalCount), p50: any ? h.valueAtPercentile(50) : 0, p99: any ? h.valueAtPercentile(99) : 0,
                  p999: any ? h.valueAtPercentile(99.9) : 0, max: any ? h.max : 0)
    }
}
