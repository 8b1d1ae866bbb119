/*
 * tunnelmux — the compression-probe policy (compress_policy.c) on its own: a new stream is looked
 * at, a stream that did not compress is skipped and re-tried after 16 messages, the wait doubling
 * per failed re-try up to 16 << 6, a success resetting it; the pay-off and size thresholds.
 */
#include <check.h>

#include "check_main.h"
#include "compress_policy.h"

/* Calls before() until it says LOOK; returns how many SKIPs came first (bounded). */
static unsigned skips_until_look(mux_compress_probe *p)
{
    unsigned n = 0;
    while (mux_compress_before(p) == MUX_COMPRESS_SKIP && n < 100000)
        n++;
    return n;
}

START_TEST(test_new_stream_is_looked_at)
{
    mux_compress_probe p = {0};
    for (int i = 0; i < 5; i++) {
        ck_assert_int_eq(mux_compress_before(&p), MUX_COMPRESS_LOOK);
        ck_assert_int_eq(mux_compress_after_look(&p, 0), 1); /* compressible bytes: compress */
        mux_compress_note(&p, 0);                            /* and it paid */
    }
    ck_assert_int_eq(p.incompressible, 0);
}
END_TEST

START_TEST(test_flat_bytes_go_plain_and_back_off)
{
    mux_compress_probe p = {0};
    ck_assert_int_eq(mux_compress_before(&p), MUX_COMPRESS_LOOK);
    ck_assert_int_eq(mux_compress_after_look(&p, 1), 0); /* flat histogram: plain */
    ck_assert_int_eq(p.incompressible, 1);
    ck_assert_int_eq(p.probe_shift, 0); /* the first failure is not a failed re-try */
    /* re-tries after 16, 32, 64, ... messages, up to 16 << 6 = 1024 */
    unsigned want[] = {15, 31, 63, 127, 255, 511, 1023, 1023, 1023};
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        ck_assert_uint_eq(skips_until_look(&p), want[i]);
        ck_assert_int_eq(mux_compress_after_look(&p, 1), 0);
    }
    ck_assert_int_eq(p.probe_shift, MUX_INCOMPRESSIBLE_PROBE_MAX_SHIFT);
    /* a re-try that compresses well resets everything: looked at every time again */
    ck_assert_uint_eq(skips_until_look(&p), 1023);
    ck_assert_int_eq(mux_compress_after_look(&p, 0), 1);
    mux_compress_note(&p, 0);
    ck_assert_int_eq(p.incompressible, 0);
    ck_assert_int_eq(p.probe_shift, 0);
    ck_assert_uint_eq(skips_until_look(&p), 0);
}
END_TEST

START_TEST(test_compressed_but_did_not_pay)
{
    mux_compress_probe p = {0};
    /* the bytes looked compressible, zstd saved too little: treated like a flat histogram */
    ck_assert_int_eq(mux_compress_before(&p), MUX_COMPRESS_LOOK);
    ck_assert_int_eq(mux_compress_after_look(&p, 0), 1);
    ck_assert_int_eq(mux_compress_did_not_pay(950, 1000), 1);
    mux_compress_note(&p, 1);
    ck_assert_uint_eq(skips_until_look(&p), 15);
    ck_assert_int_eq(mux_compress_after_look(&p, 0), 1);
    mux_compress_note(&p, 1); /* the re-try failed too: the wait doubles */
    ck_assert_uint_eq(skips_until_look(&p), 31);
}
END_TEST

START_TEST(test_thresholds)
{
    ck_assert_int_eq(mux_compress_did_not_pay(900, 1000), 0); /* saved 10%: pays */
    ck_assert_int_eq(mux_compress_did_not_pay(901, 1000), 1);
    ck_assert_int_eq(mux_compress_did_not_pay(1200, 1000), 1); /* grew */
    ck_assert_int_eq(mux_compress_did_not_pay(0, 0), 0);
    ck_assert_int_eq(mux_compress_too_small(0), 1);
    ck_assert_int_eq(mux_compress_too_small(MUX_COMPRESS_MIN_BODY - 1), 1);
    ck_assert_int_eq(mux_compress_too_small(MUX_COMPRESS_MIN_BODY), 0);
    ck_assert_uint_eq(mux_compress_limit(256 * 1024), 256 * 1024 - 1024 - 64);
    ck_assert_uint_eq(mux_compress_limit(256), 256 - 1 - 64);
}
END_TEST

Suite *make_suite(void);
Suite *make_suite(void)
{
    Suite *s = suite_create("compress_policy");
    TCase *tc = tcase_create("compress_policy");
    tcase_add_test(tc, test_new_stream_is_looked_at);
    tcase_add_test(tc, test_flat_bytes_go_plain_and_back_off);
    tcase_add_test(tc, test_compressed_but_did_not_pay);
    tcase_add_test(tc, test_thresholds);
    suite_add_tcase(s, tc);
    return s;
}

TM_CHECK_MAIN(make_suite)
