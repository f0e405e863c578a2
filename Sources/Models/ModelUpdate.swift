import RecCore

/// Model updates: how servers follow a trainer without restarts (`<prefix>.model`).
///
/// An update carries what one arm's trainer changed over the ticks (from, through]: the
/// item statistics of the items it counted, the clicks it appended to users' histories,
/// and the sequence model's changed embedding rows with every dense parameter. Values
/// overwrite; nothing is a gradient. So a server that applies the updates in order holds
/// the trainer's state exactly (bit for bit, `ModelReplica.stateChecksum`), and an update
/// that repeats what a server already has (a trainer replaying after a restart) changes
/// nothing: it is skipped when it ends at or before the server's tick, and when it
/// straddles it, its rows overwrite with newer values and only its clicks after that
/// tick append.
///
/// A large update is split into parts (one message each) that the server joins before
/// applying, so an update applies whole or not at all. Each message:
///
///     "RSMU", version (u32), identity (string: scenario, seed, arm), incarnation (u64: one
///     per trainer start), sequence (u64), from and through ticks (i64), part and parts
///     (u32), a chunk of the payload (count, bytes), CRC-32 of all before it.
///
/// The payload, joined: statistics changes (`ItemStatistics.writeChanges`), history
/// appends (count, then user, item, tick), a model flag, the model's changes
/// (`RankingModel.writeChanges`).
///
/// The topic is written by other programs, so nothing in a message is trusted: every
/// count, index, row, tick and step is checked against the receiver's state before
/// anything is allocated or written (`ModelReplica.apply`).
public enum ModelUpdate {
    public static let version: UInt32 = 1
    /// A history append of this item empties the user's history instead (a model without
    /// a world gave the user's row to another user).
    public static let historyCleared = UInt32.max
    static let magic: [UInt8] = Array("RSMU".utf8)

    public struct Header: Equatable, Sendable {
        public var identity: String
        public var incarnation: UInt64
        public var sequence: UInt64
        /// The update covers the ticks after `from`, up to and including `through`.
        public var from: Int64
        public var through: Int64
        public var part: Int
        public var parts: Int
        public init(identity: String, incarnation: UInt64, sequence: UInt64, from: Int64, through: Int64, part: Int = 0, parts: Int = 1) {
            self.identity = identity
            self.incarnation = incarnation
            self.sequence = sequence
            self.from = from
            self.through = through
            self.part = part
            self.parts = parts
        }
    }

    /// The messages of one update's payload, in parts of at most `maxPartBytes` each.
    public static func seal(payload bytes: [UInt8], header: Header, maxPartBytes: Int = 512 * 1024) -> [[UInt8]] {
        let size = max(maxPartBytes, 1)
        let parts = max(1, (bytes.count + size - 1) / size)
        return (0..<parts).map { part in
            var w = BinaryWriter()
            for b in magic { w.write(b) }
            w.write(version)
            w.write(header.identity)
            w.write(header.incarnation)
            w.write(header.sequence)
            w.write(header.from)
            w.write(header.through)
            w.write(UInt32(part))
            w.write(UInt32(parts))
            bytes.withUnsafeBufferPointer { w.writeRaw(UnsafeBufferPointer(rebasing: $0[part * size..<min(bytes.count, (part + 1) * size)])) }
            return CheckpointFrame.seal(w)
        }
    }

    /// Reads one message: its header and its chunk of the payload.
    public static func decode(_ bytes: [UInt8]) throws(ModelUpdateError) -> (Header, [UInt8]) {
        switch CheckpointFrame.check(bytes, magic: magic) {
        case .notOurs?: throw ModelUpdateError("not a recstream model update (it does not start with \"RSMU\")")
        case .checksum?: throw ModelUpdateError("corrupt model update (checksum does not match)")
        case nil: break
        }
        do {
            return try CheckpointFrame.read(bytes) { r in
                let v = try r.read(UInt32.self, "version")
                guard v == version else { throw BinaryReadError("version \(v); this build reads version \(version)", at: 4) }
                let header = Header(identity: try r.readString("identity"), incarnation: try r.read(UInt64.self, "incarnation"),
                                    sequence: try r.read(UInt64.self, "sequence"), from: try r.read(Int64.self, "from"),
                                    through: try r.read(Int64.self, "through"), part: Int(try r.read(UInt32.self, "part")),
                                    parts: Int(try r.read(UInt32.self, "parts")))
                guard header.parts >= 1, header.part < header.parts, header.from >= -1, header.from < header.through else {
                    throw BinaryReadError("inconsistent header (part \(header.part) of \(header.parts), ticks \(header.from)...\(header.through))", at: r.offset)
                }
                let count = try r.readCount("payload size", elementSize: 1)
                guard count == r.remaining else { throw BinaryReadError("payload of \(count) bytes, \(r.remaining) present", at: r.offset - 8) }
                var chunk = [UInt8](repeating: 0, count: count)
                if count > 0 { try chunk.withUnsafeMutableBufferPointer { (b) throws(BinaryReadError) in try r.readValues(bytes: b) } }
                return (header, chunk)
            }
        } catch let error as BinaryReadError {
            throw ModelUpdateError(error.description)
        } catch {
            throw ModelUpdateError("\(error)")
        }
    }

    /// Writes an update's payload: what `statistics` and `model` changed since the last
    /// call, and the clicks appended to histories (then forgets the changes).
    public static func writePayload(statistics: inout ItemStatistics, appends: [(user: UserID, entry: HistoryEntry)], model: RankingModel?,
                                    to w: inout BinaryWriter) {
        statistics.writeChanges(to: &w)
        w.write(UInt32(appends.count))
        for (user, entry) in appends {
            w.write(user)
            w.write(entry.item)
            w.write(entry.tick)
        }
        w.write(UInt8(model == nil ? 0 : 1))
        model?.writeChanges(to: &w)
    }
}

/// A model update that cannot be read or applied, and why.
public struct ModelUpdateError: Error, CustomStringConvertible, Sendable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Joins an arm's update parts in the order they come, and hands out whole updates.
public struct UpdateAssembler: Sendable {
    var current: ModelUpdate.Header?
    var payload: [UInt8] = []
    /// Joined payloads larger than this are dropped (a forged run of parts would otherwise
    /// grow without bound).
    public let maxBytes: Int
    /// Parts dropped because their update never completed (a trainer that stopped
    /// mid-update), or grew past `maxBytes`.
    public private(set) var abandonedParts = 0

    public init(maxBytes: Int = 1 << 30) { self.maxBytes = maxBytes }

    /// Takes one part; returns the whole update once its last part is in.
    public mutating func take(_ header: ModelUpdate.Header, _ chunk: [UInt8]) -> (ModelUpdate.Header, [UInt8])? {
        if header.part == 0 {
            if current != nil { abandonedParts += 1 }
            current = header
            payload = chunk
        } else if let c = current, c.incarnation == header.incarnation, c.sequence == header.sequence, c.parts == header.parts,
                  c.from == header.from, c.through == header.through, header.part == c.part + 1 {
            current!.part = header.part
            payload += chunk
        } else {
            // A part without its beginning: the server started mid-update, or parts were lost.
            abandonedParts += 1
            current = nil
            payload = []
            return nil
        }
        guard payload.count <= maxBytes else {
            abandonedParts += 1
            current = nil
            payload = []
            return nil
        }
        guard header.part + 1 == header.parts else { return nil }
        defer {
            current = nil
            payload = []
        }
        var whole = header
        whole.part = 0
        return (whole, payload)
    }
}

/// What a server scores with, as its trainer's model updates make it: the item
/// statistics, and for an arm ranked by a sequence model (DARE, TWIN, DIN) that model's
/// parameters and the users' histories. It applies updates and never learns, so it holds
/// no optimizer, samples or evaluations of its own.
public final class ModelReplica {
    public private(set) var statistics: ItemStatistics
    public let model: RankingModel?
    public let histories: UserHistories?
    /// The items of the catalog this replica knows: the rows an update may name.
    public private(set) var catalogCount: Int

    /// - Parameters:
    ///   - model: a fresh sequence model, initialised as the trainer's (same settings and
    ///     seed), with the catalog taken in; nil for an arm without one.
    ///   - histories: the users' histories the trainer starts from (with `model`).
    public init(items: Int, model: RankingModel?, histories: UserHistories?) {
        precondition((model == nil) == (histories == nil), "a sequence model comes with its histories")
        statistics = ItemStatistics(items: items)
        self.model = model
        self.histories = histories
        catalogCount = items
    }

    /// Grows the tables of a model without a world to the rows its trainer's dictionaries
    /// have handed out (new rows start as the trainer's did: by index).
    public func grow(users: Int, items: Int, categories: Int) {
        histories?.grow(to: users)
        model?.grow(items: items, categories: categories)
        statistics.grow(to: items - 1)
        catalogCount = max(catalogCount, items)
    }

    /// Takes in the catalog feed (new items get embedding rows, as the trainer's do).
    public func updateCatalog(categories: [UInt32], categoryCount: Int) {
        catalogCount = max(catalogCount, categories.count)
        model?.updateCatalog(categories: categories, categoryCount: categoryCount)
    }

    /// Applies an update's payload: the state after it is the trainer's after tick
    /// `header.through`. Clicks of ticks at or before `appliedThrough` (the state this
    /// replica already holds) are not appended again. Checks the whole payload against
    /// this replica's state before changing anything; a payload that fails leaves it as
    /// it was.
    public func apply(update header: ModelUpdate.Header, payload: [UInt8], appliedThrough: Int64) throws(ModelUpdateError) {
        do {
            try payload.withUnsafeBytes { try applyPayload($0, through: header.through, appliedThrough: appliedThrough) }
        } catch {
            throw ModelUpdateError("update \(header.sequence) (ticks \(header.from + 1)...\(header.through)) of \(header.identity): \(error)")
        }
    }

    func applyPayload(_ raw: UnsafeRawBufferPointer, through: Int64, appliedThrough: Int64) throws(BinaryReadError) {
        // Check everything first, then apply.
        var check = BinaryReader(raw)
        try statistics.applyChanges(from: &check, items: catalogCount, checkOnly: true)
        let appendsAt = check.offset
        let appends = try check.readCount32("history append count", elementSize: 12)
        let users = histories?.userCount ?? 0
        for _ in 0..<appends {
            let at = check.offset
            let user = try check.read(UInt32.self, "user")
            let item = try check.read(UInt32.self, "item")
            let tick = try check.read(Int32.self, "tick")
            guard Int(user) < users else { throw BinaryReadError("history append of user \(user): outside the \(users) users", at: at) }
            guard Int(item) < catalogCount || item == ModelUpdate.historyCleared else { throw BinaryReadError("history append of item \(item): outside the \(catalogCount) items of the catalog", at: at + 4) }
            guard tick >= 0, Int64(tick) <= through else { throw BinaryReadError("history append at tick \(tick): outside the update's ticks (through \(through))", at: at + 8) }
        }
        let flagAt = check.offset
        let flag = try check.read(UInt8.self, "model flag")
        guard flag <= 1, (flag == 1) == (model != nil) else {
            throw BinaryReadError(flag == 1 ? "the update has a sequence model and this arm has none"
                : flag == 0 ? "the update has no sequence model and this arm has one" : "model flag \(flag)", at: flagAt)
        }
        try model?.applyChanges(from: &check, checkOnly: true)
        guard check.remaining == 0 else { throw BinaryReadError("\(check.remaining) unexpected bytes at the end", at: check.offset) }

        var r = BinaryReader(raw)
        try statistics.applyChanges(from: &r, items: catalogCount)
        precondition(r.offset == appendsAt)
        _ = try r.read(UInt32.self, "history appends")
        for _ in 0..<appends {
            let user = try r.read(UInt32.self, "user")
            let entry = HistoryEntry(item: try r.read(UInt32.self, "item"), tick: try r.read(Int32.self, "tick"))
            guard Int64(entry.tick) > appliedThrough else { continue }
            if entry.item == ModelUpdate.historyCleared { histories?.clear(user) } else { histories?.append(entry, for: user) }
        }
        _ = try r.read(UInt8.self, "model flag")
        try model?.applyChanges(from: &r)
    }

    /// A CRC-32 over the state a server follows: item statistics, histories and model
    /// parameters. A server that applied every update has its trainer's checksum.
    public func stateChecksum(items: Int) -> UInt32 {
        Self.stateChecksum(statistics: statistics, histories: histories, model: model, items: items)
    }

    /// The checksum of any holder of this state (a trainer's is computed the same way).
    public static func stateChecksum(statistics: ItemStatistics, histories: UserHistories?, model: RankingModel?, items: Int) -> UInt32 {
        var w = BinaryWriter()
        w.write(statistics.totalImpressions)
        w.write(statistics.totalClicks)
        w.write(statistics.totalViewSeconds)
        for i in 0..<UInt32(items) {
            w.write(statistics.impressionCount(i))
            w.write(statistics.clickCount(i))
        }
        if let histories, let model {
            for u in 0..<UInt32(histories.userCount) {
                for e in histories.history(of: u) {
                    w.write(e.item)
                    w.write(e.tick)
                }
            }
            w.write(model.parameterChecksum())
        }
        return w.bytes.withUnsafeBytes { CRC32.checksum($0) }
    }
}
