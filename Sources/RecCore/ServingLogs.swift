import Foundation

// What a server logs of each request it serves, for the experiment to join with the
// request's feedback: the off-policy record and, under SPARC retrieval, where each shown
// item came from. Shared by the servers that write them and the ledger that reads them.

/// What off-policy evaluation needs of one served request, before its feedback arrives.
public struct OffPolicyRecord: Sendable {
    public static let maxTargets = 8
    public var user: UserID
    public var sequence: UInt32
    /// The logging policy's chance of the top item it showed.
    public var loggingPropensity: Double
    /// The reward model's click probability for that item.
    public var predictedClick: Double
    /// The arm's mean view seconds per click so far: the view-seconds reward model is
    /// predictedClick times this.
    public var viewSecondsPerClick: Double
    /// Per target policy: the chance it would have put the shown item on top, and its
    /// expected predicted click over the candidates. NaN where not evaluated.
    public var targetProbability = InlineTargets()
    public var targetPredictedClick = InlineTargets()

    public init(user: UserID, sequence: UInt32, loggingPropensity: Double, predictedClick: Double, viewSecondsPerClick: Double) {
        self.user = user
        self.sequence = sequence
        self.loggingPropensity = loggingPropensity
        self.predictedClick = predictedClick
        self.viewSecondsPerClick = viewSecondsPerClick
    }
}

/// A fixed-size row of per-target values, stored inline (no allocation per request).
public struct InlineTargets: Sendable {
    var values: (Double, Double, Double, Double, Double, Double, Double, Double) = (.nan, .nan, .nan, .nan, .nan, .nan, .nan, .nan)
    public subscript(i: Int) -> Double {
        get { withUnsafeBytes(of: values) { $0.load(fromByteOffset: i * 8, as: Double.self) } }
        set { withUnsafeMutableBytes(of: &values) { $0.storeBytes(of: newValue, toByteOffset: i * 8, as: Double.self) } }
    }
}

/// Where a shown item came from, under SPARC retrieval.
public struct InterestLogEntry: Sendable, Equatable {
    public var user: UserID
    public var sequence: UInt32
    public var item: ItemID
    /// The level-0 code whose retrieval found it (-1: filled in at random).
    public var interest: Int32
    /// That interest's probability in the user's serving distribution.
    public var probability: Float
    public var explored: Bool

    public init(user: UserID, sequence: UInt32, item: ItemID, interest: Int32, probability: Float, explored: Bool) {
        self.user = user
        self.sequence = sequence
        self.item = item
        self.interest = interest
        self.probability = probability
        self.explored = explored
    }
}
