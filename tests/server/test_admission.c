/* Unit tests for src/server/admission.c: the refusal order and the answer of each refusal. */
#include "check_main.h"
#include "mux/mux.h"
#include "server/admission.h"

START_TEST(test_request_order)
{
    admission_request r = {.route_ok = 1};
    ck_assert_int_eq(admission_check_request(&r), ADMIT_OK);
    /* everything wrong at once: the first check in proxy_handle_request's order wins */
    r = (admission_request){.shutting_down = 1, .route_ok = 0, .is_connect = 1, .http2 = 1, .has_upgrade = 1};
    ck_assert_int_eq(admission_check_request(&r), ADMIT_SHUTTING_DOWN);
    r.shutting_down = 0;
    ck_assert_int_eq(admission_check_request(&r), ADMIT_HOST_NOT_SERVED);
    r.route_ok = 1;
    ck_assert_int_eq(admission_check_request(&r), ADMIT_CONNECT);
    r.is_connect = 0;
    ck_assert_int_eq(admission_check_request(&r), ADMIT_H2_UPGRADE);
    r.http2 = 0; /* HTTP/1.1 Upgrade is a WebSocket: admitted */
    ck_assert_int_eq(admission_check_request(&r), ADMIT_OK);
    r.http2 = 1;
    r.has_upgrade = 0;
    ck_assert_int_eq(admission_check_request(&r), ADMIT_OK);
}
END_TEST

START_TEST(test_tunnel)
{
    ck_assert_int_eq(admission_check_tunnel(1, 1), ADMIT_OK);
    ck_assert_int_eq(admission_check_tunnel(1, 0), ADMIT_OK);
    ck_assert_int_eq(admission_check_tunnel(0, 1), ADMIT_TUNNEL_NOT_CONNECTED);
    ck_assert_int_eq(admission_check_tunnel(0, 0), ADMIT_NO_SUCH_TUNNEL);
    ck_assert_int_eq(admission_status(ADMIT_TUNNEL_NOT_CONNECTED), 502); /* seen before: not a 404 */
    ck_assert_int_eq(admission_status(ADMIT_NO_SUCH_TUNNEL), 404);
}
END_TEST

START_TEST(test_open_results)
{
    ck_assert_int_eq(admission_check_open(1), ADMIT_OK);
    ck_assert_int_eq(admission_check_open(0x7fffffff), ADMIT_OK);
    ck_assert_int_eq(admission_check_open(0), ADMIT_OUT_OF_MEMORY);
    ck_assert_int_eq(admission_check_open(MUX_ERR_TOO_MANY_STREAMS), ADMIT_TUNNEL_BUSY);
    ck_assert_int_eq(admission_check_open(MUX_ERR_HEADER_LIMIT), ADMIT_HEADERS_TOO_LARGE);
    ck_assert_int_eq(admission_check_open(MUX_ERR_GOAWAY), ADMIT_TUNNEL_REFUSED);
    ck_assert_int_eq(admission_status(ADMIT_TUNNEL_BUSY), 503);
    ck_assert_int_eq(admission_status(ADMIT_HEADERS_TOO_LARGE), 431);
    ck_assert_int_eq(admission_status(ADMIT_TUNNEL_REFUSED), 502);
    ck_assert_int_eq(admission_status(ADMIT_OUT_OF_MEMORY), 503);
}
END_TEST

START_TEST(test_statuses_and_names)
{
    static const struct {
        admission_verdict v;
        int status;
        const char *reason, *name;
    } want[] = {
        {ADMIT_OK, 0, "", "ok"},
        {ADMIT_SHUTTING_DOWN, 503, "Service Unavailable", "shutting_down"},
        {ADMIT_HOST_NOT_SERVED, 404, "Not Found", "host_not_served"},
        {ADMIT_CONNECT, 501, "Not Implemented", "connect"},
        {ADMIT_H2_UPGRADE, 400, "Bad Request", "h2_upgrade"},
        {ADMIT_TUNNEL_NOT_CONNECTED, 502, "Bad Gateway", "tunnel_not_connected"},
        {ADMIT_NO_SUCH_TUNNEL, 404, "Not Found", "no_such_tunnel"},
        {ADMIT_OUT_OF_MEMORY, 503, "Service Unavailable", "out_of_memory"},
        {ADMIT_TUNNEL_BUSY, 503, "Service Unavailable", "tunnel_busy"},
        {ADMIT_HEADERS_TOO_LARGE, 431, "Request Header Fields Too Large", "headers_too_large"},
        {ADMIT_TUNNEL_REFUSED, 502, "Bad Gateway", "tunnel_refused"},
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        ck_assert_int_eq(admission_status(want[i].v), want[i].status);
        ck_assert_str_eq(admission_reason(want[i].v), want[i].reason);
        ck_assert_str_eq(admission_verdict_to_str(want[i].v), want[i].name);
    }
    ck_assert_str_eq(admission_verdict_to_str((admission_verdict)99), "unknown");
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("server_admission");
    TCase *tc = tcase_create("admission");
    tcase_add_test(tc, test_request_order);
    tcase_add_test(tc, test_tunnel);
    tcase_add_test(tc, test_open_results);
    tcase_add_test(tc, test_statuses_and_names);
    suite_add_tcase(s, tc);
    return s;
}

TM_CHECK_MAIN(make_suite)
