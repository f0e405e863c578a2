import ArgumentParser
import Foundation
import RecCore
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

/// The scenario at `path`, or every problem with it printed (with JSON paths) and exit 2.
func loadScenario(_ path: String) throws -> Scenario {
    do {
        return try Scenario.load(path: path)
    } catch {
        printError(error.description)
        throw Exit.badInput
    }
}
