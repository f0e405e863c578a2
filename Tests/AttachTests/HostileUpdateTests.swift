@testable import Attach
import Foundation
@testable import Models
import Population
import RecCore
import Scenario
import Testing
import Trainer

/// The model topic is written by other programs: a message there, forged or torn, must
/// never crash a server, grow its memory or change its model. Each test takes a real
/// update of a DARE trainer, breaks one field (re-sealing the checksum, as an attacker
/// who copied a real update's identity would), and checks that the server counts an
/// error that names the field, keeps its state, and then applies the honest update.
@Suite("Hostile model updates: every field is checked before anything changes")
struct HostileUpdateTests {
    /// A trainer that has learned one tick, the update it publishes, and a fresh server.
    struct Setup {
        let trainer: StreamTrainer
        let server: StreamServer
        let header: ModelUpdate.Header
        let payload: [UInt8]
        /// Byte offsets of the payload's fields (see `ModelUpdate`).
        let statisticsItem: Int, statisticsClicks: Int, appendItem: Int, appendTick: Int, step: Int, firstRowCount: Int, firstRow: Int, dense: Int
        let rowsOfFirstTable: Int

        init(signer: ModelSigner? = nil) throws {
            let scenario = try Scenario.decode(RolesTests.scenarioText)
            var options = StreamTrainer.Options(topic: "x", deadLetterTopic: "y", format: .wire, checkpointPath: "/nonexistent", groupID: "g", properties: [:])
            options.modelTopic = "m"
            trainer = try StreamTrainer(scenario: scenario, arm: "dare", options: options)
            var serverOptions = StreamServer.Options(
                requestsTopic: "r", recommendationsTopic: "s", deadLetterTopic: "d", modelTopic: "m", groupID: "g", properties: [:])
            serverOptions.modelSigner = signer
            server = try StreamServer(scenario: scenario, arm: "dare", options: serverOptions)
            // Both sides take in tick 0's catalog (its arrivals), as the roles do before
            // the update applies.
            var feed = CatalogFeed(scenario)
            feed.advance(through: 0)
            trainer.trainer.updateCatalog(categories: feed.categories(count: feed.catalog.count), categoryCount: feed.categoryCount)
            server.followCatalog(through: 0)
            trainer.trainer.tracksChanges()
            var feedback: [Feedback] = []
            for u in 0..<UInt32(90) {
                let h = RecordHeader(arm: 0, tick: 0, user: u, sequence: 0)
                feedback.append(Feedback(h, event: .impression, position: 0, item: u * 3, shownTick: 0))
                if u % 3 == 0 { feedback.append(Feedback(h, event: .click, position: 0, item: u * 3, shownTick: 0, viewSeconds: 12)) }
            }
            trainer.trainer.apply(tick: 0, feedback: feedback[...])
            header = ModelUpdate.Header(identity: trainer.modelIdentity, incarnation: 1, sequence: 1, from: -1, through: 0)
            let messages = ModelUpdate.encode(trainer.trainer, header: header)
            try #require(messages.count == 1)
            let p = try ModelUpdate.decode(messages[0]).1
            payload = p

            // Walk the honest payload to find each field.
            func u32(_ at: Int) -> Int { p.withUnsafeBytes { Int($0.loadUnaligned(fromByteOffset: at, as: UInt32.self)) } }
            let changedItems = u32(24)
            try #require(changedItems > 0)
            statisticsItem = 28
            statisticsClicks = 28 + 8
            let appendsAt = 28 + 12 * changedItems
            try #require(u32(appendsAt) > 0)
            appendItem = appendsAt + 8
            appendTick = appendsAt + 12
            let flagAt = appendsAt + 4 + 12 * u32(appendsAt)
            step = flagAt + 1
            let tables = u32(step + 8)
            var at = step + 12
            firstRowCount = at + 4
            firstRow = at + 8
            try #require(u32(firstRowCount) > 0)
            for _ in 0..<tables {
                let d = u32(at), rows = u32(at + 4)
                at += 8 + rows * (4 + 4 * d)
            }
            dense = at + 8
            rowsOfFirstTable = server.state.model!.tables[0].rows
        }

        /// The update as a sealed message, with `edit` applied to its payload.
        func message(_ edit: (inout [UInt8]) -> Void = { _ in }, header h: ModelUpdate.Header? = nil) -> [UInt8] {
            var p = payload
            edit(&p)
            return ModelUpdate.seal(payload: p, header: h ?? header)[0]
        }
    }

    static func put<T: FixedWidthInteger>(_ value: T, at offset: Int, in bytes: inout [UInt8]) {
        withUnsafeBytes(of: value.littleEndian) { for (i, b) in $0.enumerated() { bytes[offset + i] = b } }
    }

    /// Feeds `hostile` to a fresh server: one counted error naming `reason`, the state as
    /// it was; then the honest update applies, so the server went on.
    func rejects(_ s: Setup, _ hostile: [UInt8], _ reason: String, sourceLocation: SourceLocation = #_sourceLocation) {
        let before = s.server.state.stateChecksum(items: 400)
        let appliedHostile = s.server.take(modelMessage: hostile, from: "test @0")
        #expect(!appliedHostile, sourceLocation: sourceLocation)
        #expect(s.server.counters.updateErrors == 1, sourceLocation: sourceLocation)
        #expect(s.server.lastUpdateError?.contains(reason) == true, "\(s.server.lastUpdateError ?? "no error")", sourceLocation: sourceLocation)
        #expect(s.server.state.stateChecksum(items: 400) == before, sourceLocation: sourceLocation)
        #expect(s.server.modelThrough == -1, sourceLocation: sourceLocation)
        #expect(s.server.feed!.through == 0, sourceLocation: sourceLocation)
        let appliedHonest = s.server.take(modelMessage: s.message(), from: "test @1")
        #expect(appliedHonest, sourceLocation: sourceLocation)
        #expect(s.server.state.stateChecksum(items: 400) == s.trainer.trainer.stateChecksum(items: 400), sourceLocation: sourceLocation)
    }

    @Test("the honest update applies: the server then holds the trainer's state")
    func honest() throws {
        let s = try Setup()
        #expect(s.server.state.stateChecksum(items: 400) != s.trainer.trainer.stateChecksum(items: 400))
        #expect(s.server.take(modelMessage: s.message(), from: "test"))
        #expect(s.server.state.stateChecksum(items: 400) == s.trainer.trainer.stateChecksum(items: 400))
        #expect(s.server.counters.updateErrors == 0 && s.server.counters.updatesApplied == 1)
    }

    @Test("a payload size near 2^64 is an error before the identity check, not a trap")
    func payloadSize() throws {
        let s = try Setup()
        var w = BinaryWriter()
        for b in Array("RSMU".utf8) { w.write(b) }
        w.write(ModelUpdate.version)
        w.write("someone else")
        for v: UInt64 in [1, 1] { w.write(v) }
        w.write(Int64(-1)); w.write(Int64(0))
        w.write(UInt32(0)); w.write(UInt32(1))
        w.write(UInt64.max - 3)
        rejects(s, CheckpointFrame.seal(w), "implausible payload size")
    }

    @Test("an update through a tick near 2^62 is refused before the catalog moves")
    func farFutureTick() throws {
        let s = try Setup()
        var h = s.header
        h.through = 1 << 62
        rejects(s, s.message(header: h), "runs through tick \(1 << 62), more than --max-event-lead 10000 ticks past the server's tick \(s.server.catalogAnchor)")
    }

    @Test("a statistics item beyond the catalog is refused, and no column grows")
    func statisticsItem() throws {
        let s = try Setup()
        rejects(s, s.message { Self.put(UInt32(1 << 27), at: s.statisticsItem, in: &$0) }, "item 134217728 is outside the \(s.server.state.catalogCount) items")
        #expect(s.server.state.statistics.count <= 1000)
    }

    @Test("a negative or non-finite count is refused, naming the field")
    func statisticsValue() throws {
        let s = try Setup()
        rejects(s, s.message { Self.put(Float(-1).bitPattern, at: s.statisticsClicks, in: &$0) }, "clicks -1.0 of item")
        let t = try Setup()
        rejects(t, t.message { Self.put(Float.nan.bitPattern, at: t.statisticsClicks, in: &$0) }, "must be finite")
    }

    @Test("a history append of an item beyond the catalog is refused (it would be read through a raw pointer)")
    func appendItem() throws {
        let s = try Setup()
        rejects(s, s.message { Self.put(UInt32(1 << 30), at: s.appendItem, in: &$0) }, "history append of item 1073741824")
    }

    @Test("a history append after the update's last tick is refused")
    func appendTick() throws {
        let s = try Setup()
        rejects(s, s.message { Self.put(Int32(9), at: s.appendTick, in: &$0) }, "history append at tick 9")
    }

    @Test("a step of 2^63 is refused, not a trap")
    func step() throws {
        let s = try Setup()
        rejects(s, s.message { Self.put(UInt64(1) << 63, at: s.step, in: &$0) }, "implausible step 9223372036854775808")
    }

    @Test("a row beyond the table is refused, and no table grows")
    func row() throws {
        let s = try Setup()
        rejects(s, s.message { Self.put(UInt32(1 << 28 - 1), at: s.firstRow, in: &$0) }, "row 268435455 of table 0 is outside its \(s.rowsOfFirstTable) rows")
        #expect(s.server.state.model!.tables[0].rows == s.rowsOfFirstTable)
    }

    @Test("a row count beyond the bytes present is refused before any row is read")
    func rowCount() throws {
        let s = try Setup()
        rejects(s, s.message { Self.put(UInt32.max, at: s.firstRowCount, in: &$0) }, "implausible changed row count 4294967295")
    }

    @Test("a non-finite dense parameter is refused")
    func denseValue() throws {
        let s = try Setup()
        rejects(s, s.message { Self.put(Float.infinity.bitPattern, at: s.dense, in: &$0) }, "dense parameters: value 0 is inf")
    }

    @Test("a run of parts past the joined-size limit is dropped, not held")
    func partFlood() throws {
        var assembler = UpdateAssembler(maxBytes: 100)
        let h = ModelUpdate.Header(identity: "x", incarnation: 1, sequence: 1, from: -1, through: 0, part: 0, parts: 1000)
        var held = 0
        for part in 0..<1000 {
            var p = h
            p.part = part
            if assembler.take(p, [UInt8](repeating: 0, count: 40)) != nil { held += 1 }
        }
        #expect(held == 0)
        #expect(assembler.payload.isEmpty)
        // The third part crosses the limit; the parts after it have no beginning.
        #expect(assembler.abandonedParts == 998)
    }

    @Test("forged requests far ahead are dead letters; a run of them cannot push the catalog past the model's tick plus the lead")
    func requestLead() throws {
        let s = try Setup()
        let server = s.server
        let anchor = server.catalogAnchor
        #expect(anchor == Int64(server.scenario!.ticks) - 1)  // no update yet: the scenario's last tick
        func request(tick: Int64) -> [UInt8] {
            var bytes = [UInt8](repeating: 0, count: Wire.requestSize)
            let r = Request(RecordHeader(arm: 0, tick: UInt32(tick), user: 1, sequence: 0), slateSize: 5)
            _ = bytes.withUnsafeMutableBytes { Wire.encode(r, into: $0) }
            return bytes
        }
        let lead = server.options.maxEventLead
        let within = request(tick: anchor + lead), beyond = request(tick: anchor + lead + 1)
        #expect(throws: Never.self) { try within.withUnsafeBytes { _ = try server.decodeRequest($0) } }
        #expect {
            try beyond.withUnsafeBytes { _ = try server.decodeRequest($0) }
        } throws: { "\($0)".contains("tick \(anchor + lead + 1) is more than --max-event-lead \(lead) ticks past the server's tick \(anchor)") }
        // Serving the one within the lead moves the catalog there, but not the anchor: the
        // next forged request is held to the same bound.
        server.followCatalog(through: anchor + lead)
        #expect(server.catalogAnchor == anchor)
        #expect { try beyond.withUnsafeBytes { _ = try server.decodeRequest($0) } } throws: { _ in true }
    }

    @Test("with a model key, unsigned, badly signed and altered updates are dropped and counted; the signed one applies")
    func signatures() throws {
        let key = [UInt8](repeating: 7, count: 32), other = [UInt8](repeating: 8, count: 32)
        let signer = try ModelSigner(key: key)
        let s = try Setup(signer: signer)
        let honest = s.message()
        // Altered behind a valid checksum (as a forger would re-seal it), under the honest signature.
        let altered = s.message { $0[$0.count / 2] ^= 1 }
        #expect(altered != honest)
        let cases: [(message: [UInt8], signature: String?, reason: String)] = [
            (honest, nil, "unsigned (no recstream-signature header), and this server requires signed updates"),
            (honest, try ModelSigner(key: other).signature(of: honest), "bad signature (signed with another key, or altered)"),
            (altered, signer.signature(of: honest), "bad signature (signed with another key, or altered)"),
            (honest, "zz", "its recstream-signature header is not a SHA-256 HMAC in hex"),
        ]
        for (i, c) in cases.enumerated() {
            #expect(!s.server.take(modelMessage: c.message, signature: c.signature, from: "test @\(i)"))
            #expect(s.server.counters.updatesUnauthenticated == i + 1)
            #expect(s.server.lastUpdateError == "test @\(i): \(c.reason)")
            #expect(s.server.modelThrough == -1)
        }
        #expect(s.server.counters.updateErrors == 0)
        #expect(s.server.take(modelMessage: honest, signature: signer.signature(of: honest), from: "test @9"))
        #expect(s.server.modelThrough == 0)
        // A key too short to be one is refused.
        #expect { try ModelSigner(key: [UInt8](repeating: 1, count: 31)) } throws: {
            "\($0)" == "the model key has 31 bytes; it needs at least 32 (e.g. head -c 32 /dev/urandom > model.key)"
        }
    }
}
