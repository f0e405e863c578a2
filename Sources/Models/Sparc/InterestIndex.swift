/// Which items each interest (level-0 code) holds: an inverted index kept up to date one
/// move at a time. Moving an item is O(1): each bucket is an array and each item knows
/// its position in its bucket (swap-remove on the way out).
public struct InterestIndex: Sendable {
    public private(set) var buckets: [[UInt32]]
    /// Per item: its code (-1 when not indexed) and its position in that bucket.
    public private(set) var codeOf: [Int32] = []
    var position: [Int32] = []

    public init(codes: Int) {
        buckets = Array(repeating: [], count: codes)
    }

    public var count: Int { buckets.reduce(0) { $0 + $1.count } }

    /// Puts `item` in bucket `code`, moving it out of its old bucket if it had one.
    public mutating func set(_ item: UInt32, code: Int) {
        let i = Int(item)
        if i >= codeOf.count {
            codeOf.append(contentsOf: repeatElement(-1, count: i + 1 - codeOf.count))
            position.append(contentsOf: repeatElement(-1, count: i + 1 - position.count))
        }
        if codeOf[i] == Int32(code) { return }
        remove(item)
        codeOf[i] = Int32(code)
        position[i] = Int32(buckets[code].count)
        buckets[code].append(item)
    }

    /// Takes `item` out of the index (a retired item).
    public mutating func remove(_ item: UInt32) {
        let i = Int(item)
        guard i < codeOf.count, codeOf[i] >= 0 else { return }
        let c = Int(codeOf[i]), p = Int(position[i])
        let last = buckets[c].removeLast()
        if Int(last) != i {
            buckets[c][p] = last
            position[Int(last)] = Int32(p)
        }
        codeOf[i] = -1
        position[i] = -1
    }
}
