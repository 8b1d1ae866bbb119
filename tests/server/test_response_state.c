/* Unit tests for the response state of a proxy_stream (src/server/response.c): forward-only
 * transitions through response_set_state, the predicates built on it, names for logs. */
#include <signal.h>
#include <string.h>

#include "check_main.h"
#include "server/proxy_stream.h"

START_TEST(test_forward_paths)
{
    proxy_stream ps;
    memset(&ps, 0, sizeof(ps)); /* how proxy_handle_request starts one */
    ck_assert_int_eq(ps.resp_state, PROXY_RESP_WAITING_HEAD);
    ck_assert(!response_started(&ps));
    ck_assert(!response_final_sent(&ps));
    response_set_state(&ps, PROXY_RESP_STARTED); /* head to h2o */
    ck_assert(response_started(&ps));
    ck_assert(!response_final_sent(&ps));
    response_set_state(&ps, PROXY_RESP_FINAL_SENT); /* last send */
    ck_assert(response_started(&ps));
    ck_assert(response_final_sent(&ps));
    memset(&ps, 0, sizeof(ps));
    response_set_state(&ps, PROXY_RESP_FINAL_SENT); /* an error page instead of a response */
    ck_assert(response_started(&ps));
    ck_assert(response_final_sent(&ps));
}
END_TEST

START_TEST(test_names)
{
    ck_assert_str_eq(proxy_resp_state_to_str(PROXY_RESP_WAITING_HEAD), "waiting_head");
    ck_assert_str_eq(proxy_resp_state_to_str(PROXY_RESP_STARTED), "started");
    ck_assert_str_eq(proxy_resp_state_to_str(PROXY_RESP_FINAL_SENT), "final_sent");
    ck_assert_str_eq(proxy_resp_state_to_str((proxy_resp_state)7), "unknown");
}
END_TEST

#ifndef NDEBUG
/* A backward (or repeated) transition is a bug: the assertion stops it (debug builds). */
START_TEST(test_backwards_aborts)
{
    proxy_stream ps;
    memset(&ps, 0, sizeof(ps));
    response_set_state(&ps, PROXY_RESP_FINAL_SENT);
    response_set_state(&ps, PROXY_RESP_STARTED);
}
END_TEST

START_TEST(test_repeat_aborts)
{
    proxy_stream ps;
    memset(&ps, 0, sizeof(ps));
    response_set_state(&ps, PROXY_RESP_STARTED);
    response_set_state(&ps, PROXY_RESP_STARTED);
}
END_TEST
#endif

static Suite *make_suite(void)
{
    Suite *s = suite_create("server_response_state");
    TCase *tc = tcase_create("response_state");
    tcase_add_test(tc, test_forward_paths);
    tcase_add_test(tc, test_names);
#ifndef NDEBUG
    tcase_add_test_raise_signal(tc, test_backwards_aborts, SIGABRT);
    tcase_add_test_raise_signal(tc, test_repeat_aborts, SIGABRT);
#endif
    suite_add_tcase(s, tc);
    return s;
}

TM_CHECK_MAIN(make_suite)
