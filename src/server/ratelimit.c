/*
 * tunnelmux server — token buckets (see ratelimit.h).
 */
#include "server/ratelimit.h"

void ratelimit_init(ratelimit_bucket *b, double rate, double burst, int64_t now_ms)
{
    b->rate = rate > 0 ? rate : 0;
    b->burst = burst < 1 ? 1 : burst;
    b->tokens = b->burst;
    b->last_ms = now_ms;
}

static void refill(ratelimit_bucket *b, int64_t now_ms)
{
    if (now_ms > b->last_ms) {
        b->tokens += (double)(now_ms - b->last_ms) * b->rate / 1000.0;
        if (b->tokens > b->burst)
            b->tokens = b->burst;
        b->last_ms = now_ms;
    }
}

/* Milliseconds until the level reaches |need| (>= 1). */
static int64_t wait_for(const ratelimit_bucket *b, double need)
{
    double ms = (need - b->tokens) * 1000.0 / b->rate - 1e-6; /* no extra ms from rounding noise */
    if (ms > 86400000.0)
        return 86400000;
    int64_t v = (int64_t)ms;
    if ((double)v < ms)
        v++; /* round up */
    return v < 1 ? 1 : v;
}

int64_t ratelimit_take(ratelimit_bucket *b, double n, int64_t now_ms)
{
    if (b->rate <= 0)
        return 0;
    refill(b, now_ms);
    if (b->tokens + 1e-9 >= n) { /* tolerate float accumulation noise */
        b->tokens -= n;
        return 0;
    }
    return wait_for(b, n);
}

void ratelimit_charge(ratelimit_bucket *b, double n, int64_t now_ms)
{
    if (b->rate <= 0)
        return;
    refill(b, now_ms);
    b->tokens -= n;
}

int64_t ratelimit_debt_wait(ratelimit_bucket *b, int64_t now_ms)
{
    if (b->rate <= 0)
        return 0;
    refill(b, now_ms);
    return b->tokens >= 0 ? 0 : wait_for(b, 0);
}
