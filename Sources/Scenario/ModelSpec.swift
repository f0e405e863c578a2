import Foundation
import RecCore

/// A model without a world (`recstream train --model`, `serve --model`): one arm's
/// retrieval, ranking and policy, as a scenario's arm gives them, and the settings of the
/// tables its ids grow into. Users, items and categories are whatever the stream names;
/// nothing is simulated.
public struct ModelSpec: Sendable, Equatable {
    public var name: String
    public var description: String
    public var seed: UInt64
    /// Items in a slate a request gets unless it asks for another size.
    public var slateSize: Int
    /// The arm (named `name`, share 1).
    public var arm: ArmSettings
    public var users: TableSettings
    public var items: TableSettings
    public var categories: TableSettings
    /// Items whose latest record (`recstream train --items-topic`) is kept at once.
    public var itemRecords: Int
    /// The resolved document, every default filled in, keys in the schema's order.
    public var canonicalJSON: JSONValue

    /// A fingerprint of everything that decides what is learned except the seed: FNV-1a
    /// over the canonical JSON of the resolved spec.
    public var fingerprint: String {
        var resolved = canonicalJSON
        if case .object(var o) = resolved {
            o["seed"] = .integer(0)
            resolved = .object(o)
        }
        return Scenario.fingerprint(of: resolved)
    }

    /// The settings of one table of ids (see `IdDictionary`).
    public struct TableSettings: Sendable, Equatable {
        public var capacity: Int
        public var minCount: Int
        public var expireAfterTicks: Int64?
        public var candidates: Int?
    }

    static func table(_ what: String, capacity: Int) -> ObjectSchema {
        ObjectSchema("How the \(what) table grows, filters and forgets.", [
            Property("capacity", .integer(minimum: 1, maximum: 1 << 30), "Rows for \(what) (one more, row 0, is shared by every id without a row of its own).", default: .integer(Int64(capacity))),
            Property("minCount", .integer(minimum: 1, maximum: 1_000_000), "Occurrences before an id gets a row of its own (the frequency filter; 1: at first sight). Until then it shares row 0.", default: 1),
            Property("expireAfterTicks", .nullable(.integer(minimum: 1, maximum: Int64(UInt32.max))), "Ticks an id may go unseen before its row is freed for another (looked for every max(1, T/8) ticks, and when the table is full); null keeps rows forever.", default: .null),
            Property("candidates", .nullable(.integer(minimum: 1, maximum: 1 << 30)), "Ids counted under the frequency filter at once (null: the capacity); occurrences of new ids beyond it are not counted.", default: .null),
        ])
    }

    /// Every key a model spec may hold, with its default and effect.
    public static let schema = ObjectSchema("A recstream model without a world: one arm, and the tables its ids grow into.", [
        Property("name", .string(minLength: 1), "The model's name (the arm name in metrics, slates and the model topic's keys).", required: true),
        Property("description", .string(), "What the model is for.", default: ""),
        Property("seed", .integer(minimum: 0, maximum: Int64.max), "Seed of the model's initial values.", default: 42),
        Property("slateSize", .integer(minimum: 1, maximum: Int64(Wire.maxSlateSize)), "Items per slate unless a request asks for another size.", default: 10),
        Property("candidates", .integer(minimum: 1, maximum: 100_000), "Candidates retrieval hands to ranking.", default: 100),
        Property("retrieval", .tagged(Scenario.retrieval), "How candidates are retrieved: random or popularity (towers need a world's content).", default: ["type": "popularity", "explore": 0.1]),
        Property("ranking", .tagged(Scenario.ranking), "How candidates are scored (dare, twin, twin-proj, din, ctr, popularity or random).", required: true),
        Property("policy", .tagged(Scenario.policy), Scenario.policy.summary, default: ["type": "greedy"]),
        Property("tables", .object(ObjectSchema("The id tables.", [
            Property("users", .object(table("users", capacity: 1_000_000)), "Users: each has a history of its own.", default: [:]),
            Property("items", .object(table("items", capacity: 1_000_000)), "Items: each has embedding rows and counts of its own.", default: [:]),
            Property("categories", .object(table("categories", capacity: 100_000)), "Item categories: each has embedding rows of its own.", default: [:]),
            Property("itemRecords", .object(ObjectSchema("The latest record of each item of an items topic (recstream train --items-topic).", [
                Property("capacity", .integer(minimum: 1, maximum: 1 << 30), "Items whose latest record is kept (with or without a row in the items table); records of further new items are refused, counted.", default: 1_000_000),
            ])), "Item records from an items topic.", default: [:]),
        ])), "How the id tables grow, filter and forget.", default: [:]),
    ])

    /// Whether a document is a model file rather than a scenario: a top-level `ranking`
    /// and no `arms`.
    public static func isModel(_ document: JSONValue) -> Bool {
        document["ranking"] != nil && document["arms"] == nil
    }

    /// Reads and validates a model spec file, reporting every issue at once.
    public static func load(path: String) throws(ScenarioError) -> ModelSpec {
        try decode(document: Scenario.read(path: path), source: path)
    }

    public static func decode(_ text: String, source: String = "model") throws(ScenarioError) -> ModelSpec {
        let document: JSONValue
        do { document = try JSONValue.parse(text) } catch { throw ScenarioError(source: source, issues: [ScenarioIssue("", "not valid JSON: \(error)")]) }
        return try decode(document: document, source: source)
    }

    public static func decode(document: JSONValue, source: String) throws(ScenarioError) -> ModelSpec {
        var validator = Validator()
        guard let resolved = validator.resolve(document, .object(schema), at: ""), validator.issues.isEmpty else {
            throw ScenarioError(source: source, issues: validator.issues)
        }
        let r = Resolved(resolved)
        let armDocument: JSONValue = .object(JSONObject([
            ("name", resolved["name"]!), ("share", .integer(1)), ("candidates", resolved["candidates"]!),
            ("retrieval", resolved["retrieval"]!), ("ranking", resolved["ranking"]!), ("policy", resolved["policy"]!),
        ]))
        func table(_ t: Resolved) -> TableSettings {
            TableSettings(capacity: t["capacity"].int, minCount: t["minCount"].int,
                          expireAfterTicks: t["expireAfterTicks"].value == .null ? nil : Int64(t["expireAfterTicks"].int),
                          candidates: t["candidates"].value == .null ? nil : t["candidates"].int)
        }
        let tables = r["tables"]
        let spec = ModelSpec(name: r["name"].string, description: r["description"].string, seed: UInt64(r["seed"].int),
                             slateSize: r["slateSize"].int, arm: ArmSettings(resolved: Resolved(armDocument)),
                             users: table(tables["users"]), items: table(tables["items"]), categories: table(tables["categories"]),
                             itemRecords: tables["itemRecords"]["capacity"].int, canonicalJSON: resolved)
        let issues = spec.consistencyIssues()
        if !issues.isEmpty { throw ScenarioError(source: source, issues: issues) }
        return spec
    }

    /// What the schema cannot say: what a model without a world can run.
    func consistencyIssues() -> [ScenarioIssue] {
        var issues: [ScenarioIssue] = []
        if case .towers = arm.retrieval {
            issues.append(ScenarioIssue("retrieval.type", "two-tower and sparc retrieval read a world's item content; a model without a world retrieves with random or popularity"))
        }
        if arm.ranking.polyModel != nil {
            issues.append(ScenarioIssue("ranking.type", "poly and blend ranking read a world's item tokens; a model without a world ranks with dare, twin, twin-proj, din, ctr, popularity or random"))
        }
        if let m = arm.ranking.sequenceModel, m.topK > m.maxHistory {
            issues.append(ScenarioIssue("ranking.topK", "must be at most ranking.maxHistory (\(m.maxHistory)), got \(m.topK)"))
        }
        if case .interestSampling = arm.policy {
            issues.append(ScenarioIssue("policy.type", "interest-sampling samples SPARC's interests, which need tower retrieval"))
        }
        if case .ucb = arm.policy, arm.ranking == .random {
            issues.append(ScenarioIssue("policy", "ucb adds a bonus to a model's scores; with random ranking there are none (choose a ranking, or thompson)"))
        }
        for (name, table) in [("users", users), ("items", items), ("categories", categories)] where table.minCount > 1 && table.expireAfterTicks == nil {
            issues.append(ScenarioIssue("tables.\(name).minCount", "a frequency filter (minCount \(table.minCount)) needs tables.\(name).expireAfterTicks: without it, ids seen once stay counted for good, and once they fill the candidate list no new id can get a row"))
        }
        if arm.candidates < slateSize {
            issues.append(ScenarioIssue("candidates", "must be at least slateSize (\(slateSize)), got \(arm.candidates)"))
        }
        return issues
    }
}
