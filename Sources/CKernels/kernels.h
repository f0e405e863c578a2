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

// Bit i set when p[i] >= t, for the eight floats at p: one compare and one movemask
// (Swift's SIMD masks reach an integer only lane by lane).
#if defined(__x86_64__)
#include <immintrin.h>
__attribute__((target("avx")))
static inline unsigned recstream_mask_at_least8(const float *p, float t) {
    return (unsigned)_mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(p), _mm256_set1_ps(t), _CMP_GE_OQ));
}
#else
static inline unsigned recstream_mask_at_least8(const float *p, float t) {
    unsigned m = 0;
    for (int i = 0; i < 8; i++) m |= (unsigned)(p[i] >= t) << i;
    return m;
}
#endif
