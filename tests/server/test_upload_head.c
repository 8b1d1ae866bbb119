/* Unit tests for src/server/upload_head.c: which request heads may have their body streamed. */
#include <stdio.h>
#include <string.h>

#include "check_main.h"
#include "server/upload_head.h"

#define MIN 1000
#define MAX 1000000

static int parse(const char *head, upload_head *h)
{
    memset(h, 0, sizeof(*h));
    return upload_head_parse(head, strlen(head), 65536, MIN, MAX, h);
}

START_TEST(test_eligible)
{
    upload_head h;
    const char *req = "PUT /up HTTP/1.1\r\nHost: a.b\r\nContent-Length: 5000\r\n\r\nbodybytes";
    ck_assert_int_eq(parse(req, &h), UPLOAD_HEAD_ELIGIBLE);
    ck_assert_uint_eq(h.content_length, 5000);
    ck_assert_uint_eq(h.head_len, strlen(req) - strlen("bodybytes"));
    ck_assert_int_eq(memcmp(req + h.cl_name_off, "Content-Length", 14), 0);
    ck_assert_int_eq(h.expect_continue, 0);
    ck_assert_uint_eq(h.host_len, 3);
    ck_assert_int_eq(memcmp(req + h.host_off, "a.b", 3), 0);

    /* case, whitespace around the value, the limits themselves */
    ck_assert_int_eq(parse("POST / HTTP/1.1\r\ncontent-LENGTH:\t 1000 \r\n\r\n", &h), UPLOAD_HEAD_ELIGIBLE);
    ck_assert_uint_eq(h.content_length, 1000);
    ck_assert_int_eq(parse("POST / HTTP/1.1\r\nContent-Length: 1000000\r\n\r\n", &h), UPLOAD_HEAD_ELIGIBLE);
    /* Expect: 100-continue is ours to answer */
    ck_assert_int_eq(parse("PUT / HTTP/1.1\r\nExpect: 100-Continue\r\nContent-Length: 2000\r\n\r\n", &h), UPLOAD_HEAD_ELIGIBLE);
    ck_assert_int_eq(h.expect_continue, 1);

    /* chunked: no length, the Transfer-Encoding header is the one to hide */
    const char *ch = "POST /c HTTP/1.1\r\nHost: a\r\ntransfer-ENCODING:  Chunked \r\n\r\n5\r\nhello\r\n";
    ck_assert_int_eq(parse(ch, &h), UPLOAD_HEAD_ELIGIBLE);
    ck_assert_int_eq(h.chunked, 1);
    ck_assert_int_eq(memcmp(ch + h.cl_name_off, "transfer-ENCODING", 17), 0);
    ck_assert_uint_eq(h.head_len, strlen(ch) - strlen("5\r\nhello\r\n"));
    ck_assert_int_eq(parse("PUT / HTTP/1.1\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n", &h),
                     UPLOAD_HEAD_ELIGIBLE);
    ck_assert_int_eq(h.chunked && h.expect_continue, 1);
    /* a Content-Length one is not chunked */
    ck_assert_int_eq(parse("PUT / HTTP/1.1\r\nContent-Length: 5000\r\n\r\n", &h), UPLOAD_HEAD_ELIGIBLE);
    ck_assert_int_eq(h.chunked, 0);
}
END_TEST

START_TEST(test_not_eligible)
{
    upload_head h;
    /* size limits */
    ck_assert_int_eq(parse("PUT / HTTP/1.1\r\nContent-Length: 999\r\n\r\n", &h), UPLOAD_HEAD_NO);
    ck_assert_int_eq(parse("PUT / HTTP/1.1\r\nContent-Length: 1000001\r\n\r\n", &h), UPLOAD_HEAD_NO);
    ck_assert_int_eq(parse("GET / HTTP/1.1\r\nHost: a\r\n\r\n", &h), UPLOAD_HEAD_NO);
    /* anything ambiguous stays with h2o (and its smuggling checks) */
    ck_assert_int_eq(parse("PUT / HTTP/1.1\r\nContent-Length: 5000\r\nContent-Length: 5000\r\n\r\n", &h), UPLOAD_HEAD_NO);
    ck_assert_int_eq(parse("PUT / HTTP/1.1\r\nContent-Length: 5000\r\nTransfer-Encoding: chunked\r\n\r\n", &h), UPLOAD_HEAD_NO);
    ck_assert_int_eq(parse("PUT / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", &h), UPLOAD_HEAD_NO);
    ck_assert_int_eq(parse("PUT / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", &h),
                     UPLOAD_HEAD_NO);
    ck_assert_int_eq(parse("PUT / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nUpgrade: x\r\n\r\n", &h), UPLOAD_HEAD_NO);
    ck_assert_int_eq(parse("PUT / HTTP/1.1\r\nx-tm-hidden-te-ch: 1\r\nTransfer-Encoding: chunked\r\n\r\n", &h), UPLOAD_HEAD_NO);
    ck_assert_int_eq(parse("PUT / HTTP/1.1\r\nContent-Length: +5000\r\n\r\n", &h), UPLOAD_HEAD_NO);
    ck_assert_int_eq(parse("PUT / HTTP/1.1\r\nContent-Length: 50 00\r\n\r\n", &h), UPLOAD_HEAD_NO);
    ck_assert_int_eq(parse("PUT / HTTP/1.1\r\nContent-Length: 5000,5000\r\n\r\n", &h), UPLOAD_HEAD_NO);
    ck_assert_int_eq(parse("PUT / HTTP/1.1\r\nContent-Length:\r\n\r\n", &h), UPLOAD_HEAD_NO);
    ck_assert_int_eq(parse("PUT / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n", &h), UPLOAD_HEAD_NO);
    ck_assert_int_eq(parse("PUT / HTTP/1.1\r\nContent-Length: 9999999999999999999\r\n\r\n", &h), UPLOAD_HEAD_NO); /* > INT64_MAX */
    ck_assert_int_eq(parse("PUT / HTTP/1.1\r\nX: a\r\n folded\r\nContent-Length: 5000\r\n\r\n", &h), UPLOAD_HEAD_NO);
    ck_assert_int_eq(parse("PUT / HTTP/1.1\r\nExpect: something\r\nContent-Length: 5000\r\n\r\n", &h), UPLOAD_HEAD_NO);
    ck_assert_int_eq(parse("PUT / HTTP/1.1\r\nExpect: 100-continue\r\nExpect: 100-continue\r\nContent-Length: 5000\r\n\r\n", &h),
                     UPLOAD_HEAD_NO);
    ck_assert_int_eq(parse("GET / HTTP/1.1\r\nUpgrade: websocket\r\nContent-Length: 5000\r\n\r\n", &h), UPLOAD_HEAD_NO);
    ck_assert_int_eq(parse("PUT / HTTP/1.1\r\nx-tm-hidden-cl: 1\r\nContent-Length: 5000\r\n\r\n", &h), UPLOAD_HEAD_NO);
    ck_assert_int_eq(parse("CONNECT a:443 HTTP/1.1\r\nContent-Length: 5000\r\n\r\n", &h), UPLOAD_HEAD_NO);
    /* HTTP/1.0, the HTTP/2 preface, garbage */
    ck_assert_int_eq(parse("PUT / HTTP/1.0\r\nContent-Length: 5000\r\n\r\n", &h), UPLOAD_HEAD_NO);
    ck_assert_int_eq(parse("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", &h), UPLOAD_HEAD_NO);
    ck_assert_int_eq(parse("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", &h), UPLOAD_HEAD_NO);
}
END_TEST

START_TEST(test_partial_and_limits)
{
    upload_head h;
    const char *req = "PUT /up HTTP/1.1\r\nHost: a.b\r\nContent-Length: 5000\r\n\r\n";
    size_t n = strlen(req);
    for (size_t i = 0; i < n; i++) /* every prefix: not yet */
        ck_assert_int_eq(upload_head_parse(req, i, 65536, MIN, MAX, &h), UPLOAD_HEAD_PARTIAL);
    ck_assert_int_eq(upload_head_parse(req, n, 65536, MIN, MAX, &h), UPLOAD_HEAD_ELIGIBLE);
    /* a head longer than max_head is h2o's to refuse, never ours to wait for */
    ck_assert_int_eq(upload_head_parse(req, n, 20, MIN, MAX, &h), UPLOAD_HEAD_NO);
    /* more header fields than h2o accepts */
    char big[8192];
    size_t off = (size_t)snprintf(big, sizeof(big), "PUT / HTTP/1.1\r\nContent-Length: 5000\r\n");
    for (int i = 0; i < 101; i++)
        off += (size_t)snprintf(big + off, sizeof(big) - off, "X-%d: v\r\n", i);
    off += (size_t)snprintf(big + off, sizeof(big) - off, "\r\n");
    ck_assert_int_eq(upload_head_parse(big, off, 65536, MIN, MAX, &h), UPLOAD_HEAD_NO);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("server_upload_head");
    TCase *tc = tcase_create("upload_head");
    tcase_add_test(tc, test_eligible);
    tcase_add_test(tc, test_not_eligible);
    tcase_add_test(tc, test_partial_and_limits);
    suite_add_tcase(s, tc);
    return s;
}

TM_CHECK_MAIN(make_suite)
