import Foundation
import RecCore

/// A retrieved candidate and where it came from (for the report and off-policy logs).
public struct RetrievedCandidate: Sendable, Equatable {
    public var item: ItemID
    public var score: Float
    /// The interest (level-0 code) whose query found it; -1 for single-vector retrieval.
    public var interest: Int32
    /// Chosen by exploration rather than as one of the user's top interests.
    public var explored: Bool
    /// The probability the interest had in the user's distribution when it was chosen.
    public var interestProbability: Float

    public init(item: ItemID, score: Float, interest: Int32, explored: Bool, interestProbability: Float) {
        self.item = item
        self.score = score
        self.interest = interest
        self.explored = explored
        self.interestProbability = interestProbability
    }
}

/// The `count` best items by score, kept in a bounded min-heap: O(n log count). Reused
/// across requests (`reset`), it allocates nothing once its capacity has grown.
public struct TopItems: Sendable {
    public private(set) var heap: [(score: Float, item: ItemID)] = []
    public private(set) var count = 0
    public init(_ count: Int = 0) { reset(count: count) }

    public mutating func reset(count: Int) {
        self.count = count
        heap.removeAll(keepingCapacity: true)
        heap.reserveCapacity(count)
    }

    @inline(__always)
    public mutating func offer(_ score: Float, _ item: ItemID) {
        if heap.count < count {
            heap.append((score, item))
            var i = heap.count - 1
            while i > 0 {
                let parent = (i - 1) / 2
                guard Self.worse(heap[i], heap[parent]) else { break }
                heap.swapAt(i, parent)
                i = parent
            }
        } else if count > 0 && Self.worse(heap[0], (score, item)) {
            heap[0] = (score, item)
            var i = 0
            while true {
                let l = 2 * i + 1, r = l + 1
                var m = i
                if l < heap.count && Self.worse(heap[l], heap[m]) { m = l }
                if r < heap.count && Self.worse(heap[r], heap[m]) { m = r }
                if m == i { break }
                heap.swapAt(i, m)
                i = m
            }
        }
    }

    /// a ranks below b: lower score, or equal score and higher id.
    @inline(__always)
    static func worse(_ a: (score: Float, item: ItemID), _ b: (score: Float, item: ItemID)) -> Bool {
        a.score < b.score || (a.score == b.score && a.item > b.item)
    }

    /// Orders the kept items best first, in place (the heap is spent: `reset` before reuse).
    public mutating func sortBestFirst() { heap.sort { Self.worse($1, $0) } }

    /// Best first, as a new array.
    func sorted() -> [(Float, ItemID)] { heap.sorted { Self.worse($1, $0) }.map { ($0.score, $0.item) } }
}

extension InterestTowers {
    /// Single-vector retrieval: the `count` live items with the highest u . x, exactly.
    public func retrieve(_ u: UnsafePointer<Float>, live: [ItemID], count: Int) -> [RetrievedCandidate] {
        var top = TopItems(count)
        retrieve(u, live: live, into: &top)
        top.sortBestFirst()
        return top.heap.map { RetrievedCandidate(item: $0.item, score: $0.score, interest: -1, explored: false, interestProbability: 1) }
    }

    /// The live items with the highest q . x, exactly, into `top` (as many as it keeps).
    public func retrieve(_ q: UnsafePointer<Float>, live: [ItemID], into top: inout TopItems) {
        let d = settings.dim, n = vectorCount
        itemVectors.withUnsafeBufferPointer { x in
            for item in live where Int(item) < n { top.offer(dot(q, x.baseAddress! + Int(item) * d, d), item) }
        }
    }

    /// The `count` items of interest k's bucket with the highest q . x.
    public func retrieve(query q: UnsafePointer<Float>, bucket k: Int, count: Int) -> [(Float, ItemID)] {
        var top = TopItems(count)
        retrieve(query: q, bucket: k, into: &top)
        return top.sorted()
    }

    /// Interest k's items with the highest q . x, into `top` (one sequential pass over the
    /// bucket's rows as the last refresh laid them out).
    public func retrieve(query q: UnsafePointer<Float>, bucket k: Int, into top: inout TopItems) {
        guard k + 1 < bucketStart.count else { return }
        let d = settings.dim, from = bucketStart[k], to = bucketStart[k + 1]
        bucketRows.withUnsafeBufferPointer { rows in
            bucketItems.withUnsafeBufferPointer { ids in
                for j in from..<to { top.offer(dot(q, rows.baseAddress! + j * d, d), ids[j]) }
            }
        }
    }

    /// The user's serving distribution over interests: p(k | u, f)^mix x pi_k^(1 - mix),
    /// normalised, from the interest tower's distribution (`towerDistribution`, filled
    /// here; `features` join the behaviour summary u there) and the user's running one.
    public func servingDistribution(_ u: UnsafePointer<Float>, features: UserFeatures?, running: UnsafeBufferPointer<Float>, mix: Double,
                                    towerDistribution p: UnsafeMutablePointer<Double>, into out: UnsafeMutablePointer<Double>) {
        guard let q = quantizer else { return }
        let k0 = q.codes[0]
        withUnsafeTemporaryAllocation(of: Float.self, capacity: settings.dim) { input in
            input.baseAddress!.update(from: u, count: settings.dim)
            addFeatures(features, into: input.baseAddress!)
            interestDistribution(input.baseAddress!, into: p)
        }
        var total = 0.0
        for k in 0..<k0 {
            out[k] = pow(p[k], mix) * pow(Double(running[k]), 1 - mix)
            total += out[k]
        }
        for k in 0..<k0 { out[k] = total > 0 ? out[k] / total : 1 / Double(k0) }
    }

    /// The query of interest k: u_k = u + e0_k.
    public func interestQuery(_ u: UnsafePointer<Float>, _ k: Int, into out: UnsafeMutablePointer<Float>) {
        let e = quantizer!.interestVector(k)
        for j in 0..<settings.dim { out[j] = u[j] + e[j] }
    }

    /// The `count` items with the highest q . x among the live items: exactly over every
    /// item (`probes` nil), or through the inverted index, over the `probes` buckets with
    /// the highest bound q . e0_k + |q| radius_k on what they can hold, as an IVF index
    /// searches for inner products.
    public func retrieve(query q: UnsafePointer<Float>, count: Int, live: [ItemID], probes: Int?) -> [(Float, ItemID)] {
        var top = TopItems(count), nearest = TopItems()
        retrieve(query: q, live: live, probes: probes, into: &top, probing: &nearest)
        return top.sorted()
    }

    /// The same into `top`; `probing` is scratch for choosing the buckets.
    public func retrieve(query q: UnsafePointer<Float>, live: [ItemID], probes: Int?, into top: inout TopItems, probing nearest: inout TopItems) {
        guard let probes, let quantizer else {
            retrieve(q, live: live, into: &top)
            return
        }
        let d = settings.dim
        nearest.reset(count: min(probes, quantizer.codes[0]))
        let norm = dot(q, q, d).squareRoot()
        for k in 0..<quantizer.codes[0] where !index.buckets[k].isEmpty {
            nearest.offer(dot(q, quantizer.interestVector(k), d) + norm * (k < radius.count ? radius[k] : 0), ItemID(k))
        }
        for (_, k) in nearest.heap { retrieve(query: q, bucket: Int(k), into: &top) }
    }
}
