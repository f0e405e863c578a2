import Models
import RecCore
import Scenario

/// Trains an arm's retrieval towers (two-tower or SPARC) on the arm's feedback, a tick at a
/// time: every impression is an example (clicked or not) with the user's recent clicks as
/// they stood when the slate was served; after the slate, its clicks join the user's
/// recent clicks and move their running interest distribution.
public final class TowerLearner {
    public let towers: InterestTowers
    public let users: InterestUsers
    public let settings: TowerRetrieval
    // The batch being gathered: examples pointing into one history buffer.
    var historyBuffer: [UInt32] = []
    var pending: [(start: Int, count: Int, user: UserID, item: UInt32, clicked: Bool)] = []
    var slateClicks: [ItemID] = []
    public private(set) var steps = 0
    public private(set) var lastLoss: Float = .nan

    public init<H: HistorySource>(_ settings: TowerRetrieval, users: Int, histories: H, categories: [UInt32], categoryCount: Int,
                                  tokens: [UInt32], tokensPerItem: Int, vocabulary: Int, live: [Bool], userFeatures: [UserFeatures] = [],
                                  seed: UInt64) {
        self.settings = settings
        var t = TowerSettings()
        t.dim = settings.dim
        t.codes = settings.codes
        t.historyLength = settings.historyLength
        t.temperature = Float(settings.temperature)
        t.learningRate = Float(settings.learningRate)
        t.batchSize = settings.batchSize
        t.labelAware = settings.serving?.conditioned ?? false
        t.restartEvery = settings.restartEvery
        t.deadBelow = Float(settings.deadBelow)
        t.seed = seed
        towers = InterestTowers(t, categories: categories, tokens: tokens, tokensPerItem: tokensPerItem, vocabulary: vocabulary,
                                categoryCount: categoryCount)
        self.users = InterestUsers(users: users, length: settings.historyLength, codes: settings.codes.first ?? 0, histories: histories,
                                   features: settings.userFeatures ? userFeatures : [])
        // Codes start on the item vectors as first drawn, so interests exist from tick 0.
        towers.refresh(live: live)
        if let q = towers.quantizer {
            towers.itemVectors.withUnsafeBufferPointer { q.update($0.baseAddress!, count: towers.items) }
            towers.refresh(live: live)
        }
    }

    public func updateCatalog(categories: [UInt32], categoryCount: Int, tokens: [UInt32]) {
        towers.updateCatalog(categories: categories, tokens: tokens, categoryCount: categoryCount)
    }

    /// Learns from one tick's feedback of the arm, sorted by (user, sequence, position, event).
    public func learn(_ feedback: ArraySlice<Feedback>) {
        var i = feedback.startIndex
        while i < feedback.endIndex {
            let user = feedback[i].header.user, sequence = feedback[i].header.sequence
            var j = i
            while j < feedback.endIndex && feedback[j].header.user == user && feedback[j].header.sequence == sequence { j += 1 }
            // The slate's impressions, each labelled by whether it was clicked.
            var start = historyBuffer.count
            users.appendRecent(user, to: &historyBuffer)
            var count = historyBuffer.count - start
            slateClicks.removeAll(keepingCapacity: true)
            for f in feedback[i..<j] where f.event == .click { slateClicks.append(f.item) }
            for f in feedback[i..<j] where f.event == .impression {
                if pending.count >= settings.batchSize {
                    trainPending()
                    // The buffer started over: the slate's history goes in again.
                    start = historyBuffer.count
                    users.appendRecent(user, to: &historyBuffer)
                    count = historyBuffer.count - start
                }
                pending.append((start, count, user, f.item, slateClicks.contains(f.item)))
            }
            for item in slateClicks {
                let code = Int(item) < towers.index.codeOf.count ? Int(towers.index.codeOf[Int(item)]) : -1
                users.clicked(user, item, code: code >= 0 ? code : nil, smoothing: Float(settings.serving?.smoothing ?? 0))
            }
            i = j
        }
    }

    /// Trains on what is gathered (the tick's last, partial batch), then recomputes item
    /// vectors, codes and the index for serving.
    public func endTick(live: [Bool]) {
        if !pending.isEmpty { trainPending() }
        towers.refresh(live: live)
    }

    func trainPending() {
        let examples = pending.map {
            InterestTowers.Example(history: historyBuffer[$0.start..<($0.start + $0.count)], features: users.features($0.user),
                                   item: $0.item, clicked: $0.clicked)
        }
        lastLoss = towers.train(examples)
        steps += 1
        pending.removeAll(keepingCapacity: true)
        historyBuffer.removeAll(keepingCapacity: true)
    }
}
