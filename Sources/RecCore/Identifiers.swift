/// A simulated (or attached) user. Dense from 0, so per-user state lives in arrays.
public typealias UserID = UInt32
/// A catalog item. Dense from 0; new items take the next ids.
public typealias ItemID = UInt32
/// One step of simulated time.
public typealias Tick = UInt32

/// An id as another service's stream names a user, an item or a category: a 64-bit
/// integer or a string (at most `maxStringBytes` bytes of UTF-8). `IdDictionary` maps
/// these to the dense rows models keep their state in.
public enum ExternalID: Hashable, Sendable, CustomStringConvertible {
    case int(Int64)
    case string(String)

    /// The longest string id taken; a longer one is refused with a reason (ids are keys
    /// of tables that live for weeks: a stream that puts documents in its id field should
    /// be told, not obeyed).
    public static let maxStringBytes = 512

    /// The id as a JSON value's text (a number, or a quoted string).
    public var json: String {
        switch self {
        case .int(let v): String(v)
        case .string(let s): JSONValue.string(s).rendered(pretty: false)
        }
    }

    public var description: String {
        switch self {
        case .int(let v): String(v)
        case .string(let s): "\"\(s)\""
        }
    }
}

extension ExternalID: ExpressibleByIntegerLiteral, ExpressibleByStringLiteral {
    public init(integerLiteral value: Int64) { self = .int(value) }
    public init(stringLiteral value: String) { self = .string(value) }
}
