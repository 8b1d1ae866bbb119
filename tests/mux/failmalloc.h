/*
 * tunnelmux tests — a counting, failing allocator for mux_mem (nghttp2 tests/failmalloc style).
 *
 * Counts allocations, live blocks and live/peak bytes. With fail_at = N >= 0 the allocation with
 * index N (0-based, counting every malloc/calloc/realloc call) fails; with |once| set only that
 * one fails (a transient failure, after which the code must carry on), otherwise every allocation
 * from N on fails. fail_at = -1 never fails. Every block carries its size in a 16-byte header (so
 * bytes can be counted): memory from it must go back through failmalloc_free/realloc, never free().
 * Header-only; one state per test, no global state.
 */
#ifndef TM_TESTS_MUX_FAILMALLOC_H
#define TM_TESTS_MUX_FAILMALLOC_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mux/mux.h"

typedef struct {
    long fail_at;      /* index of the first allocation that fails; -1 = none */
    int once;          /* 1: only allocation |fail_at| fails; 0: every one from |fail_at| on */
    long calls;        /* allocation calls so far (failed ones included) */
    long allocs;       /* successful allocations so far */
    long failures;     /* allocations refused so far */
    long live;         /* outstanding blocks */
    size_t live_bytes; /* bytes of the outstanding blocks (a realloc counts as its new size) */
    size_t peak_bytes; /* the most live_bytes has been */
} failmalloc;

#define FAILMALLOC_HDR 16 /* size header in front of each block; keeps malloc's 16-byte alignment */

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

/* Stamps |size| in the header at |raw| and accounts it; returns the user pointer. */
static inline void *failmalloc_stamp(failmalloc *fm, uint8_t *raw, size_t size)
{
    memcpy(raw, &size, sizeof(size));
    fm->live_bytes += size;
    if (fm->live_bytes > fm->peak_bytes)
        fm->peak_bytes = fm->live_bytes;
    return raw + FAILMALLOC_HDR;
}

static inline size_t failmalloc_size_of(void *ptr)
{
    size_t size;
    memcpy(&size, (uint8_t *)ptr - FAILMALLOC_HDR, sizeof(size));
    return size;
}

static inline void *failmalloc_malloc(size_t size, void *ud)
{
    failmalloc *fm = ud;
    if (!failmalloc_may(fm) || size > SIZE_MAX - FAILMALLOC_HDR)
        return NULL;
    uint8_t *raw = malloc(size + FAILMALLOC_HDR);
    if (raw == NULL)
        return NULL;
    fm->live++;
    return failmalloc_stamp(fm, raw, size);
}

static inline void failmalloc_free(void *ptr, void *ud)
{
    failmalloc *fm = ud;
    if (ptr == NULL)
        return;
    fm->live--;
    fm->live_bytes -= failmalloc_size_of(ptr);
    free((uint8_t *)ptr - FAILMALLOC_HDR);
}

static inline void *failmalloc_calloc(size_t n, size_t size, void *ud)
{
    if (size != 0 && n > (SIZE_MAX - FAILMALLOC_HDR) / size)
        return NULL;
    void *p = failmalloc_malloc(n * size, ud);
    if (p != NULL)
        memset(p, 0, n * size);
    return p;
}

static inline void *failmalloc_realloc(void *ptr, size_t size, void *ud)
{
    failmalloc *fm = ud;
    if (ptr == NULL)
        return failmalloc_malloc(size, ud);
    if (!failmalloc_may(fm) || size > SIZE_MAX - FAILMALLOC_HDR)
        return NULL;
    size_t old = failmalloc_size_of(ptr);
    uint8_t *raw = realloc((uint8_t *)ptr - FAILMALLOC_HDR, size + FAILMALLOC_HDR);
    if (raw == NULL)
        return NULL;
    fm->live_bytes -= old;
    return failmalloc_stamp(fm, raw, size);
}

/* Resets |fm| (fail_at -1 = never fail) and returns a mux_mem that allocates through it. */
static inline mux_mem failmalloc_mem(failmalloc *fm, long fail_at, int once)
{
    memset(fm, 0, sizeof(*fm));
    fm->fail_at = fail_at;
    fm->once = once;
    mux_mem m = {fm, failmalloc_malloc, failmalloc_free, failmalloc_calloc, failmalloc_realloc};
    return m;
}

#endif
