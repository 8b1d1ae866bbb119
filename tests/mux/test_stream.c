/*
 * tunnelmux — the stream state machine (stream.c) on its own: mux_stream_set_state keeps the
 * session's counters (active, stubs, streams_opened, streams_closed) for every allowed transition,
 * names every state, and (builds with assertions) aborts on a transition its table forbids.
 */
#include <check.h>
#include <signal.h>
#include <stdlib.h>

#include "check_main.h"
#include "mux_internal.h"

static void expect_counts(const mux_session *s, uint32_t active, uint32_t stubs, uint64_t opened, uint64_t closed)
{
    ck_assert_uint_eq(s->active, active);
    ck_assert_uint_eq(s->stubs, stubs);
    ck_assert_uint_eq(s->stats.streams_opened, opened);
    ck_assert_uint_eq(s->stats.streams_closed, closed);
}

START_TEST(test_counters_follow_transitions)
{
    mux_session *s = calloc(1, sizeof(*s));
    ck_assert_ptr_nonnull(s);
    mux_stream a, b, stub;
    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    memset(&stub, 0, sizeof(stub));
    ck_assert_int_eq(a.state, MUX_SS_IDLE); /* zeroed = idle: counted nowhere */

    mux_stream_set_state(s, &a, MUX_SS_OPEN);
    mux_stream_set_state(s, &b, MUX_SS_OPEN);
    expect_counts(s, 2, 0, 2, 0);
    mux_stream_set_state(s, &a, MUX_SS_HALF_CLOSED_LOCAL); /* still active */
    mux_stream_set_state(s, &a, MUX_SS_HALF_CLOSED_REMOTE);
    expect_counts(s, 2, 0, 2, 0);
    mux_stream_set_state(s, &a, MUX_SS_CLOSED); /* both ends done: forgotten */
    expect_counts(s, 1, 0, 2, 1);
    mux_stream_set_state(s, &b, MUX_SS_CLOSING); /* reset by us: a stub, closed for the app */
    expect_counts(s, 0, 1, 2, 2);
    mux_stream_set_state(s, &stub, MUX_SS_CLOSING); /* a refused stream's stub: never opened */
    expect_counts(s, 0, 2, 2, 2);
    mux_stream_set_state(s, &b, MUX_SS_CLOSED);
    mux_stream_set_state(s, &stub, MUX_SS_CLOSED);
    expect_counts(s, 0, 0, 2, 2);
    free(s);
}
END_TEST

START_TEST(test_state_names)
{
    for (int v = MUX_SS_IDLE; v <= MUX_SS_CLOSED; v++) {
        ck_assert_str_ne(mux_stream_state_to_str((mux_stream_state)v), "unknown");
        for (int w = MUX_SS_IDLE; w < v; w++)
            ck_assert_str_ne(mux_stream_state_to_str((mux_stream_state)v), mux_stream_state_to_str((mux_stream_state)w));
    }
    ck_assert_str_eq(mux_stream_state_to_str(MUX_SS_HALF_CLOSED_LOCAL), "half_closed_local");
}
END_TEST

#ifndef NDEBUG
/* A half-closed (remote) stream cannot become a stub: the peer will send nothing that frees it. */
START_TEST(test_forbidden_transition_aborts)
{
    mux_session *s = calloc(1, sizeof(*s));
    mux_stream st;
    memset(&st, 0, sizeof(st));
    mux_stream_set_state(s, &st, MUX_SS_OPEN);
    mux_stream_set_state(s, &st, MUX_SS_HALF_CLOSED_REMOTE);
    mux_stream_set_state(s, &st, MUX_SS_CLOSING);
}
END_TEST

START_TEST(test_reopen_aborts)
{
    mux_session *s = calloc(1, sizeof(*s));
    mux_stream st;
    memset(&st, 0, sizeof(st));
    mux_stream_set_state(s, &st, MUX_SS_OPEN);
    mux_stream_set_state(s, &st, MUX_SS_CLOSED);
    mux_stream_set_state(s, &st, MUX_SS_OPEN);
}
END_TEST
#endif

Suite *make_suite(void);
Suite *make_suite(void)
{
    Suite *s = suite_create("stream");
    TCase *tc = tcase_create("stream");
    tcase_add_test(tc, test_counters_follow_transitions);
    tcase_add_test(tc, test_state_names);
#ifndef NDEBUG
    tcase_add_test_raise_signal(tc, test_forbidden_transition_aborts, SIGABRT);
    tcase_add_test_raise_signal(tc, test_reopen_aborts, SIGABRT);
#endif
    suite_add_tcase(s, tc);
    return s;
}

TM_CHECK_MAIN(make_suite)
