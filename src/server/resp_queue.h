/*
 * tunnelmux server — the zero-copy response queue of one public request: response bytes waiting
 * for h2o (or an upgraded socket) as slices of tunnel reads (pointers into an rxslab, no copy) and
 * copies, handed over in one h2o_send / h2o_socket_write, and what is in flight until it is written.
 *
 * With no slice, |pend| alone holds the waiting bytes; once there is one, |zc| lists the pieces in
 * order, a piece with base NULL standing for the next |len| bytes of pend. resp_queue_take moves
 * everything into flight: the slices (and their slab reference) and the copy (pend and inflight
 * swap, so appends go to the spare buffer while the writer holds the other).
 *
 * Ownership: the queue owns pend, inflight and zc (malloc) and one reference on each of zc_slab
 * and fl_slab; resp_queue_free releases them all. A zeroed struct is an empty queue. Pure: no
 * h2o loop, no tunnel (the caller finds the slab, tunnel_rx_slab).
 */
#ifndef TM_SERVER_RESP_QUEUE_H
#define TM_SERVER_RESP_QUEUE_H

#include <stddef.h>
#include <stdint.h>

#include <h2o.h>

#include "server/rxslab.h"

#define RESP_QUEUE_MAX_PIECES 256  /* response slices of tunnel reads waiting for one send (rxslab.h) */
#define RESP_QUEUE_MIN_SLICE 4096  /* smaller DATA payloads are copied: a slice would cost more */
#define RESP_QUEUE_FIRST_CAP 16384 /* first capacity of a copy buffer (then doubled) */

typedef struct resp_queue {
    h2o_iovec_t *zc;                                       /* RESP_QUEUE_MAX_PIECES entries, allocated on first use */
    size_t zc_n;                                           /* pieces in zc (0: none, pend alone) */
    size_t zc_len;                                         /* bytes in slices */
    rxslab *zc_slab, *fl_slab;                             /* references held for the pending / in-flight slices */
    uint8_t *pend, *inflight;                              /* appends go to pend; inflight is what the writer holds */
    size_t pend_len, pend_cap, inflight_len, inflight_cap; /* inflight_len: all bytes in flight (slices too) */
} resp_queue;

/* Response bytes the queue holds: waiting copies and slices, and what is in flight. */
uint64_t resp_queue_held(const resp_queue *q);

/* 1 when bytes wait to be taken (resp_queue_take would fill at least one buffer). */
int resp_queue_has_pending(const resp_queue *q);

/* 1 when a slice of |len| bytes could be taken (not tiny, room for it, for the copied bytes before
 * it and for a copy after it): ask for the slab only then. */
int resp_queue_slice_fits(const resp_queue *q, size_t len);

/* Appends |data| as a slice of |slab| (the tunnel read it lies in; NULL: it is not one) when
 * resp_queue_slice_fits and it shares the slab of the slices already waiting. Takes a reference
 * on |slab| for the first slice. 1: taken; 0: not (copy it instead), also when out of memory. */
int resp_queue_add_slice(resp_queue *q, rxslab *slab, const uint8_t *data, size_t len);

/* Appends a copy of |data|. 0, or -1 when out of memory (the queue is unchanged). */
int resp_queue_append_copy(resp_queue *q, const uint8_t *data, size_t len);

/* Moves everything waiting into flight and fills |bufs| (RESP_QUEUE_MAX_PIECES + 1 entries) for one
 * send; returns their count. The slab reference of earlier in-flight slices is dropped (none is
 * left when the writer finished them: resp_queue_written). */
size_t resp_queue_take(resp_queue *q, h2o_iovec_t *bufs);

/* The writer finished the bytes in flight: returns how many (their credit goes back) and drops the
 * slab reference they held. */
size_t resp_queue_written(resp_queue *q);

/* Gives back copy buffers above |keep_cap| that hold nothing (the in-flight one only when
 * |inflight_busy| is 0): a burst must not leave an idle stream holding megabytes. */
void resp_queue_trim(resp_queue *q, size_t keep_cap, int inflight_busy);

/* Frees the buffers and drops the slab references; the queue is empty (zeroed) afterwards. */
void resp_queue_free(resp_queue *q);

#endif
