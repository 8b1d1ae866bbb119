/*
 * tunnelmux server — the zero-copy response queue (see resp_queue.h). Moved out of proxy.c's
 * take_pending / take_slice / on_data and the raw stream's buffer handling (issue 17 §3).
 */
#include "server/resp_queue.h"

#include <stdlib.h>
#include <string.h>

uint64_t resp_queue_held(const resp_queue *q)
{
    return (uint64_t)q->pend_len + q->zc_len + q->inflight_len;
}

int resp_queue_has_pending(const resp_queue *q)
{
    return q->zc_n > 0 || q->pend_len > 0;
}

int resp_queue_slice_fits(const resp_queue *q, size_t len)
{
    return len >= RESP_QUEUE_MIN_SLICE && q->zc_n + 3 <= RESP_QUEUE_MAX_PIECES;
}

int resp_queue_add_slice(resp_queue *q, rxslab *slab, const uint8_t *data, size_t len)
{
    if (!resp_queue_slice_fits(q, len) || slab == NULL || (q->zc_slab != NULL && q->zc_slab != slab))
        return 0;
    if (q->zc == NULL && (q->zc = malloc(RESP_QUEUE_MAX_PIECES * sizeof(*q->zc))) == NULL)
        return 0;
    if (q->zc_slab == NULL) {
        rxslab_ref(slab);
        q->zc_slab = slab;
    }
    if (q->zc_n == 0 && q->pend_len > 0)
        q->zc[q->zc_n++] = h2o_iovec_init(NULL, q->pend_len); /* what was copied before it */
    q->zc[q->zc_n++] = h2o_iovec_init(data, len);
    q->zc_len += len;
    return 1;
}

int resp_queue_append_copy(resp_queue *q, const uint8_t *data, size_t len)
{
    if (q->pend_len + len > q->pend_cap) {
        size_t cap = q->pend_cap ? q->pend_cap : RESP_QUEUE_FIRST_CAP;
        while (cap < q->pend_len + len)
            cap *= 2;
        uint8_t *b = realloc(q->pend, cap);
        if (b == NULL)
            return -1;
        q->pend = b;
        q->pend_cap = cap;
    }
    memcpy(q->pend + q->pend_len, data, len);
    q->pend_len += len;
    if (q->zc_n > 0) { /* after slices: the copy is a piece of its own (resp_queue_slice_fits left room) */
        if (q->zc[q->zc_n - 1].base == NULL)
            q->zc[q->zc_n - 1].len += len;
        else
            q->zc[q->zc_n++] = h2o_iovec_init(NULL, len);
    }
    return 0;
}

size_t resp_queue_take(resp_queue *q, h2o_iovec_t *bufs)
{
    size_t n = 0, off = 0;
    for (size_t i = 0; i < q->zc_n; i++) {
        h2o_iovec_t v = q->zc[i];
        if (v.base == NULL) { /* a piece of pend */
            v.base = (char *)q->pend + off;
            off += v.len;
        }
        bufs[n++] = v;
    }
    if (q->zc_n == 0 && q->pend_len > 0)
        bufs[n++] = h2o_iovec_init(q->pend, q->pend_len);
    rxslab_unref(q->fl_slab); /* NULL here: proceed dropped it, and nothing follows a final send */
    q->fl_slab = q->zc_slab;
    q->zc_slab = NULL;
    q->inflight_len = q->zc_len + q->pend_len;
    q->zc_n = q->zc_len = 0;
    if (q->pend_len > 0) {
        uint8_t *b = q->inflight;
        size_t cap = q->inflight_cap;
        q->inflight = q->pend;
        q->inflight_cap = q->pend_cap;
        q->pend = b;
        q->pend_cap = cap;
        q->pend_len = 0;
    }
    return n;
}

size_t resp_queue_written(resp_queue *q)
{
    size_t n = q->inflight_len;
    q->inflight_len = 0;
    rxslab_unref(q->fl_slab); /* the writer is done with the slices */
    q->fl_slab = NULL;
    return n;
}

void resp_queue_trim(resp_queue *q, size_t keep_cap, int inflight_busy)
{
    if (q->pend_len == 0 && q->pend_cap > keep_cap) {
        free(q->pend);
        q->pend = NULL;
        q->pend_cap = 0;
    }
    if (!inflight_busy && q->inflight_cap > keep_cap) {
        free(q->inflight);
        q->inflight = NULL;
        q->inflight_cap = 0;
    }
}

void resp_queue_free(resp_queue *q)
{
    free(q->pend);
    free(q->inflight);
    rxslab_unref(q->zc_slab);
    rxslab_unref(q->fl_slab);
    free(q->zc);
    memset(q, 0, sizeof(*q));
}
