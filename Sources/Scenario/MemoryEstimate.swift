import Foundation

/// What a scenario will need in memory, part by part, with the knobs that drive each
/// part: `validate` and `run` refuse a scenario whose estimate is above `--max-memory`
/// before anything is built, rather than fail an hour later, and say what to turn down.
///
/// The figures are the sizes of the big arrays (8-byte history entries, float tables
/// with their Adam moments, per-user and per-item columns), from the scenario's own
/// numbers; small objects and the allocator's slack are left out, so the estimate is a
/// floor, not a ceiling. A test holds the history part to the store a world really builds.
public struct MemoryEstimate: Sendable, Equatable {
    public struct Part: Sendable, Equatable {
        public var name: String
        public var bytes: Double
        /// The scenario keys that drive the part, with their values.
        public var knobs: String
    }

    public var parts: [Part]
    public var totalBytes: Double { parts.reduce(0) { $0 + $1.bytes } }

    /// "1.2 GB": bytes in the largest unit that keeps the number at or above 1 (powers of
    /// 1,024, named as people read them).
    public static func describe(bytes: Double) -> String {
        let units = ["B", "KB", "MB", "GB", "TB", "PB"]
        var value = bytes, unit = 0
        while value >= 1024 && unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        return unit == 0 ? "\(Int(value)) B" : String(format: "%.1f %@", value, units[unit])
    }

    /// Parses a size: a number of bytes, or with a suffix K, M, G or T (powers of 1,024;
    /// "GB", "GiB" and lower case too). nil when it is not one.
    public static func parseSize(_ text: String) -> Double? {
        var t = text.trimmingCharacters(in: .whitespaces).uppercased()
        for suffix in ["IB", "B"] where t.hasSuffix(suffix) && t.count > suffix.count {
            t.removeLast(suffix.count)
            break
        }
        let scale: Double
        switch t.last {
        case "K": scale = 1_024
        case "M": scale = 1_048_576
        case "G": scale = 1_073_741_824
        case "T": scale = 1_099_511_627_776
        default: scale = 1
        }
        if scale > 1 { t.removeLast() }
        guard let n = Double(t), n.isFinite, n > 0 else { return nil }
        return n * scale
    }

    /// One line per part, largest first, each with its knobs.
    public var breakdown: [String] {
        parts.filter { $0.bytes > 0 }.sorted { $0.bytes > $1.bytes }.map {
            "\($0.name): \(Self.describe(bytes: $0.bytes)) (\($0.knobs))"
        }
    }
}

extension Scenario {
    /// The expected number of entries in a user's logged history: the mean of its
    /// log-normal length X (median m, spread s) cut at `max` M,
    /// E[min(X, M)] = m e^(s^2/2) Phi((ln(M/m) - s^2) / s) + M (1 - Phi(ln(M/m) / s)).
    var expectedHistoryLength: Double {
        let h = population.history
        guard h.median > 0 else { return 0 }
        let m = Double(h.median), cap = Double(h.max), s = h.spread
        guard s > 0 else { return min(m, cap) }
        func phi(_ z: Double) -> Double { 0.5 * erfc(-z / 2.0.squareRoot()) }
        let z = log(cap / m) / s
        return m * exp(s * s / 2) * phi(z - s) + cap * (1 - phi(z))
    }

    /// The estimate of what this scenario needs in memory (see `MemoryEstimate`).
    public var memoryEstimate: MemoryEstimate {
        let users = Double(population.users)
        // Every item that can exist by the last tick: the start plus the arrivals.
        let items = Double(catalog.items) + catalog.arrivalsPerTick * Double(ticks)
        let itemsKnobs = "catalog.items \(catalog.items) + catalog.arrivalsPerTick \(catalog.arrivalsPerTick) x ticks \(ticks)"
        let float = 4.0, entry = 8.0
        var parts: [MemoryEstimate.Part] = [
            .init(name: "logged histories", bytes: users * expectedHistoryLength * entry,
                  knobs: "population.users \(population.users) x about \(Int(expectedHistoryLength.rounded())) entries "
                      + "(population.history.median \(population.history.median), .spread \(population.history.spread), .max \(population.history.max)) x 8 B"),
            // A paired design holds a copy per arm, and one more for a moment at the split.
            .init(name: "users' interests", bytes: users * Double(population.interests.slots) * Double(catalog.topicDim) * float * 2 * Double(isPaired ? arms.count + 1 : 1),
                  knobs: "population.users \(population.users) x population.interests (active + dormant) \(population.interests.slots) x catalog.topicDim \(catalog.topicDim)"
                      + (isPaired ? " x (arms \(arms.count) + 1) copies (experiment.design paired)" : "")),
            .init(name: "catalog", bytes: items * (Double(catalog.topicDim) * float + Double(catalog.tokensPerItem) * float + 64),
                  knobs: "\(itemsKnobs) items x (catalog.topicDim \(catalog.topicDim) + catalog.tokensPerItem \(catalog.tokensPerItem))"),
        ]
        // Parameters are held with Adam's two moments beside them.
        let withAdam = 3.0
        for (i, arm) in arms.enumerated() {
            let at = "arms[\(i)] (\(arm.name))"
            parts.append(.init(name: "\(at) item statistics", bytes: items * 24, knobs: "\(itemsKnobs) items"))
            if let m = arm.ranking.sequenceModel {
                let dims = Double(m.design == .twin ? max(m.attentionDim, m.representationDim) : m.attentionDim + m.representationDim)
                // Item and category rows of the tables.
                parts.append(.init(name: "\(at) embedding tables", bytes: items * dims * float * withAdam,
                                   knobs: "\(itemsKnobs) items x ranking.attentionDim + representationDim \(Int(dims)), with Adam's moments"))
                parts.append(.init(name: "\(at) model histories", bytes: users * Double(m.maxHistory) * entry,
                                   knobs: "population.users \(population.users) x \(at).ranking.maxHistory \(m.maxHistory) x 8 B"))
            }
            if let p = arm.ranking.polyModel {
                parts.append(.init(name: "\(at) poly caches and tokens",
                                   bytes: items * Double(p.contentCodes) * Double(p.dim) * float * 2
                                       + Double(catalog.vocabulary + catalog.topCategories * catalog.subcategories) * Double(p.dim) * float * withAdam,
                                   knobs: "\(itemsKnobs) items x ranking.contentCodes \(p.contentCodes) x ranking.dim \(p.dim); catalog.vocabulary \(catalog.vocabulary)"))
            }
            if case .towers(let t) = arm.retrieval {
                parts.append(.init(name: "\(at) retrieval towers", bytes: (items + users) * Double(t.dim) * float * withAdam,
                                   knobs: "(\(itemsKnobs) items + population.users \(population.users)) x retrieval.dim \(t.dim)"))
            }
        }
        return MemoryEstimate(parts: parts)
    }
}
