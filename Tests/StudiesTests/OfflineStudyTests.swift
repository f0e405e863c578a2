import Foundation
import Testing
@testable import RecCore
@testable import RecStream
@testable import Scenario
@testable import Studies
@testable import Population

@Suite("Offline experiment")
struct OfflineExperimentTests {
    func scenario() throws -> Scenario {
        try Scenario.decode("""
        {"name": "offline", "seed": 3,
         "population": {"users": 300, "history": {"median": 80, "max": 400}},
         "catalog": {"items": 500, "topics": 10, "topCategories": 3, "subcategories": 4, "arrivalsPerTick": 0},
         "arms": [{"name": "twin", "share": 0.5, "candidates": 10, "ranking": {"type": "twin", "dim": 4, "topK": 8, "maxHistory": 40}},
                  {"name": "dare", "share": 0.5, "candidates": 10, "ranking": {"type": "dare", "topK": 8, "maxHistory": 40}},
                  {"name": "poly", "share": 0.0001, "candidates": 10, "ranking": {"type": "poly", "userCodes": 4, "sessions": 5}}],
         "offline": {"dims": [4, 8], "seeds": 2, "trainSamples": 3000, "testSamples": 800, "epochs": 1, "coldShare": 0.2}}
        """.replacingOccurrences(of: "0.5, \"candidates\": 10, \"ranking\": {\"type\": \"dare\"", with: "0.4999, \"candidates\": 10, \"ranking\": {\"type\": \"dare\""))
    }

    @Test("one row per model and dimension, every metric in range, the same twice")
    func rows() throws {
        let s = try scenario()
        let cells = try OfflineExperiment(scenario: s).run()
        #expect(cells.map { "\($0.model)/\($0.dim)" } == ["twin/4", "twin/8", "dare/4", "dare/8", "poly/4", "poly/8"])
        for c in cells {
            #expect(c.auc.count == 2 && c.gauc.count == 2 && c.logLoss.count == 2 && c.ndcg.count == 2 && c.coldAUC.count == 2)
            #expect(c.auc.allSatisfy { $0 > 0.5 && $0 < 1 }, "\(c.model)/\(c.dim) AUC \(c.auc)")
            #expect(c.coldAUC.allSatisfy { $0 > 0 && $0 < 1 }, "\(c.model)/\(c.dim) held-out AUC \(c.coldAUC)")
            #expect(c.logLoss.allSatisfy { $0 > 0 && $0 < 1 })
            if c.model == "poly" {
                #expect(c.ndcg.allSatisfy { $0.isNaN }, "Poly has no search stage")
            } else {
                #expect(c.ndcg.allSatisfy { $0 > 0 && $0 <= 1 }, "\(c.model)/\(c.dim) NDCG \(c.ndcg)")
            }
        }
        let again = try OfflineExperiment(scenario: s).run()
        #expect(again.map(\.auc) == cells.map(\.auc) && again.map(\.coldAUC) == cells.map(\.coldAUC))
        let table = OfflineExperiment.table(cells, seeds: 2)
        #expect(table.contains("retrieval NDCG") && table.contains("poly") && table.contains("AUC, held-out items"))
    }

    @Test("held-out items are never a training target, and are in the test split")
    func heldOut() throws {
        let s = try scenario()
        let experiment = OfflineExperiment(scenario: s)
        let world = Population(s)
        let cold = experiment.held(world)
        let share = Double(cold.filter { $0 }.count) / Double(cold.count)
        #expect(share > 0.15 && share < 0.25)
        let (train, test) = experiment.logged(world, seed: s.seed)
        #expect(!train.contains { cold[Int($0.target)] })
        #expect(test.contains { cold[Int($0.target)] })
    }

    @Test("a scenario without sequence models is refused with a reason")
    func nothingToCompare() throws {
        let s = try Scenario.decode(#"{"name": "x", "arms": [{"name": "a", "share": 1}]}"#)
        #expect(throws: RunError.self) { try OfflineExperiment(scenario: s).run() }
        do { _ = try OfflineExperiment(scenario: s).run(); Issue.record("expected an error, none was thrown") } catch {
            #expect("\(error)" == "x: no arm ranks with a sequence model (dare, twin, twin-proj or din) or poly; nothing to compare offline")
        }
    }

    @Test("t quantiles match scipy's")
    func tQuantiles() {
        // scipy.stats.t.ppf(0.975, 2) = 4.302652729911275; t.ppf(0.975, 10) = 2.2281388519649385.
        let (mean, half) = OfflineExperiment.meanAndHalfWidth([1, 2, 3])
        #expect(mean == 2 && abs(half - 4.302652729911275 / 3.0.squareRoot()) < 1e-9)
        let (_, half10) = OfflineExperiment.meanAndHalfWidth((0..<11).map(Double.init))
        let sd10 = (110.0 / 10).squareRoot()
        #expect(abs(half10 - 2.2281388519649385 * sd10 / 11.0.squareRoot()) < 1e-9)
    }
}

@Suite("Offline retrieval check", .serialized)
struct OfflineRetrievalTests {
    @Test("trained towers retrieve better than chance (twice its recall@50), and the same twice")
    func towersBeatChance() throws {
        let s = try Scenario.decode("""
        {"name": "retrieval", "seed": 3,
         "population": {"users": 400, "history": {"median": 30, "max": 100}},
         "catalog": {"items": 1500, "topics": 12, "topicDim": 16},
         "arms": [
           {"name": "two-tower", "share": 0.5, "candidates": 50, "retrieval": {"type": "two-tower", "dim": 16}},
           {"name": "sparc", "share": 0.5, "candidates": 50, "retrieval": {"type": "sparc", "dim": 16, "codes": [16, 8], "interests": 3, "explore": 1}}
         ],
         "offline": {"seeds": 2, "trainSamples": 20000, "epochs": 2}}
        """)
        var check = OfflineRetrieval(scenario: s)
        check.testUsers = 60
        let rows = check.run()
        #expect(rows.map(\.arm) == ["two-tower", "two-tower", "two-tower", "sparc", "sparc", "sparc"])
        #expect(rows.allSatisfy { $0.recall.count == 2 && $0.recall.allSatisfy { (0...1).contains($0) } && $0.ndcg.allSatisfy { (0...1).contains($0) } })
        // Chance: K random items out of 1,500 hold K x K / 1,500 of the oracle's top K.
        let k50 = rows.first { $0.arm == "two-tower" && $0.k == 50 }!
        let recall50: Double = k50.recall.reduce(0, +) / 2
        let chance: Double = 50.0 / 1500
        #expect(recall50 > 2 * chance, "two-tower recall@50 \(k50.recall)")
        #expect(check.run().map(\.ndcg) == rows.map(\.ndcg))
    }
}
