import Foundation
import Models
import RecCore
import Scenario

// Scoring the candidates with the arm's ranking model.

extension ArmServer {
    mutating func score(_ statistics: ItemStatistics, _ ranking: ArmModels.Ranking, user: UserID, tick: Tick, _ rng: inout RandomStream) {
        let n = candidates.count
        switch ranking {
        case .sequence(let model, let histories):
            let history = histories.history(of: user)
            candidates.withUnsafeBufferPointer { c in
                scores.withUnsafeMutableBufferPointer { s in model.score(history: history, candidates: c, into: s.baseAddress!) }
            }
        case .poly(let poly, let histories):
            let polyHistory = histories.history(of: user)
            candidates.withUnsafeBufferPointer { c in
                scores.withUnsafeMutableBufferPointer { s in poly.score(history: polyHistory, candidates: c, into: s.baseAddress!) }
            }
        case .blend(let poly, let polyHistories, let model, let histories, let youngTicks):
            let history = histories.history(of: user), polyHistory = polyHistories.history(of: user)
            // Both give click probabilities: the sequence model's for every candidate, then
            // Poly's in place of it for the young ones (whose id rows have learned little).
            youngIndex.removeAll(keepingCapacity: true)
            youngItems.removeAll(keepingCapacity: true)
            for i in 0..<n where Int64(tick) - Int64(arrived[Int(candidates[i])]) < Int64(youngTicks) {
                youngIndex.append(i)
                youngItems.append(candidates[i])
            }
            candidates.withUnsafeBufferPointer { c in
                scores.withUnsafeMutableBufferPointer { s in model.score(history: history, candidates: c, into: s.baseAddress!) }
            }
            if !youngItems.isEmpty {
                if youngScores.count < youngItems.count { youngScores = [Float](repeating: 0, count: settings.candidates) }
                youngItems.withUnsafeBufferPointer { c in
                    youngScores.withUnsafeMutableBufferPointer { s in poly.score(history: polyHistory, candidates: c, into: s.baseAddress!) }
                }
                for (k, i) in youngIndex.enumerated() { scores[i] = youngScores[k] }
            }
        case .random:
            for i in 0..<n { scores[i] = rng.nextFloat() }
        case .popularity:
            for i in 0..<n { scores[i] = statistics.clickCount(candidates[i]) }
        case .ctr(let a, let b):
            for i in 0..<n { scores[i] = statistics.smoothedCTR(candidates[i], priorClicks: Float(a), priorImpressions: Float(b)) }
        }
        if !offPolicyTargets.isEmpty {
            for i in 0..<n { baseScores[i] = scores[i] }
        }
        switch settings.policy {
        case .ucb(let bonus):
            // Standardised, so the bonus means the same for every model.
            standardiseScores()
            let total = log(statistics.totalImpressions + 1)
            for i in 0..<n {
                scores[i] += Float(bonus * (total / (Double(statistics.impressionCount(candidates[i])) + 1)).squareRoot())
            }
        case .thompson(let a, let b, _):
            for i in 0..<n { scores[i] = Float(thompsonDraw(candidates[i], statistics, a, b, &rng)) }
        default:
            break
        }
        // Best first; equal scores by item id, so the order is a function of the inputs.
        for i in 0..<n { order[i] = Int32(i) }
        order.withUnsafeMutableBufferPointer { o in
            scores.withUnsafeBufferPointer { s in
                candidates.withUnsafeBufferPointer { c in
                    o[0..<n].sort { (s[Int($0)], c[Int($1)]) > (s[Int($1)], c[Int($0)]) }
                }
            }
        }
    }

    /// z-scores of the candidates' scores (all 0 when they are all equal).
    mutating func standardiseScores() {
        let n = candidates.count
        let s = Standardisation(scores, count: n)
        for i in 0..<n { scores[i] = Float(s.z(scores[i])) }
    }

    /// A draw of the item's click-through rate from its Beta posterior: prior Beta(a, b - a)
    /// updated with the arm's clicks and non-clicks.
    func thompsonDraw(_ item: ItemID, _ statistics: ItemStatistics, _ a: Double, _ b: Double, _ rng: inout RandomStream) -> Double {
        let clicks = Double(statistics.clickCount(item)), shown = Double(statistics.impressionCount(item))
        return rng.nextBeta(a + clicks, b - a + max(0, shown - clicks))
    }
}
