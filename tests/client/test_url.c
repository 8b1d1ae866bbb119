/*
 * Unit tests for src/client/url.c: SERVER_URL parsing.
 */
#include <stdio.h>
#include <string.h>

#include "check_main.h"
#include "url.h"

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

START_TEST(test_url_list)
{
    client_url u[CLIENT_MAX_SERVERS];
    size_t n = 99;
    char err[512];
    ck_assert_int_eq(client_parse_url_list("ws://127.0.0.1:8080", u, CLIENT_MAX_SERVERS, &n, err, sizeof(err)), 0);
    ck_assert_uint_eq(n, 1);
    ck_assert_int_eq(u[0].port, 8080);

    ck_assert_int_eq(client_parse_url_list("ws://a:1, wss://b/x ,ws://[::1]:3", u, CLIENT_MAX_SERVERS, &n, err, sizeof(err)), 0);
    ck_assert_uint_eq(n, 3);
    ck_assert_str_eq(u[0].hostport, "a:1");
    ck_assert_int_eq(u[1].tls, 1);
    ck_assert_str_eq(u[1].host, "b");
    ck_assert_str_eq(u[1].path, "/x");
    ck_assert_str_eq(u[2].host, "::1");

    /* the element is named by position and the reason given */
    ck_assert_int_eq(client_parse_url_list("ws://a:1,http://b", u, CLIENT_MAX_SERVERS, &n, err, sizeof(err)), -1);
    ck_assert_msg(strstr(err, "URL 2") != NULL && strstr(err, "http://b") != NULL && strstr(err, "scheme") != NULL, "%s", err);
    ck_assert_int_eq(client_parse_url_list("ws://a:1,,ws://b", u, CLIENT_MAX_SERVERS, &n, err, sizeof(err)), -1);
    ck_assert_msg(strstr(err, "URL 2") != NULL && strstr(err, "empty") != NULL, "%s", err);
    ck_assert_int_eq(client_parse_url_list("ws://a:1,", u, CLIENT_MAX_SERVERS, &n, err, sizeof(err)), -1);
    ck_assert_int_eq(client_parse_url_list("", u, CLIENT_MAX_SERVERS, &n, err, sizeof(err)), -1);
    ck_assert_int_eq(client_parse_url_list("ws://a:1/_tunnel,ws://a:1", u, CLIENT_MAX_SERVERS, &n, err, sizeof(err)), -1);
    ck_assert_msg(strstr(err, "repeats URL 1") != NULL, "%s", err);
    /* a space inside an element is still refused (it is not a separator) */
    ck_assert_int_eq(client_parse_url_list("ws://a:1 ws://b:2", u, CLIENT_MAX_SERVERS, &n, err, sizeof(err)), -1);
    /* the cap */
    char many[1024] = "";
    for (int i = 0; i <= CLIENT_MAX_SERVERS; i++)
        snprintf(many + strlen(many), sizeof(many) - strlen(many), "%sws://h%d", i ? "," : "", i);
    ck_assert_int_eq(client_parse_url_list(many, u, CLIENT_MAX_SERVERS, &n, err, sizeof(err)), -1);
    ck_assert_msg(strstr(err, "more than") != NULL, "%s", err);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("client_url");
    TCase *tc = tcase_create("url");
    tcase_add_test(tc, test_url_ok);
    tcase_add_test(tc, test_url_bad);
    tcase_add_test(tc, test_url_list);
    suite_add_tcase(s, tc);
    return s;
}

TM_CHECK_MAIN(make_suite)
