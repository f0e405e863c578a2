import Dispatch
import Experiment
import Foundation
import Histogram
import Kafka
import Models
import Population
import RecCore
import Scenario
import Server
import Trainer

/// Overrides of a scenario's values from the command line.
public struct RunOptions: Sendable {
    public var seed: UInt64?
    public var partitions: Int?
    public var brokers: String?
    /// librdkafka properties laid over the scenario's `kafka.properties` (`-X key=value`).
    public var properties: [String: String] = [:]
    public var progress: Bool?
    /// Threads the population steps users on (nil: all cores). Results do not depend on it.
    public var threads: Int?
    /// Write the latent state (items; each user's interests each tick) as JSON lines here.
    public var truthPath: String?
    public init() {}

    public func applied(to scenario: Scenario) -> Scenario {
        var s = scenario
        if let seed { s.seed = seed }
        if let partitions { s.kafka.partitions = partitions }
        if let brokers { s.kafka.brokers = brokers }
        s.kafka.properties.merge(properties) { _, new in new }
        if let progress { s.output.progress = progress }
        return s
    }
}

/// Runs a scenario in lockstep (shared/DESIGN.md section 1) over Kafka: tick t's requests
/// are all answered, and its feedback all applied, before tick t+1 starts; within a tick,
/// work is ordered by (user, sequence), never by arrival. So the results are a function of
/// (scenario, seed) alone, whatever the partition count or timing.
public final class LockstepRun {
    public let scenario: Scenario
    public var options = RunOptions()
    let embedded: EmbeddedBroker?
    /// Called at the start of every tick (tests use it to inject faults).
    public var onTick: ((Tick) -> Void)?
    /// Called after every tick.
    public var onProgress: ((RunProgress) -> Void)?

    /// - Parameter broker: an embedded broker to run on; nil starts one when the scenario
    ///   names no brokers.
    public init(scenario: Scenario, broker: EmbeddedBroker? = nil) throws {
        self.scenario = scenario
        if let broker {
            embedded = broker
        } else if scenario.kafka.brokers == nil {
            embedded = try EmbeddedBroker()
        } else {
            embedded = nil
        }
    }

    public var bootstrapServers: String { embedded?.bootstrapServers ?? scenario.kafka.brokers! }

    public func run() throws -> RunReport {
        let started = ContinuousClock.now
        let s = scenario
        let topics = s.kafka.topics
        let stall = s.kafka.stallTimeoutSeconds
        let stallMs = String(Int(stall * 1000))
        let base = KafkaConfiguration(bootstrapServers: bootstrapServers).merging(s.kafka.properties)

        let partitions = try provisionTopics(base, topics: topics)

        var producerConfig = base
        producerConfig.setDefault("message.timeout.ms", stallMs)
        producerConfig.setDefault("client.id", "recstream-\(s.kafka.topicPrefix)")
        let producer = try KafkaProducer(configuration: producerConfig)

        func channel(_ stage: String, _ topic: String) throws -> StageChannel {
            var c = base
            c.setDefault("group.id", "recstream-\(s.kafka.topicPrefix)-\(stage)")
            c.setDefault("fetch.wait.max.ms", "1")  // the mock holds empty fetches this long
            c.setDefault("auto.offset.reset", "error")  // never skip silently
            // Keep fetching while a phase is still producing: a fetcher that pauses at
            // the default 100k queued messages can fall behind a broker's retention.
            c.setDefault("queued.min.messages", "10000000")
            let consumer = try KafkaConsumer(configuration: c)
            var start: [Int32: Int64] = [:]
            for p in 0..<Int32(partitions[topic]!) {
                start[p] = try consumer.watermarks(TopicPartition(topic, p), timeoutMilliseconds: Int32(stall * 1000)).high
            }
            return try StageChannel(stage: stage, topic: producer.topic(topic), consumer: consumer, start: start)
        }
        let requestStage = try channel("requests", topics.requests)
        let slateStage = try channel("recommendations", topics.recommendations)
        let feedbackStage = try channel("feedback", topics.feedback)
        let setupDone = ContinuousClock.now

        let population = Population(s, threads: options.threads)
        let initialItems = population.catalog.count
        let assignment = population.assignment
        var servers = s.arms.enumerated().map { ArmServer(settings: $1, armIndex: $0, catalogSize: initialItems, seed: s.seed) }
        let categoryCount = s.catalog.topCategories * s.catalog.subcategories
        let userFeatures = (0..<population.userCount).map { population.features(of: UserID($0)) }
        let trainers = s.arms.enumerated().map { arm, settings in
            ArmTrainer(items: initialItems, ranking: settings.ranking, retrieval: settings.retrieval, users: population.userCount,
                       histories: population.histories, categories: population.catalog.subcategory.map(UInt32.init), categoryCount: categoryCount,
                       content: TowerInputs(tokens: population.catalog.tokens, tokensPerItem: s.catalog.tokensPerItem,
                                            vocabulary: s.catalog.vocabulary, live: population.catalog.alive,
                                            userFeatures: userFeatures),
                       seed: s.seed &+ UInt64(arm))
        }
        var metrics = s.arms.enumerated().map {
            ArmMetrics(name: $1.name, users: assignment.armSizes[$0], items: initialItems, newItemTicks: s.experiment.newItemTicks)
        }
        // Off-policy evaluation: each arm whose policy explores logs, for every other arm
        // that differs from it in policy only, the chance that policy had of its top item.
        let evaluated = offPolicyTargets(s)
        for arm in servers.indices { servers[arm].offPolicyTargets = evaluated[arm].map { s.arms[$0].policy } }
        var offPolicy = evaluated.enumerated().map { logging, targets in targets.map { OffPolicyComparison(logging: logging, target: $0) } }
        let users = UInt32(population.userCount)
        let truth = try options.truthPath.map { try TruthWriter(path: $0) }
        try truth?.write(population.itemTruthLines())
        let populationReady = ContinuousClock.now

        let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: Wire.slateSize(items: Wire.maxSlateSize), alignment: 8)
        defer { scratch.deallocate() }
        var requests: [Request] = []
        var slateHeaders: [(header: SlateHeader, start: Int)] = []
        var slateEntries: [SlateEntry] = []
        var feedback: [Feedback] = []
        var outgoing: [Feedback] = []
        var byArm = [[Feedback]](repeating: [], count: s.arms.count)
        var armRequests = [[Int]](repeating: [], count: s.arms.count)
        var armSlates = [[SlateEntry]](repeating: [], count: s.arms.count)
        var slateStarts: [(Int, Int)] = []
        var asked: [Request] = []
        var timings = PhaseTimings()
        // Time to serve each request (retrieve, score, build the slate), per arm, in ns.
        var latency = s.arms.map { _ in Histogram<UInt64>(highestTrackableValue: 60_000_000_000, numberOfSignificantValueDigits: .three) }

        let control = s.controlArm
        for t in 0..<s.ticks {
            let tick = Tick(t)
            onTick?(tick)
            // In the warm-up (before the split) the control arm serves every user, as
            // production would before an experiment starts; records still carry each
            // user's assigned arm, so its metrics in these ticks become its covariate.
            let warmingUp = t < s.experiment.warmupTicks

            // 0. New items arrive, old ones retire: the arms' catalog feed.
            let itemsBefore = population.catalog.count
            if population.advanceCatalog(to: tick) {
                let categories = population.catalog.subcategory.map(UInt32.init)
                let arrived = population.catalog.bornTick.indices.map { $0 < initialItems ? Int32.min : population.catalog.bornTick[$0] }
                for arm in servers.indices {
                    servers[arm].updateCatalog(live: population.catalog.liveItems, count: population.catalog.count, arrived: arrived)
                    trainers[arm].updateCatalog(categories: categories, categoryCount: categoryCount, tokens: population.catalog.tokens,
                                                live: population.catalog.liveItems)
                }
                try truth?.write(population.itemTruthLines(from: itemsBefore))
            }
            let catalogSize = population.catalog.count

            // 1. Users ask for slates.
            var clock = PhaseClock()
            asked.removeAll(keepingCapacity: true)
            population.requests(at: tick, into: &asked)
            clock.lap(&timings.population)
            requests.removeAll(keepingCapacity: true)
            let takeRequest = { (bytes: UnsafeRawBufferPointer) throws(WireError) in
                let r = try Wire.decodeRequest(bytes)
                try check(r.header, users: users, tick: tick, assignment: assignment)
                requests.append(r)
            }
            for request in asked {
                try requestStage.send(producer, user: request.header.user, UnsafeRawBufferPointer(rebasing: scratch[..<Wire.encode(request, into: scratch)]),
                                      deadLetterTopic: topics.deadLetter, takeRequest)
            }
            try requestStage.drain(producer, deadLetterTopic: topics.deadLetter, stallSeconds: stall, tick: tick, takeRequest)
            requests.sort { ($0.header.user, $0.header.sequence) < ($1.header.user, $1.header.sequence) }
            if slateStarts.count < requests.count { slateStarts = Array(repeating: (0, 0), count: requests.count) }
            clock.lap(&timings.kafka)

            // 2. Each arm serves its users; arms are independent, so they serve at once,
            //    each into its own buffer. Slates are then sent in (user, sequence) order.
            for arm in armRequests.indices { armRequests[arm].removeAll(keepingCapacity: true) }
            for arm in servers.indices { servers[arm].clearOffPolicyLog() }
            for (i, r) in requests.enumerated() {
                armRequests[warmingUp ? control : Int(r.header.arm)].append(i)
                metrics[Int(r.header.arm)].recordRequest(slot: Int(assignment.slot[Int(r.header.user)]), tick: tick)
            }
            clock.lap(&timings.statistics)
            servers.withUnsafeMutableBufferPointer { serverBuffer in
                armSlates.withUnsafeMutableBufferPointer { slateBuffer in
                    slateStarts.withUnsafeMutableBufferPointer { startBuffer in
                        latency.withUnsafeMutableBufferPointer { latencyBuffer in
                            let work = ServeWork(servers: serverBuffer, slates: slateBuffer, starts: startBuffer, latency: latencyBuffer,
                                                 trainers: trainers, requests: requests, byArm: armRequests)
                            DispatchQueue.concurrentPerform(iterations: work.servers.count) { arm in
                                work.serve(arm: arm)
                            }
                        }
                    }
                }
            }
            clock.lap(&timings.serve)
            slateHeaders.removeAll(keepingCapacity: true)
            slateEntries.removeAll(keepingCapacity: true)
            let takeSlate = { (bytes: UnsafeRawBufferPointer) throws(WireError) in
                let start = slateEntries.count
                let h = try Wire.decodeSlate(bytes, appendingTo: &slateEntries)
                do throws(WireError) {
                    try check(h.header, users: users, tick: tick, assignment: assignment)
                    for e in slateEntries[start...] where Int(e.item) >= catalogSize {
                        throw WireError("item \(e.item) is not in the catalog of \(catalogSize) items", at: Wire.slateHeaderSize)
                    }
                } catch {
                    slateEntries.removeSubrange(start...)
                    throw error
                }
                slateHeaders.append((h, start))
            }
            for (i, r) in requests.enumerated() {
                let arm = warmingUp ? control : Int(r.header.arm)
                let (start, count) = slateStarts[i]
                let n = armSlates[arm].withUnsafeBufferPointer {
                    Wire.encodeSlate(r.header, policy: UInt16(arm), entries: UnsafeBufferPointer(rebasing: $0[start..<start + count]), into: scratch)
                }
                try slateStage.send(producer, user: r.header.user, UnsafeRawBufferPointer(rebasing: scratch[..<n]),
                                    deadLetterTopic: topics.deadLetter, takeSlate)
            }
            try slateStage.drain(producer, deadLetterTopic: topics.deadLetter, stallSeconds: stall, tick: tick, takeSlate)
            slateHeaders.sort { ($0.header.header.user, $0.header.header.sequence) < ($1.header.header.user, $1.header.header.sequence) }
            clock.lap(&timings.kafka)

            // 2b. Regret against the oracle, on a sample of the slates (the truth is the
            //     simulator's; no arm sees it).
            if !warmingUp && s.experiment.regretSample > 0 {
                for (h, start) in slateHeaders where regretSampled(h.header, seed: s.seed, share: s.experiment.regretSample) {
                    let entries = slateEntries[start..<start + h.itemCount].lazy.map(\.item)
                    let served = population.expectedClicks(user: h.header.user, slate: entries)
                    let oracle = population.oracleExpectedClicks(user: h.header.user, k: h.itemCount)
                    metrics[Int(h.header.arm)].recordRegret(served: served, oracle: oracle)
                }
                clock.lap(&timings.statistics)
            }

            // 3. Users respond; purchases from earlier clicks land now.
            outgoing.removeAll(keepingCapacity: true)
            population.respond(to: slateHeaders, entries: slateEntries, at: tick, into: &outgoing)
            clock.lap(&timings.population)
            feedback.removeAll(keepingCapacity: true)
            let takeFeedback = { (bytes: UnsafeRawBufferPointer) throws(WireError) in
                let f = try Wire.decodeFeedback(bytes)
                try check(f.header, users: users, tick: tick, assignment: assignment)
                guard Int(f.item) < catalogSize else {
                    throw WireError("item \(f.item) is not in the catalog of \(catalogSize) items", at: 20)
                }
                feedback.append(f)
            }
            for f in outgoing {
                try feedbackStage.send(producer, user: f.header.user, UnsafeRawBufferPointer(rebasing: scratch[..<Wire.encode(f, into: scratch)]),
                                       deadLetterTopic: topics.deadLetter, takeFeedback)
            }
            try feedbackStage.drain(producer, deadLetterTopic: topics.deadLetter, stallSeconds: stall, tick: tick, takeFeedback)
            feedback.sort {
                ($0.header.user, $0.header.sequence, $0.position, $0.event.rawValue)
                    < ($1.header.user, $1.header.sequence, $1.position, $1.event.rawValue)
            }
            clock.lap(&timings.kafka)

            // 4. Each arm learns from its own feedback, and the experiment counts it. In
            //    the warm-up every arm learns from the whole log (the control's, as a new
            //    model is trained on production logs), so arms start the split alike.
            for arm in byArm.indices { byArm[arm].removeAll(keepingCapacity: true) }
            for f in feedback {
                let arm = Int(f.header.arm)
                if warmingUp {
                    for a in byArm.indices { byArm[a].append(f) }
                } else {
                    byArm[arm].append(f)
                }
                metrics[arm].record(f, slot: Int(assignment.slot[Int(f.header.user)]), itemBorn: population.catalog.bornTick[Int(f.item)])
            }
            if !warmingUp {
                for arm in offPolicy.indices where !offPolicy[arm].isEmpty {
                    estimateOffPolicy(log: servers[arm].offPolicyLog, feedback: byArm[arm], into: &offPolicy[arm])
                }
                for arm in servers.indices {
                    guard case .towers(let t) = s.arms[arm].retrieval, let serving = t.serving else { continue }
                    countDiscoveries(log: servers[arm].interestLog, feedback: byArm[arm], codes: t.codes[0], threshold: serving.discoveryBelow,
                                     slot: { Int(assignment.slot[Int($0)]) }, into: &metrics[arm])
                }
            }
            clock.lap(&timings.statistics)
            // Arms learn independently (no arm reads another's state), so they train at once.
            let work = ArmWork(trainers: trainers, feedback: byArm)
            let alive = population.catalog.alive
            DispatchQueue.concurrentPerform(iterations: trainers.count) { arm in
                work.trainers[arm].apply(tick: tick, feedback: work.feedback[arm][...])
                work.trainers[arm].endTick(live: alive)
            }
            for arm in servers.indices { servers[arm].refresh(from: trainers[arm].statistics) }
            clock.lap(&timings.train)
            traceInterests(trainers: trainers, metrics: &metrics, scenario: s, assignment: assignment)
            for arm in servers.indices {
                metrics[arm].endTick()
                if t + 1 == s.experiment.warmupTicks { metrics[arm].endWarmup() }
            }
            clock.lap(&timings.statistics)
            population.endTick(tick)
            try truth?.write(population.userTruthLines(tick: tick))
            clock.lap(&timings.population)
            onProgress?(RunProgress(tick: t, ticks: s.ticks,
                                    messages: requestStage.received + slateStage.received + feedbackStage.received))
        }
        try producer.flush(timeoutMilliseconds: Int32(stall * 1000))
        let finished = ContinuousClock.now

        // What each SPARC arm's interests became, against the world's true topics.
        for arm in trainers.indices {
            guard let learner = trainers[arm].towers, let q = learner.towers.quantizer else { continue }
            let index = learner.towers.index
            let agreement = InterestSummary.agreement(code: index.codeOf, topic: population.catalog.topic.map(Int.init))
            metrics[arm].interestSummary = InterestSummary(
                codes: q.codes[0], codesInUse: index.buckets.filter { !$0.isEmpty }.count, perplexity: q.perplexity,
                deadCodes: q.deadCodes(level: 0), restarts: q.restarts, purity: agreement.purity, nmi: agreement.nmi)
        }
        let results = ExperimentResults(
            scenario: s, arms: metrics, catalogSize: population.catalog.count,
            items: ItemFacts(born: population.catalog.bornTick, head: population.catalog.popularHead(share: 0.2)),
            modelEvaluations: trainers.map(\.evaluations),
            offPolicy: offPolicy.flatMap { $0 },
            messages: [
                "requests": requestStage.received, "recommendations": slateStage.received, "feedback": feedbackStage.received,
                "deadLetters": requestStage.deadLetters + slateStage.deadLetters + feedbackStage.deadLetters,
                "purchasesPendingAtEnd": population.purchasesPending,
            ])
        let messageCount = requestStage.received + slateStage.received + feedbackStage.received
        let runSeconds = (finished - populationReady).seconds
        return RunReport(
            results: results,
            run: RunInfo(bootstrapServers: bootstrapServers, embedded: embedded != nil, partitions: partitions[topics.requests]!,
                         setupSeconds: (setupDone - started).seconds, populationSeconds: (populationReady - setupDone).seconds,
                         runSeconds: runSeconds,
                         messagesPerSecond: Double(messageCount) / max(runSeconds, 1e-9), phases: timings,
                         serveLatency: zip(s.arms, latency).map { ServeLatency(arm: $0.name, histogram: $1) }))
    }

    /// Creates the run's topics (on the embedded broker, or through the admin API) and
    /// returns each topic's partition count as the cluster reports it.
    func provisionTopics(_ base: KafkaConfiguration, topics: Topics) throws -> [String: Int] {
        let k = scenario.kafka
        let timeoutMs = Int32(min(k.stallTimeoutSeconds, 30) * 1000)
        let admin = try KafkaAdmin(configuration: base)
        if let embedded {
            for topic in topics.all { try embedded.createTopic(topic, partitions: k.partitions) }
        } else {
            do {
                _ = try admin.metadata(timeoutMilliseconds: timeoutMs)
            } catch {
                throw RunError("cannot reach Kafka at \(bootstrapServers) (waited \(format(seconds: Double(timeoutMs) / 1000))): \(error)")
            }
            do {
                try admin.createTopics(topics.all.map { NewTopic($0, partitions: k.partitions, replicationFactor: k.replicationFactor) },
                                       timeoutMilliseconds: timeoutMs)
            } catch {
                // Some clusters (the embedded broker among them) lack CreateTopics but
                // create topics on a metadata request; the partition count is then theirs.
                for topic in topics.all {
                    let requested = try? admin.requestTopic(topic, timeoutMilliseconds: timeoutMs)
                    guard let metadata = requested ?? nil, metadata.error == nil else {
                        throw RunError("cannot create topic \"\(topic)\" on \(bootstrapServers): \(error); create the topics first (e.g. recstream broker --topics)")
                    }
                }
            }
        }
        // Wait until every topic shows in the metadata with its partitions.
        let deadline = ContinuousClock.now + .milliseconds(Int64(timeoutMs))
        while true {
            let md = try admin.metadata(timeoutMilliseconds: timeoutMs)
            var counts: [String: Int] = [:]
            for topic in topics.all {
                if let t = md.topic(topic), t.error == nil, t.partitionCount > 0 { counts[topic] = t.partitionCount }
            }
            if counts.count == topics.all.count { return counts }
            if ContinuousClock.now > deadline {
                throw RunError("topics \(topics.all.filter { counts[$0] == nil }) did not appear on \(bootstrapServers) within \(format(seconds: Double(timeoutMs) / 1000))")
            }
            Thread.sleep(forTimeInterval: 0.05)
        }
    }
}

/// Whether a slate is in the regret sample: a hash of (seed, user, sequence), so the sample
/// is the same whatever the partitioning.
@inline(__always)
public func regretSampled(_ h: RecordHeader, seed: UInt64, share: Double) -> Bool {
    let x = SplitMix64.mix(seed ^ 0x5245_4752_4554 ^ (UInt64(h.user) << 32 | UInt64(h.sequence)))
    return Double(x >> 11) * 0x1p-53 < share
}

/// Users whose interests the report follows, per SPARC arm: the first `tracedUsers`
/// assigned to it.
let tracedUsers = 8

/// Appends, for each SPARC arm, its traced users' top interests after this tick.
func traceInterests(trainers: [ArmTrainer], metrics: inout [ArmMetrics], scenario s: Scenario, assignment: ArmAssignment) {
    for arm in trainers.indices {
        guard case .towers(let t) = s.arms[arm].retrieval, let serving = t.serving, let learner = trainers[arm].towers,
              let q = learner.towers.quantizer else { continue }
        if metrics[arm].interestTrace.isEmpty {
            let users = (0..<assignment.arm.count).filter { Int(assignment.arm[$0]) == arm }.prefix(tracedUsers)
            metrics[arm].interestTrace = users.map { InterestTrace(user: UserID($0)) }
        }
        let k0 = q.codes[0], d = learner.towers.settings.dim
        var u = [Float](repeating: 0, count: d), p = [Double](repeating: 0, count: k0), out = p
        for i in metrics[arm].interestTrace.indices {
            let user = metrics[arm].interestTrace[i].user
            u.withUnsafeMutableBufferPointer { learner.towers.servingUserVector(learner.users.recent(user), into: $0.baseAddress!) }
            u.withUnsafeBufferPointer { ub in
                p.withUnsafeMutableBufferPointer { pb in
                    out.withUnsafeMutableBufferPointer {
                        learner.towers.servingDistribution(ub.baseAddress!, features: learner.users.features(user), running: learner.users.running(user),
                                                           mix: serving.mix,
                                                           towerDistribution: pb.baseAddress!, into: $0.baseAddress!)
                    }
                }
            }
            let top = (0..<k0).sorted { (out[$0], $1) > (out[$1], $0) }.prefix(3).map { (code: $0, probability: out[$0]) }
            metrics[arm].interestTrace[i].ticks.append(Array(top))
        }
    }
}

/// Joins a SPARC arm's log of where shown items came from with the tick's clicks (both in
/// (user, sequence) order) and counts each user's first click in an interest, and the
/// discoveries among them.
func countDiscoveries(log: [InterestLogEntry], feedback: [Feedback], codes: Int, threshold: Double,
                      slot: (UserID) -> Int, into metrics: inout ArmMetrics) {
    var l = 0
    for f in feedback where f.event == .click {
        let key = (f.header.user, f.header.sequence)
        while l < log.count && (log[l].user, log[l].sequence) < key { l += 1 }
        var m = l
        while m < log.count && (log[m].user, log[m].sequence) == key {
            if log[m].item == f.item {
                if log[m].interest >= 0 {
                    metrics.recordInterestClick(slot: slot(f.header.user), interest: Int(log[m].interest), probability: log[m].probability,
                                                codes: codes, threshold: threshold)
                }
                break
            }
            m += 1
        }
    }
}

/// For each arm, the arms whose policy can be evaluated on its log: arms that retrieve,
/// rank and take candidates as it does (so the same scores feed both policies) and whose
/// policy has a closed form (not Thompson), when this arm's policy explores (its logged
/// propensities are below 1, so other choices have support).
func offPolicyTargets(_ s: Scenario) -> [[Int]] {
    s.arms.indices.map { l in
        let logging = s.arms[l]
        let explores: Bool
        switch logging.policy {
        case .epsilonGreedy(let e): explores = e > 0
        case .softmax, .thompson, .interestSampling: explores = true
        case .greedy, .ucb: explores = logging.ranking == .random
        }
        guard explores else { return [] }
        return Array(s.arms.indices.filter { t in
            let target = s.arms[t]
            if case .thompson = target.policy { return false }
            if case .interestSampling = target.policy { return false }
            return t != l && target.retrieval == logging.retrieval && target.ranking == logging.ranking
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

/// A record is from this run and this tick: a user the population has, the arm that user
/// is assigned to, the current tick.
@inline(__always)
func check(_ h: RecordHeader, users: UInt32, tick: Tick, assignment: ArmAssignment) throws(WireError) {
    guard h.user < users else { throw WireError("user \(h.user) is not in the population of \(users)", at: 8) }
    guard h.arm == assignment.arm[Int(h.user)] else { throw WireError("user \(h.user) is in arm \(assignment.arm[Int(h.user)]), not \(h.arm)", at: 2) }
    guard h.tick == tick else { throw WireError("record of tick \(h.tick) arrived in tick \(tick)", at: 4) }
}

/// One tick's serving work for `concurrentPerform`. `@unchecked Sendable` because
/// iteration `arm` writes only `servers[arm]`, `slates[arm]` and the `starts` of its own
/// requests (each request belongs to one arm), reads the trainers only (training does not
/// run while serving), and the caller waits for every iteration.
struct ServeWork: @unchecked Sendable {
    let servers: UnsafeMutableBufferPointer<ArmServer>
    let slates: UnsafeMutableBufferPointer<[SlateEntry]>
    let starts: UnsafeMutableBufferPointer<(Int, Int)>
    let latency: UnsafeMutableBufferPointer<Histogram<UInt64>>
    let trainers: [ArmTrainer]
    let requests: [Request]
    let byArm: [[Int]]

    func serve(arm: Int) {
        slates[arm].removeAll(keepingCapacity: true)
        let trainer = trainers[arm]
        let clock = ContinuousClock()
        for i in byArm[arm] {
            let start = slates[arm].count
            let began = clock.now
            servers[arm].serve(requests[i], statistics: trainer.statistics, model: trainer.sequence?.model,
                               histories: trainer.sequence?.histories, towers: trainer.towers?.towers,
                               interestUsers: trainer.towers?.users, poly: trainer.poly?.model, polyHistories: trainer.poly?.histories,
                               into: &slates[arm])
            let elapsed = clock.now - began
            _ = latency[arm].record(UInt64(max(0, elapsed.components.seconds)) * 1_000_000_000 + UInt64(max(0, elapsed.components.attoseconds / 1_000_000_000)))
            starts[i] = (start, slates[arm].count - start)
        }
    }
}

/// One tick's training work for `concurrentPerform`. `@unchecked Sendable` because each
/// iteration touches only its own arm's trainer (and reads its own feedback array), and
/// the caller waits for all of them before anything else touches a trainer.
struct ArmWork: @unchecked Sendable {
    let trainers: [ArmTrainer]
    let feedback: [[Feedback]]
}

/// Appends JSON lines to a file (the `--export-truth` output).
final class TruthWriter {
    let handle: FileHandle
    let path: String

    init(path: String) throws {
        self.path = path
        guard FileManager.default.createFile(atPath: path, contents: nil), let handle = FileHandle(forWritingAtPath: path) else {
            throw RunError("cannot write \(path)")
        }
        self.handle = handle
    }

    deinit { try? handle.close() }

    func write(_ lines: [String]) throws {
        guard !lines.isEmpty else { return }
        do {
            try handle.write(contentsOf: Data((lines.joined(separator: "\n") + "\n").utf8))
        } catch {
            throw RunError("cannot write \(path): \(error.localizedDescription)")
        }
    }
}

/// Where the time of the loop went.
public struct PhaseTimings: Sendable {
    public init() {}
    /// The simulated users: requests, responses, the end of each tick.
    public var population = Duration.zero
    /// Kafka: encoding, producing, consuming, decoding and ordering every record.
    public var kafka = Duration.zero
    /// The arms' servers: retrieval, scoring, slates.
    public var serve = Duration.zero
    /// The arms' trainers, and servers taking in what they learned.
    public var train = Duration.zero
    /// The experiment's bookkeeping: metrics, regret against the oracle, off-policy logs.
    public var statistics = Duration.zero

    public var total: Duration { population + kafka + serve + train + statistics }
    /// Each phase's share of `total`, in the order population, kafka, serve, train, statistics.
    public var shares: [(name: String, share: Double)] {
        let t = max(total.seconds, 1e-12)
        return [("population", population.seconds / t), ("kafka", kafka.seconds / t), ("serve", serve.seconds / t),
                ("train", train.seconds / t), ("statistics", statistics.seconds / t)]
    }
}

/// Adds the time since the last lap to a phase.
public struct PhaseClock {
    var mark = ContinuousClock.now
    public init() {}
    public mutating func lap(_ phase: inout Duration) {
        let now = ContinuousClock.now
        phase += now - mark
        mark = now
    }
}

/// How far a run has got, after a tick.
public struct RunProgress: Sendable {
    /// The tick just finished (from 0).
    public var tick: Int
    public var ticks: Int
    /// Messages consumed so far, over every topic.
    public var messages: Int
}
