import RecCore

/// One problem in a scenario: where (a JSON path such as `arms[1].policy.epsilon`) and why.
public struct ScenarioIssue: Equatable, Sendable, CustomStringConvertible {
    public var path: String
    public var message: String
    public init(_ path: String, _ message: String) {
        self.path = path
        self.message = message
    }
    public var description: String { "\(path.isEmpty ? "(top level)" : path): \(message)" }
}

/// Walks a document against a schema, collecting every issue and filling in defaults.
struct Validator {
    var issues: [ScenarioIssue] = []

    mutating func fail(_ path: String, _ message: String) { issues.append(ScenarioIssue(path, message)) }

    /// The value with defaults filled in, or nil where it is unusable (an issue is recorded).
    mutating func resolve(_ value: JSONValue, _ node: SchemaNode, at path: String) -> JSONValue? {
        switch node {
        case .object(let schema):
            guard case .object(let object) = value else { return mismatch(value, "an object", path) }
            return resolveObject(object, schema.properties, at: path, knownExtra: [])

        case .tagged(let tagged):
            guard case .object(let object) = value else { return mismatch(value, "an object", path) }
            let typePath = join(path, "type")
            guard let typeValue = object["type"] else {
                fail(typePath, "required; one of \(list(tagged.typeNames))")
                return nil
            }
            guard case .string(let type) = typeValue else { return mismatch(typeValue, "a string", typePath) }
            guard let variant = tagged.variants.first(where: { $0.type == type }) else {
                fail(typePath, "unknown \(tagged.noun) '\(type)'\(suggestion(type, tagged.typeNames)); one of \(list(tagged.typeNames))")
                return nil
            }
            var rest = object
            rest["type"] = nil
            guard case .object(var resolved)? = resolveObject(rest, variant.properties, at: path, knownExtra: ["type"], variant: type) else {
                return nil
            }
            resolved.entries.insert(("type", .string(type)), at: 0)
            return .object(resolved)

        case .array(let item, let minItems, let maxItems):
            guard case .array(let items) = value else { return mismatch(value, "an array", path) }
            if items.count < minItems { fail(path, "must have at least \(minItems) \(minItems == 1 ? "item" : "items"), got \(items.count)") }
            if let maxItems, items.count > maxItems { fail(path, "must have at most \(maxItems) items, got \(items.count)") }
            var out: [JSONValue] = []
            var ok = true
            for (i, element) in items.enumerated() {
                if let r = resolve(element, item, at: "\(path)[\(i)]") { out.append(r) } else { ok = false }
            }
            return ok ? .array(out) : nil

        case .integer(let minimum, let maximum):
            let i: Int64
            switch value {
            case .integer(let v): i = v
            case .number(let d) where d == d.rounded() && abs(d) < 9e15: i = Int64(d)
            default: return mismatch(value, "an integer", path)
            }
            if !inRange(Double(i), minimum.map(Double.init), maximum.map(Double.init), exclusive: false, path, shown: "\(i)") { return nil }
            return .integer(i)

        case .number(let minimum, let maximum, let exclusive):
            guard let d = value.doubleValue else { return mismatch(value, "a number", path) }
            if !inRange(d, minimum, maximum, exclusive: exclusive, path, shown: show(value)) { return nil }
            return value

        case .string(let minLength, let allowed):
            guard case .string(let s) = value else { return mismatch(value, "a string", path) }
            if s.count < minLength {
                fail(path, minLength == 1 ? "must not be empty" : "must be at least \(minLength) characters")
                return nil
            }
            if let allowed, !allowed.contains(s) {
                fail(path, "unknown value '\(s)'\(suggestion(s, allowed)); one of \(list(allowed))")
                return nil
            }
            return value

        case .boolean:
            guard case .bool = value else { return mismatch(value, "true or false", path) }
            return value

        case .nullable(let inner):
            if case .null = value { return .null }
            return resolve(value, inner, at: path)

        case .propertyMap:
            guard case .object(let object) = value else { return mismatch(value, "an object", path) }
            var out = JSONObject()
            for (key, v) in object.entries {
                switch v {
                case .string(let s): out.entries.append((key, .string(s)))
                case .integer(let i): out.entries.append((key, .string(String(i))))
                case .number(let d): out.entries.append((key, .string("\(d)")))
                case .bool(let b): out.entries.append((key, .string(b ? "true" : "false")))
                default: fail(join(path, key), "expected a string, number or boolean, got \(v.kindDescription)")
                }
            }
            return .object(out)
        }
    }

    mutating func resolveObject(_ object: JSONObject, _ properties: [Property], at path: String,
                                knownExtra: [String], variant: String? = nil) -> JSONValue? {
        let names = properties.map(\.name)
        var ok = true
        for key in object.keys where !names.contains(key) {
            if names.isEmpty, let variant {
                fail(join(path, key), "unknown key; '\(variant)' takes no parameters")
            } else {
                fail(join(path, key), "unknown key\(suggestion(key, names + knownExtra))" + (suggestionTarget(key, names + knownExtra) == nil ? "; known keys: \(list(names))" : ""))
            }
            ok = false
        }
        var out = JSONObject()
        for property in properties {
            let childPath = join(path, property.name)
            if let v = object[property.name] {
                if let r = resolve(v, property.node, at: childPath) { out.entries.append((property.name, r)) } else { ok = false }
            } else if property.required {
                fail(childPath, "required")
                ok = false
            } else if let d = property.defaultValue {
                // Defaults go through the schema too, so a sub-object's own defaults fill in.
                if let r = resolve(d, property.node, at: childPath) { out.entries.append((property.name, r)) } else { ok = false }
            }
        }
        return ok ? .object(out) : nil
    }

    mutating func mismatch(_ value: JSONValue, _ expected: String, _ path: String) -> JSONValue? {
        fail(path, "expected \(expected), got \(value.kindDescription)\(showIfScalar(value))")
        return nil
    }

    mutating func inRange(_ d: Double, _ minimum: Double?, _ maximum: Double?, exclusive: Bool, _ path: String, shown: String) -> Bool {
        let low = minimum.map { exclusive ? d <= $0 : d < $0 } ?? false
        let high = maximum.map { d > $0 } ?? false
        guard low || high else { return true }
        let lo = minimum.map(format), hi = maximum.map(format)
        switch (lo, hi, exclusive) {
        case let (lo?, hi?, false): fail(path, "must be between \(lo) and \(hi), got \(shown)")
        case let (lo?, hi?, true): fail(path, "must be greater than \(lo) and at most \(hi), got \(shown)")
        case let (lo?, nil, false): fail(path, "must be at least \(lo), got \(shown)")
        case let (lo?, nil, true): fail(path, "must be greater than \(lo), got \(shown)")
        case let (nil, hi?, _): fail(path, "must be at most \(hi), got \(shown)")
        default: break
        }
        return false
    }
}

func join(_ path: String, _ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

func list(_ names: [String]) -> String { names.joined(separator: ", ") }

func format(_ d: Double) -> String {
    d == d.rounded() && abs(d) < 1e15 ? String(Int64(d)) : "\(d)"
}

func show(_ value: JSONValue) -> String {
    switch value {
    case .integer(let i): String(i)
    case .number(let d): format(d)
    default: value.rendered(pretty: false)
    }
}

func showIfScalar(_ value: JSONValue) -> String {
    switch value {
    case .string(let s): " (\"\(s.count > 40 ? String(s.prefix(40)) + "..." : s)\")"
    case .integer, .number, .bool: " (\(show(value)))"
    default: ""
    }
}

/// " (did you mean 'x'?)" when a known name is close to `word`.
func suggestion(_ word: String, _ candidates: [String]) -> String {
    suggestionTarget(word, candidates).map { " (did you mean '\($0)'?)" } ?? ""
}

func suggestionTarget(_ word: String, _ candidates: [String]) -> String? {
    let lower = word.lowercased()
    if let exact = candidates.first(where: { $0.lowercased() == lower }) { return exact }
    // The same letters in another order ("dear" for "dare") is a slip whatever the distance.
    if lower.count >= 3, let anagram = candidates.first(where: { $0.lowercased().sorted() == lower.sorted() }) { return anagram }
    let scored = candidates.map { ($0, editDistance(lower, $0.lowercased())) }.min { $0.1 < $1.1 }
    guard let (best, distance) = scored else { return nil }
    // Close enough to be a slip, and not so short that every name is close.
    return distance <= max(1, word.count / 3) && distance < word.count ? best : nil
}

/// Edit distance with adjacent transpositions (optimal string alignment), for
/// did-you-mean suggestions: "gvm" is one edit from "gmv".
func editDistance(_ a: String, _ b: String) -> Int {
    let a = Array(a), b = Array(b)
    if a.isEmpty || b.isEmpty { return max(a.count, b.count) }
    var d = [[Int]](repeating: [Int](repeating: 0, count: b.count + 1), count: a.count + 1)
    for i in 0...a.count { d[i][0] = i }
    for j in 0...b.count { d[0][j] = j }
    for i in 1...a.count {
        for j in 1...b.count {
            let cost = a[i - 1] == b[j - 1] ? 0 : 1
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
            if i > 1, j > 1, a[i - 1] == b[j - 2], a[i - 2] == b[j - 1] {
                d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1)
            }
        }
    }
    return d[a.count][b.count]
}
