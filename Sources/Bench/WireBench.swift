import Foundation
import RecCore

/// `recstream bench wire`: nanoseconds to encode and to decode one record of each kind
/// (a slate of 10 items), median over repeats of a tight loop. No baseline: these are
/// absolute figures, small beside the transport's per-message cost.
public struct WireBench: Sendable {
    public var iterations = 2_000_000
    public var repeats = 5
    public init() {}

    public func run() -> BenchReport {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 8)
        defer { buffer.deallocate() }
        var sink: UInt64 = 0
        let header = RecordHeader(arm: 1, tick: 7, user: 12345, sequence: 3)
        let entries = (0..<10).map { SlateEntry(item: ItemID($0 * 31), propensity: 0.1) }
        var decoded: [SlateEntry] = []
        decoded.reserveCapacity(16)

        func time(_ body: (Int) -> Void) -> [Double] {
            var samples: [Double] = []
            for _ in 0..<repeats {
                let start = ContinuousClock.now
                for i in 0..<iterations { body(i) }
                samples.append((ContinuousClock.now - start).seconds * 1e9 / Double(iterations))
            }
            return samples
        }
        func result(_ name: String, _ ns: [Double]) -> BenchResult { BenchResult(name: name, unit: "ns/record", samples: ns) }

        var results: [BenchResult] = []
        results.append(result("encode request", time { i in
            var r = Request(header, slateSize: 10)
            r.header.user = UInt32(truncatingIfNeeded: i)
            sink &+= UInt64(Wire.encode(r, into: buffer))
        }))
        let requestSize = Wire.encode(Request(header, slateSize: 10), into: buffer)
        let request = UnsafeRawBufferPointer(rebasing: buffer[..<requestSize])
        results.append(result("decode request", time { _ in
            sink &+= UInt64((try? Wire.decodeRequest(request))?.header.user ?? 0)
        }))
        results.append(result("encode slate (10 items)", time { i in
            var h = header
            h.user = UInt32(truncatingIfNeeded: i)
            sink &+= UInt64(entries.withUnsafeBufferPointer { Wire.encodeSlate(h, policy: 0, entries: $0, into: buffer) })
        }))
        let slateSize = entries.withUnsafeBufferPointer { Wire.encodeSlate(header, policy: 0, entries: $0, into: buffer) }
        let slate = UnsafeRawBufferPointer(rebasing: buffer[..<slateSize])
        results.append(result("decode slate (10 items)", time { _ in
            decoded.removeAll(keepingCapacity: true)
            sink &+= UInt64((try? Wire.decodeSlate(slate, appendingTo: &decoded))?.itemCount ?? 0)
        }))
        let feedback = Feedback(header, event: .click, position: 2, item: 99, shownTick: 7, viewSeconds: 12.5)
        results.append(result("encode feedback", time { i in
            var f = feedback
            f.item = UInt32(truncatingIfNeeded: i)
            sink &+= UInt64(Wire.encode(f, into: buffer))
        }))
        let feedbackSize = Wire.encode(feedback, into: buffer)
        let fb = UnsafeRawBufferPointer(rebasing: buffer[..<feedbackSize])
        results.append(result("decode feedback", time { _ in
            sink &+= UInt64((try? Wire.decodeFeedback(fb))?.item ?? 0)
        }))
        return BenchReport(bench: "wire", results: results, notes: [
            "\(iterations) records per repeat, median of \(repeats) (checksum \(sink % 10))."
        ])
    }
}
