import RecCore

/// Per-item impressions and clicks, learned online from feedback: the placeholder ranking
/// models (popularity and smoothed CTR) until DARE and its peers land.
///
/// Columns grow as new items appear, so a table never needs to know the catalog's size.
public struct ItemStatistics: Sendable {
    public private(set) var impressions: [Float] = []
    public private(set) var clicks: [Float] = []
    /// Impressions over every item (a Double: it outgrows a Float's exact integers).
    public private(set) var totalImpressions: Double = 0
    /// Clicks and their view seconds over every item.
    public private(set) var totalClicks: Double = 0
    public private(set) var totalViewSeconds: Double = 0
    /// Whether recording notes the items it changes (for model updates, see `writeChanges`).
    public var tracksChanges = false
    public private(set) var changedItems: [UInt32] = []
    var isChanged: [Bool] = []

    public init(items: Int = 0) {
        impressions = [Float](repeating: 0, count: items)
        clicks = impressions
    }

    public var count: Int { clicks.count }

    /// Item `item`'s counts start over (its id expired; the totals keep what was counted).
    public mutating func reset(_ item: UInt32) {
        grow(to: Int(item))
        impressions[Int(item)] = 0
        clicks[Int(item)] = 0
        if tracksChanges { markChanged(item) }
    }

    /// Room for items up to `item`.
    @inline(__always)
    public mutating func grow(to item: Int) {
        if item >= clicks.count {
            let n = max(item + 1, clicks.count * 2)
            impressions.append(contentsOf: repeatElement(0, count: n - impressions.count))
            clicks.append(contentsOf: repeatElement(0, count: n - clicks.count))
        }
    }

    @inline(__always)
    public mutating func recordImpression(_ item: UInt32) {
        grow(to: Int(item))
        impressions[Int(item)] += 1
        totalImpressions += 1
        if tracksChanges { markChanged(item) }
    }

    @inline(__always)
    public mutating func recordClick(_ item: UInt32, viewSeconds: Float = 0) {
        grow(to: Int(item))
        clicks[Int(item)] += 1
        totalClicks += 1
        totalViewSeconds += Double(viewSeconds)
        if tracksChanges { markChanged(item) }
    }

    @inline(__always)
    mutating func markChanged(_ item: UInt32) {
        let i = Int(item)
        if i >= isChanged.count { isChanged.append(contentsOf: repeatElement(false, count: clicks.count - isChanged.count)) }
        if !isChanged[i] {
            isChanged[i] = true
            changedItems.append(item)
        }
    }

    /// Mean view seconds per click so far (0 before any click).
    public var meanViewSecondsPerClick: Double { totalClicks > 0 ? totalViewSeconds / totalClicks : 0 }

    @inline(__always)
    public func impressionCount(_ item: UInt32) -> Float {
        Int(item) < impressions.count ? impressions[Int(item)] : 0
    }

    @inline(__always)
    public func clickCount(_ item: UInt32) -> Float {
        Int(item) < clicks.count ? clicks[Int(item)] : 0
    }

    /// Click-through rate with a Beta prior: (clicks + a) / (impressions + b).
    @inline(__always)
    public func smoothedCTR(_ item: UInt32, priorClicks a: Float, priorImpressions b: Float) -> Float {
        guard Int(item) < clicks.count else { return a / b }
        return (clicks[Int(item)] + a) / (impressions[Int(item)] + b)
    }

    /// The `k` items with the most clicks among those `include` accepts, ties broken by the
    /// lower id (deterministic).
    public func mostClicked(_ k: Int, include: (UInt32) -> Bool = { _ in true }) -> [UInt32] {
        let ids = (0..<UInt32(clicks.count)).filter { clicks[Int($0)] > 0 && include($0) }
        return Array(ids.sorted { (clicks[Int($0)], $1) > (clicks[Int($1)], $0) }.prefix(k))
    }
}

extension ItemStatistics {
    public func write(to w: inout BinaryWriter) {
        w.write(UInt64(clicks.count))
        impressions.withUnsafeBufferPointer { w.write($0) }
        clicks.withUnsafeBufferPointer { w.write($0) }
        w.write(totalImpressions)
        w.write(totalClicks)
        w.write(totalViewSeconds)
    }

    public static func read(from r: inout BinaryReader) throws(BinaryReadError) -> ItemStatistics {
        let count = try r.readCount("item statistics count", elementSize: 8)
        var s = ItemStatistics(items: count)
        try s.impressions.withUnsafeMutableBufferPointer { (p) throws(BinaryReadError) in try r.readRaw(into: p.baseAddress!, expected: count, "impressions") }
        try s.clicks.withUnsafeMutableBufferPointer { (p) throws(BinaryReadError) in try r.readRaw(into: p.baseAddress!, expected: count, "clicks") }
        s.totalImpressions = try r.readDouble("total impressions")
        s.totalClicks = try r.readDouble("total clicks")
        s.totalViewSeconds = try r.readDouble("total view seconds")
        return s
    }
}


// MARK: Model updates

extension ItemStatistics {
    /// Writes the totals and the counts of every item changed since the last call, then
    /// forgets the changes.
    public mutating func writeChanges(to w: inout BinaryWriter) {
        w.write(totalImpressions)
        w.write(totalClicks)
        w.write(totalViewSeconds)
        w.write(UInt32(changedItems.count))
        for item in changedItems {
            w.write(item)
            w.write(impressions[Int(item)])
            w.write(clicks[Int(item)])
            isChanged[Int(item)] = false
        }
        changedItems.removeAll(keepingCapacity: true)
    }

    /// Applies what `writeChanges` wrote (counts overwrite). Reads and checks everything
    /// before changing anything: items must be below `items` (the catalog the receiver
    /// knows), counts and totals finite and not negative. `checkOnly` only checks.
    public mutating func applyChanges(from r: inout BinaryReader, items: Int, checkOnly: Bool = false) throws(BinaryReadError) {
        let start = r.offset
        for what in ["total impressions", "total clicks", "total view seconds"] {
            let at = r.offset
            let v = try r.readDouble(what)
            guard v.isFinite, v >= 0 else { throw BinaryReadError("\(what) \(v): must be finite and not negative", at: at) }
        }
        let count = try r.readCount32("changed item count", elementSize: 12)
        var highest = -1
        for _ in 0..<count {
            let at = r.offset
            let item = Int(try r.read(UInt32.self, "item"))
            guard item < items else { throw BinaryReadError("item \(item) is outside the \(items) items of the catalog", at: at) }
            highest = max(highest, item)
            for what in ["impressions", "clicks"] {
                let v = try r.readFloat(what)
                guard v.isFinite, v >= 0 else { throw BinaryReadError("\(what) \(v) of item \(item): must be finite and not negative", at: r.offset - 4) }
            }
        }
        if checkOnly { return }
        r.rewind(to: start)
        totalImpressions = try r.readDouble("total impressions")
        totalClicks = try r.readDouble("total clicks")
        totalViewSeconds = try r.readDouble("total view seconds")
        _ = try r.read(UInt32.self, "changed items")
        if highest >= 0 { grow(to: highest) }
        for _ in 0..<count {
            let item = Int(try r.read(UInt32.self, "item"))
            impressions[item] = try r.readFloat("impressions")
            clicks[item] = try r.readFloat("clicks")
        }
    }
}
