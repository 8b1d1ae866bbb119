/* Unit tests for src/server/auth.c (token files, patterns, constant-time check, basic auth
 * decoding, failure throttle), ratelimit.c (token bucket with a fake clock) and guard.c (Rapid
 * Reset budget). */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check_main.h"
#include "server/auth.h"
#include "server/guard.h"
#include "server/ratelimit.h"

START_TEST(test_pattern)
{
    ck_assert(auth_pattern_valid("*"));
    ck_assert(auth_pattern_valid("app-*,demo"));
    ck_assert(auth_pattern_valid("a?c"));
    ck_assert(!auth_pattern_valid(""));
    ck_assert(!auth_pattern_valid("a,,b"));
    ck_assert(!auth_pattern_valid("a,"));
    ck_assert(!auth_pattern_valid("a.b"));
    ck_assert(!auth_pattern_valid("a b"));
    ck_assert(auth_pattern_match("*", "anything"));
    ck_assert(auth_pattern_match("demo", "demo"));
    ck_assert(auth_pattern_match("DEMO", "demo"));
    ck_assert(!auth_pattern_match("demo", "demo2"));
    ck_assert(!auth_pattern_match("demo", "dem"));
    ck_assert(auth_pattern_match("app-*", "app-1"));
    ck_assert(auth_pattern_match("app-*", "app-"));
    ck_assert(!auth_pattern_match("app-*", "app"));
    ck_assert(!auth_pattern_match("app-*", "xapp-1"));
    ck_assert(auth_pattern_match("*-prod", "shop-prod"));
    ck_assert(!auth_pattern_match("*-prod", "shop-prod2"));
    ck_assert(auth_pattern_match("a*b*c", "axxbyyc"));
    ck_assert(!auth_pattern_match("a*b*c", "axxbyy"));
    ck_assert(auth_pattern_match("x,y,team-?", "team-7"));
    ck_assert(!auth_pattern_match("x,y,team-?", "team-77"));
    /* pathological pattern stays polynomial */
    char name[64];
    memset(name, 'a', 63);
    name[63] = '\0';
    ck_assert(!auth_pattern_match("*a*a*a*a*a*a*a*a*a*a*b", name));
}
END_TEST

START_TEST(test_parse_and_check)
{
    auth_list l;
    auth_list_init(&l);
    char err[256];
    const char *text = "# tokens\n"
                       "\n"
                       "tok-alpha   alpha\r\n"
                       "  tok-team\tteam-*,shared  \n"
                       "tok-any *\n";
    ck_assert_int_eq(auth_list_parse(&l, text, strlen(text), 0, err, sizeof(err)), 3);
    ck_assert_int_eq(auth_list_check(&l, "tok-alpha", 9, "alpha"), AUTH_OK);
    ck_assert_int_eq(auth_list_check(&l, "tok-alpha", 9, "beta"), AUTH_ERR_NAME);
    ck_assert_int_eq(auth_list_check(&l, "tok-team", 8, "team-x"), AUTH_OK);
    ck_assert_int_eq(auth_list_check(&l, "tok-team", 8, "shared"), AUTH_OK);
    ck_assert_int_eq(auth_list_check(&l, "tok-team", 8, "alpha"), AUTH_ERR_NAME);
    ck_assert_int_eq(auth_list_check(&l, "tok-any", 7, "whatever"), AUTH_OK);
    ck_assert_int_eq(auth_list_check(&l, "tok-alph", 8, "alpha"), AUTH_ERR_TOKEN);
    ck_assert_int_eq(auth_list_check(&l, "tok-alphaX", 10, "alpha"), AUTH_ERR_TOKEN);
    ck_assert_int_eq(auth_list_check(&l, "", 0, "alpha"), AUTH_ERR_TOKEN);
    ck_assert_int_eq(auth_list_check(&l, NULL, 0, "alpha"), AUTH_ERR_TOKEN);
    /* the same token may appear twice with different patterns: either allows */
    ck_assert_int_eq(auth_list_add(&l, "tok-alpha", 9, "gamma"), AUTH_OK);
    ck_assert_int_eq(auth_list_check(&l, "tok-alpha", 9, "gamma"), AUTH_OK);
    ck_assert_int_eq(auth_list_check(&l, "tok-alpha", 9, "alpha"), AUTH_OK);
    ck_assert(auth_list_covers(&l, "team-9"));
    /* nothing of the secret is kept in clear */
    for (size_t i = 0; i < l.n; i++)
        ck_assert_ptr_null(memmem(&l.v[i], sizeof(l.v[i]), "tok-", 4));
    auth_list_free(&l);

    const char *bad[] = {"s3cr3t\n", "s3cr3t a b\n", "s3cr3t bad.pattern\n", "s3cr3t pat\x01\n"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        auth_list_init(&l);
        err[0] = '\0';
        ck_assert_int_eq(auth_list_parse(&l, bad[i], strlen(bad[i]), 0, err, sizeof(err)), AUTH_ERR_SYNTAX);
        ck_assert_msg(strncmp(err, "line 1:", 7) == 0, "%s", err);
        ck_assert_ptr_null(strstr(err, "s3cr3t")); /* the secret is never echoed */
        auth_list_free(&l);
    }
    /* basic auth file: pattern first, credentials must contain ':' */
    auth_list_init(&l);
    const char *b = "shop user:pa ss\n";
    ck_assert_int_eq(auth_list_parse(&l, b, strlen(b), 1, err, sizeof(err)), AUTH_ERR_SYNTAX);
    b = "shop,blog user:secret\n* admin:root\n";
    ck_assert_int_eq(auth_list_parse(&l, b, strlen(b), 1, err, sizeof(err)), 2);
    ck_assert_int_eq(auth_list_check(&l, "user:secret", 11, "shop"), AUTH_OK);
    ck_assert_int_eq(auth_list_check(&l, "user:secret", 11, "other"), AUTH_ERR_NAME);
    ck_assert_int_eq(auth_list_check(&l, "admin:root", 10, "other"), AUTH_OK);
    b = "shop nocolon\n";
    ck_assert_int_eq(auth_list_parse(&l, b, strlen(b), 1, err, sizeof(err)), AUTH_ERR_SYNTAX);
    auth_list_free(&l);
}
END_TEST

START_TEST(test_load_file)
{
    char path[] = "/tmp/tm-test-auth.XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    const char *text = "secret1 app\n";
    ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    auth_list l;
    auth_list_init(&l);
    char err[256];
    ck_assert_int_eq(auth_list_load_file(&l, path, 0, err, sizeof(err)), 1);
    ck_assert_int_eq(auth_list_check(&l, "secret1", 7, "app"), AUTH_OK);
    unlink(path);
    ck_assert_int_eq(auth_list_load_file(&l, path, 0, err, sizeof(err)), AUTH_ERR_IO);
    ck_assert_ptr_nonnull(strstr(err, path));
    auth_list_free(&l);
}
END_TEST

START_TEST(test_basic_decode)
{
    char out[64];
    const char *v = "Basic dXNlcjpwYXNz"; /* user:pass */
    ck_assert_int_eq(auth_parse_basic(v, strlen(v), out, sizeof(out)), 9);
    ck_assert_str_eq(out, "user:pass");
    v = "basic   dTpw  "; /* u:p */
    ck_assert_int_eq(auth_parse_basic(v, strlen(v), out, sizeof(out)), 3);
    ck_assert_str_eq(out, "u:p");
    v = "Basic dTo="; /* "u:" with padding */
    ck_assert_int_eq(auth_parse_basic(v, strlen(v), out, sizeof(out)), 2);
    ck_assert_str_eq(out, "u:");
    ck_assert_int_eq(auth_parse_basic("Bearer abcd", 11, out, sizeof(out)), -1);
    ck_assert_int_eq(auth_parse_basic("Basic", 5, out, sizeof(out)), -1);
    ck_assert_int_eq(auth_parse_basic("Basic abc", 9, out, sizeof(out)), -1);
    ck_assert_int_eq(auth_parse_basic("Basic ab\r\n", 10, out, sizeof(out)), -1);
    ck_assert_int_eq(auth_parse_basic("Basic a!cd", 10, out, sizeof(out)), -1);
    ck_assert_int_eq(auth_parse_basic("Basic dXNlcjpwYXNz", 18, out, 4), -1); /* too long for out */
}
END_TEST

START_TEST(test_throttle)
{
    auth_throttle *t = malloc(sizeof(*t));
    auth_throttle_init(t, 1000);
    int64_t now = 1000000;
    for (int i = 0; i < AUTH_FAIL_FREE; i++) {
        ck_assert_int_eq(auth_throttle_check(t, "10.0.0.1", now), 0);
        ck_assert_int_eq(auth_throttle_fail(t, "10.0.0.1", now), 0);
    }
    ck_assert_int_eq(auth_throttle_fail(t, "10.0.0.1", now), 1000);
    ck_assert_int_eq(auth_throttle_check(t, "10.0.0.1", now + 400), 600);
    ck_assert_int_eq(auth_throttle_check(t, "10.0.0.2", now), 0); /* other addresses unaffected */
    ck_assert_int_eq(auth_throttle_fail(t, "10.0.0.1", now + 1000), 2000);
    ck_assert_int_eq(auth_throttle_fail(t, "10.0.0.1", now + 3000), 4000);
    for (int i = 0; i < 20; i++)
        auth_throttle_fail(t, "10.0.0.1", now + 3000);
    ck_assert_int_eq(auth_throttle_check(t, "10.0.0.1", now + 3000), AUTH_FAIL_MAX_DELAY_MS);
    auth_throttle_success(t, "10.0.0.1");
    ck_assert_int_eq(auth_throttle_check(t, "10.0.0.1", now + 3000), 0);
    /* old failures are forgotten after the window */
    for (int i = 0; i < AUTH_FAIL_FREE; i++)
        auth_throttle_fail(t, "10.0.0.3", now);
    ck_assert_int_eq(auth_throttle_fail(t, "10.0.0.3", now + AUTH_FAIL_WINDOW_MS + 1), 0);
    /* many addresses: bounded table, never crashes */
    char a[48];
    for (int i = 0; i < 3 * AUTH_THROTTLE_SLOTS; i++) {
        snprintf(a, sizeof(a), "192.168.%d.%d", i / 256, i % 256);
        auth_throttle_fail(t, a, now + i);
    }
    /* disabled */
    auth_throttle_init(t, 0);
    for (int i = 0; i < 50; i++)
        ck_assert_int_eq(auth_throttle_fail(t, "10.0.0.1", now), 0);
    ck_assert_int_eq(auth_throttle_check(t, "10.0.0.1", now), 0);
    free(t);
}
END_TEST

START_TEST(test_bucket)
{
    ratelimit_bucket b;
    int64_t now = 5000;
    ratelimit_init(&b, 10, 20, now); /* 10/s, burst 20 */
    int ok = 0;
    for (int i = 0; i < 100; i++)
        ok += ratelimit_take(&b, 1, now) == 0;
    ck_assert_int_eq(ok, 20);
    ck_assert_int_eq(ratelimit_take(&b, 1, now), 100); /* next token in 100 ms */
    ck_assert_int_eq(ratelimit_take(&b, 1, now + 99), 1);
    ck_assert_int_eq(ratelimit_take(&b, 1, now + 100), 0);
    /* 10x overload for 10 s, 1 ms steps: accepted = burst-free rate within 1% */
    ratelimit_init(&b, 100, 1, now);
    ratelimit_take(&b, 1, now);
    ok = 0;
    for (int ms = 1; ms <= 10000; ms++)
        ok += ratelimit_take(&b, 1, now + ms) == 0;
    ck_assert_int_ge(ok, 990);
    ck_assert_int_le(ok, 1010);
    /* never above burst after a long idle */
    ratelimit_init(&b, 1000, 50, 0);
    ratelimit_take(&b, 50, 0);
    ck_assert_int_eq(ratelimit_take(&b, 51, 1000000), 1); /* 51 > burst: wait reported, nothing taken */
    ck_assert_int_eq(ratelimit_take(&b, 50, 1000000), 0);
    /* debt */
    ratelimit_init(&b, 1000, 1000, 0);
    ratelimit_charge(&b, 3000, 0); /* level -2000 */
    ck_assert_int_eq(ratelimit_debt_wait(&b, 0), 2000);
    ck_assert_int_eq(ratelimit_debt_wait(&b, 1500), 500);
    ck_assert_int_eq(ratelimit_debt_wait(&b, 2000), 0);
    /* unlimited */
    ratelimit_init(&b, 0, 0, 0);
    for (int i = 0; i < 1000; i++)
        ck_assert_int_eq(ratelimit_take(&b, 1e9, 0), 0);
    ratelimit_charge(&b, 1e12, 0);
    ck_assert_int_eq(ratelimit_debt_wait(&b, 0), 0);
}
END_TEST

START_TEST(test_guard)
{
    guard_table *g = malloc(sizeof(*g));
    guard_init(g, 100, 10000);
    int64_t now = 1;
    int condemned = 0;
    for (int i = 0; i < 100; i++)
        condemned += guard_on_cancel(g, 7, now);
    ck_assert_int_eq(condemned, 0);
    ck_assert(!guard_is_condemned(g, 7));
    ck_assert_int_eq(guard_on_cancel(g, 7, now), 1); /* the 101st within the window */
    ck_assert(guard_is_condemned(g, 7));
    ck_assert_int_eq(guard_on_cancel(g, 7, now), 0); /* reported once */
    ck_assert(!guard_is_condemned(g, 8));            /* other connections unaffected */
    /* a steady 9/s on a 100/10 s budget never condemns */
    for (int s = 0; s < 600; s++)
        for (int k = 0; k < 9; k++)
            ck_assert_int_eq(guard_on_cancel(g, 9, 1000 + s * 1000 + k), 0);
    ck_assert(!guard_is_condemned(g, 9));
    /* many connections: bounded table */
    for (uint64_t id = 100; id < 100 + 3 * GUARD_SLOTS; id++)
        guard_on_cancel(g, id, now);
    guard_init(g, 0, 10000); /* disabled */
    for (int i = 0; i < 1000; i++)
        ck_assert_int_eq(guard_on_cancel(g, 7, now), 0);
    free(g);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("auth");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_pattern);
    tcase_add_test(tc, test_parse_and_check);
    tcase_add_test(tc, test_load_file);
    tcase_add_test(tc, test_basic_decode);
    tcase_add_test(tc, test_throttle);
    tcase_add_test(tc, test_bucket);
    tcase_add_test(tc, test_guard);
    suite_add_tcase(s, tc);
    return s;
}

TM_CHECK_MAIN(make_suite)
