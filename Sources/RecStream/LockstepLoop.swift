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

/// The run's three stages on Kafka (requests, recommendations, feedback), one producer for
/// all: each phase sends its records through a stage and takes every one back before the
/// phase ends.
final class LockstepTransport {
    let producer: KafkaProducer
    let requests: StageChannel
    let slates: StageChannel
    let feedback: StageChannel
    let deadLetterTopic: String
    let stallSeconds: Double
    /// Where each record is encoded before it is sent.
    let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: Wire.slateSize(items: Wire.maxSlateSize), alignment: 8)

    init(scenario s: Scenario, base: KafkaConfiguration, partitions: [String: Int]) throws {
        let topics = s.kafka.topics
        stallSeconds = s.kafka.stallTimeoutSeconds
        deadLetterTopic = topics.deadLetter
        var producerConfig = base
        producerConfig.setDefault("message.timeout.ms", String(Int(stallSeconds * 1000)))
        producerConfig.setDefault("client.id", "recstream-\(s.kafka.topicPrefix)")
        let producer = try KafkaProducer(configuration: producerConfig)
        let stall = stallSeconds
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
        requests = try channel("requests", topics.requests)
        slates = try channel("recommendations", topics.recommendations)
        feedback = try channel("feedback", topics.feedback)
        self.producer = producer
    }

    deinit { scratch.deallocate() }

    /// Messages consumed so far, over every stage.
    var received: Int { requests.received + slates.received + feedback.received }
    var deadLetters: Int { requests.deadLetters + slates.deadLetters + feedback.deadLetters }
    var transientErrors: Int {
        requests.consumer.transientErrorCount + slates.consumer.transientErrorCount + feedback.consumer.transientErrorCount
    }

    /// Sends `count` records through `stage` (record `i` keyed by `user(i)`, written into
    /// the scratch buffer by `encode(i, scratch)`, which returns its length) and hands every
    /// record that comes back to `take`, until all have.
    func roundTrip(_ stage: StageChannel, count: Int, tick: Tick, user: (Int) -> UserID,
                   encode: (Int, UnsafeMutableRawBufferPointer) -> Int,
                   take: (UnsafeRawBufferPointer) throws(WireError) -> Void) throws {
        for i in 0..<count {
            let n = encode(i, scratch)
            try stage.send(producer, user: user(i), UnsafeRawBufferPointer(rebasing: scratch[..<n]), deadLetterTopic: deadLetterTopic, take)
        }
        try stage.drain(producer, deadLetterTopic: deadLetterTopic, stallSeconds: stallSeconds, tick: tick, take)
    }
}

/// One lockstep tick, phase by phase: `arrivals` (the catalog moves), `requests` (users
/// ask), `serve` (each arm answers its users), `respond` (users act on their slates),
/// `train` (each arm learns), `record` (the tick closes). What the experiment counts goes
/// to the `ExperimentLedger` the simulator also feeds.
///
/// A paired design runs one population through the warm-up, then splits it into a copy per
/// arm (`splitPopulation`): each phase then runs every copy, and each arm serves, and
/// learns from, its own copy only.
final class LockstepLoop {
    let scenario: Scenario
    let transport: LockstepTransport
    /// The users: one population; in a paired design after the warm-up, a copy per arm.
    private(set) var populations: [Population]
    /// The first population (the only one in a split design): the catalog and the users'
    /// features, which every copy shares.
    var population: Population { populations[0] }
    let initialItems: Int
    let categoryCount: Int
    var servers: [ArmServer]
    let trainers: [ArmTrainer]
    /// What each arm serves with: its trainer's models.
    let models: [ArmModels]
    var ledger: ExperimentLedger
    let truth: TruthWriter?
    private(set) var timings = PhaseTimings()
    /// Time to serve each request (retrieve, score, build the slate), per arm, in ns.
    private(set) var latency: [Histogram<UInt64>]

    // The tick's records, in buffers kept from tick to tick.
    var asked: [Request] = []
    /// The tick's requests as they came back, in (user, sequence) order.
    var requests: [Request] = []
    /// Per arm, the entries of the slates it built; per request, where its slate is there.
    var armSlates: [[SlateEntry]]
    var slateStarts: [(Int, Int)] = []
    /// The tick's slates as they came back, in (user, sequence) order.
    var slateHeaders: [(header: SlateHeader, start: Int)] = []
    /// A paired design's slates of one copy (its share of `slateHeaders`).
    var copySlates: [(header: SlateHeader, start: Int)] = []
    var slateEntries: [SlateEntry] = []
    var outgoing: [Feedback] = []
    /// The tick's feedback as it came back (put in canonical order by the ledger).
    var feedback: [Feedback] = []
    var clock = PhaseClock()

    init(scenario s: Scenario, options: RunOptions, transport: LockstepTransport) throws {
        scenario = s
        self.transport = transport
        let population = Population(s, threads: options.threads)
        populations = [population]
        initialItems = population.catalog.count
        categoryCount = s.catalog.topCategories * s.catalog.subcategories
        ledger = ExperimentLedger(scenario: s, assignment: population.assignment, items: initialItems)
        servers = s.arms.enumerated().map {
            var server = ArmServer(settings: $1, armIndex: $0, catalogSize: population.catalog.count, seed: s.seed)
            server.commonDraws = s.isPaired
            return server
        }
        let userFeatures = (0..<population.userCount).map { population.features(of: UserID($0)) }
        let categoryCount = categoryCount, initialItems = initialItems
        trainers = s.arms.enumerated().map { arm, settings in
            ArmTrainer(items: initialItems, ranking: settings.ranking, retrieval: settings.retrieval, users: population.userCount,
                       histories: population.histories, categories: population.catalog.subcategory.map(UInt32.init), categoryCount: categoryCount,
                       content: TowerInputs(tokens: population.catalog.tokens, tokensPerItem: s.catalog.tokensPerItem,
                                            vocabulary: s.catalog.vocabulary, live: population.catalog.alive,
                                            userFeatures: userFeatures),
                       // Paired: no draw depends on the arm, so identical arms stay identical.
                       seed: s.isPaired ? s.seed : s.seed &+ UInt64(arm))
        }
        let trainers = trainers
        models = trainers.indices.map { arm in
            let t = trainers[arm]
            return ArmModels(settings: s.arms[arm], sequence: t.sequence.map { ($0.model, $0.histories) },
                             poly: t.poly.map { ($0.model, $0.histories) }, towers: t.towers.map { ($0.towers, $0.users) })
        }
        // Off-policy evaluation: each arm whose policy explores logs, for every other arm
        // that differs from it in policy only, the chance that policy had of its top item.
        for arm in servers.indices { servers[arm].offPolicyTargets = ledger.offPolicyTargets[arm].map { s.arms[$0].policy } }
        armSlates = Array(repeating: [], count: s.arms.count)
        latency = s.arms.map { _ in Histogram<UInt64>(highestTrackableValue: 60_000_000_000, numberOfSignificantValueDigits: .three) }
        truth = try options.truthPath.map { try TruthWriter(path: $0) }
        try truth?.write(population.itemTruthLines())
    }

    func run(_ tick: Tick) throws {
        if scenario.isPaired && Int(tick) == scenario.experiment.warmupTicks { splitPopulation() }
        try arrivals(tick)
        clock = PhaseClock()
        try requests(tick)
        try serve(tick)
        try respond(tick)
        train(tick)
        try record(tick)
    }

    /// The paired design's split, when the warm-up ends: the shared population becomes one
    /// copy per arm, each in the state the warm-up left it.
    func splitPopulation() {
        precondition(populations.count == 1, "the population splits once")
        let shared = populations[0], arms = scenario.arms.count
        populations = (0..<arms).map { Population(copying: shared, arm: $0, arms: arms) }
    }

    /// The copy of the population whose records carry `arm`.
    @inline(__always)
    func population(of arm: UInt16) -> Population { populations.count == 1 ? populations[0] : populations[Int(arm)] }

    /// New items arrive, old ones retire: the arms' catalog feed. (Arrivals are keyed by
    /// tick, so a paired design's copies keep one catalog.)
    func arrivals(_ tick: Tick) throws {
        let itemsBefore = population.catalog.count
        var changed = false
        for p in populations { changed = p.advanceCatalog(to: tick) || changed }
        guard changed else { return }
        let catalog = population.catalog
        let categories = catalog.subcategory.map(UInt32.init)
        let arrived = catalog.bornTick.indices.map { $0 < initialItems ? Int32.min : catalog.bornTick[$0] }
        for arm in servers.indices {
            servers[arm].updateCatalog(live: catalog.liveItems, count: catalog.count, arrived: arrived)
            trainers[arm].updateCatalog(categories: categories, categoryCount: categoryCount, tokens: catalog.tokens, live: catalog.liveItems)
        }
        try truth?.write(population.itemTruthLines(from: itemsBefore))
    }

    /// Users ask for slates; the requests go through Kafka and come back in (user,
    /// sequence) order, and the ledger routes each to the arm that serves it.
    func requests(_ tick: Tick) throws {
        asked.removeAll(keepingCapacity: true)
        for p in populations { p.requests(at: tick, into: &asked) }
        clock.lap(&timings.population)
        requests.removeAll(keepingCapacity: true)
        try transport.roundTrip(transport.requests, count: asked.count, tick: tick, user: { asked[$0].header.user },
                                encode: { Wire.encode(asked[$0], into: $1) }) { (bytes) throws(WireError) in
            let r = try Wire.decodeRequest(bytes)
            try ledger.check(r.header, tick: tick)
            requests.append(r)
        }
        requests.sort { ExperimentLedger.precedes($0.header, $1.header) }
        if slateStarts.count < requests.count { slateStarts = Array(repeating: (0, 0), count: requests.count) }
        clock.lap(&timings.kafka)
        ledger.recordRequests(requests, tick: tick)
        clock.lap(&timings.statistics)
    }

    /// Each arm serves its users (arms are independent, so they serve at once, each into
    /// its own buffer); the slates go through Kafka in (user, sequence) order and come back
    /// checked against the catalog.
    func serve(_ tick: Tick) throws {
        for arm in servers.indices { servers[arm].clearOffPolicyLog() }
        let serving = ledger.serving
        servers.withUnsafeMutableBufferPointer { serverBuffer in
            armSlates.withUnsafeMutableBufferPointer { slateBuffer in
                slateStarts.withUnsafeMutableBufferPointer { startBuffer in
                    latency.withUnsafeMutableBufferPointer { latencyBuffer in
                        let work = ServeWork(servers: serverBuffer, slates: slateBuffer, starts: startBuffer, latency: latencyBuffer,
                                             trainers: trainers, models: models, requests: requests, byArm: serving)
                        DispatchQueue.concurrentPerform(iterations: work.servers.count) { arm in
                            work.serve(arm: arm)
                        }
                    }
                }
            }
        }
        plantOracle(tick)
        clock.lap(&timings.serve)
        slateHeaders.removeAll(keepingCapacity: true)
        slateEntries.removeAll(keepingCapacity: true)
        let catalogSize = population.catalog.count
        try transport.roundTrip(transport.slates, count: requests.count, tick: tick, user: { requests[$0].header.user },
                                encode: { i, scratch in
                                    let r = requests[i]
                                    let arm = scenario.servingArm(assigned: Int(r.header.arm), tick: tick)
                                    let (start, count) = slateStarts[i]
                                    return armSlates[arm].withUnsafeBufferPointer {
                                        Wire.encodeSlate(r.header, policy: UInt16(arm), entries: UnsafeBufferPointer(rebasing: $0[start..<start + count]),
                                                         into: scratch)
                                    }
                                }) { (bytes) throws(WireError) in
            let start = slateEntries.count
            let h = try Wire.decodeSlate(bytes, appendingTo: &slateEntries)
            do throws(WireError) {
                try ledger.check(h.header, tick: tick)
                for e in slateEntries[start...] where Int(e.item) >= catalogSize {
                    throw WireError("item \(e.item) is not in the catalog of \(catalogSize) items", at: Wire.slateHeaderSize)
                }
            } catch {
                slateEntries.removeSubrange(start...)
                throw error
            }
            slateHeaders.append((h, start))
        }
        slateHeaders.sort { ExperimentLedger.precedes($0.header.header, $1.header.header) }
        clock.lap(&timings.kafka)
        ledger.recordRegret(slates: slateHeaders, entries: slateEntries, tick: tick) { h, shown in
            let p = population(of: h.arm)
            return (p.expectedClicks(user: h.user, slate: shown.lazy.map(\.item)), p.oracleExpectedClicks(user: h.user, k: shown.count))
        }
        clock.lap(&timings.statistics)
    }

    /// A planted effect (`oracleShare`): an arm's requests in its share are answered with
    /// the oracle's slate of the user's copy of the world, best first, each item's
    /// propensity 1. After the warm-up only, when the arm serves its own users.
    func plantOracle(_ tick: Tick) {
        guard !scenario.isWarmup(tick) else { return }
        for (arm, settings) in scenario.arms.enumerated() where settings.oracleShare > 0 {
            for i in ledger.serving[arm] {
                let h = requests[i].header
                guard oraclePlanted(h, seed: scenario.seed, share: settings.oracleShare) else { continue }
                let (start, count) = slateStarts[i]
                guard count > 0 else { continue }  // nothing live to show
                let best = population(of: h.arm).oracle(user: h.user, k: count).items
                for (j, item) in best.enumerated() { armSlates[arm][start + j] = SlateEntry(item: item, propensity: 1) }
                // A catalog with fewer live items than the slate: the rest keeps the arm's own.
            }
        }
    }

    /// Users respond (purchases from earlier clicks land now); the feedback goes through
    /// Kafka, and the ledger counts it and routes each event to the arms that learn from it.
    func respond(_ tick: Tick) throws {
        outgoing.removeAll(keepingCapacity: true)
        if populations.count == 1 {
            population.respond(to: slateHeaders, entries: slateEntries, at: tick, into: &outgoing)
        } else {
            for (arm, p) in populations.enumerated() {
                copySlates.removeAll(keepingCapacity: true)
                for s in slateHeaders where Int(s.header.header.arm) == arm { copySlates.append(s) }
                p.respond(to: copySlates, entries: slateEntries, at: tick, into: &outgoing)
            }
        }
        clock.lap(&timings.population)
        feedback.removeAll(keepingCapacity: true)
        let catalogSize = population.catalog.count
        try transport.roundTrip(transport.feedback, count: outgoing.count, tick: tick, user: { outgoing[$0].header.user },
                                encode: { Wire.encode(outgoing[$0], into: $1) }) { (bytes) throws(WireError) in
            let f = try Wire.decodeFeedback(bytes)
            try ledger.check(f.header, tick: tick)
            guard Int(f.item) < catalogSize else {
                throw WireError("item \(f.item) is not in the catalog of \(catalogSize) items", at: 20)
            }
            feedback.append(f)
        }
        clock.lap(&timings.kafka)
        ledger.recordFeedback(&feedback, tick: tick, itemBorn: population.catalog.bornTick)
        for arm in servers.indices {
            ledger.joinOffPolicy(arm: arm, log: servers[arm].offPolicyLog, tick: tick)
            ledger.countDiscoveries(arm: arm, log: servers[arm].interestLog, tick: tick)
        }
        clock.lap(&timings.statistics)
    }

    /// Each arm learns from what the ledger routed to it; arms learn independently (no arm
    /// reads another's state), so they train at once. Servers then take in what was learned.
    func train(_ tick: Tick) {
        let work = ArmWork(trainers: trainers, feedback: ledger.learning)
        let alive = population.catalog.alive
        DispatchQueue.concurrentPerform(iterations: trainers.count) { arm in
            work.trainers[arm].apply(tick: tick, feedback: work.feedback[arm][...])
            work.trainers[arm].endTick(live: alive)
        }
        for arm in servers.indices { servers[arm].refresh(from: trainers[arm].statistics) }
        clock.lap(&timings.train)
    }

    /// The tick closes: interest traces, the ledger's tick, the users' end of tick.
    func record(_ tick: Tick) throws {
        traceInterests()
        ledger.endTick(tick)
        clock.lap(&timings.statistics)
        for p in populations { p.endTick(tick) }
        if let truth {
            if populations.count == 1 {
                try truth.write(population.userTruthLines(tick: tick))
            } else {
                for (arm, p) in populations.enumerated() { try truth.write(p.userTruthLines(tick: tick, copy: arm)) }
            }
        }
        clock.lap(&timings.population)
    }

    /// Each SPARC arm's traced users' serving distributions after this tick.
    func traceInterests() {
        for arm in trainers.indices {
            guard case .towers(let t) = scenario.arms[arm].retrieval, let serving = t.serving, let learner = trainers[arm].towers,
                  let q = learner.towers.quantizer else { continue }
            let k0 = q.codes[0]
            var u = [Float](repeating: 0, count: learner.towers.settings.dim), p = [Double](repeating: 0, count: k0)
            ledger.traceInterests(arm: arm) { user in
                var out = [Double](repeating: 0, count: k0)
                u.withUnsafeMutableBufferPointer { learner.towers.servingUserVector(learner.users.recent(user), into: $0.baseAddress!) }
                u.withUnsafeBufferPointer { ub in
                    p.withUnsafeMutableBufferPointer { pb in
                        out.withUnsafeMutableBufferPointer {
                            learner.towers.servingDistribution(ub.baseAddress!, features: learner.users.features(user), running: learner.users.running(user),
                                                               mix: serving.mix, towerDistribution: pb.baseAddress!, into: $0.baseAddress!)
                        }
                    }
                }
                return out
            }
        }
    }

    /// The experiment's results, with what each SPARC arm's interests became against the
    /// world's true topics.
    func results() -> ExperimentResults {
        for arm in trainers.indices {
            guard let learner = trainers[arm].towers, let q = learner.towers.quantizer else { continue }
            let index = learner.towers.index
            let agreement = InterestSummary.agreement(code: index.codeOf, topic: population.catalog.topic.map(Int.init))
            ledger.setInterestSummary(arm: arm, InterestSummary(
                codes: q.codes[0], codesInUse: index.buckets.filter { !$0.isEmpty }.count, perplexity: q.perplexity,
                deadCodes: q.deadCodes(level: 0), restarts: q.restarts, purity: agreement.purity, nmi: agreement.nmi))
        }
        let t = transport
        return ledger.results(
            ticks: ledger.stoppedAfter.map { $0 + 1 },
            catalogSize: population.catalog.count,
            items: ItemFacts(born: population.catalog.bornTick, head: population.catalog.popularHead(share: 0.2)),
            modelEvaluations: trainers.map(\.evaluations),
            messages: [
                "requests": t.requests.received, "recommendations": t.slates.received, "feedback": t.feedback.received,
                "deadLetters": t.deadLetters, "purchasesPendingAtEnd": populations.reduce(0) { $0 + $1.purchasesPending },
            ])
    }
}
