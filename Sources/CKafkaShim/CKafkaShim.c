#include "CKafkaShim.h"
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

int recstream_producev(rd_kafka_t *rk, const char *topic, int32_t partition,
                                       const void *key, size_t key_len,
                                       const void *value, size_t value_len,
                                       const char *header_name,
                                       const void *header_value, ssize_t header_len) {
    if (header_name == NULL) {
        return rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(partition),
                                 RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                 RD_KAFKA_V_KEY(key, key_len), RD_KAFKA_V_VALUE((void *)value, value_len),
                                 RD_KAFKA_V_END);
    }
    return rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(partition),
                             RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                             RD_KAFKA_V_KEY(key, key_len), RD_KAFKA_V_VALUE((void *)value, value_len),
                             RD_KAFKA_V_HEADER(header_name, header_value, header_len),
                             RD_KAFKA_V_END);
}

#include <dirent.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>

int recstream_set_nodelay_on_listeners(const int *ports, int port_count) {
    DIR *dir = opendir("/proc/self/fd");
    if (!dir) return -1;
    int set = 0;
    struct dirent *entry;
    while ((entry = readdir(dir)) != NULL) {
        char *end = NULL;
        long fd = strtol(entry->d_name, &end, 10);
        if (end == entry->d_name || *end != '\0' || fd == dirfd(dir)) continue;
        struct stat st;
        if (fstat((int)fd, &st) != 0 || !S_ISSOCK(st.st_mode)) continue;
        int listening = 0;
        socklen_t len = sizeof listening;
        if (getsockopt((int)fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) != 0 || !listening) continue;
        struct sockaddr_storage addr;
        socklen_t alen = sizeof addr;
        if (getsockname((int)fd, (struct sockaddr *)&addr, &alen) != 0) continue;
        int port = -1;
        if (addr.ss_family == AF_INET) port = ntohs(((struct sockaddr_in *)&addr)->sin_port);
        else if (addr.ss_family == AF_INET6) port = ntohs(((struct sockaddr_in6 *)&addr)->sin6_port);
        for (int i = 0; i < port_count; i++) {
            if (ports[i] == port) {
                int on = 1;
                if (setsockopt((int)fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on) == 0) set++;
            }
        }
    }
    closedir(dir);
    return set;
}

int recstream_mock_broker_push_error(struct rd_kafka_mock_cluster_s *mcluster, int32_t broker_id, int16_t api_key,
                                     int err, int rtt_ms) {
    return rd_kafka_mock_broker_push_request_error_rtts(mcluster, broker_id, api_key, 1, (rd_kafka_resp_err_t)err, rtt_ms);
}
