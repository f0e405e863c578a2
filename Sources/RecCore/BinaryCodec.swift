/// Little-endian binary writing and bounds-checked reading, for checkpoint files.
public struct BinaryWriter: Sendable {
    public private(set) var bytes: [UInt8] = []
    public init() {}

    public mutating func write<T: FixedWidthInteger>(_ value: T) {
        withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }
    public mutating func write(_ value: Float) { write(value.bitPattern) }
    public mutating func write(_ value: Double) { write(value.bitPattern) }
    public mutating func write(_ value: String) {
        write(UInt32(value.utf8.count))
        bytes.append(contentsOf: value.utf8)
    }
    /// A count, then the raw little-endian values (Float and UInt32 arrays, history entries).
    public mutating func write(_ values: UnsafeBufferPointer<Float>) {
        write(UInt64(values.count))
        for v in values { write(v.bitPattern) }
    }
    public mutating func writeRaw<T>(_ values: UnsafeBufferPointer<T>) {
        write(UInt64(values.count))
        bytes.append(contentsOf: UnsafeRawBufferPointer(values))
    }
    /// Bytes as they are, without a count (the reader knows how many).
    public mutating func writeBytes(_ values: UnsafeBufferPointer<UInt8>) {
        bytes.append(contentsOf: values)
    }
    /// The raw little-endian values without a count (the reader knows how many).
    public mutating func writeValues(_ values: UnsafeBufferPointer<Float>) {
        bytes.append(contentsOf: UnsafeRawBufferPointer(values))
    }
}

/// Why bytes did not read, and where: the wire format's error, shared by every binary
/// reader (records on topics, checkpoint files).
public typealias BinaryReadError = WireError

public struct BinaryReader {
    let bytes: UnsafeRawBufferPointer
    public private(set) var offset = 0
    public init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    mutating func need(_ n: Int, _ what: String) throws(BinaryReadError) {
        guard n >= 0, bytes.count - offset >= n else {
            throw BinaryReadError("truncated: \(what) needs \(n) bytes, \(bytes.count - offset) left", at: offset)
        }
    }
    public mutating func read<T: FixedWidthInteger>(_: T.Type, _ what: String) throws(BinaryReadError) -> T {
        try need(MemoryLayout<T>.size, what)
        defer { offset += MemoryLayout<T>.size }
        return T(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: T.self))
    }
    public mutating func readFloat(_ what: String) throws(BinaryReadError) -> Float {
        Float(bitPattern: try read(UInt32.self, what))
    }
    public mutating func readDouble(_ what: String) throws(BinaryReadError) -> Double {
        Double(bitPattern: try read(UInt64.self, what))
    }
    public mutating func readString(_ what: String) throws(BinaryReadError) -> String {
        let n = Int(try read(UInt32.self, what))
        try need(n, what)
        defer { offset += n }
        return String(decoding: UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + n]), as: UTF8.self)
    }
    /// Reads a u64 count of elements of `elementSize` bytes each, checked against the bytes
    /// that are left before it becomes an Int: a forged count is an error naming `what`,
    /// never a trap or an allocation of its size.
    public mutating func readCount(_ what: String, elementSize: Int) throws(BinaryReadError) -> Int {
        let at = offset
        let count = try read(UInt64.self, what)
        guard count <= UInt64(remaining / max(elementSize, 1)) else {
            throw BinaryReadError("implausible \(what) \(count): \(remaining) bytes left", at: at)
        }
        return Int(count)
    }
    /// A u64 that must fit an Int (counters, steps): a larger one is an error, not a trap.
    public mutating func readInt(_ what: String) throws(BinaryReadError) -> Int {
        let at = offset
        let v = try read(UInt64.self, what)
        guard v <= UInt64(Int.max) else { throw BinaryReadError("implausible \(what) \(v)", at: at) }
        return Int(v)
    }
    /// A u32 count, checked the same way.
    public mutating func readCount32(_ what: String, elementSize: Int) throws(BinaryReadError) -> Int {
        let at = offset
        let count = Int(try read(UInt32.self, what))
        guard count <= remaining / max(elementSize, 1) else {
            throw BinaryReadError("implausible \(what) \(count): \(remaining) bytes left", at: at)
        }
        return count
    }
    /// Reads a count and that many raw values into `out` (which must have room for `expected`).
    public mutating func readRaw<T>(into out: UnsafeMutablePointer<T>, expected: Int, _ what: String) throws(BinaryReadError) {
        let count = try readCount(what, elementSize: MemoryLayout<T>.stride)
        guard count == expected else { throw BinaryReadError("\(what): expected \(expected) values, found \(count)", at: offset - 8) }
        let size = count * MemoryLayout<T>.stride
        try need(size, what)
        UnsafeMutableRawPointer(out).copyMemory(from: bytes.baseAddress! + offset, byteCount: size)
        offset += size
    }
    /// Reads `count` raw values written by `writeValues` into `out`.
    public mutating func readValues(into out: UnsafeMutablePointer<Float>, count: Int, _ what: String) throws(BinaryReadError) {
        guard count >= 0, count <= remaining / 4 else { throw BinaryReadError("truncated: \(what) needs \(count) values, \(remaining) bytes left", at: offset) }
        let size = count * 4
        try need(size, what)
        UnsafeMutableRawPointer(out).copyMemory(from: bytes.baseAddress! + offset, byteCount: size)
        offset += size
    }
    /// Reads `out.count` raw bytes into `out`.
    public mutating func readValues(bytes out: UnsafeMutableBufferPointer<UInt8>) throws(BinaryReadError) {
        try need(out.count, "bytes")
        UnsafeMutableRawPointer(out.baseAddress!).copyMemory(from: bytes.baseAddress! + offset, byteCount: out.count)
        offset += out.count
    }
    public mutating func skip(_ n: Int, _ what: String) throws(BinaryReadError) {
        try need(n, what)
        offset += n
    }
    public var remaining: Int { bytes.count - offset }

    /// Moves back to an earlier offset (to re-read a count together with its values).
    public mutating func rewind(to earlier: Int) {
        precondition(earlier >= 0 && earlier <= offset)
        offset = earlier
    }
}

/// CRC-32 (IEEE 802.3, as zlib's crc32), for checkpoint checksums.
public enum CRC32 {
    static let table: [UInt32] = (0..<256).map { n in
        var c = UInt32(n)
        for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        return c
    }

    public static func checksum(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
        var c: UInt32 = 0xFFFF_FFFF
        table.withUnsafeBufferPointer { t in
            for b in bytes { c = t[Int((c ^ UInt32(b)) & 0xFF)] ^ (c >> 8) }
        }
        return c ^ 0xFFFF_FFFF
    }
}
