import RecCore

/// Each user's running summary state: a decayed count of the content tokens of everything
/// they clicked, kept in a fixed number of slots (space-saving: a new token takes the
/// lightest slot, inheriting its weight). It stands in for the interest summary EmbSum has
/// a language model write from the whole history: it reaches past the model's window of
/// g x p clicks, it is kept up to date click by click, and its top tokens by TF-IDF are
/// what the summary vector is trained to predict.
///
/// Memory: `slots` x 8 bytes per user, allocated once.
public final class TokenProfiles {
    public let users: Int
    public let slots: Int
    /// Each click multiplies a user's weights by this before adding its tokens.
    public let decay: Float
    var tokens: [Int32]
    var weights: [Float]

    public init(users: Int, slots: Int = 32, decay: Float = 0.99) {
        precondition(slots > 0 && decay > 0 && decay <= 1)
        self.users = users
        self.slots = slots
        self.decay = decay
        tokens = [Int32](repeating: -1, count: users * slots)
        weights = [Float](repeating: 0, count: users * slots)
    }

    /// Starts from the users' histories (all of them, oldest first).
    public convenience init<H: HistorySource>(users: Int, histories: H, model: PolyModel, slots: Int = 32, decay: Float = 0.99) {
        self.init(users: users, slots: slots, decay: decay)
        for user in 0..<users {
            for entry in histories.history(of: UserID(user)) where Int(entry.item) < model.itemCount {
                add(item: Int(entry.item), of: model, for: UserID(user))
            }
        }
    }

    /// A click on `item`: the user's weights decay, the item's content tokens add 1 each.
    public func add(item: Int, of model: PolyModel, for user: UserID) {
        let base = Int(user) * slots
        for s in 0..<slots { weights[base + s] *= decay }
        for k in 0..<model.tokensPerItem {
            let token = Int32(model.itemTokens[item * model.rowsPerItem + k])
            var at = -1, lightest = 0
            for s in 0..<slots {
                if tokens[base + s] == token { at = s; break }
                if weights[base + s] < weights[base + lightest] { lightest = s }  // an empty slot weighs 0
            }
            if at < 0 {
                at = lightest
                tokens[base + at] = token
            }
            weights[base + at] += 1
        }
    }

    /// The user's tokens and their decayed counts (empty slots left out).
    public func profile(of user: UserID) -> [(token: UInt32, weight: Float)] {
        let base = Int(user) * slots
        return (0..<slots).compactMap { s in tokens[base + s] >= 0 ? (UInt32(tokens[base + s]), weights[base + s]) : nil }
    }
}
