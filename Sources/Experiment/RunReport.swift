import Foundation
import RecCore

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
    /// Transient transport errors the clients saw and rode out (a broker down for a while,
    /// a leader that moved): the results do not depend on them.
    public var transientErrors = 0

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

    public init(arm: String, requests: Int, p50: UInt64, p99: UInt64, p999: UInt64, max: UInt64) {
        (self.arm, self.requests, self.p50, self.p99, self.p999, self.max) = (arm, requests, p50, p99, p999, max)
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
                "version": .string(recstreamVersion), "reportVersion": .integer(reportVersion),
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
                "transientErrors": .integer(Int64(run.transientErrors)),
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
}

/// Where the time of the loop went.
public struct PhaseTimings: Sendable {
    public init() {}
    /// The simulated users: requests, responses, the end of each tick.
    public var population = Duration.zero
    /// Kafka: encoding, producing, consuming, decoding and ordering every record.
    public var kafka = Duration.zero
    /// The arms' servers: retrieval, scoring, slates.
    public var serve = Duration.zero
    /// The arms' trainers, and servers taking in what they learned.
    public var train = Duration.zero
    /// The experiment's bookkeeping: metrics, regret against the oracle, off-policy logs.
    public var statistics = Duration.zero

    public var total: Duration { population + kafka + serve + train + statistics }
    /// Each phase's share of `total`, in the order population, kafka, serve, train, statistics.
    public var shares: [(name: String, share: Double)] {
        let t = max(total.seconds, 1e-12)
        return [("population", population.seconds / t), ("kafka", kafka.seconds / t), ("serve", serve.seconds / t),
                ("train", train.seconds / t), ("statistics", statistics.seconds / t)]
    }
}

/// Adds the time since the last lap to a phase.
public struct PhaseClock {
    var mark = ContinuousClock.now
    public init() {}
    public mutating func lap(_ phase: inout Duration) {
        let now = ContinuousClock.now
        phase += now - mark
        mark = now
    }
}

