/*
 * tunnelmux client — reconnect delay policy (see backoff.h).
 */
#include "backoff.h"

/* Returns a uniform double in [0, 1) and advances the xorshift64* state. */
double backoff_random(uint64_t *state)
{
    uint64_t x = *state;
    if (x == 0)
        x = UINT64_C(0x9E3779B97F4A7C15);
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return (double)((x * UINT64_C(0x2545F4914F6CDD1D)) >> 11) / 9007199254740992.0; /* 2^53 */
}

/* Delay before retry |attempt| (1-based); see backoff.h. Pure except for advancing |*rng|. */
int64_t backoff_delay(const backoff_policy *p, int64_t attempt, int64_t floor_ms, uint64_t *rng)
{
    double d = p->delay_ms > 0 ? (double)p->delay_ms : 0.0;
    double cap = (double)p->max_delay_ms;
    if (p->max_delay_ms <= 0)
        cap = d > 86400000.0 ? d : 86400000.0; /* no cap: never more than a day unless RECONNECT_DELAY says so */
    else if (cap < d)
        cap = d; /* a cap never shortens RECONNECT_DELAY itself */
    if (p->backoff > 1.0 && attempt > 1 && d > 0.0) {
        /* d * backoff^(attempt-1) by squaring: at most 63 rounds, stops once past the cap */
        double base = p->backoff;
        uint64_t n = (uint64_t)(attempt - 1);
        while (n > 0 && d < cap) {
            if (n & 1)
                d *= base;
            n >>= 1;
            base = base < 1e150 ? base * base : 1e300;
        }
    }
    if (d > cap)
        d = cap;
    if (p->jitter > 0.0) {
        double j = p->jitter > 1.0 ? 1.0 : p->jitter;
        double r = backoff_random(rng); /* [0, 1) */
        d *= 1.0 - j + 2.0 * j * r;
    }
    int64_t ms = (int64_t)(d + 0.5);
    if (ms < 0)
        ms = 0;
    if (ms < floor_ms)
        ms = floor_ms;
    return ms;
}
