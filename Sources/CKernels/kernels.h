#pragma once
// What Swift has no spelling for, as static inline functions the Swift compiler inlines.
#include <stddef.h>
#include <stdint.h>

// Asks for the cache lines of [p, p + bytes) to be brought in for reading, without
// waiting for them: the random table rows a gather will read next. One prefetch per line
// the range touches (a 128-byte row on a 64-byte boundary: two).
static inline void recstream_prefetch(const void *p, size_t bytes) {
    uintptr_t line = (uintptr_t)p & ~(uintptr_t)63, end = (uintptr_t)p + bytes;
    for (; line < end; line += 64) __builtin_prefetch((const void *)line, 0, 3);
}
