import Foundation
import Testing
@testable import RecCore
@testable import Scenario

let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
let scenariosDirectory = packageRoot.appendingPathComponent("scenarios")

func scenarioFiles() -> [URL] {
    let names = (try? FileManager.default.contentsOfDirectory(atPath: scenariosDirectory.path)) ?? []
    return names.filter { $0.hasSuffix(".json") && $0 != "schema.json" }.sorted().map { scenariosDirectory.appendingPathComponent($0) }
}

@Suite("JSON Schema")
struct SchemaTests {
    @Test("scenarios/schema.json is what `recstream schema` prints")
    func schemaFileIsCurrent() throws {
        let onDisk = try String(contentsOf: scenariosDirectory.appendingPathComponent("schema.json"), encoding: .utf8)
        #expect(onDisk == Scenario.jsonSchema.rendered(),
                "scenarios/schema.json is stale: regenerate it with `swift run recstream schema > scenarios/schema.json`")
    }

    @Test("every scenario in scenarios/ validates against the schema and loads")
    func scenariosValidate() throws {
        let files = scenarioFiles()
        #expect(!files.isEmpty)
        let schema = Scenario.jsonSchema
        for file in files {
            let document = try JSONValue.parse(try String(contentsOf: file, encoding: .utf8))
            var errors: [String] = []
            MiniSchemaValidator.validate(document, schema, "", &errors)
            #expect(errors.isEmpty, "\(file.lastPathComponent): \(errors)")
            #expect(throws: Never.self) { try Scenario.load(path: file.path) }
        }
    }

    @Test("the schema rejects what validation rejects, for type and range errors")
    func schemaAgreesWithValidator() throws {
        let schema = Scenario.jsonSchema
        let bad: [String] = [
            #"{"name": "x", "arms": [{"name": "a", "share": 1, "policy": {"type": "epsilon-greedy", "epsilon": 1.5}}]}"#,
            #"{"name": "x", "arms": [{"name": "a", "share": 1, "polcy": {}}]}"#,
            #"{"name": "x", "arms": [{"name": "a", "share": 1, "policy": {"type": "greedy", "epsilon": 0.1}}]}"#,
            #"{"name": "x", "ticks": 0, "arms": [{"name": "a", "share": 1}]}"#,
            #"{"name": "x", "arms": []}"#,
            #"{"arms": [{"name": "a", "share": 1}]}"#,
        ]
        for text in bad {
            var errors: [String] = []
            MiniSchemaValidator.validate(try JSONValue.parse(text), schema, "", &errors)
            #expect(!errors.isEmpty, "schema accepted \(text)")
            #expect(throws: ScenarioError.self) { try Scenario.decode(text) }
        }
    }
}

/// The subset of JSON Schema 2020-12 the scenario schema uses, read from the schema JSON
/// itself (not from the Swift schema tree), so it checks what the file promises.
enum MiniSchemaValidator {
    static func validate(_ value: JSONValue, _ schema: JSONValue, _ path: String, _ errors: inout [String]) {
        guard case .object(let s) = schema else { errors.append("\(path): schema is not an object"); return }
        if let type = s["type"] {
            let types: [String] = switch type {
            case .string(let t): [t]
            case .array(let ts): ts.compactMap { if case .string(let t) = $0 { t } else { nil } }
            default: []
            }
            if !types.contains(where: { matches(value, $0) }) { errors.append("\(path): not of type \(types)"); return }
        }
        if let c = s["const"], c != value { errors.append("\(path): not \(c)") }
        if case .array(let options)? = s["enum"], !options.contains(value) { errors.append("\(path): not in enum") }
        if let d = value.doubleValue {
            if let m = s["minimum"]?.doubleValue, d < m { errors.append("\(path): below minimum") }
            if let m = s["exclusiveMinimum"]?.doubleValue, d <= m { errors.append("\(path): not above exclusiveMinimum") }
            if let m = s["maximum"]?.doubleValue, d > m { errors.append("\(path): above maximum") }
        }
        if case .string(let str) = value, case .integer(let n)? = s["minLength"], str.count < n { errors.append("\(path): too short") }
        if case .array(let items) = value {
            if case .integer(let n)? = s["minItems"], items.count < n { errors.append("\(path): too few items") }
            if case .integer(let n)? = s["maxItems"], items.count > n { errors.append("\(path): too many items") }
            if let itemSchema = s["items"] {
                for (i, item) in items.enumerated() { validate(item, itemSchema, "\(path)[\(i)]", &errors) }
            }
        }
        if case .object(let o) = value {
            let properties: JSONObject = if case .object(let p)? = s["properties"] { p } else { [:] }
            if case .array(let required)? = s["required"] {
                for case .string(let key) in required where o[key] == nil { errors.append("\(path).\(key): required") }
            }
            for (key, v) in o.entries {
                if let ps = properties[key] {
                    validate(v, ps, "\(path).\(key)", &errors)
                } else if let additional = s["additionalProperties"] {
                    if additional == .bool(false) { errors.append("\(path).\(key): not allowed") }
                    else if case .object = additional { validate(v, additional, "\(path).\(key)", &errors) }
                }
            }
        }
        if case .array(let options)? = s["oneOf"] {
            let passing = options.filter { option in
                var e: [String] = []
                validate(value, option, path, &e)
                return e.isEmpty
            }.count
            if passing != 1 { errors.append("\(path): matches \(passing) of oneOf") }
        }
        if case .array(let options)? = s["anyOf"] {
            let any = options.contains { option in
                var e: [String] = []
                validate(value, option, path, &e)
                return e.isEmpty
            }
            if !any { errors.append("\(path): matches none of anyOf") }
        }
    }

    static func matches(_ value: JSONValue, _ type: String) -> Bool {
        switch (type, value) {
        case ("object", .object), ("array", .array), ("string", .string), ("boolean", .bool), ("null", .null),
             ("integer", .integer), ("number", .integer), ("number", .number): true
        case ("integer", .number(let d)): d == d.rounded()
        default: false
        }
    }
}

@Suite("README")
struct ReadmeTests {
    /// Every key path of the scenario schema, as the README's table writes it.
    func paths(_ properties: [Property], _ prefix: String) -> [String] {
        properties.flatMap { p -> [String] in
            let path = prefix.isEmpty ? p.name : "\(prefix).\(p.name)"
            switch p.node {
            case .object(let o): return paths(o.properties, path)
            case .array(.object(let o), _, _): return [path] + paths(o.properties, path + "[]")
            case .tagged(let t): return [path] + t.variants.flatMap { paths($0.properties, path) }
            default: return [path]
            }
        }
    }

    @Test("the README's knobs table names every scenario key")
    func knobsTableComplete() throws {
        let readme = try String(contentsOf: packageRoot.appendingPathComponent("README.md"), encoding: .utf8)
        let missing = paths(Scenario.schema.properties, "").filter { !readme.contains("| `\($0)`") }
        #expect(missing.isEmpty, "README.md lacks rows for \(missing)")
    }
}
