#pragma once
// librdkafka and its mock cluster (the embedded broker). rdkafka_mock.h needs rdkafka.h first.
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
