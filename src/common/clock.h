/*
 * tunnelmux — the two clocks the daemons read, in one place.
 *
 * clock_mono_ms() is for every deadline, timer and duration (it never jumps); clock_unix_ms() is
 * wall-clock time, only for what a human or another machine reads (admin API, dashboard, logs).
 * src/mux never calls either: its callers pass time in.
 */
#ifndef TUNNELMUX_COMMON_CLOCK_H
#define TUNNELMUX_COMMON_CLOCK_H

#include <stdint.h>

/* Milliseconds on CLOCK_MONOTONIC: for deadlines and durations. */
int64_t clock_mono_ms(void);

/* Milliseconds since the Unix epoch (CLOCK_REALTIME): for timestamps shown to people. */
int64_t clock_unix_ms(void);

#endif
