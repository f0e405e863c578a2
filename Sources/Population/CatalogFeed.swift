import RecCore
import Scenario

/// The catalog as a run has it at a tick, for the roles that follow the simulation's
/// ticks without running it (attach mode's trainer and servers). It advances tick by
/// tick, exactly as a run's does (arrivals and retirements come from the scenario's seed),
/// so every role agrees on which items exist at tick t.
public struct CatalogFeed: Sendable {
    public private(set) var catalog: Catalog
    /// The last tick advanced to (-1: the catalog the run starts with).
    public private(set) var through: Int64 = -1
    /// The item count after each tick 0...through (items are numbered in order of arrival).
    var counts: [Int] = []

    public init(_ scenario: Scenario) {
        catalog = Catalog(scenario.catalog, seed: scenario.catalogSeed)
    }

    /// Advances the catalog to tick `tick` (a no-op if it is there already); returns
    /// whether it changed.
    @discardableResult
    public mutating func advance(through tick: Int64) -> Bool {
        var changed = false
        while through < tick {
            through += 1
            if catalog.advance(to: Tick(truncatingIfNeeded: through)) { changed = true }
            counts.append(catalog.count)
        }
        return changed
    }

    /// How many items had arrived by tick `tick` (advanced to already).
    public func count(at tick: Int64) -> Int {
        guard tick >= 0 else { return initialCount }
        precondition(tick <= through, "the feed has not advanced to tick \(tick)")
        return counts[Int(tick)]
    }

    /// The items the run starts with.
    public var initialCount: Int { catalog.settings.items }

    /// The models' category of each of the first `count` items (its subcategory), and how
    /// many categories there are: the catalog feed a trainer takes in.
    public func categories(count: Int) -> [UInt32] { catalog.subcategory[..<count].map(UInt32.init) }
    public var categoryCount: Int { catalog.settings.topCategories * catalog.settings.subcategories }

    /// Each item's tick of arrival (the run's `arrived` feed: before the run, Int32.min).
    public var arrived: [Int32] {
        catalog.bornTick.indices.map { $0 < initialCount ? Int32.min : catalog.bornTick[$0] }
    }
}
