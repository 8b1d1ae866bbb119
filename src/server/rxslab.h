/*
 * tunnelmux server — the bytes of one tunnel read, shared with the responses whose DATA they hold.
 *
 * A DATA frame that arrived whole inside one read is unmasked in place (src/mux); instead of copying
 * its payload into the response's buffer, the response hands h2o a pointer into the read buffer
 * and holds a reference to it until h2o is done with the bytes (proceed, or the request's end).
 * One copy of every downloaded byte less on the server (PERFORMANCE.md §3).
 *
 * Ownership: a slab owns the h2o_buffer_t it took from the tunnel socket; whoever holds a
 * reference may read [bytes, bytes + size) and the last rxslab_unref() disposes of it. The pool
 * counts the capacity of live slabs, so a few slow readers cannot pin many large read buffers:
 * over the budget, callers copy (rxslab_pool_full). Single-threaded (the server's loop).
 */
#ifndef TM_SERVER_RXSLAB_H
#define TM_SERVER_RXSLAB_H

#include <stddef.h>
#include <stdint.h>

#include <h2o.h>

typedef struct {
    size_t live;   /* capacity of the slabs alive now, bytes */
    size_t budget; /* rxslab_pool_full() above this */
    uint64_t adopted, freed;
} rxslab_pool;

typedef struct rxslab {
    rxslab_pool *pool;
    h2o_buffer_t *buf; /* owned */
    unsigned refs;
} rxslab;

/* Takes |*input| (which must hold bytes) out of its socket: the socket gets an empty buffer of the
 * same prototype. One reference, the caller's. NULL (and |*input| untouched) if out of memory. */
rxslab *rxslab_adopt(rxslab_pool *pool, h2o_buffer_t **input);

/* The bytes, writable: the session unmasks them in place before any response keeps a pointer. */
static inline uint8_t *rxslab_bytes(const rxslab *s)
{
    return (uint8_t *)s->buf->bytes;
}

/* 1 if [p, p + n) lies inside the slab's bytes. */
static inline int rxslab_contains(const rxslab *s, const void *p, size_t n)
{
    uintptr_t a = (uintptr_t)p, b = (uintptr_t)s->buf->bytes;
    return a >= b && n <= s->buf->size && a - b <= s->buf->size - n;
}

/* 1 when the slabs alive already exceed the pool's budget: copy rather than hold another one. */
static inline int rxslab_pool_full(const rxslab_pool *pool)
{
    return pool->live > pool->budget;
}

void rxslab_ref(rxslab *s);

/* Drops one reference; the last frees the slab. NULL is ignored. */
void rxslab_unref(rxslab *s);

#endif
