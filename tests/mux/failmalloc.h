/*
 * tunnelmux tests — a counting, failing allocator for mux_mem (nghttp2 tests/failmalloc style).
 *
 * Counts allocations and live blocks. With fail_at = N >= 0 the allocation with index N (0-based,
 * counting every malloc/calloc/realloc call) fails; with |once| set only that one fails (a transient
 * failure, after which the code must carry on), otherwise every allocation from N on fails.
 * fail_at = -1 never fails. Header-only; one state per test, no global state.
 */
#ifndef TM_TESTS_MUX_FAILMALLOC_H
#define TM_TESTS_MUX_FAILMALLOC_H

#include <stdlib.h>

#include "mux/mux.h"

typedef struct {
    long fail_at;  /* index of the first allocation that fails; -1 = none */
    int once;      /* 1: only allocation |fail_at| fails; 0: every one from |fail_at| on */
    long calls;    /* allocation calls so far (failed ones included) */
    long allocs;   /* successful allocations so far */
    long failures; /* allocations refused so far */
    long live;     /* outstanding blocks */
} failmalloc;

static inline int failmalloc_may(failmalloc *fm)
{
    long i = fm->calls++;
    if (fm->fail_at >= 0 && (fm->once ? i == fm->fail_at : i >= fm->fail_at)) {
        fm->failures++;
        return 0;
    }
    fm->allocs++;
    return 1;
}

static inline void *failmalloc_malloc(size_t size, void *ud)
{
    failmalloc *fm = ud;
    if (!failmalloc_may(fm))
        return NULL;
    void *p = malloc(size ? size : 1);
    if (p != NULL)
        fm->live++;
    return p;
}

static inline void failmalloc_free(void *ptr, void *ud)
{
    failmalloc *fm = ud;
    if (ptr != NULL)
        fm->live--;
    free(ptr);
}

static inline void *failmalloc_calloc(size_t n, size_t size, void *ud)
{
    failmalloc *fm = ud;
    if (!failmalloc_may(fm))
        return NULL;
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (p != NULL)
        fm->live++;
    return p;
}

static inline void *failmalloc_realloc(void *ptr, size_t size, void *ud)
{
    failmalloc *fm = ud;
    if (!failmalloc_may(fm))
        return NULL;
    void *p = realloc(ptr, size ? size : 1);
    if (p != NULL && ptr == NULL)
        fm->live++;
    return p;
}

/* Resets |fm| (fail_at -1 = never fail) and returns a mux_mem that allocates through it. */
static inline mux_mem failmalloc_mem(failmalloc *fm, long fail_at, int once)
{
    fm->fail_at = fail_at;
    fm->once = once;
    fm->calls = fm->allocs = fm->failures = fm->live = 0;
    mux_mem m = {fm, failmalloc_malloc, failmalloc_free, failmalloc_calloc, failmalloc_realloc};
    return m;
}

#endif
