import Foundation
import Kafka
import Metrics
import Models
import RecCore
import Scenario
import Trainer

extension StreamTrainer {
    /// Runs until `shouldStop()` (then applies nothing more, checkpoints what it applied,
    /// commits and returns) or, with `exitWhenIdleSeconds`, until the stream has been at
    /// its end that long (then applies every pending tick first). Resumes from the
    /// checkpoint file when there is one.
    public func run(shouldStop: () -> Bool = { false }) throws -> Counters {
        let base = KafkaConfiguration(options.properties)
        let partitionCount = try partitionCountSeam?() ?? waitForTopic(options.topic, base, timeoutSeconds: options.connectTimeoutSeconds)
        let itemPartitionCount = try options.itemsTopic.map { try waitForTopic($0, base, timeoutSeconds: options.connectTimeoutSeconds) } ?? 0
        if let topic = options.modelTopic {
            try requireTopic(topic, base, timeoutSeconds: options.connectTimeoutSeconds,
                             missing: "model topic \(topic) does not exist: create it (recstream broker --prefix creates every topic of a prefix), or train with --no-publish")
        }
        try requireTopic(options.deadLetterTopic, base, timeoutSeconds: options.connectTimeoutSeconds,
                         missing: "dead-letter topic \(options.deadLetterTopic) does not exist: create it (recstream broker --prefix creates every topic of a prefix); events that cannot be applied are copied there")
        // One trainer per checkpoint, for as long as this one runs.
        let lock = try CheckpointLock(checkpoint: options.checkpointPath)
        defer { withExtendedLifetime(lock) {} }
        CheckpointFile.removeLeftovers(options.checkpointPath)
        if FileManager.default.fileExists(atPath: options.checkpointPath) || FileManager.default.fileExists(atPath: CheckpointFile.previous(options.checkpointPath)) {
            if let refused = try resume(partitions: partitionCount, itemPartitions: itemPartitionCount) {
                onWarning?("resumed from the previous checkpoint generation: \(refused)")
            }
        } else {
            partitions = freshPartitions(events: partitionCount, items: itemPartitionCount)
            eventPartitionCount = partitionCount
        }
        let resumed = partitions.contains { $0.applied >= 0 } || appliedThrough >= 0
        if options.modelTopic != nil {
            trainer.tracksChanges()
            open?.tracksChanges = true
        }
        publishedThrough = appliedThrough
        let consumer = try KafkaConsumer(configuration: base.attachConsumer(group: options.groupID))
        defer { consumer.close() }
        if !resumed && !options.fresh { try refuseLostCheckpoint(consumer, partitions: partitionCount) }
        func assignAll() throws {
            try consumer.assign(partitions.map { ($0.source, offset: $0.position) })
        }
        try assignAll()
        var producerConfig = base
        producerConfig.setDefault("client.id", "recstream-train-\(armName)")
        let producer = try KafkaProducer(configuration: producerConfig)
        let modelTopic = try options.modelTopic.map { try producer.topic($0) }
        var lastPublish = ContinuousClock.now
        let armKey = Array(armName.utf8)

        let started = ContinuousClock.now
        let eventsAtStart = counters.events
        var metrics = TrainerMetrics(arm: armName, partitions: eventPartitionCount, factory: metricsFactory ?? MetricsSystem.factory)
        metrics.follow(itemPartitions: partitions.count - eventPartitionCount)
        var lastCheckpoint = ContinuousClock.now
        var lastLagCheck = ContinuousClock.now - .seconds(10)
        var deadLetters: [DeadLetter] = []
        let admin = try KafkaAdmin(configuration: base)

        /// Looks up where each partition ends: as the consumer's fetches last saw it, asking
        /// the broker only before a partition's first fetch (librdkafka does not bound that
        /// query while the broker is away, and a trainer asked to stop must not wait for
        /// it). A broker that does not answer leaves the last answer in place: the look-up
        /// only feeds idleness and lag.
        func refreshHighWatermarks() {
            lastLagCheck = .now
            for p in partitions.indices {
                let tp = partitions[p].source
                if let cached = consumer.cachedWatermarks(tp) {
                    if cached.low >= 0 { partitions[p].lowWatermark = cached.low }
                    partitions[p].highWatermark = cached.high
                    continue
                }
                guard let w = try? admin.watermarks(tp, timeoutMilliseconds: 1000) else {
                    transientErrors += 1
                    return
                }
                (partitions[p].lowWatermark, partitions[p].highWatermark) = (w.low, w.high)
            }
        }
        /// A partition is idle when it has had nothing new for `idleFlushSeconds` and
        /// everything up to its end has been consumed. An items partition is idle as soon
        /// as it is at its end: records are a side input, and one whose tick has passed
        /// joins the current tick, so waiting on a trickle of them would only stall the events.
        func idle(_ p: Int, for seconds: Double) -> Bool {
            let s = partitions[p]
            guard isItems(p) || (ContinuousClock.now - s.lastMessage).seconds >= seconds else { return false }
            let consumed = s.pending.last.map { $0.offset + 1 } ?? (s.applied >= 0 ? s.applied : s.lowWatermark)
            return consumed >= s.highWatermark
        }
        /// Sends one model update covering every tick applied since the last.
        func publish() throws {
            guard let modelTopic, appliedThrough > publishedThrough else { return }
            let header = ModelUpdate.Header(identity: modelIdentity, incarnation: incarnation, sequence: UInt64(updatesPublished + 1),
                                            from: publishedThrough, through: appliedThrough, part: 0, parts: 1)
            for message in ModelUpdate.encode(trainer, open: open, header: header) {
                try armKey.withUnsafeBytes { key in
                    try message.withUnsafeBytes { value in
                        if let signer = options.modelSigner {
                            try producer.send(to: modelTopic.name, key: key, value: value,
                                              header: (name: ModelSigner.header, value: signer.signature(of: message)))
                        } else {
                            try producer.send(modelTopic, key: key, value: value)
                        }
                    }
                }
            }
            try producer.poll()
            publishedThrough = appliedThrough
            updatesPublished += 1
            lastPublish = .now
            metrics.updates.increment()
        }
        /// Saves the checkpoint, then commits its offsets to the group. The checkpoint is
        /// what resumes; a commit that fails (a broker away) is counted and made good by
        /// the next one. Model updates covering the checkpoint are delivered first, so a
        /// trainer restarted from it owes the servers nothing.
        func checkpoint() throws {
            if modelTopic != nil { try publish() }
            // Dead letters and model updates are on the broker before the checkpoint that
            // moves past them.
            try producer.flush(timeoutMilliseconds: Int32(options.connectTimeoutSeconds * 1000))
            try save()
            let applied = partitions.compactMap { p -> (TopicPartition, offset: Int64)? in
                p.applied >= 0 ? (p.source, offset: p.applied) : nil
            }
            if !applied.isEmpty {
                do { try consumer.commit(applied) } catch { transientErrors += 1 }
            }
            lastCheckpoint = .now
            for line in recordsWaitingFarAhead { onWarning?(line) }
            report(checkpointed: true)
        }
        func report(checkpointed: Bool) {
            // The fetcher's view of each partition's end is fresher than the last query.
            for p in partitions.indices {
                if let high = consumer.cachedHighWatermark(partitions[p].source) {
                    partitions[p].highWatermark = max(partitions[p].highWatermark, high)
                }
            }
            let seconds = (ContinuousClock.now - started).seconds
            let lag = partitions.map { max(0, $0.highWatermark - ($0.applied >= 0 ? $0.applied : $0.lowWatermark)) }
            let progress = Progress(counters: counters, appliedThrough: appliedThrough, lag: Array(lag[..<eventPartitionCount]),
                                    eventsPerSecond: Double(counters.events - eventsAtStart) / max(seconds, 1e-9), checkpointed: checkpointed)
            metrics.report(counters, transient: transientErrors + consumer.transientErrorCount)
            if let open { metrics.report(open) }
            metrics.appliedTick.record(appliedThrough)
            metrics.eventsPerSecond.record(progress.eventsPerSecond)
            for (p, lag) in progress.lag.enumerated() { metrics.lag[p].record(lag) }
            for (p, lag) in lag[eventPartitionCount...].enumerated() { metrics.itemsLag[p].record(lag) }
            if let last = trainer.evaluations.last {
                metrics.auc.record(last.auc)
                metrics.logLoss.record(last.logLoss)
            }
            if checkpointed { metrics.checkpoints.increment() }
            onProgress?(progress)
        }
        func sendDeadLetters() throws {
            for d in deadLetters {
                try d.key.withUnsafeBytes { key in
                    try d.value.withUnsafeBytes { value in
                        try producer.sendDeadLetter(to: options.deadLetterTopic, key: key, value: value,
                                                    source: d.source, offset: d.offset, reason: d.reason)
                    }
                }
            }
            deadLetters.removeAll(keepingCapacity: true)
            try producer.poll()
        }

        /// Offsets this trainer needs are gone from partition `p`: an error naming them, or
        /// with `--on-gap skip`, a counted, logged jump past them.
        func passGap(_ p: Int) throws {
            let tp = partitions[p].source
            let needed = partitions[p].position
            let w: (low: Int64, high: Int64)
            do { w = try admin.watermarks(tp, timeoutMilliseconds: Int32(options.connectTimeoutSeconds * 1000)) } catch {
                throw AttachError("\(tp): offset \(needed) is out of range, and the broker does not say what it holds: \(error)")
            }
            let gap = Self.describeGap(tp, needed: needed, low: w.low, high: w.high)
            guard options.onGap == .skip else {
                throw AttachError("\(gap.text); the trainer stops rather than skip them (to go on without them, counted: --on-gap skip)")
            }
            partitions[p].skip = (gap.resume, gap.skipped)
            partitions[p].takeSkip(&counters)
            report(checkpointed: false)
            onWarning?("\(gap.text): skipping them, going on from offset \(gap.resume)")
            try assignAll()
        }

        /// Partitions added to a topic are taken up as they appear, from their beginning:
        /// a producer keying by user sends some users there from then on, and ignoring them
        /// until a restart would hold those events back.
        var lastPartitionCheck = ContinuousClock.now
        func followPartitions() throws {
            lastPartitionCheck = .now
            let metadata = partitionCountSeam == nil ? try? admin.metadata(timeoutMilliseconds: 1000) : nil
            let slotsBefore = partitions.count, itemsBefore = partitions.count - eventPartitionCount
            if let count = partitionCountSeam?() ?? metadata?.topic(options.topic)?.partitionCount, count > eventPartitionCount {
                let before = eventPartitionCount
                partitions.insert(contentsOf: (before..<count).map { PartitionState.fresh(options.topic, $0) }, at: before)
                eventPartitionCount = count
                metrics.follow(partitions: count)
                onWarning?("\(options.topic) grew from \(before) to \(count) partitions: consuming the new ones from their beginning")
            }
            if let itemsTopic = options.itemsTopic, let count = metadata?.topic(itemsTopic)?.partitionCount, count > itemsBefore {
                partitions += (itemsBefore..<count).map { PartitionState.fresh(itemsTopic, $0) }
                metrics.follow(itemPartitions: count)
                onWarning?("\(itemsTopic) grew from \(itemsBefore) to \(count) partitions: consuming the new ones from their beginning")
            }
            if partitions.count > slotsBefore { try assignAll() }
        }

        let itemsTopic = options.itemsTopic
        refreshHighWatermarks()
        while !shouldStop() {
            if (ContinuousClock.now - lastPartitionCheck).seconds >= options.partitionCheckSeconds { try followPartitions() }
            let got: Int
            do {
                got = try consumer.consumeBatch(timeoutMilliseconds: 100) { batch in
                    for m in batch {
                        let p = itemsTopic != nil && m.isTopic(itemsTopic!) ? eventPartitionCount + Int(m.partition) : Int(m.partition)
                        take(partition: p, offset: m.offset, key: m.key, value: m.value)
                    }
                    return batch.count
                }
            } catch let error as KafkaError where error.isOffsetOutOfRange && error.source.map({ $0.topic == options.topic || $0.topic == itemsTopic }) ?? false {
                let source = error.source!
                try passGap(source.topic == options.topic ? Int(source.partition) : eventPartitionCount + Int(source.partition))
                continue
            }
            let sinceLagCheck = (ContinuousClock.now - lastLagCheck).seconds
            if sinceLagCheck >= 1 || (got == 0 && sinceLagCheck >= 0.25) { refreshHighWatermarks() }
            var applied = false
            while let t = nextTick(idle: { idle($0, for: options.idleFlushSeconds) }) {
                let start = ContinuousClock.now
                apply(t, deadLetters: &deadLetters)
                metrics.tickDuration.record(duration: ContinuousClock.now - start)
                applied = true
            }
            if applied {
                try sendDeadLetters()
                report(checkpointed: false)
            }
            if modelTopic != nil && (ContinuousClock.now - lastPublish).seconds >= options.publishEverySeconds { try publish() }
            if (ContinuousClock.now - lastCheckpoint).seconds >= options.checkpointEverySeconds { try checkpoint() }
            if let exitAfter = options.exitWhenIdleSeconds, got == 0, partitions[..<eventPartitionCount].contains(where: { $0.highWatermark > 0 }),
               partitions.indices.allSatisfy({ idle($0, for: exitAfter) }) {
                // The stream has ended: apply what is pending, whatever the watermarks.
                while let t = nextTick(idle: { _ in true }) { apply(t, deadLetters: &deadLetters) }
                try sendDeadLetters()
                break
            }
        }
        refreshHighWatermarks()
        try checkpoint()
        try producer.flush(timeoutMilliseconds: Int32(options.connectTimeoutSeconds * 1000))
        transientErrors += consumer.transientErrorCount
        return counters
    }

    /// The missing offsets of a partition the trainer needed offset `needed` of: those
    /// before its first (retention) or, past its end, the topic was truncated or recreated.
    static func describeGap(_ tp: TopicPartition, needed: Int64, low: Int64, high: Int64) -> (text: String, skipped: Int, resume: Int64) {
        if needed < low {
            return ("\(tp): offsets \(needed)..<\(low) (\(low - needed) events) are gone from the broker before this trainer applied them (retention deleted them, or the topic was truncated); the partition now holds \(low)..<\(high)",
                    Int(low - needed), low)
        }
        return ("\(tp): this trainer's next offset is \(needed), past the partition's end \(high): the topic was recreated or truncated since the checkpoint",
                0, high)
    }

    /// With no checkpoint, a group that has committed offsets means a trainer ran before
    /// and its checkpoint is gone: starting from the beginning would apply its events
    /// again on a fresh model, silently. Refused, unless `--fresh`.
    func refuseLostCheckpoint(_ consumer: KafkaConsumer, partitions count: Int) throws {
        let tps = (0..<count).map { TopicPartition(options.topic, Int32($0)) }
        let committed = try consumer.committed(tps, timeoutMilliseconds: Int32(options.connectTimeoutSeconds * 1000))
        let held = tps.compactMap { tp in committed[tp].map { "\(tp) at \($0)" } }
        guard held.isEmpty else {
            throw AttachError("""
                no checkpoint at \(options.checkpointPath), but consumer group \(options.groupID) has committed offsets \
                (\(held.prefix(3).joined(separator: ", "))\(held.count > 3 ? ", ..." : "")): a trainer ran before and its checkpoint is gone. \
                Restore the checkpoint, or start over from the topic's beginning with --fresh
                """)
        }
    }

    // MARK: Checkpoints

    static let magic: [UInt8] = Array("RSAT".utf8)
    /// 2: the model's settings carry the auxiliary head's loss weight, the table optimizer
    /// and the BatchNorm flag. 3: the skipped-offsets counter. 4: a model without a world's
    /// id dictionaries. 5: a model without a world's item records and items topic offsets.
    static let checkpointVersion: UInt32 = 5

    /// The checkpoint: "RSAT", version, the scenario's fingerprint and seed, arm, topic and
    /// format (a checkpoint resumes only the trainer it came from), the applied tick and
    /// counters, the item statistics, the sequence learner if any, per partition the first
    /// offset not applied and the highest tick applied; for a model without a world, its id
    /// dictionaries and item records (`OpenWorld.write`) and the same two figures per
    /// partition of the items topic; then a CRC-32 of all of it.
    package func encodeCheckpoint() -> [UInt8] {
        var w = BinaryWriter()
        for b in Self.magic { w.write(b) }
        w.write(Self.checkpointVersion)
        w.write(identity)
        w.write(appliedThrough)
        for (_, field) in Counters.fields { w.write(UInt64(counters[keyPath: field])) }
        trainer.statistics.write(to: &w)
        w.write(UInt8(trainer.sequence == nil ? 0 : 1))
        if let learner = trainer.sequence { Checkpoint.write(learner, to: &w) }
        func write(_ slots: ArraySlice<PartitionState>) {
            w.write(UInt32(slots.count))
            for p in slots {
                w.write(p.applied)
                w.write(p.appliedWatermark)
            }
        }
        write(partitions[..<eventPartitionCount])
        if let open {
            open.write(to: &w)
            write(partitions[eventPartitionCount...])
        }
        return CheckpointFrame.seal(w)
    }

    /// What a server must match to follow this trainer's model updates: the world and the
    /// arm (not the topic or format the events came from).
    public var modelIdentity: String { "\(modelSource), arm \(armName)" }

    /// What a checkpoint must match to be resumed by this trainer.
    var identity: String {
        let format = switch options.format {
        case .wire: "wire"
        case .json(let m): "json (\(m.canonical))"
        }
        return "\(modelIdentity), topic \(options.topic)\(options.itemsTopic.map { ", items topic \($0)" } ?? ""), \(format)"
    }

    func save() throws(CheckpointError) {
        try CheckpointFile.replace(options.checkpointPath, with: encodeCheckpoint())
    }

    /// What a checkpoint file holds, decoded and checked against this trainer.
    package struct Restored {
        var appliedThrough: Int64
        var counters: Counters
        var trainer: ArmTrainer
        var catalogItems: Int
        var partitions: [PartitionState]
        var eventPartitionCount: Int
        var open: OpenWorld?
    }

    /// Restores the newest checkpoint generation that decodes (see `CheckpointFile`);
    /// returns the reason the newest was passed over, if it was.
    func resume(partitions count: Int, itemPartitions: Int = 0) throws -> String? {
        let path = options.checkpointPath
        let found: CheckpointFile.Found<Restored>?
        do {
            found = try CheckpointFile.read(path) { try decodeCheckpoint($0, partitions: count, itemPartitions: itemPartitions) }
        } catch {
            throw AttachError("checkpoint \(error.message)")
        }
        guard let r = found?.value else { throw AttachError("checkpoint \(path): no such file") }
        appliedThrough = r.appliedThrough
        counters = r.counters
        trainer = r.trainer
        catalogItems = r.catalogItems
        partitions = r.partitions
        eventPartitionCount = r.eventPartitionCount
        open = r.open
        return found?.newestRefused
    }

    /// Decodes a checkpoint of this trainer (the messages name what is wrong; the reader
    /// prefixes the file).
    package func decodeCheckpoint(_ bytes: [UInt8], partitions count: Int, itemPartitions itemCount: Int = 0) throws -> Restored {
        switch CheckpointFrame.check(bytes, magic: Self.magic) {
        case .notOurs?: throw AttachError("not a recstream train checkpoint (it does not start with \"RSAT\")")
        case .checksum?: throw AttachError("corrupt or truncated (checksum does not match)")
        case nil: break
        }
        do {
            return try CheckpointFrame.read(bytes) { r in
                let version = try r.read(UInt32.self, "version")
                // Versions 3 and 4 are version 5 without a model's tables: a scenario's trainer
                // resumes from them.
                guard version == Self.checkpointVersion || ((version == 3 || version == 4) && open == nil) else {
                    throw AttachError("version \(version); this build reads version \(Self.checkpointVersion)\(version == 3 || version == 4 ? " (and 3 and 4, for a scenario's arm)" : "")")
                }
                let theirs = try r.readString("identity")
                guard theirs == identity else { throw AttachError("it belongs to another trainer (\(theirs)); this one is \(identity)") }
                let appliedThrough = try r.read(Int64.self, "applied tick")
                var counters = Counters()
                for (name, field) in Counters.fields { counters[keyPath: field] = try r.readInt(name) }
                let statistics = try ItemStatistics.read(from: &r)
                let learner = try r.read(UInt8.self, "learner flag") == 1 ? try Checkpoint.readLearner(from: &r) : nil
                guard (learner == nil) == (trainer.sequence == nil) else { throw AttachError("its sequence model does not match the arm's ranking") }
                let stored = Int(try r.read(UInt32.self, "partitions"))
                guard stored <= count else {
                    throw AttachError("it covers \(stored) partitions of \(options.topic), which now has \(count); partitions cannot shrink")
                }
                var partitions = freshPartitions(events: count, items: itemCount)
                func readPartitions(_ slots: Range<Int>) throws {
                    for p in slots {
                        partitions[p].applied = try r.read(Int64.self, "offset")
                        partitions[p].appliedWatermark = try r.read(Int64.self, "watermark")
                        partitions[p].watermark = partitions[p].appliedWatermark
                    }
                }
                try readPartitions(0..<stored)
                var restoredOpen: OpenWorld?
                if let open, case .json(let mapping) = options.format {
                    let world = try OpenWorld.read(from: &r, spec: open.spec, mapping: mapping)
                    if let learner {
                        guard learner.histories.userCount >= world.users.rows, learner.model.categoryOf.count >= world.items.rows,
                              learner.model.categoryRows == 0 || learner.model.categoryRows >= world.categories.rows else {
                            throw AttachError("its model's tables (\(learner.histories.userCount) users, \(learner.model.categoryOf.count) items) are smaller than its id dictionaries' (\(world.users.rows), \(world.items.rows))")
                        }
                        learner.historyFloor = 1
                    }
                    restoredOpen = world
                    let storedItems = Int(try r.read(UInt32.self, "items topic partitions"))
                    guard storedItems <= itemCount else {
                        throw AttachError("it covers \(storedItems) partitions of the items topic \(options.itemsTopic ?? "-"), which now has \(itemCount); partitions cannot shrink")
                    }
                    try readPartitions(count..<(count + storedItems))
                }
                guard r.remaining == 0 else { throw AttachError("\(r.remaining) unexpected bytes at the end") }
                return Restored(appliedThrough: appliedThrough, counters: counters,
                                trainer: ArmTrainer(restoring: statistics, sequence: learner, ranking: scenario?.arms[armIndex].ranking ?? open!.spec.arm.ranking),
                                catalogItems: learner?.model.categoryOf.count ?? items, partitions: partitions, eventPartitionCount: count, open: restoredOpen)
            }
        } catch let error as AttachError {
            throw error
        } catch {
            throw AttachError("\(error)")
        }
    }
}

