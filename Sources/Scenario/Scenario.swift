import RecCore

/// An A/B simulation, as authored in a scenario JSON file (see `Scenario.schema` for every
/// key, its default and its effect; `recstream schema` prints it as JSON Schema).
///
/// A scenario plus its seed fixes the whole run: the same scenario and seed give the same
/// report, bit for bit, whatever the transport or partition count.
public struct Scenario: Sendable, Equatable, Encodable {
    public var name: String
    public var description: String
    public var seed: UInt64
    public var ticks: Int
    public var population: PopulationSettings
    public var catalog: CatalogSettings
    public var arms: [ArmSettings]
    public var experiment: ExperimentSettings
    public var metrics: [Metric]
    public var offline: OfflineSettings
    public var kafka: KafkaSettings
    public var output: OutputSettings

    /// The seed the catalog is drawn from: `catalog.seed`, or the scenario's.
    public var catalogSeed: UInt64 { catalog.seed ?? seed }

    /// The index of the control arm (lifts are measured against it).
    public var controlArm: Int { arms.firstIndex { $0.name == experiment.control } ?? 0 }

    // The warm-up rule, in one place for the lockstep run, the simulator and the attach
    // roles. Every record carries the user's assigned arm (the wire format's `arm`); these
    // say who serves it and who learns from it.

    /// Whether `tick` is in the warm-up: before the split, when the control arm serves
    /// everyone, as production would before an experiment starts.
    @inline(__always)
    public func isWarmup(_ tick: Tick) -> Bool { Int(tick) < experiment.warmupTicks }

    /// The arm that serves a request of a user assigned to `arm` in `tick`: the control in
    /// the warm-up, the user's own arm after it.
    @inline(__always)
    public func servingArm(assigned arm: Int, tick: Tick) -> Int { isWarmup(tick) ? controlArm : arm }

    /// Whether arm `learner` learns from the feedback of a user assigned to `arm` in `tick`:
    /// its own users' after the split; in the warm-up everyone's (the control's log, as a new
    /// model is trained on production logs), so arms start the split alike.
    @inline(__always)
    public func learns(_ learner: Int, fromAssigned arm: Int, tick: Tick) -> Bool { learner == arm || isWarmup(tick) }

    /// Whether every arm runs on its own copy of the population (`experiment.design`).
    public var isPaired: Bool { experiment.design == .paired }

    /// The pairs the report compares, as (treatment, baseline) arm indices: the scenario's
    /// `experiment.comparisons`, or each arm against the control.
    public var comparedPairs: [(treatment: Int, baseline: Int)] {
        let index = Dictionary(arms.enumerated().map { ($1.name, $0) }, uniquingKeysWith: { a, _ in a })
        if experiment.comparisons.isEmpty {
            return arms.indices.filter { $0 != controlArm }.map { ($0, controlArm) }
        }
        return experiment.comparisons.compactMap { p in index[p.treatment].flatMap { t in index[p.baseline].map { (t, $0) } } }
    }
}

/// The simulated users (see `Scenario.schema` for each knob's effect and default).
public struct PopulationSettings: Sendable, Equatable, Encodable {
    public var users: Int
    /// Median chance that a user asks for a slate in a tick.
    public var requestProbability: Double
    public var activitySpread: Double
    public var slateSize: Int
    /// Ticks between a click and the purchase it leads to.
    public var purchaseDelayTicks: Int
    public var returnSensitivity: Double
    public var segments: Int
    public var regions: Int
    public var interests: InterestSettings
    public var fatigue: FatigueSettings
    public var positionBias: PositionBias
    public var response: ResponseSettings
    public var history: HistorySettings
}

public struct InterestSettings: Sendable, Equatable, Encodable {
    public var active: Int
    public var dormant: Int
    public var drift: Double
    public var decay: Double
    public var reinforcement: Double
    public var dormantAppeal: Double
    public var dormantBelow: Double
    public var wakeShare: Double
    public var slots: Int { active + dormant }
}

public struct FatigueSettings: Sendable, Equatable, Encodable {
    public var weight: Double
    public var decay: Double
}

public enum PositionBias: Sendable, Equatable, Encodable {
    case positionBased(exponent: Double)
    case cascade(continueProbability: Double, continueAfterClick: Double)
}

public struct ResponseSettings: Sendable, Equatable, Encodable {
    public var clickBias: Double
    public var affinityScale: Double
    public var qualityWeight: Double
    public var popularityWeight: Double
    public var completionBias: Double
    public var completionScale: Double
    public var purchaseBias: Double
    public var purchaseAffinityScale: Double
    public var priceSensitivity: Double
}

public struct HistorySettings: Sendable, Equatable, Encodable {
    public var median: Int
    public var spread: Double
    public var max: Int
    public var episodeLength: Double
    public var entriesPerTick: Double
}

public struct CatalogSettings: Sendable, Equatable, Encodable {
    public var items: Int
    public var topCategories: Int
    public var subcategories: Int
    public var topics: Int
    public var topicDim: Int
    public var topicNoise: Double
    /// Zipf exponent of the items' popularity prior.
    public var popularityExponent: Double
    public var medianPrice: Double
    public var priceSpread: Double
    public var itemPriceSpread: Double
    public var medianDurationSeconds: Double
    public var durationSpread: Double
    public var vocabulary: Int
    public var tokensPerItem: Int
    public var arrivalsPerTick: Double
    public var retireProbability: Double
    /// The catalog's own seed (items, topics, arrivals); nil: the scenario's.
    public var seed: UInt64?
}

/// One arm of the experiment: how it retrieves candidates, ranks them and builds a slate.
public struct ArmSettings: Sendable, Equatable, Encodable {
    /// Does what the arm serves depend on what its own users did (a model, popularity, or
    /// a bandit policy learned from its feedback)? Then all its users share one learned
    /// state, and chance in that state's path is part of the arm's result.
    public var learnsFromOwnTraffic: Bool {
        switch retrieval {
        case .popularity, .towers: return true
        case .random: break
        }
        switch policy {
        case .ucb, .thompson, .interestSampling: return true
        default: return ranking != .random
        }
    }

    public var name: String
    /// Share of users assigned to this arm.
    public var share: Double
    /// How many candidates retrieval hands to ranking.
    public var candidates: Int
    public var retrieval: Retrieval
    public var ranking: Ranking
    public var policy: Policy
    /// A planted effect of known mechanism: the share of this arm's requests (by a hash of
    /// seed, user and tick) answered with the world's oracle slate instead of its own.
    /// Only the lockstep run, which holds the world, can plant it.
    public var oracleShare: Double = 0

    // oracleShare at its default is left out, so fingerprints made before it still hold.
    enum CodingKeys: String, CodingKey { case name, share, candidates, retrieval, ranking, policy, oracleShare }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(name, forKey: .name)
        try c.encode(share, forKey: .share)
        try c.encode(candidates, forKey: .candidates)
        try c.encode(retrieval, forKey: .retrieval)
        try c.encode(ranking, forKey: .ranking)
        try c.encode(policy, forKey: .policy)
        if oracleShare != 0 { try c.encode(oracleShare, forKey: .oracleShare) }
    }

    /// Why an attached role (serve, simulate) cannot run this arm, or nil.
    public func attachIssue(at index: Int) -> String? {
        oracleShare > 0 ? "arms[\(index)] (\(name)).oracleShare plants the world's oracle slates, which only `recstream run` holds; an attached role cannot serve them" : nil
    }
}

public enum Retrieval: Sendable, Equatable, Encodable {
    /// Uniformly random items.
    case random
    /// The items with the most clicks in this arm so far (its own traffic only), with a
    /// share `explore` of the candidates drawn uniformly at random instead.
    case popularity(explore: Double)
    /// Item and user towers learned online: single-vector (two-tower) retrieval, or SPARC's
    /// multi-interest retrieval when `serving` is set.
    case towers(TowerRetrieval)
}

/// The retrieval towers' knobs (see `Scenario.schema`).
public struct TowerRetrieval: Sendable, Equatable, Encodable {
    public var dim: Int
    public var historyLength: Int
    public var learningRate: Double
    public var temperature: Double
    public var batchSize: Int
    /// Residual levels' code counts (SPARC); empty for the two-tower baseline.
    public var codes: [Int] = []
    /// Dead-code restarts: checked every `restartEvery` steps, for codes whose moving
    /// usage fell below `deadBelow`.
    public var restartEvery = 50
    public var deadBelow = 0.05
    /// Feed user features to the interest tower.
    public var userFeatures = false
    /// SPARC's serving (nil: single-vector retrieval).
    public var serving: SparcServing?
}

/// How SPARC chooses interests and splits candidates among them.
public struct SparcServing: Sendable, Equatable, Encodable {
    public var interests: Int
    public var explore: Int
    public var exploreTemperature: Double
    public var exploreQuota: Int
    public var minQuota: Int
    /// Rank each interest's bucket by u (false), or search with u + e0_k (true).
    public var conditioned: Bool
    /// Index buckets per top interest with a conditioned query; 0 is exact search.
    public var probes: Int
    public var smoothing: Double
    public var mix: Double
    public var discoveryBelow: Double
}

public enum Ranking: Sendable, Equatable, Encodable {
    /// Random scores.
    case random
    /// Click counts learned online from this arm's feedback.
    case popularity
    /// Click-through rate learned online, smoothed by a Beta prior of `priorClicks` clicks
    /// in `priorImpressions` impressions.
    case ctr(priorClicks: Double, priorImpressions: Double)
    /// A long-sequence model (DARE, TWIN or DIN) trained online on the arm's feedback.
    case sequence(SequenceModelSettings)
    /// EmbSum-style poly-attention over content tokens, trained online on the arm's feedback.
    case poly(PolyRankingSettings)
    /// Poly's scores for items younger than `youngTicks` (arrived during the run), a
    /// sequence model's for the rest; both are click probabilities, so they compare.
    case blend(young: PolyRankingSettings, established: SequenceModelSettings, youngTicks: Int)

    /// The sequence model the arm trains, if any.
    public var sequenceModel: SequenceModelSettings? {
        switch self {
        case .sequence(let m), .blend(_, let m, _): m
        default: nil
        }
    }

    /// The poly-attention model the arm trains, if any.
    public var polyModel: PolyRankingSettings? {
        switch self {
        case .poly(let p), .blend(let p, _, _): p
        default: nil
        }
    }
}

/// The poly-attention model's knobs, as the scenario gives them (see `Scenario.schema`).
public struct PolyRankingSettings: Sendable, Equatable, Encodable {
    public var dim: Int
    public var userCodes: Int
    public var contentCodes: Int
    public var sessions: Int
    public var sessionSize: Int
    public var negatives: Int
    public var matching: MatchingKind
    public var temperature: Double
    public var summaryWeight: Double
    public var summaryTokens: Int
    public var learningRate: Double
    /// Slates per training step.
    public var batchSize: Int
}

/// A long-sequence model's design (`ranking.type`): DARE's decoupled attention and
/// representation tables, TWIN's shared ones, TWIN with projections, or DIN.
public enum SequenceDesign: String, Sendable, Equatable, Encodable, CaseIterable {
    case dare, twin, din
    case twinProjection = "twin-proj"
}

/// How a sequence model's embedding tables step: row-wise lazy Adam (only the rows a step
/// touched, the streaming default) or the reference's dense Adam.
public enum OptimizerKind: String, Sendable, Equatable, Encodable, CaseIterable {
    case lazyAdam = "lazy-adam"
    case adam
}

/// How poly-attention weights its code-by-code matches: learned (EmbSum's) or plain.
public enum MatchingKind: String, Sendable, Equatable, Encodable, CaseIterable {
    case learned, plain
}

/// A long-sequence ranking model's knobs, as the scenario gives them.
public struct SequenceModelSettings: Sendable, Equatable, Encodable {
    public var design: SequenceDesign
    public var attentionDim: Int
    public var representationDim: Int
    public var topK: Int
    public var maxHistory: Int
    public var learningRate: Double
    public var batchSize: Int
    /// Weighted targets: a click's weight is 1 + viewSecondsWeight x ln(1 + view seconds);
    /// a purchase, when it arrives, is a positive of weight purchaseWeight.
    public var viewSecondsWeight: Double = 0
    public var purchaseWeight: Double = 0
    /// The reference's auxiliary head over all L behaviours: its loss weight (0: none).
    public var auxLossWeight: Double = 0
    public var optimizer = OptimizerKind.lazyAdam
    /// The reference's BatchNorm on the MLP's input (batch statistics in training).
    public var batchNorm = false
}

/// How a slate is built from scored candidates. Every policy logs the propensity of each
/// item it shows: the probability it had of being put at that position.
public enum Policy: Sendable, Equatable, Encodable {
    /// The best remaining candidate at each position.
    case greedy
    /// At each position, with probability `epsilon` a uniformly random remaining candidate.
    case epsilonGreedy(epsilon: Double)
    /// At each position, a candidate drawn with probability proportional to exp(score / T).
    case softmax(temperature: Double)
    /// Greedy on the standardised score plus bonus * sqrt(ln(N + 1) / (n + 1)).
    case ucb(bonus: Double)
    /// Greedy on draws from each item's Beta posterior of click-through; propensities
    /// estimated from `propensitySamples` resamples.
    case thompson(priorClicks: Double, priorImpressions: Double, propensitySamples: Int)
    /// SPARC's interest sampling (SPARC retrieval only): at each position an interest is
    /// drawn, in proportion to p^(1/T) among the interests the remaining candidates came
    /// from, and its best-ranked remaining candidate is shown.
    case interestSampling(temperature: Double)
}

public struct ExperimentSettings: Sendable, Equatable, Encodable {
    /// Mixed into the hash that assigns users to arms: change it to reshuffle users.
    public var salt: String
    /// The arm lifts are measured against.
    public var control: String
    /// Ticks before the split: the control arm serves every user, every arm learns from
    /// that log, and each user's metrics in them become the CUPED covariate.
    public var warmupTicks: Int
    /// PV-N: clicks a new item needs in its first `newItemTicks` ticks in an arm.
    public var newItemViews: Int
    public var newItemTicks: Int
    /// Share of slates whose regret against the oracle is computed.
    public var regretSample: Double
    /// How arms see users: split among them, or each arm on its own copy of all of them.
    public var design: Design = .split
    /// The pairs the report compares (empty: each arm against the control).
    public var comparisons: [ArmPair] = []
    /// End the run once a lift is decided (its confidence sequence excludes 0).
    public var stopWhen: StopRule?

    // Keys at their defaults are left out, so scenarios written before them keep their
    // fingerprint (and attached roles their checkpoints).
    enum CodingKeys: String, CodingKey {
        case salt, control, warmupTicks, newItemViews, newItemTicks, regretSample, design, comparisons, stopWhen
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(salt, forKey: .salt)
        try c.encode(control, forKey: .control)
        try c.encode(warmupTicks, forKey: .warmupTicks)
        try c.encode(newItemViews, forKey: .newItemViews)
        try c.encode(newItemTicks, forKey: .newItemTicks)
        try c.encode(regretSample, forKey: .regretSample)
        if design != .split { try c.encode(design, forKey: .design) }
        if !comparisons.isEmpty { try c.encode(comparisons, forKey: .comparisons) }
        try c.encodeIfPresent(stopWhen, forKey: .stopWhen)
    }
}

/// When a run may end before its last tick: once the confidence sequence of `metric`'s
/// lift in reported pair `comparison` excludes 0, after at least `minTicks` ticks since the
/// split. The sequence is valid at every look, so stopping on it keeps its 95%.
public struct StopRule: Sendable, Equatable, Encodable {
    public var metric: Metric
    /// Index into the reported pairs (`Scenario.comparedPairs`).
    public var comparison: Int
    public var minTicks: Int
    public init(metric: Metric, comparison: Int = 0, minTicks: Int = 1) {
        (self.metric, self.comparison, self.minTicks) = (metric, comparison, minTicks)
    }
}

/// How an experiment's arms see its users.
public enum Design: String, Sendable, Equatable, CaseIterable, Encodable {
    /// Users divided among the arms by their traffic shares, as production must.
    case split
    /// Every arm serves its own copy of the whole population on common random numbers,
    /// after one shared warm-up; the per-user difference between copies is the unit.
    case paired
}

/// Two arms the report compares: `treatment` against `baseline` (lifts are treatment over
/// baseline).
public struct ArmPair: Sendable, Equatable, Hashable, Encodable {
    public var treatment: String
    public var baseline: String
    public init(treatment: String, baseline: String) {
        self.treatment = treatment
        self.baseline = baseline
    }
}

/// Metrics the results table shows.
public enum Metric: String, Sendable, CaseIterable, Encodable {
    case viewSeconds, gmv, clicks, impressions, ctr, purchases, activeTicks, coverage, regret, newItems, newItemCtr, exposureGini, longTailShare
}

/// The offline experiment's knobs.
public struct OfflineSettings: Sendable, Equatable, Encodable {
    public var dims: [Int]
    public var seeds: Int
    public var trainSamples: Int
    public var testSamples: Int
    public var epochs: Int
    public var relevantShare: Double
    /// Share of items held out of training (scored in test only): the cold-start column.
    public var coldShare: Double = 0
}

public struct KafkaSettings: Sendable, Equatable, Encodable {
    /// Bootstrap servers of an existing cluster; nil runs the embedded broker.
    public var brokers: String?
    public var topicPrefix: String
    public var partitions: Int
    public var replicationFactor: Int
    /// How long a phase may wait without progress (a broker away) before the run fails.
    public var stallTimeoutSeconds: Double
    /// librdkafka properties for every client, as with kcat's -X.
    public var properties: [String: String]

    public var topics: Topics { Topics(prefix: topicPrefix) }
}

/// The topic names of a run.
public struct Topics: Sendable, Equatable, Encodable {
    public var requests, recommendations, feedback, deadLetter: String
    /// Model updates from attached trainers to servers (attach mode).
    public var model: String
    public init(prefix: String) {
        requests = "\(prefix).requests"
        recommendations = "\(prefix).recommendations"
        feedback = "\(prefix).feedback"
        deadLetter = "\(prefix).dead-letter"
        model = "\(prefix).model"
    }
    /// The topics a run uses.
    public var all: [String] { [requests, recommendations, feedback, deadLetter] }
    /// The topics the attach roles use (a run's, and the model updates').
    public var attach: [String] { all + [model] }
}

public struct OutputSettings: Sendable, Equatable, Encodable {
    /// Where reports go; nil writes none (the table is still printed).
    public var directory: String?
    /// Show progress on standard error while running.
    public var progress: Bool
}

extension Scenario {
    /// The resolved settings as canonical JSON (every default filled in, keys sorted).
    public var canonicalJSON: JSONValue {
        do { return try CanonicalJSON.encode(self) } catch { preconditionFailure("a scenario does not encode: \(error)") }
    }

    /// A fingerprint of everything that decides the results except the seed (which a
    /// report gives beside it): FNV-1a over the canonical JSON of the resolved settings,
    /// with the transport (`kafka`) and `output`, which do not change results, left out.
    /// Same fingerprint, same seed, same recstream: the same results. It depends on the
    /// settings alone (not on a toolchain's debug descriptions), so checkpoints and model
    /// updates keep their identity across toolchain upgrades.
    public var fingerprint: String {
        var s = self
        s.seed = 0
        s.kafka = KafkaSettings(brokers: nil, topicPrefix: "", partitions: 1, replicationFactor: 1, stallTimeoutSeconds: 1, properties: [:])
        s.output = OutputSettings(directory: nil, progress: false)
        return Self.fingerprint(of: s.canonicalJSON)
    }

    /// FNV-1a over a document's compact JSON, as 16 hex digits (a model file's too).
    static func fingerprint(of document: JSONValue) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in document.rendered(pretty: false).utf8 {
            hash ^= UInt64(byte)
            hash &*= 0x0000_0100_0000_01b3
        }
        return String(hash, radix: 16).leftPadded(to: 16)
    }
}

extension String {
    func leftPadded(to width: Int) -> String { String(repeating: "0", count: max(0, width - count)) + self }
}
