/* Unit tests for src/server/headers.c: hop-by-hop filtering, forward-X, x-forwarded-*, forwarded. */
#include <string.h>

#include "check_main.h"
#include "server/headers.h"

#define H(n, v)                                                                                                                    \
    {                                                                                                                              \
        {(uint8_t *)(n), sizeof(n) - 1},                                                                                           \
        {                                                                                                                          \
            (uint8_t *)(v), sizeof(v) - 1                                                                                          \
        }                                                                                                                          \
    }

static int ndrops;
static void on_drop(void *ctx, const char *name, size_t len, const char *why)
{
    (void)ctx, (void)name, (void)len, (void)why;
    ndrops++;
}

/* Returns the value of the |idx|-th header named |name| (NUL-terminated copy) or NULL. */
static const char *get(const headers_list *l, const char *name, int idx)
{
    static char buf[1024];
    for (size_t i = 0; i < l->n; i++) {
        if (l->v[i].name.len == strlen(name) && memcmp(l->v[i].name.base, name, l->v[i].name.len) == 0 && idx-- == 0) {
            memcpy(buf, l->v[i].value.base, l->v[i].value.len);
            buf[l->v[i].value.len] = 0;
            return buf;
        }
    }
    return NULL;
}

static headers_request_info info4(void)
{
    headers_request_info info = {
        .scheme = "http", .authority = "demo.example.com:8080", .authority_len = 21, .client_ip = "10.1.2.3", .content_length = -1};
    return info;
}

START_TEST(test_basic)
{
    mux_header in[] = {H("Host", "demo.example.com:8080"),
                       H("Accept", "*/*"),
                       H("Connection", "keep-alive, X-Foo"),
                       H("X-Foo", "bar"),
                       H("Keep-Alive", "5"),
                       H("TE", "trailers"),
                       H("Transfer-Encoding", "chunked"),
                       H("Upgrade", "h2c"),
                       H("HTTP2-Settings", "AAA"),
                       H("Trailer", "x"),
                       H("Proxy-Connection", "x"),
                       H("cookie", "a=1"),
                       H("Cookie", "b=2"),
                       H("content-length", "99")};
    headers_request_info info = info4();
    info.content_length = 5;
    headers_list l;
    ndrops = 0;
    ck_assert_int_eq(headers_build_request(&l, in, sizeof(in) / sizeof(in[0]), &info, on_drop, NULL), 0);
    ck_assert_int_eq(ndrops, 0);
    ck_assert_str_eq(l.v[0].name.base[0] == 'a' ? "ok" : "bad", "ok");
    ck_assert_str_eq(get(&l, "accept", 0), "*/*");
    ck_assert_str_eq(get(&l, "cookie", 0), "a=1");
    ck_assert_str_eq(get(&l, "cookie", 1), "b=2");
    ck_assert_ptr_null(get(&l, "host", 0));
    ck_assert_ptr_null(get(&l, "x-foo", 0));
    ck_assert_ptr_null(get(&l, "connection", 0));
    ck_assert_ptr_null(get(&l, "keep-alive", 0));
    ck_assert_ptr_null(get(&l, "te", 0));
    ck_assert_ptr_null(get(&l, "transfer-encoding", 0));
    ck_assert_ptr_null(get(&l, "upgrade", 0));
    ck_assert_ptr_null(get(&l, "http2-settings", 0));
    ck_assert_ptr_null(get(&l, "trailer", 0));
    ck_assert_ptr_null(get(&l, "proxy-connection", 0));
    ck_assert_str_eq(get(&l, "content-length", 0), "5");
    ck_assert_ptr_null(get(&l, "content-length", 1));
    ck_assert_str_eq(get(&l, "x-forwarded-for", 0), "10.1.2.3");
    ck_assert_str_eq(get(&l, "x-forwarded-proto", 0), "http");
    ck_assert_str_eq(get(&l, "x-forwarded-host", 0), "demo.example.com:8080");
    ck_assert_str_eq(get(&l, "forwarded", 0), "for=10.1.2.3;proto=http;host=\"demo.example.com:8080\"");
    /* order: accept, cookie, cookie, then ours */
    ck_assert_int_eq(l.n, 3 + 5);
    ck_assert_int_eq(memcmp(l.v[1].name.base, "cookie", 6), 0);
    headers_list_free(&l);
}
END_TEST

START_TEST(test_forward_x)
{
    mux_header in[] = {H("Forward-Authorization", "Bearer x"),
                       H("forward-host", "evil"),
                       H("FORWARD-Content-Length", "1"),
                       H("forward-", "empty"),
                       H("forward-proxy-authorization", "x"),
                       H("forward-connection", "close"),
                       H("forward-te", "trailers"),
                       H("forward-expect", "100-continue"),
                       H("forward-x-bad", "a\r\nb"),
                       H("forward-x-nul", "a\0b"),
                       H("forward-keep-alive", "1"),
                       H("forward-X-Ok", "fine")};
    headers_request_info info = info4();
    headers_list l;
    ndrops = 0;
    ck_assert_int_eq(headers_build_request(&l, in, sizeof(in) / sizeof(in[0]), &info, on_drop, NULL), 0);
    ck_assert_int_eq(ndrops, 10);
    ck_assert_str_eq(get(&l, "authorization", 0), "Bearer x");
    ck_assert_str_eq(get(&l, "x-ok", 0), "fine");
    ck_assert_ptr_null(get(&l, "host", 0));
    ck_assert_ptr_null(get(&l, "content-length", 0));
    ck_assert_ptr_null(get(&l, "x-bad", 0));
    ck_assert_int_eq(l.n, 2 + 4);
    headers_list_free(&l);
}
END_TEST

/* PROTOCOL.md §9.2: Forward-X replaces the user's own X (one Authorization reaches the local
 * service, the forwarded one), in either order; an invalid Forward-X leaves the user's X alone. */
START_TEST(test_forward_replaces_own)
{
    mux_header in[] = {H("Authorization", "Basic public"), H("Forward-Authorization", "Bearer inner"), H("Cookie", "a=1"),
                       H("forward-cookie", "b=2"),         H("authorization", "Basic again"),          H("X-Keep", "1"),
                       H("forward-x-keep", "bad\r\nvalue")};
    headers_request_info info = info4();
    headers_list l;
    ndrops = 0;
    ck_assert_int_eq(headers_build_request(&l, in, sizeof(in) / sizeof(in[0]), &info, on_drop, NULL), 0);
    ck_assert_int_eq(ndrops, 1); /* forward-x-keep: bad value */
    ck_assert_str_eq(get(&l, "authorization", 0), "Bearer inner");
    ck_assert_ptr_null(get(&l, "authorization", 1));
    ck_assert_str_eq(get(&l, "cookie", 0), "b=2");
    ck_assert_ptr_null(get(&l, "cookie", 1));
    ck_assert_str_eq(get(&l, "x-keep", 0), "1");
    headers_list_free(&l);
}
END_TEST

START_TEST(test_forwarded_append)
{
    mux_header in[] = {H("X-Forwarded-For", "1.1.1.1"), H("x-forwarded-for", "2.2.2.2"), H("Forwarded", "for=1.1.1.1"),
                       H("X-Forwarded-Proto", "https"), H("X-Forwarded-Host", "spoof")};
    headers_request_info info = {
        .scheme = "https", .authority = "demo.example.com", .authority_len = 16, .client_ip = "::1", .content_length = -1};
    headers_list l;
    ck_assert_int_eq(headers_build_request(&l, in, sizeof(in) / sizeof(in[0]), &info, NULL, NULL), 0);
    ck_assert_str_eq(get(&l, "x-forwarded-for", 0), "1.1.1.1, 2.2.2.2, ::1");
    ck_assert_ptr_null(get(&l, "x-forwarded-for", 1));
    ck_assert_str_eq(get(&l, "x-forwarded-proto", 0), "https");
    ck_assert_ptr_null(get(&l, "x-forwarded-proto", 1));
    ck_assert_str_eq(get(&l, "x-forwarded-host", 0), "demo.example.com");
    ck_assert_str_eq(get(&l, "forwarded", 0), "for=1.1.1.1, for=\"[::1]\";proto=https;host=demo.example.com");
    ck_assert_int_eq(l.n, 4);
    headers_list_free(&l);
}
END_TEST

START_TEST(test_upgrade_kept)
{
    mux_header in[] = {H("Connection", "Upgrade"), H("Upgrade", "websocket"), H("Sec-WebSocket-Key", "k")};
    headers_request_info info = info4();
    info.keep_upgrade = 1;
    info.upgrade = "websocket";
    info.upgrade_len = 9;
    headers_list l;
    ck_assert_int_eq(headers_build_request(&l, in, 3, &info, NULL, NULL), 0);
    ck_assert_str_eq(get(&l, "upgrade", 0), "websocket");
    ck_assert_ptr_null(get(&l, "upgrade", 1));
    ck_assert_ptr_null(get(&l, "connection", 0));
    ck_assert_str_eq(get(&l, "sec-websocket-key", 0), "k");
    headers_list_free(&l);
    /* h2o moved Upgrade out of the headers: it is added from info */
    ck_assert_int_eq(headers_build_request(&l, in + 2, 1, &info, NULL, NULL), 0);
    ck_assert_str_eq(get(&l, "upgrade", 0), "websocket");
    headers_list_free(&l);
}
END_TEST

START_TEST(test_empty_and_misc)
{
    headers_request_info info = info4();
    info.content_length = 0;
    headers_list l;
    ck_assert_int_eq(headers_build_request(&l, NULL, 0, &info, NULL, NULL), 0);
    ck_assert_str_eq(get(&l, "content-length", 0), "0");
    ck_assert_int_eq(l.n, 5);
    headers_list_free(&l);
    headers_list_free(&l);
    mux_header bad[] = {H("bad name", "v"), H("x", "a\nb")};
    ndrops = 0;
    ck_assert_int_eq(headers_build_request(&l, bad, 2, &info, on_drop, NULL), 0);
    ck_assert_int_eq(ndrops, 2);
    headers_list_free(&l);

    ck_assert(headers_response_keep("date", 4, "x", 1, 200));
    ck_assert(!headers_response_keep("content-length", 14, "1", 1, 200));
    ck_assert(!headers_response_keep("upgrade", 7, "websocket", 9, 200));
    ck_assert(headers_response_keep("upgrade", 7, "websocket", 9, 101));
    ck_assert(headers_response_keep("upgrade", 7, "websocket", 9, 426));
    ck_assert(!headers_response_keep("connection", 10, "close", 5, 200));
    ck_assert(!headers_response_keep("x", 1, "a\rb", 3, 200));
    ck_assert_int_eq(headers_parse_content_length(" 123 ", 5), 123);
    ck_assert_int_eq(headers_parse_content_length("", 0), -1);
    ck_assert_int_eq(headers_parse_content_length("1,2", 3), -1);
    ck_assert_int_eq(headers_parse_content_length("-1", 2), -1);
    ck_assert_int_eq(headers_parse_content_length("99999999999999999999", 20), -1);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("server_headers");
    TCase *tc = tcase_create("headers");
    tcase_add_test(tc, test_basic);
    tcase_add_test(tc, test_forward_x);
    tcase_add_test(tc, test_forward_replaces_own);
    tcase_add_test(tc, test_forwarded_append);
    tcase_add_test(tc, test_upgrade_kept);
    tcase_add_test(tc, test_empty_and_misc);
    suite_add_tcase(s, tc);
    return s;
}

TM_CHECK_MAIN(make_suite)
