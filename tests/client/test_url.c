/*
 * Unit tests for src/client/url.c: SERVER_URL parsing.
 */
#include <string.h>

#include "check_main.h"
#include "client.h"

START_TEST(test_url_ok)
{
    client_url u;
    const char *reason = "";
    ck_assert_int_eq(client_parse_url("ws://127.0.0.1:8080", &u, &reason), 0);
    ck_assert_int_eq(u.tls, 0);
    ck_assert_str_eq(u.host, "127.0.0.1");
    ck_assert_int_eq(u.port, 8080);
    ck_assert_str_eq(u.path, "/_tunnel");
    ck_assert_str_eq(u.hostport, "127.0.0.1:8080");

    ck_assert_int_eq(client_parse_url("wss://tunnel.example.com/custom/path", &u, &reason), 0);
    ck_assert_int_eq(u.tls, 1);
    ck_assert_int_eq(u.port, 443);
    ck_assert_str_eq(u.path, "/custom/path");
    ck_assert_str_eq(u.hostport, "tunnel.example.com");

    ck_assert_int_eq(client_parse_url("ws://[::1]:9000/", &u, &reason), 0);
    ck_assert_str_eq(u.host, "::1");
    ck_assert_int_eq(u.port, 9000);
    ck_assert_str_eq(u.path, "/_tunnel");
    ck_assert_str_eq(u.hostport, "[::1]:9000");
}
END_TEST

START_TEST(test_url_bad)
{
    client_url u;
    const char *reason = "";
    const char *bad[] = {"http://x",  "ws://",       "ws://:80",     "ws://h:0",   "ws://h:65536",
                         "ws://h:8x", "ws://u@h",    "ws://h/p?q=1", "ws://h/p#f", "ws://h /",
                         "ws://[::1", "ws://[::1]x", "ws://h:",      "wss//h",     ""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(client_parse_url(bad[i], &u, &reason) == -1, "accepted %s", bad[i]);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("client_url");
    TCase *tc = tcase_create("url");
    tcase_add_test(tc, test_url_ok);
    tcase_add_test(tc, test_url_bad);
    suite_add_tcase(s, tc);
    return s;
}

TM_CHECK_MAIN(make_suite)
