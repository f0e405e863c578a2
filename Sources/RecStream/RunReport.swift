import Experiment
import Foundation
import RecCore
import Report

/// How a run went, apart from its results: where it ran and how fast. Never part of a
/// determinism comparison.
public struct RunInfo: Sendable {
    public var bootstrapServers: String
    public var embedded: Bool
    public var partitions: Int
    public var setupSeconds: Double
    /// Building the world: catalog, users, lifelong histories.
    public var populationSeconds: Double
    public var runSeconds: Double
    public var messagesPerSecond: Double
    public var phases: PhaseTimings
}

/// What `recstream run` writes: the results (a function of scenario and seed) and, in a
/// section of its own, the run's transport and timings.
public struct RunReport: Sendable {
    public var results: ExperimentResults
    public var run: RunInfo

    public var json: JSONValue {
        [
            "recstream": [
                "version": .string(recstreamVersion), "reportVersion": .integer(ReportDocument.version),
                "wireVersion": .integer(Int64(Wire.version)),
            ],
            "results": results.json,
            "run": [
                "brokers": .string(run.embedded ? "embedded" : run.bootstrapServers),
                "partitions": .integer(Int64(run.partitions)),
                "setupSeconds": .number(run.setupSeconds),
                "populationSeconds": .number(run.populationSeconds),
                "runSeconds": .number(run.runSeconds),
                "messagesPerSecond": .number(run.messagesPerSecond),
                "phaseSeconds": [
                    "requests": .number(run.phases.requests.seconds), "serve": .number(run.phases.serve.seconds),
                    "respond": .number(run.phases.respond.seconds), "train": .number(run.phases.train.seconds),
                ],
            ],
        ]
    }

    /// Writes report.json, report.html and a per-tick CSV per arm into `directory`
    /// (created if missing); returns the paths, report.json first.
    @discardableResult
    public func write(to directory: String) throws -> [String] {
        do {
            return try ReportFiles.write(document, to: directory, json: true)
        } catch {
            throw RunError(error.description)
        }
    }

    /// The report as `recstream report` reads it back.
    public var document: ReportDocument { ReportDocument(built: json) }
}
