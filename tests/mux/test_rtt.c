/*
 * tunnelmux — RTT estimator (rtt.c) unit tests with a fake clock: RFC 6298 smoothing, the windowed
 * minimum and its expiry, the busy-tunnel PING interval.
 */
#include <check.h>

#include "check_main.h"
#include "rtt.h"

START_TEST(test_rtt_empty)
{
    mux_rtt r;
    mux_rtt_init(&r);
    ck_assert_int_eq(mux_rtt_smoothed(&r), -1);
    ck_assert_int_eq(mux_rtt_min(&r), -1);
    ck_assert_int_eq(mux_rtt_latest(&r), -1);
    ck_assert_int_eq(mux_rtt_variation(&r), -1);
    ck_assert_int_eq(mux_rtt_probe_interval(&r), MUX_RTT_PROBE_MIN_MS);
    mux_rtt_sample(&r, -5, 0); /* ignored */
    ck_assert_int_eq(mux_rtt_smoothed(&r), -1);
}
END_TEST

START_TEST(test_rtt_rfc6298)
{
    mux_rtt r;
    mux_rtt_init(&r);
    mux_rtt_sample(&r, 80, 1000);
    ck_assert_int_eq(mux_rtt_smoothed(&r), 80);  /* SRTT = R */
    ck_assert_int_eq(mux_rtt_variation(&r), 40); /* RTTVAR = R/2 */
    ck_assert_int_eq(mux_rtt_min(&r), 80);
    mux_rtt_sample(&r, 160, 1100);
    /* RTTVAR = 3/4 * 40 + 1/4 * |80 - 160| = 50; SRTT = 7/8 * 80 + 1/8 * 160 = 90 */
    ck_assert_int_eq(mux_rtt_variation(&r), 50);
    ck_assert_int_eq(mux_rtt_smoothed(&r), 90);
    ck_assert_int_eq(mux_rtt_latest(&r), 160);
    ck_assert_int_eq(mux_rtt_min(&r), 80);
    /* a steady RTT: SRTT converges to it */
    for (int i = 0; i < 100; i++)
        mux_rtt_sample(&r, 50, 1200 + i);
    ck_assert_int_eq(mux_rtt_smoothed(&r), 50);
    ck_assert_int_le(mux_rtt_variation(&r), 1);
    ck_assert_int_eq(mux_rtt_min(&r), 50);
}
END_TEST

START_TEST(test_rtt_min_window)
{
    mux_rtt r;
    mux_rtt_init(&r);
    mux_rtt_sample(&r, 20, 0);
    /* queueing raises the samples: the minimum stays until it is older than the window */
    int64_t t = 0;
    for (; t < MUX_RTT_MIN_WINDOW_MS - 100; t += 100)
        mux_rtt_sample(&r, 200 + (t / 100) % 7, t);
    ck_assert_int_eq(mux_rtt_min(&r), 20);
    ck_assert_int_gt(mux_rtt_smoothed(&r), 150);
    /* past the window: the old minimum is forgotten, the minimum of the recent samples counts */
    for (; t < 2 * MUX_RTT_MIN_WINDOW_MS; t += 100)
        mux_rtt_sample(&r, 200 + (t / 100) % 7, t);
    ck_assert_int_ge(mux_rtt_min(&r), 200);
    ck_assert_int_le(mux_rtt_min(&r), 206);
    /* a path that got shorter: a smaller sample is the new minimum at once */
    mux_rtt_sample(&r, 10, t);
    ck_assert_int_eq(mux_rtt_min(&r), 10);
}
END_TEST

START_TEST(test_rtt_probe_interval)
{
    mux_rtt r;
    mux_rtt_init(&r);
    mux_rtt_sample(&r, 0, 0); /* loopback */
    ck_assert_int_eq(mux_rtt_probe_interval(&r), MUX_RTT_PROBE_MIN_MS);
    mux_rtt_init(&r);
    mux_rtt_sample(&r, 100, 0);
    ck_assert_int_eq(mux_rtt_probe_interval(&r), 200); /* 2 x SRTT */
    mux_rtt_init(&r);
    mux_rtt_sample(&r, 3000, 0);
    ck_assert_int_eq(mux_rtt_probe_interval(&r), MUX_RTT_PROBE_MAX_MS);
}
END_TEST

Suite *make_suite(void);
Suite *make_suite(void)
{
    Suite *s = suite_create("rtt");
    TCase *tc = tcase_create("rtt");
    tcase_add_test(tc, test_rtt_empty);
    tcase_add_test(tc, test_rtt_rfc6298);
    tcase_add_test(tc, test_rtt_min_window);
    tcase_add_test(tc, test_rtt_probe_interval);
    suite_add_tcase(s, tc);
    return s;
}

TM_CHECK_MAIN(make_suite)
