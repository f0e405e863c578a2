import Experiment
import Foundation
import Histogram
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
    /// Per arm: how long serving a request took (retrieve, score, build the slate).
    public var serveLatency: [ServeLatency] = []

    public init(bootstrapServers: String, embedded: Bool, partitions: Int, setupSeconds: Double, populationSeconds: Double,
                runSeconds: Double, messagesPerSecond: Double, phases: PhaseTimings, serveLatency: [ServeLatency] = []) {
        self.bootstrapServers = bootstrapServers
        self.embedded = embedded
        self.partitions = partitions
        self.setupSeconds = setupSeconds
        self.populationSeconds = populationSeconds
        self.runSeconds = runSeconds
        self.messagesPerSecond = messagesPerSecond
        self.phases = phases
        self.serveLatency = serveLatency
    }
}

/// One arm's serving latency, from an HDR histogram of every request (3 significant digits).
public struct ServeLatency: Sendable {
    public var arm: String
    public var requests: Int
    /// Nanoseconds at the 50th, 99th and 99.9th percentiles, and the largest.
    public var p50, p99, p999, max: UInt64

    init(arm: String, histogram h: Histogram<UInt64>) {
        self.arm = arm
        requests = Int(h.totalCount)
        p50 = h.totalCount > 0 ? h.valueAtPercentile(50) : 0
        p99 = h.totalCount > 0 ? h.valueAtPercentile(99) : 0
        p999 = h.totalCount > 0 ? h.valueAtPercentile(99.9) : 0
        max = h.totalCount > 0 ? h.max : 0
    }

    /// "3.1 / 9.8 / 21 µs"
    public var summary: String {
        func us(_ ns: UInt64) -> String {
            let u = Double(ns) / 1000
            return u >= 100 ? String(format: "%.0f", u) : u >= 10 ? String(format: "%.1f", u) : String(format: "%.2f", u)
        }
        return "\(us(p50)) / \(us(p99)) / \(us(p999)) µs"
    }
}

/// What `recstream run` writes: the results (a function of scenario and seed) and, in a
/// section of its own, the run's transport and timings.
public struct RunReport: Sendable {
    public var results: ExperimentResults
    public var run: RunInfo

    public init(results: ExperimentResults, run: RunInfo) {
        self.results = results
        self.run = run
    }

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
                    "population": .number(run.phases.population.seconds), "kafka": .number(run.phases.kafka.seconds),
                    "serve": .number(run.phases.serve.seconds), "train": .number(run.phases.train.seconds),
                    "statistics": .number(run.phases.statistics.seconds),
                ],
                "serveLatencyMicroseconds": .array(run.serveLatency.map { l in
                    [
                        "arm": .string(l.arm), "requests": .integer(Int64(l.requests)),
                        "p50": .number(Double(l.p50) / 1000), "p99": .number(Double(l.p99) / 1000),
                        "p999": .number(Double(l.p999) / 1000), "max": .number(Double(l.max) / 1000),
                    ]
                }),
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
