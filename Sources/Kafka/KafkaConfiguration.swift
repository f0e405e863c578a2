import CRdKafka
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// librdkafka properties for one client, passed through unchanged, as kcat's `-X key=value`
/// does (see librdkafka's CONFIGURATION.md for every key).
///
/// The layer only adds defaults the caller has not set; anything the caller sets wins.
/// Secrets (`sasl.password`, `ssl.key.password`, ...) never appear in `description` or in
/// any error this type throws.
public struct KafkaConfiguration: Sendable, CustomStringConvertible {
    public private(set) var properties: [String: String]

    public init(_ properties: [String: String] = [:]) {
        self.properties = properties
    }

    /// A configuration that reaches `bootstrapServers`, with `properties` on top.
    public init(bootstrapServers: String, _ properties: [String: String] = [:]) {
        self.properties = properties
        if properties["bootstrap.servers"] == nil {
            self.properties["bootstrap.servers"] = bootstrapServers
        }
    }

    public subscript(key: String) -> String? {
        get { properties[key] }
        set { properties[key] = newValue }
    }

    /// Sets `key` to `value` only where the caller has not set it.
    public mutating func setDefault(_ key: String, _ value: String) {
        if properties[key] == nil { properties[key] = value }
    }

    /// These properties with `other` laid on top.
    public func merging(_ other: [String: String]) -> KafkaConfiguration {
        KafkaConfiguration(properties.merging(other) { _, new in new })
    }

    /// Parses `key=value` (the form of kcat's `-X`).
    public static func parseProperty(_ text: String) throws -> (key: String, value: String) {
        guard let eq = text.firstIndex(of: "="), eq != text.startIndex else {
            throw KafkaError(.configuration, "expected key=value, got '\(text)'", context: "kafka property")
        }
        return (String(text[..<eq]), String(text[text.index(after: eq)...]))
    }

    /// A property's value as given on a command line: `@PATH` reads it from the file at
    /// PATH (one trailing newline dropped), so that a secret need not sit in the process
    /// list, where any local user reads it; anything else is the value itself.
    public static func resolveValue(_ value: String, key: String) throws(KafkaError) -> String {
        guard value.hasPrefix("@") else { return value }
        let path = String(value.dropFirst())
        guard !path.isEmpty else {
            throw KafkaError(.configuration, "'@' must be followed by the path of a file holding the value", context: "kafka property '\(key)'")
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw KafkaError(.configuration, "cannot read \(path) (no such file, or not readable)", context: "kafka property '\(key)'")
        }
        guard var text = String(data: data, encoding: .utf8) else {
            throw KafkaError(.configuration, "\(path) is not UTF-8 text", context: "kafka property '\(key)'")
        }
        if text.hasSuffix("\r\n") { text.removeLast(2) } else if text.hasSuffix("\n") { text.removeLast() }
        return text
    }

    /// Reads a properties file in the form Kafka's own clients take (`client.properties`):
    /// one `key=value` a line (spaces around `=` ignored), blank lines and lines starting
    /// with `#` or `!` skipped. A malformed line is an error naming the file and line; a
    /// value is never echoed, since the file is where secrets go.
    public static func readPropertiesFile(_ path: String) throws(KafkaError) -> [String: String] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw KafkaError(.configuration, "cannot read it (no such file, or not readable)", context: "properties file \(path)")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw KafkaError(.configuration, "not UTF-8 text", context: "properties file \(path)")
        }
        var out: [String: String] = [:]
        for (index, raw) in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).enumerated() {
            let line = raw.trimmingCharacters(in: .whitespacesAndNewlines)
            if line.isEmpty || line.hasPrefix("#") || line.hasPrefix("!") { continue }
            guard let eq = line.firstIndex(of: "=") else {
                throw KafkaError(.configuration, "line \(index + 1): expected key=value", context: "properties file \(path)")
            }
            let key = line[..<eq].trimmingCharacters(in: .whitespaces)
            guard !key.isEmpty else {
                throw KafkaError(.configuration, "line \(index + 1): a property needs a name before '='", context: "properties file \(path)")
            }
            out[key] = line[line.index(after: eq)...].trimmingCharacters(in: .whitespaces)
        }
        return out
    }

    /// The prefix of environment variables that set properties: `RECSTREAM_KAFKA_SASL_PASSWORD`
    /// sets `sasl.password` (the rest of the name lowercased, `_` read as `.`).
    public static let environmentPrefix = "RECSTREAM_KAFKA_"

    /// The properties set by `environment`'s `RECSTREAM_KAFKA_*` variables.
    public static func environmentProperties(_ environment: [String: String]) -> [String: String] {
        var out: [String: String] = [:]
        for (name, value) in environment where name.hasPrefix(environmentPrefix) && name.count > environmentPrefix.count {
            out[name.dropFirst(environmentPrefix.count).lowercased().replacingOccurrences(of: "_", with: ".")] = value
        }
        return out
    }

    /// True for keys whose values must never be printed.
    public static func isSecret(_ key: String) -> Bool {
        let k = key.lowercased()
        return k.contains("password") || k.contains("secret") || k.hasSuffix(".pem")
            || k == "sasl.oauthbearer.config" || k.hasSuffix("ssl.key.location")
            || k.contains("credential")
    }

    public var description: String {
        properties.keys.sorted().map { key in
            "\(key)=\(Self.isSecret(key) ? "[redacted]" : properties[key]!)"
        }.joined(separator: " ")
    }

    /// A new `rd_kafka_conf_t` holding these properties; the caller owns it.
    func makeConf() throws(KafkaError) -> OpaquePointer {
        let conf = rd_kafka_conf_new()!
        var errstr = [CChar](repeating: 0, count: 512)
        for key in properties.keys.sorted() {
            let result = rd_kafka_conf_set(conf, key, properties[key]!, &errstr, errstr.count)
            if result != RD_KAFKA_CONF_OK {
                rd_kafka_conf_destroy(conf)
                let reason = String(decoding: errstr.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
                let shown = Self.isSecret(key) ? "[redacted]" : properties[key]!
                throw KafkaError(.configuration, reason.isEmpty ? "rejected value '\(shown)'" : reason,
                                 context: "kafka property '\(key)'")
            }
        }
        rd_kafka_conf_set_log_cb(conf) { _, level, facility, message in
            guard let facility, let message else { return }
            let fac = String(cString: facility), text = String(cString: message)
            // Properties given once for every client (-X, kafka.properties) include some
            // that only producers or only consumers know; the other kind warns, uselessly.
            if fac == "CONFWARN" && text.contains("will be ignored by this") { return }
            let line = "librdkafka \(level) \(fac): \(text)\n"
            _ = line.withCString { write(2, $0, strlen($0)) }
        }
        return conf
    }
}

/// Creates a client from a conf that this function takes ownership of.
func makeClient(_ type: rd_kafka_type_t, conf: OpaquePointer, context: String) throws(KafkaError) -> OpaquePointer {
    var errstr = [CChar](repeating: 0, count: 512)
    guard let handle = rd_kafka_new(type, conf, &errstr, errstr.count) else {
        rd_kafka_conf_destroy(conf)
        throw KafkaError(.client, cString(errstr), context: context)
    }
    return handle
}

func cString(_ buffer: [CChar]) -> String {
    String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}
