import RecCore

/// Which arm each user is in: a stable hash of (user, experiment salt) against the arms'
/// cumulative traffic shares, so a user stays in one arm across runs and processes.
///
/// Also gives each user a dense slot within its arm, so per-arm, per-user state lives in
/// arrays of the arm's size.
public struct ArmAssignment: Sendable {
    public let arm: [UInt16]
    public let slot: [UInt32]
    public let armSizes: [Int]

    public init(users: Int, shares: [Double], salt: String) {
        var bounds: [Double] = []
        var total = 0.0
        for share in shares {
            total += share
            bounds.append(total)
        }
        var arm = [UInt16](repeating: 0, count: users)
        var slot = [UInt32](repeating: 0, count: users)
        var sizes = [Int](repeating: 0, count: shares.count)
        for user in 0..<users {
            let u = StableHash.unit(salt, UInt64(user)) * total
            let a = bounds.firstIndex { u < $0 } ?? shares.count - 1
            arm[user] = UInt16(a)
            slot[user] = UInt32(sizes[a])
            sizes[a] += 1
        }
        self.arm = arm
        self.slot = slot
        self.armSizes = sizes
    }

    /// The scenario's assignment: by shares (`split`), or every user in every arm
    /// (`paired`), where a user's slot is the user and the wire format's `arm` names the
    /// copy of the population a record comes from (the control's in the shared warm-up).
    public init(_ scenario: Scenario) {
        if scenario.isPaired {
            self.init(everyone: scenario.population.users, arm: scenario.controlArm, arms: scenario.arms.count)
        } else {
            self.init(users: scenario.population.users, shares: scenario.arms.map(\.share), salt: scenario.experiment.salt)
        }
    }

    /// Every one of `users` assigned to `arm`, and present in each of `arms` arms (a paired
    /// design's copies): slots are the users themselves.
    public init(everyone users: Int, arm: Int, arms: Int) {
        self.arm = [UInt16](repeating: UInt16(arm), count: users)
        slot = (0..<UInt32(users)).map { $0 }
        armSizes = [Int](repeating: users, count: arms)
    }
}
