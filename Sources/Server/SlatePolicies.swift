import Foundation
import Models
import RecCore
import Scenario

// Slate policies and the propensity of every item they show.

extension ArmServer {
    mutating func select(k: Int, statistics: ItemStatistics, _ rng: inout RandomStream, into slate: inout [SlateEntry]) {
        let n = candidates.count
        for i in 0..<n { taken[i] = false }
        // Random scores make every ordering equally likely, unless Thompson replaced them.
        let uniform: Bool
        if case .thompson = settings.policy { uniform = false } else { uniform = settings.ranking == .random }
        var nextBest = 0  // index into `order` of the best candidate not yet taken
        func advance(_ nextBest: inout Int, _ taken: [Bool], _ order: [Int32]) {
            while nextBest < n && taken[Int(order[nextBest])] { nextBest += 1 }
        }
        for position in 0..<k {
            let remaining = n - position
            var chosen: Int
            var propensity: Float
            switch settings.policy {
            case .greedy:
                chosen = Int(order[nextBest])
                propensity = 1
            case .epsilonGreedy(let epsilon):
                let best = Int(order[nextBest])
                if rng.nextDouble() < epsilon {
                    chosen = nthUntaken(rng.nextInt(below: remaining))
                } else {
                    chosen = best
                }
                propensity = Float(epsilon / Double(remaining)) + (chosen == best ? Float(1 - epsilon) : 0)
            case .softmax(let temperature):
                (chosen, propensity) = drawSoftmax(temperature: temperature, &rng)
            case .ucb, .thompson:
                // Greedy on the index (UCB) or the posterior draws (Thompson); Thompson's
                // propensities are estimated once the slate is complete.
                chosen = Int(order[nextBest])
                propensity = 1
            case .interestSampling(let temperature):
                (chosen, propensity) = drawInterest(temperature: temperature, &rng)
            }
            if uniform { propensity = 1 / Float(remaining) }
            taken[chosen] = true
            advance(&nextBest, taken, order)
            slate.append(SlateEntry(item: candidates[chosen], propensity: propensity))
        }
        if case .thompson(let a, let b, let samples) = settings.policy, k > 0 {
            estimateThompsonPropensities(slate: &slate, k: k, statistics: statistics, a: a, b: b, samples: samples, &rng)
        }
    }

    /// The chance that each shown item lands at its position when the posteriors are
    /// drawn again: (1 + resamples that put it there) / (1 + resamples), counting the draw
    /// that built the slate, so an estimate is never 0.
    mutating func estimateThompsonPropensities(slate: inout [SlateEntry], k: Int, statistics: ItemStatistics,
                                              a: Double, b: Double, samples: Int, _ rng: inout RandomStream) {
        let n = candidates.count, first = slate.count - k
        // The draws go into `scores`, no longer needed once the slate is built.
        hits.removeAll(keepingCapacity: true)
        shownIndex.removeAll(keepingCapacity: true)
        for j in 0..<k {
            hits.append(1)
            shownIndex.append(candidates.firstIndex(of: slate[first + j].item)!)
        }
        for _ in 0..<samples {
            for i in 0..<n { scores[i] = Float(thompsonDraw(candidates[i], statistics, a, b, &rng)) }
            for j in 0..<k {
                let mine = scores[shownIndex[j]]
                var above = 0
                for i in 0..<n where scores[i] > mine || (scores[i] == mine && candidates[i] < candidates[shownIndex[j]]) { above += 1 }
                if above == j { hits[j] += 1 }
            }
        }
        for j in 0..<k { slate[first + j].propensity = Float(hits[j]) / Float(samples + 1) }
    }

    /// SPARC's interest sampling: an interest drawn in proportion to p^(1/T) among those the
    /// untaken candidates came from (each interest once, whatever its number of
    /// candidates), then its best-ranked untaken candidate. The propensity is the draw's
    /// probability: within the interest the choice is certain.
    mutating func drawInterest(temperature: Double, _ rng: inout RandomStream) -> (Int, Float) {
        let n = candidates.count
        // The best untaken candidate of each interest, in rank order (`order`).
        var total = 0.0
        firsts.removeAll(keepingCapacity: true)
        interestsSeen.next()
        for r in 0..<n {
            let i = Int(order[r])
            guard !taken[i], i < sources.count else { continue }
            // Random fill-ins (interest -1) form an interest of their own.
            let slot = Int(sources[i].interest) + 1
            interestsSeen.grow(to: slot + 1)
            guard interestsSeen.insert(slot) else { continue }
            let p = Double(max(sources[i].interestProbability, 1e-12))
            let w = pow(p, 1 / temperature)
            firsts.append((i, w))
            total += w
        }
        var u = rng.nextDouble() * total
        for f in firsts {
            if u < f.weight { return (f.candidate, Float(f.weight / total)) }
            u -= f.weight
        }
        let last = firsts[firsts.count - 1]
        return (last.candidate, Float(last.weight / total))
    }

    /// The index of the `n`-th candidate not yet taken, in candidate order.
    func nthUntaken(_ n: Int) -> Int {
        var seen = 0
        for i in 0..<candidates.count where !taken[i] {
            if seen == n { return i }
            seen += 1
        }
        preconditionFailure("fewer untaken candidates than drawn")
    }

    /// Draws a remaining candidate with probability proportional to exp(z / T), where z is
    /// the score standardised over all candidates (so T means the same for every model).
    func drawSoftmax(temperature: Double, _ rng: inout RandomStream) -> (Int, Float) {
        let n = candidates.count
        let s = Standardisation(scores, count: n)
        // Subtract the largest remaining exponent for numerical safety.
        var top = -Double.infinity
        for i in 0..<n where !taken[i] { top = max(top, s.z(scores[i]) / temperature) }
        var total = 0.0
        for i in 0..<n where !taken[i] { total += exp(s.z(scores[i]) / temperature - top) }
        var u = rng.nextDouble() * total
        var last = 0
        for i in 0..<n where !taken[i] {
            let w = exp(s.z(scores[i]) / temperature - top)
            last = i
            if u < w { return (i, Float(w / total)) }
            u -= w
        }
        let w = exp(s.z(scores[last]) / temperature - top)
        return (last, Float(w / total))
    }
}
