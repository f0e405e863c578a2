import Metrics
import Models
import RecCore

/// What an attached trainer reports through swift-metrics, once per applied tick and per
/// checkpoint (never per event): served as Prometheus text by `recstream train
/// --metrics-port`.
///
/// - `recstream_train_events_total{arm, event}`: events applied, by type;
/// - `recstream_train_dead_letters_total{arm}`, `recstream_train_late_events_total{arm}`;
/// - `recstream_train_skipped_offsets_total{arm}`: offsets gone from the broker that
///   `--on-gap skip` passed over;
/// - `recstream_train_ticks_total{arm}`, `recstream_train_applied_tick{arm}`;
/// - `recstream_train_consumer_lag{arm, partition}`: messages on the broker not yet applied;
/// - `recstream_train_items_lag{arm, partition}`: the same, of the items topic;
/// - `recstream_train_events_per_second{arm}` since the trainer started;
/// - `recstream_train_tick_duration_seconds{arm}`: a histogram of the time to apply a tick;
/// - `recstream_train_checkpoints_total{arm}`, `recstream_train_transient_errors_total{arm}`;
/// - `recstream_train_model_updates_total{arm}`: model updates published for servers;
/// - `recstream_model_auc{arm}`, `recstream_model_log_loss{arm}`: the model's progressive
///   (test-then-train) figures on the last tick it learned from;
/// - a model without a world's id tables (`table`: users, items, categories):
///   `recstream_train_ids_total{arm, table, outcome}` (outcome: lookups, created, filtered,
///   untracked, refused, expired, forgotten; see `IdDictionary.Counters`),
///   `recstream_train_table_rows{arm, table}` (rows held by ids),
///   `recstream_train_table_candidates{arm, table}` (ids under the frequency filter),
///   `recstream_train_table_bytes{arm, table}` (the dictionary's memory);
/// - its item records (`--items-topic`): `recstream_train_item_records_total{arm, outcome}`
///   (outcome: taken, deleted, refused; see `ItemRecords.Counters`) and
///   `recstream_train_item_records{arm}` (items whose record is held).
public struct TrainerMetrics {
    let events: [FeedbackEvent: Counter]
    let deadLetters, late, skipped, ticks, checkpoints, transientErrors, updates: Counter
    let appliedTick, eventsPerSecond, auc, logLoss: Gauge
    private(set) var lag: [Gauge]
    private(set) var itemsLag: [Gauge] = []
    let arm: String
    let factory: any MetricsFactory
    let tickDuration: Timer
    var reported = StreamTrainer.Counters()
    var reportedTransient = 0
    /// Per id table: its outcome counters, row, candidate and byte gauges, and what was last reported.
    var tables: [(ids: [Counter], rows: Gauge, candidates: Gauge, bytes: Gauge, reported: IdDictionary.Counters)] = []

    public init(arm: String, partitions: Int, factory: any MetricsFactory = MetricsSystem.factory) {
        let a = [("arm", arm)]
        self.arm = arm
        self.factory = factory
        events = Dictionary(uniqueKeysWithValues: FeedbackEvent.allCases.map { e in
            (e, Counter(label: "recstream_train_events_total", dimensions: a + [("event", "\(e)")], factory: factory))
        })
        deadLetters = Counter(label: "recstream_train_dead_letters_total", dimensions: a, factory: factory)
        late = Counter(label: "recstream_train_late_events_total", dimensions: a, factory: factory)
        skipped = Counter(label: "recstream_train_skipped_offsets_total", dimensions: a, factory: factory)
        ticks = Counter(label: "recstream_train_ticks_total", dimensions: a, factory: factory)
        checkpoints = Counter(label: "recstream_train_checkpoints_total", dimensions: a, factory: factory)
        transientErrors = Counter(label: "recstream_train_transient_errors_total", dimensions: a, factory: factory)
        updates = Counter(label: "recstream_train_model_updates_total", dimensions: a, factory: factory)
        appliedTick = Gauge(label: "recstream_train_applied_tick", dimensions: a, factory: factory)
        eventsPerSecond = Gauge(label: "recstream_train_events_per_second", dimensions: a, factory: factory)
        auc = Gauge(label: "recstream_model_auc", dimensions: a, factory: factory)
        logLoss = Gauge(label: "recstream_model_log_loss", dimensions: a, factory: factory)
        lag = []
        tickDuration = Timer(label: "recstream_train_tick_duration_seconds", dimensions: a, factory: factory)
        follow(partitions: partitions)
    }

    /// A lag gauge for each of `partitions` partitions (the topic grew).
    mutating func follow(partitions: Int) {
        lag += (lag.count..<max(partitions, lag.count)).map {
            Gauge(label: "recstream_train_consumer_lag", dimensions: [("arm", arm), ("partition", "\($0)")], factory: factory)
        }
    }

    /// A lag gauge for each of `itemPartitions` partitions of the items topic.
    mutating func follow(itemPartitions: Int) {
        itemsLag += (itemsLag.count..<max(itemPartitions, itemsLag.count)).map {
            Gauge(label: "recstream_train_items_lag", dimensions: [("arm", arm), ("partition", "\($0)")], factory: factory)
        }
    }

    var records: (counters: [Counter], held: Gauge, reported: ItemRecords.Counters)?

    /// Brings the id tables' figures up to date.
    mutating func report(_ open: OpenWorld) {
        let names = ["users", "items", "categories"]
        if tables.isEmpty {
            tables = names.map { table in
                let d = [("arm", arm), ("table", table)]
                return (IdDictionary.Counters.fields.map { Counter(label: "recstream_train_ids_total", dimensions: d + [("outcome", $0.0)], factory: factory) },
                        Gauge(label: "recstream_train_table_rows", dimensions: d, factory: factory),
                        Gauge(label: "recstream_train_table_candidates", dimensions: d, factory: factory),
                        Gauge(label: "recstream_train_table_bytes", dimensions: d, factory: factory), IdDictionary.Counters())
            }
        }
        for (i, d) in open.dictionaries.enumerated() {
            for (j, (_, field)) in IdDictionary.Counters.fields.enumerated() {
                tables[i].ids[j].increment(by: d.counters[keyPath: field] - tables[i].reported[keyPath: field])
            }
            tables[i].reported = d.counters
            tables[i].rows.record(d.occupied)
            tables[i].candidates.record(d.candidateCount)
            tables[i].bytes.record(d.memoryBytes)
        }
        let r = open.records.counters
        guard r != ItemRecords.Counters() else { return }
        if records == nil {
            records = (ItemRecords.Counters.fields.map { Counter(label: "recstream_train_item_records_total", dimensions: [("arm", arm), ("outcome", $0.0)], factory: factory) },
                       Gauge(label: "recstream_train_item_records", dimensions: [("arm", arm)], factory: factory), ItemRecords.Counters())
        }
        for (j, (_, field)) in ItemRecords.Counters.fields.enumerated() {
            records!.counters[j].increment(by: r[keyPath: field] - records!.reported[keyPath: field])
        }
        records!.reported = r
        records!.held.record(open.records.count)
    }

    /// Brings the counters up to `now` (counters only go up: the difference since the
    /// last report is added).
    mutating func report(_ now: StreamTrainer.Counters, transient: Int) {
        events[.impression]!.increment(by: now.impressions - reported.impressions)
        events[.click]!.increment(by: now.clicks - reported.clicks)
        events[.purchase]!.increment(by: now.purchases - reported.purchases)
        deadLetters.increment(by: now.deadLetters - reported.deadLetters)
        late.increment(by: now.late - reported.late)
        ticks.increment(by: now.ticks - reported.ticks)
        skipped.increment(by: now.skipped - reported.skipped)
        transientErrors.increment(by: max(0, transient - reportedTransient))
        reported = now
        reportedTransient = transient
    }
}
