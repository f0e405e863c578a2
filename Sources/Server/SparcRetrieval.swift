import Foundation
import Models
import RecCore
import Scenario

// Two-tower and SPARC retrieval: candidates from the towers and the interest index.

extension ArmServer {
    /// Two-tower or SPARC retrieval into `candidates` (and each one's source into `sources`).
    ///
    /// SPARC (shared/baselines/sparc-reference.md section 3): the user's serving
    /// distribution is p^mix pi^(1 - mix), normalised, from the towers' p(k | u) and the
    /// user's running distribution pi; the `interests` most probable codes are retrieved
    /// for, with quotas following their probabilities; `explore` more codes are drawn in
    /// proportion to p^(1/T) among codes the user has not clicked lately, each retrieving
    /// `exploreQuota` items of its own bucket. An interest's items are its bucket ranked
    /// by u (the default), or found with the query u_k = u + e0_k through the index. The
    /// union, deduplicated, is ordered by p_k sigma(score) and cut to `candidates`; random
    /// live items fill what the buckets could not.
    mutating func retrieveWithTowers(_ user: UserID, _ t: TowerRetrieval, _ towers: InterestTowers, _ users: InterestUsers,
                                     _ rng: inout RandomStream) {
        candidates.removeAll(keepingCapacity: true)
        sources.removeAll(keepingCapacity: true)
        seen.next()
        let d = towers.settings.dim
        if userVector.count != d { userVector = [Float](repeating: 0, count: d) }
        userVector.withUnsafeMutableBufferPointer { towers.servingUserVector(users.recent(user), into: $0.baseAddress!) }
        func add(_ item: ItemID, _ source: RetrievedCandidate) {
            guard Int(item) < seen.count, isLive[Int(item)], !seen.isMarked(Int(item)), candidates.count < settings.candidates else { return }
            seen.mark(Int(item))
            candidateIndex[Int(item)] = Int32(candidates.count)
            candidates.append(item)
            sources.append(source)
        }
        if let s = t.serving, let quantizer = towers.quantizer {
            let k0 = quantizer.codes[0]
            if distribution.count != k0 {
                distribution = [Double](repeating: 0, count: k0)
                serving = distribution
            }
            userVector.withUnsafeBufferPointer { u in
                distribution.withUnsafeMutableBufferPointer { p in
                    serving.withUnsafeMutableBufferPointer { out in
                        towers.servingDistribution(u.baseAddress!, features: users.features(user), running: users.running(user), mix: s.mix,
                                                   towerDistribution: p.baseAddress!, into: out.baseAddress!)
                    }
                }
            }
            // The top interests, most probable first (ties to the lower code).
            chosen.removeAll(keepingCapacity: true)
            for _ in 0..<min(s.interests, k0) {
                var best = -1
                for k in 0..<k0 where !chosen.contains(k) && (best < 0 || serving[k] > serving[best]) { best = k }
                chosen.append(best)
            }
            let exploit = chosen.count
            // Exploration among codes the user has not clicked lately.
            if weights.count != k0 { weights = [Double](repeating: 0, count: k0) }
            for k in 0..<k0 { weights[k] = chosen.contains(k) ? 0 : pow(serving[k], 1 / s.exploreTemperature) }
            for item in users.recent(user) where Int(item) < towers.index.codeOf.count {
                let c = Int(towers.index.codeOf[Int(item)])
                if c >= 0 { weights[c] = 0 }
            }
            for _ in 0..<s.explore {
                let sum = weights.reduce(0, +)
                guard sum > 0 else { break }
                var r = rng.nextDouble() * sum, pick = -1
                for k in 0..<k0 where weights[k] > 0 {
                    pick = k
                    if r < weights[k] { break }
                    r -= weights[k]
                }
                guard pick >= 0 else { break }
                chosen.append(pick)
                weights[pick] = 0
            }
            // Quotas, retrieval, merge.
            let exploreTotal = (chosen.count - exploit) * s.exploreQuota
            let budget = max(0, settings.candidates - exploreTotal)
            let exploitMass = chosen.prefix(exploit).reduce(0.0) { $0 + serving[$1] }
            merged.removeAll(keepingCapacity: true)
            if query.count != d { query = [Float](repeating: 0, count: d) }
            for (n, k) in chosen.enumerated() {
                let explored = n >= exploit
                let quota = explored ? s.exploreQuota : max(s.minQuota, Int((Double(budget) * serving[k] / max(exploitMass, 1e-12)).rounded()))
                top.reset(count: quota)
                if s.conditioned {
                    userVector.withUnsafeBufferPointer { u in query.withUnsafeMutableBufferPointer { towers.interestQuery(u.baseAddress!, k, into: $0.baseAddress!) } }
                    query.withUnsafeBufferPointer { q in
                        if explored {
                            towers.retrieve(query: q.baseAddress!, bucket: k, into: &top)
                        } else {
                            towers.retrieve(query: q.baseAddress!, live: liveItems, probes: s.probes == 0 ? nil : s.probes, into: &top, probing: &probing)
                        }
                    }
                } else {
                    userVector.withUnsafeBufferPointer { towers.retrieve(query: $0.baseAddress!, bucket: k, into: &top) }
                }
                for (score, item) in top.heap {
                    merged.append((Float(serving[k]) / (1 + exp(-score)), item,
                                   RetrievedCandidate(item: item, score: score, interest: Int32(k), explored: explored, interestProbability: Float(serving[k]))))
                }
            }
            merged.sort { ($0.key, $1.item) > ($1.key, $0.item) }
            for m in merged { add(m.item, m.source) }
        } else {
            top.reset(count: settings.candidates)
            userVector.withUnsafeBufferPointer { towers.retrieve($0.baseAddress!, live: liveItems, into: &top) }
            top.sortBestFirst()
            for (score, item) in top.heap {
                add(item, RetrievedCandidate(item: item, score: score, interest: -1, explored: false, interestProbability: 1))
            }
        }
        // What the towers could not fill, random live items fill (as other retrieval does).
        let wanted = min(settings.candidates, liveItems.count)
        while candidates.count < wanted {
            add(liveItems[rng.nextInt(below: liveItems.count)], RetrievedCandidate(item: 0, score: 0, interest: -1, explored: false, interestProbability: 0))
        }
    }
}
