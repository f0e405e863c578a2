#pragma once
// The few librdkafka entry points Swift cannot call: variadic functions are not imported
// into Swift, so each gets a fixed-argument wrapper here.
#include <librdkafka/rdkafka.h>
#include <stddef.h>
#include <stdint.h>

/// rd_kafka_producev with a topic name, key, value and at most one header (NULL for none).
/// The payload and key are copied (RD_KAFKA_MSG_F_COPY). Returns RD_KAFKA_RESP_ERR_NO_ERROR
/// or the error code of the enqueue attempt.
rd_kafka_resp_err_t recstream_producev(rd_kafka_t *rk, const char *topic, int32_t partition,
                                       const void *key, size_t key_len,
                                       const void *value, size_t value_len,
                                       const char *header_name,
                                       const void *header_value, ssize_t header_len);
