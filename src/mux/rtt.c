/*
 * tunnelmux — round-trip time estimator (rtt.h): RFC 6298 smoothing and a windowed minimum.
 */
#include "rtt.h"

void mux_rtt_init(mux_rtt *r)
{
    r->samples = 0;
    r->latest_ms = -1;
    r->srtt_x8 = 0;
    r->rttvar_x4 = 0;
    r->min_ms[0] = r->min_ms[1] = -1;
    r->min_since_ms[0] = r->min_since_ms[1] = 0;
}

void mux_rtt_sample(mux_rtt *r, int64_t rtt_ms, int64_t now_ms)
{
    if (rtt_ms < 0)
        return;
    r->latest_ms = rtt_ms;
    if (r->samples++ == 0) {
        /* RFC 6298 §2.2: SRTT = R, RTTVAR = R/2 */
        r->srtt_x8 = rtt_ms * 8;
        r->rttvar_x4 = rtt_ms * 2;
        r->min_ms[0] = r->min_ms[1] = rtt_ms;
        r->min_since_ms[0] = r->min_since_ms[1] = now_ms;
        return;
    }
    /* RFC 6298 §2.3: RTTVAR = 3/4 RTTVAR + 1/4 |SRTT - R|, SRTT = 7/8 SRTT + 1/8 R */
    int64_t err = r->srtt_x8 - rtt_ms * 8;
    if (err < 0)
        err = -err;
    r->rttvar_x4 += (err + 4) / 8 - (r->rttvar_x4 + 2) / 4; /* rounded: no drift from truncation */
    r->srtt_x8 += rtt_ms - (r->srtt_x8 + 4) / 8;

    /* windowed minimum: slot 1 collects the minimum since its start; once slot 0 is older than
     * the window, slot 1 replaces it and a new slot 1 starts with this sample */
    if (rtt_ms <= r->min_ms[0]) { /* a new minimum resets both slots */
        r->min_ms[0] = r->min_ms[1] = rtt_ms;
        r->min_since_ms[0] = r->min_since_ms[1] = now_ms;
        return;
    }
    if (rtt_ms <= r->min_ms[1]) {
        r->min_ms[1] = rtt_ms;
        r->min_since_ms[1] = now_ms;
    }
    if (now_ms - r->min_since_ms[0] >= MUX_RTT_MIN_WINDOW_MS) {
        r->min_ms[0] = r->min_ms[1];
        r->min_since_ms[0] = r->min_since_ms[1];
        r->min_ms[1] = rtt_ms;
        r->min_since_ms[1] = now_ms;
    } else if (now_ms - r->min_since_ms[1] >= MUX_RTT_MIN_WINDOW_MS / 2) {
        r->min_ms[1] = rtt_ms; /* the candidate is half a window old: restart it */
        r->min_since_ms[1] = now_ms;
    }
}

int64_t mux_rtt_smoothed(const mux_rtt *r)
{
    return r->samples == 0 ? -1 : (r->srtt_x8 + 4) / 8;
}

int64_t mux_rtt_variation(const mux_rtt *r)
{
    return r->samples == 0 ? -1 : (r->rttvar_x4 + 2) / 4;
}

int64_t mux_rtt_min(const mux_rtt *r)
{
    return r->samples == 0 ? -1 : r->min_ms[0];
}

int64_t mux_rtt_latest(const mux_rtt *r)
{
    return r->samples == 0 ? -1 : r->latest_ms;
}

int64_t mux_rtt_probe_interval(const mux_rtt *r)
{
    if (r->samples == 0)
        return MUX_RTT_PROBE_MIN_MS;
    int64_t t = 2 * mux_rtt_smoothed(r);
    if (t < MUX_RTT_PROBE_MIN_MS)
        t = MUX_RTT_PROBE_MIN_MS;
    if (t > MUX_RTT_PROBE_MAX_MS)
        t = MUX_RTT_PROBE_MAX_MS;
    return t;
}
