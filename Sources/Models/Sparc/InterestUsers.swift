import RecCore

/// What the retrieval towers keep per user: the last clicks (the user tower's input, a
/// ring of `length` items per user; order does not matter to a mean) and, for SPARC, a
/// running distribution over the level-0 interests that every engagement moves toward
/// the clicked item's code: pi <- (1 - eta) pi + eta onehot(c0).
public final class InterestUsers {
    public let users: Int
    public let length: Int
    public let codes: Int
    var ring: [UInt32]
    var count: [Int32]
    var next: [Int32]
    /// users x codes, each row a distribution; a row is uniform until its first engagement.
    var running: [Float]
    /// Each user's observable features (empty: none).
    let userFeatures: [UserFeatures]

    /// - Parameter histories: each user's logged behaviours; the last `length` seed the ring.
    public init<H: HistorySource>(users: Int, length: Int, codes: Int, histories: H, features: [UserFeatures] = []) {
        precondition(features.isEmpty || features.count == users, "features for every user, or none")
        userFeatures = features
        self.users = users
        self.length = length
        self.codes = codes
        ring = [UInt32](repeating: 0, count: users * length)
        count = [Int32](repeating: 0, count: users)
        next = count
        running = codes > 0 ? [Float](repeating: 1 / Float(codes), count: users * codes) : []
        for u in 0..<users {
            let h = histories.history(of: UserID(u))
            for e in h.suffix(length) { push(u, e.item) }
        }
    }

    @inline(__always)
    func push(_ user: Int, _ item: ItemID) {
        let base = user * length
        ring[base + Int(next[user])] = item
        next[user] = (next[user] + 1) % Int32(length)
        count[user] = min(count[user] + 1, Int32(length))
    }

    /// The user's features, if the towers were given any.
    @inline(__always)
    public func features(_ user: UserID) -> UserFeatures? {
        userFeatures.isEmpty ? nil : userFeatures[Int(user)]
    }

    /// The user's recent clicks (in no particular order).
    public func recent(_ user: UserID) -> UnsafeBufferPointer<UInt32> {
        ring.withUnsafeBufferPointer { UnsafeBufferPointer(rebasing: $0[(Int(user) * length)..<(Int(user) * length + Int(count[Int(user)]))]) }
    }

    /// A copy of the recent clicks into `out` (for a training example).
    public func appendRecent(_ user: UserID, to out: inout [UInt32]) {
        let base = Int(user) * length
        out.append(contentsOf: ring[base..<(base + Int(count[Int(user)]))])
    }

    /// Records a click: into the ring, and the running distribution moves toward `code`.
    public func clicked(_ user: UserID, _ item: ItemID, code: Int?, smoothing: Float) {
        push(Int(user), item)
        guard let code, codes > 0 else { return }
        let base = Int(user) * codes
        for k in 0..<codes { running[base + k] *= 1 - smoothing }
        running[base + code] += smoothing
    }

    /// The user's running distribution over interests.
    public func running(_ user: UserID) -> UnsafeBufferPointer<Float> {
        running.withUnsafeBufferPointer { UnsafeBufferPointer(rebasing: $0[(Int(user) * codes)..<(Int(user) * codes + codes)]) }
    }
}
