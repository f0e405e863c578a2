import Foundation
import Testing
@testable import RecCore
@testable import RecStream
@testable import Report
@testable import Scenario

func temporaryDirectory() -> String {
    let path = (NSTemporaryDirectory() as NSString).appendingPathComponent("recstream-report-\(UUID().uuidString)")
    try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

@Suite("Reports", .serialized)
struct ReportTests {
    @Test("report.json read back renders the table, CSVs and page the run wrote")
    func roundTrip() throws {
        var s = try smallScenario()
        s.experiment.warmupTicks = 2
        let report = try LockstepRun(scenario: s).run()
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let paths = try report.write(to: dir)
        #expect(paths.map { ($0 as NSString).lastPathComponent }
                == ["report.json", "ticks-random.csv", "ticks-dare.csv", "ticks-pop.csv", "ticks-ctr.csv", "report.html"])

        let loaded = try ReportDocument.load(directory: dir)
        #expect(ResultsTable(loaded).text(color: false) == report.results.table(color: false))
        #expect(HTMLReport.html(loaded) == HTMLReport.html(report.document))
        for arm in report.results.arms.indices {
            let csv = try String(contentsOfFile: (dir as NSString).appendingPathComponent(SeriesCSV.fileNames(loaded)[arm]), encoding: .utf8)
            #expect(csv == SeriesCSV.csv(loaded, arm: arm))
        }
    }

    @Test("a CSV has a row per tick whose counts add up to the arm's series")
    func csv() throws {
        var s = try smallScenario()
        s.experiment.warmupTicks = 2
        let r = try LockstepRun(scenario: s).run()
        let doc = r.document
        for (i, arm) in r.results.arms.enumerated() {
            let lines = SeriesCSV.csv(doc, arm: i).split(separator: "\r\n", omittingEmptySubsequences: false).dropLast()
            #expect(lines.count == s.ticks + 1)
            #expect(lines.first.map(String.init) == SeriesCSV.header.joined(separator: ","))
            let rows = lines.dropFirst().map { $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init) }
            #expect(rows.allSatisfy { $0.count == SeriesCSV.header.count })
            #expect(rows.map { $0[1] } == ["warmup", "warmup"] + Array(repeating: "experiment", count: s.ticks - 2))
            #expect(rows.map { Int($0[4])! }.reduce(0, +) == arm.series.reduce(0) { $0 + $1.clicks })
            // The DARE arm's model columns are filled; the random arm's are empty.
            if i == 1 { #expect(rows.allSatisfy { !$0[17].isEmpty }) }
            if i == 0 { #expect(rows.allSatisfy { $0[15].isEmpty && $0[17].isEmpty }) }
        }
    }

    @Test("the HTML page is self-contained, escapes names, and charts every metric")
    func html() throws {
        var s = try smallScenario()
        s.arms[2].name = "pop <b>&"
        s.description = "Does \"popularity\" win?"
        let document = try LockstepRun(scenario: s).run().document
        let page = HTMLReport.html(document)
        #expect(page.hasPrefix("<!DOCTYPE html>"))
        #expect(!page.contains("<script"))
        #expect(!page.contains("src="))
        #expect(!page.contains("href="))
        #expect(page.contains("pop &lt;b&gt;&amp;") && !page.contains("pop <b>"))
        #expect(page.contains("Does &quot;popularity&quot; win?"))
        // Forest, a lift-after-every-tick chart per pair (3), 3 per-user, CTR, regret, model AUC.
        #expect(page.components(separatedBy: "<svg").count - 1 == 10)
        #expect(page.contains("dare vs random: lift in viewSeconds after every tick") && page.contains("95% confidence sequence"))
        // The results table: a header row and one row per row of the terminal table, each
        // with a cell per column.
        let table = ResultsTable(document)
        let results = page.components(separatedBy: "<table>")[1].components(separatedBy: "</table>")[0]
        #expect(results.components(separatedBy: "<tr>").count - 1 == table.rows.count + 1)
        #expect(results.components(separatedBy: "<th>").count - 1 + results.components(separatedBy: "<td").count - 1
                == (table.rows.count + 1) * table.header.count)
    }

    @Test("file names are safe and distinct whatever the arm names")
    func fileNames() throws {
        let doc = ReportDocument(results: ["arms": [["name": "a/b"], ["name": "a b"], ["name": "ok-1"]], "scenario": [:]])
        #expect(SeriesCSV.fileNames(doc) == ["ticks-0-a_b.csv", "ticks-1-a_b.csv", "ticks-ok-1.csv"])
    }

    @Test("what is not a readable report is a clear error naming the file")
    func badReports() throws {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = (dir as NSString).appendingPathComponent("report.json")
        func error() -> String {
            do {
                _ = try ReportDocument.load(directory: dir)
                return "no error"
            } catch {
                return error.description
            }
        }
        #expect(error() == "cannot read \(path): no such file")
        try "{\"results\": [1,}".write(toFile: path, atomically: true, encoding: .utf8)
        #expect(error().hasPrefix("\(path): line 1, column"))
        try "[1, 2]".write(toFile: path, atomically: true, encoding: .utf8)
        #expect(error() == "\(path): not a recstream report (expected a JSON object)")
        try "{\"recstream\": {\"reportVersion\": 1}}".write(toFile: path, atomically: true, encoding: .utf8)
        #expect(error() == "\(path): report version 1; this recstream reads version 3 (run the scenario again)")
        try "{\"recstream\": {\"reportVersion\": 3}, \"results\": {\"arms\": []}}".write(toFile: path, atomically: true, encoding: .utf8)
        #expect(error() == "\(path): the report has no results.arms or results.scenario")
    }

    @Test("a report directory under a file cannot be created: an error naming it, nothing written")
    func unwritable() throws {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let file = (dir as NSString).appendingPathComponent("file")
        FileManager.default.createFile(atPath: file, contents: Data())
        let target = (file as NSString).appendingPathComponent("out")
        #expect(throws: ReportError.self) { try ReportFiles.checkWritable(target) }
        do {
            try ReportFiles.checkWritable(target)
        } catch {
            #expect(error.description.hasPrefix("cannot create the report directory \(target): "))
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == ["file"])
    }
}
