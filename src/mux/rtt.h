/*
 * tunnelmux — round-trip time estimator of one tunnel (PROTOCOL.md §8): samples come from PING/PONG
 * (the opaque value is the sender's clock), time is passed in. Keeps the smoothed RTT and its
 * variation (RFC 6298 §2, gains 1/8 and 1/4) and the minimum over a sliding window (two-slot
 * windowed minimum: the oldest slot expires after the window, the younger one takes over), so a
 * tunnel that moves to a shorter path forgets the old minimum within two windows.
 * Pure: no clock, no allocation. Ownership: embedded by value in the session.
 */
#ifndef MUX_RTT_H
#define MUX_RTT_H

#include <stdint.h>

#define MUX_RTT_MIN_WINDOW_MS 10000 /* the minimum covers the last half to whole of this */
#define MUX_RTT_PROBE_MIN_MS 100    /* busy tunnels PING at most this often ... */
#define MUX_RTT_PROBE_MAX_MS 1000   /* ... and at least this often while DATA flows */

typedef struct {
    int64_t samples;         /* how many samples were taken (0: nothing known) */
    int64_t latest_ms;       /* last sample */
    int64_t srtt_x8;         /* smoothed RTT in 1/8 ms (RFC 6298 SRTT) */
    int64_t rttvar_x4;       /* RTT variation in 1/4 ms (RFC 6298 RTTVAR) */
    int64_t min_ms[2];       /* windowed minimum: [0] the current one, [1] the candidate since ... */
    int64_t min_since_ms[2]; /* ... these times (the start of each slot) */
} mux_rtt;

void mux_rtt_init(mux_rtt *r);
/* Takes one sample |rtt_ms| (>= 0; negative samples are ignored) measured at |now_ms|. */
void mux_rtt_sample(mux_rtt *r, int64_t rtt_ms, int64_t now_ms);
/* Smoothed RTT in ms, rounded; -1 before the first sample. */
int64_t mux_rtt_smoothed(const mux_rtt *r);
/* RTT variation in ms, rounded; -1 before the first sample. */
int64_t mux_rtt_variation(const mux_rtt *r);
/* Minimum RTT of the last MUX_RTT_MIN_WINDOW_MS / 2 to MUX_RTT_MIN_WINDOW_MS; -1 before the first
 * sample. */
int64_t mux_rtt_min(const mux_rtt *r);
/* Last sample; -1 before the first. */
int64_t mux_rtt_latest(const mux_rtt *r);
/* How long a busy tunnel waits between PINGs: twice the smoothed RTT, within
 * [MUX_RTT_PROBE_MIN_MS, MUX_RTT_PROBE_MAX_MS]; MUX_RTT_PROBE_MIN_MS before the first sample. */
int64_t mux_rtt_probe_interval(const mux_rtt *r);

#endif
