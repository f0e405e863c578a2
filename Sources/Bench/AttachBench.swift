import Attach
import Foundation
import Kafka
import Models
import RecCore
import Scenario

/// `recstream bench attach`: one attached trainer (`recstream train`) on the embedded
/// broker. Events per second through a backlog, for JSON events through a field mapping
/// and for recstream's wire records, with an arm that keeps statistics only (CTR ranking:
/// the cost of consuming, decoding and ticking) and with a DARE arm; beside them the JSON
/// mapping's decode rate alone; a DARE trainer publishing model updates; one server
/// (`recstream serve`) answering a backlog of requests. Then consumer lag while events are produced at a steady
/// rate, sampled after every applied tick.
public struct AttachBench: Sendable {
    public var events = 150_000
    public var partitions = 8
    public var steadyRate = 20_000.0
    public var steadySeconds = 10.0
    public var serveRequests = 20_000
    /// The id universes of the real-id case: users and items drawn Zipf-like from these.
    public var distinctUsers = 10_000_000
    public var distinctItems = 1_000_000
    /// Alternating runs of the real-id case and its integer baseline.
    public var idRepeats = 3
    public init() {}

    static let modelText = """
        {"name": "dare", "seed": 5, "candidates": 100,
         "ranking": {"type": "dare", "attentionDim": 16, "representationDim": 16, "topK": 20, "maxHistory": 100},
         "tables": {"users": {"capacity": 10000000}, "items": {"capacity": 1000000}, "categories": {"capacity": 1000}}}
        """
    static let idMappingText = """
        {"user": {"field": "user", "kind": "string"}, "item": {"field": "item", "kind": "int64"},
         "category": {"field": "category", "kind": "int64"}}
        """

    /// A rank in 1...n, Zipf-like with exponent 1 (log-uniform: P(rank <= k) = ln k / ln n).
    static func zipf(_ n: Int, _ rng: inout RandomStream) -> Int {
        min(n, max(1, Int(exp(rng.nextDouble() * log(Double(n))).rounded(.down))))
    }

    /// Event `n` of a real stream's shape: the same slates and clicks as `event`, with a
    /// string user id and a 64-bit item id drawn from `users` and `items`.
    static func idEvent(_ n: Int, users: Int, items: Int, rng: inout RandomStream) -> (key: [UInt8], json: [UInt8]) {
        let user = "u_" + String(zipf(users, &rng), radix: 16), rank = zipf(items, &rng), tick = n / 1000
        let item = 9_100_000_000_000 + Int64(rank) * 7919
        let click = rng.nextDouble() < 0.15
        let json = #"{"user": "\#(user)", "item": \#(item), "category": \#(rank % 24), "event": "\#(click ? "click" : "impression")", "timestamp": \#(tick), "viewSeconds": \#(click ? 30 : 0)}"#
        return (Array(user.utf8), Array(json.utf8))
    }

    static let scenarioText = """
        {"name": "attach-bench", "seed": 5,
         "population": {"users": 2000, "history": {"median": 100, "max": 1000}},
         "catalog": {"items": 5000, "topics": 24, "topCategories": 6, "subcategories": 4},
         "arms": [{"name": "ctr", "share": 0.5, "candidates": 100, "ranking": {"type": "ctr"}},
                  {"name": "dare", "share": 0.5, "candidates": 100,
                   "ranking": {"type": "dare", "attentionDim": 16, "representationDim": 16, "topK": 20, "maxHistory": 100}}],
         "kafka": {"topicPrefix": "attach-bench"}}
        """

    /// Event `n` of a stream: slates of 10 impressions, 15% clicked, 1,000 events a tick
    /// (or `perTick`).
    static func event(_ n: Int, perTick: Int = 1000, rng: inout RandomStream) -> (user: UInt32, json: [UInt8], wire: Feedback) {
        let user = UInt32(rng.nextInt(below: 2000)), item = UInt32(rng.nextInt(below: 5000)), tick = UInt32(n / perTick)
        let click = rng.nextDouble() < 0.15
        let kind: FeedbackEvent = click ? .click : .impression
        let json = #"{"user": \#(user), "item": \#(item), "event": "\#(click ? "click" : "impression")", "timestamp": \#(tick), "viewSeconds": \#(click ? 30 : 0)}"#
        let wire = Feedback(RecordHeader(arm: 1, tick: tick, user: user, sequence: UInt32(n / 10)), event: kind, position: UInt8(n % 10),
                            item: item, shownTick: tick, viewSeconds: click ? 30 : 0)
        return (user, Array(json.utf8), wire)
    }

    public func run(progress: (String) -> Void = { _ in }) throws -> BenchReport {
        let broker = try EmbeddedBroker()
        let scenario = try Scenario.decode(Self.scenarioText)
        var results: [BenchResult] = []
        let producer = try KafkaProducer(configuration: broker.clientConfiguration.merging(["linger.ms": "5", "queue.buffering.max.messages": "1000000"]))
        var scratch = [UInt8](repeating: 0, count: Wire.feedbackSize)

        func send(_ topic: KafkaTopic, _ e: (user: UInt32, json: [UInt8], wire: Feedback), json: Bool) throws {
            try withUnsafeBytes(of: e.user) { key in
                if json {
                    try e.json.withUnsafeBytes { try producer.send(topic, key: key, value: $0) }
                } else {
                    _ = scratch.withUnsafeMutableBytes { Wire.encode(e.wire, into: $0) }
                    try scratch.withUnsafeBytes { try producer.send(topic, key: key, value: $0) }
                }
            }
        }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("recstream-bench-attach-\(getpid())").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }

        // The mapping's decode rate alone.
        progress("attach: JSON decode")
        var rng = RandomStream(seed: 3, 1)
        let sample = (0..<20_000).map { Self.event($0, rng: &rng).json }
        var decodeRates: [Double] = []
        for _ in 0..<5 {
            let start = ContinuousClock.now
            for bytes in sample { _ = bytes.withUnsafeBytes { try? EventMapping().decode($0) } }
            decodeRates.append(Double(sample.count) / (ContinuousClock.now - start).seconds)
        }
        results.append(BenchResult(name: "JSON mapping decode, 1 thread", unit: "events/s", samples: decodeRates))

        // Backlogs: produce, then train through them.
        var topicNumber = 0
        for (json, arm, publish) in [(true, "ctr", false), (true, "dare", false), (false, "dare", false), (false, "dare", true)] {
            topicNumber += 1
            let topic = "bench-\(topicNumber)"
            try broker.createTopic(topic, partitions: partitions)
            try broker.createTopic("\(topic).dead-letter", partitions: 1)
            let handle = try producer.topic(topic)
            var rng = RandomStream(seed: 4, 1)
            for n in 0..<events { try send(handle, Self.event(n, rng: &rng), json: json) }
            try producer.flush(timeoutMilliseconds: 60_000)
            progress("attach: \(json ? "JSON" : "wire"), \(arm) arm, \(events) events")
            var options = StreamTrainer.Options(topic: topic, deadLetterTopic: "\(topic).dead-letter", format: json ? .json(EventMapping()) : .wire,
                                                checkpointPath: "\(directory)/\(topic).ckpt", groupID: "bench", properties: broker.clientConfiguration.properties)
            options.exitWhenIdleSeconds = 0.3
            options.idleFlushSeconds = 0.2
            if publish {
                try broker.createTopic("\(topic).model", partitions: 1)
                options.modelTopic = "\(topic).model"
            }
            let trainer = try StreamTrainer(scenario: scenario, arm: arm, options: options)
            var rate = 0.0
            trainer.onProgress = { rate = max(rate, $0.eventsPerSecond) }
            let start = ContinuousClock.now
            let counters = try trainer.run()
            // Without the final idle wait: the time to apply everything.
            let seconds = (ContinuousClock.now - start).seconds - options.exitWhenIdleSeconds!
            guard counters.events == events else { throw BenchError("attach bench: applied \(counters.events) of \(events) events") }
            results.append(BenchResult(name: "train, \(json ? "JSON" : "wire") events, \(arm) arm\(publish ? ", publishing model updates every 1 s" : "")",
                                       unit: "events/s", samples: [Double(events) / seconds]))
        }

        // Real ids: string users and 64-bit items from universes of millions, through id
        // dictionaries, against the integer ids of a scenario's world (the same events
        // otherwise, the same DARE settings), runs alternating.
        results += try realIds(broker: broker, producer: producer, directory: directory, progress: progress)
        topicNumber += 1

        // Serving: a backlog of requests answered by one server (for DARE, following no
        // trainer: the cost of serving, not of updates).
        for arm in ["ctr", "dare"] {
            topicNumber += 1
            let requests = "bench-\(topicNumber).requests", slates = "bench-\(topicNumber).recommendations"
            try broker.createTopic(requests, partitions: partitions)
            try broker.createTopic(slates, partitions: partitions)
            try broker.createTopic("\(requests).dead-letter", partitions: 1)
            let handle = try producer.topic(requests)
            let armIndex = UInt16(scenario.arms.firstIndex { $0.name == arm }!)
            var bytes = [UInt8](repeating: 0, count: Wire.requestSize)
            for n in 0..<serveRequests {
                let user = UInt32(n % 2000)
                let r = Request(RecordHeader(arm: armIndex, tick: UInt32(n / 2000), user: user, sequence: UInt32(n / 2000)), slateSize: 10)
                _ = bytes.withUnsafeMutableBytes { Wire.encode(r, into: $0) }
                try withUnsafeBytes(of: user) { key in try bytes.withUnsafeBytes { try producer.send(handle, key: key, value: $0) } }
            }
            try producer.flush(timeoutMilliseconds: 60_000)
            progress("attach: serve, \(arm) arm, \(serveRequests) requests")
            var options = StreamServer.Options(requestsTopic: requests, recommendationsTopic: slates, deadLetterTopic: "\(requests).dead-letter",
                                               modelTopic: nil, groupID: "bench-serve", properties: broker.clientConfiguration.properties)
            options.exitWhenIdleSeconds = 0.3
            let server = try StreamServer(scenario: scenario, arm: arm, options: options)
            let start = ContinuousClock.now
            let counters = try server.run()
            let seconds = (ContinuousClock.now - start).seconds - options.exitWhenIdleSeconds!
            guard counters.served == serveRequests else { throw BenchError("attach bench: served \(counters.served) of \(serveRequests) requests") }
            results.append(BenchResult(name: "serve, wire requests, \(arm) arm (slates of 10 from 100 candidates)", unit: "requests/s",
                                       samples: [Double(serveRequests) / seconds]))
            results.append(BenchResult(name: "serve, \(arm) arm: time to build a slate, p50", unit: "µs",
                                       samples: [Double(server.latency.valueAtPercentile(50)) / 1000]))
            results.append(BenchResult(name: "serve, \(arm) arm: time to build a slate, mean", unit: "µs", samples: [server.latency.mean / 1000]))
            results.append(BenchResult(name: "serve, \(arm) arm: time to build a slate, p99", unit: "µs",
                                       samples: [Double(server.latency.valueAtPercentile(99)) / 1000]))
        }

        // Steady produce rate: lag after each applied tick (1,000 events a tick).
        progress("attach: steady \(Int(steadyRate)) events/s for \(Int(steadySeconds)) s")
        topicNumber += 1
        let topic = "bench-\(topicNumber)"
        try broker.createTopic(topic, partitions: partitions)
        try broker.createTopic("\(topic).dead-letter", partitions: 1)
        var options = StreamTrainer.Options(topic: topic, deadLetterTopic: "\(topic).dead-letter", format: .json(EventMapping()),
                                            checkpointPath: "\(directory)/steady.ckpt", groupID: "bench", properties: broker.clientConfiguration.properties)
        options.exitWhenIdleSeconds = 1
        let total = Int(steadyRate * steadySeconds)
        let shared = SharedProducer(producer: producer)
        let rate = steadyRate
        let feeder = Thread {
            let producer = shared.producer
            var rng = RandomStream(seed: 6, 1)
            let handle = try! producer.topic(topic)
            let start = ContinuousClock.now
            for n in 0..<total {
                let e = Self.event(n, rng: &rng)
                try! withUnsafeBytes(of: e.user) { key in try e.json.withUnsafeBytes { try producer.send(handle, key: key, value: $0) } }
                if n % 500 == 0 {
                    try? producer.poll()
                    let due = start + .seconds(Double(n) / rate)
                    if ContinuousClock.now < due { Thread.sleep(forTimeInterval: (due - ContinuousClock.now).seconds) }
                }
            }
            try? producer.flush(timeoutMilliseconds: 30_000)
        }
        let trainer = try StreamTrainer(scenario: scenario, arm: "dare", options: options)
        var lags: [Double] = []
        trainer.onProgress = { p in if !p.checkpointed { lags.append(Double(p.lag.reduce(0, +))) } }
        feeder.start()
        let counters = try trainer.run()
        guard counters.events == total else { throw BenchError("attach bench: applied \(counters.events) of \(total) steady events") }
        let sorted = lags.sorted()
        results.append(BenchResult(name: "consumer lag at \(Int(steadyRate)) JSON events/s, DARE arm: median", unit: "events", samples: lags))
        results.append(BenchResult(name: "consumer lag at \(Int(steadyRate)) JSON events/s, DARE arm: max", unit: "events", samples: [sorted.last ?? .nan]))

        withExtendedLifetime(broker) {}
        return BenchReport(bench: "attach", results: results, notes: [
            "Real ids: a DARE model without a world (--model) on JSON events with string user ids drawn from \(distinctUsers) and 64-bit item ids from \(distinctItems) (log-uniform ranks, Zipf exponent 1) and a category, against the same DARE on integer ids of a 2,000-user, 5,000-item world; \(idRepeats) alternating runs each. Dictionary figures: every id of each universe inserted once, then looked up Zipf-like.",
            "One trainer on the embedded broker, \(partitions) partitions, events keyed by user; a world of 2,000 users and 5,000 items; DARE with 3 fields of 16, L=100, K=20.",
            "Backlogs of \(events) events, 1,000 a tick (slates of 10, 15% clicked), trained from the start; the time excludes the final idle wait.",
            "Model updates: the changed rows, the dense layers, the counted items and the appended clicks since the last update, as values.",
            "Serving: one server, requests of one arm from a backlog, slates produced to the recommendations topic; the time excludes the final idle wait.",
            "Lag: messages produced but not yet applied, after each applied tick. A tick is applied once every partition has moved past it, so about one tick of events (1,000 here) always waits.",
        ])
    }
}

extension AttachBench {
    func realIds(broker: EmbeddedBroker, producer: KafkaProducer, directory: String, progress: (String) -> Void) throws -> [BenchResult] {
        var results: [BenchResult] = []
        // The dictionaries alone: every id of the universes once, then Zipf-like lookups.
        progress("attach: id dictionaries, \(distinctUsers) string ids and \(distinctItems) int64 ids")
        let users = IdDictionary(kind: .string, settings: .init(capacity: distinctUsers))
        var start = ContinuousClock.now
        for u in 1...distinctUsers { _ = users.row(for: .string("u_" + String(u, radix: 16)), tick: 0) }
        let userInsert = (ContinuousClock.now - start).seconds
        let items = IdDictionary(kind: .int64, settings: .init(capacity: distinctItems))
        start = ContinuousClock.now
        for i in 1...distinctItems { _ = items.row(for: .int(9_100_000_000_000 + Int64(i) * 7919), tick: 0) }
        let itemInsert = (ContinuousClock.now - start).seconds
        var rng = RandomStream(seed: 8, 1)
        let probes = (0..<1_000_000).map { _ in ExternalID.string("u_" + String(Self.zipf(distinctUsers, &rng), radix: 16)) }
        start = ContinuousClock.now
        var found = 0
        for id in probes where users.row(for: id, tick: 1) > 0 { found += 1 }
        let lookup = (ContinuousClock.now - start).seconds
        guard found == probes.count else { throw BenchError("attach bench: \(probes.count - found) known ids found no row") }
        results.append(BenchResult(name: "id dictionary, \(distinctUsers) string user ids: bytes per id", unit: "bytes",
                                   samples: [Double(users.memoryBytes) / Double(users.entries)]))
        results.append(BenchResult(name: "id dictionary, \(distinctItems) int64 item ids: bytes per id", unit: "bytes",
                                   samples: [Double(items.memoryBytes) / Double(items.entries)]))
        results.append(BenchResult(name: "id dictionary, string ids: new id to a row, 1 thread", unit: "ids/s", samples: [Double(distinctUsers) / userInsert]))
        results.append(BenchResult(name: "id dictionary, int64 ids: new id to a row, 1 thread", unit: "ids/s", samples: [Double(distinctItems) / itemInsert]))
        results.append(BenchResult(name: "id dictionary, string ids: known id to its row (Zipf), 1 thread", unit: "ids/s", samples: [Double(probes.count) / lookup]))

        // The trainer: real ids against integer ids, alternating.
        let scenario = try Scenario.decode(Self.scenarioText)
        let model = try ModelSpec.decode(Self.modelText)
        let mapping = try EventMapping(json: JSONValue.parse(Self.idMappingText))
        var real: [Double] = [], integer: [Double] = []
        var rows = ""
        for round in 0..<idRepeats {
            for useIds in [true, false] {
                let topic = "bench-ids-\(round)-\(useIds ? "real" : "int")"
                try broker.createTopic(topic, partitions: partitions)
                try broker.createTopic("\(topic).dead-letter", partitions: 1)
                let handle = try producer.topic(topic)
                var rng = RandomStream(seed: 4, 1)
                for n in 0..<events {
                    if useIds {
                        let e = Self.idEvent(n, users: distinctUsers, items: distinctItems, rng: &rng)
                        try e.key.withUnsafeBytes { key in try e.json.withUnsafeBytes { try producer.send(handle, key: key, value: $0) } }
                    } else {
                        let e = Self.event(n, rng: &rng)
                        try withUnsafeBytes(of: e.user) { key in try e.json.withUnsafeBytes { try producer.send(handle, key: key, value: $0) } }
                    }
                }
                try producer.flush(timeoutMilliseconds: 60_000)
                progress("attach: JSON events, DARE, \(useIds ? "string and int64 ids" : "integer ids"), round \(round + 1) of \(idRepeats)")
                var options = StreamTrainer.Options(topic: topic, deadLetterTopic: "\(topic).dead-letter", format: .json(useIds ? mapping : EventMapping()),
                                                    checkpointPath: "\(directory)/\(topic).ckpt", groupID: "bench", properties: broker.clientConfiguration.properties)
                options.exitWhenIdleSeconds = 0.3
                options.idleFlushSeconds = 0.2
                let trainer = useIds ? try StreamTrainer(model: model, options: options) : try StreamTrainer(scenario: scenario, arm: "dare", options: options)
                let start = ContinuousClock.now
                let counters = try trainer.run()
                let seconds = (ContinuousClock.now - start).seconds - options.exitWhenIdleSeconds!
                guard counters.events == events else { throw BenchError("attach bench: applied \(counters.events) of \(events) events") }
                if useIds {
                    real.append(Double(events) / seconds)
                    if let open = trainer.open { rows = "\(open.users.occupied) users, \(open.items.occupied) items" }
                } else {
                    integer.append(Double(events) / seconds)
                }
            }
        }
        results.append(BenchResult(name: "train, JSON events, DARE: string user and int64 item ids (\(rows) got rows) (baseline: integer ids)",
                                   unit: "events/s", samples: real, baselineSamples: integer))
        return results
    }
}

/// The producer, handed to the feeder thread while the main thread only trains.
struct SharedProducer: @unchecked Sendable {
    let producer: KafkaProducer
}
