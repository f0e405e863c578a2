#include "CKafkaBaseline.h"
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <time.h>

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

typedef struct { int64_t delivered; int64_t failed; } delivery_counts;

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    (void)rk;
    delivery_counts *counts = opaque;
    if (m->err) counts->failed++; else counts->delivered++;
}

static rd_kafka_t *make_client(rd_kafka_type_t type, const char *const *keys, const char *const *values,
                               int count, delivery_counts *counts, char *errstr, size_t errstr_size) {
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    for (int i = 0; i < count; i++) {
        if (rd_kafka_conf_set(conf, keys[i], values[i], errstr, errstr_size) != RD_KAFKA_CONF_OK) {
            rd_kafka_conf_destroy(conf);
            return NULL;
        }
    }
    if (counts) {
        rd_kafka_conf_set_opaque(conf, counts);
        rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    }
    rd_kafka_t *rk = rd_kafka_new(type, conf, errstr, errstr_size);
    if (!rk) rd_kafka_conf_destroy(conf);
    return rk;
}

static int produce_one(rd_kafka_t *rk, rd_kafka_topic_t *rkt, int64_t i, char *value, int value_size) {
    uint64_t key = (uint64_t)i;
    value[0] = (char)(i & 0x7f);
    for (;;) {
        if (rd_kafka_produce(rkt, RD_KAFKA_PARTITION_UA, RD_KAFKA_MSG_F_COPY, value, (size_t)value_size,
                             &key, sizeof key, NULL) == 0)
            return 0;
        if (rd_kafka_last_error() != RD_KAFKA_RESP_ERR__QUEUE_FULL) return -1;
        rd_kafka_poll(rk, 1);
    }
}

int recstream_baseline_produce(const char *const *keys, const char *const *values, int property_count,
                               const char *topic, int64_t count, int value_size,
                               recstream_baseline_result *result, char *errstr, size_t errstr_size) {
    delivery_counts counts = {0, 0};
    memset(result, 0, sizeof *result);
    rd_kafka_t *rk = make_client(RD_KAFKA_PRODUCER, keys, values, property_count, &counts, errstr, errstr_size);
    if (!rk) return -1;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    char *value = calloc(1, (size_t)value_size);
    int rc = 0;
    double start = now_seconds();
    for (int64_t i = 0; i < count; i++) {
        if (produce_one(rk, rkt, i, value, value_size) != 0) {
            snprintf(errstr, errstr_size, "produce: %s", rd_kafka_err2str(rd_kafka_last_error()));
            rc = -1;
            break;
        }
        if ((i & 1023) == 0) rd_kafka_poll(rk, 0);
    }
    if (rc == 0 && rd_kafka_flush(rk, 60000) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        snprintf(errstr, errstr_size, "flush timed out");
        rc = -1;
    }
    result->seconds = now_seconds() - start;
    result->produced = counts.delivered;
    if (rc == 0 && counts.failed) {
        snprintf(errstr, errstr_size, "%lld deliveries failed", (long long)counts.failed);
        rc = -1;
    }
    free(value);
    rd_kafka_topic_destroy(rkt);
    rd_kafka_destroy(rk);
    return rc;
}

/// Consumes whatever is ready (waiting up to timeout_ms for the first message).
static int64_t drain(rd_kafka_queue_t *queue, rd_kafka_message_t **batch, int batch_size, int timeout_ms,
                     uint64_t *checksum, int *error) {
    ssize_t n = rd_kafka_consume_batch_queue(queue, timeout_ms, batch, (size_t)batch_size);
    int64_t got = 0;
    for (ssize_t j = 0; j < n; j++) {
        rd_kafka_message_t *m = batch[j];
        if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
            *checksum += ((const unsigned char *)m->payload)[0];
            got++;
        } else if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            *error = m->err;
        }
        rd_kafka_message_destroy(m);
    }
    return got;
}

int recstream_baseline_pipelined(const char *const *producer_keys, const char *const *producer_values,
                                 int producer_count,
                                 const char *const *consumer_keys, const char *const *consumer_values,
                                 int consumer_count,
                                 const char *topic, int partitions, int64_t count, int value_size,
                                 int64_t max_lag, int batch_size,
                                 recstream_baseline_result *result, char *errstr, size_t errstr_size) {
    delivery_counts counts = {0, 0};
    memset(result, 0, sizeof *result);
    rd_kafka_t *producer = make_client(RD_KAFKA_PRODUCER, producer_keys, producer_values, producer_count,
                                       &counts, errstr, errstr_size);
    if (!producer) return -1;
    rd_kafka_t *consumer = make_client(RD_KAFKA_CONSUMER, consumer_keys, consumer_values, consumer_count,
                                       NULL, errstr, errstr_size);
    if (!consumer) { rd_kafka_destroy(producer); return -1; }
    rd_kafka_poll_set_consumer(consumer);
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(partitions);
    for (int p = 0; p < partitions; p++)
        rd_kafka_topic_partition_list_add(parts, topic, p)->offset = 0;
    rd_kafka_resp_err_t err = rd_kafka_assign(consumer, parts);
    rd_kafka_topic_partition_list_destroy(parts);
    if (err) {
        snprintf(errstr, errstr_size, "assign: %s", rd_kafka_err2str(err));
        rd_kafka_destroy(consumer);
        rd_kafka_destroy(producer);
        return -1;
    }
    rd_kafka_queue_t *queue = rd_kafka_queue_get_consumer(consumer);
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(producer, topic, NULL);
    rd_kafka_message_t **batch = calloc((size_t)batch_size, sizeof *batch);
    char *value = calloc(1, (size_t)value_size);
    int64_t consumed = 0;
    uint64_t checksum = 0;
    int consume_error = 0, rc = 0;

    double start = now_seconds();
    for (int64_t i = 0; i < count && rc == 0; i++) {
        if (produce_one(producer, rkt, i, value, value_size) != 0) {
            snprintf(errstr, errstr_size, "produce: %s", rd_kafka_err2str(rd_kafka_last_error()));
            rc = -1;
        }
        if ((i & 1023) == 1023) {
            rd_kafka_poll(producer, 0);
            consumed += drain(queue, batch, batch_size, 0, &checksum, &consume_error);
            while (i + 1 - consumed > max_lag && !consume_error) {
                rd_kafka_poll(producer, 0);
                consumed += drain(queue, batch, batch_size, 1, &checksum, &consume_error);
            }
        }
        if (consume_error) rc = -1;
    }
    double deadline = now_seconds() + 60;
    while (rc == 0 && consumed < count && !consume_error && now_seconds() < deadline) {
        rd_kafka_poll(producer, 0);
        consumed += drain(queue, batch, batch_size, 1, &checksum, &consume_error);
    }
    rd_kafka_flush(producer, 10000);
    result->seconds = now_seconds() - start;
    result->produced = counts.delivered;
    result->consumed = consumed;
    result->checksum = checksum;
    if (rc == 0 && consume_error) {
        snprintf(errstr, errstr_size, "consume: %s", rd_kafka_err2str((rd_kafka_resp_err_t)consume_error));
        rc = -1;
    } else if (rc == 0 && consumed < count) {
        snprintf(errstr, errstr_size, "consumed %lld of %lld within 60 s", (long long)consumed, (long long)count);
        rc = -1;
    }
    free(value);
    free(batch);
    rd_kafka_topic_destroy(rkt);
    rd_kafka_queue_destroy(queue);
    rd_kafka_consumer_close(consumer);
    rd_kafka_destroy(consumer);
    rd_kafka_destroy(producer);
    return rc;
}
