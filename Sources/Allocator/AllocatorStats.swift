import CJemalloc
import RecCore

/// The allocator's own figures (jemalloc's `stats.allocated` and `stats.resident`): what
/// `run --stats` prints and memory benchmarks difference.
public struct AllocatorStats: Sendable, CustomStringConvertible {
    /// Bytes the program has allocated and not freed.
    public var allocated: Int
    /// Bytes of physical memory the allocator holds.
    public var resident: Int
    /// Bytes of large tables on their own huge-page mappings (`HugePages`), outside both.
    public var mapped = 0
    /// Everything the program holds: allocated and mapped.
    public var total: Int { allocated + mapped }

    public static func current() -> AllocatorStats {
        // jemalloc caches its statistics; advancing the epoch refreshes them.
        var epoch: UInt64 = 1
        var newEpoch: UInt64 = 1
        var size = MemoryLayout<UInt64>.size
        _ = mallctl("epoch", &epoch, &size, &newEpoch, size)
        func read(_ name: String) -> Int {
            var value = 0
            var length = MemoryLayout<Int>.size
            return mallctl(name, &value, &length, nil, 0) == 0 ? value : -1
        }
        return AllocatorStats(allocated: read("stats.allocated"), resident: read("stats.resident"), mapped: HugePages.mapped)
    }

    public var description: String {
        "memory (jemalloc): \(mib(allocated)) MiB allocated, \(mib(resident)) MiB resident; embedding tables on huge-page mappings: \(mib(mapped)) MiB"
    }
}

func mib(_ bytes: Int) -> String {
    let tenths = (bytes * 10 + 524_288) / 1_048_576
    return "\(tenths / 10).\(tenths % 10)"
}
