/*
 * Unit tests for src/client/backoff.c: the reconnect delay (RECONNECT_DELAY fixed by default,
 * RECONNECT_BACKOFF growth, RECONNECT_MAX_DELAY cap, RECONNECT_JITTER spread, REFUSE floor).
 */
#include <stdint.h>

#include "backoff.h"
#include "check_main.h"

START_TEST(test_fixed_by_default)
{
    backoff_policy p = {.delay_ms = 5000, .backoff = 1.0, .max_delay_ms = 300000, .jitter = 0.0};
    uint64_t rng = 1;
    for (int64_t a = 1; a <= 1000; a++)
        ck_assert_int_eq(backoff_delay(&p, a, 0, &rng), 5000);
    ck_assert_int_eq(backoff_delay(&p, INT64_MAX, 0, &rng), 5000);
    p.delay_ms = 0;
    ck_assert_int_eq(backoff_delay(&p, 3, 0, &rng), 0);
}
END_TEST

START_TEST(test_growth_and_cap)
{
    backoff_policy p = {.delay_ms = 1000, .backoff = 2.0, .max_delay_ms = 30000, .jitter = 0.0};
    uint64_t rng = 1;
    ck_assert_int_eq(backoff_delay(&p, 1, 0, &rng), 1000);
    ck_assert_int_eq(backoff_delay(&p, 2, 0, &rng), 2000);
    ck_assert_int_eq(backoff_delay(&p, 3, 0, &rng), 4000);
    ck_assert_int_eq(backoff_delay(&p, 5, 0, &rng), 16000);
    ck_assert_int_eq(backoff_delay(&p, 6, 0, &rng), 30000);
    ck_assert_int_eq(backoff_delay(&p, 1000000000, 0, &rng), 30000);
    ck_assert_int_eq(backoff_delay(&p, INT64_MAX, 0, &rng), 30000);
    p.backoff = 1.5;
    ck_assert_int_eq(backoff_delay(&p, 3, 0, &rng), 2250);
    /* a cap below the base delay never shortens RECONNECT_DELAY */
    p.max_delay_ms = 500;
    ck_assert_int_eq(backoff_delay(&p, 10, 0, &rng), 1000);
    /* no cap: bounded by a day */
    p.max_delay_ms = 0;
    p.backoff = 10.0;
    ck_assert_int_eq(backoff_delay(&p, 100, 0, &rng), 86400000);
}
END_TEST

START_TEST(test_jitter_spread)
{
    backoff_policy p = {.delay_ms = 10000, .backoff = 1.0, .max_delay_ms = 0, .jitter = 0.2};
    uint64_t rng = 42;
    int64_t lo = INT64_MAX, hi = 0;
    int below = 0, above = 0;
    for (int i = 0; i < 2000; i++) {
        int64_t d = backoff_delay(&p, 1, 0, &rng);
        ck_assert_int_ge(d, 8000);
        ck_assert_int_le(d, 12000);
        lo = d < lo ? d : lo;
        hi = d > hi ? d : hi;
        below += d < 10000;
        above += d > 10000;
    }
    ck_assert_int_lt(lo, 8200); /* the whole range is used */
    ck_assert_int_gt(hi, 11800);
    ck_assert_int_gt(below, 800);
    ck_assert_int_gt(above, 800);
    p.jitter = 1.0;
    for (int i = 0; i < 200; i++) {
        int64_t d = backoff_delay(&p, 1, 0, &rng);
        ck_assert_int_ge(d, 0);
        ck_assert_int_le(d, 20000);
    }
}
END_TEST

START_TEST(test_floor_from_refuse)
{
    backoff_policy p = {.delay_ms = 1000, .backoff = 1.0, .max_delay_ms = 0, .jitter = 0.5};
    uint64_t rng = 0; /* 0 is replaced, still works */
    for (int i = 0; i < 100; i++)
        ck_assert_int_ge(backoff_delay(&p, 1, 5000, &rng), 5000);
    ck_assert_uint_ne(rng, 0);
}
END_TEST

START_TEST(test_random_range)
{
    uint64_t s = 7;
    for (int i = 0; i < 10000; i++) {
        double r = backoff_random(&s);
        ck_assert(r >= 0.0 && r < 1.0);
    }
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("backoff");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_fixed_by_default);
    tcase_add_test(tc, test_growth_and_cap);
    tcase_add_test(tc, test_jitter_spread);
    tcase_add_test(tc, test_floor_from_refuse);
    tcase_add_test(tc, test_random_range);
    suite_add_tcase(s, tc);
    return s;
}

TM_CHECK_MAIN(make_suite)
