/// Checks that a consumer sees every offset of every partition it reads, in order, from
/// where it started: a gap means messages were pruned or skipped.
///
/// A log with only plain (non-transactional) messages has contiguous offsets, as the
/// embedded broker's and an ordinary topic's do; a run that treats the log as the record
/// of what happened must stop at a gap, never step over it.
public struct OffsetTracker {
    private var next: [Int32: Int64]
    public let topic: String

    /// - Parameter start: the first offset expected from each partition.
    public init(topic: String, start: [Int32: Int64]) {
        self.topic = topic
        self.next = start
    }

    /// Records `offset` from `partition`; throws if it is not the one expected.
    @inline(__always)
    public mutating func record(partition: Int32, offset: Int64) throws(KafkaError) {
        let expected = next[partition]
        guard expected == offset else {
            throw KafkaError(
                .offsetGap,
                expected.map { "expected offset \($0), got \(offset): messages were lost (pruned by the broker, or the consumer fell behind)" }
                    ?? "a message from partition \(partition), which this consumer was not assigned",
                context: "consuming \(topic) [\(partition)]")
        }
        next[partition] = offset + 1
    }

    /// The next offset expected per partition (where a restart would resume).
    public var positions: [Int32: Int64] { next }
}
