import ArgumentParser
import Foundation
import Report

struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Re-render a run's report from its report.json.",
        discussion: """
            Reads DIR/report.json, prints the results table, and writes report.html and the \
            per-tick CSVs (ticks-<arm>.csv) again beside it. The table is the one the run \
            printed: both are rendered from the same JSON.
            """)

    @Argument(help: "A report directory (the --out of a run).")
    var directory: String

    @Flag(help: "Print the table only; write no files.")
    var noWrite = false

    func run() throws {
        let report: ReportDocument
        do {
            report = try ReportDocument.load(directory: directory)
        } catch {
            throw BadInput("\(error)")
        }
        print(ResultsTable(report).text(color: isatty(STDOUT_FILENO) != 0), terminator: "")
        guard !noWrite else { return }
        do {
            let paths = try ReportFiles.write(report, to: directory, json: false)
            print("\nWrote \(paths.count) files: \(paths.map { ($0 as NSString).lastPathComponent }.joined(separator: ", ")).")
        } catch {
            throw BadInput("\(error)")
        }
    }
}
