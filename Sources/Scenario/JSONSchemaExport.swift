import RecCore

extension Scenario {
    /// The scenario schema as JSON Schema (draft 2020-12), as `recstream schema` prints it
    /// and `scenarios/schema.json` keeps it.
    public static var jsonSchema: JSONValue {
        guard case .object(var root) = SchemaNode.object(schema).jsonSchema(defaultValue: nil) else { fatalError() }
        root.entries.insert(("$schema", "https://json-schema.org/draft/2020-12/schema"), at: 0)
        root.entries.insert(("title", "recstream scenario"), at: 1)
        return .object(root)
    }
}

extension SchemaNode {
    func jsonSchema(defaultValue: JSONValue?, summary: String? = nil) -> JSONValue {
        var out = JSONObject()
        if let summary { out["description"] = .string(summary) }
        switch self {
        case .object(let schema):
            if summary == nil { out["description"] = .string(schema.summary) }
            out.entries += Self.objectBody(schema.properties, typeConst: nil).entries
        case .array(let item, let minItems, let maxItems):
            out["type"] = "array"
            out["items"] = item.jsonSchema(defaultValue: nil)
            if minItems > 0 { out["minItems"] = .integer(Int64(minItems)) }
            if let maxItems { out["maxItems"] = .integer(Int64(maxItems)) }
        case .integer(let minimum, let maximum):
            out["type"] = "integer"
            if let minimum { out["minimum"] = .integer(minimum) }
            if let maximum { out["maximum"] = .integer(maximum) }
        case .number(let minimum, let maximum, let exclusive):
            out["type"] = "number"
            if let minimum { out[exclusive ? "exclusiveMinimum" : "minimum"] = .number(minimum) }
            if let maximum { out["maximum"] = .number(maximum) }
        case .string(let minLength, let allowed):
            out["type"] = "string"
            if minLength > 0 { out["minLength"] = .integer(Int64(minLength)) }
            if let allowed { out["enum"] = .array(allowed.map { .string($0) }) }
        case .boolean:
            out["type"] = "boolean"
        case .nullable(let inner):
            out["anyOf"] = [inner.jsonSchema(defaultValue: nil), ["type": "null"]]
        case .propertyMap:
            out["type"] = "object"
            out["additionalProperties"] = ["type": ["string", "number", "boolean"]]
        case .tagged(let tagged):
            out["type"] = "object"
            out["required"] = ["type"]
            out["properties"] = ["type": ["enum": .array(tagged.typeNames.map { .string($0) })]]
            out["oneOf"] = .array(tagged.variants.map { variant in
                var body = Self.objectBody(variant.properties, typeConst: variant.type)
                body.entries.insert(("description", .string(variant.summary)), at: 0)
                return .object(body)
            })
        }
        if let defaultValue { out["default"] = defaultValue }
        return .object(out)
    }

    static func objectBody(_ properties: [Property], typeConst: String?) -> JSONObject {
        var props = JSONObject()
        if let typeConst { props["type"] = ["const": .string(typeConst)] }
        for p in properties {
            props[p.name] = p.node.jsonSchema(defaultValue: p.defaultValue, summary: p.summary)
        }
        var required = properties.filter(\.required).map { JSONValue.string($0.name) }
        if typeConst != nil { required.insert("type", at: 0) }
        var body: JSONObject = ["type": "object", "properties": .object(props)]
        if !required.isEmpty { body["required"] = .array(required) }
        body["additionalProperties"] = false
        return body
    }
}
