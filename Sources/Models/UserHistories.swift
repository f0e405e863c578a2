import RecCore

/// Each user's recent behaviours, as the models see them: appended as clicks arrive,
/// capped at `cap` (the oldest fall off), exactly 8 bytes per entry slot.
///
/// One arena holds `cap` slots per user, so there is no per-user allocation (and no
/// allocator rounding); a user's entries are contiguous, oldest first, so a model reads
/// them in place. A full window slides down by one entry on append (a memmove of
/// cap x 8 bytes, cheap beside a training step). Starts from the users' logged lifelong
/// histories (their last `cap` behaviours).
public final class UserHistories: HistorySource {
    public let cap: Int
    public private(set) var userCount: Int
    private(set) var storage: UnsafeMutablePointer<HistoryEntry>
    /// Users the storage has room for (`grow` doubles it).
    private var capacity: Int
    var counts: [Int32]

    public init(users: Int, cap: Int) {
        precondition(cap > 0)
        self.cap = cap
        userCount = users
        capacity = users
        storage = .allocate(capacity: users * cap)
        storage.initialize(repeating: HistoryEntry(item: 0, tick: 0), count: users * cap)
        counts = [Int32](repeating: 0, count: users)
    }

    /// Adds users (with empty histories) up to `users`; may move the storage.
    public func grow(to users: Int) {
        guard users > userCount else { return }
        if users > capacity {
            let fresh = UnsafeMutablePointer<HistoryEntry>.allocate(capacity: max(users, capacity * 2, 16) * cap)
            fresh.moveInitialize(from: storage, count: userCount * cap)
            storage.deallocate()
            storage = fresh
            capacity = max(users, capacity * 2, 16)
        }
        (storage + userCount * cap).initialize(repeating: HistoryEntry(item: 0, tick: 0), count: (users - userCount) * cap)
        counts.append(contentsOf: repeatElement(0, count: users - userCount))
        userCount = users
    }

    /// Empties a user's history (its id expired; the row's next user starts with none).
    public func clear(_ user: UserID) {
        counts[Int(user)] = 0
    }

    public convenience init<H: HistorySource>(users: Int, cap: Int, initial: H) {
        self.init(users: users, cap: cap)
        for user in 0..<users {
            let h = initial.history(of: UserID(user))
            let kept = min(h.count, cap)
            (storage + user * cap).update(from: h.baseAddress! + (h.count - kept), count: kept)
            counts[user] = Int32(kept)
        }
    }

    deinit { storage.deallocate() }

    public func history(of user: UserID) -> UnsafeBufferPointer<HistoryEntry> {
        UnsafeBufferPointer(start: storage + Int(user) * cap, count: Int(counts[Int(user)]))
    }

    public func append(_ entry: HistoryEntry, for user: UserID) {
        let u = Int(user), base = storage + u * cap, n = Int(counts[u])
        if n < cap {
            base[n] = entry
            counts[u] += 1
        } else {
            base.update(from: base + 1, count: cap - 1)
            base[cap - 1] = entry
        }
    }

    public var totalEntries: Int { counts.reduce(0) { $0 + Int($1) } }
}
