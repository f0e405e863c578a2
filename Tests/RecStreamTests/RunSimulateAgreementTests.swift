import Attach
import Experiment
import Foundation
import Kafka
import RecCore
import RecStream
import Scenario
import Testing

/// `run` and `simulate` feed one `ExperimentLedger`; with arms whose serving does not depend
/// on what they learned (nor on when a model update lands), the two must agree exactly.
@Suite("Run and simulate agree", .serialized)
struct RunSimulateAgreementTests {
    /// Three arms that do not learn: random retrieval and random scores under three
    /// policies (so the off-policy joins run too), a warm-up the control serves, items that
    /// arrive and retire (the servers' catalog follows the ticks), purchases that land a
    /// tick late.
    static let scenarioText = """
        {"name": "agree", "seed": 11, "ticks": 7,
         "population": {"users": 400, "requestProbability": 0.6, "slateSize": 5, "purchaseDelayTicks": 1,
                        "history": {"median": 30, "max": 120}},
         "catalog": {"items": 300, "topics": 12, "topCategories": 4, "subcategories": 3, "arrivalsPerTick": 3, "retireProbability": 0.02},
         "arms": [{"name": "random", "share": 0.4, "candidates": 20},
                  {"name": "epsilon", "share": 0.3, "candidates": 20, "policy": {"type": "epsilon-greedy", "epsilon": 0.3}},
                  {"name": "softmax", "share": 0.3, "candidates": 20, "policy": {"type": "softmax", "temperature": 0.5}}],
         "experiment": {"control": "random", "warmupTicks": 2, "regretSample": 0.5},
         "kafka": {"topicPrefix": "agree"}}
        """

    /// The results without the message counts (each mode counts its own traffic) and the
    /// off-policy estimates (a simulation has no serving logs to join).
    static func comparable(_ results: ExperimentResults) -> String {
        guard case .object(var o) = results.json else { return "" }
        o["messages"] = nil
        o["offPolicy"] = nil
        return JSONValue.object(o).rendered()
    }

    @Test("simulate against serve roles (every request answered) gives run's per-arm results")
    func agree() throws {
        let scenario = try Scenario.decode(Self.scenarioText)
        let run = try LockstepRun(scenario: scenario).run().results
        #expect(run.arms.allSatisfy { $0.totalRequests > 0 && $0.totalClicks > 0 && $0.regret.samples > 0 })
        #expect(!run.offPolicy.isEmpty)

        let broker = try EmbeddedBroker()
        let topics = scenario.kafka.topics
        for topic in topics.attach { try broker.createTopic(topic, partitions: 3) }
        let properties = broker.clientConfiguration.properties
        let servers = try scenario.arms.map { arm in
            var o = StreamServer.Options(requestsTopic: topics.requests, recommendationsTopic: topics.recommendations,
                                         deadLetterTopic: topics.deadLetter, modelTopic: nil, groupID: "serve-\(arm.name)",
                                         properties: properties)
            o.commitEverySeconds = 0.2
            return try StreamServer(scenario: scenario, arm: arm.name, options: o)
        }
        let stop = Flag()
        let threads = servers.map { ServeThread($0, until: stop) }
        var options = StreamSimulator.Options(topics: topics, properties: properties, ticks: scenario.ticks)
        options.answerTimeoutSeconds = 30
        let simulator = StreamSimulator(scenario: scenario, options: options)
        let simulated = Result { try simulator.run() }
        stop.set()
        var served = 0
        for thread in threads {
            #expect(thread.done.wait(timeout: .now() + 60) == .success, "a server did not stop")
            served += (try thread.result?.get().served) ?? 0
        }
        let counters = simulator.counters
        #expect(counters.requests > 0 && counters.answered == counters.requests && served == counters.requests)
        #expect(counters.lateSlates == 0 && counters.duplicateSlates == 0 && counters.badSlates == 0)

        let simulatedResults = try simulated.get().results
        #expect(Self.comparable(simulatedResults) == Self.comparable(run))
        #expect(simulatedResults.arms.map(\.totalRequests) == run.arms.map(\.totalRequests))
        #expect(simulatedResults.offPolicy.isEmpty, "a simulation estimated other policies without the servers' logs")
    }
}

/// A server on a thread of its own until `stop` is set. (@unchecked: the server runs on
/// the thread alone, and `result` is read only after `done` is signalled.)
final class ServeThread: @unchecked Sendable {
    let done = DispatchSemaphore(value: 0)
    let server: StreamServer
    let stop: Flag
    var result: Result<StreamServer.Counters, any Error>?
    init(_ server: StreamServer, until stop: Flag) {
        self.server = server
        self.stop = stop
        Thread { [self] in
            result = Result { try self.server.run(shouldStop: { self.stop.isSet }) }
            done.signal()
        }.start()
    }
}
