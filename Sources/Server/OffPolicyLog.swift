import Foundation
import Models
import RecCore
import Scenario

// The off-policy log: what other policies would have done with this request.

extension ArmServer {
    // MARK: Off-policy evaluation

    /// For the request just served: the logging propensity of the top item, the reward
    /// model's prediction for it, and for each target policy the chance it would have put
    /// that item on top and its expected predicted reward (the direct method's term), all
    /// from the same candidates and ranking scores. The reward model is the arm's smoothed
    /// click-through rate of the item (1 click in 20 impressions as prior).
    mutating func logOffPolicy(_ request: Request, shown: SlateEntry, statistics: ItemStatistics) {
        let n = candidates.count
        guard let top = candidates.firstIndex(of: shown.item) else { return }
        func q(_ i: Int) -> Double { Double(statistics.smoothedCTR(candidates[i], priorClicks: 1, priorImpressions: 20)) }
        var record = OffPolicyRecord(user: request.header.user, sequence: request.header.sequence,
                                     loggingPropensity: Double(shown.propensity), predictedClick: q(top),
                                     viewSecondsPerClick: statistics.meanViewSecondsPerClick)
        // The best candidate by score (ties to the lower id), as greedy would take it.
        func argmax(_ value: (Int) -> Double) -> Int {
            var best = 0
            for i in 1..<n where (value(i), candidates[best]) > (value(best), candidates[i]) { best = i }
            return best
        }
        var meanQ = 0.0
        for i in 0..<n { meanQ += q(i) }
        meanQ /= Double(n)
        let s = Standardisation(baseScores, count: n)
        func z(_ i: Int) -> Double { s.z(baseScores[i]) }
        let greedy = argmax { Double(self.baseScores[$0]) }
        for (t, policy) in offPolicyTargets.enumerated() where t < OffPolicyRecord.maxTargets {
            var p = Double.nan, dm = Double.nan
            switch policy {
            case .greedy:
                p = top == greedy ? 1 : 0
                dm = q(greedy)
            case .epsilonGreedy(let e):
                p = e / Double(n) + (top == greedy ? 1 - e : 0)
                dm = e * meanQ + (1 - e) * q(greedy)
            case .softmax(let temperature):
                var largest = -Double.infinity
                for i in 0..<n { largest = max(largest, z(i) / temperature) }
                var total = 0.0, weighted = 0.0
                for i in 0..<n {
                    let w = exp(z(i) / temperature - largest)
                    total += w
                    weighted += w * q(i)
                }
                p = exp(z(top) / temperature - largest) / total
                dm = weighted / total
            case .ucb(let bonus):
                let logTotal = log(statistics.totalImpressions + 1)
                let best = argmax { z($0) + bonus * (logTotal / (Double(statistics.impressionCount(self.candidates[$0])) + 1)).squareRoot() }
                p = top == best ? 1 : 0
                dm = q(best)
            case .thompson, .interestSampling:
                break  // no closed form from these scores; not evaluated
            }
            record.targetProbability[t] = p
            record.targetPredictedClick[t] = dm
        }
        offPolicyLog.append(record)
    }
}
