import ArgumentParser
import Foundation
import RecCore
import Scenario

struct Validate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check scenario files (and model files, for train and serve --model); print every error with its JSON path.",
        discussion: "A file with a top-level \"ranking\" and no \"arms\" is read as a model file. Exits 0 when every file is valid, 2 otherwise.")

    @Argument(help: "Scenario or model files.")
    var files: [String]

    @OptionGroup var memory: MemoryLimitOptions

    func run() throws {
        var failed = false
        let limit = try memory.limit()
        for file in files {
            do {
                let document = try Scenario.read(path: file)
                // `validate scenarios/*.json` also names the schema: say so rather than fail.
                if Scenario.isJSONSchema(document) {
                    print("\(file): skipped (a JSON Schema, not a scenario)")
                    continue
                }
                if ModelSpec.isModel(document) {
                    let m = try ModelSpec.decode(document: document, source: file)
                    print("\(file): ok (a model without a world: \(m.name), ranked by \(m.canonicalJSON["ranking"]?["type"].map { $0.rendered(pretty: false) } ?? "?"))")
                    continue
                }
                let s = try Scenario.decode(document: document, source: file)
                if let refusal = MemoryLimitOptions.refusal(s, source: file, limit: limit) {
                    printError(refusal)
                    failed = true
                    continue
                }
                print("\(file): ok (\(s.arms.count) arms: \(s.arms.map(\.name).joined(separator: ", ")))")
            } catch {
                printError(error.description)
                failed = true
            }
        }
        if failed { throw Exit.badInput }
    }
}

struct Schema: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the scenario JSON Schema (draft 2020-12).",
        discussion: "scenarios/schema.json is this output; a test keeps the two identical.")

    func run() throws {
        print(Scenario.jsonSchema.rendered(), terminator: "")
    }
}
