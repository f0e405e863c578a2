#pragma once
// The plain C loops over librdkafka that `recstream bench kafka` runs beside the Swift
// Kafka layer, in the same process and on the same broker, so the figure it prints is a
// ratio measured in one run. They do exactly the work the Swift side does: same
// properties, same keys and values, same batch sizes, same lag bound.
#include <stddef.h>
#include <stdint.h>

typedef struct {
    double seconds;      // wall time from the first produce to the last delivery or consume
    int64_t produced;    // messages whose delivery succeeded
    int64_t consumed;    // messages consumed (pipelined loop only)
    uint64_t checksum;   // sum of the first payload byte of every consumed message
} recstream_baseline_result;

/// Produces `count` messages of `value_size` bytes with 8-byte keys to `topic` and flushes.
/// `keys`/`values` are `property_count` librdkafka properties. Returns 0, or -1 with `errstr`.
int recstream_baseline_produce(const char *const *keys, const char *const *values, int property_count,
                               const char *topic, int64_t count, int value_size,
                               recstream_baseline_result *result, char *errstr, size_t errstr_size);

/// Produces and consumes `count` messages in one thread, keeping at most `max_lag` messages
/// produced but not yet consumed (the mock broker keeps only ~5 MiB per partition).
/// The consumer is assigned partitions 0..<partitions of `topic` from offset 0.
int recstream_baseline_pipelined(const char *const *producer_keys, const char *const *producer_values,
                                 int producer_count,
                                 const char *const *consumer_keys, const char *const *consumer_values,
                                 int consumer_count,
                                 const char *topic, int partitions, int64_t count, int value_size,
                                 int64_t max_lag, int batch_size,
                                 recstream_baseline_result *result, char *errstr, size_t errstr_size);
