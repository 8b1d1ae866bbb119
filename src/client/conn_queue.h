/*
 * tunnelmux client — the local connection budget: at most LOCAL_MAX_CONNECTIONS streams hold a
 * connection to the local service at a time, and at most LOCAL_MAX_CONNECTING new connections are
 * being opened at a time; the streams beyond wait in arrival order (FIFO), at most LOCAL_QUEUE_MAX
 * of them; beyond that a stream is refused (the server answers 503 with Retry-After, PROTOCOL.md
 * §9.5). Pure bookkeeping: no clock (times are passed in), no I/O, no lws.
 *
 * A slot is a right to one local connection (connecting, in use, or moved back to the keep-alive
 * pool by its holder). The caller takes a slot with conn_queue_acquire(), gives it back with
 * conn_queue_release(), and after any release, cancel or opening end calls conn_queue_next() in a
 * loop to hand freed slots to the waiters, oldest first.
 *
 * Opening: a new connection counts from its connect until the local service sends its first byte
 * (it accepted the connection) or the caller gives up waiting for that (conn_queue_open_begin/end).
 * The kernel completes a TCP connect before the service accept()s it, so limiting connects in
 * progress does not keep a small listen backlog from overflowing; limiting connections that have
 * not answered yet does (docs/PERFORMANCE.md, "Local connections"). A stream that can reuse an idle
 * connection (|idle| below) needs no opening.
 */
#ifndef TM_CLIENT_CONN_QUEUE_H
#define TM_CLIENT_CONN_QUEUE_H

#include <stdint.h>

/* Embedded in the waiting object (the caller owns its memory; the queue only links it). An entry
 * that is not queued has next == prev == NULL. */
typedef struct conn_waiter {
    struct conn_waiter *next, *prev;
    int64_t since_ms; /* when it was queued */
} conn_waiter;

typedef enum {
    CONN_QUEUE_GRANTED = 0, /* a slot was taken: connect now */
    CONN_QUEUE_WAITING = 1, /* queued: conn_queue_next() hands it a slot later */
    CONN_QUEUE_FULL = 2,    /* the queue is at its bound: refuse the stream */
} conn_queue_result;

/* Upper bounds (seconds) of the queue wait histogram buckets; +Inf is implicit. */
#define CONN_QUEUE_BUCKETS 12
extern const double conn_queue_bucket_le[CONN_QUEUE_BUCKETS];

typedef struct {
    int64_t max_active;  /* LOCAL_MAX_CONNECTIONS (0 = no limit) */
    int64_t max_queued;  /* LOCAL_QUEUE_MAX: waiters kept at most (0 = none: refuse at once when full) */
    int64_t max_opening; /* LOCAL_MAX_CONNECTING: new connections not yet answered (0 = no limit) */
    int64_t active;      /* slots held */
    int64_t opening;     /* new connections not yet answered */
    int64_t queued;      /* waiters */
    conn_waiter list;    /* sentinel: list.next is the oldest waiter */
    /* statistics (for /metrics) */
    uint64_t admitted;                             /* slots granted (at once or after waiting) */
    uint64_t waited;                               /* of them, after waiting in the queue */
    uint64_t refused;                              /* CONN_QUEUE_FULL answers */
    uint64_t cancelled;                            /* waiters removed before their turn */
    uint64_t waits;                                /* waits recorded: admitted + cancelled streams */
    uint64_t wait_ms_sum;                          /* total of the recorded waits */
    uint64_t wait_buckets[CONN_QUEUE_BUCKETS + 1]; /* recorded waits by length, not cumulative (last = +Inf) */
    int64_t peak_queued;                           /* largest queue length seen */
    uint64_t burst_refused;                        /* refusals since the queue was last empty (see conn_queue_burst_over) */
} conn_queue;

/* Initialises |q| (embedded; nothing to free). Negative bounds are taken as 0. */
void conn_queue_init(conn_queue *q, int64_t max_active, int64_t max_queued, int64_t max_opening);

/* Asks for a slot for |w| at |now_ms|. GRANTED when a slot is free, nobody waits (FIFO: a new
 * arrival never passes a waiter) and either |idle| (the caller will reuse an idle connection) or
 * fewer than max_opening connections are being opened; WAITING when |w| was queued; FULL when the
 * queue holds max_queued waiters (|w| untouched; counted in refused and burst_refused). */
conn_queue_result conn_queue_acquire(conn_queue *q, conn_waiter *w, int idle, int64_t now_ms);

/* A new connection starts opening / stopped opening (answered, closed, or waited for long enough).
 * Call conn_queue_next() after an end. */
void conn_queue_open_begin(conn_queue *q);
void conn_queue_open_end(conn_queue *q);

/* Gives back a slot taken by GRANTED or conn_queue_next(). Call conn_queue_next() afterwards. */
void conn_queue_release(conn_queue *q);

/* The oldest waiter, now holding a slot and unlinked, when a slot is free (and, unless |idle|, a
 * connection may be opened); else NULL. Records its wait (now_ms - since_ms) in the statistics;
 * *wait_ms receives it (may be NULL). */
conn_waiter *conn_queue_next(conn_queue *q, int idle, int64_t now_ms, int64_t *wait_ms);

/* Removes |w| when it is queued (its stream went away: cancelled, timed out); no-op otherwise. Its
 * wait until |now_ms| is recorded too (a wait that ended without a slot still was a wait).
 * Returns 1 when removed. */
int conn_queue_cancel(conn_queue *q, conn_waiter *w, int64_t now_ms);

/* 1 when |w| is queued. */
int conn_queue_is_waiting(const conn_waiter *w);

/* The burst of refusals is over (nobody waits and a slot is free again, after at least one FULL):
 * returns the number refused during it and starts a new burst; else 0. */
uint64_t conn_queue_burst_over(conn_queue *q);

/* How long the oldest waiter has waited at |now_ms| (0 when none). */
int64_t conn_queue_oldest_wait_ms(const conn_queue *q, int64_t now_ms);

#endif
