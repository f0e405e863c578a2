import CRdKafka
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
