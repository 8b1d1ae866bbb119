/*
 * tunnelmux — unit tests for src/mux/entropy.c: which inputs the session keeps away from zstd.
 * Random and zstd-compressed bytes must be judged incompressible; text, JSON, base64, repeated
 * bytes, structured binary and short inputs must not (missing compression is the safe error).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "check_main.h"
#include "entropy.h"

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint8_t next_byte(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint8_t)(rng_state >> 32);
}

static uint8_t *random_bytes(size_t n)
{
    uint8_t *p = malloc(n);
    for (size_t i = 0; i < n; i++)
        p[i] = next_byte();
    return p;
}

/* |n| bytes of JSON-like text */
static uint8_t *json_bytes(size_t n)
{
    uint8_t *p = malloc(n);
    size_t off = 0;
    for (unsigned i = 0; off < n; i++) {
        char rec[128];
        int k = snprintf(rec, sizeof(rec), "{\"id\":%u,\"name\":\"user-%u\",\"active\":%s,\"score\":%u.%02u},", i, i * 7919,
                         (i & 1) ? "true" : "false", (i * 31) % 1000, i % 100);
        for (int j = 0; j < k && off < n; j++)
            p[off++] = (uint8_t)rec[j];
    }
    return p;
}

START_TEST(test_random_is_incompressible)
{
    static const size_t sizes[] = {512, 1000, 4096, 8192, 65536, 262144, 1 << 20};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        uint8_t *p = random_bytes(sizes[i]);
        ck_assert_msg(mux_looks_incompressible(p, sizes[i]) == 1, "random %zu bytes judged compressible", sizes[i]);
        free(p);
    }
}
END_TEST

START_TEST(test_zstd_output_is_incompressible)
{
    size_t n = 1 << 20;
    uint8_t *text = json_bytes(n);
    size_t cap = ZSTD_compressBound(n);
    uint8_t *z = malloc(cap);
    size_t zl = ZSTD_compress(z, cap, text, n, 19);
    ck_assert(!ZSTD_isError(zl));
    ck_assert_uint_gt(zl, 4096);
    ck_assert_int_eq(mux_looks_incompressible(z, zl), 1);
    free(z);
    free(text);
}
END_TEST

START_TEST(test_text_is_compressible)
{
    size_t n = 256 * 1024;
    uint8_t *p = json_bytes(n);
    ck_assert_int_eq(mux_looks_incompressible(p, n), 0);
    free(p);
    const char *prose = "It is a truth universally acknowledged, that a single man in possession of a good fortune, "
                        "must be in want of a wife. However little known the feelings or views of such a man may be "
                        "on his first entering a neighbourhood, this truth is so well fixed in the minds of the "
                        "surrounding families, that he is considered the rightful property of some one or other of "
                        "their daughters. ";
    size_t pl = strlen(prose), m = pl * 40;
    uint8_t *t = malloc(m);
    for (size_t i = 0; i < 40; i++)
        memcpy(t + i * pl, prose, pl);
    ck_assert_int_eq(mux_looks_incompressible(t, m), 0);
    free(t);
}
END_TEST

START_TEST(test_base64_and_structured_binary_are_compressible)
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t n = 64 * 1024;
    uint8_t *p = malloc(n);
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)b64[next_byte() & 63]; /* 6 bits of entropy per byte at most */
    ck_assert_int_eq(mux_looks_incompressible(p, n), 0);
    /* little-endian 32-bit counters: high bytes mostly zero */
    for (size_t i = 0; i + 4 <= n; i += 4) {
        uint32_t v = (uint32_t)(i / 4);
        memcpy(p + i, &v, 4);
    }
    ck_assert_int_eq(mux_looks_incompressible(p, n), 0);
    memset(p, 0, n);
    ck_assert_int_eq(mux_looks_incompressible(p, n), 0);
    free(p);
}
END_TEST

START_TEST(test_flat_but_repeating_is_compressible)
{
    /* every byte value equally often, but periodic (and a random block repeated): LZ finds it */
    size_t n = 256 * 1024;
    uint8_t *p = malloc(n);
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(((i & 0xffff) * 131 + (i >> 16)) & 0xff);
    ck_assert_int_eq(mux_looks_incompressible(p, n), 0);
    uint8_t *r = random_bytes(512);
    for (size_t i = 0; i < n; i += 512)
        memcpy(p + i, r, 512);
    ck_assert_int_eq(mux_looks_incompressible(p, n), 0);
    free(r);
    free(p);
}
END_TEST

START_TEST(test_short_and_null_inputs_compress)
{
    uint8_t *p = random_bytes(MUX_ENTROPY_MIN_SAMPLE);
    ck_assert_int_eq(mux_looks_incompressible(p, MUX_ENTROPY_MIN_SAMPLE - 1), 0);
    ck_assert_int_eq(mux_looks_incompressible(p, 0), 0);
    ck_assert_int_eq(mux_looks_incompressible(NULL, 4096), 0);
    free(p);
}
END_TEST

START_TEST(test_mixed_input_is_judged_by_all_slices)
{
    /* text first, random after: half the sample is text, the histogram is far from flat */
    size_t n = 256 * 1024;
    uint8_t *p = json_bytes(n);
    uint8_t *r = random_bytes(n / 2);
    memcpy(p + n / 2, r, n / 2);
    ck_assert_int_eq(mux_looks_incompressible(p, n), 0);
    free(r);
    free(p);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("entropy");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_random_is_incompressible);
    tcase_add_test(tc, test_zstd_output_is_incompressible);
    tcase_add_test(tc, test_text_is_compressible);
    tcase_add_test(tc, test_base64_and_structured_binary_are_compressible);
    tcase_add_test(tc, test_flat_but_repeating_is_compressible);
    tcase_add_test(tc, test_short_and_null_inputs_compress);
    tcase_add_test(tc, test_mixed_input_is_judged_by_all_slices);
    suite_add_tcase(s, tc);
    return s;
}

TM_CHECK_MAIN(make_suite)
