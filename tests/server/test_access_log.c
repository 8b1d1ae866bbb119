/* Unit tests for src/server/access_log.c: the per-request entry and the strings of the log line. */
#include <string.h>

#include "check_main.h"
#include "server/access_log.h"

START_TEST(test_entry_defaults)
{
    access_log_entry e;
    memset(&e, 0x5a, sizeof(e));
    access_log_entry_init(&e);
    ck_assert_uint_eq(e.stream_id, 0);
    ck_assert_int_eq(e.body_bytes, -1);
    ck_assert_int_eq(e.queue_wait_ms, -1);
    ck_assert_ptr_null(e.client);
    ck_assert_str_eq(e.method, "");
    ck_assert_str_eq(e.path, "");
    ck_assert_str_eq(e.proto, "HTTP/1.1");
    ck_assert_str_eq(e.remote, "");
    /* every proxied request carries one in its pool: it holds numbers and pointers, no buffers */
    ck_assert_uint_le(sizeof(access_log_entry), 128);
}
END_TEST

START_TEST(test_proto_names)
{
    ck_assert_str_eq(access_log_proto_name(0x100), "HTTP/1.0");
    ck_assert_str_eq(access_log_proto_name(0x101), "HTTP/1.1");
    ck_assert_str_eq(access_log_proto_name(0x200), "HTTP/2");
}
END_TEST

START_TEST(test_bytes_in)
{
    access_log_entry e;
    access_log_entry_init(&e);
    ck_assert_uint_eq(access_log_bytes_in(&e, 123), 123); /* not streamed: h2o's entity */
    ck_assert_uint_eq(access_log_bytes_in(NULL, 7), 7);
    e.body_bytes = 0;
    ck_assert_uint_eq(access_log_bytes_in(&e, 123), 0); /* streamed, empty */
    e.body_bytes = 5000000000LL;
    ck_assert_uint_eq(access_log_bytes_in(&e, 0), 5000000000ULL);
}
END_TEST

START_TEST(test_format_numbers)
{
    access_log_entry e;
    access_log_entry_init(&e);
    e.status = 502;
    e.bytes_in = 18446744073709551615ULL;
    e.bytes_out = 0;
    e.duration_ms = 1.23456;
    e.stream_id = 4294967295u;
    access_log_text t;
    access_log_format(&e, &t);
    ck_assert_str_eq(t.status, "502");
    ck_assert_str_eq(t.bytes_in, "18446744073709551615");
    ck_assert_str_eq(t.bytes_out, "0");
    ck_assert_str_eq(t.duration_ms, "1.235");
    ck_assert_str_eq(t.stream, "4294967295");
    ck_assert_int_eq(t.has_queue_wait, 0); /* unknown: no queue_wait_ms field */
    ck_assert_str_eq(t.queue_wait_ms, "");
    e.queue_wait_ms = 0;
    access_log_format(&e, &t);
    ck_assert_int_eq(t.has_queue_wait, 1); /* zero is known */
    ck_assert_str_eq(t.queue_wait_ms, "0");
    e.queue_wait_ms = 1500;
    access_log_format(&e, &t);
    ck_assert_str_eq(t.queue_wait_ms, "1500");
}
END_TEST

/* A request with just what the entry needs: a pool and an empty env. */
static void fake_request(h2o_req_t *req)
{
    memset(req, 0, sizeof(*req));
    h2o_mem_init_pool(&req->pool);
}

START_TEST(test_entry_of_request)
{
    h2o_req_t req;
    fake_request(&req);
    ck_assert_ptr_null(access_log_find(&req));
    access_log_entry *e = access_log_entry_of(&req);
    ck_assert_ptr_nonnull(e);
    ck_assert_ptr_eq(access_log_find(&req), e);
    ck_assert_ptr_eq(access_log_entry_of(&req), e); /* one entry per request */
    ck_assert_int_eq(e->body_bytes, -1);
    /* first stream id and body length win (a safe retry keeps the first stream's id) */
    access_log_note_stream(&req, 3);
    access_log_note_stream(&req, 5);
    ck_assert_uint_eq(e->stream_id, 3);
    access_log_note_body(&req, 100);
    access_log_note_body(&req, 99);
    ck_assert_int_eq(e->body_bytes, 100);
    h2o_mem_clear_pool(&req.pool);
}
END_TEST

START_TEST(test_find_ignores_other_env)
{
    h2o_req_t req;
    fake_request(&req);
    /* another env entry of the same key but not an entry's size is not taken for one */
    h2o_vector_reserve(&req.pool, &req.env, 2);
    req.env.entries[req.env.size++] = h2o_iovec_init(H2O_STRLIT(ACCESS_LOG_ENV_KEY));
    req.env.entries[req.env.size++] = h2o_iovec_init(H2O_STRLIT("17"));
    ck_assert_ptr_null(access_log_find(&req));
    access_log_entry *e = access_log_entry_of(&req);
    ck_assert_ptr_eq(access_log_find(&req), e);
    h2o_mem_clear_pool(&req.pool);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("server_access_log");
    TCase *tc = tcase_create("access_log");
    tcase_add_test(tc, test_entry_defaults);
    tcase_add_test(tc, test_proto_names);
    tcase_add_test(tc, test_bytes_in);
    tcase_add_test(tc, test_format_numbers);
    tcase_add_test(tc, test_entry_of_request);
    tcase_add_test(tc, test_find_ignores_other_env);
    suite_add_tcase(s, tc);
    return s;
}

TM_CHECK_MAIN(make_suite)
