import Foundation
import Testing
@testable import Models
@testable import RecCore
@testable import Trainer

/// Settings of a model small enough to reason about in a test.
func smallSettings(representationDim: Int, topK: Int, hidden: (Int, Int)) -> RankingModelSettings {
    var s = RankingModelSettings()
    s.attentionDim = 4
    s.representationDim = representationDim
    s.topK = topK
    s.maxHistory = 10
    (s.hidden1, s.hidden2) = hidden
    return s
}

@Suite("Streaming trainer")
struct TrainerTests {
    @Test("the history store keeps the latest behaviours, in order, up to its cap")
    func historyCap() {
        let store = UserHistories(users: 2, cap: 5)
        for i in 0..<3 { store.append(HistoryEntry(item: ItemID(i), tick: Int32(i)), for: 1) }
        #expect(store.history(of: 1).map(\.item) == [0, 1, 2])
        for i in 3..<23 { store.append(HistoryEntry(item: ItemID(i), tick: Int32(i)), for: 1) }
        #expect(store.history(of: 1).map(\.item) == [18, 19, 20, 21, 22])
        #expect(store.history(of: 0).isEmpty)
        let seeded = UserHistories(users: 2, cap: 3, initial: store)
        #expect(seeded.history(of: 1).map(\.item) == [20, 21, 22])
    }

    @Test("impressions become samples labelled by their clicks; clicks join the history only after training")
    func samplesAndLeakage() {
        let model = RankingModel(smallSettings(representationDim: 4, topK: 2, hidden: (4, 3)), items: 10, categories: 2)
        model.updateCatalog(categories: (0..<10).map { UInt32($0 % 2) }, categoryCount: 2)
        let learner = SequenceLearner(model: model, histories: UserHistories(users: 2, cap: 10), batchSize: 4)
        let h0 = RecordHeader(arm: 0, tick: 3, user: 0, sequence: 0), h1 = RecordHeader(arm: 0, tick: 3, user: 1, sequence: 0)
        let feedback: [Feedback] = [
            Feedback(h0, event: .impression, position: 0, item: 4, shownTick: 3),
            Feedback(h0, event: .impression, position: 1, item: 5, shownTick: 3),
            Feedback(h0, event: .click, position: 1, item: 5, shownTick: 3, viewSeconds: 10),
            Feedback(h1, event: .impression, position: 0, item: 6, shownTick: 3),
            Feedback(h1, event: .click, position: 0, item: 6, shownTick: 3, viewSeconds: 5),
            Feedback(h1, event: .impression, position: 1, item: 7, shownTick: 3),
        ]
        learner.learn(tick: 3, feedback: feedback[...])
        #expect(learner.samples.map(\.label) == [0, 1, 1, 0])
        #expect(learner.samples.map(\.target) == [4, 5, 6, 7])
        // Trained with empty histories (the model cannot have seen its own labels), then
        // the clicks were appended.
        #expect(learner.histories.history(of: 0).map(\.item) == [5])
        #expect(learner.histories.history(of: 1).map(\.item) == [6])
        #expect(learner.evaluations == [TickEvaluation(tick: 3, samples: 4, positives: 2, auc: learner.evaluations[0].auc,
                                                       logLoss: learner.evaluations[0].logLoss)])
        #expect(model.step == 1)

        // Feedback for an item or user the model has no row for is counted and skipped.
        let stranger = RecordHeader(arm: 0, tick: 4, user: 9, sequence: 0)
        learner.learn(tick: 4, feedback: [
            Feedback(h0, event: .impression, position: 0, item: 99, shownTick: 4),
            Feedback(h0, event: .click, position: 0, item: 99, shownTick: 4),
            Feedback(stranger, event: .impression, position: 0, item: 1, shownTick: 4),
        ][...])
        #expect(learner.skipped == 3)
        #expect(learner.histories.history(of: 0).map(\.item) == [5])
    }
}

@Suite("Checkpoints")
struct CheckpointTests {
    func learner(seed: UInt64 = 2, aux: Float = 0) -> SequenceLearner {
        var s = smallSettings(representationDim: 6, topK: 3, hidden: (8, 5))
        s.seed = seed
        s.auxLossWeight = aux
        let model = RankingModel(s, items: 30, categories: 3)
        model.updateCatalog(categories: (0..<30).map { UInt32($0 % 3) }, categoryCount: 3)
        return SequenceLearner(model: model, histories: UserHistories(users: 4, cap: 10), batchSize: 8)
    }

    func tick(_ t: Tick) -> [Feedback] {
        var out: [Feedback] = []
        var rng = RandomStream(seed: 5, UInt64(t))
        for user in 0..<4 {
            let h = RecordHeader(arm: 0, tick: t, user: UserID(user), sequence: t)
            for position in 0..<5 {
                let item = ItemID(rng.nextInt(below: 30))
                out.append(Feedback(h, event: .impression, position: UInt8(position), item: item, shownTick: t))
                if rng.nextDouble() < 0.3 { out.append(Feedback(h, event: .click, position: UInt8(position), item: item, shownTick: t, viewSeconds: 3)) }
            }
        }
        return out
    }

    @Test("a restored trainer continues exactly as the uninterrupted one (with and without the auxiliary head)", arguments: [Float(0), 0.5])
    func roundTrip(aux: Float) throws {
        let uninterrupted = learner(aux: aux), interrupted = learner(aux: aux)
        for t in 0..<3 {
            uninterrupted.learn(tick: Tick(t), feedback: tick(Tick(t))[...])
            interrupted.learn(tick: Tick(t), feedback: tick(Tick(t))[...])
        }
        let bytes = Checkpoint.encode(interrupted, offsets: ["feedback/0": 120, "feedback/1": 98])
        let restored = try Checkpoint.decode(bytes)
        #expect(restored.offsets == ["feedback/0": 120, "feedback/1": 98])
        #expect(restored.learner.model.settings.auxLossWeight == aux && restored.learner.model.layout.count == interrupted.model.layout.count)
        #expect(Checkpoint.encode(restored.learner, offsets: restored.offsets) == bytes)
        for t in 3..<6 {
            uninterrupted.learn(tick: Tick(t), feedback: tick(Tick(t))[...])
            restored.learner.learn(tick: Tick(t), feedback: tick(Tick(t))[...])
        }
        #expect(Checkpoint.encode(restored.learner, offsets: [:]) == Checkpoint.encode(uninterrupted, offsets: [:]))
        #expect(restored.learner.evaluations == uninterrupted.evaluations)
    }

    @Test("a truncated, corrupt or foreign file is a clear error, never a crash")
    func badFiles() throws {
        let l = learner()
        l.learn(tick: 0, feedback: tick(0)[...])
        let bytes = Checkpoint.encode(l, offsets: ["f/0": 7])
        for length in [0, 3, 11, 12, 40, bytes.count / 2, bytes.count - 5, bytes.count - 1] {
            #expect(throws: CheckpointError.self) { try Checkpoint.decode(Array(bytes[..<length])) }
        }
        var flipped = bytes
        flipped[bytes.count / 3] ^= 0x10
        do { _ = try Checkpoint.decode(flipped); Issue.record("expected an error, none was thrown") } catch {
            #expect(error.description.hasPrefix("checkpoint: corrupt or truncated: checksum 0x"))
        }
        do { _ = try Checkpoint.decode(Array("hello world, not a checkpoint".utf8)); Issue.record("expected an error, none was thrown") } catch {
            #expect(error.description == "checkpoint: not a recstream checkpoint (it does not start with \"RSCK\")")
        }
        // A newer version with a valid checksum is refused by name.
        var newer = Array(bytes[..<(bytes.count - 4)])
        newer[4] = 9
        let crc = newer.withUnsafeBytes { CRC32.checksum($0) }
        withUnsafeBytes(of: crc.littleEndian) { newer.append(contentsOf: $0) }
        do { _ = try Checkpoint.decode(newer); Issue.record("expected an error, none was thrown") } catch {
            #expect(error.description == "checkpoint: byte 4: version 9; this build reads version 2")
        }
    }

    /// `bytes` with `value` written at `offset` and the checksum sealed again: a file an
    /// attacker crafted, which the CRC does not catch.
    static func forged<T: FixedWidthInteger>(_ bytes: [UInt8], _ value: T, at offset: Int) -> [UInt8] {
        var b = Array(bytes[..<(bytes.count - 4)])
        withUnsafeBytes(of: value.littleEndian) { for (i, v) in $0.enumerated() { b[offset + i] = v } }
        let crc = b.withUnsafeBytes { CRC32.checksum($0) }
        withUnsafeBytes(of: crc.littleEndian) { b.append(contentsOf: $0) }
        return b
    }

    @Test("a crafted checkpoint with a valid checksum is a clear error, never a trap or a huge allocation")
    func craftedFiles() throws {
        let l = learner()
        l.learn(tick: 0, feedback: tick(0)[...])
        let bytes = Checkpoint.encode(l, offsets: ["f/0": 7])
        #expect(throws: Never.self) { try Checkpoint.decode(bytes) }
        // Where the fields are: magic, version and batch size, then the model.
        let model = 12
        func u32(_ at: Int) -> Int { bytes.withUnsafeBytes { Int($0.loadUnaligned(fromByteOffset: at, as: UInt32.self)) } }
        let dims = model + 4 + u32(model) + 1
        let optimizer = dims + 24 + 16 + 4 + 4 + 8 + 4
        let step = optimizer + 4 + u32(optimizer) + 1
        let categoryFeed = step + 8
        var w = BinaryWriter()
        l.model.write(to: &w)
        let histories = model + w.bytes.count
        let firstEntry = histories + 4 + 8 + 8 + 4 * l.histories.userCount + 8
        try #require(l.histories.history(of: 0).count > 0)

        func refused(_ file: [UInt8], _ reason: String, sourceLocation: SourceLocation = #_sourceLocation) {
            do {
                _ = try Checkpoint.decode(file)
                Issue.record("expected an error (\(reason)), none was thrown", sourceLocation: sourceLocation)
            } catch {
                #expect(error.description.contains(reason), "\(error)", sourceLocation: sourceLocation)
            }
        }
        refused(Self.forged(bytes, UInt32(1 << 24 - 1), at: dims + 12), "implausible model dimensions [4, 6, 3, 16777215, 8, 5]")
        refused(Self.forged(bytes, UInt32(4096), at: dims + 8), "implausible model dimensions")  // K above L
        refused(Self.forged(bytes, UInt64(1) << 63, at: step), "implausible step 9223372036854775808")
        refused(Self.forged(bytes, UInt64(1) << 62, at: categoryFeed), "implausible category feed 4611686018427387904")
        refused(Self.forged(bytes, UInt32(1_000_000), at: categoryFeed + 8), "category 1000000 in the category feed is outside the 3 rows")
        refused(Self.forged(bytes, UInt64(1) << 40, at: histories + 4), "implausible history users 1099511627776")
        refused(Self.forged(bytes, UInt64(100), at: histories + 4), "implausible history store 100 x 10")
        refused(Self.forged(bytes, UInt32(1 << 30), at: firstEntry), "user 0's history names item 1073741824, outside the model's 30 items")
    }

    @Test("save and load go through a file, atomically")
    func files() throws {
        let l = learner()
        l.learn(tick: 0, feedback: tick(0)[...])
        let path = NSTemporaryDirectory() + "/recstream-\(UInt32.random(in: 0...UInt32.max)).ckpt"
        defer { try? FileManager.default.removeItem(atPath: path) }
        try Checkpoint.save(l, offsets: ["a/0": 1], to: path)
        try Checkpoint.save(l, offsets: ["a/0": 2], to: path)  // replaces
        #expect(try Checkpoint.load(from: path).offsets == ["a/0": 2])
        #expect(!FileManager.default.fileExists(atPath: path + ".tmp"))
        do { _ = try Checkpoint.load(from: path + ".missing"); Issue.record("expected an error, none was thrown") } catch {
            #expect(error.description.hasSuffix(".missing: no such file"))
        }
    }

    /// A fresh directory for a test's files.
    static func directory() throws -> String {
        let path = NSTemporaryDirectory() + "recstream-ckpt-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    @Test("a replace keeps the previous generation, and a torn newest falls back to it, saying why")
    func generations() throws {
        let dir = try Self.directory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/t.ckpt"
        let l = learner()
        try Checkpoint.save(l, offsets: ["a/0": 1], to: path)
        #expect(!FileManager.default.fileExists(atPath: CheckpointFile.previous(path)))
        try Checkpoint.save(l, offsets: ["a/0": 2], to: path)
        try Checkpoint.save(l, offsets: ["a/0": 3], to: path)
        #expect(try Checkpoint.load(from: path).offsets == ["a/0": 3])
        #expect(try Checkpoint.decode([UInt8](try Data(contentsOf: URL(fileURLWithPath: CheckpointFile.previous(path))))).offsets == ["a/0": 2])
        // Nothing left beside them but the two generations.
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir).sorted() == ["t.ckpt", "t.ckpt.prev"])

        // The newest torn (a disk that lied about a flush): the previous one is used.
        let whole = try Data(contentsOf: URL(fileURLWithPath: path))
        try whole.prefix(whole.count / 2).write(to: URL(fileURLWithPath: path))
        let found = try #require(try CheckpointFile.read(path) { try Checkpoint.decode($0) })
        #expect(found.value.offsets == ["a/0": 2] && found.path == CheckpointFile.previous(path))
        #expect(found.newestRefused?.contains("t.ckpt: corrupt or truncated") == true, "\(found.newestRefused ?? "nil")")
        // Both torn: an error naming both.
        try Data([1, 2, 3]).write(to: URL(fileURLWithPath: CheckpointFile.previous(path)))
        do {
            _ = try CheckpointFile.read(path) { try Checkpoint.decode($0) }
            Issue.record("expected an error, none was thrown")
        } catch {
            #expect(error.message.contains("t.ckpt: corrupt or truncated") && error.message.contains("t.ckpt.prev: not a recstream checkpoint"), "\(error)")
        }
        // Neither there: nil (a fresh start is the caller's decision).
        #expect(try CheckpointFile.read(dir + "/none.ckpt") { try Checkpoint.decode($0) } == nil)
    }

    @Test("a symlink planted at the checkpoint's path is replaced, its target never written")
    func plantedSymlink() throws {
        let dir = try Self.directory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let target = dir + "/precious", path = dir + "/t.ckpt"
        try Data("precious".utf8).write(to: URL(fileURLWithPath: target))
        try FileManager.default.createSymbolicLink(atPath: path, withDestinationPath: target)
        try CheckpointFile.replace(path, with: [1, 2, 3])
        #expect(try Data(contentsOf: URL(fileURLWithPath: target)) == Data("precious".utf8))
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: CheckpointFile.previous(path)) == target)
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == Data([1, 2, 3]))
        #expect((try FileManager.default.attributesOfItem(atPath: path)[.type] as? FileAttributeType) == .typeRegular)
    }

    @Test("a second trainer on one checkpoint is refused by name; the lock goes with its holder")
    func lock() throws {
        let dir = try Self.directory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/t.ckpt"
        var first: CheckpointLock? = try CheckpointLock(checkpoint: path)
        do {
            _ = try CheckpointLock(checkpoint: path)
            Issue.record("expected an error, none was thrown")
        } catch {
            #expect(error.message.contains("t.ckpt is in use by another trainer (pid \(getpid())"), "\(error)")
        }
        withExtendedLifetime(first) {}
        first = nil
        #expect(throws: Never.self) { _ = try CheckpointLock(checkpoint: path) }
    }

    @Test("temporary files a crashed writer left are removed")
    func leftovers() throws {
        let dir = try Self.directory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/t.ckpt"
        try CheckpointFile.replace(path, with: [1])
        for name in ["t.ckpt.tmp.123.456", "t.ckpt.prev.tmp.123", "other.tmp.1"] { try Data([9]).write(to: URL(fileURLWithPath: dir + "/" + name)) }
        CheckpointFile.removeLeftovers(path)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir).sorted() == ["other.tmp.1", "t.ckpt"])
    }

    @Test("CRC-32 matches zlib's")
    func crc() {
        #expect(Array("123456789".utf8).withUnsafeBytes { CRC32.checksum($0) } == 0xCBF4_3926)
    }
}

@Suite("Poly learner")
struct PolyLearnerTests {
    @Test("requests become slates, clicks first; scored before learning; clicks join the history after; strangers are skipped")
    func slates() {
        let model = tinyPoly(.learned)
        let learner = PolyLearner(model: model, histories: UserHistories(users: 2, cap: model.settings.historyLength), batchSize: 8)
        let h0 = RecordHeader(arm: 0, tick: 3, user: 0, sequence: 0), h1 = RecordHeader(arm: 0, tick: 3, user: 1, sequence: 0)
        let feedback: [Feedback] = [
            Feedback(h0, event: .impression, position: 0, item: 4, shownTick: 3),
            Feedback(h0, event: .impression, position: 1, item: 5, shownTick: 3),
            Feedback(h0, event: .click, position: 1, item: 5, shownTick: 3, viewSeconds: 10),
            Feedback(h0, event: .impression, position: 2, item: 6, shownTick: 3),
            Feedback(h0, event: .click, position: 2, item: 6, shownTick: 3, viewSeconds: 3),
            Feedback(h1, event: .impression, position: 0, item: 7, shownTick: 3),
            Feedback(h1, event: .impression, position: 1, item: 8, shownTick: 3),
        ]
        learner.learn(tick: 3, feedback: feedback[...])
        #expect(learner.slates == [PolySlate(user: 0, start: 0, clicked: 2, shown: 3), PolySlate(user: 1, start: 3, clicked: 0, shown: 2)])
        #expect(learner.items == [5, 6, 4, 7, 8])
        #expect(learner.evaluations.count == 1 && learner.evaluations[0].samples == 5 && learner.evaluations[0].positives == 2)
        #expect(model.step == 1)  // one batch; the slate without a click adds nothing
        #expect(learner.histories.history(of: 0).map(\.item) == [5, 6])
        #expect(learner.histories.history(of: 1).isEmpty)

        let stranger = RecordHeader(arm: 0, tick: 4, user: 9, sequence: 0)
        learner.learn(tick: 4, feedback: [
            Feedback(h0, event: .impression, position: 0, item: 99, shownTick: 4),
            Feedback(stranger, event: .impression, position: 0, item: 2, shownTick: 4),
            Feedback(stranger, event: .click, position: 0, item: 2, shownTick: 4, viewSeconds: 1),
        ])
        #expect(learner.skipped == 3)
        #expect(learner.slates.isEmpty && model.step == 1)
    }
}

@Suite("Weighted targets")
struct WeightedTargetTests {
    @Test("a sample of weight w gives w times the loss and the gradient of weight 1")
    func weightScales() {
        let histories = historyStore([(0..<8).map { HistoryEntry(item: ItemID($0 * 3 % 20), tick: Int32($0)) }])
        func gradients(_ weight: Float) -> (Float, [Float]) {
            let model = tinyModel(.dare)
            let loss = model.accumulateGradients([LabeledSample(user: 0, target: 5, label: 1, weight: weight)], histories: histories)
            return (loss, model.denseGradient)
        }
        let (l1, g1) = gradients(1), (l3, g3) = gradients(2.5)
        #expect(abs(l3 - 2.5 * l1) < 1e-5 * abs(l3))
        for (a, b) in zip(g1, g3) { #expect(abs(b - 2.5 * a) <= 1e-5 * max(abs(b), 1e-6)) }
    }

    @Test("clicks weigh by view seconds; a purchase arriving later is a positive of its own weight; only impressions are evaluated")
    func learnerWeights() {
        let model = RankingModel(smallSettings(representationDim: 4, topK: 2, hidden: (4, 3)), items: 10, categories: 2)
        model.updateCatalog(categories: (0..<10).map { UInt32($0 % 2) }, categoryCount: 2)
        let learner = SequenceLearner(model: model, histories: UserHistories(users: 2, cap: 10), batchSize: 16)
        learner.viewSecondsWeight = 0.5
        learner.purchaseWeight = 3
        let h = RecordHeader(arm: 0, tick: 5, user: 0, sequence: 1), old = RecordHeader(arm: 0, tick: 5, user: 1, sequence: 0)
        learner.learn(tick: 5, feedback: [
            Feedback(old, event: .purchase, position: 2, item: 9, shownTick: 3, amount: 20),  // from a slate of tick 3
            Feedback(h, event: .impression, position: 0, item: 4, shownTick: 5),
            Feedback(h, event: .click, position: 0, item: 4, shownTick: 5, viewSeconds: 99),
            Feedback(h, event: .impression, position: 1, item: 6, shownTick: 5),
        ])
        #expect(learner.samples.map(\.target) == [4, 6, 9])
        #expect(learner.samples.map(\.label) == [1, 0, 1])
        #expect(learner.samples.map(\.weight) == [1 + 0.5 * Float(log1p(99.0)), 1, 3])
        #expect(learner.evaluations.last?.samples == 2 && learner.evaluations.last?.positives == 1)
    }
}
