/*
 * tunnelmux server — per public connection abuse budget (HTTP/2 Rapid Reset, CVE-2023-44487).
 *
 * h2o 2.2.5 has no reset budget (docs/ARCHITECTURE.md §7): a HEADERS+RST_STREAM flood would call
 * on_req for every stream and each would become a tunnel OPEN. Every request cancelled by the user
 * before its final response takes one token from its connection's bucket (H2_RESET_BUDGET tokens,
 * refilled over H2_RESET_WINDOW); when the bucket is empty the connection is condemned: the caller
 * shuts its socket down and answers whatever is still queued on it 429 without tunnelling.
 * Connections are keyed by h2o's conn->id (never by pointer) in a fixed table; pure, no I/O.
 */
#ifndef TM_SERVER_GUARD_H
#define TM_SERVER_GUARD_H

#include <stdint.h>

#include "server/ratelimit.h"

#define GUARD_SLOTS 4096

typedef struct {
    uint64_t conn_id; /* 0 = free */
    int64_t last_ms;  /* last activity */
    int condemned;
    ratelimit_bucket cancels;
} guard_slot;

typedef struct {
    uint32_t budget;   /* cancels allowed per window (0 = no limit) */
    int64_t window_ms; /* refill period of the whole budget */
    uint64_t condemned_total;
    guard_slot slots[GUARD_SLOTS];
} guard_table;

/* Initialises |g| (|budget| 0 disables). */
void guard_init(guard_table *g, uint32_t budget, int64_t window_ms);

/* 1 when |conn_id| has been condemned. */
int guard_is_condemned(const guard_table *g, uint64_t conn_id);

/*
 * Records a request of |conn_id| cancelled before its final response. Returns 1 exactly once,
 * when this cancel exhausts the budget and the connection becomes condemned; else 0.
 */
int guard_on_cancel(guard_table *g, uint64_t conn_id, int64_t now_ms);

#endif
