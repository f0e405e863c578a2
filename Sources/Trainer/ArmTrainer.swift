import Models
import RecCore

/// The streaming trainer of one arm: applies that arm's feedback, in (user, sequence)
/// order within a tick, to its models.
///
/// Today its model is `ItemStatistics` (the placeholder); the ranking issue adds DARE and
/// its peers behind the same `apply`.
public struct ArmTrainer: Sendable {
    public private(set) var statistics: ItemStatistics
    public private(set) var eventsApplied = 0

    public init(items: Int) {
        statistics = ItemStatistics(items: items)
    }

    @inline(__always)
    public mutating func apply(_ feedback: Feedback) {
        switch feedback.event {
        case .impression: statistics.recordImpression(feedback.item)
        case .click: statistics.recordClick(feedback.item)
        case .purchase: break
        }
        eventsApplied += 1
    }
}
