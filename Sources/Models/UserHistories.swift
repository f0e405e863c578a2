import RecCore

/// Each user's recent behaviours, as the models see them: appended as clicks arrive,
/// capped at `cap` (the oldest fall off), 8 bytes per entry.
///
/// Starts from the users' logged lifelong histories (their last `cap` behaviours). A
/// user's entries are contiguous, oldest first, so a model reads them without copying;
/// the store keeps at most 2 x cap per user and slides the window down when it fills.
public struct UserHistories: HistorySource, Sendable {
    public let cap: Int
    var entries: [[HistoryEntry]]

    public init<H: HistorySource>(users: Int, cap: Int, initial: H) {
        precondition(cap > 0)
        self.cap = cap
        entries = (0..<users).map { user in
            let h = initial.history(of: UserID(user))
            var kept = Array(h.suffix(cap))
            kept.reserveCapacity(min(2 * cap, cap + 16))
            return kept
        }
    }

    public init(users: Int, cap: Int) {
        self.cap = cap
        entries = Array(repeating: [], count: users)
    }

    public func history(of user: UserID) -> UnsafeBufferPointer<HistoryEntry> {
        // The arrays are not mutated while a model reads them (training and serving happen
        // between appends), so the pointer stays valid for the read.
        entries[Int(user)].withUnsafeBufferPointer { $0 }
    }

    public mutating func append(_ entry: HistoryEntry, for user: UserID) {
        let u = Int(user)
        if entries[u].count >= 2 * cap { entries[u].removeFirst(entries[u].count - cap + 1) }
        entries[u].append(entry)
    }

    public var userCount: Int { entries.count }
    public var totalEntries: Int { entries.reduce(0) { $0 + $1.count } }
}
