import Foundation
import Testing
@testable import RecCore
@testable import Scenario

@Suite("Arm assignment and the warm-up rule")
struct ArmAssignmentTests {
    @Test("the first users' arms stay fixed across builds")
    func pinned() {
        // From an independent Python implementation of StableHash.unit against the
        // cumulative shares: a change here reshuffles every scenario's users.
        let a = ArmAssignment(users: 12, shares: [0.5, 0.3, 0.2], salt: "exp")
        #expect(a.arm == [1, 0, 0, 0, 0, 2, 0, 2, 0, 0, 0, 2])
        // Slots are dense within each arm, in user order.
        #expect(a.slot == [0, 0, 1, 2, 3, 0, 4, 1, 5, 6, 7, 2])
        #expect(a.armSizes == [8, 1, 3])
    }

    @Test("arms get their shares of users, within a binomial bound")
    func shares() {
        let users = 200_000
        let shares = [0.5, 0.3, 0.15, 0.05]
        let a = ArmAssignment(users: users, shares: shares, salt: "shares")
        #expect(a.armSizes.reduce(0, +) == users)
        for (arm, share) in shares.enumerated() {
            // Four standard deviations of a binomial count: fails by chance once in ~16,000.
            let sd = (Double(users) * share * (1 - share)).squareRoot()
            #expect(abs(Double(a.armSizes[arm]) - Double(users) * share) < 4 * sd, "arm \(arm): \(a.armSizes[arm]) users")
        }
        // Shares need not sum to 1: they are relative.
        let b = ArmAssignment(users: users, shares: [2, 2], salt: "shares")
        #expect(abs(Double(b.armSizes[0]) - Double(users) / 2) < 4 * (Double(users) / 4).squareRoot())
    }

    @Test("the control serves everyone in the warm-up; after it each arm serves its own")
    func warmupRule() throws {
        var s = try Scenario.decode(#"{"name": "w", "ticks": 6, "arms": [{"name": "a", "share": 0.4}, {"name": "b", "share": 0.3}, {"name": "c", "share": 0.3}], "experiment": {"control": "b", "warmupTicks": 2}}"#)
        #expect(s.controlArm == 1)
        for arm in 0..<3 {
            #expect(s.servingArm(assigned: arm, tick: 0) == 1)
            #expect(s.servingArm(assigned: arm, tick: 1) == 1)
            #expect(s.servingArm(assigned: arm, tick: 2) == arm)
            for learner in 0..<3 {
                #expect(s.learns(learner, fromAssigned: arm, tick: 1))
                #expect(s.learns(learner, fromAssigned: arm, tick: 2) == (learner == arm))
            }
        }
        s.experiment.warmupTicks = 0
        #expect(!s.isWarmup(0))
        #expect(s.servingArm(assigned: 2, tick: 0) == 2)
    }
}
