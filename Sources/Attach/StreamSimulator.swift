import Experiment
import Foundation
import Kafka
import Population
import RecCore
import Scenario

/// `recstream simulate`: the simulated users against servers and trainers that run as
/// processes of their own, free-running.
///
/// Each tick the users ask for slates (requests, keyed by user, carrying the user's arm;
/// the arm that serves each is `Scenario.servingArm`'s: in the warm-up the control
/// serves everyone, as in a run),
/// wait for the servers' answers on the recommendations topic, respond to the slates that
/// came (feedback), and the tick closes. Nothing waits for training: servers score with
/// whatever model their trainer has published by then, as in production. A request with
/// no answer within `answerTimeoutSeconds` goes unanswered (the user leaves; counted); a
/// slate that comes after its tick closed is late (counted, not shown); a second slate
/// for a request (a server that answered again after a restart) is a duplicate (counted).
///
/// The simulator knows the truth, so it keeps each arm's metrics in the same
/// `ExperimentLedger` a run feeds, and ends with the same results table and report. Unlike a run, the results depend on timing
/// (which model version served each request): compare arms within one simulation, and
/// over seeds, not one simulation with another bit for bit. With arms whose serving does not
/// depend on what they learned, a simulation gives a run's results exactly, save the
/// off-policy estimates, which need the servers' logs.
public final class StreamSimulator {
    public struct Options: Sendable {
        public var topics: Topics
        public var properties: [String: String]
        /// Ticks to simulate (default: the scenario's).
        public var ticks: Int
        /// The least wall time a tick takes (0: the next tick starts once this one's
        /// slates are in), so servers and trainers see a steady request rate.
        public var tickSeconds = 0.0
        /// How long a tick waits for its slates.
        public var answerTimeoutSeconds = 10.0
        public var connectTimeoutSeconds = 30.0
        public init(topics: Topics, properties: [String: String], ticks: Int) {
            self.topics = topics
            self.properties = properties
            self.ticks = ticks
        }
    }

    public struct Counters: Sendable, Equatable {
        public var requests = 0
        /// Requests answered in their tick.
        public var answered = 0
        public var unanswered = 0
        public var lateSlates = 0
        public var duplicateSlates = 0
        /// Slates that did not decode or answer no request of this simulation.
        public var badSlates = 0
        public var feedback = 0
        public init() {}
    }

    public let scenario: Scenario
    public let options: Options
    public internal(set) var counters = Counters()
    /// Called after each tick with the tick and the counters.
    public var onTick: ((Int, Counters) -> Void)?

    public init(scenario: Scenario, options: Options) {
        self.scenario = scenario
        self.options = options
    }

    /// Runs the ticks (or until `shouldStop()`, closing the tick in progress) and returns
    /// the experiment's report.
    public func run(shouldStop: () -> Bool = { false }) throws -> RunReport {
        let started = ContinuousClock.now
        let s = scenario
        guard !s.isPaired else {
            throw AttachError("experiment.design \"paired\" runs a copy of the population per arm in lockstep; run it with `recstream run` (the simulate role drives one population)")
        }
        if let issue = s.arms.indices.lazy.compactMap({ s.arms[$0].attachIssue(at: $0) }).first {
            throw AttachError("scenario \(s.name): \(issue)")
        }
        let topics = options.topics
        let base = KafkaConfiguration(options.properties)
        let partitions = try waitForTopic(topics.requests, base, timeoutSeconds: options.connectTimeoutSeconds)
        let slatePartitions = try waitForTopic(topics.recommendations, base, timeoutSeconds: options.connectTimeoutSeconds)
        _ = try waitForTopic(topics.feedback, base, timeoutSeconds: options.connectTimeoutSeconds)

        let slates = try KafkaConsumer(configuration: base.attachConsumer(group: "recstream-simulate-\(s.kafka.topicPrefix)", fetchWaitMilliseconds: 5))
        defer { slates.close() }
        // From the end: slates of an earlier simulation on these topics are not this one's.
        var start: [(TopicPartition, offset: Int64)] = []
        for p in 0..<Int32(slatePartitions) {
            let tp = TopicPartition(topics.recommendations, p)
            start.append((tp, offset: try slates.watermarks(tp, timeoutMilliseconds: Int32(options.connectTimeoutSeconds * 1000)).high))
        }
        try slates.assign(start)
        var producerConfig = base
        producerConfig.setDefault("client.id", "recstream-simulate-\(s.kafka.topicPrefix)")
        producerConfig.setDefault("linger.ms", "2")
        let producer = try KafkaProducer(configuration: producerConfig)
        let requestTopic = try producer.topic(topics.requests)
        let feedbackTopic = try producer.topic(topics.feedback)
        let setupDone = ContinuousClock.now

        let population = Population(s)
        // No off-policy estimates: the servers' logs of what other policies would have
        // chosen stay in their processes.
        var ledger = ExperimentLedger(scenario: s, assignment: population.assignment, items: population.catalog.count, offPolicy: false)
        let populationReady = ContinuousClock.now

        let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: Wire.feedbackSize, alignment: 8)
        defer { scratch.deallocate() }
        var asked: [Request] = []
        /// Per request of the tick (in user order): where its slate is, once it came.
        var answer: [(start: Int, count: Int)] = []
        var entries: [SlateEntry] = []
        var slateHeaders: [(header: SlateHeader, start: Int)] = []
        var outgoing: [Feedback] = []
        var timings = PhaseTimings()
        var ticksRun = 0

        for t in 0..<options.ticks {
            if shouldStop() { break }
            let tick = Tick(t)
            let tickStarted = ContinuousClock.now
            var clock = PhaseClock()
            population.advanceCatalog(to: tick)
            let catalogSize = population.catalog.count
            asked.removeAll(keepingCapacity: true)
            population.requests(at: tick, into: &asked)
            clock.lap(&timings.population)
            ledger.recordRequests(asked, tick: tick)
            for request in asked {
                var user = request.header.user
                let n = Wire.encode(request, into: scratch)
                try withUnsafeBytes(of: &user) { try producer.send(requestTopic, key: $0, value: UnsafeRawBufferPointer(rebasing: scratch[..<n])) }
            }
            try producer.poll()
            counters.requests += asked.count

            // Wait for the slates (requests are in user order, one per user: find by user).
            answer.removeAll(keepingCapacity: true)
            answer.append(contentsOf: repeatElement((start: -1, count: 0), count: asked.count))
            entries.removeAll(keepingCapacity: true)
            var answered = 0
            let deadline = ContinuousClock.now + .seconds(options.answerTimeoutSeconds)
            while answered < asked.count && ContinuousClock.now < deadline {
                _ = try slates.consumeBatch(timeoutMilliseconds: 20) { batch in
                    for m in batch {
                        let begin = entries.count
                        guard let h = try? Wire.decodeSlate(m.value, appendingTo: &entries) else {
                            counters.badSlates += 1
                            continue
                        }
                        let keep: Bool
                        if h.header.tick < tick {
                            counters.lateSlates += 1
                            keep = false
                        } else if h.header.tick > tick || entries[begin...].contains(where: { Int($0.item) >= catalogSize }) {
                            counters.badSlates += 1
                            keep = false
                        } else if let i = index(of: h.header.user, in: asked), asked[i].header.sequence == h.header.sequence,
                                  h.header.arm == asked[i].header.arm,
                                  Int(h.policy) == s.servingArm(assigned: Int(h.header.arm), tick: tick) {
                            if answer[i].start >= 0 {
                                counters.duplicateSlates += 1
                                keep = false
                            } else {
                                answer[i] = (begin, h.itemCount)
                                answered += 1
                                keep = true
                            }
                        } else {
                            counters.badSlates += 1
                            keep = false
                        }
                        if !keep { entries.removeSubrange(begin...) }
                    }
                    return batch.count
                }
                try producer.poll()
            }
            counters.answered += answered
            counters.unanswered += asked.count - answered
            clock.lap(&timings.kafka)

            slateHeaders.removeAll(keepingCapacity: true)
            for (i, r) in asked.enumerated() where answer[i].start >= 0 {
                let policy = UInt16(s.servingArm(assigned: Int(r.header.arm), tick: tick))
                slateHeaders.append((SlateHeader(r.header, policy: policy, itemCount: answer[i].count), answer[i].start))
            }
            ledger.recordRegret(slates: slateHeaders, entries: entries, tick: tick) { h, shown in
                (population.expectedClicks(user: h.user, slate: shown.lazy.map(\.item)), population.oracleExpectedClicks(user: h.user, k: shown.count))
            }
            outgoing.removeAll(keepingCapacity: true)
            population.respond(to: slateHeaders, entries: entries, at: tick, into: &outgoing)
            clock.lap(&timings.population)
            for f in outgoing {
                var user = f.header.user
                let n = Wire.encode(f, into: scratch)
                try withUnsafeBytes(of: &user) { try producer.send(feedbackTopic, key: $0, value: UnsafeRawBufferPointer(rebasing: scratch[..<n])) }
            }
            try producer.poll()
            counters.feedback += outgoing.count
            clock.lap(&timings.kafka)
            ledger.recordFeedback(&outgoing, tick: tick, itemBorn: population.catalog.bornTick)
            ledger.endTick(tick)
            population.endTick(tick)
            clock.lap(&timings.statistics)
            ticksRun += 1
            onTick?(t, counters)
            if ledger.stoppedAfter != nil { break }  // experiment.stopWhen: decided
            let rest = options.tickSeconds - (ContinuousClock.now - tickStarted).seconds
            if rest > 0 { Thread.sleep(forTimeInterval: rest) }
        }
        try producer.flush(timeoutMilliseconds: Int32(options.connectTimeoutSeconds * 1000))
        let finished = ContinuousClock.now

        let results = ledger.results(
            ticks: ticksRun, catalogSize: population.catalog.count,
            items: ItemFacts(born: population.catalog.bornTick, head: population.catalog.popularHead(share: 0.2)),
            messages: [
                "requests": counters.requests, "answered": counters.answered, "unanswered": counters.unanswered,
                "lateSlates": counters.lateSlates, "duplicateSlates": counters.duplicateSlates, "badSlates": counters.badSlates,
                "feedback": counters.feedback, "purchasesPendingAtEnd": population.purchasesPending,
            ])
        let messages = counters.requests + counters.answered + counters.feedback
        let runSeconds = (finished - populationReady).seconds
        return RunReport(
            results: results,
            run: RunInfo(bootstrapServers: options.properties["bootstrap.servers"] ?? "", embedded: false, partitions: partitions,
                         setupSeconds: (setupDone - started).seconds, populationSeconds: (populationReady - setupDone).seconds,
                         runSeconds: runSeconds, messagesPerSecond: Double(messages) / max(runSeconds, 1e-9), phases: timings))
    }
}

/// The index of `user`'s request in `requests` (sorted by user, one each), if any.
@inline(__always)
func index(of user: UserID, in requests: [Request]) -> Int? {
    var lo = 0, hi = requests.count
    while lo < hi {
        let mid = (lo + hi) / 2
        if requests[mid].header.user < user { lo = mid + 1 } else { hi = mid }
    }
    return lo < requests.count && requests[lo].header.user == user ? lo : nil
}
