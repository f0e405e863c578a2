import Foundation
import RecCore

/// A scenario that is not valid: every issue found, each with its JSON path.
public struct ScenarioError: Error, CustomStringConvertible, Sendable {
    /// The file (or other source) the scenario came from.
    public var source: String
    public var issues: [ScenarioIssue]
    public init(source: String, issues: [ScenarioIssue]) {
        self.source = source
        self.issues = issues
    }
    public var description: String {
        issues.map { "\(source): \($0)" }.joined(separator: "\n")
    }
}

extension Scenario {
    /// Reads and validates a scenario file.
    public static func load(path: String) throws(ScenarioError) -> Scenario {
        try decode(document: read(path: path), source: path)
    }

    /// Reads a scenario file's JSON, not yet validated: a file that cannot be read, is not
    /// UTF-8 (the byte offset of the first bad byte) or is not JSON is an error.
    public static func read(path: String) throws(ScenarioError) -> JSONValue {
        guard let data = FileManager.default.contents(atPath: path) else {
            var isDirectory: ObjCBool = false
            let why = FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory)
                ? (isDirectory.boolValue ? "is a directory, not a scenario file" : "cannot be read") : "no such file"
            throw ScenarioError(source: path, issues: [ScenarioIssue("", why)])
        }
        do {
            return try JSONValue.parse(utf8: [UInt8](data))
        } catch {
            throw ScenarioError(source: path, issues: [ScenarioIssue("", "not valid JSON: \(error)")])
        }
    }

    /// Parses and validates scenario JSON, reporting every issue at once.
    public static func decode(_ text: String, source: String = "scenario") throws(ScenarioError) -> Scenario {
        let document: JSONValue
        do {
            document = try JSONValue.parse(text)
        } catch {
            throw ScenarioError(source: source, issues: [ScenarioIssue("", "not valid JSON: \(error)")])
        }
        return try decode(document: document, source: source)
    }

    /// Validates a parsed scenario document, reporting every issue at once.
    public static func decode(document: JSONValue, source: String) throws(ScenarioError) -> Scenario {
        if isJSONSchema(document) {
            throw ScenarioError(source: source, issues: [ScenarioIssue("", "this is a JSON Schema (it has \"$schema\"), not a scenario")])
        }
        var validator = Validator()
        let resolved = validator.resolve(document, .object(schema), at: "")
        guard validator.issues.isEmpty, let resolved else {
            throw ScenarioError(source: source, issues: validator.issues)
        }
        let scenario = Scenario(resolved: Resolved(resolved))
        let semantic = scenario.consistencyIssues()
        if !semantic.isEmpty { throw ScenarioError(source: source, issues: semantic) }
        return scenario
    }

    /// True for a JSON Schema document, such as scenarios/schema.json.
    public static func isJSONSchema(_ document: JSONValue) -> Bool {
        document["$schema"] != nil
    }

    /// Rules that span several keys.
    public func consistencyIssues() -> [ScenarioIssue] {
        var issues: [ScenarioIssue] = []
        let total = arms.reduce(0) { $0 + $1.share }
        if abs(total - 1) > 1e-6 {
            let terms = arms.map { format($0.share) }.joined(separator: " + ")
            issues.append(ScenarioIssue("arms", "traffic shares must sum to 1, got \(format((total * 1e9).rounded() / 1e9)) (\(terms))"))
        }
        var seen: [String: Int] = [:]
        for (i, arm) in arms.enumerated() {
            if let first = seen[arm.name] {
                issues.append(ScenarioIssue("arms[\(i)].name", "duplicate arm name '\(arm.name)' (also arms[\(first)])"))
            } else {
                seen[arm.name] = i
            }
            if arm.candidates < population.slateSize {
                issues.append(ScenarioIssue("arms[\(i)].candidates", "must be at least population.slateSize (\(population.slateSize)), got \(arm.candidates)"))
            }
            if let m = arm.ranking.sequenceModel, m.topK > m.maxHistory {
                let at = if case .blend = arm.ranking { "arms[\(i)].ranking.established" } else { "arms[\(i)].ranking" }
                issues.append(ScenarioIssue("\(at).topK", "must be at most \(at).maxHistory (\(m.maxHistory)), got \(m.topK)"))
            }
            if let p = arm.ranking.polyModel, p.summaryTokens > catalog.vocabulary {
                issues.append(ScenarioIssue("arms[\(i)].ranking.summaryTokens", "the catalog defines \(catalog.vocabulary) content tokens (catalog.vocabulary); the summary cannot predict \(p.summaryTokens) of them"))
            }
            if case .interestSampling = arm.policy {
                var sparc = false
                if case .towers(let t) = arm.retrieval, t.serving != nil { sparc = true }
                if !sparc {
                    issues.append(ScenarioIssue("arms[\(i)].policy", "interest-sampling draws among SPARC's interests; it needs retrieval type sparc"))
                }
            }
            if case .ucb = arm.policy, arm.ranking == .random {
                issues.append(ScenarioIssue("arms[\(i)].policy", "ucb adds a bonus to a model's scores; with random ranking there are none (choose a ranking, or thompson)"))
            }
            if case .thompson(let a, let b, _) = arm.policy, b <= a {
                issues.append(ScenarioIssue("arms[\(i)].policy.priorImpressions", "must be greater than arms[\(i)].policy.priorClicks (\(format(a))), got \(format(b))"))
            }
            if case .towers(let t) = arm.retrieval, let s = t.serving {
                if s.interests > t.codes[0] {
                    issues.append(ScenarioIssue("arms[\(i)].retrieval.interests", "must be at most the level-0 codes (\(t.codes[0])), got \(s.interests)"))
                } else if s.interests + s.explore > t.codes[0] {
                    issues.append(ScenarioIssue("arms[\(i)].retrieval.explore", "interests + explore (\(s.interests + s.explore)) must be at most the level-0 codes (\(t.codes[0]))"))
                }
                if s.interests * s.minQuota + s.explore * s.exploreQuota > arm.candidates {
                    issues.append(ScenarioIssue("arms[\(i)].retrieval", "the quotas (\(s.interests) x minQuota \(s.minQuota) + \(s.explore) x exploreQuota \(s.exploreQuota)) do not fit arms[\(i)].candidates (\(arm.candidates))"))
                }
            }
            if arm.candidates > catalog.items {
                issues.append(ScenarioIssue("arms[\(i)].candidates", "must be at most catalog.items (\(catalog.items)), got \(arm.candidates)"))
            }
        }
        if !arms.contains(where: { $0.name == experiment.control }) {
            issues.append(ScenarioIssue("experiment.control", "no arm named '\(experiment.control)'\(suggestion(experiment.control, arms.map(\.name))); arms are \(list(arms.map(\.name)))"))
        }
        let names = arms.map(\.name)
        var pairs: [ArmPair: Int] = [:]
        for (i, pair) in experiment.comparisons.enumerated() {
            for (key, name) in [("treatment", pair.treatment), ("baseline", pair.baseline)] where !names.contains(name) {
                issues.append(ScenarioIssue("experiment.comparisons[\(i)].\(key)", "no arm named '\(name)'\(suggestion(name, names)); arms are \(list(names))"))
            }
            if pair.treatment == pair.baseline {
                issues.append(ScenarioIssue("experiment.comparisons[\(i)]", "compares arm '\(pair.treatment)' with itself"))
            } else if let first = pairs[pair] ?? pairs[ArmPair(treatment: pair.baseline, baseline: pair.treatment)] {
                issues.append(ScenarioIssue("experiment.comparisons[\(i)]", "compares '\(pair.treatment)' and '\(pair.baseline)' again (also experiment.comparisons[\(first)])"))
            } else {
                pairs[pair] = i
            }
        }
        if let rule = experiment.stopWhen {
            let pairs = comparedPairs.count
            if rule.comparison >= pairs {
                issues.append(ScenarioIssue("experiment.stopWhen.comparison", "there \(pairs == 1 ? "is 1 reported pair" : "are \(pairs) reported pairs"), so it must be below \(pairs), got \(rule.comparison)"))
            }
            if rule.minTicks > ticks - experiment.warmupTicks {
                issues.append(ScenarioIssue("experiment.stopWhen.minTicks", "must be at most the ticks after the warm-up (\(ticks - experiment.warmupTicks)), got \(rule.minTicks)"))
            }
        }
        if experiment.design == .paired && arms.count < 2 {
            issues.append(ScenarioIssue("experiment.design", "paired compares arms on copies of the population; it needs at least two arms"))
        }
        if experiment.warmupTicks >= ticks {
            issues.append(ScenarioIssue("experiment.warmupTicks", "must be less than ticks (\(ticks)), so the experiment has ticks of its own, got \(experiment.warmupTicks)"))
        }
        let interests = population.interests
        if interests.slots > catalog.topics {
            issues.append(ScenarioIssue("population.interests", "active + dormant (\(interests.slots)) must be at most catalog.topics (\(catalog.topics)): each interest is a distinct topic"))
        }
        if population.history.median > population.history.max {
            issues.append(ScenarioIssue("population.history.median", "must be at most population.history.max (\(population.history.max)), got \(population.history.median)"))
        }
        if catalog.vocabulary < catalog.topics {
            issues.append(ScenarioIssue("catalog.vocabulary", "must be at least catalog.topics (\(catalog.topics)): each topic needs tokens of its own, got \(catalog.vocabulary)"))
        }
        let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
        if let bad = kafka.topicPrefix.first(where: { !allowed.contains($0) }) {
            issues.append(ScenarioIssue("kafka.topicPrefix", "'\(bad)' cannot appear in a Kafka topic name (letters, digits, '.', '_', '-')"))
        } else if kafka.topicPrefix.count > 200 {
            issues.append(ScenarioIssue("kafka.topicPrefix", "must be at most 200 characters, got \(kafka.topicPrefix.count)"))
        }
        return issues
    }

    init(resolved r: Resolved) {
        name = r["name"].string
        description = r["description"].string
        seed = UInt64(r["seed"].int)
        ticks = r["ticks"].int
        let p = r["population"]
        let i = p["interests"], f = p["fatigue"], pb = p["positionBias"], re = p["response"], h = p["history"]
        population = PopulationSettings(
            users: p["users"].int, requestProbability: p["requestProbability"].double, activitySpread: p["activitySpread"].double,
            slateSize: p["slateSize"].int, purchaseDelayTicks: p["purchaseDelayTicks"].int,
            returnSensitivity: p["returnSensitivity"].double, segments: p["segments"].int, regions: p["regions"].int,
            interests: InterestSettings(
                active: i["active"].int, dormant: i["dormant"].int, drift: i["drift"].double, decay: i["decay"].double,
                reinforcement: i["reinforcement"].double, dormantAppeal: i["dormantAppeal"].double,
                dormantBelow: i["dormantBelow"].double, wakeShare: i["wakeShare"].double),
            fatigue: FatigueSettings(weight: f["weight"].double, decay: f["decay"].double),
            positionBias: pb["type"].string == "cascade"
                ? .cascade(continueProbability: pb["continueProbability"].double, continueAfterClick: pb["continueAfterClick"].double)
                : .positionBased(exponent: pb["exponent"].double),
            response: ResponseSettings(
                clickBias: re["clickBias"].double, affinityScale: re["affinityScale"].double, qualityWeight: re["qualityWeight"].double,
                popularityWeight: re["popularityWeight"].double, completionBias: re["completionBias"].double,
                completionScale: re["completionScale"].double, purchaseBias: re["purchaseBias"].double,
                purchaseAffinityScale: re["purchaseAffinityScale"].double, priceSensitivity: re["priceSensitivity"].double),
            history: HistorySettings(median: h["median"].int, spread: h["spread"].double, max: h["max"].int,
                                     episodeLength: h["episodeLength"].double, entriesPerTick: h["entriesPerTick"].double))
        let c = r["catalog"]
        catalog = CatalogSettings(
            items: c["items"].int, topCategories: c["topCategories"].int, subcategories: c["subcategories"].int,
            topics: c["topics"].int, topicDim: c["topicDim"].int, topicNoise: c["topicNoise"].double,
            popularityExponent: c["popularityExponent"].double, medianPrice: c["medianPrice"].double,
            priceSpread: c["priceSpread"].double, itemPriceSpread: c["itemPriceSpread"].double,
            medianDurationSeconds: c["medianDurationSeconds"].double, durationSpread: c["durationSpread"].double,
            vocabulary: c["vocabulary"].int, tokensPerItem: c["tokensPerItem"].int,
            arrivalsPerTick: c["arrivalsPerTick"].double, retireProbability: c["retireProbability"].double,
            seed: { if case .integer(let i)? = c.value["seed"] { UInt64(i) } else { nil } }())
        arms = r["arms"].array.map(ArmSettings.init(resolved:))
        let e = r["experiment"]
        experiment = ExperimentSettings(salt: e["salt"].string, control: e["control"].optionalString ?? arms[0].name,
                                         warmupTicks: e["warmupTicks"].int, newItemViews: e["newItemViews"].int,
                                         newItemTicks: e["newItemTicks"].int, regretSample: e["regretSample"].double,
                                         design: Design(rawValue: e["design"].string) ?? .split,
                                         comparisons: e["comparisons"].array.map { ArmPair(treatment: $0["treatment"].string, baseline: $0["baseline"].string) },
                                         stopWhen: e.value["stopWhen"].flatMap { v -> StopRule? in
                                             let r = Resolved(v)
                                             guard case .object = v else { return nil }
                                             return StopRule(metric: r["metric"].choice(), comparison: r["comparison"].int, minTicks: r["minTicks"].int)
                                         })
        metrics = r["metrics"].array.compactMap { Metric(rawValue: $0.string) }
        let off = r["offline"]
        offline = OfflineSettings(dims: off["dims"].array.map(\.int), seeds: off["seeds"].int, trainSamples: off["trainSamples"].int,
                                  testSamples: off["testSamples"].int, epochs: off["epochs"].int, relevantShare: off["relevantShare"].double,
                                  coldShare: off["coldShare"].double)
        let k = r["kafka"]
        kafka = KafkaSettings(brokers: k["brokers"].optionalString, topicPrefix: k["topicPrefix"].string,
                              partitions: k["partitions"].int, replicationFactor: k["replicationFactor"].int,
                              stallTimeoutSeconds: k["stallTimeoutSeconds"].double,
                              properties: k["properties"].stringMap)
        let o = r["output"]
        output = OutputSettings(directory: o["directory"].optionalString, progress: o["progress"].bool)
    }
}

extension ArmSettings {
    /// An arm of a resolved document (a scenario's, or a model spec's).
    init(resolved a: Resolved) {
        let rt = a["retrieval"]
        let retrieval: Retrieval
        switch rt["type"].string {
        case "popularity": retrieval = .popularity(explore: rt["explore"].double)
        case "two-tower", "sparc":
            var t = TowerRetrieval(dim: rt["dim"].int, historyLength: rt["historyLength"].int, learningRate: rt["learningRate"].double,
                                   temperature: rt["temperature"].double, batchSize: rt["batchSize"].int)
            if rt["type"].string == "sparc" {
                t.codes = rt["codes"].intArray
                t.restartEvery = rt["restartEvery"].int
                t.deadBelow = rt["deadBelow"].double
                t.userFeatures = rt["userFeatures"].bool
                t.serving = SparcServing(interests: rt["interests"].int, explore: rt["explore"].int, exploreTemperature: rt["exploreTemperature"].double,
                                         exploreQuota: rt["exploreQuota"].int, minQuota: rt["minQuota"].int,
                                         conditioned: rt["query"].string == "conditioned", probes: rt["probes"].int,
                                         smoothing: rt["smoothing"].double, mix: rt["mix"].double, discoveryBelow: rt["discoveryBelow"].double)
            }
            retrieval = .towers(t)
        case "random": retrieval = .random
        case let other: Resolved.unknown("retrieval", other)
        }
        let rk = a["ranking"]
        func sequence(_ r: Resolved) -> SequenceModelSettings {
            let type = r["type"].string
            return SequenceModelSettings(
                design: r["type"].choice(),
                attentionDim: type == "dare" ? r["attentionDim"].int : r["dim"].int,
                representationDim: type == "dare" ? r["representationDim"].int : r["dim"].int,
                topK: r["topK"].int, maxHistory: r["maxHistory"].int,
                learningRate: r["learningRate"].double, batchSize: r["batchSize"].int,
                viewSecondsWeight: r["viewSecondsWeight"].double, purchaseWeight: r["purchaseWeight"].double,
                auxLossWeight: r["auxLossWeight"].double, optimizer: r["optimizer"].choice(), batchNorm: r["batchNorm"].bool)
        }
        func poly(_ r: Resolved) -> PolyRankingSettings {
            PolyRankingSettings(
                dim: r["dim"].int, userCodes: r["userCodes"].int, contentCodes: r["contentCodes"].int,
                sessions: r["sessions"].int, sessionSize: r["sessionSize"].int, negatives: r["negatives"].int,
                matching: r["matching"].choice(), temperature: r["temperature"].double, summaryWeight: r["summaryWeight"].double,
                summaryTokens: r["summaryTokens"].int, learningRate: r["learningRate"].double, batchSize: r["batchSize"].int)
        }
        let ranking: Ranking = switch rk["type"].string {
        case "popularity": .popularity
        case "ctr": .ctr(priorClicks: rk["priorClicks"].double, priorImpressions: rk["priorImpressions"].double)
        case "dare", "twin", "twin-proj", "din": .sequence(sequence(rk))
        case "poly": .poly(poly(rk))
        case "blend": .blend(young: poly(rk), established: sequence(rk["established"]), youngTicks: rk["youngTicks"].int)
        case "random": .random
        case let other: Resolved.unknown("ranking", other)
        }
        let pol = a["policy"]
        let policy: Policy = switch pol["type"].string {
        case "epsilon-greedy": .epsilonGreedy(epsilon: pol["epsilon"].double)
        case "softmax": .softmax(temperature: pol["temperature"].double)
        case "ucb": .ucb(bonus: pol["bonus"].double)
        case "interest-sampling": .interestSampling(temperature: pol["temperature"].double)
        case "thompson": .thompson(priorClicks: pol["priorClicks"].double, priorImpressions: pol["priorImpressions"].double,
                                   propensitySamples: pol["propensitySamples"].int)
        case "greedy": .greedy
        case let other: Resolved.unknown("policy", other)
        }
        self.init(name: a["name"].string, share: a["share"].double, candidates: a["candidates"].int,
                           retrieval: retrieval, ranking: ranking, policy: policy,
                           oracleShare: a.value["oracleShare"].map { Resolved($0).double } ?? 0)
    }
}

/// Typed reads of a document the validator has resolved: a failure here is a bug in the
/// schema, never bad input, so it stops the program.
struct Resolved {
    let value: JSONValue
    init(_ value: JSONValue) { self.value = value }

    subscript(key: String) -> Resolved {
        guard let v = value[key] else { preconditionFailure("resolved scenario lacks '\(key)'") }
        return Resolved(v)
    }
    var int: Int {
        if case .integer(let i) = value { return Int(i) }
        preconditionFailure("expected an integer in a resolved scenario")
    }
    var intArray: [Int] {
        guard case .array(let items) = value else { preconditionFailure("expected an array in a resolved scenario") }
        return items.map { Resolved($0).int }
    }
    var double: Double {
        guard let d = value.doubleValue else { preconditionFailure("expected a number in a resolved scenario") }
        return d
    }
    var string: String {
        if case .string(let s) = value { return s }
        preconditionFailure("expected a string in a resolved scenario")
    }
    /// A tagged value's type the schema allows and the loader does not know: a bug.
    static func unknown(_ what: String, _ type: String?) -> Never {
        preconditionFailure("the schema allows \(what) type '\(type ?? "?")' but the loader does not read it")
    }

    /// One of an enumeration's raw values (the schema's `oneOf` checked it).
    func choice<E: RawRepresentable>() -> E where E.RawValue == String {
        guard let e = E(rawValue: string) else { preconditionFailure("'\(string)' is not a \(E.self) in a resolved scenario") }
        return e
    }
    var optionalString: String? {
        if case .string(let s) = value { return s }
        return nil
    }
    var bool: Bool {
        if case .bool(let b) = value { return b }
        preconditionFailure("expected a boolean in a resolved scenario")
    }
    var array: [Resolved] {
        if case .array(let items) = value { return items.map(Resolved.init) }
        preconditionFailure("expected an array in a resolved scenario")
    }
    var stringMap: [String: String] {
        guard case .object(let o) = value else { preconditionFailure("expected an object in a resolved scenario") }
        var out: [String: String] = [:]
        for (k, v) in o.entries { if case .string(let s) = v { out[k] = s } }
        return out
    }
}
