import Foundation
import RecCore

/// A run's report as `report.json` holds it, read back for rendering. Every rendering
/// (the terminal table, the per-tick CSVs, the HTML page) is made from this document
/// alone, so `recstream report DIR` gives exactly what the run printed and wrote.
public struct ReportDocument: Sendable {
    /// The `results` section: scenario, messages, sample ratio, arms.
    public let results: JSONValue
    /// The whole document (with its `recstream` and `run` sections), if read from a file.
    public let root: JSONValue

    /// The report format this code writes and reads.
    public static let version: Int64 = reportVersion

    /// From the results section alone (what a run has before it writes anything).
    public init(results: JSONValue) {
        self.results = results
        self.root = ["results": results]
    }

    /// From a whole report as a run has just built it (not read from anywhere).
    public init(built root: JSONValue) {
        self.root = root
        self.results = root["results"] ?? [:]
    }

    /// From a whole report.json; `source` names it in errors.
    public init(root: JSONValue, source: String) throws(ReportError) {
        guard case .object = root else { throw ReportError("\(source): not a recstream report (expected a JSON object)") }
        guard let version = root["recstream"]?["reportVersion"] else {
            throw ReportError("\(source): not a recstream report (no recstream.reportVersion)")
        }
        guard version == .integer(Self.version) else {
            throw ReportError("\(source): report version \(version.rendered(pretty: false)); this recstream reads version \(Self.version) (run the scenario again)")
        }
        guard let results = root["results"], case .array(let arms)? = results["arms"], !arms.isEmpty, results["scenario"] != nil else {
            throw ReportError("\(source): the report has no results.arms or results.scenario")
        }
        self.root = root
        self.results = results
    }

    /// Reads `directory/report.json`.
    public static func load(directory: String) throws(ReportError) -> ReportDocument {
        let path = (directory as NSString).appendingPathComponent("report.json")
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw ReportError("cannot read \(path): \(FileManager.default.fileExists(atPath: path) ? error.localizedDescription : "no such file")")
        }
        let root: JSONValue
        do {
            root = try JSONValue.parse(text)
        } catch {
            throw ReportError("\(path): \(error)")
        }
        return try ReportDocument(root: root, source: path)
    }

    // MARK: Reading

    var scenario: JSONValue { results["scenario"] ?? [:] }
    var arms: [JSONValue] {
        if case .array(let a)? = results["arms"] { return a }
        return []
    }
    var controlIndex: Int { arms.firstIndex { $0["control"] == .bool(true) } ?? 0 }
    var treatments: [Int] { arms.indices.filter { $0 != controlIndex } }
    var ticks: Int { integer(scenario["ticks"]) ?? 0 }
    var warmupTicks: Int {
        integer(scenario["warmupTicks"]) ?? 0
    }
    func name(_ arm: Int) -> String { arms[arm]["name"]?.stringValue ?? "arm \(arm)" }
    var isPaired: Bool { scenario["design"]?.stringValue == "paired" }
    /// The reported pairs: (treatment, baseline) arm indices and their comparison.
    var comparisons: [(treatment: Int, baseline: Int, value: JSONValue)] {
        guard case .array(let list)? = results["comparisons"] else { return [] }
        let index = Dictionary(arms.indices.map { (name($0), $0) }, uniquingKeysWith: { a, _ in a })
        return list.compactMap { c in
            guard let t = c["treatment"]?.stringValue.flatMap({ index[$0] }), let b = c["baseline"]?.stringValue.flatMap({ index[$0] }) else { return nil }
            return (t, b, c)
        }
    }
}

public struct ReportError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// A JSON number as a Double; null (how NaN is written) or missing is NaN.
func number(_ v: JSONValue?) -> Double { v?.doubleValue ?? .nan }

/// A JSON integer (or a number that is one); nil when missing or not a whole number.
func integer(_ v: JSONValue?) -> Int? {
    switch v {
    case .integer(let i)?: Int(i)
    case .number(let d)? where d == d.rounded() && abs(d) < 1e15: Int(d)
    default: nil
    }
}

/// An integer field for display: "?" when missing.
func integerText(_ v: JSONValue?) -> String { integer(v).map(String.init) ?? "?" }

func numbers(_ v: JSONValue?) -> [Double] {
    guard case .array(let items)? = v else { return [] }
    return items.map { number($0) }
}

extension JSONValue {
    var stringValue: String? {
        if case .string(let s) = self { return s }
        return nil
    }
}
