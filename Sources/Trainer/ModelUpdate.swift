import Models
import RecCore

/// Model updates: how servers follow a trainer without restarts (`<prefix>.model`).
///
/// An update carries what one arm's trainer changed over the ticks (from, through]: the
/// item statistics of the items it counted, the clicks it appended to users' histories,
/// and the sequence model's changed embedding rows with every dense parameter. Values
/// overwrite; nothing is a gradient. So a server that applies the updates in order holds
/// the trainer's state exactly (bit for bit, `stateChecksum`), and an update that repeats
/// what a server already has (a trainer replaying after a restart) changes nothing:
/// it is skipped when it ends at or before the server's tick, and when it straddles it,
/// its rows overwrite with newer values and only its clicks after that tick append.
///
/// A large update is split into parts (one message each) that the server joins before
/// applying, so an update applies whole or not at all. Each message:
///
///     "RSMU", version (u32), identity (string: scenario, seed, arm), incarnation (u64: one
///     per trainer start), sequence (u64), from and through ticks (i64), part and parts
///     (u32), a chunk of the payload (count, bytes), CRC-32 of all before it.
///
/// The payload, joined: statistics changes, history appends (count, then user, item,
/// tick), a model flag, the model's changes (`RankingModel.writeChanges`).
public enum ModelUpdate {
    public static let version: UInt32 = 1
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

    /// The messages of one update: everything `trainer` changed since the last update,
    /// in parts of at most `maxPartBytes` of payload.
    public static func encode(_ trainer: ArmTrainer, header: Header, maxPartBytes: Int = 512 * 1024) -> [[UInt8]] {
        var payload = BinaryWriter()
        trainer.writeChanges(to: &payload)
        let bytes = payload.bytes
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
                guard header.parts >= 1, header.part < header.parts, header.from < header.through else {
                    throw BinaryReadError("inconsistent header (part \(header.part) of \(header.parts), ticks \(header.from)...\(header.through))", at: r.offset)
                }
                let count = Int(try r.read(UInt64.self, "payload"))
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
    /// Parts dropped because their update never completed (a trainer that stopped mid-update).
    public private(set) var abandonedParts = 0

    public init() {}

    /// Takes one part; returns the whole update once its last part is in.
    public mutating func take(_ header: ModelUpdate.Header, _ chunk: [UInt8]) -> (ModelUpdate.Header, [UInt8])? {
        if header.part == 0 {
            if current != nil { abandonedParts += 1 }
            current = header
            payload = chunk
        } else if let c = current, c.incarnation == header.incarnation, c.sequence == header.sequence, header.part == c.part + 1 {
            current!.part = header.part
            payload += chunk
        } else {
            // A part without its beginning: the server started mid-update, or parts were lost.
            abandonedParts += 1
            current = nil
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

extension ArmTrainer {
    /// Starts recording what changes, for `ModelUpdate.encode`.
    public func tracksChanges() {
        statistics.tracksChanges = true
        sequence?.model.tracksChanges = true
        sequence?.logsHistoryAppends = true
    }

    /// The payload of an update (see `ModelUpdate`); forgets the changes it wrote.
    func writeChanges(to w: inout BinaryWriter) {
        statistics.writeChanges(to: &w)
        let appends = sequence?.historyAppends ?? []
        w.write(UInt32(appends.count))
        for (user, entry) in appends {
            w.write(user)
            w.write(entry.item)
            w.write(entry.tick)
        }
        sequence?.historyAppends.removeAll(keepingCapacity: true)
        w.write(UInt8(sequence == nil ? 0 : 1))
        sequence?.model.writeChanges(to: &w)
    }

    /// Applies an update's payload: the state after it is the trainer's after tick
    /// `header.through`. Clicks of ticks at or before `appliedThrough` (the state this
    /// trainer already holds) are not appended again. Checks the whole payload before
    /// changing anything.
    public func apply(update header: ModelUpdate.Header, payload: [UInt8], appliedThrough: Int64) throws(ModelUpdateError) {
        do {
            try payload.withUnsafeBytes { try applyPayload($0, appliedThrough: appliedThrough) }
        } catch {
            throw ModelUpdateError("update \(header.sequence) (ticks \(header.from + 1)...\(header.through)) of \(header.identity): \(error)")
        }
    }

    func applyPayload(_ raw: UnsafeRawBufferPointer, appliedThrough: Int64) throws(BinaryReadError) {
        // Check everything first, then apply.
        var check = BinaryReader(raw)
        try statistics.applyChanges(from: &check, checkOnly: true)
        let (appendsAt, appends) = try Self.readAppendCount(&check)
        let users = sequence?.histories.userCount ?? 0
        for _ in 0..<appends {
            let at = check.offset
            let user = try check.read(UInt32.self, "user")
            guard Int(user) < users else { throw BinaryReadError("user \(user) is outside the \(users) users", at: at) }
            try check.skip(8, "history entry")
        }
        let hasModel = try check.read(UInt8.self, "model flag") == 1
        guard hasModel == (sequence != nil) else {
            throw BinaryReadError(hasModel ? "the update has a sequence model and this arm has none" : "the update has no sequence model and this arm has one", at: check.offset - 1)
        }
        let modelAt = check.offset
        try sequence?.model.applyChanges(from: &check, checkOnly: true)
        guard check.remaining == 0 else { throw BinaryReadError("\(check.remaining) unexpected bytes at the end", at: check.offset) }

        var r = BinaryReader(raw)
        try statistics.applyChanges(from: &r)
        r.rewind(to: appendsAt)
        _ = try r.read(UInt32.self, "history appends")
        for _ in 0..<appends {
            let user = try r.read(UInt32.self, "user")
            let entry = HistoryEntry(item: try r.read(UInt32.self, "item"), tick: try r.read(Int32.self, "tick"))
            if Int64(entry.tick) > appliedThrough { sequence?.histories.append(entry, for: user) }
        }
        _ = try r.read(UInt8.self, "model flag")
        precondition(r.offset == modelAt)
        try sequence?.model.applyChanges(from: &r)
    }

    static func readAppendCount(_ r: inout BinaryReader) throws(BinaryReadError) -> (offset: Int, count: Int) {
        let at = r.offset
        let count = Int(try r.read(UInt32.self, "history appends"))
        guard count <= r.remaining / 12 else { throw BinaryReadError("implausible history append count \(count)", at: at) }
        return (at, count)
    }

    /// A CRC-32 over the state a server follows: item statistics, histories and model
    /// parameters. A server that applied every update has the trainer's checksum.
    public func stateChecksum(items: Int) -> UInt32 {
        var w = BinaryWriter()
        w.write(statistics.totalImpressions)
        w.write(statistics.totalClicks)
        w.write(statistics.totalViewSeconds)
        for i in 0..<UInt32(items) {
            w.write(statistics.impressionCount(i))
            w.write(statistics.clickCount(i))
        }
        if let s = sequence {
            for u in 0..<UInt32(s.histories.userCount) {
                for e in s.histories.history(of: u) {
                    w.write(e.item)
                    w.write(e.tick)
                }
            }
            w.write(s.model.parameterChecksum())
        }
        return w.bytes.withUnsafeBytes { CRC32.checksum($0) }
    }
}
