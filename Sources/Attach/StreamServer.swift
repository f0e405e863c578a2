import Foundation
import Histogram
import Kafka
import Metrics
import Models
import Population
import RecCore
import Scenario
import Server

/// `recstream serve`: one arm's server attached to Kafka, free-running.
///
/// It consumes requests (recstream's request records; or JSON, see `Options.format`);
/// instances of one arm split the partitions between them, by instance number (partition
/// p goes to instance p mod n), and share a consumer group for their offsets. It answers each request of its arm with a
/// slate on the recommendations topic (keyed by user), and follows its trainer through
/// the model updates on `<prefix>.model`: every update applies whole, in order, between
/// two requests, so serving follows training without restarts. It starts from the same
/// state a fresh trainer has (the scenario's model initialisation and the users' logged
/// histories), and reads the model topic from its beginning.
///
/// **Nothing lost.** Request offsets are committed only after the slates answering them
/// are delivered; a server that dies before that answers those requests again when it (or
/// another instance) takes the partition over: at least once. The simulator keeps the
/// first slate it gets for a request and counts the rest.
///
/// **Bad messages.** A request that does not decode, or names a user outside the world,
/// goes to the dead-letter topic with the reason in `recstream-error`; a model update that
/// does not decode or apply is counted and logged, and the server goes on with the model
/// it has.
public final class StreamServer {
    public struct Options: Sendable {
        public var requestsTopic: String
        public var recommendationsTopic: String
        public var deadLetterTopic: String
        /// Where the trainer publishes; nil serves the initial model (and statistics) only.
        public var modelTopic: String?
        public var groupID: String
        public var properties: [String: String]
        /// This server is instance `instance` of `instances`: it serves the partitions p of
        /// the requests topic with p mod instances == instance. Static, not rebalanced: an
        /// instance that stops leaves its partitions waiting until it (or a replacement
        /// with its number) starts, and resumes from the group's committed offsets.
        /// (librdkafka's group subscription delivered requests about 9 times slower here
        /// while serving DARE; see the README.)
        public var instance = 0
        public var instances = 1
        /// wire: recstream's request and slate records (what `simulate` speaks); the catalog
        /// follows their ticks. json: JSON requests read through the mapping (user,
        /// timestamp, request, and an optional `slateSize`), answered with JSON slates
        /// (`{"user", "arm", "tick", "request", "items", "propensities"}`), for
        /// requests from anything, `kcat -P` included; each user is served by the arm the
        /// experiment assigns, and the catalog stays the scenario's.
        public var format: StreamTrainer.Format = .wire
        public var connectTimeoutSeconds = 30.0
        /// Seconds between commits of answered requests.
        public var commitEverySeconds = 1.0
        /// How many ticks past its anchor (the model's tick, or the scenario's last tick if
        /// that is later) the catalog may follow a request or a model update; a request
        /// further ahead is dead-lettered, an update refused. So forged requests cannot push
        /// the catalog ahead without limit.
        public var maxEventLead: Int64 = StreamTrainer.defaultEventLead(.wire)
        /// Requires every model update message to carry a valid signature of this key
        /// (see `ModelSigner`); nil takes unsigned updates.
        public var modelSigner: ModelSigner?
        /// Seconds between looks at the topics' partition counts.
        public var partitionCheckSeconds = 5.0
        /// Exit once no request has come for this long (after answering all; counted from
        /// the first request, so a server started before its users waits); nil runs until
        /// stopped.
        public var exitWhenIdleSeconds: Double?
        public init(requestsTopic: String, recommendationsTopic: String, deadLetterTopic: String, modelTopic: String?,
                    groupID: String, properties: [String: String]) {
            self.requestsTopic = requestsTopic
            self.recommendationsTopic = recommendationsTopic
            self.deadLetterTopic = deadLetterTopic
            self.modelTopic = modelTopic
            self.groupID = groupID
            self.properties = properties
        }
    }

    public struct Counters: Sendable, Equatable {
        /// Requests of this arm answered with a slate.
        public var served = 0
        /// Requests of other arms (the requests topic carries every arm's): skipped.
        public var otherArms = 0
        public var deadLetters = 0
        public var updatesApplied = 0
        /// Updates that repeat ticks this server already holds (a restarted trainer's).
        public var updatesSkipped = 0
        /// Updates that did not decode or apply, or that belong to another scenario.
        public var updateErrors = 0
        /// Update messages dropped unsigned or badly signed (with `modelSigner`).
        public var updatesUnauthenticated = 0
        /// Updates that began after the last tick this server held: the ones between are
        /// gone from the topic (retention), so the model may differ from the trainer's.
        public var updateGaps = 0
        /// Update parts dropped unjoined: a part without its beginning (the server started
        /// mid-update, or parts were lost), an update its trainer never finished, or a run
        /// of parts larger than the server joins.
        public var partsAbandoned = 0
        public init() {}
    }

    /// The world whose requests these are; nil for a model without a world (`open`).
    public let scenario: Scenario?
    public let armName: String
    /// A model without a world's id dictionaries, as its trainer's updates make them.
    public let open: OpenWorld?
    /// Items per slate when a request does not say.
    let slateSize: Int
    /// The user id the last JSON request of a model without a world named (its slate names it).
    var requestUser: ExternalID?
    public let armIndex: Int
    public let options: Options
    /// The state the server scores with: its trainer's, as the model updates make it.
    public let state: ModelReplica
    /// What the server scores with: the models in `state`.
    let armModels: ArmModels
    public private(set) var server: ArmServer
    public internal(set) var counters = Counters()
    /// The last tick the model state covers (-1: the initial state).
    public private(set) var modelThrough: Int64 = -1
    public private(set) var transientErrors = 0
    /// Time to build each slate (retrieve, score, select), in nanoseconds.
    public private(set) var latency = Histogram<UInt64>(highestTrackableValue: 60_000_000_000, numberOfSignificantValueDigits: .three)
    var feed: CatalogFeed?
    var assembler = UpdateAssembler()
    /// The next offset of each model-topic partition (for re-assigning when it grows).
    var modelPositions: [Int32: Int64] = [:]
    /// Called with what an operator should know but that does not stop the server.
    public var onWarning: ((String) -> Void)?
    let users: Int
    /// Each user's arm (JSON requests carry none).
    let assignment: [UInt16]
    let identity: String
    /// The latest update error (for the log).
    public private(set) var lastUpdateError: String?
    public var metricsFactory: (any MetricsFactory)?
    /// Called about once a second and when the server stops.
    public var onProgress: ((Counters) -> Void)?

    public init(scenario: Scenario, arm: String, options: Options) throws(AttachError) {
        let index = try attachableArm(scenario, arm, role: "serve")
        try OpenWorld.refuseInWorld(options.format, role: "serve")
        self.scenario = scenario
        armIndex = index
        armName = scenario.arms[index].name
        open = nil
        slateSize = scenario.population.slateSize
        self.options = options
        let world = Population(scenario, threads: 1)
        users = world.userCount
        assignment = world.assignment.arm
        let feed = CatalogFeed(scenario)
        self.feed = feed
        let replica = StreamTrainer.freshReplica(scenario, armIndex: index, world: world)
        state = replica
        server = ArmServer(settings: scenario.arms[index], armIndex: index, catalogSize: world.catalog.count, seed: scenario.seed)
        server.updateCatalog(live: feed.catalog.liveItems, count: feed.catalog.count, arrived: feed.arrived)
        identity = "scenario \(scenario.fingerprint) seed \(scenario.seed), arm \(armName)"
        // Attach roles run no tower or poly arm (`attachableArm`): the sequence model at most.
        armModels = ArmModels(settings: scenario.arms[index], sequence: replica.model.map { ($0, replica.histories!) })
        assembler = UpdateAssembler(maxBytes: Self.maxUpdateBytes(replica))
    }

    /// A server of a model without a world (see `StreamTrainer.init(model:options:)`): it
    /// answers JSON requests naming the stream's own user ids with slates of the stream's
    /// own item ids, and follows its trainer's model updates, id dictionaries included.
    /// It can serve only the items its trainer has given rows; before the first update it
    /// has none, and answers with empty slates.
    public init(model: ModelSpec, options: Options) throws(AttachError) {
        let mapping = try OpenWorld.mapping(options.format, role: "serves JSON requests")
        scenario = nil
        armIndex = 0
        armName = model.name
        slateSize = model.slateSize
        self.options = options
        users = 0
        assignment = []
        feed = nil
        open = OpenWorld(spec: model, mapping: mapping)
        let fresh = StreamTrainer.freshTrainer(model)
        let replica = ModelReplica(items: 1, model: fresh.sequence?.model, histories: fresh.sequence?.histories)
        state = replica
        server = ArmServer(settings: model.arm, armIndex: 0, catalogSize: 1, seed: model.seed)
        server.updateCatalog(live: [], count: 1)
        identity = "model \(model.fingerprint) seed \(model.seed), arm \(model.name)"
        armModels = ArmModels(settings: model.arm, sequence: replica.model.map { ($0, replica.histories!) })
        assembler = UpdateAssembler(maxBytes: 1 << 30)
    }

    /// Runs until `shouldStop()` or, with `exitWhenIdleSeconds`, until requests stop
    /// coming; answers what it has consumed, commits, and returns.
    public func run(shouldStop: () -> Bool = { false }) throws -> Counters {
        let base = KafkaConfiguration(options.properties)
        let partitionCount = try waitForTopic(options.requestsTopic, base, timeoutSeconds: options.connectTimeoutSeconds)
        var mine = (0..<partitionCount).filter { $0 % options.instances == options.instance }
        guard !mine.isEmpty else {
            throw AttachError("instance \(options.instance) of \(options.instances) has no partition: \(options.requestsTopic) has \(partitionCount)")
        }
        try requireTopic(options.deadLetterTopic, base, timeoutSeconds: options.connectTimeoutSeconds,
                         missing: "dead-letter topic \(options.deadLetterTopic) does not exist: create it (recstream broker --prefix creates every topic of a prefix); requests that cannot be served are copied there")
        let requests = try KafkaConsumer(configuration: base.attachConsumer(group: options.groupID))
        defer { requests.close() }
        // From the group's committed offsets, the beginning where there are none (asked
        // explicitly: the consumer resets no offset by itself).
        let partitions = mine.map { TopicPartition(options.requestsTopic, Int32($0)) }
        let committed = try requests.committed(partitions, timeoutMilliseconds: Int32(options.connectTimeoutSeconds * 1000))
        try requests.assign(partitions.map { ($0, offset: committed[$0] ?? KafkaOffset.beginning) })

        var models: KafkaConsumer?
        var modelPartitions = 0
        if let topic = options.modelTopic {
            let partitionCount = try waitForTopic(topic, base, timeoutSeconds: options.connectTimeoutSeconds)
            modelPartitions = partitionCount
            // Updates gone from the topic are gaps the server counts (an update's `from`
            // shows them), so here the consumer may move on to the earliest it has.
            let consumer = try KafkaConsumer(configuration: base.attachConsumer(group: "\(options.groupID)-model", offsetReset: "earliest"),
                                             batchCapacity: 64)
            try consumer.assign((0..<partitionCount).map { (TopicPartition(topic, Int32($0)), offset: KafkaOffset.beginning) })
            models = consumer
            try catchUp(consumer, topic: topic, partitions: partitionCount)
        }
        defer { models?.close() }

        var producerConfig = base
        producerConfig.setDefault("client.id", "recstream-serve-\(armName)")
        producerConfig.setDefault("linger.ms", "1")
        let producer = try KafkaProducer(configuration: producerConfig)
        let slates = try producer.topic(options.recommendationsTopic)
        var metrics = ServerMetrics(arm: armName, factory: metricsFactory ?? MetricsSystem.factory)

        let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: Wire.slateSize(items: Wire.maxSlateSize), alignment: 8)
        defer { scratch.deallocate() }
        var entries: [SlateEntry] = []
        entries.reserveCapacity(Wire.maxSlateSize)
        var lastCommit = ContinuousClock.now
        var lastRequest: ContinuousClock.Instant?
        let clock = ContinuousClock()

        func commit() throws {
            // Slates first: a committed request has its answer on the broker.
            try producer.flush(timeoutMilliseconds: Int32(options.connectTimeoutSeconds * 1000))
            do { try requests.commitConsumed() } catch { transientErrors += 1 }
            lastCommit = .now
            metrics.report(counters, modelThrough: modelThrough, transient: transientErrors + requests.transientErrorCount)
            onProgress?(counters)
        }

        /// Partitions added to the requests or model topic are taken up as they appear
        /// (requests from the group's committed offsets or the beginning; updates from the
        /// beginning), without a restart. Re-assigning restarts every partition from a known
        /// offset: the answered requests are committed first, and the model consumer
        /// resumes each partition after the last message it took.
        let admin = try KafkaAdmin(configuration: base)
        var lastPartitionCheck = ContinuousClock.now
        func followPartitions() throws {
            lastPartitionCheck = .now
            guard let metadata = try? admin.metadata(timeoutMilliseconds: 1000) else { return }
            if let count = metadata.topic(options.requestsTopic)?.partitionCount {
                let now = (0..<count).filter { $0 % options.instances == options.instance }
                if now.count > mine.count {
                    try commit()
                    let all = now.map { TopicPartition(options.requestsTopic, Int32($0)) }
                    let committed = try requests.committed(all, timeoutMilliseconds: Int32(options.connectTimeoutSeconds * 1000))
                    try requests.assign(all.map { ($0, offset: committed[$0] ?? KafkaOffset.beginning) })
                    onWarning?("\(options.requestsTopic) grew to \(count) partitions: this instance now serves \(now.map(String.init).joined(separator: ", "))")
                    mine = now
                }
            }
            if let models, let topic = options.modelTopic, let count = metadata.topic(topic)?.partitionCount, count > modelPartitions {
                try models.assign((0..<count).map { p in (TopicPartition(topic, Int32(p)), offset: modelPositions[Int32(p)] ?? KafkaOffset.beginning) })
                onWarning?("\(topic) grew from \(modelPartitions) to \(count) partitions: following the new ones from their beginning")
                modelPartitions = count
            }
        }

        while !shouldStop() {
            if (ContinuousClock.now - lastPartitionCheck).seconds >= options.partitionCheckSeconds { try followPartitions() }
            if let models { try followModel(models) }
            let got = try requests.consumeBatch(timeoutMilliseconds: 50) { batch in
                for m in batch {
                    let request: Request
                    do {
                        request = try decodeRequest(m.value)
                    } catch {
                        try producer.sendDeadLetter(to: options.deadLetterTopic, key: m.key, value: m.value,
                                                    source: TopicPartition(options.requestsTopic, m.partition), offset: m.offset, reason: "\(error)")
                        counters.deadLetters += 1
                        continue
                    }
                    // Requests carry the user's assigned arm; this arm serves them after the
                    // warm-up, and the control serves everyone in it.
                    guard scenario.map({ $0.servingArm(assigned: Int(request.header.arm), tick: request.header.tick) == armIndex }) ?? true else {
                        counters.otherArms += 1
                        continue
                    }
                    followCatalog(through: Int64(request.header.tick))
                    entries.removeAll(keepingCapacity: true)
                    let began = clock.now
                    server.serve(request, statistics: state.statistics, models: armModels, into: &entries)
                    let elapsed = clock.now - began
                    _ = latency.record(UInt64(max(0, elapsed.components.seconds)) * 1_000_000_000 + UInt64(max(0, elapsed.components.attoseconds / 1_000_000_000)))
                    metrics.latency.record(duration: elapsed)
                    switch options.format {
                    case .wire:
                        let n = entries.withUnsafeBufferPointer {
                            Wire.encodeSlate(request.header, policy: UInt16(armIndex), entries: $0, into: scratch)
                        }
                        try producer.send(slates, key: m.key, value: UnsafeRawBufferPointer(rebasing: scratch[..<n]))
                    case .json:
                        let line = Array(jsonSlate(request.header, entries, user: requestUser).utf8)
                        try line.withUnsafeBytes { try producer.send(slates, key: m.key, value: $0) }
                    }
                    counters.served += 1
                }
                return batch.count
            }
            try producer.poll()
            if got > 0 { lastRequest = .now }
            if (ContinuousClock.now - lastCommit).seconds >= options.commitEverySeconds { try commit() }
            if let idle = options.exitWhenIdleSeconds, got == 0, let lastRequest, (ContinuousClock.now - lastRequest).seconds >= idle { break }
        }
        if let models { try followModel(models) }
        try commit()
        transientErrors += requests.transientErrorCount + (models?.transientErrorCount ?? 0)
        return counters
    }

    /// A request record, or a JSON request through the mapping; checked against the world.
    package func decodeRequest(_ bytes: UnsafeRawBufferPointer) throws -> Request {
        let request: Request
        switch options.format {
        case .wire:
            request = try Wire.decodeRequest(bytes)
            guard Int64(request.header.tick) <= catalogAnchor + options.maxEventLead else {
                throw WireError("tick \(request.header.tick) is more than --max-event-lead \(options.maxEventLead) ticks past the server's tick \(catalogAnchor) (its model's, or the scenario's last)", at: 4)
            }
        case .json(let mapping):
            let r = try mapping.decodeRequest(bytes)
            if let open {
                // An unknown user (or one without a row yet) is row 0: no history.
                requestUser = r.user
                let row = open.users.lookup(r.user) ?? 0
                return Request(RecordHeader(arm: 0, tick: r.tick ?? Tick(clamping: max(0, modelThrough)), user: UserID(row), sequence: r.request ?? 0),
                               slateSize: UInt16(r.slateSize ?? slateSize))
            }
            // A world's users are index ids (the mapping is checked at start).
            guard case .int(let id) = r.user, id >= 0, id < Int64(users) else { throw EventDecodeError("user \(r.user) is not in the scenario's world (\(users) users)") }
            let user = UserID(id)
            request = Request(RecordHeader(arm: assignment[Int(user)], tick: r.tick ?? 0, user: user, sequence: r.request ?? 0),
                              slateSize: UInt16(r.slateSize ?? slateSize))
        }
        guard Int(request.header.user) < users else {
            throw WireError("user \(request.header.user) is not in the scenario's world (\(users) users)", at: 8)
        }
        return request
    }

    /// A slate as one line of JSON: a model without a world's in the stream's own ids
    /// (`user` is the id the request named).
    func jsonSlate(_ h: RecordHeader, _ entries: [SlateEntry], user: ExternalID?) -> String {
        let items: String, userText: String
        if let open {
            items = entries.map { open.items.id(ofRow: Int($0.item))?.json ?? "null" }.joined(separator: ", ")
            userText = user?.json ?? "null"
        } else {
            items = entries.map { String($0.item) }.joined(separator: ", ")
            userText = String(h.user)
        }
        let propensities = entries.map { "\($0.propensity)" }.joined(separator: ", ")
        return #"{"user": \#(userText), "arm": \#(JSONValue.string(armName).rendered(pretty: false)), "tick": \#(h.tick), "request": \#(h.sequence), "items": [\#(items)], "propensities": [\#(propensities)]}"#
    }

    /// Before the first request: applies every update already on the model topic, so a
    /// server (re)started beside a trainer answers with the trainer's model, not the
    /// initial one. Waits at most `connectTimeoutSeconds`, then serves on (and follows).
    func catchUp(_ consumer: KafkaConsumer, topic: String, partitions: Int) throws {
        var ends: [Int32: Int64] = [:]
        for p in 0..<Int32(partitions) {
            if let high = try? consumer.watermarks(TopicPartition(topic, p), timeoutMilliseconds: Int32(options.connectTimeoutSeconds * 1000)).high, high > 0 {
                ends[p] = high
            }
        }
        let deadline = ContinuousClock.now + .seconds(options.connectTimeoutSeconds)
        while ends.contains(where: { (modelPositions[$0.key] ?? 0) < $0.value }) && ContinuousClock.now < deadline {
            try followModel(consumer, timeoutMilliseconds: 100)
        }
        if ends.contains(where: { (modelPositions[$0.key] ?? 0) < $0.value }) {
            onWarning?("\(topic): not every model update on the topic was read within \(Int(options.connectTimeoutSeconds)) s; serving on with the model as it is, and following")
        }
    }

    /// Applies the model updates that have arrived, whole and in order.
    func followModel(_ consumer: KafkaConsumer, timeoutMilliseconds: Int32 = 0) throws {
        var changed = false
        _ = try consumer.consumeBatch(timeoutMilliseconds: timeoutMilliseconds) { batch in
            for m in batch {
                modelPositions[m.partition] = m.offset + 1
                if take(modelMessage: Array(m.value), signature: m.header(ModelSigner.header), from: "\(m.topic) [\(m.partition)] @\(m.offset)") {
                    changed = true
                }
            }
            return batch.count
        }
        if changed { server.refresh(from: state.statistics) }
    }

    /// Takes one message of the model topic (`source` names it in errors; `signature` is
    /// its `recstream-signature` header); returns whether the model changed. Nothing in it
    /// is trusted: a message that does not decode, belongs to another arm or world, is not
    /// signed with this server's key (when it holds one), or fails its checks against this
    /// server's state is counted and skipped, and the server serves on with the model it has.
    package func take(modelMessage message: [UInt8], signature: String? = nil, from source: String) -> Bool {
        func failed(_ reason: String) -> Bool {
            counters.updateErrors += 1
            lastUpdateError = "\(source): \(reason)"
            return false
        }
        let header: ModelUpdate.Header, chunk: [UInt8]
        do {
            (header, chunk) = try ModelUpdate.decode(message)
        } catch {
            return failed("\(error)")
        }
        guard header.identity == identity else { return false }  // another arm's, or another world's
        // Before the assembler holds any of it: a forged part must not displace a real one.
        if let signer = options.modelSigner, let refusal = signer.refusal(of: message, signature: signature) {
            counters.updatesUnauthenticated += 1
            lastUpdateError = "\(source): \(refusal)"
            return false
        }
        let joined = assembler.take(header, chunk)
        counters.partsAbandoned = assembler.abandonedParts
        guard let (update, payload) = joined else { return false }
        guard update.through > modelThrough else {
            counters.updatesSkipped += 1
            return false
        }
        // The catalog advances a tick at a time: an update may not take it further than a
        // request may. (A model without a world has no catalog to advance: its tables
        // follow the update's dictionary changes, bounded by their capacities.)
        // A model without a world has no catalog; its ticks are still 31-bit, and a forged
        // `through` past them would freeze the server (every real update "already held").
        guard open == nil || update.through < Int64(Int32.max) else {
            return failed("update \(update.sequence) of \(update.identity) runs through tick \(update.through), past the last tick a stream can have (\(Int32.max - 1))")
        }
        guard open != nil || update.through <= catalogAnchor + options.maxEventLead else {
            return failed("update \(update.sequence) of \(update.identity) runs through tick \(update.through), more than --max-event-lead \(options.maxEventLead) ticks past the server's tick \(catalogAnchor)")
        }
        let gap = update.from > modelThrough
        do {
            // The catalog follows the update's ticks, as the trainer's did.
            followCatalog(through: update.through)
            if let open {
                try apply(update, payload, open)
            } else {
                try state.apply(update: update, payload: payload, appliedThrough: modelThrough)
            }
        } catch {
            return failed("\(error)")
        }
        if gap { counters.updateGaps += 1 }
        modelThrough = update.through
        counters.updatesApplied += 1
        return true
    }

    /// The tick the catalog's lead is measured from: the model's (what the trainer has
    /// published), or the scenario's last tick if that is later. Requests cannot move it,
    /// so no run of them takes the catalog further than `maxEventLead` past it.
    var catalogAnchor: Int64 { max(modelThrough, Int64(scenario?.ticks ?? 0) - 1) }

    /// The largest update this server joins: twice its whole state (an update holds at
    /// most every row, every dense parameter and every item's counts) and room for
    /// history appends.
    static func maxUpdateBytes(_ state: ModelReplica) -> Int {
        let model = state.model.map { $0.parameterCount * 8 } ?? 0
        return 2 * (model + state.catalogCount * 12) + (256 << 20)
    }

    /// The catalog of tick `t`: new items become servable, retired ones stop being. Only
    /// for recstream's records, whose ticks are the simulation's: JSON streams keep the
    /// scenario's catalog, as the JSON trainer does.
    func followCatalog(through t: Int64) {
        guard case .wire = options.format, feed != nil, t > feed!.through, feed!.advance(through: t) else { return }
        server.updateCatalog(live: feed!.catalog.liveItems, count: feed!.catalog.count, arrived: feed!.arrived)
        state.updateCatalog(categories: feed!.categories(count: feed!.catalog.count), categoryCount: feed!.categoryCount)
    }
}

extension StreamServer {
    /// Applies an update of a model without a world: its dictionary changes (checked
    /// first), the tables grown to the rows they name, then the rest as a world's update;
    /// the dictionaries and categories change only once the rest has applied.
    func apply(_ update: ModelUpdate.Header, _ payload: [UInt8], _ open: OpenWorld) throws {
        let (changes, categories, rest) = try payload.withUnsafeBytes { raw throws -> ([[IdDictionary.Change]], [(UInt32, UInt32)], Int) in
            var r = BinaryReader(raw)
            do {
                let changes = try open.dictionaries.map { d throws(BinaryReadError) in try d.readChanges(from: &r) }
                let count = try r.readCount32("category changes", elementSize: 8)
                var categories: [(UInt32, UInt32)] = []
                for _ in 0..<count {
                    let at = r.offset
                    let item = try r.read(UInt32.self, "item"), category = try r.read(UInt32.self, "category")
                    guard item > 0, Int(item) <= open.items.settings.capacity, Int(category) <= open.categories.settings.capacity else {
                        throw BinaryReadError("category change of item \(item) to \(category): outside the tables' capacities", at: at)
                    }
                    categories.append((item, category))
                }
                return (changes, categories, r.offset)
            } catch {
                throw ModelUpdateError("update \(update.sequence) (ticks \(update.from + 1)...\(update.through)) of \(update.identity): \(error)")
            }
        }
        // A trainer hands out rows in order, so an update names at most as many rows past
        // the server's as it gives out: a forged one cannot make the server allocate more
        // than its own size's worth (the tables grow before the rest is checked).
        var rows: [Int] = []
        for (d, list) in changes.enumerated() {
            let held = open.dictionaries[d].rows, given = list.count(where: { $0.key != nil })
            let highest = list.map { Int($0.row) }.max() ?? 0
            guard highest < held + given else {
                throw ModelUpdateError("update \(update.sequence) of \(update.identity): a row change names row \(highest), past the \(held + given) rows the trainer can have handed out")
            }
            rows.append(max(held, highest + 1))
        }
        for (item, category) in categories where Int(item) >= rows[1] || Int(category) >= rows[2] {
            throw ModelUpdateError("update \(update.sequence) of \(update.identity): a category change of item row \(item) to \(category), past the rows its tables have")
        }
        state.grow(users: rows[0], items: rows[1], categories: rows[2])
        try state.apply(update: update, payload: Array(payload[rest...]), appliedThrough: modelThrough)
        for (d, list) in zip(open.dictionaries, changes) { for c in list { d.apply(c) } }
        for (item, category) in categories { state.model?.setCategory(item: Int(item), category: category) }
        let live = (1..<open.items.rows).filter { open.items.id(ofRow: $0) != nil }.map(ItemID.init)
        server.updateCatalog(live: live, count: open.items.rows)
    }
}

/// The arm `name` of `scenario`, if the attach roles can run it.
func attachableArm(_ scenario: Scenario, _ name: String, role: String) throws(AttachError) -> Int {
    guard let index = scenario.arms.firstIndex(where: { $0.name == name }) else {
        throw AttachError("--arm \(name): the scenario has no such arm; its arms: \(scenario.arms.map(\.name).joined(separator: ", "))")
    }
    let settings = scenario.arms[index]
    if case .towers = settings.retrieval {
        throw AttachError("--arm \(name): \(role) does not yet handle tower retrieval (two-tower, sparc); attach an arm with random or popularity retrieval")
    }
    if settings.ranking.polyModel != nil {
        throw AttachError("--arm \(name): \(role) does not yet handle poly or blend ranking; attach an arm ranked by dare, twin, twin-proj, din, ctr, popularity or random")
    }
    return index
}

extension KafkaConfiguration {
    /// A consumer of the attach roles: `group` for committed offsets (commits are the
    /// role's: KafkaConsumer turns auto-commit off), a short fetch wait (the embedded
    /// broker holds an empty fetch for all of it), and by default no offset reset of
    /// librdkafka's own: an offset that is gone from the broker is an error the role sees
    /// (`KafkaError.isOffsetOutOfRange`), not a silent jump. The roles resolve where to
    /// start themselves, so nothing relies on the reset policy.
    func attachConsumer(group: String, fetchWaitMilliseconds: Int = 10, offsetReset: String = "error") -> KafkaConfiguration {
        var c = self
        c.setDefault("group.id", group)
        c.setDefault("auto.offset.reset", offsetReset)
        c.setDefault("fetch.wait.max.ms", String(fetchWaitMilliseconds))
        return c
    }
}

/// Checks at start that a topic the role writes to exists (waiting up to 10 s for it), so
/// that its absence is found now, not when the first message for it comes.
func requireTopic(_ topic: String, _ config: KafkaConfiguration, timeoutSeconds: Double, missing: String) throws {
    do {
        _ = try waitForTopic(topic, config, timeoutSeconds: min(timeoutSeconds, 10))
    } catch {
        throw AttachError(missing)
    }
}

/// A topic's partition count, waiting for it to exist.
func waitForTopic(_ topic: String, _ config: KafkaConfiguration, timeoutSeconds: Double) throws -> Int {
    let admin = try KafkaAdmin(configuration: config)
    let deadline = ContinuousClock.now + .seconds(timeoutSeconds)
    var lastError: KafkaError?
    while ContinuousClock.now < deadline {
        do {
            if let t = try admin.metadata(timeoutMilliseconds: 2000).topic(topic), t.error == nil, t.partitionCount > 0 {
                return t.partitionCount
            }
        } catch {
            lastError = error
        }
        Thread.sleep(forTimeInterval: 0.2)
    }
    throw AttachError("topic \(topic) did not appear within \(Int(timeoutSeconds)) s"
        + (lastError.map { " (\($0))" } ?? "; create it (recstream broker --prefix), or start what produces it"))
}

/// What an attached server reports through swift-metrics:
/// `recstream_serve_requests_total{arm}`, `recstream_serve_dead_letters_total{arm}`,
/// `recstream_serve_model_updates_total{arm, outcome}` (applied, skipped, error, gap,
/// unauthenticated),
/// `recstream_serve_model_parts_abandoned_total{arm}` (parts dropped unjoined),
/// `recstream_serve_model_tick{arm}` (the last tick the model covers),
/// `recstream_serve_latency_seconds{arm}` (a histogram of the time to build a slate).
struct ServerMetrics {
    let served, deadLetters, transientErrors, partsAbandoned: Counter
    let updates: [String: Counter]
    let modelTick: Gauge
    let latency: Timer
    var reported = StreamServer.Counters()
    var reportedTransient = 0

    init(arm: String, factory: any MetricsFactory) {
        let a = [("arm", arm)]
        served = Counter(label: "recstream_serve_requests_total", dimensions: a, factory: factory)
        deadLetters = Counter(label: "recstream_serve_dead_letters_total", dimensions: a, factory: factory)
        transientErrors = Counter(label: "recstream_serve_transient_errors_total", dimensions: a, factory: factory)
        updates = Dictionary(uniqueKeysWithValues: ["applied", "skipped", "error", "gap", "unauthenticated"].map {
            ($0, Counter(label: "recstream_serve_model_updates_total", dimensions: a + [("outcome", $0)], factory: factory))
        })
        partsAbandoned = Counter(label: "recstream_serve_model_parts_abandoned_total", dimensions: a, factory: factory)
        modelTick = Gauge(label: "recstream_serve_model_tick", dimensions: a, factory: factory)
        latency = Timer(label: "recstream_serve_latency_seconds", dimensions: a, factory: factory)
    }

    mutating func report(_ now: StreamServer.Counters, modelThrough: Int64, transient: Int) {
        served.increment(by: now.served - reported.served)
        deadLetters.increment(by: now.deadLetters - reported.deadLetters)
        updates["applied"]!.increment(by: now.updatesApplied - reported.updatesApplied)
        updates["skipped"]!.increment(by: now.updatesSkipped - reported.updatesSkipped)
        updates["error"]!.increment(by: now.updateErrors - reported.updateErrors)
        updates["gap"]!.increment(by: now.updateGaps - reported.updateGaps)
        updates["unauthenticated"]!.increment(by: now.updatesUnauthenticated - reported.updatesUnauthenticated)
        partsAbandoned.increment(by: now.partsAbandoned - reported.partsAbandoned)
        transientErrors.increment(by: max(0, transient - reportedTransient))
        modelTick.record(modelThrough)
        reported = now
        reportedTransient = transient
    }
}
