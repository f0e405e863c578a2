import ArgumentParser
import Foundation
import Kafka
import RecCore
import Report
import Scenario

@main
struct Recstream: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "recstream",
        abstract: "An online-learning streaming simulator for recommender systems.",
        discussion: """
            Exit codes: 0 success, 1 runtime failure (a broker away, a stalled run), \
            2 bad input (a malformed scenario, a bad option).
            """,
        version: recstreamVersion,
        subcommands: [Run.self, Calibrate.self, Power.self, ReportCommand.self, Offline.self, Validate.self, Schema.self, Broker.self, Simulate.self, Serve.self, Train.self, Produce.self, Bench.self]
    )

    /// The one place bad input becomes exit 2: a `BadInput` from any command, or a
    /// scenario that does not load (its errors, one per line, each with its JSON path).
    static func main() async {
        do {
            var command = try parseAsRoot()
            if var command = command as? any AsyncParsableCommand {
                try await command.run()
            } else {
                try command.run()
            }
        } catch let error as BadInput {
            printError("error: \(error)")
            exit(withError: Exit.badInput)
        } catch let error as ScenarioError {
            printError(error.description)
            exit(withError: Exit.badInput)
        } catch {
            exit(withError: error)
        }
    }
}

/// Exit codes, as the README documents them.
enum Exit {
    static let runtimeFailure = ExitCode(1)
    static let badInput = ExitCode(2)
}

/// Input recstream cannot take (a bad option, a mapping that does not read, an arm a role
/// cannot run): printed as "error: ..." and exit 2, by `Recstream.main` alone.
struct BadInput: Error, CustomStringConvertible {
    let description: String
    init(_ message: String) { description = message }
}

func printError(_ message: String) {
    FileHandle.standardError.write(Data((message.hasSuffix("\n") ? message : message + "\n").utf8))
}

/// librdkafka properties from the command line, a properties file and the environment.
/// Later sources win: the scenario's `kafka.properties`, then `--kafka-properties FILE`,
/// then `RECSTREAM_KAFKA_*` variables, then `-X`. Secrets belong in the file, the
/// environment or `-X key=@FILE`: a value typed after `-X` is in the process list.
struct KafkaPropertyOptions: ParsableArguments {
    @Option(name: .customShort("X"), help: ArgumentHelp(
        "A librdkafka property for every client, as with kcat (repeatable); key=@FILE reads the value from FILE.",
        valueName: "key=value"))
    var properties: [String] = []

    @Option(help: ArgumentHelp("A file of librdkafka properties, one key=value a line (# comments), as Kafka's client.properties.",
                               valueName: "file"))
    var kafkaProperties: String?

    /// The properties these options set, over `base` (the scenario's), with the warnings
    /// an operator should see (a secret typed on the command line).
    func resolved(over base: [String: String] = [:], environment: [String: String] = ProcessInfo.processInfo.environment)
        throws -> (properties: [String: String], warnings: [String])
    {
        var out = base, warnings: [String] = []
        if let kafkaProperties {
            out.merge(try KafkaConfiguration.readPropertiesFile(kafkaProperties)) { $1 }
        }
        out.merge(KafkaConfiguration.environmentProperties(environment)) { $1 }
        for text in properties {
            guard let (key, value) = try? KafkaConfiguration.parseProperty(text) else {
                throw ValidationError("-X expects key=value, got '\(text)'")
            }
            if KafkaConfiguration.isSecret(key) && !value.hasPrefix("@") {
                let variable = KafkaConfiguration.environmentPrefix + key.uppercased().replacingOccurrences(of: ".", with: "_")
                warnings.append("-X \(key): a secret on the command line is visible to every local user in the process list; "
                    + "give it as -X \(key)=@FILE, in --kafka-properties FILE, or in \(variable)")
            }
            out[key] = try KafkaConfiguration.resolveValue(value, key: key)
        }
        return (out, warnings)
    }

    /// The properties over `base`, or why they are malformed as bad input; warnings go to
    /// standard error.
    func parsedOrExit(over base: [String: String] = [:]) throws -> [String: String] {
        do {
            let (properties, warnings) = try resolved(over: base)
            for w in warnings { printError("warning: \(w)") }
            return properties
        } catch {
            throw BadInput("\(error)")
        }
    }
}

/// `--max-memory`: a scenario whose estimated memory is above it is refused before
/// anything is built (see `MemoryEstimate`).
struct MemoryLimitOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Refuse a scenario whose estimated memory is above this: bytes, or with K, M, G or T (default: this machine's physical memory).",
                               valueName: "size"))
    var maxMemory: String?

    /// The limit in bytes and how to name it, or why the option is malformed.
    func limit() throws -> (bytes: Double, name: String) {
        guard let maxMemory else {
            let physical = Double(ProcessInfo.processInfo.physicalMemory)
            return (physical, "\(MemoryEstimate.describe(bytes: physical)), this machine's physical memory (--max-memory)")
        }
        guard let bytes = MemoryEstimate.parseSize(maxMemory) else {
            throw BadInput("--max-memory must be a size such as 16G, 512M or 1000000 (bytes), got '\(maxMemory)'")
        }
        return (bytes, "--max-memory \(maxMemory)")
    }

    /// Why `s` does not fit `limit`, naming the parts and the knobs that drive them; nil
    /// when it fits.
    static func refusal(_ s: Scenario, source: String, limit: (bytes: Double, name: String)) -> String? {
        let (bytes, name) = limit
        let estimate = s.memoryEstimate
        guard estimate.totalBytes > bytes else { return nil }
        return "\(source): needs an estimated \(MemoryEstimate.describe(bytes: estimate.totalBytes)) of memory, above \(name); what drives it:\n"
            + estimate.breakdown.prefix(6).map { "  \($0)" }.joined(separator: "\n")
    }
}

/// `body`'s value, or its error as bad input (an arm the role cannot
/// take, a mapping that does not read, ...).
func orBadInput<T>(_ body: () throws -> T) throws -> T {
    do {
        return try body()
    } catch {
        throw BadInput("\(error)")
    }
}

/// Where the report goes: --out, else the scenario's output.directory (nil: no files).
/// A directory that cannot be written is bad input, found before anything runs.
func reportDirectory(_ out: String?, _ s: Scenario) throws -> String? {
    if out?.isEmpty == true {
        throw BadInput("--out must not be empty")
    }
    guard let directory = out ?? s.output.directory else { return nil }
    try orBadInput { try ReportFiles.checkWritable(directory) }
    return directory
}

/// The scenario at `path`, or every problem with it (with JSON paths), which `main` prints.
func loadScenario(_ path: String) throws(ScenarioError) -> Scenario {
    try Scenario.load(path: path)
}
