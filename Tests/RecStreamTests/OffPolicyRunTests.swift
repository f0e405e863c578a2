import Foundation
import Testing
@testable import Experiment
@testable import RecCore
@testable import RecStream
@testable import Scenario
@testable import Server

@Suite("Off-policy evaluation in runs", .serialized)
struct OffPolicyRunTests {
    @Test("each logged top item is joined with the click on it, and only that")
    func join() {
        func record(_ user: UserID, _ sequence: UInt32) -> OffPolicyRecord {
            var r = OffPolicyRecord(user: user, sequence: sequence, loggingPropensity: 0.5, predictedClick: 0.1, viewSecondsPerClick: 10)
            r.targetProbability[0] = 0.5  // the logging policy itself: weight 1
            r.targetPredictedClick[0] = 0.1
            return r
        }
        func click(_ user: UserID, _ sequence: UInt32, position: UInt8, seconds: Float) -> Feedback {
            Feedback(RecordHeader(arm: 0, tick: 0, user: user, sequence: sequence), event: .click, position: position, item: 1, shownTick: 0, viewSeconds: seconds)
        }
        let log = [record(1, 0), record(2, 0), record(2, 1), record(3, 0)]
        let feedback = [
            click(2, 0, position: 0, seconds: 30), click(2, 1, position: 1, seconds: 50), click(3, 0, position: 0, seconds: 12),
            click(4, 0, position: 0, seconds: 99),  // a request this arm did not log
        ]
        var comparisons = [OffPolicyComparison(logging: 0, target: 1)]
        estimateOffPolicy(log: log, feedback: feedback, into: &comparisons)
        #expect(comparisons[0].clicks.count == 4)
        #expect(comparisons[0].clicks.ips.estimate == 0.5)  // 2 top-slot clicks in 4 slates
        #expect(comparisons[0].viewSeconds.ips.estimate == 42.0 / 4)
        #expect(comparisons[0].clicks.meanWeight == 1)
    }

    @Test("arms that differ in policy only are evaluated on each other's logs, after the warm-up")
    func pairs() throws {
        var s = try smallScenario()
        s.experiment.warmupTicks = 2
        // Arms 2 (epsilon-greedy) and 3 (softmax) explore; make them alike but for the policy.
        s.arms[3].retrieval = s.arms[2].retrieval
        s.arms[3].ranking = s.arms[2].ranking
        s.arms[3].candidates = s.arms[2].candidates
        #expect(offPolicyTargets(s) == [[], [], [3], [2]])
        let r = try LockstepRun(scenario: s).run().results
        #expect(r.offPolicy.map { [$0.logging, $0.target] } == [[2, 3], [3, 2]])
        for c in r.offPolicy {
            // One logged slate per request of the logging arm after the warm-up.
            #expect(c.clicks.count == r.arms[c.logging].topSlot.requests)
            #expect(c.clicks.ips.estimate.isFinite && c.clicks.doublyRobust.standardError > 0)
        }
        guard case .array(let rows)? = r.json["offPolicy"] else {
            Issue.record("no offPolicy in the report")
            return
        }
        #expect(rows.count == 2)
        #expect(rows[0]["clicks"]?["dr"]?["covers"] != nil && rows[0]["viewSeconds"]?["measured"]?["value"] != nil)
        #expect(r.table(color: false).contains("Off-policy: each policy's top-slot click rate"))
    }
}
