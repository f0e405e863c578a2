import Foundation
import RecCore
import Scenario

/// The items of the simulated world, stored as columns.
///
/// Each item belongs to a subcategory of a two-level taxonomy and has a latent topic: its
/// vector is its topic's centroid plus noise, so items of one topic resemble each other
/// and a user's interest in a topic is an interest in their direction. Top categories
/// differ in how much they are for watching (long items, few purchases) or for shopping
/// (short items, more purchases): the trade-off between view seconds and GMV. Content
/// tokens come mostly from a vocabulary slice of the item's topic, so content alone says
/// something about an item nobody has seen (cold start). New items arrive each tick.
public struct Catalog: Sendable {
    public let settings: CatalogSettings
    public let dim: Int
    let seed: UInt64
    public private(set) var count = 0

    // Per item.
    public private(set) var topCategory: [UInt16] = []
    /// Global subcategory id: top category x subcategories + subcategory.
    public private(set) var subcategory: [UInt16] = []
    public private(set) var topic: [UInt16] = []
    /// count x dim, each of unit length.
    public private(set) var vectors: [Float] = []
    public private(set) var quality: [Float] = []
    /// (rank + 1)^-exponent: 1 for the most popular item.
    public private(set) var popularity: [Float] = []
    public private(set) var price: [Float] = []
    public private(set) var durationSeconds: [Float] = []
    /// count x tokensPerItem.
    public private(set) var tokens: [UInt32] = []
    public private(set) var bornTick: [Int32] = []
    public private(set) var alive: [Bool] = []
    /// Live items, ascending.
    public private(set) var liveItems: [ItemID] = []

    // Per topic and per category.
    /// topics x dim, unit length.
    public let centroids: [Float]
    /// Per top category: how much it is for shopping rather than watching, in [0, 1].
    public let shopping: [Float]
    let categoryPrice: [Float]
    let categoryDuration: [Float]

    public init(_ settings: CatalogSettings, seed: UInt64) {
        self.settings = settings
        self.seed = seed
        dim = settings.topicDim
        var rng = RandomStream(seed: seed, .catalog, UInt64.max, 1)
        var centroids: [Float] = []
        for _ in 0..<settings.topics { centroids += unitVector(dim: settings.topicDim, &rng) }
        self.centroids = centroids
        var shopping: [Float] = [], categoryPrice: [Float] = [], categoryDuration: [Float] = []
        for _ in 0..<settings.topCategories {
            let shop = Float(rng.nextDouble())
            shopping.append(shop)
            categoryPrice.append(Float(settings.medianPrice * exp(settings.priceSpread * rng.nextGaussian())) * (0.5 + shop))
            // Shopping categories have short items; watching categories long ones.
            categoryDuration.append(Float(settings.medianDurationSeconds * exp(settings.durationSpread * rng.nextGaussian())) * (1.5 - shop))
        }
        self.shopping = shopping
        self.categoryPrice = categoryPrice
        self.categoryDuration = categoryDuration

        // Popularity ranks of the first items are a seeded permutation, so ids carry none.
        var ranks = Array(0..<settings.items)
        var shuffle = RandomStream(seed: seed, .catalog, UInt64.max, 2)
        for i in stride(from: ranks.count - 1, to: 0, by: -1) { ranks.swapAt(i, shuffle.nextInt(below: i + 1)) }
        reserve(settings.items)
        for item in 0..<settings.items { append(rank: ranks[item], born: 0) }
    }

    mutating func reserve(_ n: Int) {
        topCategory.reserveCapacity(n); subcategory.reserveCapacity(n); topic.reserveCapacity(n)
        vectors.reserveCapacity(n * dim); quality.reserveCapacity(n); popularity.reserveCapacity(n)
        price.reserveCapacity(n); durationSeconds.reserveCapacity(n); tokens.reserveCapacity(n * settings.tokensPerItem)
        bornTick.reserveCapacity(n); alive.reserveCapacity(n); liveItems.reserveCapacity(n)
    }

    /// Makes item `count` from its own random stream.
    mutating func append(rank: Int, born: Int32) {
        let item = count
        var rng = RandomStream(seed: seed, .catalog, UInt64(item))
        let s = settings
        let t = rng.nextInt(below: s.topics)
        let subcategoryCount = s.topCategories * s.subcategories
        // Topic first, then a subcategory that goes with it, so every topic has items.
        let sub = subcategoryCount >= s.topics
            ? t + s.topics * rng.nextInt(below: (subcategoryCount - t + s.topics - 1) / s.topics)
            : t % subcategoryCount
        let top = sub / s.subcategories
        topCategory.append(UInt16(top))
        subcategory.append(UInt16(sub))
        topic.append(UInt16(t))
        var v = [Float](repeating: 0, count: dim)
        let noise = Float(s.topicNoise / Double(dim).squareRoot())
        for d in 0..<dim { v[d] = centroids[t * dim + d] + noise * Float(rng.nextGaussian()) }
        normalize(&v)
        vectors += v
        quality.append(Float((rng.nextDouble() + rng.nextDouble()) / 2))
        popularity.append(Float(pow(Double(rank) + 1, -s.popularityExponent)))
        price.append(categoryPrice[top] * Float(exp(s.itemPriceSpread * rng.nextGaussian())))
        durationSeconds.append(categoryDuration[top] * Float(exp(s.durationSpread * rng.nextGaussian())))
        let slice = s.vocabulary / s.topics
        for _ in 0..<s.tokensPerItem {
            // Mostly the topic's own tokens, some shared across topics.
            let token = rng.nextDouble() < 0.8 ? t * slice + rng.nextInt(below: slice) : rng.nextInt(below: s.vocabulary)
            tokens.append(UInt32(token))
        }
        bornTick.append(born)
        alive.append(true)
        liveItems.append(ItemID(item))
        count += 1
    }

    /// New items arrive and old ones retire at the start of `tick`; returns whether the
    /// catalog changed.
    @discardableResult
    public mutating func advance(to tick: Tick) -> Bool {
        var rng = RandomStream(seed: seed, .arrivals, UInt64(tick))
        var changed = false
        if settings.retireProbability > 0 {
            for item in liveItems where rng.nextDouble() < settings.retireProbability {
                alive[Int(item)] = false
                changed = true
            }
            if changed { liveItems.removeAll { !alive[Int($0)] } }
        }
        let arrivals = rng.nextPoisson(settings.arrivalsPerTick)
        for _ in 0..<arrivals {
            // A newcomer's popularity prior is that of a random rank among the first items.
            append(rank: rng.nextInt(below: settings.items), born: Int32(tick))
            changed = true
        }
        return changed
    }

    @inline(__always)
    /// The head of the catalog: the `share` of items (of every item so far) with the
    /// highest prior popularity; the rest is the long tail.
    public func popularHead(share: Double) -> [Bool] {
        let order = (0..<count).sorted { (popularity[$0], $1) > (popularity[$1], $0) }
        var head = [Bool](repeating: false, count: count)
        for i in order.prefix(Int((Double(count) * share).rounded())) { head[i] = true }
        return head
    }

    public func vector(_ item: ItemID) -> UnsafeBufferPointer<Float> {
        vectors.withUnsafeBufferPointer { UnsafeBufferPointer(rebasing: $0[Int(item) * dim..<(Int(item) + 1) * dim]) }
    }

    /// The cosine similarity of two items' topic vectors (both are unit length).
    public func similarity(_ a: ItemID, _ b: ItemID) -> Float {
        vectors.withUnsafeBufferPointer { v in
            dot(v.baseAddress! + Int(a) * dim, v.baseAddress! + Int(b) * dim, dim)
        }
    }

    /// Live items of each topic with their cumulative popularity, for drawing an item of a
    /// topic in proportion to popularity.
    public func topicIndex() -> TopicIndex {
        var items = [[ItemID]](repeating: [], count: settings.topics)
        for item in liveItems { items[Int(topic[Int(item)])].append(item) }
        let cumulative = items.map { list -> [Float] in
            var total: Float = 0
            return list.map { total += popularity[Int($0)]; return total }
        }
        return TopicIndex(items: items, cumulative: cumulative)
    }
}

public struct TopicIndex: Sendable {
    public let items: [[ItemID]]
    let cumulative: [[Float]]

    /// An item of `topic`, drawn in proportion to popularity (nil if the topic has none).
    @inline(__always)
    public func draw(topic: Int, _ rng: inout RandomStream) -> ItemID? {
        let c = cumulative[topic]
        guard let total = c.last else { return nil }
        let u = rng.nextFloat() * total
        var lo = 0, hi = c.count - 1
        while lo < hi {
            let mid = (lo + hi) / 2
            if c[mid] <= u { lo = mid + 1 } else { hi = mid }
        }
        return items[topic][lo]
    }
}

func unitVector(dim: Int, _ rng: inout RandomStream) -> [Float] {
    var v = (0..<dim).map { _ in Float(rng.nextGaussian()) }
    normalize(&v)
    return v
}

func normalize(_ v: inout [Float]) {
    var norm: Float = 0
    for x in v { norm += x * x }
    norm = norm.squareRoot()
    if norm > 0 { for i in v.indices { v[i] /= norm } }
}

