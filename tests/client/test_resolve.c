/*
 * Unit tests for src/client/resolve.c: LOCAL_HOST address list, order of attempts, preference.
 */
#include <string.h>
#include <sys/socket.h>

#include "check_main.h"
#include "mux/err.h"
#include "resolve.h"

START_TEST(test_numeric)
{
    local_addrs l;
    const char *reason = "";
    ck_assert_int_eq(local_addrs_resolve(&l, "127.0.0.1", &reason), 1);
    ck_assert_str_eq(l.a[0].text, "127.0.0.1");
    ck_assert_int_eq(l.a[0].family, AF_INET);
    ck_assert_int_eq(local_addrs_resolve(&l, "::1", &reason), 1);
    ck_assert_str_eq(l.a[0].text, "::1");
    ck_assert_int_eq(l.a[0].family, AF_INET6);
}
END_TEST

START_TEST(test_localhost)
{
    local_addrs l;
    const char *reason = "";
    int n = local_addrs_resolve(&l, "localhost", &reason);
    ck_assert_msg(n >= 1, "localhost: %s", reason);
    /* no duplicates (getaddrinfo lists an address once per socket type without the hint) */
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++)
            ck_assert_str_ne(l.a[i].text, l.a[j].text);
}
END_TEST

START_TEST(test_bad)
{
    local_addrs l;
    const char *reason = NULL;
    ck_assert_int_eq(local_addrs_resolve(&l, "", &reason), MUX_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(reason);
    ck_assert_int_eq(l.n, 0);
    reason = NULL;
    ck_assert_int_eq(local_addrs_resolve(&l, "no-such-host.invalid", &reason), MUX_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(reason);
    ck_assert_ptr_null(local_addrs_pick(&l, 0));
}
END_TEST

/* every address is tried once per connection, the preferred first, then the others in order */
START_TEST(test_pick_prefer)
{
    local_addrs l;
    memset(&l, 0, sizeof(l));
    strcpy(l.a[0].text, "::1");
    strcpy(l.a[1].text, "127.0.0.1");
    strcpy(l.a[2].text, "127.0.0.2");
    l.n = 3;
    ck_assert_str_eq(local_addrs_pick(&l, 0)->text, "::1");
    ck_assert_str_eq(local_addrs_pick(&l, 1)->text, "127.0.0.1");
    ck_assert_str_eq(local_addrs_pick(&l, 2)->text, "127.0.0.2");
    ck_assert_ptr_null(local_addrs_pick(&l, 3));
    ck_assert_ptr_null(local_addrs_pick(&l, -1));
    local_addrs_prefer(&l, 1); /* 127.0.0.1 answered */
    ck_assert_str_eq(local_addrs_pick(&l, 0)->text, "127.0.0.1");
    ck_assert_str_eq(local_addrs_pick(&l, 1)->text, "127.0.0.2");
    ck_assert_str_eq(local_addrs_pick(&l, 2)->text, "::1");
    ck_assert_ptr_null(local_addrs_pick(&l, 3));
    local_addrs_prefer(&l, 0); /* the preferred one answered again: unchanged */
    ck_assert_str_eq(local_addrs_pick(&l, 0)->text, "127.0.0.1");
    local_addrs_prefer(&l, 2);
    ck_assert_str_eq(local_addrs_pick(&l, 0)->text, "::1");
    local_addrs_prefer(&l, 7); /* out of range: ignored */
    ck_assert_str_eq(local_addrs_pick(&l, 0)->text, "::1");
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("client_resolve");
    TCase *tc = tcase_create("resolve");
    tcase_add_test(tc, test_numeric);
    tcase_add_test(tc, test_localhost);
    tcase_add_test(tc, test_bad);
    tcase_add_test(tc, test_pick_prefer);
    suite_add_tcase(s, tc);
    return s;
}

TM_CHECK_MAIN(make_suite)
