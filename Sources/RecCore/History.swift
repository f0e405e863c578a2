/// One behaviour of a user's history: the item engaged with and when. Eight bytes, so a
/// lifelong history of 10,000 behaviours takes 80 KB.
public struct HistoryEntry: Equatable, Sendable {
    public var item: ItemID
    /// The tick it happened; negative before the run starts (the lifelong past).
    public var tick: Int32
    public init(item: ItemID, tick: Int32) {
        self.item = item
        self.tick = tick
    }
}

/// Features a serving system could observe about a user (for models' user towers).
public struct UserFeatures: Equatable, Sendable {
    public var segment: UInt8
    public var region: UInt8
    /// 0 light, 1 medium, 2 heavy.
    public var activityBucket: UInt8
    public init(segment: UInt8, region: UInt8, activityBucket: UInt8) {
        self.segment = segment
        self.region = region
        self.activityBucket = activityBucket
    }
}

/// Where a model reads users' histories from (a generic parameter, specialised at the call
/// site: no existential dispatch per sample).
public protocol HistorySource {
    /// The user's behaviours, oldest first; valid until the source changes.
    func history(of user: UserID) -> UnsafeBufferPointer<HistoryEntry>
}
