import RecCore

/// Per-user state of the population, one column per attribute, allocated once.
///
/// `@unchecked Sendable` because the population steps disjoint ranges of users on several
/// threads at once: each user belongs to exactly one range (one request per user per tick,
/// slates sorted by user), and no step reads another user's row, so no two threads ever
/// touch the same element. The columns are fixed in size and never reallocated.
final class UserColumns: @unchecked Sendable {
    let users: Int
    let slots: Int
    let dim: Int
    let categories: Int

    /// users x slots: the interest's topic, its unnormalised log-weight, whether active,
    /// and whether it was engaged with this tick.
    let slotTopic: UnsafeMutableBufferPointer<UInt16>
    let slotLogWeight: UnsafeMutableBufferPointer<Float>
    let slotActive: UnsafeMutableBufferPointer<Bool>
    let slotEngaged: UnsafeMutableBufferPointer<Bool>
    /// users x dim: the direction of the user's taste, dormant interests included at their
    /// reduced appeal (recomputed when interests change).
    let preference: UnsafeMutableBufferPointer<Float>
    /// users x top categories.
    let fatigue: UnsafeMutableBufferPointer<Float>
    let activity: UnsafeMutableBufferPointer<Float>
    let satisfaction: UnsafeMutableBufferPointer<Float>
    let priceSensitivity: UnsafeMutableBufferPointer<Float>
    let sequence: UnsafeMutableBufferPointer<UInt32>
    let features: UnsafeMutableBufferPointer<UserFeatures>

    init(users: Int, slots: Int, dim: Int, categories: Int) {
        self.users = users
        self.slots = slots
        self.dim = dim
        self.categories = categories
        func column<T>(_ count: Int, _ value: T) -> UnsafeMutableBufferPointer<T> {
            let b = UnsafeMutableBufferPointer<T>.allocate(capacity: count)
            b.initialize(repeating: value)
            return b
        }
        slotTopic = column(users * slots, 0)
        slotLogWeight = column(users * slots, 0)
        slotActive = column(users * slots, false)
        slotEngaged = column(users * slots, false)
        preference = column(users * dim, 0)
        fatigue = column(users * categories, 0)
        activity = column(users, 0)
        satisfaction = column(users, 1)
        priceSensitivity = column(users, 0)
        sequence = column(users, 0)
        features = column(users, UserFeatures(segment: 0, region: 0, activityBucket: 0))
    }

    /// A deep copy: the same users in the same state, in columns of their own.
    convenience init(copying other: UserColumns) {
        self.init(users: other.users, slots: other.slots, dim: other.dim, categories: other.categories)
        func copy<T>(_ from: UnsafeMutableBufferPointer<T>, _ to: UnsafeMutableBufferPointer<T>) {
            _ = to.update(fromContentsOf: from)
        }
        copy(other.slotTopic, slotTopic)
        copy(other.slotLogWeight, slotLogWeight)
        copy(other.slotActive, slotActive)
        copy(other.slotEngaged, slotEngaged)
        copy(other.preference, preference)
        copy(other.fatigue, fatigue)
        copy(other.activity, activity)
        copy(other.satisfaction, satisfaction)
        copy(other.priceSensitivity, priceSensitivity)
        copy(other.sequence, sequence)
        copy(other.features, features)
    }

    deinit {
        for b in [slotLogWeight, preference, fatigue, activity, satisfaction, priceSensitivity] { b.deallocate() }
        slotTopic.deallocate()
        slotActive.deallocate()
        slotEngaged.deallocate()
        sequence.deallocate()
        features.deallocate()
    }

    /// Bytes held per user.
    var bytesPerUser: Int {
        slots * (2 + 4 + 1 + 1) + dim * 4 + categories * 4 + 4 * 4 + MemoryLayout<UserFeatures>.stride
    }
}
