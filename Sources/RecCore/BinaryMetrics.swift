/// Metrics of a binary classifier's scores.
public enum BinaryMetrics {
    /// The area under the ROC curve: the probability that a random positive scores above a
    /// random negative, ties counting one half (Mann-Whitney U with average ranks). NaN
    /// when either class is absent.
    public static func auc(scores: [Float], labels: [Bool]) -> Double {
        precondition(scores.count == labels.count)
        let order = scores.indices.sorted { scores[$0] < scores[$1] }
        var rankSum = 0.0
        var positives = 0
        var i = 0
        while i < order.count {
            var j = i
            while j + 1 < order.count && scores[order[j + 1]] == scores[order[i]] { j += 1 }
            let averageRank = Double(i + j) / 2 + 1
            for k in i...j where labels[order[k]] {
                rankSum += averageRank
                positives += 1
            }
            i = j + 1
        }
        let negatives = scores.count - positives
        guard positives > 0 && negatives > 0 else { return .nan }
        return (rankSum - Double(positives) * Double(positives + 1) / 2) / (Double(positives) * Double(negatives))
    }

    /// Mean binary cross-entropy of probabilities, clamped away from 0 and 1.
    public static func logLoss(probabilities: [Float], labels: [Bool]) -> Double {
        var total = 0.0
        for (p, y) in zip(probabilities, labels) {
            let q = min(max(Double(p), 1e-7), 1 - 1e-7)
            total -= y ? log(q) : log(1 - q)
        }
        return total / Double(max(probabilities.count, 1))
    }
}

#if canImport(Glibc)
import Glibc
#endif

/// How a model predicted one tick's samples before learning from them (progressive,
/// test-then-train evaluation).
public struct TickEvaluation: Sendable, Equatable {
    public var tick: Tick
    public var samples: Int
    public var positives: Int
    public var auc: Double
    public var logLoss: Double
    public init(tick: Tick, samples: Int, positives: Int, auc: Double, logLoss: Double) {
        self.tick = tick
        self.samples = samples
        self.positives = positives
        self.auc = auc
        self.logLoss = logLoss
    }
}
