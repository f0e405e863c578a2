import Dispatch
import Experiment
import Foundation
import Histogram
import Kafka
import Models
import Population
import RecCore
import Scenario
import Server
import Trainer

/// Overrides of a scenario's values from the command line.
public struct RunOptions: Sendable {
    public var seed: UInt64?
    public var partitions: Int?
    public var brokers: String?
    /// librdkafka properties laid over the scenario's `kafka.properties` (`-X key=value`).
    public var properties: [String: String] = [:]
    public var progress: Bool?
    /// Threads the population steps users on (nil: all cores). Results do not depend on it.
    public var threads: Int?
    /// Write the latent state (items; each user's interests each tick) as JSON lines here.
    public var truthPath: String?
    public init() {}

    public func applied(to scenario: Scenario) -> Scenario {
        var s = scenario
        if let seed { s.seed = seed }
        if let partitions { s.kafka.partitions = partitions }
        if let brokers { s.kafka.brokers = brokers }
        s.kafka.properties.merge(properties) { _, new in new }
        if let progress { s.output.progress = progress }
        return s
    }
}

/// Runs a scenario in lockstep (shared/DESIGN.md section 1) over Kafka: tick t's requests
/// are all answered, and its feedback all applied, before tick t+1 starts; within a tick,
/// work is ordered by (user, sequence), never by arrival. So the results are a function of
/// (scenario, seed) alone, whatever the partition count or timing.
public final class LockstepRun {
    public let scenario: Scenario
    public var options = RunOptions()
    let embedded: EmbeddedBroker?
    /// Called at the start of every tick (tests use it to inject faults).
    public var onTick: ((Tick) -> Void)?
    /// Called after every tick.
    public var onProgress: ((RunProgress) -> Void)?

    /// - Parameter broker: an embedded broker to run on; nil starts one when the scenario
    ///   names no brokers.
    public init(scenario: Scenario, broker: EmbeddedBroker? = nil) throws {
        self.scenario = scenario
        if let broker {
            embedded = broker
        } else if scenario.kafka.brokers == nil {
            embedded = try EmbeddedBroker()
        } else {
            embedded = nil
        }
    }

    public var bootstrapServers: String { embedded?.bootstrapServers ?? scenario.kafka.brokers! }

    public func run() throws -> RunReport {
        let started = ContinuousClock.now
        let s = scenario
        let base = KafkaConfiguration(bootstrapServers: bootstrapServers).merging(s.kafka.properties)
        let partitions = try provisionTopics(base, topics: s.kafka.topics)
        let transport = try LockstepTransport(scenario: s, base: base, partitions: partitions)
        let setupDone = ContinuousClock.now
        let loop = try LockstepLoop(scenario: s, options: options, transport: transport)
        let populationReady = ContinuousClock.now

        for t in 0..<s.ticks {
            let tick = Tick(t)
            onTick?(tick)
            try loop.run(tick)
            onProgress?(RunProgress(tick: t, ticks: s.ticks, messages: transport.received))
            if loop.ledger.stoppedAfter != nil { break }  // experiment.stopWhen: decided
        }
        try transport.producer.flush(timeoutMilliseconds: Int32(s.kafka.stallTimeoutSeconds * 1000))
        let finished = ContinuousClock.now

        let runSeconds = (finished - populationReady).seconds
        var report = RunReport(
            results: loop.results(),
            run: RunInfo(bootstrapServers: bootstrapServers, embedded: embedded != nil, partitions: partitions[s.kafka.topics.requests]!,
                         setupSeconds: (setupDone - started).seconds, populationSeconds: (populationReady - setupDone).seconds,
                         runSeconds: runSeconds,
                         messagesPerSecond: Double(transport.received) / max(runSeconds, 1e-9), phases: loop.timings,
                         serveLatency: zip(s.arms, loop.latency).map { ServeLatency(arm: $0.name, histogram: $1) }))
        report.run.transientErrors = transport.transientErrors
        return report
    }

    /// Creates the run's topics (on the embedded broker, or through the admin API) and
    /// returns each topic's partition count as the cluster reports it.
    func provisionTopics(_ base: KafkaConfiguration, topics: Topics) throws -> [String: Int] {
        let k = scenario.kafka
        let timeoutMs = Int32(min(k.stallTimeoutSeconds, 30) * 1000)
        let admin = try KafkaAdmin(configuration: base)
        if let embedded {
            for topic in topics.all { try embedded.createTopic(topic, partitions: k.partitions) }
        } else {
            do {
                _ = try admin.metadata(timeoutMilliseconds: timeoutMs)
            } catch {
                throw RunError("cannot reach Kafka at \(bootstrapServers) (waited \(format(seconds: Double(timeoutMs) / 1000))): \(error)")
            }
            do {
                try admin.createTopics(topics.all.map { NewTopic($0, partitions: k.partitions, replicationFactor: k.replicationFactor) },
                                       timeoutMilliseconds: timeoutMs)
            } catch {
                // Some clusters (the embedded broker among them) lack CreateTopics but
                // create topics on a metadata request; the partition count is then theirs.
                for topic in topics.all {
                    let requested = try? admin.requestTopic(topic, timeoutMilliseconds: timeoutMs)
                    guard let metadata = requested ?? nil, metadata.error == nil else {
                        throw RunError("cannot create topic \"\(topic)\" on \(bootstrapServers): \(error); create the topics first (e.g. recstream broker --topics)")
                    }
                }
            }
        }
        // Wait until every topic shows in the metadata with its partitions.
        let deadline = ContinuousClock.now + .milliseconds(Int64(timeoutMs))
        while true {
            let md = try admin.metadata(timeoutMilliseconds: timeoutMs)
            var counts: [String: Int] = [:]
            for topic in topics.all {
                if let t = md.topic(topic), t.error == nil, t.partitionCount > 0 { counts[topic] = t.partitionCount }
            }
            if counts.count == topics.all.count { return counts }
            if ContinuousClock.now > deadline {
                throw RunError("topics \(topics.all.filter { counts[$0] == nil }) did not appear on \(bootstrapServers) within \(format(seconds: Double(timeoutMs) / 1000))")
            }
            Thread.sleep(forTimeInterval: 0.05)
        }
    }
}

/// One tick's serving work for `concurrentPerform`. `@unchecked Sendable` because
/// iteration `arm` writes only `servers[arm]`, `slates[arm]` and the `starts` of its own
/// requests (each request belongs to one arm), reads the trainers only (training does not
/// run while serving), and the caller waits for every iteration.
struct ServeWork: @unchecked Sendable {
    let servers: UnsafeMutableBufferPointer<ArmServer>
    let slates: UnsafeMutableBufferPointer<[SlateEntry]>
    let starts: UnsafeMutableBufferPointer<(Int, Int)>
    let latency: UnsafeMutableBufferPointer<Histogram<UInt64>>
    let trainers: [ArmTrainer]
    let models: [ArmModels]
    let requests: [Request]
    let byArm: [[Int]]

    func serve(arm: Int) {
        slates[arm].removeAll(keepingCapacity: true)
        let trainer = trainers[arm], models = models[arm]
        let clock = ContinuousClock()
        for i in byArm[arm] {
            let start = slates[arm].count
            let began = clock.now
            servers[arm].serve(requests[i], statistics: trainer.statistics, models: models, into: &slates[arm])
            let elapsed = clock.now - began
            _ = latency[arm].record(UInt64(max(0, elapsed.components.seconds)) * 1_000_000_000 + UInt64(max(0, elapsed.components.attoseconds / 1_000_000_000)))
            starts[i] = (start, slates[arm].count - start)
        }
    }
}

/// One tick's training work for `concurrentPerform`. `@unchecked Sendable` because each
/// iteration touches only its own arm's trainer (and reads its own feedback array), and
/// the caller waits for all of them before anything else touches a trainer.
struct ArmWork: @unchecked Sendable {
    let trainers: [ArmTrainer]
    let feedback: [[Feedback]]
}

/// Appends JSON lines to a file (the `--export-truth` output).
final class TruthWriter {
    let handle: FileHandle
    let path: String

    init(path: String) throws {
        self.path = path
        guard FileManager.default.createFile(atPath: path, contents: nil), let handle = FileHandle(forWritingAtPath: path) else {
            throw RunError("cannot write \(path)")
        }
        self.handle = handle
    }

    deinit { try? handle.close() }

    func write(_ lines: [String]) throws {
        guard !lines.isEmpty else { return }
        do {
            try handle.write(contentsOf: Data((lines.joined(separator: "\n") + "\n").utf8))
        } catch {
            throw RunError("cannot write \(path): \(error.localizedDescription)")
        }
    }
}

/// How far a run has got, after a tick.
public struct RunProgress: Sendable {
    /// The tick just finished (from 0).
    public var tick: Int
    public var ticks: Int
    /// Messages consumed so far, over every topic.
    public var messages: Int
}
