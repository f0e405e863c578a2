import Foundation
import RecCore
import Scenario

/// The items of the simulated world, stored as columns (one array per attribute).
///
/// A placeholder world: categories, quality, price, duration and a Zipf popularity prior.
/// The population issue replaces it with topic vectors, content tokens and new arrivals.
public struct Catalog: Sendable {
    public let count: Int
    public let category: [UInt32]
    /// Intrinsic appeal in [0, 1].
    public let quality: [Float]
    /// In (0, 1]: the item's Zipf popularity prior, (rank + 1)^-exponent (1 for the most popular).
    public let popularity: [Float]
    public let price: [Float]
    public let durationSeconds: [Float]

    public init(_ settings: CatalogSettings, seed: UInt64) {
        count = settings.items
        var category = [UInt32](), quality = [Float](), price = [Float](), duration = [Float](), rank = [Int]()
        category.reserveCapacity(count)
        for item in 0..<count {
            var rng = RandomStream(seed: seed, .catalog, UInt64(item))
            category.append(UInt32(rng.nextInt(below: settings.categories)))
            let q = rng.nextDouble()
            quality.append(Float(q * q))
            price.append(Float(settings.medianPrice * exp(0.6 * rng.nextGaussian())))
            duration.append(Float(settings.medianDurationSeconds * exp(0.5 * rng.nextGaussian())))
            rank.append(item)
        }
        // A seeded shuffle assigns popularity ranks, so ids carry no popularity.
        var shuffle = RandomStream(seed: seed, .catalog, UInt64.max)
        for i in stride(from: count - 1, to: 0, by: -1) { rank.swapAt(i, shuffle.nextInt(below: i + 1)) }
        popularity = rank.map { r in Float(pow(Double(r) + 1, -settings.popularityExponent)) }
        self.category = category
        self.quality = quality
        self.price = price
        self.durationSeconds = duration
    }
}
