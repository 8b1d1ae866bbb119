/*
 * tunnelmux server — token buckets for per-client rate limits (pure; time is passed in).
 *
 * RATE_LIMIT_RPS / RATE_LIMIT_BURST: each public request for a client NAME takes one token from
 * that name's request bucket; RATE_LIMIT_BPS: request and response payload bytes are charged to
 * the name's byte bucket as they flow (it may go into debt) and a new request is admitted only while
 * the bucket is not in debt. An empty bucket means 429 with Retry-After (docs/SECURITY.md §4).
 */
#ifndef TM_SERVER_RATELIMIT_H
#define TM_SERVER_RATELIMIT_H

#include <stdint.h>

/* A token bucket: |rate| tokens per second, at most |burst| stored. rate 0 = unlimited. */
typedef struct {
    double rate;     /* tokens per second (0: unlimited) */
    double burst;    /* capacity */
    double tokens;   /* current level (may be negative with ratelimit_charge) */
    int64_t last_ms; /* time of the last refill */
} ratelimit_bucket;

/* Starts |b| full at |now_ms|. |burst| < 1 is raised to 1 (when rate > 0). */
void ratelimit_init(ratelimit_bucket *b, double rate, double burst, int64_t now_ms);

/*
 * Takes |n| tokens if available. Returns 0 when taken, or the milliseconds (>= 1) until |n| tokens
 * will be available (nothing taken). Unlimited buckets always return 0.
 */
int64_t ratelimit_take(ratelimit_bucket *b, double n, int64_t now_ms);

/* Removes |n| tokens unconditionally (the level may go negative: debt). */
void ratelimit_charge(ratelimit_bucket *b, double n, int64_t now_ms);

/* Returns 0 when the level is >= 0 (admission allowed), else the milliseconds until it is. */
int64_t ratelimit_debt_wait(ratelimit_bucket *b, int64_t now_ms);

#endif
