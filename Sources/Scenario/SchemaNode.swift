import RecCore

/// One node of the scenario's schema. The same tree validates scenario files (every error
/// at once, each with its JSON path), fills in defaults, and prints the JSON Schema of
/// `recstream schema`, so the documentation, the checks and the defaults cannot disagree.
public indirect enum SchemaNode: Sendable {
    case object(ObjectSchema)
    case array(SchemaNode, minItems: Int = 0, maxItems: Int? = nil)
    case integer(minimum: Int64? = nil, maximum: Int64? = nil)
    /// A number; `exclusiveMinimum` makes `minimum` itself invalid.
    case number(minimum: Double? = nil, maximum: Double? = nil, exclusiveMinimum: Bool = false)
    case string(minLength: Int = 0, oneOf: [String]? = nil)
    case boolean
    /// A value or null (null stands for "not set").
    case nullable(SchemaNode)
    /// An object of free-form keys whose values are strings, numbers or booleans (passed on
    /// as strings): librdkafka properties.
    case propertyMap
    /// An object whose `type` key picks one of several shapes (a policy, a model).
    case tagged(TaggedSchema)
}

/// A key of an object.
public struct Property: Sendable {
    public var name: String
    public var node: SchemaNode
    public var summary: String
    /// Filled in when the key is absent; nil with `required` false means "absent stays absent".
    public var defaultValue: JSONValue?
    public var required: Bool

    public init(_ name: String, _ node: SchemaNode, _ summary: String, default defaultValue: JSONValue? = nil, required: Bool = false) {
        self.name = name
        self.node = node
        self.summary = summary
        self.defaultValue = defaultValue
        self.required = required
    }
}

public struct ObjectSchema: Sendable {
    public var summary: String
    public var properties: [Property]
    public init(_ summary: String, _ properties: [Property]) {
        self.summary = summary
        self.properties = properties
    }
}

/// Shapes chosen by a `type` key.
public struct TaggedSchema: Sendable {
    public struct Variant: Sendable {
        public var type: String
        public var summary: String
        public var properties: [Property]
        public init(_ type: String, _ summary: String, _ properties: [Property] = []) {
            self.type = type
            self.summary = summary
            self.properties = properties
        }
    }
    /// What the thing is called in messages ("policy").
    public var noun: String
    public var summary: String
    public var variants: [Variant]
    public init(_ noun: String, _ summary: String, _ variants: [Variant]) {
        self.noun = noun
        self.summary = summary
        self.variants = variants
    }
    public var typeNames: [String] { variants.map(\.type) }
}
