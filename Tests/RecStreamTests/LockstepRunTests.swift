import Foundation
import Testing
@testable import Kafka
@testable import RecCore
@testable import RecStream
@testable import Scenario
import Population
import Report
@testable import Experiment

/// A small world, quick to run, with all three policies in play.
func smallScenario(partitions: Int = 4, seed: UInt64 = 7, stall: Double = 30, prefix: String = "t") throws -> Scenario {
    try Scenario.decode("""
    {
      "name": "small", "seed": \(seed), "ticks": 8,
      "population": {"users": 300, "requestProbability": 0.6, "slateSize": 5, "purchaseDelayTicks": 1, "returnSensitivity": 0.3,
                     "history": {"median": 200, "max": 2000}, "positionBias": {"type": "cascade"}},
      "catalog": {"items": 400, "topCategories": 4, "subcategories": 3, "topics": 12, "arrivalsPerTick": 3, "retireProbability": 0.01},
      "arms": [
        {"name": "random", "share": 0.25, "candidates": 20},
        {"name": "dare", "share": 0.09, "candidates": 20, "ranking": {"type": "dare", "attentionDim": 4, "representationDim": 8,
         "topK": 5, "maxHistory": 30, "batchSize": 64}},
        {"name": "pop", "share": 0.33, "candidates": 40, "retrieval": {"type": "popularity", "explore": 0.5},
         "ranking": {"type": "popularity"}, "policy": {"type": "epsilon-greedy", "epsilon": 0.2}},
        {"name": "ctr", "share": 0.33, "candidates": 40, "ranking": {"type": "ctr"}, "policy": {"type": "softmax", "temperature": 0.5}}
      ],
      "kafka": {"partitions": \(partitions), "topicPrefix": "\(prefix)", "stallTimeoutSeconds": \(stall)}
    }
    """)
}

func results(_ scenario: Scenario, broker: EmbeddedBroker? = nil, threads: Int? = nil, onTick: ((Tick) -> Void)? = nil) throws -> String {
    try report(scenario, broker: broker, threads: threads, onTick: onTick).results.json.rendered()
}

func report(_ scenario: Scenario, broker: EmbeddedBroker? = nil, threads: Int? = nil, onTick: ((Tick) -> Void)? = nil) throws -> RunReport {
    let run = try LockstepRun(scenario: scenario, broker: broker)
    run.options.threads = threads
    run.onTick = onTick
    return try run.run()
}

/// A flag set from another thread (a fault injected by a timer).
final class Flag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    func set() { lock.withLock { value = true } }
    var isSet: Bool { lock.withLock { value } }
}

@Suite("Lockstep run", .serialized)
struct LockstepRunTests {
    @Test("same scenario and seed give identical results with 1 and 8 partitions")
    func deterministicAcrossPartitions() throws {
        let one = try results(smallScenario(partitions: 1))
        let eight = try results(smallScenario(partitions: 8))
        #expect(one == eight)
        #expect(try results(smallScenario(partitions: 3)) == one)
    }

    @Test("the population on 1 thread and on 4 gives identical results")
    func deterministicAcrossThreads() throws {
        #expect(try results(smallScenario(), threads: 1) == results(smallScenario(), threads: 4))
    }

    @Test("a different seed gives different results")
    func seedMatters() throws {
        #expect(try results(smallScenario(seed: 7)) != results(smallScenario(seed: 8)))
    }

    @Test("the report counts every message, and propensities and clicks add up")
    func accounting() throws {
        let s = try smallScenario()
        let report = try LockstepRun(scenario: s).run()
        let r = report.results
        let requests = r.arms.reduce(0) { $0 + $1.totalRequests }
        #expect(r.messages["requests"] == requests)
        #expect(r.messages["recommendations"] == requests)
        let impressions = r.arms.reduce(0) { $0 + $1.totalImpressions }
        #expect(impressions == requests * s.population.slateSize)
        let clicks = r.arms.reduce(0) { $0 + $1.totalClicks }
        let purchases = r.arms.reduce(0) { $0 + $1.totalPurchases }
        #expect(r.messages["feedback"] == impressions + clicks + purchases)
        #expect(r.messages["deadLetters"] == 0)
        #expect(r.arms.map(\.users).reduce(0, +) == s.population.users)
        for arm in r.arms { #expect(arm.series.count == s.ticks) }
        // The DARE arm evaluated its model on every tick it had impressions.
        let dare = r.modelEvaluations[1]
        #expect(dare.count == s.ticks)
        #expect(dare.reduce(0) { $0 + $1.samples } == r.arms[1].totalImpressions)
        #expect(r.modelEvaluations[0].isEmpty)
        #expect(report.run.partitions == 4 && report.run.embedded)
        // Every request's serving time went into its arm's latency histogram.
        #expect(report.run.serveLatency.map(\.requests) == r.arms.map(\.totalRequests))
        #expect(report.run.serveLatency.allSatisfy { $0.p50 > 0 && $0.p50 <= $0.p99 && $0.p99 <= $0.p999 && $0.p999 <= $0.max })
        for arm in r.arms {
            // About 5% of slates are checked against the oracle, which no slate beats.
            #expect(arm.regret.samples > 0 && arm.regret.samples < arm.totalRequests / 5)
            #expect(arm.regret.mean > 0 && arm.regret.shareOfOracle > 0 && arm.regret.shareOfOracle < 1)
            #expect(arm.perUser(.activeTicks).allSatisfy { $0 <= Double(s.ticks) })
            #expect(arm.perUser(.activeTicks).reduce(0, +) <= Double(arm.totalRequests))
        }
    }

    @Test("in the warm-up the control serves everyone: warm-up ticks do not depend on the treatments")
    func warmupIsControlOnly() throws {
        var s = try smallScenario()
        s.experiment.warmupTicks = 3
        let first = try LockstepRun(scenario: s).run().results
        s.arms[2].policy = .greedy
        s.arms[3].ranking = .random
        let second = try LockstepRun(scenario: s).run().results
        for (a, b) in zip(first.arms, second.arms) {
            #expect(a.series.prefix(3) == b.series.prefix(3), "\(a.name)")
            #expect(a.covariate(.clicks) == b.covariate(.clicks), "\(a.name)")
        }
        // After the split the changed arms behave differently.
        #expect(first.arms[3].series.suffix(5) != second.arms[3].series.suffix(5))
    }

    @Test("warm-up ticks become each user's covariate, and CUPED is reported")
    func warmupCovariate() throws {
        var s = try smallScenario()
        s.experiment.warmupTicks = 3
        let r = try LockstepRun(scenario: s).run().results
        for arm in r.arms {
            let covariate = try #require(arm.covariate(.impressions))
            #expect(covariate.count == arm.users)
            // Warm-up and experiment split the per-tick totals between them.
            #expect(Int(covariate.reduce(0, +)) == arm.series.prefix(3).reduce(0) { $0 + $1.impressions })
            #expect(arm.totalImpressions == arm.series.suffix(5).reduce(0) { $0 + $1.impressions })
            #expect(arm.warmupTicks == 3)
        }
        guard case .array(let arms)? = r.json["arms"], case .object(let treatment)? = arms.last else {
            Issue.record("no arms in the report")
            return
        }
        let cuped = treatment["perUser"]?["impressions"]?["cupedVsControl"]
        let reduction = try #require(cuped?["varianceReduction"]?.doubleValue)
        // A user's activity persists, so their warm-up impressions predict the rest.
        #expect(reduction > 0.2 && reduction < 1)
        #expect(treatment["perUser"]?["impressions"]?["pValueHolmOf"] == "cupedVsControl")
        #expect(r.table(color: false).contains("CUPED-adjusted by each user's warm-up ticks 0-2"))
    }

    @Test("a phase larger than a partition's log on the embedded broker (5 MiB) loses nothing")
    func phaseLargerThanTheLog() throws {
        // 30,000 slates of 10 in one tick: about 300,000 feedback records, some 18 MiB, on
        // one partition. Before the stages consumed while producing, the broker dropped
        // the phase's oldest records before the stage read them.
        let s = try Scenario.decode("""
        {"name": "big-phase", "seed": 3, "ticks": 1,
         "population": {"users": 30000, "requestProbability": 1, "activitySpread": 0, "slateSize": 10, "history": {"median": 5, "max": 50}},
         "catalog": {"items": 2000, "topics": 8, "arrivalsPerTick": 0},
         "arms": [{"name": "a", "share": 1, "candidates": 10}],
         "experiment": {"regretSample": 0},
         "kafka": {"partitions": 1, "topicPrefix": "big"}}
        """)
        let r = try LockstepRun(scenario: s).run().results
        #expect(r.arms[0].totalImpressions == r.arms[0].totalRequests * 10)
        #expect(r.arms[0].totalRequests > 29_000)
        #expect(r.messages["deadLetters"] == 0)
    }

    @Test("two-tower and SPARC arms learn and serve online, the same with 1 and 3 partitions")
    func towerArms() throws {
        func scenario(_ partitions: Int) throws -> Scenario {
            try Scenario.decode("""
            {"name": "towers", "seed": 4, "ticks": 5,
             "population": {"users": 300, "requestProbability": 0.6, "slateSize": 5, "history": {"median": 20, "max": 100}},
             "catalog": {"items": 400, "topCategories": 4, "subcategories": 3, "topics": 12, "arrivalsPerTick": 3},
             "arms": [
               {"name": "two-tower", "share": 0.5, "candidates": 40, "retrieval": {"type": "two-tower", "dim": 8, "batchSize": 64}, "ranking": {"type": "ctr"}},
               {"name": "sparc", "share": 0.5, "candidates": 40, "retrieval": {"type": "sparc", "dim": 8, "batchSize": 64, "codes": [16, 8], "interests": 3, "explore": 1}, "ranking": {"type": "ctr"}}
             ],
             "experiment": {"warmupTicks": 1},
             "kafka": {"partitions": \(partitions), "topicPrefix": "towers"}}
            """)
        }
        let one = try LockstepRun(scenario: scenario(1)).run().results
        let three = try LockstepRun(scenario: scenario(3)).run().results
        #expect(one.json.rendered() == three.json.rendered())
        for arm in one.arms {
            #expect(arm.totalClicks > 0 && arm.totalImpressions == arm.totalRequests * 5, "\(arm.name)")
        }
        // The SPARC arm reports its interests; clicks on what it retrieved count as first
        // engagements; the two-tower arm has none of this.
        let sparc = try #require(one.arms[1].interestSummary)
        #expect(sparc.codes == 16 && sparc.codesInUse > 1 && sparc.purity > 0 && sparc.purity <= 1)
        #expect(one.arms[1].firstEngagements > 0 && one.arms[1].discoveries <= one.arms[1].firstEngagements)
        #expect(one.arms[0].interestSummary == nil && one.arms[0].firstEngagements == 0)
        // The report follows 8 of the SPARC arm's users: their top 3 interests each tick.
        let trace = one.arms[1].interestTrace
        #expect(trace.count == 8 && trace.allSatisfy { $0.ticks.count == 5 })
        for t in trace {
            for top in t.ticks {
                #expect(top.count == 3 && top[0].probability >= top[1].probability && top[1].probability >= top[2].probability)
                #expect(top.allSatisfy { $0.probability > 0 && $0.probability <= 1 })
            }
        }
    }

    @Test("Poly and blend arms learn and serve online, score new items, the same with 1 and 3 partitions")
    func polyArms() throws {
        func scenario(_ partitions: Int) throws -> Scenario {
            try Scenario.decode("""
            {"name": "poly", "seed": 5, "ticks": 6,
             "population": {"users": 300, "requestProbability": 0.6, "slateSize": 5, "history": {"median": 30, "max": 100}},
             "catalog": {"items": 300, "topCategories": 4, "subcategories": 3, "topics": 12, "arrivalsPerTick": 20, "retireProbability": 0.02},
             "arms": [
               {"name": "poly", "share": 0.5, "candidates": 40, "ranking": {"type": "poly", "dim": 8, "userCodes": 4, "sessions": 3}},
               {"name": "blend", "share": 0.5, "candidates": 40,
                "ranking": {"type": "blend", "dim": 8, "userCodes": 4, "youngTicks": 3, "established": {"type": "twin", "dim": 4, "topK": 4, "maxHistory": 20}}}
             ],
             "experiment": {"warmupTicks": 1, "newItemTicks": 3},
             "kafka": {"partitions": \(partitions), "topicPrefix": "poly"}}
            """)
        }
        let run = try LockstepRun(scenario: scenario(1)).run()
        let one = run.results
        let three = try LockstepRun(scenario: scenario(3)).run().results
        #expect(one.json.rendered() == three.json.rendered())
        for arm in one.arms {
            #expect(arm.totalClicks > 0 && arm.totalImpressions == arm.totalRequests * 5, "\(arm.name)")
            // Items that arrived during the run were shown and clicked while young.
            #expect(arm.youngImpressions > 0 && arm.youngClicks > 0 && arm.youngCTR < 1, "\(arm.name)")
        }
        // Both models were evaluated every tick, before learning.
        for evaluations in one.modelEvaluations {
            #expect(evaluations.count == 6 && evaluations.allSatisfy { $0.samples > 0 && $0.auc > 0 && $0.auc < 1 })
        }
        #expect(one.table(color: false).contains("CTR of new items (< 3 ticks old)"))
    }

    @Test("a broker that goes down mid-run and comes back gives the same results")
    func brokerOutage() throws {
        let clean = try results(smallScenario(prefix: "clean"))
        let broker = try EmbeddedBroker()
        let down = Flag(), up = Flag()
        var ended: [ContinuousClock.Instant] = []
        let faulty = try report(smallScenario(prefix: "faulty"), broker: broker) { tick in
            ended.append(.now)
            guard tick == 3 else { return }
            do { try broker.setDown(broker: 1); down.set() } catch { Issue.record("setDown: \(error)") }
            DispatchQueue.global().asyncAfter(deadline: .now() + 1.5) {
                do { try broker.setUp(broker: 1); up.set() } catch { Issue.record("setUp: \(error)") }
            }
        }
        // The fault happened, and the run felt it (so equal results are not for want of one):
        // tick 4 sends only after the broker went down, so it cannot end before it came back.
        for _ in 0..<200 where !up.isSet { Thread.sleep(forTimeInterval: 0.01) }  // setUp returned, up.set() may be a moment behind
        #expect(down.isSet && up.isSet)
        #expect(ended.count == 8 && (ended[4] - ended[3]).seconds >= 1.4, "tick 4 took \((ended[4] - ended[3]).seconds) s")
        #expect(faulty.results.json.rendered().replacingOccurrences(of: "faulty", with: "clean") == clean)
    }

    @Test("injected produce and fetch errors do not change the results")
    func injectedErrors() throws {
        let clean = try results(smallScenario(prefix: "clean"))
        let broker = try EmbeddedBroker()
        let faulty = try results(smallScenario(prefix: "faulty"), broker: broker) { tick in
            guard tick == 2 else { return }
            do {
                try broker.injectErrors([KafkaErrorCode.notLeaderForPartition, KafkaErrorCode.requestTimedOut], for: .produce, broker: 1)
                try broker.injectErrors([KafkaErrorCode.notLeaderForPartition], for: .fetch, broker: 1)
                #expect(try broker.pendingErrors(for: .produce, broker: 1) == 2)
            } catch { Issue.record("injecting: \(error)") }
        }
        // Every injected error fired (so equal results are not for want of a fault).
        #expect(try broker.pendingErrors(for: .produce, broker: 1) == 0)
        #expect(try broker.pendingErrors(for: .fetch, broker: 1) == 0)
        #expect(faulty.replacingOccurrences(of: "faulty", with: "clean") == clean)
    }

    @Test("a broker that does not come back fails the run with where it got to")
    func brokerGone() throws {
        let broker = try EmbeddedBroker()
        let run = try LockstepRun(scenario: smallScenario(stall: 1.5), broker: broker)
        run.onTick = { tick in if tick == 2 { try? broker.setDown(broker: 1) } }
        do {
            _ = try run.run()
            Issue.record("the run completed with the broker down")
        } catch let error as RunError {
            // Either the flush or a delivery gives up first; both say where and why.
            #expect(error.description.hasPrefix("tick 2, requests: "), "\(error)")
            #expect(error.description.hasSuffix("the broker did not come back within kafka.stallTimeoutSeconds")
                        || error.description.contains("Message timed out (_MSG_TIMED_OUT)"), "\(error)")
        }
    }

    @Test("unreachable --brokers is a clear error after a bounded wait")
    func unreachableBrokers() throws {
        var s = try smallScenario(stall: 2)
        s.kafka.brokers = "127.0.0.1:1"
        let start = ContinuousClock.now
        do {
            _ = try LockstepRun(scenario: s).run()
            Issue.record("ran against a broker that does not exist")
        } catch let error as RunError {
            #expect(error.description.hasPrefix("cannot reach Kafka at 127.0.0.1:1 (waited 2 s)"))
        }
        #expect(ContinuousClock.now - start < .seconds(30))
    }
}

@Suite("Stage channel")
struct StageChannelTests {
    @Test("a message that does not decode goes to the dead-letter topic with the reason; the rest goes on")
    func deadLetters() throws {
        let broker = try EmbeddedBroker()
        for t in ["s", "dl"] { try broker.createTopic(t, partitions: 2) }
        let config = broker.clientConfiguration
        let producer = try KafkaProducer(configuration: config)
        let consumer = try KafkaConsumer(configuration: config.merging(["group.id": "x", "fetch.wait.max.ms": "1"]))
        let channel = try StageChannel(stage: "requests", topic: producer.topic("s"), consumer: consumer, start: [0: 0, 1: 0])
        var good = [UInt8](repeating: 0, count: Wire.requestSize)
        _ = good.withUnsafeMutableBytes { Wire.encode(Request(RecordHeader(arm: 0, tick: 0, user: 1, sequence: 0), slateSize: 3), into: $0) }
        let garbage: [UInt8] = [1, 1, 2, 3]
        for bytes in [good, garbage, good] {
            try bytes.withUnsafeBytes { try channel.send(producer, user: 1, $0) }
        }
        var decoded = 0
        try channel.drain(producer, deadLetterTopic: "dl", stallSeconds: 10, tick: 0) { (bytes) throws(WireError) in
            _ = try Wire.decodeRequest(bytes)
            decoded += 1
        }
        try producer.flush(timeoutMilliseconds: 5000)
        #expect(decoded == 2)
        #expect(channel.deadLetters == 1)

        let dl = try KafkaConsumer(configuration: config.merging(["group.id": "y", "fetch.wait.max.ms": "1"]))
        try dl.assign([(TopicPartition("dl", 0), offset: 0), (TopicPartition("dl", 1), offset: 0)])
        var letters: [[UInt8]] = []
        let deadline = Date().addingTimeInterval(10)
        while letters.isEmpty && Date() < deadline {
            try dl.consumeBatch(timeoutMilliseconds: 50) { batch in
                for m in batch { letters.append(Array(m.value)) }
            }
        }
        #expect(letters == [garbage])
    }
}
