import Foundation
import Models
import RecCore

/// A checkpoint of one arm's trainer: the model with its optimizer state, the users'
/// history store, the evaluations so far, and the consumed offsets the state covers (so
/// a restarted trainer resumes exactly where the checkpoint left off).
///
/// File format (little-endian): "RSCK", version (u32), the model, the history store, the
/// evaluations, the offsets (count, then topic/partition key and offset), and a CRC-32 of
/// everything before it. Files are replaced crash-safe, keeping the previous generation
/// (`CheckpointFile`).
public enum Checkpoint {
    /// 2: the model's settings carry the auxiliary head's loss weight, the table optimizer
    /// and the BatchNorm flag.
    public static let version: UInt32 = 2
    static let magic: [UInt8] = Array("RSCK".utf8)

    public struct Contents {
        public var learner: SequenceLearner
        /// Next offset to consume, per "topic/partition".
        public var offsets: [String: Int64]
    }

    public static func encode(_ learner: SequenceLearner, offsets: [String: Int64]) -> [UInt8] {
        var w = BinaryWriter()
        for b in magic { w.write(b) }
        w.write(version)
        write(learner, to: &w)
        w.write(UInt64(offsets.count))
        for key in offsets.keys.sorted() {
            w.write(key)
            w.write(offsets[key]!)
        }
        return CheckpointFrame.seal(w)
    }

    public static func decode(_ bytes: [UInt8]) throws(CheckpointError) -> Contents {
        switch CheckpointFrame.check(bytes, magic: magic) {
        case .notOurs?: throw CheckpointError("not a recstream checkpoint (it does not start with \"RSCK\")")
        case .checksum(let computed, let stored)?:
            throw CheckpointError("corrupt or truncated: checksum \(hex(computed)) does not match the stored \(hex(stored))")
        case nil: break
        }
        do {
            return try CheckpointFrame.read(bytes) { r in
                let v = try r.read(UInt32.self, "version")
                guard v == version else { throw BinaryReadError("version \(v); this build reads version \(version)", at: 4) }
                let learner = try readLearner(from: &r)
                let count = try r.readCount("offset count", elementSize: 12)
                var offsets: [String: Int64] = [:]
                for _ in 0..<count { offsets[try r.readString("offset key")] = try r.read(Int64.self, "offset") }
                guard r.remaining == 0 else { throw BinaryReadError("\(r.remaining) unexpected bytes after the offsets", at: r.offset) }
                return Contents(learner: learner, offsets: offsets)
            }
        } catch let error as BinaryReadError {
            throw CheckpointError(error.description)
        } catch {
            throw CheckpointError("\(error)")
        }
    }

    /// A sequence learner: batch size, model with optimizer state, history store and evaluations.
    public static func write(_ learner: SequenceLearner, to w: inout BinaryWriter) {
        w.write(UInt32(learner.batchSize))
        learner.model.write(to: &w)
        learner.histories.write(to: &w)
        w.write(UInt64(learner.evaluations.count))
        for e in learner.evaluations {
            w.write(e.tick); w.write(UInt64(e.samples)); w.write(UInt64(e.positives)); w.write(e.auc); w.write(e.logLoss)
        }
    }

    public static func readLearner(from r: inout BinaryReader) throws(BinaryReadError) -> SequenceLearner {
        let batch = Int(try r.read(UInt32.self, "batch size"))
        let model = try RankingModel.read(from: &r)
        let historiesAt = r.offset
        let histories = try UserHistories.read(from: &r)
        try model.checkHistories(histories, at: historiesAt)
        let learner = SequenceLearner(model: model, histories: histories, batchSize: max(batch, 1))
        let evaluations = try r.readCount("evaluation count", elementSize: 36)
        for _ in 0..<evaluations {
            learner.evaluations.append(TickEvaluation(
                tick: try r.read(UInt32.self, "tick"), samples: try r.readInt("samples"),
                positives: try r.readInt("positives"), auc: try r.readDouble("auc"), logLoss: try r.readDouble("log loss")))
        }
        return learner
    }

    /// Replaces the checkpoint at `path` with `bytes`, crash-safe (`CheckpointFile.replace`).
    public static func writeAtomically(_ bytes: [UInt8], to path: String) throws(CheckpointError) {
        try CheckpointFile.replace(path, with: bytes)
    }

    /// Writes atomically: a temporary file beside `path`, then a rename.
    public static func save(_ learner: SequenceLearner, offsets: [String: Int64], to path: String) throws(CheckpointError) {
        try writeAtomically(encode(learner, offsets: offsets), to: path)
    }

    /// The newest generation at `path` that decodes (`CheckpointFile.read`).
    public static func load(from path: String) throws(CheckpointError) -> Contents {
        guard let found = try CheckpointFile.read(path, { try decode($0) }) else { throw CheckpointError("\(path): no such file") }
        return found.value
    }

    static func hex(_ v: UInt32) -> String {
        let s = String(v, radix: 16)
        return "0x" + String(repeating: "0", count: 8 - s.count) + s
    }
}

/// A checkpoint that cannot be used, and why.
public struct CheckpointError: Error, CustomStringConvertible, Sendable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { "checkpoint: \(message)" }
}
