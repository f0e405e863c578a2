import Foundation
import RecCore

/// The files of a report directory: `report.json`, `report.html` and one `ticks-<arm>.csv`
/// per arm. Each file is written whole to a temporary name and renamed into place, and
/// report.json goes last: a directory with a report.json has a complete report.
public enum ReportFiles {
    /// Fails early, before a run spends its time, if `directory` cannot be created or
    /// written to.
    public static func checkWritable(_ directory: String) throws(ReportError) {
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw ReportError("cannot create the report directory \(directory): \(reason(error))")
        }
        let probe = (directory as NSString).appendingPathComponent(".recstream-write-check-\(getpid())")
        guard FileManager.default.createFile(atPath: probe, contents: Data()) else {
            throw ReportError("cannot write to the report directory \(directory) (permission denied or read-only)")
        }
        try? FileManager.default.removeItem(atPath: probe)
    }

    /// Writes the HTML page and the CSVs and, when `json` is true, report.json (last).
    /// Returns the paths written, report.json first when written.
    @discardableResult
    public static func write(_ report: ReportDocument, to directory: String, json: Bool) throws(ReportError) -> [String] {
        try checkWritable(directory)
        var written: [String] = []
        let names = SeriesCSV.fileNames(report)
        for (arm, name) in names.enumerated() {
            written.append(try put(SeriesCSV.csv(report, arm: arm), directory, name))
        }
        // CSVs of arms this report does not have (an earlier run's) would mislead: remove them.
        let existing = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        for file in existing where file.hasPrefix("ticks-") && file.hasSuffix(".csv") && !names.contains(file) {
            try? FileManager.default.removeItem(atPath: (directory as NSString).appendingPathComponent(file))
        }
        written.append(try put(HTMLReport.html(report), directory, "report.html"))
        if json {
            written.insert(try put(report.root.rendered(), directory, "report.json"), at: 0)
        }
        return written
    }

    static func put(_ text: String, _ directory: String, _ name: String) throws(ReportError) -> String {
        let path = (directory as NSString).appendingPathComponent(name)
        do {
            try text.write(toFile: path, atomically: true, encoding: .utf8)
        } catch {
            throw ReportError("cannot write \(path): \(reason(error))")
        }
        return path
    }

    static func reason(_ error: Error) -> String {
        let e = error as NSError
        if let underlying = e.userInfo[NSUnderlyingErrorKey] as? NSError, underlying.domain == NSPOSIXErrorDomain {
            return String(cString: strerror(Int32(underlying.code)))
        }
        return e.localizedDescription
    }
}
