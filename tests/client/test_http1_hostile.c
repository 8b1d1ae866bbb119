/* Unit tests for src/client/http1.c against a hostile or buggy server (docs/SECURITY.md §6): the
 * request to the local service has exactly one framing header and nothing injected. */
#include <stdlib.h>
#include <string.h>

#include "check_main.h"
#include "http1.h"

#define IOV(s) ((mux_iovec){(uint8_t *)(s), sizeof(s) - 1})

static int count(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = strstr(hay, needle); p != NULL; p = strstr(p + 1, needle))
        n++;
    return n;
}

static int build(const mux_header *h, size_t n, uint32_t flags, http1_request *out, const char **reason)
{
    mux_head head = {.flags = flags,
                     .method = IOV("POST"),
                     .scheme = IOV("http"),
                     .authority = IOV("demo.example.com"),
                     .path = IOV("/p"),
                     .headers = h,
                     .nheaders = n};
    return http1_build_request(&head, HTTP1_HOST_PRESERVE, NULL, out, reason);
}

START_TEST(test_one_framing_header)
{
    http1_request r;
    const char *reason = "";
    /* transfer-encoding from the server is dropped; our content-length is the only framing */
    mux_header h1[] = {{IOV("transfer-encoding"), IOV("chunked")}, {IOV("content-length"), IOV("5")}};
    ck_assert_int_eq(build(h1, 2, 0, &r, &reason), 0);
    ck_assert_int_eq(count(r.buf, "Content-Length:"), 1);
    ck_assert_int_eq(count(r.buf, "chunked"), 0);
    ck_assert_int_eq(r.body, HTTP1_REQ_BODY_LENGTH);
    free(r.buf);
    /* no length: exactly one chunked, the server's own transfer-encoding dropped */
    mux_header h2[] = {{IOV("Transfer-Encoding"), IOV("gzip, chunked")}, {IOV("te"), IOV("trailers")}};
    ck_assert_int_eq(build(h2, 2, 0, &r, &reason), 0);
    ck_assert_int_eq(count(r.buf, "Transfer-Encoding: chunked\r\n"), 1);
    ck_assert_int_eq(count(r.buf, "gzip"), 0);
    ck_assert_int_eq(count(r.buf, "te: trailers"), 0);
    free(r.buf);
    /* duplicate equal content-length collapses to one; differing ones are refused */
    mux_header h3[] = {{IOV("content-length"), IOV("5")}, {IOV("Content-Length"), IOV("5")}};
    ck_assert_int_eq(build(h3, 2, 0, &r, &reason), 0);
    ck_assert_int_eq(count(r.buf, "Content-Length:"), 1);
    free(r.buf);
    mux_header h4[] = {{IOV("content-length"), IOV("5")}, {IOV("content-length"), IOV("50")}};
    ck_assert_int_eq(build(h4, 2, 0, &r, &reason), MUX_ERR_PROTO);
    mux_header h5[] = {{IOV("content-length"), IOV("5, 5")}};
    ck_assert_int_eq(build(h5, 1, 0, &r, &reason), MUX_ERR_PROTO);
    mux_header h6[] = {{IOV("content-length"), IOV("99999999999999999999")}};
    ck_assert_int_eq(build(h6, 1, 0, &r, &reason), MUX_ERR_PROTO);
    /* a second Host from the server never reaches the service */
    mux_header h7[] = {{IOV("host"), IOV("evil.example")}};
    ck_assert_int_eq(build(h7, 1, MUX_HEAD_END_STREAM, &r, &reason), 0);
    ck_assert_int_eq(count(r.buf, "evil"), 0);
    ck_assert_int_eq(count(r.buf, "Host:"), 1);
    free(r.buf);
}
END_TEST

START_TEST(test_injection_refused)
{
    http1_request r;
    const char *reason = "";
    mux_header bad[][1] = {
        {{IOV(""), IOV("v")}},                /* empty name */
        {{IOV("x y"), IOV("v")}},             /* space in name */
        {{IOV("x:y"), IOV("v")}},             /* colon in name */
        {{IOV("x\r\ny"), IOV("v")}},          /* CRLF in name */
        {{IOV("x"), IOV("a\nb")}},            /* bare LF in value */
        {{IOV("x"), IOV("a\rb")}},            /* bare CR in value */
        {{IOV("x"), {(uint8_t *)"a\0b", 3}}}, /* NUL in value */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(build(bad[i], 1, MUX_HEAD_END_STREAM, &r, &reason) == MUX_ERR_PROTO, "case %zu", i);
    mux_head head = {.flags = MUX_HEAD_END_STREAM, .method = IOV("GET"), .authority = IOV("a"), .path = IOV("/x HTTP/1.1\r\nX: 1")};
    ck_assert_int_eq(http1_build_request(&head, HTTP1_HOST_PRESERVE, NULL, &r, &reason), MUX_ERR_PROTO);
    head.path = IOV("/ok");
    head.method = IOV("GET /x");
    ck_assert_int_eq(http1_build_request(&head, HTTP1_HOST_PRESERVE, NULL, &r, &reason), MUX_ERR_PROTO);
    head.method = IOV("GET");
    head.authority = (mux_iovec){(uint8_t *)"a\0b", 3};
    ck_assert_int_eq(http1_build_request(&head, HTTP1_HOST_PRESERVE, NULL, &r, &reason), MUX_ERR_PROTO);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("http1_hostile");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_one_framing_header);
    tcase_add_test(tc, test_injection_refused);
    suite_add_tcase(s, tc);
    return s;
}

TM_CHECK_MAIN(make_suite)
