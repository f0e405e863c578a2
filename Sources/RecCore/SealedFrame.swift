/// The framing every checkpoint file and model update shares: four magic bytes first, and
/// last a CRC-32 of everything before it (a check against torn and corrupted bytes, not
/// an authentication code).
public enum CheckpointFrame {
    public enum Problem: Equatable, Sendable {
        /// Too short, or another magic: not this kind of file.
        case notOurs
        /// The checksum does not match: corrupt or truncated.
        case checksum(computed: UInt32, stored: UInt32)
    }

    /// The bytes to write: what `w` holds (magic first), then its CRC-32.
    public static func seal(_ w: BinaryWriter) -> [UInt8] {
        var w = w
        let crc = w.bytes.withUnsafeBytes { CRC32.checksum($0) }
        w.write(crc)
        return w.bytes
    }

    /// What is wrong with `bytes` as a sealed file starting with `magic`; nil if nothing.
    public static func check(_ bytes: [UInt8], magic: [UInt8]) -> Problem? {
        guard bytes.count >= magic.count + 8, Array(bytes[0..<magic.count]) == magic else { return .notOurs }
        let stored = bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: bytes.count - 4, as: UInt32.self).littleEndian }
        let computed = bytes.withUnsafeBytes { CRC32.checksum(UnsafeRawBufferPointer(rebasing: $0[..<(bytes.count - 4)])) }
        return stored == computed ? nil : .checksum(computed: computed, stored: stored)
    }

    /// Reads a checked file's body: from after the four magic bytes to before the checksum
    /// (the reader's offsets stay those of the file, for error messages).
    public static func read<T>(_ bytes: [UInt8], _ body: (inout BinaryReader) throws -> T) throws -> T {
        try bytes.withUnsafeBytes { raw in
            var r = BinaryReader(UnsafeRawBufferPointer(rebasing: raw[..<(bytes.count - 4)]))
            for _ in 0..<4 { _ = try r.read(UInt8.self, "magic") }
            return try body(&r)
        }
    }
}
