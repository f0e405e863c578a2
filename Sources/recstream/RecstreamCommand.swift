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
}

/// Exit codes, as the README documents them.
enum Exit {
    static let runtimeFailure = ExitCode(1)
    static let badInput = ExitCode(2)
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

    /// The properties, or the reason they are malformed printed and exit 2.
    func parsedOrExit() throws -> [String: String] {
        do {
            return try parsed()
        } catch {
            printError("error: \(error)")
            throw Exit.badInput
        }
    }
}

/// `body`'s value, or its error printed and exit 2 (bad input: an arm the role cannot
/// take, a mapping that does not read, ...).
func orBadInput<T>(_ body: () throws -> T) throws -> T {
    do {
        return try body()
    } catch {
        printError("error: \(error)")
        throw Exit.badInput
    }
}

/// Where the report goes: --out, else the scenario's output.directory (nil: no files).
/// A directory that cannot be written is bad input, found before anything runs.
func reportDirectory(_ out: String?, _ s: Scenario) throws -> String? {
    if out?.isEmpty == true {
        printError("error: --out must not be empty")
        throw Exit.badInput
    }
    guard let directory = out ?? s.output.directory else { return nil }
    try orBadInput { try ReportFiles.checkWritable(directory) }
    return directory
}

/// The scenario at `path`, or every problem with it printed (with JSON paths) and exit 2.
func loadScenario(_ path: String) throws -> Scenario {
    do {
        return try Scenario.load(path: path)
    } catch {
        printError(error.description)
        throw Exit.badInput
    }
}
