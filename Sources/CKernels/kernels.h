#pragma once
// What Swift has no spelling for, as static inline functions the Swift compiler inlines.
#include <stddef.h>

// Asks for the cache lines of [p, p + bytes) to be brought in for reading, without
// waiting for them: the random table rows a gather will read next.
static inline void recstream_prefetch(const void *p, size_t bytes) {
    const char *c = (const char *)p;
    for (size_t o = 0; o < bytes; o += 64) __builtin_prefetch(c + o, 0, 3);
    __builtin_prefetch(c + bytes - 1, 0, 3);
}
