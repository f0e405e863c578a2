import Allocator
import Foundation
import Population
import RecCore
import Scenario

/// `recstream bench population`: how fast the simulated world answers slates and builds
/// lifelong histories, and how much memory users and history entries take.
public struct PopulationBench: Sendable {
    public var users = 20_000
    public var items = 5000
    public var repeats = 5
    /// (users, history length) pairs for the memory figures.
    public var memoryCases: [(users: Int, entries: Int)] = [(100_000, 1000), (1_000_000, 200)]
    public init() {}

    func scenario(users: Int, historyMedian: Int, spread: Double = 1) throws -> Scenario {
        try Scenario.decode("""
        {"name": "bench", "seed": 1,
         "population": {"users": \(users), "requestProbability": 1, "activitySpread": 0, "slateSize": 10,
                        "history": {"median": \(historyMedian), "spread": \(spread), "max": 10000}},
         "catalog": {"items": \(items), "topicDim": 16, "arrivalsPerTick": 0},
         "arms": [{"name": "a", "share": 1, "candidates": 10}]}
        """)
    }

    public func run(progress: (String) -> Void = { _ in }) throws -> BenchReport {
        var results: [BenchResult] = []
        for threads in [1, ProcessInfo.processInfo.activeProcessorCount] where threads == 1 || threads > 1 {
            progress("population: responses on \(threads) thread(s)")
            let world = Population(try scenario(users: users, historyMedian: 0), threads: threads)
            var requests: [Request] = [], feedback: [Feedback] = []
            var headers: [(header: SlateHeader, start: Int)] = []
            var entries: [SlateEntry] = []
            var pairsPerSecond: [Double] = [], slatesPerSecond: [Double] = []
            for t in 0..<repeats {
                requests.removeAll(keepingCapacity: true)
                world.requests(at: Tick(t), into: &requests)
                headers.removeAll(keepingCapacity: true)
                entries.removeAll(keepingCapacity: true)
                var rng = RandomStream(seed: 2, UInt64(t))
                for r in requests {
                    headers.append((SlateHeader(r.header, policy: 0, itemCount: 10), entries.count))
                    for _ in 0..<10 { entries.append(SlateEntry(item: ItemID(rng.nextInt(below: items)), propensity: 1)) }
                }
                feedback.removeAll(keepingCapacity: true)
                let start = ContinuousClock.now
                world.respond(to: headers, entries: entries, at: Tick(t), into: &feedback)
                world.endTick(Tick(t))
                let seconds = (ContinuousClock.now - start).seconds
                slatesPerSecond.append(Double(headers.count) / seconds)
                pairsPerSecond.append(Double(entries.count) / seconds)
            }
            let label = threads == 1 ? "1 core" : "\(threads) cores"
            results.append(BenchResult(name: "slate responses (k=10, dim 16, incl. end of tick), \(label)", unit: "slates/s", samples: slatesPerSecond))
            results.append(BenchResult(name: "(user, item) responses, \(label)", unit: "pairs/s", samples: pairsPerSecond))
        }

        progress("population: ground-truth evaluations")
        let truthWorld = Population(try scenario(users: 1000, historyMedian: 0), threads: 1)
        var evaluations: [Double] = []
        for _ in 0..<repeats {
            var sink: Float = 0
            let start = ContinuousClock.now
            for u in 0..<200 {
                for item in 0..<items { sink += truthWorld.trueClickProbability(user: UserID(u), item: ItemID(item)) }
            }
            evaluations.append(Double(200 * items) / (ContinuousClock.now - start).seconds)
            if sink < 0 { print(sink) }
        }
        results.append(BenchResult(name: "true click probability evaluations, 1 core", unit: "pairs/s", samples: evaluations))

        progress("population: history generation")
        var historyRates: [Double] = []
        for _ in 0..<max(1, repeats / 2) {
            let w = Population(try scenario(users: 20_000, historyMedian: 1000), threads: 1)
            historyRates.append(Double(w.histories.totalEntries) / w.historySeconds)
        }
        results.append(BenchResult(name: "history entries generated, 1 core", unit: "entries/s", samples: historyRates))

        var notes: [String] = []
        for (users, length) in memoryCases {
            progress("population: memory at \(users) users x \(length) entries")
            let base = AllocatorStats.current().allocated
            let bare = Population(try scenario(users: users, historyMedian: 0), threads: nil)
            let bareBytes = AllocatorStats.current().allocated - base
            withExtendedLifetime(bare) {}
            let before = AllocatorStats.current().allocated
            let full = Population(try scenario(users: users, historyMedian: length, spread: 0), threads: nil)
            let fullBytes = AllocatorStats.current().allocated - before
            let entries = full.histories.totalEntries
            withExtendedLifetime(full) {}
            let perUser = Double(bareBytes) / Double(users)
            let perEntry = Double(fullBytes - bareBytes) / Double(entries)
            results.append(BenchResult(name: "memory per user (\(users) users)", unit: "bytes", samples: [perUser]))
            results.append(BenchResult(name: "memory per history entry (\(users) x \(length))", unit: "bytes", samples: [perEntry]))
            notes.append("\(users) users x \(length) entries: \(fullBytes / 1_048_576) MiB in all (jemalloc stats.allocated, catalog included).")
        }
        notes.append("Responses: \(users) users, \(items) items, random slates of 10, median of \(repeats) ticks; memory: difference of jemalloc's stats.allocated around building the world.")
        notes.append("For comparison (shared/baselines/peers-and-kafka.md, not run here): RecoGym about 6-8k events/s, RecSim about 5.5k user steps/s on this machine.")
        return BenchReport(bench: "population", results: results, notes: notes)
    }
}
