#pragma once
// jemalloc: Debian's build replaces malloc itself, so linking it is enough to make it the
// allocator; the header gives mallctl for the memory figures of `recstream run --stats`.
#include <jemalloc/jemalloc.h>
