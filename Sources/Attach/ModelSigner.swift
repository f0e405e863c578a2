import Crypto
import Foundation

/// Authenticates model updates with a key the trainer and its servers share
/// (`--model-key-file`): the trainer puts HMAC-SHA256 of each message, in hex, in its
/// `recstream-signature` header, and a server holding the key drops any update message
/// whose signature is missing or wrong. The CRC inside every update only catches torn
/// bytes; anyone who can write to the model topic can also compute a CRC, but not this.
public struct ModelSigner: Sendable {
    /// The Kafka header the signature travels in.
    public static let header = "recstream-signature"
    /// Keys shorter than this are refused: HMAC-SHA256's strength is that of its key.
    public static let minimumKeyBytes = 32

    /// The key's bytes (Crypto's SymmetricKey is not Sendable; one is made per message,
    /// and messages are few: one update a second, in parts of 512 KiB).
    let keyBytes: [UInt8]
    var key: SymmetricKey { SymmetricKey(data: keyBytes) }

    public init(key: [UInt8]) throws(AttachError) {
        guard key.count >= Self.minimumKeyBytes else {
            throw AttachError("the model key has \(key.count) bytes; it needs at least \(Self.minimumKeyBytes) (e.g. head -c 32 /dev/urandom > model.key)")
        }
        keyBytes = key
    }

    /// Reads a key file: its bytes as they are (one trailing newline dropped, for keys
    /// written as text).
    public init(keyFile path: String) throws(AttachError) {
        guard var bytes = FileManager.default.contents(atPath: path).map({ [UInt8]($0) }) else {
            throw AttachError("--model-key-file \(path): cannot read it (no such file, or not readable)")
        }
        if bytes.last == UInt8(ascii: "\n") { bytes.removeLast() }
        do { try self.init(key: bytes) } catch { throw AttachError("--model-key-file \(path): \(error.message)") }
    }

    /// The signature of `message`, as the header carries it.
    public func signature(of message: [UInt8]) -> String {
        HMAC<SHA256>.authenticationCode(for: message, using: key).map { String(format: "%02x", $0) }.joined()
    }

    /// Why `message` with header value `signature` is not authentic; nil when it is. The
    /// comparison is in constant time.
    public func refusal(of message: [UInt8], signature: String?) -> String? {
        guard let signature else { return "unsigned (no \(Self.header) header), and this server requires signed updates" }
        guard let code = Self.bytes(hex: signature), code.count == SHA256.byteCount else {
            return "its \(Self.header) header is not a SHA-256 HMAC in hex"
        }
        return HMAC<SHA256>.isValidAuthenticationCode(code, authenticating: message, using: key)
            ? nil : "bad signature (signed with another key, or altered)"
    }

    static func bytes(hex: String) -> [UInt8]? {
        let digits = Array(hex.utf8)
        guard digits.count % 2 == 0 else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(digits.count / 2)
        for i in stride(from: 0, to: digits.count, by: 2) {
            guard let high = hexValue(digits[i]), let low = hexValue(digits[i + 1]) else { return nil }
            out.append(high << 4 | low)
        }
        return out
    }

    static func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): c - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
