/*
 * tunnelmux client — reconnect delay policy (RECONNECT_DELAY, RECONNECT_BACKOFF,
 * RECONNECT_MAX_DELAY, RECONNECT_JITTER). Pure functions: no clock, no global state; the caller
 * owns the random state.
 */
#ifndef TM_CLIENT_BACKOFF_H
#define TM_CLIENT_BACKOFF_H

#include <stdint.h>

typedef struct {
    int64_t delay_ms;     /* RECONNECT_DELAY: the first delay (and every delay when backoff == 1) */
    double backoff;       /* RECONNECT_BACKOFF: factor per consecutive failure (>= 1) */
    int64_t max_delay_ms; /* RECONNECT_MAX_DELAY: cap of the grown delay (0 = no cap) */
    double jitter;        /* RECONNECT_JITTER: 0..1, the delay is multiplied by a random factor in [1-j, 1+j] */
} backoff_policy;

/*
 * The delay before attempt number |attempt| (1 = the first retry after a loss) in milliseconds:
 * delay_ms * backoff^(attempt-1), capped at max_delay_ms (when > 0 and >= delay_ms), then scaled
 * by a random factor in [1-jitter, 1+jitter] drawn from |*rng| (advanced; any seed but 0 works,
 * 0 is replaced). Never negative; |floor_ms| (e.g. a server's REFUSE retry-after) is a lower
 * bound applied after jitter.
 */
int64_t backoff_delay(const backoff_policy *p, int64_t attempt, int64_t floor_ms, uint64_t *rng);

/* xorshift64* step: returns a uniform value in [0, 1) and advances |*state| (0 is replaced). */
double backoff_random(uint64_t *state);

#endif
