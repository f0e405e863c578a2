import Foundation
import Testing
@testable import Kafka

@Suite("Kafka properties from files and the environment")
struct KafkaConfigurationTests {
    func temporaryFile(_ text: String) -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("recstream-props-\(UUID().uuidString)").path
        FileManager.default.createFile(atPath: path, contents: Data(text.utf8))
        return path
    }

    @Test("a properties file: key=value lines, spaces around '=' and comments ignored, '=' inside a value kept")
    func propertiesFile() throws {
        let path = temporaryFile("# cluster\n! also a comment\n\nsecurity.protocol = SASL_SSL\r\nsasl.jaas.config=a=b c\n  sasl.username=me  \n")
        defer { try? FileManager.default.removeItem(atPath: path) }
        #expect(try KafkaConfiguration.readPropertiesFile(path)
            == ["security.protocol": "SASL_SSL", "sasl.jaas.config": "a=b c", "sasl.username": "me"])
    }

    @Test("a malformed properties file names its line and never echoes a value")
    func malformedFile() throws {
        let path = temporaryFile("sasl.username=me\nsasl.password hunter2\n")
        defer { try? FileManager.default.removeItem(atPath: path) }
        #expect {
            try KafkaConfiguration.readPropertiesFile(path)
        } throws: { error in
            let text = "\(error)"
            return text.contains("properties file \(path)") && text.contains("line 2: expected key=value") && !text.contains("hunter2")
        }
        #expect { try KafkaConfiguration.readPropertiesFile(path + ".missing") } throws: { "\($0)".contains("cannot read it") }
    }

    @Test("-X key=@FILE reads the value from the file, one trailing newline dropped; other values are themselves")
    func valueFromFile() throws {
        let path = temporaryFile("hunter2\n")
        defer { try? FileManager.default.removeItem(atPath: path) }
        #expect(try KafkaConfiguration.resolveValue("@" + path, key: "sasl.password") == "hunter2")
        #expect(try KafkaConfiguration.resolveValue("plain", key: "sasl.username") == "plain")
        #expect { try KafkaConfiguration.resolveValue("@", key: "sasl.password") } throws: { "\($0)".contains("'@' must be followed by the path") }
        #expect { try KafkaConfiguration.resolveValue("@/nonexistent/pw", key: "sasl.password") } throws: {
            "\($0)".contains("kafka property 'sasl.password'") && "\($0)".contains("cannot read /nonexistent/pw")
        }
    }

    @Test("RECSTREAM_KAFKA_* variables set properties; other variables do not")
    func environment() {
        let env = ["RECSTREAM_KAFKA_SASL_PASSWORD": "hunter2", "RECSTREAM_KAFKA_": "x", "KAFKA_SASL_USERNAME": "no", "PATH": "/bin"]
        #expect(KafkaConfiguration.environmentProperties(env) == ["sasl.password": "hunter2"])
    }
}
