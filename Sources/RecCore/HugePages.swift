#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Synchronization

/// Large buffers read at random (embedding tables), each on its own anonymous mapping
/// aligned to 2 MiB, asked for transparent huge pages before the first touch: a random
/// row then costs a cache miss without a TLB miss and its page walk. jemalloc does not see
/// these mappings, so `AllocatorStats` (Allocator) reports them apart (`mapped`).
public enum HugePages {
    /// Buffers at least this large get their own mapping; smaller ones are not worth it.
    public static let minimumBytes = 2 << 20
    private static let mappedBytes = Atomic<Int>(0)
    /// Bytes mapped by `allocate` and not yet given back.
    public static var mapped: Int { mappedBytes.load(ordering: .relaxed) }

    /// A zero-filled, 2 MiB-aligned buffer of at least `bytes` (>= `minimumBytes`); traps
    /// when the system has no memory left, as an allocation does.
    public static func allocate(bytes: Int) -> UnsafeMutableRawPointer {
        precondition(bytes >= minimumBytes)
        let length = rounded(bytes)
        // Over-map by one huge page, then trim both ends to a 2 MiB boundary.
        guard let mapped = mmap(nil, length + minimumBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), mapped != MAP_FAILED else {
            fatalError("out of memory: cannot map \(length) bytes")
        }
        let address = UInt(bitPattern: mapped), page = UInt(minimumBytes)
        let aligned = (address + page - 1) / page * page
        if aligned > address { munmap(mapped, Int(aligned - address)) }
        let tail = page - (aligned - address)
        if tail > 0 { munmap(UnsafeMutableRawPointer(bitPattern: aligned + UInt(length)), Int(tail)) }
        let buffer = UnsafeMutableRawPointer(bitPattern: aligned)!
        #if os(Linux)
        _ = madvise(buffer, length, MADV_HUGEPAGE)
        #endif
        mappedBytes.add(length, ordering: .relaxed)
        return buffer
    }

    /// Gives back a buffer `allocate(bytes:)` returned, with the same `bytes`.
    public static func free(_ buffer: UnsafeMutableRawPointer, bytes: Int) {
        let length = rounded(bytes)
        munmap(buffer, length)
        mappedBytes.subtract(length, ordering: .relaxed)
    }

    private static func rounded(_ bytes: Int) -> Int { (bytes + minimumBytes - 1) / minimumBytes * minimumBytes }
}
