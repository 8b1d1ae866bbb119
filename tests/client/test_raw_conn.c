/*
 * Unit tests for src/client/raw_conn.c: the WRITE_TIMEOUT bookkeeping the tunnel and the local
 * connections share (raw_conn_stall_track), step by step through a stalled and a slow writer.
 */
#include <stdint.h>

#include "check_main.h"
#include "raw_conn.h"

START_TEST(test_stall_idle_stays_clear)
{
    int64_t d = 0;
    ck_assert_int_eq(raw_conn_stall_track(&d, 0, 0, 1000, 5000), 0); /* nothing waits, nothing armed */
    ck_assert_int_eq(d, 0);
    ck_assert_int_eq(raw_conn_stall_track(&d, 0, 1, 2000, 5000), 0); /* progress with nothing waiting */
    ck_assert_int_eq(d, 0);
}
END_TEST

START_TEST(test_stall_arms_once_without_progress)
{
    int64_t d = 0;
    ck_assert_int_eq(raw_conn_stall_track(&d, 1, 0, 1000, 5000), 1); /* bytes left unsent: armed */
    ck_assert_int_eq(d, 6000);
    /* more writes that leave bytes behind without the socket taking any: the deadline stays, so a
     * reader that stopped is caught WRITE_TIMEOUT after the first stall, not after the last write */
    ck_assert_int_eq(raw_conn_stall_track(&d, 1, 0, 3000, 5000), 0);
    ck_assert_int_eq(raw_conn_stall_track(&d, 1, 0, 5999, 5000), 0);
    ck_assert_int_eq(d, 6000);
}
END_TEST

START_TEST(test_stall_progress_pushes_deadline)
{
    int64_t d = 0;
    raw_conn_stall_track(&d, 1, 0, 1000, 5000);
    ck_assert_int_eq(raw_conn_stall_track(&d, 1, 1, 4000, 5000), 1); /* a slow reader took some */
    ck_assert_int_eq(d, 9000);
    ck_assert_int_eq(raw_conn_stall_track(&d, 1, 1, 4000, 5000), 1); /* same time: re-armed, same value */
    ck_assert_int_eq(d, 9000);
}
END_TEST

START_TEST(test_stall_clears_when_drained)
{
    int64_t d = 0;
    raw_conn_stall_track(&d, 1, 0, 1000, 5000);
    ck_assert_int_eq(raw_conn_stall_track(&d, 0, 1, 2000, 5000), 1); /* all went out: cancel */
    ck_assert_int_eq(d, 0);
    ck_assert_int_eq(raw_conn_stall_track(&d, 0, 0, 2500, 5000), 0); /* already clear */
    ck_assert_int_eq(raw_conn_stall_track(&d, 1, 0, 3000, 5000), 1); /* a new stall starts afresh */
    ck_assert_int_eq(d, 8000);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("raw_conn");
    TCase *tc = tcase_create("stall");
    tcase_add_test(tc, test_stall_idle_stays_clear);
    tcase_add_test(tc, test_stall_arms_once_without_progress);
    tcase_add_test(tc, test_stall_progress_pushes_deadline);
    tcase_add_test(tc, test_stall_clears_when_drained);
    suite_add_tcase(s, tc);
    return s;
}

TM_CHECK_MAIN(make_suite)
