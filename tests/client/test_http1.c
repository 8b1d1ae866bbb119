/*
 * Unit tests for src/client/http1.c: request serialisation and validation, response head
 * parsing and filtering, chunked decoding.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check_main.h"
#include "http1.h"

#define IOV(s) ((mux_iovec){(uint8_t *)(s), sizeof(s) - 1})

static mux_head req_head(const char *method, const char *path, const mux_header *h, size_t nh, uint32_t flags)
{
    mux_head head;
    memset(&head, 0, sizeof(head));
    head.method = (mux_iovec){(uint8_t *)method, strlen(method)};
    head.path = (mux_iovec){(uint8_t *)path, strlen(path)};
    head.scheme = IOV("https");
    head.authority = IOV("demo.example.com:8443");
    head.headers = h;
    head.nheaders = nh;
    head.flags = flags;
    return head;
}

START_TEST(test_request_get)
{
    mux_header h[] = {{IOV("accept"), IOV("*/*")}, {IOV("x-forwarded-for"), IOV("1.2.3.4")}};
    mux_head head = req_head("GET", "/a?b=c", h, 2, MUX_HEAD_END_STREAM);
    http1_request r;
    const char *reason;
    ck_assert_int_eq(http1_build_request(&head, HTTP1_HOST_PRESERVE, NULL, &r, &reason), 0);
    ck_assert_str_eq(r.buf, "GET /a?b=c HTTP/1.1\r\nHost: demo.example.com:8443\r\naccept: */*\r\n"
                            "x-forwarded-for: 1.2.3.4\r\n\r\n");
    ck_assert_uint_eq(r.len, strlen(r.buf));
    ck_assert_int_eq(r.body, HTTP1_REQ_BODY_NONE);
    free(r.buf);
}
END_TEST

/* an empty value decoded from the wire has a NULL base: serialised as "name: " (UBSan: no memcpy from NULL) */
START_TEST(test_request_empty_value)
{
    mux_header h[] = {{IOV("x-empty"), {NULL, 0}}, {IOV("x-b"), IOV("2")}};
    mux_head head = req_head("GET", "/", h, 2, MUX_HEAD_END_STREAM);
    http1_request r;
    const char *reason;
    ck_assert_int_eq(http1_build_request(&head, HTTP1_HOST_PRESERVE, NULL, &r, &reason), 0);
    ck_assert_str_eq(r.buf, "GET / HTTP/1.1\r\nHost: demo.example.com:8443\r\nx-empty: \r\nx-b: 2\r\n\r\n");
    free(r.buf);
}
END_TEST

START_TEST(test_request_host_modes_and_framing)
{
    mux_header h[] = {{IOV("content-length"), IOV("5")},
                      {IOV("host"), IOV("evil")},
                      {IOV("transfer-encoding"), IOV("chunked")},
                      {IOV("connection"), IOV("close")}};
    mux_head head = req_head("POST", "/up", h, 4, 0);
    http1_request r;
    ck_assert_int_eq(http1_build_request(&head, HTTP1_HOST_VALUE, "localhost:3000", &r, NULL), 0);
    ck_assert_str_eq(r.buf, "POST /up HTTP/1.1\r\nHost: localhost:3000\r\nContent-Length: 5\r\n\r\n");
    ck_assert_int_eq(r.body, HTTP1_REQ_BODY_LENGTH);
    ck_assert_uint_eq(r.content_length, 5);
    free(r.buf);

    /* no length and a body: chunked, exactly one framing header */
    mux_header h2[] = {{IOV("x-a"), IOV("1")}, {IOV("x-a"), IOV("2")}};
    head = req_head("PUT", "/x", h2, 2, 0);
    ck_assert_int_eq(http1_build_request(&head, HTTP1_HOST_PRESERVE, NULL, &r, NULL), 0);
    ck_assert_str_eq(r.buf, "PUT /x HTTP/1.1\r\nHost: demo.example.com:8443\r\nx-a: 1\r\nx-a: 2\r\n"
                            "Transfer-Encoding: chunked\r\n\r\n");
    ck_assert_int_eq(r.body, HTTP1_REQ_BODY_CHUNKED);
    free(r.buf);

    /* empty authority falls back to the value */
    head = req_head("OPTIONS", "*", NULL, 0, MUX_HEAD_END_STREAM);
    head.authority = (mux_iovec){NULL, 0};
    ck_assert_int_eq(http1_build_request(&head, HTTP1_HOST_PRESERVE, "127.0.0.1:3000", &r, NULL), 0);
    ck_assert_str_eq(r.buf, "OPTIONS * HTTP/1.1\r\nHost: 127.0.0.1:3000\r\n\r\n");
    free(r.buf);
}
END_TEST

START_TEST(test_request_upgrade)
{
    mux_header h[] = {{IOV("upgrade"), IOV("websocket")},
                      {IOV("sec-websocket-key"), IOV("dGhlIHNhbXBsZSBub25jZQ==")},
                      {IOV("sec-websocket-version"), IOV("13")}};
    mux_head head = req_head("GET", "/ws", h, 3, MUX_HEAD_UPGRADE);
    http1_request r;
    ck_assert_int_eq(http1_build_request(&head, HTTP1_HOST_PRESERVE, NULL, &r, NULL), 0);
    ck_assert_str_eq(r.buf, "GET /ws HTTP/1.1\r\nHost: demo.example.com:8443\r\nupgrade: websocket\r\n"
                            "sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\n"
                            "Connection: Upgrade\r\n\r\n");
    ck_assert_int_eq(r.body, HTTP1_REQ_BODY_RAW);
    ck_assert_str_eq(r.ws_key, "dGhlIHNhbXBsZSBub25jZQ==");
    free(r.buf);

    /* without the flag the upgrade header is hop-by-hop and dropped */
    head.flags = MUX_HEAD_END_STREAM;
    ck_assert_int_eq(http1_build_request(&head, HTTP1_HOST_PRESERVE, NULL, &r, NULL), 0);
    ck_assert_ptr_null(strstr(r.buf, "upgrade:"));
    ck_assert_str_eq(r.ws_key, "");
    free(r.buf);
}
END_TEST

START_TEST(test_request_invalid)
{
    http1_request r;
    const char *reason = NULL;
    mux_head head = req_head("GE T", "/", NULL, 0, MUX_HEAD_END_STREAM);
    ck_assert_int_eq(http1_build_request(&head, HTTP1_HOST_PRESERVE, NULL, &r, &reason), MUX_ERR_PROTO);
    ck_assert_str_eq(reason, "invalid method");
    head = req_head("", "/", NULL, 0, MUX_HEAD_END_STREAM);
    ck_assert_int_eq(http1_build_request(&head, HTTP1_HOST_PRESERVE, NULL, &r, &reason), MUX_ERR_PROTO);
    head = req_head("GET", "x", NULL, 0, MUX_HEAD_END_STREAM);
    ck_assert_int_eq(http1_build_request(&head, HTTP1_HOST_PRESERVE, NULL, &r, &reason), MUX_ERR_PROTO);
    head = req_head("GET", "/a b", NULL, 0, MUX_HEAD_END_STREAM);
    ck_assert_int_eq(http1_build_request(&head, HTTP1_HOST_PRESERVE, NULL, &r, &reason), MUX_ERR_PROTO);
    head = req_head("GET", "/a\r\nX: y", NULL, 0, MUX_HEAD_END_STREAM);
    ck_assert_int_eq(http1_build_request(&head, HTTP1_HOST_PRESERVE, NULL, &r, &reason), MUX_ERR_PROTO);

    mux_header bad_name[] = {{IOV("x y"), IOV("1")}};
    head = req_head("GET", "/", bad_name, 1, MUX_HEAD_END_STREAM);
    ck_assert_int_eq(http1_build_request(&head, HTTP1_HOST_PRESERVE, NULL, &r, &reason), MUX_ERR_PROTO);
    ck_assert_str_eq(reason, "invalid header name");
    mux_header bad_val[] = {{IOV("x"), IOV("a\r\nInjected: 1")}};
    head = req_head("GET", "/", bad_val, 1, MUX_HEAD_END_STREAM);
    ck_assert_int_eq(http1_build_request(&head, HTTP1_HOST_PRESERVE, NULL, &r, &reason), MUX_ERR_PROTO);
    mux_header nul_val[] = {{IOV("x"), {(uint8_t *)"a\0b", 3}}};
    head = req_head("GET", "/", nul_val, 1, MUX_HEAD_END_STREAM);
    ck_assert_int_eq(http1_build_request(&head, HTTP1_HOST_PRESERVE, NULL, &r, &reason), MUX_ERR_PROTO);
    mux_header two_cl[] = {{IOV("content-length"), IOV("5")}, {IOV("content-length"), IOV("6")}};
    head = req_head("POST", "/", two_cl, 2, 0);
    ck_assert_int_eq(http1_build_request(&head, HTTP1_HOST_PRESERVE, NULL, &r, &reason), MUX_ERR_PROTO);
    mux_header neg_cl[] = {{IOV("content-length"), IOV("-1")}};
    head = req_head("POST", "/", neg_cl, 1, 0);
    ck_assert_int_eq(http1_build_request(&head, HTTP1_HOST_PRESERVE, NULL, &r, &reason), MUX_ERR_PROTO);
    head = req_head("GET", "/", NULL, 0, MUX_HEAD_END_STREAM);
    head.authority = IOV("a\r\nb");
    ck_assert_int_eq(http1_build_request(&head, HTTP1_HOST_PRESERVE, NULL, &r, &reason), MUX_ERR_PROTO);
    head = req_head("GET", "/", NULL, 0, MUX_HEAD_UPGRADE);
    ck_assert_int_eq(http1_build_request(&head, HTTP1_HOST_PRESERVE, NULL, &r, &reason), MUX_ERR_PROTO);
}
END_TEST

START_TEST(test_response_basic)
{
    char buf[] = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nSet-Cookie: a=1\r\nConnection: keep-alive, X-Drop\r\n"
                 "X-Drop: 1\r\nKeep-Alive: timeout=5\r\nSet-Cookie: b=2\r\nContent-Length: 3\r\n\r\nabc";
    http1_response r;
    const char *reason;
    int n = http1_parse_response(buf, strlen(buf), 0, 0, &r, &reason);
    ck_assert_int_eq(n, (int)(strlen(buf) - 3));
    ck_assert_int_eq(r.status, 200);
    ck_assert_int_eq(r.body, HTTP1_RESP_BODY_LENGTH);
    ck_assert_uint_eq(r.content_length, 3);
    ck_assert_uint_eq(r.nheaders, 4);
    ck_assert_int_eq(memcmp(r.headers[0].name.base, "content-type", 12), 0);
    ck_assert_int_eq(memcmp(r.headers[1].name.base, "set-cookie", 10), 0);
    ck_assert_int_eq(memcmp(r.headers[1].value.base, "a=1", 3), 0);
    ck_assert_int_eq(memcmp(r.headers[2].value.base, "b=2", 3), 0);
    ck_assert_int_eq(memcmp(r.headers[3].name.base, "content-length", 14), 0);
    mux_head h;
    http1_response_to_head(&r, &h);
    ck_assert_uint_eq(h.status, 200);
    ck_assert_uint_eq(h.flags & MUX_HEAD_END_STREAM, 0);
    ck_assert_uint_eq(h.reason.len, 2);
}
END_TEST

START_TEST(test_response_framing)
{
    http1_response r;
    const char *reason;
    char b1[] = "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: 10\r\n\r\n";
    ck_assert_int_gt(http1_parse_response(b1, strlen(b1), 0, 0, &r, &reason), 0);
    ck_assert_int_eq(r.body, HTTP1_RESP_BODY_CHUNKED);
    ck_assert_uint_eq(r.nheaders, 0); /* both dropped */

    char b2[] = "HTTP/1.0 200 OK\r\nServer: x\r\n\r\n";
    ck_assert_int_gt(http1_parse_response(b2, strlen(b2), 0, 0, &r, &reason), 0);
    ck_assert_int_eq(r.body, HTTP1_RESP_BODY_CLOSE);

    char b3[] = "HTTP/1.1 204 No Content\r\n\r\n";
    ck_assert_int_gt(http1_parse_response(b3, strlen(b3), 0, 0, &r, &reason), 0);
    ck_assert_int_eq(r.body, HTTP1_RESP_BODY_NONE);
    mux_head h;
    http1_response_to_head(&r, &h);
    ck_assert_uint_eq(h.flags & MUX_HEAD_END_STREAM, MUX_HEAD_END_STREAM);

    char b4[] = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n";
    ck_assert_int_gt(http1_parse_response(b4, strlen(b4), 0, 1, &r, &reason), 0);
    ck_assert_int_eq(r.body, HTTP1_RESP_BODY_NONE); /* HEAD request */
    ck_assert_uint_eq(r.nheaders, 1);

    char b5[] = "HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n";
    ck_assert_int_gt(http1_parse_response(b5, strlen(b5), 0, 0, &r, &reason), 0);
    http1_response_to_head(&r, &h);
    ck_assert_uint_eq(h.status, 103);
    ck_assert_uint_eq(h.flags & MUX_HEAD_END_STREAM, MUX_HEAD_END_STREAM);

    char b6[] = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
    ck_assert_int_gt(http1_parse_response(b6, strlen(b6), 0, 0, &r, &reason), 0);
    ck_assert_int_eq(r.body, HTTP1_RESP_BODY_RAW);
    ck_assert_uint_eq(r.nheaders, 2); /* upgrade kept with 101, connection dropped */
    ck_assert_uint_eq(r.ws_accept.len, 28);
    http1_response_to_head(&r, &h);
    ck_assert_uint_eq(h.flags & MUX_HEAD_END_STREAM, 0);

    char b7[] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    ck_assert_int_gt(http1_parse_response(b7, strlen(b7), 0, 0, &r, &reason), 0);
    ck_assert_int_eq(r.body, HTTP1_RESP_BODY_NONE);
}
END_TEST

START_TEST(test_response_errors)
{
    http1_response r;
    const char *reason;
    char inc[] = "HTTP/1.1 200 OK\r\nContent-Le";
    ck_assert_int_eq(http1_parse_response(inc, strlen(inc), 0, 0, &r, &reason), MUX_ERR_AGAIN);
    char e1[] = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n";
    ck_assert_int_eq(http1_parse_response(e1, strlen(e1), 0, 0, &r, &reason), MUX_ERR_PROTO);
    char e2[] = "HTTP/1.1 200 OK\r\nContent-Length: 5x\r\n\r\n";
    ck_assert_int_eq(http1_parse_response(e2, strlen(e2), 0, 0, &r, &reason), MUX_ERR_PROTO);
    char e3[] = "garbage\r\n\r\n";
    ck_assert_int_eq(http1_parse_response(e3, strlen(e3), 0, 0, &r, &reason), MUX_ERR_PROTO);
    char e4[] = "HTTP/1.1 200 OK\r\nA: 1\r\n  folded\r\n\r\n";
    ck_assert_int_eq(http1_parse_response(e4, strlen(e4), 0, 0, &r, &reason), MUX_ERR_PROTO);
    char e5[] = "HTTP/1.1 099 X\r\n\r\n";
    ck_assert_int_eq(http1_parse_response(e5, strlen(e5), 0, 0, &r, &reason), MUX_ERR_PROTO);
    char e6[] = "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n";
    ck_assert_int_eq(http1_parse_response(e6, strlen(e6), 0, 0, &r, &reason), MUX_ERR_PROTO);
    /* equal duplicates are fine */
    char ok[] = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n";
    ck_assert_int_gt(http1_parse_response(ok, strlen(ok), 0, 0, &r, &reason), 0);
    ck_assert_uint_eq(r.content_length, 5);
}
END_TEST

START_TEST(test_response_too_many_headers)
{
    size_t cap = 64 + (HTTP1_MAX_HEADERS + 5) * 8;
    char *buf = malloc(cap);
    size_t len = (size_t)snprintf(buf, cap, "HTTP/1.1 200 OK\r\n");
    for (int i = 0; i < HTTP1_MAX_HEADERS + 1; i++)
        len += (size_t)snprintf(buf + len, cap - len, "a: b\r\n");
    len += (size_t)snprintf(buf + len, cap - len, "\r\n");
    http1_response r;
    const char *reason;
    ck_assert_int_eq(http1_parse_response(buf, len, 0, 0, &r, &reason), MUX_ERR_PROTO);
    ck_assert_str_eq(reason, "too many header fields in the response head");
    /* one fewer is fine */
    len = (size_t)snprintf(buf, cap, "HTTP/1.1 200 OK\r\n");
    for (int i = 0; i < HTTP1_MAX_HEADERS; i++)
        len += (size_t)snprintf(buf + len, cap - len, "a: b\r\n");
    len += (size_t)snprintf(buf + len, cap - len, "\r\n");
    ck_assert_int_gt(http1_parse_response(buf, len, 0, 0, &r, &reason), 0);
    free(buf);
}
END_TEST

START_TEST(test_response_byte_by_byte)
{
    const char src[] = "HTTP/1.1 404 Not Found\r\nX: y\r\nContent-Length: 2\r\n\r\nok";
    char buf[sizeof(src)];
    http1_response r;
    const char *reason;
    size_t last = 0;
    int n = MUX_ERR_AGAIN;
    for (size_t i = 1; i <= sizeof(src) - 1 && n == MUX_ERR_AGAIN; i++) {
        memcpy(buf, src, i);
        n = http1_parse_response(buf, i, last, 0, &r, &reason);
        last = i;
    }
    ck_assert_int_eq(n, (int)(sizeof(src) - 1 - 2));
    ck_assert_int_eq(r.status, 404);
}
END_TEST

START_TEST(test_chunked)
{
    char buf[] = "5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nTrailer: x\r\n\r\nNEXT";
    http1_chunked d;
    http1_chunked_init(&d);
    /* feed in pieces of 3 bytes, collecting output */
    char out[64];
    size_t outlen = 0, total = strlen(buf);
    ssize_t r = MUX_ERR_AGAIN;
    for (size_t off = 0; off < total && r == MUX_ERR_AGAIN; off += 3) {
        char piece[3];
        size_t n = total - off < 3 ? total - off : 3;
        memcpy(piece, buf + off, n);
        size_t len = n;
        r = http1_chunked_decode(&d, piece, &len);
        memcpy(out + outlen, piece, len);
        outlen += len;
    }
    ck_assert_int_ge(r, 0);
    ck_assert_uint_eq(outlen, 11);
    ck_assert_int_eq(memcmp(out, "hello world", 11), 0);

    char bad[] = "zz\r\n";
    size_t len = strlen(bad);
    http1_chunked_init(&d);
    ck_assert_int_eq(http1_chunked_decode(&d, bad, &len), MUX_ERR_PROTO);

    char ch[24];
    ck_assert_uint_eq(http1_chunk_header(ch, 500), 5);
    ck_assert_str_eq(ch, "1f4\r\n");
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("client_http1");
    TCase *tc = tcase_create("http1");
    tcase_add_test(tc, test_request_get);
    tcase_add_test(tc, test_request_empty_value);
    tcase_add_test(tc, test_request_host_modes_and_framing);
    tcase_add_test(tc, test_request_upgrade);
    tcase_add_test(tc, test_request_invalid);
    tcase_add_test(tc, test_response_basic);
    tcase_add_test(tc, test_response_framing);
    tcase_add_test(tc, test_response_errors);
    tcase_add_test(tc, test_response_too_many_headers);
    tcase_add_test(tc, test_response_byte_by_byte);
    tcase_add_test(tc, test_chunked);
    suite_add_tcase(s, tc);
    return s;
}

TM_CHECK_MAIN(make_suite)
