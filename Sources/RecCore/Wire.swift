/// The binary wire format of recstream's three event records (README, "Wire format").
///
/// Every record is little-endian and starts with the same 16-byte header:
///
///     offset size field
///     0      1    version (1)
///     1      1    kind: 1 request, 2 slate, 3 feedback
///     2      2    arm index (u16)
///     4      4    tick (u32)
///     8      4    user (u32)
///     12     4    sequence: the user's request counter (u32)
///
/// Decoding checks the length, version, kind and every field's range before reading a
/// byte past the header, so truncated or random input is an error, never a crash.
public enum Wire {
    public static let version: UInt8 = 1
    public static let headerSize = 16
    public static let requestSize = headerSize + 4
    public static let slateHeaderSize = headerSize + 4
    public static let slateEntrySize = 8
    public static let feedbackSize = headerSize + 20
    /// The largest slate a record can carry.
    public static let maxSlateSize = 255

    public static func slateSize(items: Int) -> Int { slateHeaderSize + items * slateEntrySize }
}

public enum RecordKind: UInt8, Sendable {
    case request = 1
    case slate = 2
    case feedback = 3
}

/// Why bytes did not decode, and where.
public struct WireError: Error, Equatable, CustomStringConvertible, Sendable {
    public var reason: String
    /// Byte offset of the offending field.
    public var offset: Int
    public init(_ reason: String, at offset: Int) {
        self.reason = reason
        self.offset = offset
    }
    public var description: String { "byte \(offset): \(reason)" }
}

/// Fields every record carries.
public struct RecordHeader: Equatable, Hashable, Sendable {
    public var arm: UInt16
    public var tick: Tick
    public var user: UserID
    public var sequence: UInt32
    public init(arm: UInt16, tick: Tick, user: UserID, sequence: UInt32) {
        self.arm = arm
        self.tick = tick
        self.user = user
        self.sequence = sequence
    }
}

/// A user asks for a slate of `slateSize` items.
public struct Request: Equatable, Sendable {
    public var header: RecordHeader
    public var slateSize: UInt16
    public init(_ header: RecordHeader, slateSize: UInt16) {
        self.header = header
        self.slateSize = slateSize
    }
}

/// One position of a slate: the item and the probability with which the serving policy
/// put it there (for off-policy evaluation).
public struct SlateEntry: Equatable, Sendable {
    public var item: ItemID
    public var propensity: Float
    public init(item: ItemID, propensity: Float) {
        self.item = item
        self.propensity = propensity
    }
}

/// The answer to a request. Its entries are stored out of line (see `Wire.decodeSlate`).
public struct SlateHeader: Equatable, Sendable {
    public var header: RecordHeader
    /// Which policy built it (an index the arm defines).
    public var policy: UInt16
    public var itemCount: Int
    public init(_ header: RecordHeader, policy: UInt16, itemCount: Int) {
        self.header = header
        self.policy = policy
        self.itemCount = itemCount
    }
}

public enum FeedbackEvent: UInt8, Sendable, CaseIterable {
    /// The item was shown at `position`.
    case impression = 1
    /// The user opened it and watched `viewSeconds`.
    case click = 2
    /// The user bought it for `amount`, possibly ticks after it was shown (`shownTick`).
    case purchase = 3
}

/// What the user did with one shown item. `header.tick` is when it happened;
/// `shownTick` when the slate that showed the item was served.
public struct Feedback: Equatable, Sendable {
    public var header: RecordHeader
    public var event: FeedbackEvent
    public var position: UInt8
    public var item: ItemID
    public var shownTick: Tick
    public var viewSeconds: Float
    public var amount: Float
    public init(_ header: RecordHeader, event: FeedbackEvent, position: UInt8, item: ItemID,
                shownTick: Tick, viewSeconds: Float = 0, amount: Float = 0) {
        self.header = header
        self.event = event
        self.position = position
        self.item = item
        self.shownTick = shownTick
        self.viewSeconds = viewSeconds
        self.amount = amount
    }
}

// MARK: - Encoding (into caller-owned bytes: no allocation)

extension Wire {
    @inline(__always)
    static func put<T: FixedWidthInteger>(_ value: T, _ out: UnsafeMutableRawBufferPointer, _ offset: Int) {
        out.storeBytes(of: value.littleEndian, toByteOffset: offset, as: T.self)
    }

    @inline(__always)
    static func putHeader(_ h: RecordHeader, kind: RecordKind, _ out: UnsafeMutableRawBufferPointer) {
        out[0] = version
        out[1] = kind.rawValue
        put(h.arm, out, 2)
        put(h.tick, out, 4)
        put(h.user, out, 8)
        put(h.sequence, out, 12)
    }

    /// Writes `request` at the start of `out` (at least `requestSize` bytes); returns the size.
    @inline(__always)
    public static func encode(_ request: Request, into out: UnsafeMutableRawBufferPointer) -> Int {
        precondition(out.count >= requestSize)
        putHeader(request.header, kind: .request, out)
        put(request.slateSize, out, 16)
        put(UInt16(0), out, 18)
        return requestSize
    }

    /// Writes a slate with `entries` at the start of `out`; returns the size.
    @inline(__always)
    public static func encodeSlate(_ header: RecordHeader, policy: UInt16, entries: UnsafeBufferPointer<SlateEntry>,
                                   into out: UnsafeMutableRawBufferPointer) -> Int {
        precondition(entries.count <= maxSlateSize && out.count >= slateSize(items: entries.count))
        putHeader(header, kind: .slate, out)
        put(UInt16(entries.count), out, 16)
        put(policy, out, 18)
        var offset = slateHeaderSize
        for entry in entries {
            put(entry.item, out, offset)
            put(entry.propensity.bitPattern, out, offset + 4)
            offset += slateEntrySize
        }
        return offset
    }

    @inline(__always)
    public static func encode(_ feedback: Feedback, into out: UnsafeMutableRawBufferPointer) -> Int {
        precondition(out.count >= feedbackSize)
        putHeader(feedback.header, kind: .feedback, out)
        out[16] = feedback.event.rawValue
        out[17] = feedback.position
        put(UInt16(0), out, 18)
        put(feedback.item, out, 20)
        put(feedback.shownTick, out, 24)
        put(feedback.viewSeconds.bitPattern, out, 28)
        put(feedback.amount.bitPattern, out, 32)
        return feedbackSize
    }
}

// MARK: - Decoding (straight from the payload bytes)

extension Wire {
    @inline(__always)
    static func get<T: FixedWidthInteger>(_ bytes: UnsafeRawBufferPointer, _ offset: Int, as: T.Type) -> T {
        T(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: T.self))
    }

    /// The kind of a record, after checking its version.
    public static func kind(of bytes: UnsafeRawBufferPointer) throws(WireError) -> RecordKind {
        guard bytes.count >= headerSize else {
            throw WireError("record of \(bytes.count) bytes is shorter than the \(headerSize)-byte header", at: 0)
        }
        guard bytes[0] == version else { throw WireError("unsupported wire version \(bytes[0]) (this build reads \(version))", at: 0) }
        guard let kind = RecordKind(rawValue: bytes[1]) else { throw WireError("unknown record kind \(bytes[1])", at: 1) }
        return kind
    }

    static func header(_ bytes: UnsafeRawBufferPointer, expecting expected: RecordKind) throws(WireError) -> RecordHeader {
        let kind = try kind(of: bytes)
        guard kind == expected else { throw WireError("expected a \(expected) record, got a \(kind) record", at: 1) }
        return RecordHeader(arm: get(bytes, 2, as: UInt16.self), tick: get(bytes, 4, as: UInt32.self),
                            user: get(bytes, 8, as: UInt32.self), sequence: get(bytes, 12, as: UInt32.self))
    }

    static func requireSize(_ bytes: UnsafeRawBufferPointer, _ size: Int, _ kind: RecordKind) throws(WireError) {
        guard bytes.count == size else {
            throw WireError("a \(kind) record is \(size) bytes, got \(bytes.count)", at: min(bytes.count, size))
        }
    }

    /// Reserved fields are zero in version 1, so every decodable record has one encoding.
    static func requireZero(_ bytes: UnsafeRawBufferPointer, _ offset: Int) throws(WireError) {
        guard get(bytes, offset, as: UInt16.self) == 0 else { throw WireError("reserved field is not zero", at: offset) }
    }

    public static func decodeRequest(_ bytes: UnsafeRawBufferPointer) throws(WireError) -> Request {
        let h = try header(bytes, expecting: .request)
        try requireSize(bytes, requestSize, .request)
        try requireZero(bytes, 18)
        let size = get(bytes, 16, as: UInt16.self)
        guard size >= 1 && size <= maxSlateSize else {
            throw WireError("slate size \(size) is outside 1...\(maxSlateSize)", at: 16)
        }
        return Request(h, slateSize: size)
    }

    /// Decodes a slate, appending its entries to `entries` (so a whole tick's slates share
    /// one contiguous array).
    public static func decodeSlate(_ bytes: UnsafeRawBufferPointer, appendingTo entries: inout [SlateEntry]) throws(WireError) -> SlateHeader {
        let h = try header(bytes, expecting: .slate)
        guard bytes.count >= slateHeaderSize else {
            throw WireError("a slate record is at least \(slateHeaderSize) bytes, got \(bytes.count)", at: bytes.count)
        }
        let count = Int(get(bytes, 16, as: UInt16.self))
        guard count <= maxSlateSize else { throw WireError("slate of \(count) items exceeds \(maxSlateSize)", at: 16) }
        try requireSize(bytes, slateSize(items: count), .slate)
        let policy = get(bytes, 18, as: UInt16.self)
        let start = entries.count
        var offset = slateHeaderSize
        for _ in 0..<count {
            let item = get(bytes, offset, as: UInt32.self)
            let propensity = Float(bitPattern: get(bytes, offset + 4, as: UInt32.self))
            guard propensity > 0 && propensity <= 1 else {
                entries.removeSubrange(start...)
                throw WireError("propensity \(propensity) is outside (0, 1]", at: offset + 4)
            }
            entries.append(SlateEntry(item: item, propensity: propensity))
            offset += slateEntrySize
        }
        return SlateHeader(h, policy: policy, itemCount: count)
    }

    public static func decodeFeedback(_ bytes: UnsafeRawBufferPointer) throws(WireError) -> Feedback {
        let h = try header(bytes, expecting: .feedback)
        try requireSize(bytes, feedbackSize, .feedback)
        guard let event = FeedbackEvent(rawValue: bytes[16]) else { throw WireError("unknown feedback event \(bytes[16])", at: 16) }
        try requireZero(bytes, 18)
        let shownTick = get(bytes, 24, as: UInt32.self)
        guard shownTick <= h.tick else { throw WireError("shown at tick \(shownTick), after the event's tick \(h.tick)", at: 24) }
        let seconds = Float(bitPattern: get(bytes, 28, as: UInt32.self))
        guard seconds.isFinite && seconds >= 0 else { throw WireError("view seconds \(seconds) must be finite and >= 0", at: 28) }
        let amount = Float(bitPattern: get(bytes, 32, as: UInt32.self))
        guard amount.isFinite && amount >= 0 else { throw WireError("amount \(amount) must be finite and >= 0", at: 32) }
        return Feedback(h, event: event, position: bytes[17], item: get(bytes, 20, as: UInt32.self),
                        shownTick: shownTick, viewSeconds: seconds, amount: amount)
    }
}
