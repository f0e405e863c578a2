import RecCore
import Scenario

/// What an experiment records, tick by tick, whatever runs it: the lockstep run
/// (`recstream run`) and the free-running simulator (`recstream simulate`) both feed one
/// ledger, so the two cannot count differently.
///
/// Per tick, in this order: `recordRequests` (who asked, and which arm serves each
/// request), `recordRegret` (a sample of the served slates against the oracle),
/// `recordFeedback` (what users did, and which arm learns from each event), the serving
/// logs of each arm (`joinOffPolicy`, `countDiscoveries`), `traceInterests`, and
/// `endTick`. Then `results` assembles the experiment's outcome.
///
/// Every record carries the user's *assigned* arm (the wire format's `arm` field); the
/// warm-up rule of `Scenario.servingArm` and `Scenario.learns` says who serves and who
/// learns. Metrics always go to the assigned arm, so each user's warm-up ticks become
/// their CUPED covariate.
///
/// In a paired design every arm has every user, and a record's `arm` names the copy of
/// the population it comes from: the control's in the shared warm-up (whose metrics go to
/// every arm, so the arms share the covariate as they share the history), then each arm's
/// own. Records are then ordered by (user, sequence, arm): each arm's share keeps the
/// split design's (user, sequence) order.
public struct ExperimentLedger: Sendable {
    public let scenario: Scenario
    public let assignment: ArmAssignment
    /// Each arm's metrics so far.
    public private(set) var arms: [ArmMetrics]
    /// Per arm: the positions, in the tick's requests, of the requests it serves this tick.
    public private(set) var serving: [[Int]]
    /// Per arm: the feedback it learns from this tick, in canonical order (see
    /// `recordFeedback`).
    public private(set) var learning: [[Feedback]]
    /// Per logging arm: its off-policy estimates of other arms' policies.
    public private(set) var offPolicy: [[OffPolicyComparison]]
    /// Per arm: the arms whose policies are estimated from its log (`offPolicyTargets`).
    public let offPolicyTargets: [[Int]]
    /// Per reported pair, per per-user metric: the lift after every tick since the split.
    public private(set) var sequential: [[PerUserMetric: SequentialTrace]]
    /// The tick after which `experiment.stopWhen` was met, if it was.
    public private(set) var stoppedAfter: Int?
    let users: UInt32
    let paired: Bool

    /// `offPolicy`: whether the runner has the arms' serving logs to join (a run does; the
    /// simulator does not, its servers keep theirs), so results estimate other policies.
    public init(scenario: Scenario, assignment: ArmAssignment, items: Int, offPolicy estimates: Bool = true) {
        self.scenario = scenario
        self.assignment = assignment
        users = UInt32(assignment.arm.count)
        paired = scenario.isPaired
        arms = scenario.arms.enumerated().map {
            ArmMetrics(name: $1.name, users: assignment.armSizes[$0], items: items, newItemTicks: scenario.experiment.newItemTicks)
        }
        serving = Array(repeating: [], count: scenario.arms.count)
        learning = Array(repeating: [], count: scenario.arms.count)
        let targets = estimates ? Experiment.offPolicyTargets(scenario) : scenario.arms.map { _ in [] }
        offPolicyTargets = targets
        offPolicy = targets.enumerated().map { logging, targets in targets.map { OffPolicyComparison(logging: logging, target: $0) } }
        let looks = scenario.ticks - scenario.experiment.warmupTicks
        sequential = scenario.comparedPairs.map { _ in
            Dictionary(uniqueKeysWithValues: PerUserMetric.allCases.map { ($0, SequentialTrace(plannedLooks: looks)) })
        }
    }

    /// The slot of `user` in its arm's per-user arrays.
    @inline(__always)
    func slot(_ user: UserID) -> Int { Int(assignment.slot[Int(user)]) }

    /// A record belongs to this experiment and this tick: a user of the population, carrying
    /// the arm that user is assigned to, stamped with the current tick.
    @inline(__always)
    public func check(_ h: RecordHeader, tick: Tick) throws(WireError) {
        guard h.user < users else { throw WireError("user \(h.user) is not in the population of \(users)", at: 8) }
        if paired && !scenario.isWarmup(tick) {
            guard Int(h.arm) < arms.count else { throw WireError("user \(h.user)'s record names arm \(h.arm), not one of the \(arms.count) arms", at: 2) }
        } else {
            guard h.arm == assignment.arm[Int(h.user)] else { throw WireError("user \(h.user) is in arm \(assignment.arm[Int(h.user)]), not \(h.arm)", at: 2) }
        }
        guard h.tick == tick else { throw WireError("record of tick \(h.tick) arrived in tick \(tick)", at: 4) }
    }

    // MARK: The tick's phases

    /// Counts the tick's requests (in (user, sequence) order) and routes each to the arm
    /// that serves it (`serving`).
    public mutating func recordRequests(_ requests: [Request], tick: Tick) {
        for arm in serving.indices { serving[arm].removeAll(keepingCapacity: true) }
        let shared = paired && scenario.isWarmup(tick)
        for (i, r) in requests.enumerated() {
            let arm = Int(r.header.arm)
            serving[scenario.servingArm(assigned: arm, tick: tick)].append(i)
            let slot = slot(r.header.user)
            forEachCounting(arm, shared: shared) { $0.recordRequest(slot: slot, tick: tick) }
        }
    }

    /// The order of a tick's records: (user, sequence), then the arm (which only a paired
    /// design's copies of one user tell apart).
    @inline(__always)
    public static func precedes(_ a: RecordHeader, _ b: RecordHeader) -> Bool {
        (a.user, a.sequence, a.arm) < (b.user, b.sequence, b.arm)
    }

    /// Whether slates of `tick` are sampled for regret: after the warm-up only (the arms do
    /// not serve their own users before it), at the scenario's share.
    public func samplesRegret(at tick: Tick) -> Bool {
        !scenario.isWarmup(tick) && scenario.experiment.regretSample > 0
    }

    /// Regret against the oracle on a sample of the tick's slates (in (user, sequence)
    /// order). `expectedClicks` gives, for a user and the slate they were shown, the
    /// expected clicks of that slate and of the oracle's slate of the same length: the truth
    /// is the simulator's, and no arm sees it.
    public mutating func recordRegret(slates: [(header: SlateHeader, start: Int)], entries: [SlateEntry], tick: Tick,
                                      expectedClicks: (RecordHeader, ArraySlice<SlateEntry>) -> (served: Double, oracle: Double)) {
        guard samplesRegret(at: tick) else { return }
        let share = scenario.experiment.regretSample
        for (h, start) in slates where regretSampled(h.header, seed: scenario.seed, share: share) {
            let e = expectedClicks(h.header, entries[start..<start + h.itemCount])
            arms[Int(h.header.arm)].recordRegret(served: e.served, oracle: e.oracle)
        }
    }

    /// Counts the tick's feedback and routes each event to the arms that learn from it
    /// (`learning`). Sorts `feedback` first into the canonical order, (user, sequence,
    /// position, event, arm): the order the metrics add up in (so their bits do not depend
    /// on arrival), and the one learners rely on, each click right after its impression.
    /// (`arm` only tells a paired design's copies apart: a split design's user has one.)
    /// `itemBorn` is the tick each item arrived (0 for the initial catalog).
    public mutating func recordFeedback(_ feedback: inout [Feedback], tick: Tick, itemBorn: [Int32]) {
        feedback.sort {
            ($0.header.user, $0.header.sequence, $0.position, $0.event.rawValue, $0.header.arm)
                < ($1.header.user, $1.header.sequence, $1.position, $1.event.rawValue, $1.header.arm)
        }
        for arm in learning.indices { learning[arm].removeAll(keepingCapacity: true) }
        let everyone = scenario.isWarmup(tick)
        let shared = paired && everyone
        for f in feedback {
            let arm = Int(f.header.arm)
            if everyone {
                for a in learning.indices { learning[a].append(f) }
            } else {
                learning[arm].append(f)
            }
            let (slot, born) = (slot(f.header.user), itemBorn[Int(f.item)])
            forEachCounting(arm, shared: shared) { $0.record(f, slot: slot, itemBorn: born) }
        }
    }

    /// Counts a record in the metrics of its arm, or, in a paired design's shared warm-up,
    /// of every arm.
    @inline(__always)
    mutating func forEachCounting(_ arm: Int, shared: Bool, _ count: (inout ArmMetrics) -> Void) {
        if shared {
            for a in arms.indices { count(&arms[a]) }
        } else {
            count(&arms[arm])
        }
    }

    /// Joins arm `arm`'s off-policy log of the tick (in (user, sequence) order) with the
    /// feedback it learns from, after the warm-up.
    public mutating func joinOffPolicy(arm: Int, log: [OffPolicyRecord], tick: Tick) {
        guard !scenario.isWarmup(tick), !offPolicy[arm].isEmpty else { return }
        estimateOffPolicy(log: log, feedback: learning[arm], into: &offPolicy[arm])
    }

    /// Joins a SPARC arm's log of where shown items came from with its clicks of the tick,
    /// after the warm-up: each user's first click in an interest, and the discoveries.
    public mutating func countDiscoveries(arm: Int, log: [InterestLogEntry], tick: Tick) {
        guard !scenario.isWarmup(tick), case .towers(let t) = scenario.arms[arm].retrieval, let serving = t.serving else { return }
        let codes = t.codes[0], threshold = serving.discoveryBelow
        let feedback = learning[arm]
        var l = 0
        for f in feedback where f.event == .click {
            let key = (f.header.user, f.header.sequence)
            while l < log.count && (log[l].user, log[l].sequence) < key { l += 1 }
            var m = l
            while m < log.count && (log[m].user, log[m].sequence) == key {
                if log[m].item == f.item {
                    if log[m].interest >= 0 {
                        arms[arm].recordInterestClick(slot: slot(f.header.user), interest: Int(log[m].interest), probability: log[m].probability,
                                                      codes: codes, threshold: threshold)
                    }
                    break
                }
                m += 1
            }
        }
    }

    /// Users whose interests the report follows, per SPARC arm: the first ones assigned to it
    /// (in a paired design, the population's first).
    public static let tracedUsers = 8

    /// Appends a SPARC arm's traced users' three most probable interests after this tick;
    /// `distribution` gives a user's serving distribution over the level-0 codes.
    public mutating func traceInterests(arm: Int, distribution: (UserID) -> [Double]) {
        if arms[arm].interestTrace.isEmpty {
            let assigned = assignment.arm
            let users = assigned.indices.filter { paired || Int(assigned[$0]) == arm }.prefix(Self.tracedUsers)
            arms[arm].interestTrace = users.map { InterestTrace(user: UserID($0)) }
        }
        for i in arms[arm].interestTrace.indices {
            let p = distribution(arms[arm].interestTrace[i].user)
            let top = p.indices.sorted { (p[$0], $1) > (p[$1], $0) }.prefix(3).map { (code: $0, probability: p[$0]) }
            arms[arm].interestTrace[i].ticks.append(Array(top))
        }
    }

    /// What an arm's interest model became, at the end.
    public mutating func setInterestSummary(arm: Int, _ summary: InterestSummary) {
        arms[arm].interestSummary = summary
    }

    /// Closes the tick; the last warm-up tick also ends the warm-up. After the split, each
    /// reported pair's lifts are read (`sequential`) and `experiment.stopWhen` checked.
    public mutating func endTick(_ tick: Tick) {
        for arm in arms.indices {
            arms[arm].endTick()
            if Int(tick) + 1 == scenario.experiment.warmupTicks { arms[arm].endWarmup() }
        }
        guard !scenario.isWarmup(tick) else { return }
        let pairs = scenario.comparedPairs
        for (p, (t, b)) in pairs.enumerated() {
            for metric in PerUserMetric.allCases {
                sequential[p][metric]!.add(tick: Int(tick), ExperimentResults.compare(arms, scenario, t, b, metric))
            }
        }
        if let rule = scenario.experiment.stopWhen, stoppedAfter == nil, let metric = PerUserMetric(rawValue: rule.metric.rawValue),
           rule.comparison < pairs.count, Int(tick) + 1 - scenario.experiment.warmupTicks >= rule.minTicks,
           sequential[rule.comparison][metric]!.decidedNow {
            stoppedAfter = Int(tick)
        }
    }

    // MARK: The outcome

    /// The experiment's results. `ticks`: the ticks that ran, when fewer than the
    /// scenario's (a simulation stopped early).
    public func results(ticks: Int? = nil, catalogSize: Int, items: ItemFacts, modelEvaluations: [[TickEvaluation]] = [],
                        messages: [String: Int]) -> ExperimentResults {
        var s = scenario
        if let ticks { s.ticks = ticks }
        return ExperimentResults(scenario: s, arms: arms, catalogSize: catalogSize, items: items, modelEvaluations: modelEvaluations,
                                 offPolicy: offPolicy.flatMap { $0 }, messages: messages, sequential: sequential, stoppedAfter: stoppedAfter)
    }
}

/// Whether a slate is in the regret sample: a hash of (seed, user, sequence), so the sample
/// is the same whatever the partitioning.
@inline(__always)
public func regretSampled(_ h: RecordHeader, seed: UInt64, share: Double) -> Bool {
    let x = SplitMix64.mix(seed ^ 0x5245_4752_4554 ^ (UInt64(h.user) << 32 | UInt64(h.sequence)))
    return Double(x >> 11) * 0x1p-53 < share
}

/// Whether a request is answered with the oracle's slate in an arm that plants it
/// (`oracleShare`): a hash of (seed, user, tick), so every copy of a user in a paired
/// design, and every partitioning, plants the same requests.
@inline(__always)
public func oraclePlanted(_ h: RecordHeader, seed: UInt64, share: Double) -> Bool {
    let x = SplitMix64.mix(seed ^ 0x4F52_4143_4C45 ^ (UInt64(h.user) << 32 | UInt64(h.tick)))
    return Double(x >> 11) * 0x1p-53 < share
}

/// For each arm, the arms whose policy can be evaluated on its log: arms that retrieve,
/// rank and take candidates as it does (so the same scores feed both policies) and whose
/// policy has a closed form (not Thompson), when this arm's policy explores (its logged
/// propensities are below 1, so other choices have support).
public func offPolicyTargets(_ s: Scenario) -> [[Int]] {
    s.arms.indices.map { l in
        let logging = s.arms[l]
        let explores: Bool
        switch logging.policy {
        case .epsilonGreedy(let e): explores = e > 0
        case .softmax, .thompson, .interestSampling: explores = true
        case .greedy, .ucb: explores = logging.ranking == .random
        }
        // A planted oracle's slates are not the policy's choices.
        guard explores, logging.oracleShare == 0 else { return [] }
        return Array(s.arms.indices.filter { t in
            let target = s.arms[t]
            if case .thompson = target.policy { return false }
            if case .interestSampling = target.policy { return false }
            return t != l && target.oracleShare == 0 && target.retrieval == logging.retrieval && target.ranking == logging.ranking
                && target.candidates == logging.candidates && target.policy != logging.policy
        }.prefix(OffPolicyRecord.maxTargets))
    }
}

/// Joins one arm's served top items with their feedback (both in (user, sequence) order)
/// and adds each to the estimates of every target policy: reward 1 or 0 for a click on the
/// top item, and its view seconds.
func estimateOffPolicy(log: [OffPolicyRecord], feedback: [Feedback], into comparisons: inout [OffPolicyComparison]) {
    var f = 0
    for record in log {
        var click = 0.0, seconds = 0.0
        let key = (record.user, record.sequence)
        while f < feedback.count && (feedback[f].header.user, feedback[f].header.sequence) < key { f += 1 }
        var g = f
        while g < feedback.count && (feedback[g].header.user, feedback[g].header.sequence) == key {
            if feedback[g].event == .click && feedback[g].position == 0 {
                click = 1
                seconds = Double(feedback[g].viewSeconds)
            }
            g += 1
        }
        let vbar = record.viewSecondsPerClick
        for t in comparisons.indices {
            let p = record.targetProbability[t]
            guard !p.isNaN else { continue }
            let dm = record.targetPredictedClick[t]
            comparisons[t].clicks.add(targetProbability: p, loggingPropensity: record.loggingPropensity, reward: click,
                                      predicted: record.predictedClick, predictedUnderTarget: dm)
            comparisons[t].viewSeconds.add(targetProbability: p, loggingPropensity: record.loggingPropensity, reward: seconds,
                                           predicted: record.predictedClick * vbar, predictedUnderTarget: dm * vbar)
        }
    }
}
