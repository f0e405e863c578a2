import Foundation
import Models
import RecCore
import Scenario

// Random and popularity retrieval.

extension ArmServer {
    mutating func retrieve(_ rng: inout RandomStream) {
        candidates.removeAll(keepingCapacity: true)
        seen.next()
        if case .popularity = settings.retrieval {
            for item in popular where candidates.count < settings.candidates {
                seen.mark(Int(item))
                candidates.append(item)
            }
        }
        // The rest uniformly at random from the live items, without repeats (rejection
        // against the marks); if retirements left too few, fewer candidates.
        let wanted = min(settings.candidates, liveItems.count)
        while candidates.count < wanted {
            let item = liveItems[rng.nextInt(below: liveItems.count)]
            if seen.insert(Int(item)) { candidates.append(item) }
        }
    }
}
