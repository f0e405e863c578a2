import RecCore

extension Scenario {
    static let retrieval = TaggedSchema("retrieval", "How candidates are retrieved.", [
        .init("random", "Uniformly random items."),
        .init("popularity", "The items with the most clicks in this arm so far, plus a share of random items.", [
            Property("explore", .number(minimum: 0, maximum: 1), "Share of the candidates drawn uniformly at random, so that new items can earn clicks.", default: 0.2),
        ]),
    ])

    static let ranking = TaggedSchema("ranking model", "How candidates are scored.", [
        .init("random", "Random scores."),
        .init("popularity", "Click counts learned online from the arm's feedback."),
        .init("ctr", "Click-through rate learned online, smoothed by a Beta prior.", [
            Property("priorClicks", .number(minimum: 0, exclusiveMinimum: true), "Prior clicks of every item.", default: 1),
            Property("priorImpressions", .number(minimum: 0, exclusiveMinimum: true), "Prior impressions of every item.", default: 20),
        ]),
    ])

    static let policy = TaggedSchema("policy", "How the slate is built from scored candidates.", [
        .init("greedy", "The best remaining candidate at each position."),
        .init("epsilon-greedy", "With probability epsilon, a uniformly random remaining candidate.", [
            Property("epsilon", .number(minimum: 0, maximum: 1), "Exploration probability per position.", default: 0.1),
        ]),
        .init("softmax", "A candidate drawn with probability proportional to exp(score / temperature).", [
            Property("temperature", .number(minimum: 0, exclusiveMinimum: true), "Softmax temperature (scores are standardised first).", default: 1),
        ]),
    ])

    static let arm = ObjectSchema("One arm of the experiment.", [
        Property("name", .string(minLength: 1), "The arm's name, unique in the scenario.", required: true),
        Property("share", .number(minimum: 0, maximum: 1, exclusiveMinimum: true), "Share of users assigned to this arm; shares sum to 1.", required: true),
        Property("candidates", .integer(minimum: 1, maximum: 100_000), "Candidates retrieval hands to ranking (at least the slate size).", default: 100),
        Property("retrieval", .tagged(retrieval), retrieval.summary, default: ["type": "random"]),
        Property("ranking", .tagged(ranking), ranking.summary, default: ["type": "random"]),
        Property("policy", .tagged(policy), policy.summary, default: ["type": "greedy"]),
    ])

    /// Every key a scenario may hold, with its default and effect.
    public static let schema = ObjectSchema("A recstream A/B simulation scenario.", [
        Property("name", .string(minLength: 1), "The scenario's name, shown in reports.", required: true),
        Property("description", .string(), "What question the scenario answers.", default: ""),
        Property("seed", .integer(minimum: 0, maximum: Int64.max), "Seed of every random stream; `--seed` overrides it.", default: 42),
        Property("ticks", .integer(minimum: 1, maximum: 1_000_000), "Steps of simulated time.", default: 50),
        Property("population", .object(ObjectSchema("The simulated users.", [
            Property("users", .integer(minimum: 1, maximum: 10_000_000), "Number of users.", default: 2000),
            Property("requestProbability", .number(minimum: 0, maximum: 1, exclusiveMinimum: true), "Chance a user asks for a slate in a tick.", default: 0.5),
            Property("slateSize", .integer(minimum: 1, maximum: 255), "Items per slate.", default: 10),
            Property("purchaseDelayTicks", .integer(minimum: 0, maximum: 1000), "Ticks between a click and the purchase it leads to.", default: 2),
        ])), "The simulated users.", default: [:]),
        Property("catalog", .object(ObjectSchema("The items.", [
            Property("items", .integer(minimum: 1, maximum: 10_000_000), "Number of items.", default: 5000),
            Property("categories", .integer(minimum: 1, maximum: 100_000), "Number of item categories.", default: 20),
            Property("popularityExponent", .number(minimum: 0, maximum: 5), "Zipf exponent of the popularity prior (0: uniform).", default: 1.0),
            Property("medianPrice", .number(minimum: 0, exclusiveMinimum: true), "Median item price (GMV per purchase).", default: 25.0),
            Property("medianDurationSeconds", .number(minimum: 0, exclusiveMinimum: true), "Median item duration in seconds (view time if watched to the end).", default: 60.0),
        ])), "The items.", default: [:]),
        Property("arms", .array(.object(arm), minItems: 1, maxItems: 64), "The arms of the experiment.", required: true),
        Property("experiment", .object(ObjectSchema("How users are split and compared.", [
            Property("salt", .string(minLength: 1), "Mixed into the user-to-arm hash; change it to reshuffle users.", default: "recstream"),
            Property("control", .nullable(.string(minLength: 1)), "The arm lifts are measured against (default: the first arm).", default: .null),
        ])), "How users are split and compared.", default: [:]),
        Property("metrics", .array(.string(oneOf: Metric.allCases.map(\.rawValue)), minItems: 1), "Metrics the results table shows.",
                 default: .array(Metric.allCases.map { .string($0.rawValue) })),
        Property("kafka", .object(ObjectSchema("The Kafka transport.", [
            Property("brokers", .nullable(.string(minLength: 1)), "Bootstrap servers of a cluster; null runs the embedded broker. `--brokers` overrides it.", default: .null),
            Property("topicPrefix", .string(minLength: 1), "Topics are <prefix>.requests, .recommendations, .feedback, .dead-letter.", default: "recstream"),
            Property("partitions", .integer(minimum: 1, maximum: 1024), "Partitions per topic; `--partitions` overrides it. Results do not depend on it.", default: 4),
            Property("replicationFactor", .integer(minimum: 1, maximum: 16), "Replication factor of created topics.", default: 1),
            Property("stallTimeoutSeconds", .number(minimum: 0, maximum: 86_400, exclusiveMinimum: true), "How long a phase may wait without progress (a broker away) before the run fails.", default: 30.0),
            Property("properties", .propertyMap, "librdkafka properties for every client, as kcat's -X key=value.", default: [:]),
        ])), "The Kafka transport.", default: [:]),
        Property("output", .object(ObjectSchema("Reports.", [
            Property("directory", .nullable(.string(minLength: 1)), "Where report.json goes; `--out` overrides it. null writes no files.", default: .null),
            Property("progress", .boolean, "Show progress on standard error.", default: true),
        ])), "Reports.", default: [:]),
    ])
}
