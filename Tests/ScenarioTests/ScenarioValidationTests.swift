import Foundation
import Testing
@testable import RecCore
@testable import Scenario

/// A valid scenario to break one key at a time.
let base = """
{
  "name": "t",
  "arms": [
    {"name": "a", "share": 0.5},
    {"name": "b", "share": 0.5, "policy": {"type": "epsilon-greedy", "epsilon": 0.2}}
  ]
}
"""

func messages(_ text: String) -> [String] {
    do {
        _ = try Scenario.decode(text, source: "s.json")
        return []
    } catch {
        return error.issues.map(\.description)
    }
}

/// The base scenario with `edit` applied to its parsed form.
func edited(_ edit: (inout JSONObject) -> Void) -> String {
    guard case .object(var o) = try! JSONValue.parse(base) else { fatalError() }
    edit(&o)
    return JSONValue.object(o).rendered()
}

func arm(_ fields: JSONObject) -> JSONValue { .object(fields) }

@Suite("Scenario validation")
struct ScenarioValidationTests {
    @Test("a minimal scenario gets every default")
    func defaults() throws {
        let s = try Scenario.decode(base)
        #expect(s.seed == 42 && s.ticks == 50)
        #expect(s.population.users == 2000 && s.population.requestProbability == 0.5 && s.population.slateSize == 10)
        #expect(s.population.interests == InterestSettings(active: 3, dormant: 2, drift: 0.05, decay: 0.02, reinforcement: 0.1,
                                                           dormantAppeal: 0.5, dormantBelow: 0.02, wakeShare: 0.2))
        #expect(s.population.positionBias == .positionBased(exponent: 0.7))
        #expect(s.population.history == HistorySettings(median: 1000, spread: 1.0, max: 10_000, episodeLength: 30, entriesPerTick: 4))
        #expect(s.catalog.topicDim == 16 && s.catalog.topics == 32 && s.catalog.topCategories == 8)
        #expect(s.arms[0].policy == .greedy && s.arms[0].retrieval == .random && s.arms[0].candidates == 100)
        #expect(s.arms[1].policy == .epsilonGreedy(epsilon: 0.2))
        #expect(s.experiment.control == "a")
        #expect(s.kafka.brokers == nil && s.kafka.partitions == 4 && s.kafka.topicPrefix == "recstream")
        #expect(s.metrics == Metric.allCases)
        #expect(s.output.directory == nil && s.output.progress)
    }

    @Test("a tagged object's own defaults fill in")
    func taggedDefaults() throws {
        let s = try Scenario.decode(edited { o in
            o["arms"] = [arm(["name": "a", "share": 1, "policy": ["type": "softmax"], "ranking": ["type": "ctr"],
                              "retrieval": ["type": "popularity"]])]
        })
        #expect(s.arms[0].policy == .softmax(temperature: 1))
        #expect(s.arms[0].ranking == .ctr(priorClicks: 1, priorImpressions: 20))
        #expect(s.arms[0].retrieval == .popularity(explore: 0.2))
    }

    @Test("kafka properties pass through as strings")
    func properties() throws {
        let s = try Scenario.decode(edited { o in
            o["kafka"] = ["properties": ["linger.ms": 5, "enable.idempotence": true, "client.id": "x"]]
        })
        #expect(s.kafka.properties == ["linger.ms": "5", "enable.idempotence": "true", "client.id": "x"])
    }

    static let malformed: [(String, String, [String])] = [
        ("not JSON", #"{"name": "x",}"#,
         ["s.json: (top level): not valid JSON: line 1, column 14: expected a key in double quotes, got '}'"]),
        ("truncated JSON", #"{"name": "x", "arms": ["#,
         ["s.json: (top level): not valid JSON: line 1, column 24: unexpected end of input, expected a value"]),
        ("duplicate key", "{\"name\": \"x\",\n \"name\": \"y\"}",
         ["s.json: (top level): not valid JSON: line 2, column 2: duplicate key \"name\""]),
        ("top level not an object", "[1, 2]",
         ["s.json: (top level): expected an object, got an array"]),
        ("missing name and arms", "{}",
         ["s.json: name: required", "s.json: arms: required"]),
        ("unknown key with suggestion", edited { $0["seeed"] = 1 },
         ["s.json: seeed: unknown key (did you mean 'seed'?)"]),
        ("unknown key without suggestion", edited { $0["zzz"] = 1 },
         ["s.json: zzz: unknown key; known keys: name, description, seed, ticks, population, catalog, arms, experiment, metrics, offline, kafka, output"]),
        ("wrong type", edited { $0["seed"] = "abc" },
         [#"s.json: seed: expected an integer, got a string ("abc")"#]),
        ("fractional integer", edited { $0["ticks"] = 2.5 },
         ["s.json: ticks: expected an integer, got a number (2.5)"]),
        ("out of range", edited { $0["ticks"] = 0 },
         ["s.json: ticks: must be between 1 and 1000000, got 0"]),
        ("epsilon out of range", edited { o in
            o["arms"] = [arm(["name": "a", "share": 0.5]), arm(["name": "b", "share": 0.5, "policy": ["type": "epsilon-greedy", "epsilon": 1.5]])]
        }, ["s.json: arms[1].policy.epsilon: must be between 0 and 1, got 1.5"]),
        ("unknown policy", edited { o in
            o["arms"] = [arm(["name": "a", "share": 1, "policy": ["type": "epsilon-gredy"]])]
        }, ["s.json: arms[0].policy.type: unknown policy 'epsilon-gredy' (did you mean 'epsilon-greedy'?); one of greedy, epsilon-greedy, softmax, ucb, thompson, interest-sampling"]),
        ("policy without type", edited { o in
            o["arms"] = [arm(["name": "a", "share": 1, "policy": ["epsilon": 0.1]])]
        }, ["s.json: arms[0].policy.type: required; one of greedy, epsilon-greedy, softmax, ucb, thompson, interest-sampling"]),
        ("parameter on a policy without parameters", edited { o in
            o["arms"] = [arm(["name": "a", "share": 1, "policy": ["type": "greedy", "epsilon": 0.1]])]
        }, ["s.json: arms[0].policy.epsilon: unknown key; 'greedy' takes no parameters"]),
        ("zero temperature", edited { o in
            o["arms"] = [arm(["name": "a", "share": 1, "policy": ["type": "softmax", "temperature": 0]])]
        }, ["s.json: arms[0].policy.temperature: must be greater than 0, got 0"]),
        ("interest sampling without SPARC", edited { o in
            o["arms"] = [arm(["name": "a", "share": 1, "policy": ["type": "interest-sampling"]])]
        }, ["s.json: arms[0].policy: interest-sampling draws among SPARC's interests; it needs retrieval type sparc"]),
        ("ucb over random scores", edited { o in
            o["arms"] = [arm(["name": "a", "share": 1, "policy": ["type": "ucb"]])]
        }, ["s.json: arms[0].policy: ucb adds a bonus to a model's scores; with random ranking there are none (choose a ranking, or thompson)"]),
        ("a Thompson prior with more clicks than impressions", edited { o in
            o["arms"] = [arm(["name": "a", "share": 1, "policy": ["type": "thompson", "priorClicks": 5, "priorImpressions": 5]])]
        }, ["s.json: arms[0].policy.priorImpressions: must be greater than arms[0].policy.priorClicks (5), got 5"]),
        ("more SPARC interests than codes", edited { o in
            o["arms"] = [arm(["name": "a", "share": 1, "retrieval": ["type": "sparc", "codes": [4, 4], "interests": 5]])]
        }, ["s.json: arms[0].retrieval.interests: must be at most the level-0 codes (4), got 5"]),
        ("SPARC quotas that do not fit the candidates", edited { o in
            o["arms"] = [arm(["name": "a", "share": 1, "candidates": 20, "retrieval": ["type": "sparc", "interests": 4, "minQuota": 5, "explore": 2, "exploreQuota": 10]])]
        }, ["s.json: arms[0].retrieval: the quotas (4 x minQuota 5 + 2 x exploreQuota 10) do not fit arms[0].candidates (20)"]),
        ("a level of 0 codes and a temperature of 0", edited { o in
            o["arms"] = [arm(["name": "a", "share": 1, "retrieval": ["type": "sparc", "codes": [64, 0], "exploreTemperature": 0]])]
        }, ["s.json: arms[0].retrieval.codes[1]: must be between 1 and 4096, got 0",
            "s.json: arms[0].retrieval.exploreTemperature: must be greater than 0 and at most 1000, got 0"]),
        ("misspelt arm key", edited { o in
            o["arms"] = [arm(["name": "a", "share": 1, "polcy": ["type": "greedy"]])]
        }, ["s.json: arms[0].polcy: unknown key (did you mean 'policy'?)"]),
        ("shares do not sum to 1", edited { o in
            o["arms"] = [arm(["name": "a", "share": 0.5]), arm(["name": "b", "share": 0.4])]
        }, ["s.json: arms: traffic shares must sum to 1, got 0.9 (0.5 + 0.4)"]),
        ("zero share", edited { o in
            o["arms"] = [arm(["name": "a", "share": 0]), arm(["name": "b", "share": 1])]
        }, ["s.json: arms[0].share: must be greater than 0 and at most 1, got 0"]),
        ("duplicate arm names", edited { o in
            o["arms"] = [arm(["name": "a", "share": 0.5]), arm(["name": "a", "share": 0.5])]
        }, ["s.json: arms[1].name: duplicate arm name 'a' (also arms[0])"]),
        ("no arms", edited { $0["arms"] = [] },
         ["s.json: arms: must have at least 1 item, got 0"]),
        ("empty arm name", edited { o in o["arms"] = [arm(["name": "", "share": 1])] },
         ["s.json: arms[0].name: must not be empty"]),
        ("unknown control arm", edited { $0["experiment"] = ["control": "c"] },
         ["s.json: experiment.control: no arm named 'c'; arms are a, b"]),
        ("misspelt control arm", edited { $0["experiment"] = ["control": "bb"] },
         ["s.json: experiment.control: no arm named 'bb' (did you mean 'b'?); arms are a, b"]),
        ("a warm-up as long as the run", edited { o in
            o["ticks"] = 10
            o["experiment"] = ["warmupTicks": 10]
        }, ["s.json: experiment.warmupTicks: must be less than ticks (10), so the experiment has ticks of its own, got 10"]),
        ("unknown metric", edited { $0["metrics"] = ["ctr", "gvm"] },
         ["s.json: metrics[1]: unknown value 'gvm' (did you mean 'gmv'?); one of viewSeconds, gmv, clicks, impressions, ctr, purchases, activeTicks, coverage, regret, newItems, newItemCtr, exposureGini, longTailShare"]),
        ("nested kafka property", edited { $0["kafka"] = ["properties": ["a": ["b": 1]]] },
         ["s.json: kafka.properties.a: expected a string, number or boolean, got an object"]),
        ("bad topic prefix", edited { $0["kafka"] = ["topicPrefix": "my topics"] },
         ["s.json: kafka.topicPrefix: ' ' cannot appear in a Kafka topic name (letters, digits, '.', '_', '-')"]),
        ("too few candidates", edited { o in
            o["arms"] = [arm(["name": "a", "share": 1, "candidates": 5])]
        }, ["s.json: arms[0].candidates: must be at least population.slateSize (10), got 5"]),
        ("more candidates than items", edited { o in
            o["catalog"] = ["items": 50]
        }, ["s.json: arms[0].candidates: must be at most catalog.items (50), got 100",
            "s.json: arms[1].candidates: must be at most catalog.items (50), got 100"]),
        ("partitions of the wrong type", edited { $0["kafka"] = ["partitions": true] },
         ["s.json: kafka.partitions: expected an integer, got a boolean (true)"]),
        ("a JSON Schema instead of a scenario", #"{"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object"}"#,
         [#"s.json: (top level): this is a JSON Schema (it has "$schema"), not a scenario"#]),
        ("a Zipf exponent of 0", edited { $0["catalog"] = ["popularityExponent": 0] },
         ["s.json: catalog.popularityExponent: must be greater than 0 and at most 5, got 0"]),
        ("a dimension of 0", edited { $0["catalog"] = ["topicDim": 0] },
         ["s.json: catalog.topicDim: must be between 1 and 1024, got 0"]),
        ("a negative arrival rate", edited { $0["catalog"] = ["arrivalsPerTick": -1] },
         ["s.json: catalog.arrivalsPerTick: must be between 0 and 1000000, got -1"]),
        ("a history longer than its cap", edited { $0["population"] = ["history": ["median": 5000, "max": 100]] },
         ["s.json: population.history.median: must be at most population.history.max (100), got 5000"]),
        ("more interests than topics", edited { o in
            o["population"] = ["interests": ["active": 4, "dormant": 3]]
            o["catalog"] = ["topics": 5]
        }, ["s.json: population.interests: active + dormant (7) must be at most catalog.topics (5): each interest is a distinct topic"]),
        ("an unknown position bias", edited { $0["population"] = ["positionBias": ["type": "cascad"]] },
         ["s.json: population.positionBias.type: unknown position bias 'cascad' (did you mean 'cascade'?); one of position-based, cascade"]),
        ("a vocabulary smaller than the topics", edited { $0["catalog"] = ["vocabulary": 10] },
         ["s.json: catalog.vocabulary: must be at least catalog.topics (32): each topic needs tokens of its own, got 10"]),
        ("an unknown model", edited { o in o["arms"] = [arm(["name": "a", "share": 1, "ranking": ["type": "dear"]])] },
         ["s.json: arms[0].ranking.type: unknown ranking model 'dear' (did you mean 'dare'?); one of random, popularity, dare, twin, twin-proj, din, poly, blend, ctr"]),
        ("a model dimension of 0", edited { o in o["arms"] = [arm(["name": "a", "share": 1, "ranking": ["type": "dare", "attentionDim": 0]])] },
         ["s.json: arms[0].ranking.attentionDim: must be between 1 and 1024, got 0"]),
        ("K larger than the history cap", edited { o in o["arms"] = [arm(["name": "a", "share": 1, "ranking": ["type": "twin", "topK": 64, "maxHistory": 50]])] },
         ["s.json: arms[0].ranking.topK: must be at most arms[0].ranking.maxHistory (50), got 64"]),
        ("a learning rate of 0", edited { o in o["arms"] = [arm(["name": "a", "share": 1, "ranking": ["type": "dare", "learningRate": 0]])] },
         ["s.json: arms[0].ranking.learningRate: must be greater than 0 and at most 10, got 0"]),
        ("poly with no user codes", edited { o in o["arms"] = [arm(["name": "a", "share": 1, "ranking": ["type": "poly", "userCodes": 0]])] },
         ["s.json: arms[0].ranking.userCodes: must be between 1 and 1024, got 0"]),
        ("poly with no content codes", edited { o in o["arms"] = [arm(["name": "a", "share": 1, "ranking": ["type": "poly", "contentCodes": 0]])] },
         ["s.json: arms[0].ranking.contentCodes: must be between 1 and 1024, got 0"]),
        ("poly with no negatives", edited { o in o["arms"] = [arm(["name": "a", "share": 1, "ranking": ["type": "poly", "negatives": 0]])] },
         ["s.json: arms[0].ranking.negatives: must be between 1 and 1000, got 0"]),
        ("a summary over more tokens than the catalog defines", edited { o in
            o["catalog"] = ["vocabulary": 40, "topics": 8]
            o["population"] = ["interests": ["active": 3, "dormant": 2]]
            o["arms"] = [arm(["name": "a", "share": 1, "ranking": ["type": "poly", "summaryTokens": 64]])]
        }, ["s.json: arms[0].ranking.summaryTokens: the catalog defines 40 content tokens (catalog.vocabulary); the summary cannot predict 64 of them"]),
        ("an unknown matching", edited { o in o["arms"] = [arm(["name": "a", "share": 1, "ranking": ["type": "poly", "matching": "learnt"]])] },
         ["s.json: arms[0].ranking.matching: unknown value 'learnt' (did you mean 'learned'?); one of learned, plain"]),
        ("a blend whose established model is not a sequence model", edited { o in
            o["arms"] = [arm(["name": "a", "share": 1, "ranking": ["type": "blend", "established": ["type": "ctr"]]])]
        }, ["s.json: arms[0].ranking.established.type: unknown sequence model 'ctr'; one of dare, twin, twin-proj, din"]),
        ("a blend's K larger than its history cap", edited { o in
            o["arms"] = [arm(["name": "a", "share": 1, "ranking": ["type": "blend", "established": ["type": "dare", "topK": 30, "maxHistory": 20]]])]
        }, ["s.json: arms[0].ranking.established.topK: must be at most arms[0].ranking.established.maxHistory (20), got 30"]),
        ("every error at once", #"{"name": 3, "ticks": -1, "arms": [{"share": 2}], "output": {"progres": false}}"#,
         ["s.json: name: expected a string, got an integer (3)",
          "s.json: ticks: must be between 1 and 1000000, got -1",
          "s.json: arms[0].name: required",
          "s.json: arms[0].share: must be greater than 0 and at most 1, got 2",
          "s.json: output.progres: unknown key (did you mean 'progress'?)"]),
    ]

    @Test("malformed scenarios give every error with its path", arguments: malformed)
    func malformedScenario(name: String, text: String, expected: [String]) {
        let got = messages(text).map { "s.json: " + $0 }
        #expect(got == expected, "\(name)")
    }

    @Test("a missing file is a one-line error")
    func missingFile() {
        #expect(throws: ScenarioError.self) { try Scenario.load(path: "/nonexistent/x.json") }
        do { _ = try Scenario.load(path: "/nonexistent/x.json"); Issue.record("expected an error, none was thrown") } catch {
            #expect(error.description == "/nonexistent/x.json: (top level): no such file")
        }
    }

    @Test("a file that is not UTF-8 is an error giving the first bad byte's offset, line and column")
    func invalidUTF8() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("recstream-utf8-\(getpid()).json").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        // "name": "caf\u{e9}" written in Latin-1: a lone 0xE9 at byte offset 16, line 2, column 15
        // (the "é" of a valid file would be two bytes and one column).
        var bytes = Array("{\n  \"name\": \"caf".utf8)
        bytes += [0xE9] + Array("\"\n}".utf8)
        #expect(FileManager.default.createFile(atPath: path, contents: Data(bytes)))
        do { _ = try Scenario.load(path: path); Issue.record("expected an error, none was thrown") } catch {
            #expect(error.description == "\(path): (top level): not valid JSON: line 2, column 15: invalid UTF-8 at byte offset 16 (byte 0xe9)")
        }
        // A truncated multi-byte sequence at the very end, and valid text after a valid "é".
        #expect(firstInvalidUTF8(Array("ab\u{e9}".utf8).dropLast().map { $0 }) == 2)
        #expect(firstInvalidUTF8(Array("\u{e9}x\u{1F600}".utf8)) == nil)
        #expect(firstInvalidUTF8([0x61, 0xC0, 0x80]) == 1)  // an overlong encoding of NUL
    }
}

@Suite("JSON")
struct JSONTests {
    @Test("parse and render round-trip, keeping key order and integer-ness")
    func roundTrip() throws {
        let text = #"{"b": 1, "a": [1.5, -2, "x\n\u00e9", true, null], "big": 9007199254740993}"#
        let v = try JSONValue.parse(text)
        #expect(v["big"] == .integer(9_007_199_254_740_993))
        guard case .object(let o) = v else { Issue.record("not an object"); return }
        #expect(o.keys == ["b", "a", "big"])
        #expect(try JSONValue.parse(v.rendered()) == v)
        #expect(try JSONValue.parse(v.rendered(pretty: false)) == v)
    }

    @Test("syntax errors name the line and column", arguments: [
        ("{\n  \"a\": tru\n}", "line 2, column 8: invalid literal, expected 'true'"),
        ("[1 2]", "line 1, column 4: expected ',' or ']' in an array, got '2'"),
        ("\"abc", "line 1, column 1: unterminated string"),
        ("01", "line 1, column 1: leading zero in a number"),
        ("{} x", "line 1, column 4: unexpected 'x' after the document"),
        ("", "line 1, column 1: unexpected end of input, expected a value"),
    ])
    func syntaxErrors(text: String, message: String) {
        #expect(throws: JSONSyntaxError.self) { try JSONValue.parse(text) }
        do { _ = try JSONValue.parse(text); Issue.record("expected an error, none was thrown") } catch { #expect(error.description == message) }
    }

    @Test("nesting is bounded, not a stack overflow")
    func deepNesting() {
        let text = String(repeating: "[", count: 100_000)
        #expect(throws: JSONSyntaxError.self) { try JSONValue.parse(text) }
    }
}

@Suite("Scenario fingerprint")
struct ScenarioFingerprintTests {
    @Test("the transport, the output and the seed leave it; anything that changes results changes it")
    func fingerprint() throws {
        let s = try Scenario.decode(base)
        #expect(s.fingerprint.count == 16)
        var t = s
        t.seed = 99
        t.kafka.partitions = 16
        t.kafka.properties = ["a": "b"]
        t.output.directory = "elsewhere"
        #expect(t.fingerprint == s.fingerprint)
        t.ticks += 1
        #expect(t.fingerprint != s.fingerprint)
        var u = s
        u.arms[1].policy = .epsilonGreedy(epsilon: 0.21)
        #expect(u.fingerprint != s.fingerprint)
    }

    /// Checkpoints and model updates carry the fingerprint as the scenario's identity, so
    /// it must come from the settings alone: pinned, so a change of encoding (or of a
    /// toolchain) cannot slip by. A deliberate change of the scenario model updates it.
    @Test("it is FNV-1a of the canonical JSON of the resolved settings, pinned")
    func pinned() throws {
        let s = try Scenario.decode(base)
        let json = s.canonicalJSON
        // Every default filled in, every object's keys sorted, enums by case name.
        func sorted(_ v: JSONValue) -> Bool {
            switch v {
            case .object(let o): o.keys == o.keys.sorted() && o.entries.allSatisfy { sorted($0.value) }
            case .array(let a): a.allSatisfy(sorted)
            default: true
            }
        }
        #expect(sorted(json))
        #expect(json["population"]?["users"] != nil && json["experiment"]?["warmupTicks"] != nil)
        var u = s
        u.arms[1].policy = .epsilonGreedy(epsilon: 0.21)
        let arms: [JSONValue]
        if case .array(let a)? = u.canonicalJSON["arms"] { arms = a } else { arms = [] }
        #expect(arms.count == s.arms.count && arms[1]["policy"]?["epsilonGreedy"]?["epsilon"] == .number(0.21))
        #expect(s.fingerprint == "33a89fd5d82ec41b")
    }
}

@Suite("Experiment design and comparisons")
struct DesignValidationTests {
    func issues(_ experiment: String, arms: String = #"[{"name": "a", "share": 0.5}, {"name": "b", "share": 0.5}]"#) -> [String] {
        do {
            _ = try Scenario.decode(#"{"name": "x", "arms": \#(arms), "experiment": \#(experiment)}"#)
            return []
        } catch {
            return error.issues.map { "\($0)" }
        }
    }

    @Test("comparisons name arms that exist, two different ones, each pair once")
    func comparisons() {
        #expect(issues(#"{"comparisons": [{"treatment": "b", "baseline": "a"}]}"#).isEmpty)
        let unknown = issues(#"{"comparisons": [{"treatment": "bb", "baseline": "a"}]}"#)
        #expect(unknown.count == 1 && unknown[0].contains("experiment.comparisons[0].treatment") && unknown[0].contains("no arm named 'bb'"))
        #expect(issues(#"{"comparisons": [{"treatment": "a", "baseline": "a"}]}"#).first?.contains("compares arm 'a' with itself") == true)
        let twice = issues(#"{"comparisons": [{"treatment": "a", "baseline": "b"}, {"treatment": "b", "baseline": "a"}]}"#)
        #expect(twice.first?.contains("experiment.comparisons[1]") == true && twice.first?.contains("also experiment.comparisons[0]") == true)
        #expect(issues(#"{"comparisons": [{"treatment": "a"}]}"#).first?.contains("baseline") == true)
    }

    @Test("the design is split or paired; paired needs two arms")
    func design() throws {
        #expect(issues(#"{"design": "paired"}"#).isEmpty)
        #expect(issues(#"{"design": "crossover"}"#).first?.contains("experiment.design") == true)
        #expect(issues(#"{"design": "paired"}"#, arms: #"[{"name": "a", "share": 1}]"#).first?.contains("needs at least two arms") == true)
        let s = try Scenario.decode(#"{"name": "x", "arms": [{"name": "a", "share": 0.5}, {"name": "b", "share": 0.5}]}"#)
        #expect(s.experiment.design == .split && s.comparedPairs.map { [$0.treatment, $0.baseline] } == [[1, 0]])
    }

    @Test("an oracle share is a share")
    func oracleShare() {
        #expect(issues("{}", arms: #"[{"name": "a", "share": 0.5}, {"name": "b", "share": 0.5, "oracleShare": 1.5}]"#).first?.contains("arms[1].oracleShare") == true)
    }
}
