/// Marks of "seen in this request" that cost nothing to clear: a slot is marked when it
/// holds the current stamp, and each request takes the next stamp. The marks are zeroed
/// only when the stamps wrap, once every 2^32 requests.
struct StampMarks: Sendable {
    private(set) var marks: [UInt32]
    private(set) var stamp: UInt32 = 0

    init(count: Int) { marks = [UInt32](repeating: 0, count: count) }

    var count: Int { marks.count }

    /// Starts a new request: nothing is marked.
    @inline(__always)
    mutating func next() {
        stamp &+= 1
        if stamp == 0 {
            for i in marks.indices { marks[i] = 0 }
            stamp = 1
        }
    }

    @inline(__always)
    func isMarked(_ i: Int) -> Bool { marks[i] == stamp }

    @inline(__always)
    mutating func mark(_ i: Int) { marks[i] = stamp }

    /// Marks `i` and says whether it was unmarked.
    @inline(__always)
    mutating func insert(_ i: Int) -> Bool {
        guard marks[i] != stamp else { return false }
        marks[i] = stamp
        return true
    }

    /// Makes room for slots up to `n` (new ones unmarked).
    mutating func grow(to n: Int) {
        if n > marks.count { marks.append(contentsOf: repeatElement(0, count: n - marks.count)) }
    }
}

/// The mean and (population) standard deviation of scores, for z-scores: the one
/// standardisation the softmax policy, the UCB bonus and the off-policy log share, so a
/// temperature or a bonus means the same for every model.
struct Standardisation {
    let mean: Double
    let sd: Double

    init(_ scores: UnsafeBufferPointer<Float>) {
        let n = Double(scores.count)
        var mean = 0.0, squares = 0.0
        for s in scores { mean += Double(s) }
        mean /= n
        for s in scores { squares += (Double(s) - mean) * (Double(s) - mean) }
        self.mean = mean
        sd = (squares / n).squareRoot()
    }

    init(_ scores: [Float], count: Int) {
        self = scores.withUnsafeBufferPointer { Standardisation(UnsafeBufferPointer(rebasing: $0[..<count])) }
    }

    /// The z-score of `score` (0 when every score is equal).
    @inline(__always)
    func z(_ score: Float) -> Double { sd > 0 ? (Double(score) - mean) / sd : 0 }
}
