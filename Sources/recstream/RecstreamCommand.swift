import ArgumentParser
import Foundation
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
        subcommands: [Run.self, ReportCommand.self, Offline.self, Validate.self, Schema.self, Broker.self, Simulate.self, Serve.self, Train.self, Produce.self, Bench.self]
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

/// `-X key=value` options, as kcat takes them.
struct KafkaPropertyOptions: ParsableArguments {
    @Option(name: .customShort("X"), help: ArgumentHelp("A librdkafka property for every client, as with kcat (repeatable).", valueName: "key=value"))
    var properties: [String] = []

    func parsed() throws -> [String: String] {
        var out: [String: String] = [:]
        for text in properties {
            guard let eq = text.firstIndex(of: "="), eq != text.startIndex else {
                throw ValidationError("-X expects key=value, got '\(text)'")
            }
            out[String(text[..<eq])] = String(text[text.index(after: eq)...])
        }
        return out
    }

    /// The properties, or why they are malformed as bad input.
    func parsedOrExit() throws -> [String: String] {
        do {
            return try parsed()
        } catch {
            throw BadInput("\(error)")
        }
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
