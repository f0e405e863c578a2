/// An `Encodable` value as a `JSONValue` with every object's keys sorted: a canonical form
/// whose rendering depends only on the value and on this file (not on Foundation's
/// JSONEncoder or on a toolchain's debug descriptions), for identities that must survive
/// a toolchain upgrade, such as a scenario's fingerprint.
public enum CanonicalJSON {
    public static func encode<T: Encodable>(_ value: T) throws -> JSONValue {
        let root = Node()
        try value.encode(to: NodeEncoder(node: root, codingPath: []))
        return root.json
    }
}

/// A value being encoded: unset until a container writes it.
private final class Node {
    enum Kind {
        case unset
        case value(JSONValue)
        case object([String: Node])
        case array([Node])
    }
    var kind = Kind.unset

    var json: JSONValue {
        switch kind {
        case .unset: .null
        case .value(let v): v
        case .object(let o): .object(JSONObject(o.keys.sorted().map { (key: $0, value: o[$0]!.json) }))
        case .array(let a): .array(a.map(\.json))
        }
    }

    func child(_ key: String) -> Node {
        var o: [String: Node] = [:]
        if case .object(let existing) = kind { o = existing }
        if let n = o[key] { return n }
        let n = Node()
        o[key] = n
        kind = .object(o)
        return n
    }

    func append() -> Node {
        var a: [Node] = []
        if case .array(let existing) = kind { a = existing }
        let n = Node()
        a.append(n)
        kind = .array(a)
        return n
    }

    var count: Int { if case .array(let a) = kind { a.count } else { 0 } }

    func set<T: Encodable>(_ value: T, _ path: [any CodingKey]) throws {
        switch value {
        case let v as Bool: kind = .value(.bool(v))
        case let v as String: kind = .value(.string(v))
        case let v as Double: kind = .value(.number(v))
        case let v as Float: kind = .value(.number(Double(v)))
        case let v as Int: kind = .value(.integer(Int64(v)))
        case let v as Int8: kind = .value(.integer(Int64(v)))
        case let v as Int16: kind = .value(.integer(Int64(v)))
        case let v as Int32: kind = .value(.integer(Int64(v)))
        case let v as Int64: kind = .value(.integer(v))
        case let v as UInt8: kind = .value(.integer(Int64(v)))
        case let v as UInt16: kind = .value(.integer(Int64(v)))
        case let v as UInt32: kind = .value(.integer(Int64(v)))
        case let v as UInt: kind = .value(v <= UInt(Int64.max) ? .integer(Int64(v)) : .string(String(v)))
        case let v as UInt64: kind = .value(v <= UInt64(Int64.max) ? .integer(Int64(v)) : .string(String(v)))
        default: try value.encode(to: NodeEncoder(node: self, codingPath: path))
        }
    }
}

private struct NodeEncoder: Encoder {
    let node: Node
    let codingPath: [any CodingKey]
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        if case .object = node.kind {} else { node.kind = .object([:]) }
        return KeyedEncodingContainer(Keyed<Key>(node: node, codingPath: codingPath))
    }

    func unkeyedContainer() -> any UnkeyedEncodingContainer {
        if case .array = node.kind {} else { node.kind = .array([]) }
        return Unkeyed(node: node, codingPath: codingPath)
    }

    func singleValueContainer() -> any SingleValueEncodingContainer { Single(node: node, codingPath: codingPath) }
}

private struct Keyed<Key: CodingKey>: KeyedEncodingContainerProtocol {
    let node: Node
    let codingPath: [any CodingKey]

    mutating func encodeNil(forKey key: Key) throws { node.child(key.stringValue).kind = .value(.null) }
    mutating func encode(_ value: Bool, forKey key: Key) throws { try put(value, key) }
    mutating func encode(_ value: String, forKey key: Key) throws { try put(value, key) }
    mutating func encode(_ value: Double, forKey key: Key) throws { try put(value, key) }
    mutating func encode(_ value: Float, forKey key: Key) throws { try put(value, key) }
    mutating func encode(_ value: Int, forKey key: Key) throws { try put(value, key) }
    mutating func encode(_ value: Int8, forKey key: Key) throws { try put(value, key) }
    mutating func encode(_ value: Int16, forKey key: Key) throws { try put(value, key) }
    mutating func encode(_ value: Int32, forKey key: Key) throws { try put(value, key) }
    mutating func encode(_ value: Int64, forKey key: Key) throws { try put(value, key) }
    mutating func encode(_ value: UInt, forKey key: Key) throws { try put(value, key) }
    mutating func encode(_ value: UInt8, forKey key: Key) throws { try put(value, key) }
    mutating func encode(_ value: UInt16, forKey key: Key) throws { try put(value, key) }
    mutating func encode(_ value: UInt32, forKey key: Key) throws { try put(value, key) }
    mutating func encode(_ value: UInt64, forKey key: Key) throws { try put(value, key) }
    mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws { try put(value, key) }

    private func put<T: Encodable>(_ value: T, _ key: Key) throws {
        try node.child(key.stringValue).set(value, codingPath + [key])
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type, forKey key: Key) -> KeyedEncodingContainer<NestedKey> {
        NodeEncoder(node: node.child(key.stringValue), codingPath: codingPath + [key]).container(keyedBy: keyType)
    }

    mutating func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer {
        NodeEncoder(node: node.child(key.stringValue), codingPath: codingPath + [key]).unkeyedContainer()
    }

    mutating func superEncoder() -> any Encoder { NodeEncoder(node: node.child("super"), codingPath: codingPath) }
    mutating func superEncoder(forKey key: Key) -> any Encoder { NodeEncoder(node: node.child(key.stringValue), codingPath: codingPath + [key]) }
}

private struct IndexKey: CodingKey {
    let intValue: Int?
    var stringValue: String { String(intValue!) }
    init(_ i: Int) { intValue = i }
    init?(stringValue: String) { nil }
    init?(intValue: Int) { self.intValue = intValue }
}

private struct Unkeyed: UnkeyedEncodingContainer {
    let node: Node
    let codingPath: [any CodingKey]
    var count: Int { node.count }

    mutating func encodeNil() throws { node.append().kind = .value(.null) }
    mutating func encode<T: Encodable>(_ value: T) throws {
        let key = IndexKey(count)
        try node.append().set(value, codingPath + [key])
    }
    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type) -> KeyedEncodingContainer<NestedKey> {
        let key = IndexKey(count)
        return NodeEncoder(node: node.append(), codingPath: codingPath + [key]).container(keyedBy: keyType)
    }
    mutating func nestedUnkeyedContainer() -> any UnkeyedEncodingContainer {
        let key = IndexKey(count)
        return NodeEncoder(node: node.append(), codingPath: codingPath + [key]).unkeyedContainer()
    }
    mutating func superEncoder() -> any Encoder { NodeEncoder(node: node.append(), codingPath: codingPath) }
}

private struct Single: SingleValueEncodingContainer {
    let node: Node
    let codingPath: [any CodingKey]
    mutating func encodeNil() throws { node.kind = .value(.null) }
    mutating func encode<T: Encodable>(_ value: T) throws { try node.set(value, codingPath) }
}
