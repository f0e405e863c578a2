import Testing
@testable import RecCore

@Suite("JSON parser")
struct JSONParserTests {
    /// A one-line object of `count` keys k0..k(count-1), then `extra` appended as raw text.
    private func object(_ count: Int, then extra: String = "") -> String {
        "{" + (0..<count).map { "\"k\($0)\":\($0)" }.joined(separator: ",") + extra + "}"
    }

    @Test("a duplicate key is found whether the object is small or large, at the key's column")
    func duplicates() {
        for count in [3, 15, 16, 17, 100, 5_000] {
            let text = object(count, then: ",\"k1\":0")
            let column = text.utf8.count - 7 + 1  // the second "k1" starts 7 bytes from the end
            #expect(throws: JSONSyntaxError(message: "duplicate key \"k1\"", line: 1, column: column)) {
                try JSONValue.parse(text)
            }
            // The last key seen twice, too (the set must hold the keys added after it was built).
            let late = object(count, then: ",\"z\":1,\"z\":2")
            #expect(throws: JSONSyntaxError(message: "duplicate key \"z\"", line: 1, column: late.utf8.count - 5)) {
                try JSONValue.parse(late)
            }
        }
    }

    @Test("a large object with distinct keys parses whole and in order")
    func largeObject() throws {
        guard case .object(let parsed) = try JSONValue.parse(object(80_000)) else {
            Issue.record("not an object"); return
        }
        #expect(parsed.entries.count == 80_000)
        #expect(parsed.entries.first?.key == "k0" && parsed.entries.last?.key == "k79999")
        #expect(parsed["k4321"] == .integer(4321))
    }
}
