import Attach
import Foundation
import Kafka
import Models
import RecCore
import Scenario
import Synchronization
import Testing
import Trainer

@Suite("Attach roles: simulate, serve and train as separate loops", .serialized)
struct RolesTests {
    /// Two arms: DARE (model updates carry rows, dense layers, histories and statistics)
    /// and smoothed CTR over popularity retrieval (statistics only). Items arrive each tick.
    static let scenarioText = """
        {"name": "roles", "seed": 5, "ticks": 8,
         "population": {"users": 300, "requestProbability": 0.6, "slateSize": 6, "history": {"median": 30, "max": 120}},
         "catalog": {"items": 400, "topics": 12, "topCategories": 4, "subcategories": 3, "arrivalsPerTick": 4},
         "arms": [{"name": "dare", "share": 0.5, "candidates": 30,
                   "ranking": {"type": "dare", "attentionDim": 4, "representationDim": 4, "topK": 5, "maxHistory": 30, "batchSize": 64}},
                  {"name": "ctr", "share": 0.5, "candidates": 30, "retrieval": {"type": "popularity", "explore": 0.3},
                   "ranking": {"type": "ctr"}}],
         "experiment": {"control": "ctr", "warmupTicks": 2},
         "kafka": {"topicPrefix": "roles"}}
        """

    /// Runs a thread and hands back its result. (@unchecked: `body` runs on the thread
    /// alone, and `result` is read only after `done` is signalled.)
    final class Job<T>: @unchecked Sendable {
        let done = DispatchSemaphore(value: 0)
        let body: () throws -> T
        var result: Result<T, any Error>?
        init(_ name: String, _ body: @escaping () throws -> T) {
            self.body = body
            let thread = Thread { [self] in
                result = Result { try self.body() }
                done.signal()
            }
            thread.name = name
            thread.start()
        }
        func wait(seconds: Double = 120) throws -> T {
            guard done.wait(timeout: .now() + seconds) == .success else { throw AttachError("timed out") }
            return try result!.get()
        }
    }

    @Test("servers answer every request, trainers apply every event, and each server ends with its trainer's exact state")
    func endToEnd() throws {
        let scenario = try Scenario.decode(Self.scenarioText)
        let topics = scenario.kafka.topics
        let broker = try EmbeddedBroker()
        for topic in topics.attach { try broker.createTopic(topic, partitions: 3) }
        let properties = broker.clientConfiguration.properties
        let checkpoints = FileManager.default.temporaryDirectory.appendingPathComponent("recstream-roles-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: checkpoints, withIntermediateDirectories: true)

        var trainers: [StreamTrainer] = []
        var servers: [StreamServer] = []
        for arm in ["dare", "ctr"] {
            var t = StreamTrainer.Options(topic: topics.feedback, deadLetterTopic: topics.deadLetter, format: .wire,
                                          checkpointPath: checkpoints.appendingPathComponent("\(arm).ckpt").path, groupID: "train-\(arm)",
                                          properties: properties)
            t.modelTopic = topics.model
            t.publishEverySeconds = 0.05
            t.idleFlushSeconds = 0.5
            t.exitWhenIdleSeconds = 4
            trainers.append(try StreamTrainer(scenario: scenario, arm: arm, options: t))
            var s = StreamServer.Options(requestsTopic: topics.requests, recommendationsTopic: topics.recommendations,
                                         deadLetterTopic: topics.deadLetter, modelTopic: topics.model, groupID: "serve-\(arm)",
                                         properties: properties)
            s.commitEverySeconds = 0.2
            servers.append(try StreamServer(scenario: scenario, arm: arm, options: s))
        }
        // A server stops once told to and once its model has caught up with its trainer's end.
        let target = StopTargets()
        let serverJobs = servers.indices.map { i in
            Job("serve-\(i)") { [servers] in
                try servers[i].run(shouldStop: { servers[i].modelThrough >= target.ticks.withLock { $0[i] } })
            }
        }
        let trainerJobs = trainers.indices.map { i in Job("train-\(i)") { [trainers] in try trainers[i].run() } }

        var options = StreamSimulator.Options(topics: topics, properties: properties, ticks: scenario.ticks)
        options.answerTimeoutSeconds = 30
        let simulator = StreamSimulator(scenario: scenario, options: options)
        let report = try simulator.run()
        let sim = simulator.counters
        #expect(sim.requests > 0 && sim.answered == sim.requests && sim.unanswered == 0)
        #expect(sim.lateSlates == 0 && sim.duplicateSlates == 0 && sim.badSlates == 0)
        #expect(report.results.arms.map(\.name) == ["dare", "ctr"])

        for (i, job) in trainerJobs.enumerated() {
            let counters = try job.wait()
            // Each trainer applied its arm's feedback and skipped the other's: every event once.
            #expect(counters.events + counters.otherArms == sim.feedback, "trainer \(i)")
            #expect(counters.deadLetters == 0 && counters.events > 0)
            #expect(trainers[i].publishedThrough == trainers[i].appliedThrough)
            target.ticks.withLock { $0[i] = trainers[i].appliedThrough }
        }
        let served = try serverJobs.map { try $0.wait() }
        #expect(served[0].served + served[1].served == sim.requests)
        #expect(served.allSatisfy { $0.updateErrors == 0 && $0.updateGaps == 0 && $0.deadLetters == 0 })
        #expect(served.allSatisfy { $0.updatesApplied > 1 })
        for i in servers.indices {
            let items = 400 + 4 * 8 * 3  // beyond every arrival: the counts of missing items are 0 on both sides
            #expect(servers[i].modelThrough == trainers[i].appliedThrough)
            #expect(servers[i].state.stateChecksum(items: items) == trainers[i].trainer.stateChecksum(items: items),
                    "server \(i) does not hold its trainer's state")
        }
        #expect(servers[0].state.model!.parameterChecksum() == trainers[0].trainer.sequence!.model.parameterChecksum())
    }

    @Test("JSON requests get JSON slates from the arm each user is assigned; a server follows a trainer of JSON events")
    func json() throws {
        let scenario = try Scenario.decode(Self.scenarioText)
        let topics = scenario.kafka.topics
        let broker = try EmbeddedBroker()
        for topic in topics.attach { try broker.createTopic(topic, partitions: 2) }
        let properties = broker.clientConfiguration.properties
        let producer = try KafkaProducer(configuration: broker.clientConfiguration)
        func send(_ topic: String, _ user: UInt32, _ line: String) throws {
            let handle = try producer.topic(topic)
            try withUnsafeBytes(of: user) { key in try Array(line.utf8).withUnsafeBytes { try producer.send(handle, key: key, value: $0) } }
        }
        // Events for the trainer: three ticks of views and clicks.
        var rng = RandomStream(seed: 4, 1)
        for t in 0..<3 {
            for _ in 0..<120 {
                let user = rng.nextInt(below: 300), item = rng.nextInt(below: 400)
                try send(topics.feedback, UInt32(user), #"{"user": \#(user), "item": \#(item), "event": "impression", "timestamp": \#(t)}"#)
                if rng.nextDouble() < 0.3 {
                    try send(topics.feedback, UInt32(user), #"{"user": \#(user), "item": \#(item), "event": "click", "timestamp": \#(t)}"#)
                }
            }
        }
        // Requests: twenty users, one with a slate size of its own, and one that is not JSON.
        for user in 0..<20 { try send(topics.requests, UInt32(user), #"{"user": \#(user), "timestamp": 3\#(user == 7 ? ", \"slateSize\": 3" : "")}"#) }
        try send(topics.requests, 99, "not json")
        try producer.flush(timeoutMilliseconds: 10_000)

        var t = StreamTrainer.Options(topic: topics.feedback, deadLetterTopic: topics.deadLetter, format: .json(EventMapping()),
                                      checkpointPath: FileManager.default.temporaryDirectory.appendingPathComponent("rs-\(UUID().uuidString)").path,
                                      groupID: "t", properties: properties)
        t.modelTopic = topics.model
        t.idleFlushSeconds = 0.3
        t.exitWhenIdleSeconds = 0.5
        let trainer = try StreamTrainer(scenario: scenario, arm: "dare", options: t)
        _ = try trainer.run()
        var o = StreamServer.Options(requestsTopic: topics.requests, recommendationsTopic: topics.recommendations, deadLetterTopic: topics.deadLetter,
                                     modelTopic: topics.model, groupID: "s", properties: properties)
        o.format = .json(EventMapping())
        o.exitWhenIdleSeconds = 1.5
        let server = try StreamServer(scenario: scenario, arm: "dare", options: o)
        let counters = try server.run()
        let assignment = ArmAssignment(scenario)
        let dareUsers = (0..<20).filter { assignment.arm[$0] == 0 }
        #expect(counters.served == dareUsers.count && counters.otherArms == 20 - dareUsers.count && counters.deadLetters == 1)
        #expect(server.modelThrough == 2 && counters.updatesApplied >= 1)
        #expect(server.state.stateChecksum(items: 400) == trainer.trainer.stateChecksum(items: 400))

        let consumer = try KafkaConsumer(configuration: broker.clientConfiguration.merging(["group.id": "read", "fetch.wait.max.ms": "1"]))
        try consumer.assign((0..<2).map { (TopicPartition(topics.recommendations, Int32($0)), offset: 0) })
        var slates: [JSONValue] = []
        let deadline = Date().addingTimeInterval(10)
        while slates.count < dareUsers.count && Date() < deadline {
            try consumer.consumeBatch(timeoutMilliseconds: 50) { batch in
                for m in batch { slates.append(try JSONValue.parse(String(decoding: m.value, as: UTF8.self))) }
            }
        }
        #expect(slates.map { $0["user"]?.int ?? -1 }.sorted() == dareUsers)
        for slate in slates {
            let items = slate["items"]?.list ?? []
            #expect(slate["arm"] == .string("dare") && slate["tick"]?.int == 3)
            #expect(items.count == (slate["user"]?.int == 7 ? 3 : 6) && Set(items.compactMap(\.int)).count == items.count)
            #expect((slate["propensities"]?.list ?? []).count == items.count)
        }
    }

    @Test("an update applies whole: parts are joined, a torn update is dropped, and a bad one changes nothing")
    func updates() throws {
        let scenario = try Scenario.decode(Self.scenarioText)
        var options = StreamTrainer.Options(topic: "x", deadLetterTopic: "y", format: .wire, checkpointPath: "/nonexistent", groupID: "g", properties: [:])
        options.modelTopic = "m"
        let source = try StreamTrainer(scenario: scenario, arm: "dare", options: options)
        let follower = try StreamServer(scenario: scenario, arm: "dare", options: StreamServer.Options(
            requestsTopic: "r", recommendationsTopic: "s", deadLetterTopic: "d", modelTopic: "m", groupID: "g", properties: [:]))
        source.trainer.tracksChanges()
        var feedback: [Feedback] = []
        for u in 0..<UInt32(60) {
            let h = RecordHeader(arm: 0, tick: 0, user: u, sequence: 0)
            feedback.append(Feedback(h, event: .impression, position: 0, item: u * 3, shownTick: 0))
            if u % 3 == 0 { feedback.append(Feedback(h, event: .click, position: 0, item: u * 3, shownTick: 0, viewSeconds: 12)) }
        }
        source.trainer.apply(tick: 0, feedback: feedback[...])
        let header = ModelUpdate.Header(identity: source.modelIdentity, incarnation: 7, sequence: 1, from: -1, through: 0)
        let parts = ModelUpdate.encode(source.trainer, header: header, maxPartBytes: 1000)
        #expect(parts.count > 2)
        let before = follower.state.stateChecksum(items: 400)

        // A part without its beginning, then a torn update (its first part only): nothing whole.
        var assembler = UpdateAssembler()
        let decoded = try parts.map { try ModelUpdate.decode($0) }
        #expect(assembler.take(decoded[1].0, decoded[1].1).map { _ in 1 } == nil)
        #expect(assembler.take(decoded[0].0, decoded[0].1).map { _ in 1 } == nil)
        var whole: (ModelUpdate.Header, [UInt8])?
        for (h, chunk) in decoded { whole = assembler.take(h, chunk) }
        #expect(assembler.abandonedParts == 2)  // the stray part, and the torn update restarted
        let (h, payload) = try #require(whole)
        #expect(h.through == 0 && h.sequence == 1)

        // A payload cut short is an error naming the update, and changes nothing.
        #expect(throws: ModelUpdateError.self) { try follower.state.apply(update: h, payload: Array(payload.dropLast(5)), appliedThrough: -1) }
        #expect(follower.state.stateChecksum(items: 400) == before)
        try follower.state.apply(update: h, payload: payload, appliedThrough: -1)
        #expect(follower.state.stateChecksum(items: 400) == source.trainer.stateChecksum(items: 400))
        #expect(follower.state.stateChecksum(items: 400) != before)

        // A corrupted message does not decode.
        var bad = parts[0]
        bad[bad.count / 2] ^= 0x40
        #expect(throws: ModelUpdateError.self) { try ModelUpdate.decode(bad) }
        do { _ = try ModelUpdate.decode(bad); Issue.record("expected an error, none was thrown") } catch { #expect("\(error)" == "corrupt model update (checksum does not match)") }
    }
}

/// The model tick each server may stop at (Int64.max: not yet).
final class StopTargets: Sendable {
    let ticks = Mutex<[Int64]>([.max, .max])
}

extension JSONValue {
    var int: Int? { if case .integer(let i) = self { Int(i) } else { nil } }
    var list: [JSONValue]? { if case .array(let a) = self { a } else { nil } }
}
