#pragma once
// The few librdkafka entry points Swift cannot call: variadic functions are not imported
// into Swift, so each gets a fixed-argument wrapper here.
// Only the .c file includes librdkafka: including it here too would make this module own
// librdkafka's declarations as well as CRdKafka, and Swift would see neither cleanly.
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct rd_kafka_s;
struct rd_kafka_mock_cluster_s;

/// rd_kafka_producev with a topic name, key, value and at most one header (NULL for none).
/// The payload and key are copied (RD_KAFKA_MSG_F_COPY). Returns RD_KAFKA_RESP_ERR_NO_ERROR
/// or the error code of the enqueue attempt.
int recstream_producev(struct rd_kafka_s *rk, const char *topic, int32_t partition,
                                       const void *key, size_t key_len,
                                       const void *value, size_t value_len,
                                       const char *header_name,
                                       const void *header_value, ssize_t header_len);

/// Sets TCP_NODELAY on every listening TCP socket of this process bound to one of `ports`
/// and returns how many it set. librdkafka's mock cluster (2.0.2) leaves Nagle's algorithm
/// on for its sockets, so its small responses wait ~40 ms for the client's delayed ACK;
/// Linux copies TCP_NODELAY from a listener to the sockets it accepts, so setting it once
/// on the mock's listeners fixes every later connection.
int recstream_set_nodelay_on_listeners(const int *ports, int port_count);

/// rd_kafka_mock_broker_push_request_error_rtts for one error: the next request of
/// `api_key` that broker `broker_id` of the mock cluster gets after those already stacked
/// fails with `err` after `rtt_ms`. Returns RD_KAFKA_RESP_ERR_NO_ERROR or why not.
int recstream_mock_broker_push_error(struct rd_kafka_mock_cluster_s *mcluster, int32_t broker_id, int16_t api_key,
                                     int err, int rtt_ms);
