import Foundation
import Kafka
import Metrics
import Models
import Population
import RecCore
import Scenario
import Trainer

/// `recstream train`: one arm's trainer attached to a Kafka topic of feedback, free-running.
///
/// **Event-time ticks.** Events are applied a tick at a time, as in a run. A message's
/// tick is its own (its timestamp through the mapping, or a wire record's tick), raised
/// to the highest tick seen before it on its partition (a late event joins the current
/// tick). Tick t is applied once every partition has shown a tick above t, or has sat at
/// its end for `idleFlushSeconds`. Which events form a tick is therefore a function of
/// each partition's content and order, not of timing, so a trainer that restarts from a
/// checkpoint applies exactly the ticks an uninterrupted one does (the one exception is
/// the idle rule, on a partition that stops and later resumes).
///
/// **Nothing lost, nothing applied twice.** The checkpoint holds the model, the
/// statistics, the counters and, per partition, the offset of the first message not yet
/// applied. A restart resumes from those offsets: what was consumed but not applied is
/// read again; what was applied is not. Offsets are committed to the group only after
/// the checkpoint that covers them is on disk (for lag monitoring; the checkpoint is
/// what resumes).
///
/// **Bad messages.** One that does not decode or map is copied to the dead-letter topic
/// with the reason in its `recstream-error` header, counted, and skipped; the stream goes
/// on. Dead letters are sent when their tick is applied, so one applied just before a
/// crash may be sent again after it (at least once); the counter is exact.
public final class StreamTrainer {
    public enum Format: Sendable {
        /// recstream's binary feedback records (what `recstream simulate` and `run` produce).
        case wire
        /// JSON events, read through a field mapping.
        case json(EventMapping)
    }

    public struct Options: Sendable {
        public var topic: String
        public var deadLetterTopic: String
        public var format: Format
        public var checkpointPath: String
        public var groupID: String
        /// librdkafka properties (bootstrap.servers, security, ...).
        public var properties: [String: String]
        public var checkpointEverySeconds = 5.0
        /// A partition at its end for this long stops holding back the ticks.
        public var idleFlushSeconds = 2.0
        /// Exit (after applying everything and checkpointing) once the whole stream has
        /// been at its end for this long; nil runs until stopped. A topic that is still
        /// empty is not at an end: the trainer waits for its first message.
        public var exitWhenIdleSeconds: Double?
        /// How long to wait for the topic to exist and the brokers to answer.
        public var connectTimeoutSeconds = 30.0
        /// Where model updates go (changed rows only; see `ModelUpdate`), so servers follow
        /// training; nil publishes none.
        public var modelTopic: String?
        /// Signs each model update message (HMAC-SHA256 in its `recstream-signature`
        /// header) for servers that require it; nil signs nothing.
        public var modelSigner: ModelSigner?
        /// Seconds between model updates (each covers every tick applied since the last).
        public var publishEverySeconds = 1.0
        /// What to do when offsets the trainer needs are gone from the broker.
        public var onGap = GapPolicy.fail
        /// How many ticks past its partition's event time (`eventTimeAnchor`) an event may be (nil: the format's
        /// default, `StreamTrainer.defaultEventLead`). One further ahead is dead-lettered:
        /// accepted, it would raise its partition's watermark, and every later event of the
        /// partition would wait in memory for that tick (a stall the checkpoint would keep).
        public var maxEventLead: Int64?
        /// Seconds between looks at the topic's partition count (partitions added to it are
        /// consumed from their beginning without a restart).
        public var partitionCheckSeconds = 5.0
        /// Start from the topic's beginning with no checkpoint although the group has
        /// committed offsets (without it, that is refused: the checkpoint may be lost).
        public var fresh = false
        /// A topic of item records (a model without a world's): each names an item and its
        /// category, the latest record of an item wins, and an empty record (a tombstone)
        /// keyed by an item's id deletes its record. Records are taken at their tick, as
        /// events are (`EventMapping.records` says how they read).
        public var itemsTopic: String?
        public init(topic: String, deadLetterTopic: String, format: Format, checkpointPath: String, groupID: String, properties: [String: String]) {
            self.topic = topic
            self.deadLetterTopic = deadLetterTopic
            self.format = format
            self.checkpointPath = checkpointPath
            self.groupID = groupID
            self.properties = properties
        }
    }

    /// What to do when offsets the trainer needs are gone from the broker (retention
    /// deleted them before they were applied, or the topic was truncated or recreated).
    public enum GapPolicy: String, Sendable, CaseIterable {
        /// Stop with an error naming the topic, partition and missing offsets.
        case fail
        /// Go on from the partition's first offset; the events skipped are counted
        /// (`Counters.skipped`, `recstream_train_skipped_offsets_total`) and logged.
        case skip
    }

    /// What the trainer has applied, exactly (a checkpoint carries these).
    public struct Counters: Sendable, Equatable {
        public var events = 0
        public var impressions = 0
        public var clicks = 0
        public var purchases = 0
        public var deadLetters = 0
        /// Events whose tick was below one already seen on their partition.
        public var late = 0
        /// Events naming a user or item outside the scenario's world (dead-lettered).
        public var unknown = 0
        /// Ticks applied that held at least one event.
        public var ticks = 0
        /// Wire records of other arms (a run's feedback topic carries every arm's): skipped.
        public var otherArms = 0
        /// Offsets passed over because they were gone from the broker (`--on-gap skip`).
        public var skipped = 0

        /// Every counter, in checkpoint order, with the name a read error gives.
        static var fields: [(String, WritableKeyPath<Counters, Int>)] {
            [("events", \.events), ("impressions", \.impressions), ("clicks", \.clicks), ("purchases", \.purchases),
             ("dead letters", \.deadLetters), ("late", \.late), ("unknown", \.unknown), ("ticks", \.ticks), ("other arms", \.otherArms),
             ("skipped", \.skipped)]
        }
    }

    /// The world whose events these are; nil for a model without a world (`open`).
    public let scenario: Scenario?
    /// The arm's index in the scenario (0 for a model without a world).
    public let armIndex: Int
    public let armName: String
    /// The id tables of a model without a world (`init(model:options:)`).
    public internal(set) var open: OpenWorld?
    /// What identifies the model: the scenario's or the model spec's fingerprint and seed.
    let modelSource: String
    public let options: Options
    public internal(set) var trainer: ArmTrainer
    public internal(set) var counters = Counters()
    /// The last tick applied (-1: none).
    public internal(set) var appliedThrough: Int64 = -1
    /// Broker trouble the trainer rode out (failed look-ups, commits, fetches): not in
    /// the checkpoint, since it does not change what was learned.
    public internal(set) var transientErrors = 0
    /// The partitions consumed: the events topic's (in order), then the items topic's.
    var partitions: [PartitionState] = []
    /// How many of `partitions` are the events topic's.
    var eventPartitionCount = 0
    let users: Int
    let items: Int
    /// The catalog at each tick, for recstream's own records (whose ticks are the
    /// simulation's): new items become rows as a run's trainer grows them. JSON events
    /// keep the catalog the scenario starts with.
    var feed: CatalogFeed?
    /// Items the trainer's model has taken in from the feed.
    var catalogItems: Int
    /// The last tick a model update covers (updates go out before the checkpoint that
    /// covers their ticks, so a restarted trainer never owes a server an update).
    public internal(set) var publishedThrough: Int64 = -1
    /// Model updates sent (by this process).
    public internal(set) var updatesPublished = 0
    let incarnation = UInt64.random(in: 1...UInt64.max)
    /// Called after each applied tick and each checkpoint (progress lines).
    public var onProgress: ((Progress) -> Void)?
    /// Called with what an operator should know but that does not stop the trainer.
    public var onWarning: ((String) -> Void)?
    /// Tests stand in for the broker's partition count here (the embedded broker cannot
    /// add partitions to a topic); nil asks the broker.
    var partitionCountSeam: (() -> Int?)?
    /// Where the trainer's metrics go (nil: swift-metrics' global factory, a no-op until
    /// bootstrapped).
    public var metricsFactory: (any MetricsFactory)?

    public struct Progress: Sendable {
        public var counters: Counters
        public var appliedThrough: Int64
        /// Messages behind the end of each partition (high watermark minus applied).
        public var lag: [Int64]
        public var eventsPerSecond: Double
        public var checkpointed: Bool
    }

    /// A pending message of one partition: its offset, assigned tick, and either the
    /// event or, for a dead letter, its bytes and the reason.
    struct Pending {
        var offset: Int64
        var tick: Int64
        /// nil for a dead letter or another arm's record.
        var event: Feedback?
        /// The event's own tick was below its partition's watermark.
        var late = false
        var deadLetter: DeadLetter?
        /// The dead letter names a user or item outside the world.
        var outsideWorld = false
        /// A model without a world's event: its ids, mapped to rows when its tick applies.
        var keys: EventKeys?
        /// A record of the items topic.
        var record: MappedItemRecord?
    }

    /// A message that could not be used, copied for the dead-letter topic.
    struct DeadLetter {
        var key: [UInt8]
        var value: [UInt8]
        var reason: String
        var source: TopicPartition
        var offset: Int64
    }

    struct PartitionState {
        /// The topic and partition.
        let source: TopicPartition
        /// The first offset not yet applied; the highest tick among applied messages.
        var applied: Int64
        var appliedWatermark: Int64
        /// The highest tick among consumed messages (applied or pending).
        var watermark: Int64
        var pending: [Pending] = []
        var lastMessage = ContinuousClock.now
        /// The partition's first and next offsets at the last look.
        var lowWatermark: Int64 = 0
        var highWatermark: Int64 = 0

        /// Where `--on-gap skip` resumes this partition, past offsets gone from the broker.
        /// `applied` jumps there (and the skip is counted) once the messages pending before
        /// the gap are applied, so a checkpoint never holds a skip it has not made.
        var skip: (to: Int64, count: Int)?

        /// The next offset to consume: past a gap being skipped, else after the last pending
        /// message, else the first not applied (`KafkaOffset.beginning` before any).
        var position: Int64 { skip?.to ?? pending.last.map { $0.offset + 1 } ?? applied }

        /// Makes the skip once nothing before it is pending.
        mutating func takeSkip(_ counters: inout Counters) {
            guard pending.isEmpty, let s = skip else { return }
            applied = s.to
            counters.skipped += s.count
            skip = nil
        }

        /// A partition nothing of which has been applied.
        static func fresh(_ topic: String, _ p: Int) -> PartitionState {
            PartitionState(source: TopicPartition(topic, Int32(p)), applied: KafkaOffset.beginning, appliedWatermark: -1, watermark: -1)
        }
    }

    /// Fresh partitions: `events` of the events topic, then `items` of the items topic.
    func freshPartitions(events: Int, items: Int) -> [PartitionState] {
        (0..<events).map { PartitionState.fresh(options.topic, $0) } + (0..<items).map { PartitionState.fresh(options.itemsTopic!, $0) }
    }

    /// Whether slot `p` of `partitions` is an items topic's partition.
    func isItems(_ p: Int) -> Bool { p >= eventPartitionCount }

    /// - Parameter arm: the scenario arm whose model this trainer learns.
    public init(scenario: Scenario, arm: String, options: Options) throws(AttachError) {
        let index = try attachableArm(scenario, arm, role: "train")
        try OpenWorld.refuseInWorld(options.format, role: "train")
        if options.itemsTopic != nil {
            throw AttachError("--items-topic reads item records for a model without a world (--model FILE); a scenario's items take their categories from its catalog")
        }
        self.scenario = scenario
        armIndex = index
        armName = scenario.arms[index].name
        modelSource = "scenario \(scenario.fingerprint) seed \(scenario.seed)"
        self.options = options
        let world = Population(scenario, threads: 1)
        users = world.userCount
        items = world.catalog.count
        catalogItems = items
        if case .wire = options.format { feed = CatalogFeed(scenario) }
        trainer = Self.freshTrainer(scenario, armIndex: index, world: world)
    }

    /// A trainer of a model without a world: users, items and categories are the stream's
    /// own ids (of the kinds `options.format`'s mapping declares), mapped to rows by id
    /// dictionaries that grow, filter and forget as `model.tables` says. JSON events only.
    public init(model: ModelSpec, options: Options) throws(AttachError) {
        let mapping = try OpenWorld.mapping(options.format, role: "trains on JSON events")
        if let itemsTopic = options.itemsTopic {
            guard itemsTopic != options.topic else { throw AttachError("--items-topic \(itemsTopic) is the events topic; item records come on a topic of their own") }
            guard mapping.records != nil else {
                throw AttachError("--items-topic: the mapping names no category field, which item records are read for (declare category, or itemRecords with a category)")
            }
        }
        scenario = nil
        armIndex = 0
        armName = model.name
        modelSource = "model \(model.fingerprint) seed \(model.seed)"
        self.options = options
        users = 0
        items = 0
        catalogItems = 0
        open = OpenWorld(spec: model, mapping: mapping)
        trainer = Self.freshTrainer(model)
    }

    /// A model without a world as it starts: one row each (the default rows), no history.
    static func freshTrainer(_ model: ModelSpec) -> ArmTrainer {
        let trainer = ArmTrainer(items: 1, ranking: model.arm.ranking, retrieval: model.arm.retrieval, users: 1, histories: UserHistories(users: 1, cap: 1),
                                 categories: [0], categoryCount: 1, seed: model.seed)
        trainer.sequence?.historyFloor = 1
        return trainer
    }

    /// The default of `Options.maxEventLead`: for JSON events, one day of ticks (a stream
    /// that falls silent for longer needs a larger lead); for recstream's records, whose
    /// ticks have no length in time, 10,000 ticks, hundreds of times the longest shipped
    /// scenario (the catalog feed advances that far to check a record's item, so the
    /// bound also bounds the catalog a forged record can make a trainer build).
    public static func defaultEventLead(_ format: Format) -> Int64 {
        switch format {
        case .wire: 10_000
        case .json(let mapping): Int64(min((86_400 / mapping.tickSeconds).rounded(.up), 1e15))
        }
    }

    /// The lead in force.
    var eventLead: Int64 { options.maxEventLead ?? Self.defaultEventLead(options.format) }

    /// The lowest event tick consumed (JSON events), the trainer's event time until a tick
    /// is applied.
    var lowestTickSeen: Int64?

    /// The tick partition `p`'s event time is measured from. recstream's records: the
    /// last tick applied (before any, the simulation's start, tick 0). JSON events: the
    /// later of that (before any, the lowest tick consumed) and the highest tick consumed
    /// on the partition itself, so a backlog whose partitions arrive unevenly (one read
    /// days ahead of another) is taken whole, while a timestamp that jumps far past its
    /// own partition's is still refused.
    func eventTimeAnchor(partition p: Int) -> Int64? {
        if case .wire = options.format { return max(appliedThrough, 0) }
        let base = appliedThrough >= 0 ? appliedThrough : lowestTickSeen
        let own = partitions[p].watermark
        guard own >= 0 else { return base }
        return max(base ?? own, own)
    }

    static func freshTrainer(_ s: Scenario, armIndex: Int, world: Population) -> ArmTrainer {
        ArmTrainer(items: world.catalog.count, ranking: s.arms[armIndex].ranking, retrieval: s.arms[armIndex].retrieval, users: world.userCount,
                   histories: world.histories, categories: world.catalog.subcategory.map(UInt32.init),
                   categoryCount: s.catalog.topCategories * s.catalog.subcategories, seed: s.seed &+ UInt64(armIndex))
    }

    /// What a server of the arm starts from: the state of a fresh trainer (the same
    /// initial model, from the same settings and seed, and the users' logged histories),
    /// with nothing of the learner.
    static func freshReplica(_ s: Scenario, armIndex: Int, world: Population) -> ModelReplica {
        let items = world.catalog.count
        guard let m = s.arms[armIndex].ranking.sequenceModel else { return ModelReplica(items: items, model: nil, histories: nil) }
        let model = ArmTrainer.freshSequenceModel(m, items: items, categories: world.catalog.subcategory.map(UInt32.init),
                                                  categoryCount: s.catalog.topCategories * s.catalog.subcategories, seed: s.seed &+ UInt64(armIndex))
        return ModelReplica(items: items, model: model, histories: UserHistories(users: world.userCount, cap: m.maxHistory, initial: world.histories))
    }

    // MARK: Decoding

    /// Decodes one message into an event of this world (with its ids, for a model without
    /// a world), or the reason it cannot be one.
    func decode(_ bytes: UnsafeRawBufferPointer, partition p: Int) -> Result<(Feedback, Tick?, EventKeys?), EventDecodeError> {
        let feedback: Feedback, tick: Tick?
        var keys: EventKeys?
        switch options.format {
        case .wire:
            do {
                feedback = try Wire.decodeFeedback(bytes)
            } catch {
                return .failure(EventDecodeError("not a recstream feedback record: \(error)"))
            }
            tick = feedback.header.tick
        case .json(let mapping):
            let e: MappedEvent
            do { e = try mapping.decode(bytes) } catch { return .failure(error) }
            // A world's rows are index ids (the mapping is checked at start); a model
            // without a world maps its ids when the event's tick applies.
            var user: UserID = 0, item: ItemID = 0
            if open != nil {
                keys = EventKeys(user: e.user, item: e.item, category: e.category)
            } else if case .int(let u) = e.user, case .int(let i) = e.item {
                (user, item) = (UserID(u), ItemID(i))
            }
            feedback = Feedback(RecordHeader(arm: UInt16(armIndex), tick: e.tick ?? 0, user: user, sequence: e.request ?? 0),
                                event: e.event, position: 0, item: item, shownTick: e.tick ?? 0, viewSeconds: e.viewSeconds, amount: e.amount)
            tick = e.tick
        }
        // Before anything else: a wire record's tick moves the catalog feed.
        if let failure = leadExceeded(tick, partition: p) { return .failure(failure) }
        if keys != nil { return .success((feedback, tick, keys)) }
        if Int(feedback.header.user) >= users {
            return .failure(EventDecodeError("user \(feedback.header.user) is not in the scenario's world (\(users) users)", outsideWorld: true))
        }
        if feed != nil {
            let t = Int64(feedback.header.tick)
            // In place: a copy of the feed would copy the catalog.
            if t > feed!.through { feed!.advance(through: t) }
            let count = feed!.count(at: t)
            if Int(feedback.item) >= count {
                return .failure(EventDecodeError("item \(feedback.item) is not in the scenario's catalog at tick \(t) (\(count) items)", outsideWorld: true))
            }
        } else if Int(feedback.item) >= items {
            return .failure(EventDecodeError("item \(feedback.item) is not in the scenario's catalog (\(items) items)", outsideWorld: true))
        }
        return .success((feedback, tick, nil))
    }

    /// Decodes one record of the items topic, or the reason it cannot be one. Its tick is
    /// bounded ahead as an event's is; it never sets the trainer's first event time.
    func decodeRecord(_ bytes: UnsafeRawBufferPointer, key: UnsafeRawBufferPointer, partition p: Int) -> Result<MappedItemRecord, EventDecodeError> {
        guard case .json(let mapping) = options.format else { return .failure(EventDecodeError("item records are JSON")) }
        let record: MappedItemRecord
        do { record = try mapping.decodeItemRecord(bytes, key: key) } catch { return .failure(error) }
        if let failure = leadExceeded(record.tick, partition: p) { return .failure(failure) }
        return .success(record)
    }

    /// Items partitions whose next record waits more than the event lead past the last
    /// tick applied (a timestamp in other units than the events', say): a line each.
    var recordsWaitingFarAhead: [String] {
        guard appliedThrough >= 0 else { return [] }
        return partitions[eventPartitionCount...].compactMap { s in
            guard let t = s.pending.first?.tick, t > appliedThrough + eventLead else { return nil }
            return "\(s.source): \(s.pending.count) item records wait for tick \(t), \(t - appliedThrough) ticks past the last tick applied (\(appliedThrough)); is itemRecords.timestamp in the events' units?"
        }
    }

    /// Why a message of tick `own` on partition `p` is too far ahead to take, if it is.
    func leadExceeded(_ own: Tick?, partition p: Int) -> EventDecodeError? {
        guard let own, let anchor = eventTimeAnchor(partition: p), Int64(own) > anchor + eventLead else { return nil }
        return EventDecodeError("tick \(own) is \(Int64(own) - anchor) ticks past its partition's event time (tick \(anchor)), more than --max-event-lead \(eventLead)")
    }

    /// Appends `pending` to partition `p`'s list and moves its watermark.
    func append(_ pending: Pending, to p: Int) {
        partitions[p].pending.append(pending)
        partitions[p].watermark = max(partitions[p].watermark, pending.tick)
        partitions[p].lastMessage = .now
    }

    /// Adds one consumed message of partition `p` (a slot of `partitions`) to its pending
    /// list (in place: a copy of the partition's state would copy its pending list with it).
    func take(partition p: Int, offset: Int64, key: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer) {
        let floor = max(partitions[p].watermark, appliedThrough + 1)
        var pending: Pending
        if isItems(p) {
            switch decodeRecord(value, key: key, partition: p) {
            case .success(let record):
                pending = Pending(offset: offset, tick: max(record.tick.map { Int64($0) } ?? floor, floor), event: nil)
                pending.record = record
            case .failure(let error):
                pending = Pending(offset: offset, tick: floor, event: nil,
                                  deadLetter: DeadLetter(key: Array(key), value: Array(value), reason: error.reason, source: partitions[p].source, offset: offset))
            }
            append(pending, to: p)
            return
        }
        switch decode(value, partition: p) {
        case .success(let (event, _, _)) where scenario.map({ !$0.learns(armIndex, fromAssigned: Int(event.header.arm), tick: event.header.tick) }) ?? false:
            pending = Pending(offset: offset, tick: floor, event: nil)
        case .success(let (event, own, keys)):
            if let own { lowestTickSeen = min(lowestTickSeen ?? Int64(own), Int64(own)) }
            let tick = max(own.map { Int64($0) } ?? floor, floor)
            var e = event
            e.header.tick = Tick(tick)
            pending = Pending(offset: offset, tick: tick, event: e, late: own.map { Int64($0) < tick } ?? false)
            pending.keys = keys
        case .failure(let error):
            pending = Pending(offset: offset, tick: floor, event: nil, deadLetter: DeadLetter(key: Array(key), value: Array(value), reason: error.reason, source: partitions[p].source, offset: offset),
                              outsideWorld: error.outsideWorld)
        }
        append(pending, to: p)
    }

    // MARK: Ticks

    /// The next tick that can be applied: the lowest pending tick, once every partition
    /// has shown a higher one or sat idle at its end (`idle` says which; the run loop's
    /// rule holds an items partition back only while it is behind its end, so a steady
    /// trickle of records never stalls the events). nil when there is none yet.
    func nextTick(idle: (Int) -> Bool) -> Int64? {
        guard let t = partitions.compactMap({ $0.pending.first?.tick }).min() else { return nil }
        for p in partitions.indices where partitions[p].watermark <= t && !idle(p) { return nil }
        return t
    }

    /// Applies tick `t`: every pending message of a tick up to `t`, in (user, sequence,
    /// position, event) order; dead letters go to `deadLetters`.
    func apply(_ t: Int64, deadLetters: inout [DeadLetter]) {
        var events: [Feedback] = []
        var keys: [EventKeys] = []
        var records: [MappedItemRecord] = []
        for p in partitions.indices {
            var taken = 0
            for m in partitions[p].pending {
                guard m.tick <= t else { break }  // ticks never fall along a partition
                taken += 1
                if let e = m.event {
                    events.append(e)
                    if let k = m.keys { keys.append(k) }
                    if m.late { counters.late += 1 }
                } else if let d = m.deadLetter {
                    deadLetters.append(d)
                    counters.deadLetters += 1
                    if m.outsideWorld { counters.unknown += 1 }
                } else if let r = m.record {
                    records.append(r)
                } else {
                    counters.otherArms += 1
                }
                partitions[p].applied = m.offset + 1
                partitions[p].appliedWatermark = max(partitions[p].appliedWatermark, m.tick)
            }
            partitions[p].pending.removeFirst(taken)
            partitions[p].takeSkip(&counters)
        }
        if let open { open.map(tick: t, records: records, events: &events, keys: keys, trainer: trainer) }
        if case .json = options.format { assignPositions(&events) }
        events.sort { ($0.header.user, $0.header.sequence, $0.position, $0.event.rawValue, $0.item) < ($1.header.user, $1.header.sequence, $1.position, $1.event.rawValue, $1.item) }
        for e in events {
            switch e.event {
            case .impression: counters.impressions += 1
            case .click: counters.clicks += 1
            case .purchase: counters.purchases += 1
            }
        }
        counters.events += events.count
        followCatalog(through: t)
        if !events.isEmpty {
            counters.ticks += 1
            trainer.apply(tick: Tick(t), feedback: events[...])
        }
        appliedThrough = t
    }

    /// Grows the model to the catalog of tick `t`, as a run's trainer grows it at the start
    /// of each tick (rows are initialised by index, so growing late changes nothing).
    func followCatalog(through t: Int64) {
        guard feed != nil else { return }
        if t > feed!.through { feed!.advance(through: t) }
        let count = feed!.count(at: t)
        guard count > catalogItems else { return }
        trainer.updateCatalog(categories: feed!.categories(count: count), categoryCount: feed!.categoryCount)
        catalogItems = count
    }

    /// JSON events carry no slate position: within each (user, request) group, each
    /// distinct item gets the position of its first appearance, so an impression and
    /// the click on the same item pair up, and a click on an item never shown pairs with
    /// nothing.
    func assignPositions(_ events: inout [Feedback]) {
        events.sort { ($0.header.user, $0.header.sequence, $0.item, $0.event.rawValue) < ($1.header.user, $1.header.sequence, $1.item, $1.event.rawValue) }
        var i = 0
        while i < events.count {
            var j = i, position = 0
            while j < events.count && events[j].header.user == events[i].header.user && events[j].header.sequence == events[i].header.sequence {
                if j > i && events[j].item != events[j - 1].item { position += 1 }
                events[j].position = UInt8(truncatingIfNeeded: position)
                j += 1
            }
            i = j
        }
    }
}

/// A trainer that cannot start or go on, and why.
public struct AttachError: Error, CustomStringConvertible, Sendable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
