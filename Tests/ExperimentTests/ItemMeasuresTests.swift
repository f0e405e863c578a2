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
