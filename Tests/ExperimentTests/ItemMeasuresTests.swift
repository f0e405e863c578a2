import Testing
@testable import Experiment
@testable import RecCore

@Suite("Item-level measures")
struct ItemMeasuresTests {
    func impression(_ item: ItemID, tick: Tick = 0) -> Feedback {
        Feedback(RecordHeader(arm: 0, tick: tick, user: 0, sequence: 0), event: .impression, position: 0, item: item, shownTick: tick)
    }
    func click(_ item: ItemID, tick: Tick) -> Feedback {
        Feedback(RecordHeader(arm: 0, tick: tick, user: 0, sequence: 0), event: .click, position: 0, item: item, shownTick: tick, viewSeconds: 1)
    }

    @Test("exposure Gini: 0 for equal exposure, (n - 1) / n when one item takes everything")
    func gini() {
        var m = ArmMetrics(name: "a", users: 1, items: 4)
        for item in 0..<4 { for _ in 0..<5 { m.record(impression(ItemID(item)), slot: 0) } }
        #expect(m.exposureGini(items: 4) == 0)
        var one = ArmMetrics(name: "a", users: 1, items: 4)
        for _ in 0..<10 { one.record(impression(3), slot: 0) }
        #expect(one.exposureGini(items: 4) == 0.75)
        // Items never shown, beyond those the metrics have seen, count as zeros.
        #expect(one.exposureGini(items: 8) == 0.875)
        #expect(ArmMetrics(name: "a", users: 1, items: 4).exposureGini(items: 4).isNaN)
    }

    @Test("long-tail share counts impressions outside the head")
    func longTail() {
        var m = ArmMetrics(name: "a", users: 1, items: 4)
        for _ in 0..<3 { m.record(impression(0), slot: 0) }
        m.record(impression(2), slot: 0)
        #expect(m.longTailShare(head: [true, true, false, false]) == 0.25)
    }

    @Test("PV-N counts clicks inside each new item's window only, over items whose window ended")
    func newItems() {
        var m = ArmMetrics(name: "a", users: 1, items: 3, newItemTicks: 2)
        let born: [Int32] = [0, 3, 8]
        // Item 1, born at tick 3: two clicks in ticks 3-4, one at tick 5 (outside).
        m.record(click(1, tick: 3), slot: 0, itemBorn: 3)
        m.record(click(1, tick: 4), slot: 0, itemBorn: 3)
        m.record(click(1, tick: 5), slot: 0, itemBorn: 3)
        // Item 2, born at tick 8: its window is not over by tick 9 of a 9-tick run.
        m.record(click(2, tick: 8), slot: 0, itemBorn: 8)
        m.record(click(2, tick: 8), slot: 0, itemBorn: 8)
        #expect(m.newItemsReaching(2, born: born, eligible: 1..<8) == (1, 1))
        #expect(m.newItemsReaching(3, born: born, eligible: 1..<8) == (0, 1))
    }

    @Test("active ticks count each tick a user asked in once")
    func activeTicks() {
        var m = ArmMetrics(name: "a", users: 2, items: 1)
        m.recordRequest(slot: 0, tick: 0)
        m.recordRequest(slot: 0, tick: 0)
        m.recordRequest(slot: 0, tick: 2)
        #expect(m.perUser(.activeTicks) == [2, 0])
        #expect(m.perUser(.impressions) == [0, 0])
    }
}

@Suite("Interest measures")
struct InterestMeasuresTests {
    @Test("purity and NMI: 1 for codes that are the topics, 0 for codes that say nothing of them")
    func agreement() {
        let same = InterestSummary.agreement(code: [0, 0, 1, 1, 2, 2], topic: [5, 5, 6, 6, 7, 7])
        #expect(same.purity == 1 && abs(same.nmi - 1) < 1e-12)
        // Each code holds one item of each topic: knowing the code says nothing.
        let none = InterestSummary.agreement(code: [0, 0, 1, 1], topic: [5, 6, 5, 6])
        #expect(none.purity == 0.5 && abs(none.nmi) < 1e-12)
        // Unassigned items (-1) are left out.
        #expect(InterestSummary.agreement(code: [-1, 0, 0], topic: [9, 5, 5]).purity == 1)
    }

    @Test("a discovery is a user's first click in an interest that was improbable when served")
    func discoveries() {
        var m = ArmMetrics(name: "s", users: 2, items: 10)
        m.recordInterestClick(slot: 0, interest: 3, probability: 0.005, codes: 64, threshold: 0.01)  // first, improbable
        m.recordInterestClick(slot: 0, interest: 3, probability: 0.001, codes: 64, threshold: 0.01)  // not the first
        m.recordInterestClick(slot: 0, interest: 4, probability: 0.5, codes: 64, threshold: 0.01)    // first, expected
        m.recordInterestClick(slot: 1, interest: 3, probability: 0.002, codes: 64, threshold: 0.01)  // another user's first
        #expect(m.firstEngagements == 3 && m.discoveries == 2)
    }
}
