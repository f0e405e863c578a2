// swift-tools-version: 6.1
// recstream: an online-learning streaming simulator for recommender systems.
//
// This file is the map of the house (shared/DESIGN.md, section 2), and each target
// imports what it lists here and nothing more. Dependencies point one way:
//   recstream (the CLI)  -> Studies, Bench, RecStream, Attach, Report, Allocator
//   Studies, Bench       -> RecStream (the seed sweep and benchmarks run lockstep runs)
//   RecStream, Attach    -> Experiment, Server, Trainer, Population, Kafka
//                           (Attach does not import RecStream; RecStream writes reports
//                           through Report)
//   Experiment           -> Scenario, RecCore (not Report: reports render from JSON)
//   Server, Trainer      -> Models, Scenario, RecCore
//   Population           -> Scenario, RecCore
//   Models, Scenario, Report, Allocator -> RecCore
// Kafka knows nothing of recommenders and depends on the C layer only.
import PackageDescription

let strict: [SwiftSetting] = [.swiftLanguageMode(.v6)]
/// Hot kernels are optimised even in debug builds (unoptimised SIMD code is 10-50x slower,
/// which would make model tests crawl without making them easier to debug), and on x86-64
/// they target Haswell (AVX2, FMA: every x86 server CPU since 2013): without it the
/// compiler splits each SIMD8<Float> into two SSE halves.
#if arch(x86_64)
let cpu: [String] = ["-target-cpu", "haswell"]
#else
let cpu: [String] = []
#endif
let kernels: [SwiftSetting] = strict + [
    .unsafeFlags(["-O"] + cpu, .when(configuration: .debug)),
    .unsafeFlags(cpu, .when(configuration: .release)),
]

let package = Package(
    name: "recstream",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "recstream", targets: ["recstream"]),
        .library(name: "Kafka", targets: ["Kafka"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
        // Attach mode's observability and lifecycle.
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.5.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.1.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.6.0"),
        .package(url: "https://github.com/swhitty/FlyingFox", from: "0.20.0"),
        // HMAC-SHA256 for signed model updates (--model-key-file).
        .package(url: "https://github.com/apple/swift-crypto", from: "3.0.0"),
    ],
    targets: [
        // C layer: librdkafka (with its mock cluster), a shim for the variadic calls
        // Swift cannot import, the plain C loop the Kafka benchmark runs beside ours,
        // and jemalloc, linked into the executable as the allocator.
        .systemLibrary(
            name: "CRdKafka",
            pkgConfig: "rdkafka",
            providers: [.apt(["librdkafka-dev"])]
        ),
        .target(name: "CKafkaShim", dependencies: ["CRdKafka"]),
        .target(name: "CKafkaBaseline", dependencies: ["CRdKafka"]),
        .systemLibrary(
            name: "CJemalloc",
            pkgConfig: "jemalloc",
            providers: [.apt(["libjemalloc-dev"])]
        ),

        // The allocator's figures, for --stats and memory benchmarks (with RecCore's count
        // of the embedding tables' huge-page mappings, which jemalloc does not see).
        .target(name: "Allocator", dependencies: ["CJemalloc", "RecCore"], swiftSettings: strict),

        // Kafka's Swift face: producer, batch consumer, admin, embedded broker.
        .target(name: "Kafka", dependencies: ["CRdKafka", "CKafkaShim"], swiftSettings: strict),

        // The recommender side, bottom up.
        .target(name: "RecCore", swiftSettings: strict),
        .target(name: "Scenario", dependencies: ["RecCore"], swiftSettings: strict),
        // Prefetch (and whatever else Swift cannot spell) for the kernels, inlined from C.
        .systemLibrary(name: "CKernels"),
        .target(name: "Models", dependencies: ["RecCore", "CKernels"], swiftSettings: kernels),
        .target(name: "Population", dependencies: ["RecCore", "Scenario"], swiftSettings: strict),
        .target(name: "Server", dependencies: ["RecCore", "Scenario", "Models"], swiftSettings: strict),
        .target(name: "Trainer", dependencies: ["RecCore", "Scenario", "Models"], swiftSettings: strict),
        // Reports rendered from report.json alone: table, CSVs, HTML.
        .target(name: "Report", dependencies: ["RecCore"], swiftSettings: strict),
        // The experiment: the ledger both run and simulate feed, metrics, statistics.
        .target(name: "Experiment", dependencies: ["RecCore", "Scenario"], swiftSettings: strict),
        // Attach mode: roles that run against a real Kafka stream, free-running.
        .target(name: "Attach", dependencies: [
            "Kafka", "RecCore", "Scenario", "Population", "Models", "Trainer", "Server", "Experiment",
            .product(name: "Metrics", package: "swift-metrics"),
            .product(name: "Histogram", package: "hdrhistogram-swift"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Prometheus", package: "swift-prometheus"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "FlyingFox", package: "FlyingFox"),
            .product(name: "Crypto", package: "swift-crypto"),
        ], swiftSettings: strict),
        .target(
            name: "RecStream",
            dependencies: [
                "Kafka", "RecCore", "Scenario", "Population", "Models", "Server", "Trainer", "Experiment", "Report",
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ],
            swiftSettings: strict
        ),
        // Studies beyond one run: the offline study on logged data, and the seed sweep
        // (an A/A's false-positive rate, an A/B's power) over lockstep runs.
        .target(
            name: "Studies",
            dependencies: ["RecStream", "Experiment", "Kafka", "Models", "Population", "RecCore", "Report", "Scenario", "Server", "Trainer"],
            swiftSettings: strict
        ),
        .target(
            name: "Bench",
            dependencies: ["Kafka", "CKafkaBaseline", "RecCore", "Scenario", "Population", "Models", "Allocator", "Experiment", "RecStream", "Attach"],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "recstream",
            dependencies: [
                "RecStream", "Studies", "Bench", "Kafka", "Attach", "Scenario", "Experiment", "Allocator", "Report", "RecCore",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strict
        ),

        // libFuzzer harnesses over everything attach mode reads from outside (`make fuzz`);
        // the ordinary build replays saved inputs with it (`make test`).
        .executableTarget(
            name: "recstream-fuzz",
            dependencies: ["Attach", "Models", "RecCore", "Scenario", "Trainer"],
            path: "Tests/Fuzz",
            exclude: ["regressions"],
            swiftSettings: strict
        ),

        // What several test suites share: the central-difference gradient checker.
        .target(name: "TestSupport", path: "Tests/TestSupport", swiftSettings: strict),
        .testTarget(name: "KafkaTests", dependencies: ["Kafka"], swiftSettings: strict),
        .testTarget(name: "RecCoreTests", dependencies: ["RecCore"], swiftSettings: strict),
        .testTarget(name: "ScenarioTests", dependencies: ["Scenario"], swiftSettings: strict),
        .testTarget(name: "ExperimentTests", dependencies: ["Experiment", "Report", "RecCore", "Scenario"], exclude: ["stats-fixtures.json", "paired-fixtures.json"], swiftSettings: strict),
        .testTarget(name: "ServerTests", dependencies: ["Server", "Models", "Scenario", "RecCore"], swiftSettings: strict),
        .testTarget(name: "PopulationTests", dependencies: ["Population", "Scenario", "RecCore"], swiftSettings: strict),
        .testTarget(name: "ModelsTests", dependencies: ["Models", "Trainer", "Population", "Scenario", "RecCore", "TestSupport"], swiftSettings: strict),
        .testTarget(name: "AttachTests", dependencies: ["Attach", "Kafka", "Models", "Population", "Scenario", "RecCore", "Trainer"], swiftSettings: strict),
        .testTarget(
            name: "RecStreamTests",
            dependencies: ["RecStream", "Attach", "Report", "Experiment", "Server", "Kafka", "Scenario", "Population"],
            swiftSettings: strict
        ),
        .testTarget(name: "StudiesTests", dependencies: ["Studies", "RecStream", "Experiment", "Population", "Scenario", "RecCore"], swiftSettings: strict),
    ]
)
