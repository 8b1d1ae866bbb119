/*
 * tunnelmux — the send scheduler (sched.c) on its own: which list a stream lands in and why,
 * interactive-first then round-robin order (PROTOCOL.md §6.4), waking streams blocked on
 * connection credit, and the stall time each list accrues under a fake clock.
 */
#include <check.h>
#include <stdlib.h>

#include "check_main.h"
#include "mux_internal.h"

/* A zeroed session with just what the scheduler reads: the clock and the connection credit. */
static mux_session *fake_session(int64_t now, int64_t conn_credit)
{
    mux_session *s = calloc(1, sizeof(*s));
    ck_assert_ptr_nonnull(s);
    s->now = now;
    s->conn_tx_credit = conn_credit;
    return s;
}

/* A stream with |queued| bytes waiting (the queue itself is not needed by the scheduler). */
static void fake_stream(mux_stream *st, uint32_t id, size_t queued, int64_t credit, uint64_t burst_sent)
{
    memset(st, 0, sizeof(*st));
    st->id = id;
    st->state = MUX_SS_OPEN;
    st->txq.queued = queued;
    st->tx_credit = credit;
    st->burst_sent = burst_sent;
}

START_TEST(test_list_choice)
{
    mux_session *s = fake_session(0, 1000);
    mux_stream idle, fresh, bulk, no_credit, fin_only, closing;
    fake_stream(&idle, 1, 0, 100, 0);
    fake_stream(&fresh, 3, 10, 100, 0);
    fake_stream(&bulk, 5, 10, 100, MUX_INTERACTIVE_BYTES);
    fake_stream(&no_credit, 7, 10, 0, 0);
    fake_stream(&fin_only, 9, 0, 0, MUX_INTERACTIVE_BYTES + 5);
    fin_only.flags |= MUX_SF_FIN_QUEUED;
    fake_stream(&closing, 11, 10, 100, 0);
    closing.state = MUX_SS_CLOSING;
    mux_stream *all[] = {&idle, &fresh, &bulk, &no_credit, &fin_only, &closing};
    for (size_t i = 0; i < 6; i++)
        mux_schedule(s, all[i]);
    ck_assert_int_eq(idle.list, MUX_LIST_NONE);              /* nothing to send */
    ck_assert_int_eq(fresh.list, MUX_LIST_SEND_INTERACTIVE); /* sent little lately */
    ck_assert_int_eq(bulk.list, MUX_LIST_SEND);              /* a whole burst already */
    ck_assert_int_eq(no_credit.list, MUX_LIST_BLK_STREAM);   /* waits for WINDOW on the stream */
    ck_assert_int_eq(fin_only.list, MUX_LIST_SEND);          /* a bare fin needs no credit */
    ck_assert_int_eq(closing.list, MUX_LIST_NONE);           /* we reset it: it sends nothing */
    /* connection credit gone: a stream with stream credit is blocked on the connection */
    s->conn_tx_credit = 0;
    mux_stream late;
    fake_stream(&late, 13, 10, 100, 0);
    mux_schedule(s, &late);
    ck_assert_int_eq(late.list, MUX_LIST_BLK_CONN);
    ck_assert_ptr_eq(s->blk_conn.head, &late);
    free(s);
}
END_TEST

START_TEST(test_interactive_first_then_round_robin)
{
    mux_session *s = fake_session(0, 1 << 20);
    mux_stream b1, b2, i1, i2;
    fake_stream(&b1, 1, 100, 1000, MUX_INTERACTIVE_BYTES);
    fake_stream(&b2, 3, 100, 1000, MUX_INTERACTIVE_BYTES * 2);
    fake_stream(&i1, 5, 100, 1000, 0);
    fake_stream(&i2, 7, 100, 1000, MUX_INTERACTIVE_BYTES - 1);
    /* bulk streams queued first: interactive ones still go before them */
    mux_schedule(s, &b1);
    mux_schedule(s, &b2);
    mux_schedule(s, &i1);
    mux_schedule(s, &i2);
    mux_stream *order[8];
    for (int k = 0; k < 8; k++) {
        mux_stream *st = mux_next_sender(s);
        ck_assert_ptr_nonnull(st);
        order[k] = st;
        /* what build_message does after taking DATA: back at the tail of its list */
        mux_unschedule(s, st);
        mux_schedule(s, st);
        if (k == 3) { /* the interactive ones drained: only bulk is left */
            mux_unschedule(s, &i1);
            mux_unschedule(s, &i2);
            i1.txq.queued = i2.txq.queued = 0;
        }
    }
    ck_assert_ptr_eq(order[0], &i1);
    ck_assert_ptr_eq(order[1], &i2);
    ck_assert_ptr_eq(order[2], &i1);
    ck_assert_ptr_eq(order[3], &i2);
    ck_assert_ptr_eq(order[4], &b1);
    ck_assert_ptr_eq(order[5], &b2);
    ck_assert_ptr_eq(order[6], &b1);
    ck_assert_ptr_eq(order[7], &b2);
    /* a bulk stream whose queue emptied (burst reset) is interactive again */
    b2.burst_sent = 0;
    mux_unschedule(s, &b2);
    mux_schedule(s, &b2);
    ck_assert_ptr_eq(mux_next_sender(s), &b2);
    mux_unschedule(s, &b1);
    mux_unschedule(s, &b2);
    ck_assert_ptr_null(mux_next_sender(s));
    free(s);
}
END_TEST

START_TEST(test_wake_conn_blocked_keeps_order)
{
    mux_session *s = fake_session(0, 0);
    mux_stream a, b;
    fake_stream(&a, 1, 10, 100, 0);
    fake_stream(&b, 3, 10, 100, MUX_INTERACTIVE_BYTES);
    mux_schedule(s, &a);
    mux_schedule(s, &b);
    ck_assert_int_eq(a.list, MUX_LIST_BLK_CONN);
    ck_assert_int_eq(b.list, MUX_LIST_BLK_CONN);
    mux_wake_conn_blocked(s); /* no credit yet: stays */
    ck_assert_int_eq(a.list, MUX_LIST_BLK_CONN);
    s->conn_tx_credit = 5;
    mux_wake_conn_blocked(s);
    ck_assert_ptr_null(s->blk_conn.head);
    ck_assert_int_eq(a.list, MUX_LIST_SEND_INTERACTIVE);
    ck_assert_int_eq(b.list, MUX_LIST_SEND);
    mux_unschedule(s, &a);
    mux_unschedule(s, &b);
    free(s);
}
END_TEST

START_TEST(test_stall_time_by_cause)
{
    mux_session *s = fake_session(1000, 1000);
    mux_stream st;
    fake_stream(&st, 1, 10, 0, 0);
    mux_schedule(s, &st); /* blocked on its own credit from t=1000 */
    ck_assert_int_eq(st.blocked_since, 1000);
    s->now = 1250;
    mux_stream_stall x;
    mux_stream_stall_of(&st, s->now, &x);
    ck_assert_uint_eq(x.stall_ms[MUX_STALL_CREDIT], 250); /* the current list's time counts */
    ck_assert_uint_eq(st.stall_ms[MUX_STALL_CREDIT], 0);
    st.tx_credit = 100; /* WINDOW arrived */
    mux_schedule(s, &st);
    ck_assert_int_eq(st.list, MUX_LIST_SEND_INTERACTIVE);
    ck_assert_uint_eq(st.stall_ms[MUX_STALL_CREDIT], 250);
    ck_assert_uint_eq(s->stats.stall_ms[MUX_STALL_CREDIT], 250);
    ck_assert_uint_eq(s->stats.flow_blocked_ms, 250);
    s->now = 1300; /* 50 ms ready but not sent: the socket's fault, not flow control */
    mux_unschedule(s, &st);
    ck_assert_uint_eq(st.stall_ms[MUX_STALL_SOCKET], 50);
    ck_assert_uint_eq(s->stats.flow_blocked_ms, 250);
    s->conn_tx_credit = 0;
    mux_schedule(s, &st);
    s->now = 1400;
    mux_unschedule(s, &st);
    ck_assert_uint_eq(st.stall_ms[MUX_STALL_PEER], 100);
    ck_assert_uint_eq(s->stats.flow_blocked_ms, 350);
    free(s);
}
END_TEST

START_TEST(test_worst_insert_order)
{
    mux_stream_stall out[3];
    size_t n = 0;
    uint64_t totals[] = {5, 50, 1, 20, 70, 0};
    for (size_t i = 0; i < 6; i++) {
        mux_stream_stall x;
        memset(&x, 0, sizeof(x));
        x.id = (uint32_t)(2 * i + 1);
        x.stall_ms[MUX_STALL_SOCKET] = totals[i] / 2;
        x.stall_ms[MUX_STALL_CREDIT] = totals[i] - totals[i] / 2;
        mux_worst_insert(out, &n, 3, &x);
    }
    ck_assert_uint_eq(n, 3);
    ck_assert_uint_eq(out[0].id, 9); /* 70 */
    ck_assert_uint_eq(out[1].id, 3); /* 50 */
    ck_assert_uint_eq(out[2].id, 7); /* 20 */
}
END_TEST

/* Every state of every session-level enum has its own name for the logs (no "unknown", no two alike). */
START_TEST(test_state_names)
{
    const char *names[32];
    size_t n = 0;
    for (int v = MUX_LIST_NONE; v <= MUX_LIST_BLK_STREAM; v++)
        names[n++] = mux_sched_list_to_str((mux_sched_list)v);
    size_t lists = n;
    for (int v = MUX_SS_IDLE; v <= MUX_SS_CLOSED; v++)
        names[n++] = mux_stream_state_to_str((mux_stream_state)v);
    size_t streams = n;
    for (int v = HS_WAIT_HELLO; v <= HS_REFUSED; v++)
        names[n++] = mux_handshake_state_to_str((mux_handshake_state)v);
    size_t hs = n;
    for (int v = RXM_UNDECIDED; v <= RXM_SKIP; v++)
        names[n++] = mux_rx_mode_to_str((mux_rx_mode)v);
    size_t rxm = n;
    for (int v = CLOSE_NONE; v <= CLOSE_SENT; v++)
        names[n++] = mux_ws_close_state_to_str((mux_ws_close_state)v);
    size_t groups[] = {0, lists, streams, hs, rxm, n};
    for (size_t g = 0; g + 1 < sizeof(groups) / sizeof(groups[0]); g++)
        for (size_t i = groups[g]; i < groups[g + 1]; i++) {
            ck_assert_str_ne(names[i], "unknown");
            for (size_t j = groups[g]; j < i; j++)
                ck_assert_str_ne(names[i], names[j]);
        }
    ck_assert_str_eq(mux_sched_list_to_str(MUX_LIST_BLK_CONN), "blk_conn");
    ck_assert_str_eq(mux_stream_state_to_str(MUX_SS_HALF_CLOSED_REMOTE), "half_closed_remote");
    ck_assert_str_eq(mux_stream_state_to_str((mux_stream_state)99), "unknown");
}
END_TEST

Suite *make_suite(void);
Suite *make_suite(void)
{
    Suite *s = suite_create("sched");
    TCase *tc = tcase_create("sched");
    tcase_add_test(tc, test_list_choice);
    tcase_add_test(tc, test_interactive_first_then_round_robin);
    tcase_add_test(tc, test_wake_conn_blocked_keeps_order);
    tcase_add_test(tc, test_stall_time_by_cause);
    tcase_add_test(tc, test_worst_insert_order);
    tcase_add_test(tc, test_state_names);
    suite_add_tcase(s, tc);
    return s;
}

TM_CHECK_MAIN(make_suite)
