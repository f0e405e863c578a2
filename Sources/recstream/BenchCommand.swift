import ArgumentParser
import Bench
import Foundation

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Run a benchmark and print its figures (medians; ratios against a baseline run beside it).",
        discussion: """
            NAME is one of: kafka (Swift Kafka layer vs a plain C loop over librdkafka on the \
            embedded broker), models (DARE and TWIN training samples/s and scoring \
            candidates/s in the PyTorch reference's configurations), population (slate responses and history generation per second, \
            memory per user and per history entry), wire (encode/decode ns per record), e2e (user steps per second through \
            the embedded broker for the quickstart and a 100k-user world, random and DARE, with the share of time per \
            phase), sparc (SPARC retrieval latency over 1M items, tower training, memory), poly (poly-attention training samples/s \
            and scoring candidates/s, cached and re-encoded, beside DARE), attach (an attached trainer's events/s \
            and consumer lag at a steady produce rate). Build with -c release for \
            meaningful figures.
            """)

    @Argument(help: "kafka, models, population, wire, e2e, sparc, poly or attach.")
    var name: String

    @Flag(help: "Print JSON: {\"bench\", \"results\": [{\"name\", \"unit\", \"median\", \"baseline\", \"ratio\"}]}.")
    var json = false

    @Option(help: "Messages per run (kafka).")
    var messages: Int?

    @Option(help: "Repeats; the median is reported.")
    var repeats: Int?

    @Flag(help: "Smaller sizes, for a quick look (population, models, e2e).")
    var quick = false

    func run() throws {
        if let repeats, repeats < 1 {
            throw BadInput("--repeats must be at least 1")
        }
        if let messages, messages < 1024 {
            throw BadInput("--messages must be at least 1024")
        }
        let report: BenchReport
        do {
            switch name {
            case "kafka":
                var b = KafkaBench()
                if let messages { b.messages = messages }
                if let repeats { b.repeats = repeats }
                report = try b.run(progress: { if !json && isatty(STDERR_FILENO) != 0 { printError($0) } })
            case "population":
                var b = PopulationBench()
                if let repeats { b.repeats = repeats }
                if quick { b.memoryCases = [(20_000, 200)]; b.users = 5000 }
                report = try b.run(progress: { if !json && isatty(STDERR_FILENO) != 0 { printError($0) } })
            case "models":
                var b = ModelsBench()
                if quick { b.lengths = [1000]; b.vocabulary = 100_000; b.steps = 5; b.scoreCalls = 20 }
                report = b.run(progress: { if !json && isatty(STDERR_FILENO) != 0 { printError($0) } })
            case "e2e":
                var b = EndToEndBench(quick: quick)
                b.threads = nil
                report = try b.run(progress: { if !json && isatty(STDERR_FILENO) != 0 { printError($0) } })
            case "sparc":
                var b = SparcBench()
                if quick { b.items = 100_000; b.requests = 100; b.trainingBatches = 5 }
                report = b.run(progress: { if !json && isatty(STDERR_FILENO) != 0 { printError($0) } })
            case "poly":
                var b = PolyBench()
                if quick { b.items = 20_000; b.steps = 5; b.scoreCalls = 50 }
                report = b.run(progress: { if !json && isatty(STDERR_FILENO) != 0 { printError($0) } })
            case "attach":
                var b = AttachBench()
                if quick { b.events = 30_000; b.steadySeconds = 3; b.distinctUsers = 1_000_000; b.distinctItems = 100_000; b.idRepeats = 1 }
                report = try b.run(progress: { if !json && isatty(STDERR_FILENO) != 0 { printError($0) } })
            case "wire":
                var b = WireBench()
                if let repeats { b.repeats = repeats }
                report = b.run()
            default:
                throw BadInput("unknown benchmark '\(name)'; one of kafka, models, population, wire, e2e, sparc, poly, attach")
            }
        } catch let error as BenchError {
            printError("error: \(error)")
            throw Exit.runtimeFailure
        }
        print(json ? report.json.rendered() : report.table, terminator: "")
    }
}
