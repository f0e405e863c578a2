#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// A checkpoint file that survives a crash at any instruction, and power loss.
///
/// **Replace.** The new bytes go to a temporary file of their own beside the checkpoint
/// (created exclusively and without following links, so a planted symlink cannot redirect
/// the write), which is flushed to disk; the current checkpoint is hard-linked as the
/// previous generation (`PATH.prev`); the temporary file is renamed over the checkpoint;
/// and the directory is flushed, so the rename itself survives power loss. At every moment
/// `PATH` is a whole checkpoint (the old or the new one) and `PATH.prev` a whole older one.
///
/// **Read.** `PATH` first; if it is missing or does not decode (a disk that lied about a
/// flush, a torn copy), `PATH.prev`, with the reason the newest was passed over.
///
/// **Lock.** `CheckpointLock` keeps a second trainer off the same checkpoint.
public enum CheckpointFile {
    /// The previous generation of the checkpoint at `path`.
    public static func previous(_ path: String) -> String { path + ".prev" }

    /// Replaces the file at `path` with `bytes` (see the type's description).
    public static func replace(_ path: String, with bytes: [UInt8]) throws(CheckpointError) {
        let directory = (path as NSString).deletingLastPathComponent
        let temporary = "\(path).tmp.\(getpid()).\(UInt32.random(in: 0...UInt32.max))"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw failure("cannot create \(temporary)") }
        var written = 0
        while written < bytes.count {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + written, $0.count - written) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else {
                let error = failure("cannot write \(temporary)")
                close(fd)
                unlink(temporary)
                throw error
            }
            written += n
        }
        guard fsync(fd) == 0 else {
            let error = failure("cannot flush \(temporary) to disk")
            close(fd)
            unlink(temporary)
            throw error
        }
        close(fd)
        CrashPoint.reach(.written)
        // The current generation becomes the previous one: a new link, renamed over the old.
        if access(path, F_OK) == 0 {
            let staged = "\(previous(path)).tmp.\(getpid())"
            unlink(staged)
            guard link(path, staged) == 0, rename(staged, previous(path)) == 0 else {
                let error = failure("cannot keep the previous checkpoint as \(previous(path))")
                unlink(staged)
                unlink(temporary)
                throw error
            }
        }
        CrashPoint.reach(.linked)
        guard rename(temporary, path) == 0 else {
            let error = failure("cannot rename \(temporary) to \(path)")
            unlink(temporary)
            throw error
        }
        CrashPoint.reach(.renamed)
        let dfd = open(directory.isEmpty ? "." : directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard dfd >= 0 else { throw failure("cannot open the directory of \(path) to flush it") }
        defer { close(dfd) }
        guard fsync(dfd) == 0 else { throw failure("cannot flush the directory of \(path) to disk") }
    }

    /// What `read` found: the decoded checkpoint, from which file, and why the newest
    /// was passed over (nil when it was used).
    public struct Found<T> {
        public var value: T
        public var path: String
        public var newestRefused: String?
    }

    /// The newest generation of the checkpoint at `path` that `decode` accepts; nil when
    /// there is none at all. Throws when a checkpoint exists and no generation decodes
    /// (every reason named).
    public static func read<T>(_ path: String, _ decode: ([UInt8]) throws -> T) throws(CheckpointError) -> Found<T>? {
        var reasons: [String] = []
        for candidate in [path, previous(path)] {
            guard FileManager.default.fileExists(atPath: candidate) else { continue }
            guard let data = FileManager.default.contents(atPath: candidate) else {
                reasons.append("\(candidate): cannot read it")
                continue
            }
            do {
                return Found(value: try decode([UInt8](data)), path: candidate, newestRefused: reasons.first)
            } catch {
                reasons.append("\(candidate): \((error as? CheckpointError)?.message ?? "\(error)")")
            }
        }
        if reasons.isEmpty { return nil }
        throw CheckpointError(reasons.joined(separator: "; "))
    }

    /// Removes temporary files that a crashed writer left beside `path` (call with the
    /// lock held: then no writer is at work).
    public static func removeLeftovers(_ path: String) {
        let directory = (path as NSString).deletingLastPathComponent
        let name = (path as NSString).lastPathComponent
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: directory.isEmpty ? "." : directory)) ?? []
        for entry in entries where entry.hasPrefix(name + ".tmp.") || entry.hasPrefix(name + ".prev.tmp.") {
            unlink(directory.isEmpty ? entry : "\(directory)/\(entry)")
        }
    }

    static func failure(_ what: String) -> CheckpointError {
        CheckpointError("\(what): \(String(cString: strerror(errno)))")
    }
}

/// An exclusive lock on a checkpoint (`PATH.lock`, flock), held while a trainer runs: a
/// second trainer given the same checkpoint fails at start, naming the holder's pid,
/// instead of both writing it. The kernel drops the lock when its holder dies, kill -9
/// included, so a restarted trainer never finds a stale one.
public final class CheckpointLock {
    let fd: Int32
    public let path: String

    public init(checkpoint: String) throws(CheckpointError) {
        path = checkpoint + ".lock"
        fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw CheckpointFile.failure("cannot open the lock \(path)") }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let busy = errno == EWOULDBLOCK
            let holder = FileManager.default.contents(atPath: path).map { String(decoding: $0, as: UTF8.self) } ?? ""
            close(fd)
            if busy {
                throw CheckpointError("\(checkpoint) is in use by another trainer (pid \(holder.isEmpty ? "unknown" : holder), holding \(path)); give each trainer a checkpoint of its own")
            }
            throw CheckpointFile.failure("cannot lock \(path)")
        }
        let pid = Array(String(getpid()).utf8)
        _ = ftruncate(fd, 0)
        _ = pid.withUnsafeBytes { pwrite(fd, $0.baseAddress!, $0.count, 0) }
    }

    deinit {
        flock(fd, LOCK_UN)
        close(fd)
    }
}

/// Crash tests' hook (Tests/cli/attach-kill.sh): with `RECSTREAM_CRASH_AT` set to
/// `written`, `linked` or `renamed`, the process kills itself with SIGKILL when its
/// checkpoint replace reaches that point for the first time, as an untimely kill -9
/// or power cut would. Unset (always, outside tests), it costs one comparison.
public enum CrashPoint: String, Sendable {
    /// The new checkpoint is on disk under its temporary name.
    case written
    /// The current checkpoint is also the previous generation.
    case linked
    /// The new checkpoint has its name; the directory is not yet flushed.
    case renamed

    static let armed: CrashPoint? = ProcessInfo.processInfo.environment["RECSTREAM_CRASH_AT"].flatMap(CrashPoint.init(rawValue:))

    static func reach(_ point: CrashPoint) {
        if armed == point { kill(getpid(), SIGKILL) }
    }
}
