/*
 * tunnelmux tests — in-memory two-peer harness for mux sessions (quicly t/test.c `transmit` style).
 *
 * A fake clock, a seeded PRNG, a per-stream byte pattern for exactly-once/in-order checks, and
 * transmit(): takes one batch from a session's send side, copies it into a transport buffer and
 * feeds it to the other session in random pieces (down to 1 byte, or whole: PEER_WHOLE).
 * Header-only, for tests and benches (bench/bench_mux.c). Not thread-safe; no global mutable state.
 */
#ifndef TM_TESTS_MUX_PEER_H
#define TM_TESTS_MUX_PEER_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mux/mux.h"

/* ---------------------------------------------------------------- PRNG (splitmix64) */

typedef struct {
    uint64_t s;
} peer_rng;

static inline uint64_t peer_rng_next(peer_rng *r)
{
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Uniform in [lo, hi] (inclusive). */
static inline uint64_t peer_rng_range(peer_rng *r, uint64_t lo, uint64_t hi)
{
    return lo + peer_rng_next(r) % (hi - lo + 1);
}

/* ---------------------------------------------------------------- byte pattern */

/* Byte |off| of the stream (|id|, direction |dir|): a hash of the 8-byte word it falls in. */
static inline uint8_t peer_pattern_byte(uint32_t id, int dir, uint64_t off)
{
    peer_rng r = {((uint64_t)id << 33) ^ ((uint64_t)dir << 32) ^ (off >> 3) * 0x100000001b3ull};
    return (uint8_t)(peer_rng_next(&r) >> ((off & 7) * 8));
}

static inline void peer_pattern_fill(uint8_t *p, size_t n, uint32_t id, int dir, uint64_t off)
{
    size_t i = 0;
    while (i < n) {
        peer_rng r = {((uint64_t)id << 33) ^ ((uint64_t)dir << 32) ^ ((off + i) >> 3) * 0x100000001b3ull};
        uint64_t w = peer_rng_next(&r);
        for (unsigned k = (unsigned)((off + i) & 7); k < 8 && i < n; k++, i++)
            p[i] = (uint8_t)(w >> (k * 8));
    }
}

/* Returns the index of the first mismatch, or n when |p| matches the pattern. */
static inline size_t peer_pattern_check(const uint8_t *p, size_t n, uint32_t id, int dir, uint64_t off)
{
    size_t i = 0;
    while (i < n) {
        peer_rng r = {((uint64_t)id << 33) ^ ((uint64_t)dir << 32) ^ ((off + i) >> 3) * 0x100000001b3ull};
        uint64_t w = peer_rng_next(&r);
        for (unsigned k = (unsigned)((off + i) & 7); k < 8 && i < n; k++, i++)
            if (p[i] != (uint8_t)(w >> (k * 8)))
                return i;
    }
    return n;
}

/* ---------------------------------------------------------------- transport */

#define PEER_MAX_IOV 256        /* the most iovecs one transmit asks for (peer_net.iovcnt) */
#define PEER_WHOLE ((size_t)-1) /* max_chunk: hand each batch to recv in one piece */

typedef struct {
    uint8_t *buf; /* transport buffer (one batch), owned */
    size_t cap;
    int64_t now; /* the fake clock, ms */
    peer_rng rng;
    void (*record)(void *ctx, const uint8_t *p, size_t n, int to_server); /* transcript hook, may be NULL */
    void *record_ctx;
    size_t iovcnt;         /* iovecs offered to mux_session_send (0: 128; at most PEER_MAX_IOV) */
    double (*clock)(void); /* optional: times the copy into |buf| (the kernel's part), added to copy_s */
    double copy_s;
} peer_net;

static inline void peer_net_init(peer_net *n, uint64_t seed)
{
    memset(n, 0, sizeof(*n));
    n->rng.s = seed;
}

static inline void peer_net_free(peer_net *n)
{
    free(n->buf);
    n->buf = NULL;
}

/*
 * Moves one batch from |src| to |dst|: send, copy into the transport buffer, send_done, then recv in
 * pieces of 1..|max_chunk| bytes (random; PEER_WHOLE: one piece). Returns the bytes moved (0 = nothing to send), or the
 * negative error returned by dst's recv (the rest of the batch is dropped), or -1 on a send error.
 */
static inline ssize_t transmit(peer_net *n, mux_session *src, mux_session *dst, size_t max_chunk, int to_server)
{
    mux_iovec iov[PEER_MAX_IOV];
    size_t iovcnt = n->iovcnt == 0 ? 128 : n->iovcnt < PEER_MAX_IOV ? n->iovcnt : PEER_MAX_IOV;
    ssize_t cnt = mux_session_send(src, iov, iovcnt, n->now);
    if (cnt < 0)
        return -1;
    if (cnt == 0)
        return 0;
    size_t total = 0;
    for (ssize_t i = 0; i < cnt; i++)
        total += iov[i].len;
    if (total > n->cap) {
        free(n->buf);
        n->cap = total * 2;
        n->buf = malloc(n->cap);
        if (n->buf == NULL)
            abort();
    }
    double t0 = n->clock != NULL ? n->clock() : 0;
    size_t at = 0;
    for (ssize_t i = 0; i < cnt; i++) {
        memcpy(n->buf + at, iov[i].base, iov[i].len);
        at += iov[i].len;
    }
    if (n->clock != NULL)
        n->copy_s += n->clock() - t0;
    mux_session_send_done(src, n->now);
    if (n->record != NULL)
        n->record(n->record_ctx, n->buf, total, to_server);
    if (dst == NULL)
        return (ssize_t)total;
    size_t off = 0;
    while (off < total) {
        size_t k = max_chunk == PEER_WHOLE ? total - off : max_chunk <= 1 ? 1 : (size_t)peer_rng_range(&n->rng, 1, max_chunk);
        if (k > total - off)
            k = total - off;
        ssize_t rv = mux_session_recv(dst, n->buf + off, k, n->now);
        if (rv < 0)
            return rv;
        off += k;
    }
    return (ssize_t)total;
}

#endif
