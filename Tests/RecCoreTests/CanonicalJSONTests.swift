import Testing
@testable import RecCore

@Suite("Canonical JSON")
struct CanonicalJSONTests {
    enum Shape: Encodable, Equatable {
        case dot
        case circle(radius: Double)
        case pair(Int, Int)
    }

    struct Thing: Encodable {
        var zeta = 1
        var alpha = "a"
        var nested = Inner()
        var shapes: [Shape] = [.dot, .circle(radius: 0.5), .pair(2, 3)]
        var missing: Int? = nil
        var big: UInt64 = .max
        var table: [String: Float] = ["b": 2, "a": 1.5]
        struct Inner: Encodable {
            var y = true
            var x: [Int32] = [-1, 2]
        }
    }

    @Test("keys sorted at every level, enums by case, nil left out, integers exact")
    func encodes() throws {
        let json = try CanonicalJSON.encode(Thing())
        #expect(json.rendered(pretty: false) == #"""
            {"alpha":"a","big":"18446744073709551615","nested":{"x":[-1,2],"y":true},"shapes":[{"dot":{}},{"circle":{"radius":0.5}},{"pair":{"_0":2,"_1":3}}],"table":{"a":1.5,"b":2.0},"zeta":1}
            """#)
    }

    @Test("the same value gives the same bytes whatever the dictionary order")
    func deterministic() throws {
        var a = Thing(), b = Thing()
        a.table = [:]
        b.table = [:]
        for k in ["q", "w", "e", "r", "t", "y"] { a.table[k] = 1 }
        for k in ["y", "t", "r", "e", "w", "q"] { b.table[k] = 1 }
        #expect(try CanonicalJSON.encode(a).rendered() == CanonicalJSON.encode(b).rendered())
    }
}
