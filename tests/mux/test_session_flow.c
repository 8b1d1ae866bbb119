/*
 * tunnelmux — mux session suite, flow control and scheduling: stalled streams, interactive-first
 * ordering, stall accounting, RTT probes while busy, window growth budget and auto-tuning,
 * want-writable. Two sessions talk in memory through tests/mux/session_pair.h with a fake clock.
 */
#include <check.h>
#include <string.h>

#include "check_main.h"
#include "mux/session_pair.h"
#include "rtt.h"

/* |rounds| turns of: the client writes its responses, the server reads what arrived (and its
 * application consumes it, when |consume|), the credit goes back. */
static void respond_rounds(pair *p, int rounds, int consume)
{
    for (int i = 0; i < rounds; i++) {
        app_write(&p->cli, 64 * 1024);
        transmit(&p->net, p->cli.s, p->srv.s, 1 << 20, 1);
        if (consume)
            app_consume(&p->srv, 1);
        transmit(&p->net, p->srv.s, p->cli.s, 1 << 20, 0);
    }
}

START_TEST(test_stalled_streams_do_not_block)
{
    /* PROTOCOL.md §6.4: however many streams stop being read, the others go on. Eight stalled
     * responses hold twice the connection window between them (each its stream window, no more);
     * a ninth still completes. (Before connection credit was returned on receipt, the fifth
     * stalled stream took the last of it and everything stopped.) */
    mux_session_options so, co;
    opts(&so, &co);
    so.initial_stream_window = so.max_stream_window = 64 * 1024;
    so.initial_conn_window = 256 * 1024;
    pair p;
    pair_new(&p, &so, &co, 13);
    p.cli.auto_respond = 0;
    pump(&p, 1 << 20);
    for (int i = 0; i < 9; i++)
        open_simple(&p, MUX_HEAD_END_STREAM);
    pump(&p, 1 << 20);
    for (uint32_t i = 0; i < 9; i++) {
        mux_head r;
        memset(&r, 0, sizeof(r));
        r.status = 200;
        ck_assert_int_eq(mux_session_respond(p.cli.s, 2 * i + 1, &r), 0);
        p.cli.st[i].tx_total = 1 << 20;
        p.srv.st[i].stalled = i < 8;
    }
    for (int round = 0; round < 4000 && !p.srv.st[8].rx_ended; round++)
        respond_rounds(&p, 1, 1);
    ck_assert_int_eq(p.srv.st[8].rx_ended, 1);
    ck_assert_uint_eq(p.srv.st[8].rx_got, 1 << 20);
    ck_assert_int_eq(p.srv.st[8].bad, 0);
    for (int i = 0; i < 8; i++)
        ck_assert_uint_eq(p.srv.st[i].rx_got, 64 * 1024);
    ck_assert_int_eq(p.srv.window_violations, 0);
    ck_assert(!mux_session_want_close(p.srv.s) && !mux_session_want_close(p.cli.s));
    pair_del(&p);
}
END_TEST

/* Client side: queues |n| pattern bytes of the response body of |id| from offset |*off|. */
static void cli_write_body(pair *p, uint32_t id, size_t n, uint64_t *off)
{
    static uint8_t buf[1 << 20];
    ck_assert_uint_le(n, sizeof(buf));
    peer_pattern_fill(buf, n, id, 1, *off);
    ck_assert_int_eq(mux_session_write(p->cli.s, id, buf, n), (ssize_t)n);
    *off += n;
}

START_TEST(test_interactive_first)
{
    /* PROTOCOL.md §6.4: a stream that sent little since its queue was last empty goes before bulk
     * streams; a bulk stream whose queue drained is interactive again. One small message per
     * batch, so the order shows batch by batch (the fake clock does not move: no timing). */
    mux_session_options so, co;
    opts(&so, &co);
    co.stream_send_buffer = 1 << 20;
    co.send_message_size = 4096;
    co.send_batch_size = 1;
    co.chunk_size = 2048;
    pair p;
    pair_new(&p, &so, &co, 23);
    p.cli.auto_respond = 0;
    pump(&p, 1 << 20);
    for (int i = 0; i < 3; i++)
        open_simple(&p, MUX_HEAD_END_STREAM);
    pump(&p, 1 << 20);
    mux_head r;
    memset(&r, 0, sizeof(r));
    r.status = 200;
    for (uint32_t id = 1; id <= 5; id += 2)
        ck_assert_int_eq(mux_session_respond(p.cli.s, id, &r), 0);
    pump(&p, 1 << 20);
    uint64_t off1 = 0, off3 = 0, off5 = 0;
    /* stream 1: a download, 512 KiB queued; after 64 KiB it is bulk */
    cli_write_body(&p, 1, 512 * 1024, &off1);
    for (int i = 0; i < 40; i++)
        transmit(&p.net, p.cli.s, p.srv.s, 1 << 20, 1);
    uint64_t got1 = ts_of(&p.srv, 1)->rx_got;
    ck_assert_uint_ge(got1, 64 * 1024);
    ck_assert_uint_lt(got1, 512 * 1024);
    /* stream 3: a small response (3 KiB) queued behind it goes whole in the very next message,
     * before stream 1 sends anything more (round-robin would have sent a chunk of stream 1 first) */
    cli_write_body(&p, 3, 3072, &off3);
    transmit(&p.net, p.cli.s, p.srv.s, 1 << 20, 1);
    ck_assert_uint_eq(ts_of(&p.srv, 3)->rx_got, 3072);               /* two chunks in one 4 KiB message */
    ck_assert_uint_le(ts_of(&p.srv, 1)->rx_got, got1 + 4096 - 3072); /* stream 1 only fills the rest */
    got1 = ts_of(&p.srv, 1)->rx_got;
    /* two interactive streams share round-robin; the bulk one waits */
    cli_write_body(&p, 3, 8192, &off3);
    cli_write_body(&p, 5, 8192, &off5);
    for (int i = 0; i < 8 && (ts_of(&p.srv, 3)->rx_got < off3 || ts_of(&p.srv, 5)->rx_got < off5); i++) {
        ck_assert_uint_eq(ts_of(&p.srv, 1)->rx_got, got1);
        transmit(&p.net, p.cli.s, p.srv.s, 1 << 20, 1);
    }
    ck_assert_uint_eq(ts_of(&p.srv, 3)->rx_got, 3072 + 8192);
    ck_assert_uint_eq(ts_of(&p.srv, 5)->rx_got, 8192);
    ck_assert_uint_lt(ts_of(&p.srv, 1)->rx_got, got1 + 4096);
    got1 = ts_of(&p.srv, 1)->rx_got;
    /* nothing interactive: bulk goes on */
    transmit(&p.net, p.cli.s, p.srv.s, 1 << 20, 1);
    ck_assert_uint_gt(ts_of(&p.srv, 1)->rx_got, got1);
    /* stream 1 drains its queue: its next write is interactive again (ahead of stream 3's bulk) */
    for (int i = 0; i < 400 && ts_of(&p.srv, 1)->rx_got < off1; i++) {
        transmit(&p.net, p.cli.s, p.srv.s, 1 << 20, 1);
        app_consume(&p.srv, 1);
        transmit(&p.net, p.srv.s, p.cli.s, 1 << 20, 0);
    }
    ck_assert_uint_eq(ts_of(&p.srv, 1)->rx_got, off1);
    cli_write_body(&p, 3, 256 * 1024, &off3);
    for (int i = 0; i < 40; i++) /* stream 3 past 64 KiB: bulk */
        transmit(&p.net, p.cli.s, p.srv.s, 1 << 20, 1);
    uint64_t got3 = ts_of(&p.srv, 3)->rx_got;
    ck_assert_uint_lt(got3, off3);
    cli_write_body(&p, 1, 1024, &off1);
    transmit(&p.net, p.cli.s, p.srv.s, 1 << 20, 1);
    ck_assert_uint_eq(ts_of(&p.srv, 1)->rx_got, off1);
    ck_assert_int_eq(ts_of(&p.srv, 1)->bad + ts_of(&p.srv, 3)->bad + ts_of(&p.srv, 5)->bad, 0);
    pair_del(&p);
}
END_TEST

START_TEST(test_stall_accounting)
{
    /* per-stream stall times by cause, with the fake clock: no credit (the peer's reader), no
     * connection credit, and ready but not yet taken by the transport (the socket) */
    mux_session_options so, co;
    opts(&so, &co);
    so.initial_stream_window = so.max_stream_window = 65536; /* the server grants the responses */
    co.stream_send_buffer = 1 << 20;
    pair p;
    pair_new(&p, &so, &co, 29);
    p.cli.auto_respond = 0;
    pump(&p, 1 << 20);
    open_simple(&p, MUX_HEAD_END_STREAM);
    open_simple(&p, MUX_HEAD_END_STREAM);
    pump(&p, 1 << 20);
    mux_head r;
    memset(&r, 0, sizeof(r));
    r.status = 200;
    ck_assert_int_eq(mux_session_respond(p.cli.s, 1, &r), 0);
    ck_assert_int_eq(mux_session_respond(p.cli.s, 3, &r), 0);
    pump(&p, 1 << 20);
    uint64_t off1 = 0, off3 = 0;
    /* stream 1: more than its window, the server's reader does not consume: stalled on credit */
    p.srv.st[0].stalled = 1;
    cli_write_body(&p, 1, 128 * 1024, &off1);
    pump(&p, 1 << 20);
    p.net.now += 300;
    /* stream 3: ready, but the transport takes nothing for 40 ms (a write carries no time: the
     * session's clock is the last call's) */
    ck_assert_int_eq(mux_session_handle_timeout(p.cli.s, p.net.now), 0);
    cli_write_body(&p, 3, 1000, &off3);
    p.net.now += 40;
    mux_stream_stall w[4];
    size_t n = mux_session_worst_streams(p.cli.s, p.net.now, w, 4);
    ck_assert_uint_eq(n, 2);
    ck_assert_uint_eq(w[0].id, 1);
    ck_assert_int_eq(w[0].open, 1);
    ck_assert_uint_eq(w[0].stall_ms[MUX_STALL_CREDIT], 340);
    ck_assert_uint_eq(w[0].stall_ms[MUX_STALL_SOCKET], 0);
    ck_assert_uint_eq(w[0].bytes_sent, 65536);
    ck_assert_uint_eq(w[1].id, 3);
    ck_assert_uint_eq(w[1].stall_ms[MUX_STALL_SOCKET], 40);
    ck_assert_uint_eq(w[1].stall_ms[MUX_STALL_CREDIT], 0);
    pump(&p, 1 << 20); /* stream 3 goes, and finishes */
    ck_assert_int_eq(mux_session_end_stream(p.cli.s, 3), 0);
    pump(&p, 1 << 20);
    mux_session_stats st;
    mux_session_get_stats(p.cli.s, &st);
    ck_assert_uint_eq(st.stall_ms[MUX_STALL_CREDIT], 340);
    ck_assert_uint_eq(st.stall_ms[MUX_STALL_SOCKET], 40);
    ck_assert_uint_eq(st.stall_ms[MUX_STALL_PEER], 0);
    ck_assert_uint_eq(st.flow_blocked_ms, 340);
    /* the reader resumes: credit comes back, the stall stops growing */
    p.srv.st[0].stalled = 0;
    app_consume(&p.srv, 1);
    pump(&p, 1 << 20);
    p.net.now += 500;
    n = mux_session_worst_streams(p.cli.s, p.net.now, w, 4);
    ck_assert_uint_ge(n, 1);
    ck_assert_uint_eq(w[0].id, 1);
    ck_assert_uint_eq(w[0].stall_ms[MUX_STALL_CREDIT], 340);
    /* finished streams stay listed among the worst */
    ck_assert_int_eq(mux_session_reset_stream(p.cli.s, 1, MUX_CODE_CANCEL, "done"), 0);
    pump(&p, 1 << 20);
    n = mux_session_worst_streams(p.cli.s, p.net.now, w, 4);
    ck_assert_uint_eq(n, 2);
    ck_assert_uint_eq(w[0].id, 1);
    ck_assert_int_eq(w[0].open, 0);
    ck_assert_uint_eq(w[1].id, 3);
    ck_assert_uint_eq(mux_session_worst_streams(p.cli.s, p.net.now, w, 1), 1);
    pair_del(&p);
}
END_TEST

START_TEST(test_busy_rtt_probe)
{
    /* PROTOCOL.md §8: a busy tunnel (DATA flowing, so no keepalive PING) still measures its RTT:
     * a probe PING every 2 x SRTT (100 ms .. 1 s) while DATA moved since the last one */
    mux_session_options so, co;
    opts(&so, &co);
    pair p;
    pair_new(&p, &so, &co, 21);
    p.cli.auto_respond = 0;
    pump(&p, 1 << 20);
    mux_session_stats st;
    mux_session_get_stats(p.srv.s, &st);
    ck_assert_int_eq(st.srtt_ms, -1);
    ck_assert_int_eq(st.min_rtt_ms, -1);
    /* no stream: only the keepalive timer (15 s) */
    ck_assert_int_eq(mux_session_next_timeout(p.srv.s), p.net.now + 15000);
    open_simple(&p, MUX_HEAD_END_STREAM);
    pump(&p, 1 << 20);
    mux_head r;
    memset(&r, 0, sizeof(r));
    r.status = 200;
    ck_assert_int_eq(mux_session_respond(p.cli.s, 1, &r), 0);
    p.cli.st[0].tx_total = 64 << 20;
    int64_t lat[] = {30, 40, 20, 35, 50, 30};
    for (size_t k = 0; k < sizeof(lat) / sizeof(lat[0]); k++) {
        /* DATA flows: a probe is due MUX_RTT_PROBE_MIN_MS (or 2 x SRTT) after the last PING */
        respond_rounds(&p, 2, 1);
        int64_t due = mux_session_next_timeout(p.srv.s);
        ck_assert_int_gt(due, p.net.now);
        ck_assert_int_le(due, p.net.now + MUX_RTT_PROBE_MAX_MS);
        p.net.now = due;
        ck_assert_int_eq(mux_session_handle_timeout(p.srv.s, p.net.now), 0);
        ck_assert(mux_session_want_write(p.srv.s));
        transmit(&p.net, p.srv.s, p.cli.s, 1 << 20, 0);
        p.net.now += lat[k];
        transmit(&p.net, p.cli.s, p.srv.s, 1 << 20, 1); /* PONG (first: control before DATA) */
        ck_assert_int_eq(p.srv.rtt, lat[k]);
    }
    mux_session_get_stats(p.srv.s, &st);
    ck_assert_int_eq(st.min_rtt_ms, 20);
    ck_assert_int_ge(st.srtt_ms, 25);
    ck_assert_int_le(st.srtt_ms, 45);
    ck_assert_int_eq(st.last_rtt_ms, 30);
    /* nothing left to send (the app writes only in respond_rounds): no DATA since the last PING,
     * no probe (keepalive only) */
    pump(&p, 1 << 20);
    p.net.now += MUX_RTT_PROBE_MAX_MS;
    ck_assert_int_eq(mux_session_handle_timeout(p.srv.s, p.net.now), 0); /* at most one more probe */
    pump(&p, 1 << 20);
    p.net.now += MUX_RTT_PROBE_MAX_MS;
    ck_assert_int_eq(mux_session_handle_timeout(p.srv.s, p.net.now), 0);
    ck_assert(!mux_session_want_write(p.srv.s));
    ck_assert_int_gt(mux_session_next_timeout(p.srv.s), p.net.now + MUX_RTT_PROBE_MAX_MS);
    pair_del(&p);
}
END_TEST

START_TEST(test_growth_budget)
{
    /* auto-tuning grows a stream's window only within initial_conn_window of growth for all the
     * streams: a fast stream whose window grew, then stalled, leaves the next one no more than
     * what is left of that budget */
    mux_session_options so, co;
    opts(&so, &co);
    so.initial_stream_window = 64 * 1024;
    so.max_stream_window = 1 << 20;
    so.initial_conn_window = 192 * 1024; /* room to grow one stream from 64 KiB to 256 KiB */
    pair p;
    pair_new(&p, &so, &co, 14);
    p.cli.auto_respond = 0;
    pump(&p, 1 << 20);
    /* an RTT sample on the server (the side granting response windows) */
    ck_assert_int_eq(mux_session_ping(p.srv.s, p.net.now), 0);
    transmit(&p.net, p.srv.s, p.cli.s, 1 << 20, 0);
    p.net.now += 5;
    transmit(&p.net, p.cli.s, p.srv.s, 1 << 20, 1);
    ck_assert_int_eq(p.srv.rtt, 5);
    for (int i = 0; i < 2; i++)
        open_simple(&p, MUX_HEAD_END_STREAM);
    pump(&p, 1 << 20);
    for (uint32_t i = 0; i < 2; i++) {
        mux_head r;
        memset(&r, 0, sizeof(r));
        r.status = 200;
        ck_assert_int_eq(mux_session_respond(p.cli.s, 2 * i + 1, &r), 0);
    }
    p.cli.st[0].tx_total = 64 << 20;
    p.srv.window = 1 << 20; /* what a grown window may hold */
    /* stream 1 is read fast (the clock does not move): its window grows within the budget */
    respond_rounds(&p, 40, 1);
    /* then stalls: what it holds shows its window, 64 KiB + at most the 192 KiB budget */
    p.srv.st[0].stalled = 1;
    respond_rounds(&p, 50, 0);
    uint64_t held1 = p.srv.st[0].rx_got - p.srv.st[0].rx_consumed;
    ck_assert_uint_gt(held1, 64 * 1024);
    ck_assert_uint_le(held1, 256 * 1024);
    /* stream 3, read fast too, cannot grow past its initial window: the budget is spent */
    p.cli.st[1].tx_total = 64 << 20;
    respond_rounds(&p, 40, 1);
    p.srv.st[1].stalled = 1;
    respond_rounds(&p, 50, 0);
    ck_assert_uint_le(p.srv.st[1].rx_got - p.srv.st[1].rx_consumed, 64 * 1024 + 256 * 1024 - held1);
    ck_assert_int_eq(p.srv.window_violations, 0);
    pair_del(&p);
}
END_TEST

START_TEST(test_want_writable)
{
    /* a writer that stops before the buffer is full asks for the wake itself: it comes once the
     * queued bytes went out and the buffer is below half, as after a refused write */
    mux_session_options so, co;
    opts(&so, &co);
    so.stream_send_buffer = 10000;
    pair p;
    pair_new(&p, &so, &co, 11);
    p.cli.auto_respond = 0;
    pump(&p, 1 << 20);
    open_simple(&p, 0);
    uint8_t b[6000] = {0};
    ck_assert_int_eq(mux_session_write(p.srv.s, 1, b, sizeof(b)), 6000); /* all taken: no wake armed */
    pump(&p, 1 << 20);
    ck_assert_int_eq(p.srv.writable_calls, 0);
    ck_assert_int_eq(mux_session_write(p.srv.s, 1, b, sizeof(b)), 6000);
    ck_assert_uint_eq(mux_session_write_room(p.srv.s, 1), 4000);
    ck_assert_int_eq(mux_session_want_writable(p.srv.s, 1), 0);
    pump(&p, 1 << 20);
    ck_assert_int_eq(p.srv.writable_calls, 1);
    ck_assert_uint_eq(mux_session_write_room(p.srv.s, 1), 10000);
    pump(&p, 1 << 20);
    ck_assert_int_eq(p.srv.writable_calls, 1); /* once per request */
    ck_assert_uint_eq(p.cli.st[0].rx_got, 12000);
    ck_assert_int_eq(mux_session_want_writable(p.srv.s, 99), MUX_ERR_STREAM_NOT_FOUND);
    ck_assert_int_eq(mux_session_want_writable(NULL, 1), MUX_ERR_INVALID_ARGUMENT);
    pair_del(&p);
}
END_TEST

START_TEST(test_autotune)
{
    mux_session_options so, co;
    opts(&so, &co);
    co.initial_stream_window = 16384;
    co.max_stream_window = 1 << 20;
    so.stream_send_buffer = 1 << 20;
    so.chunk_size = 16384;
    pair p;
    pair_new(&p, &so, &co, 12);
    p.cli.auto_respond = 0;
    p.cli.window = 1 << 20;
    pump(&p, 1 << 20);
    /* an RTT sample on the client, the side that grants the request-body window */
    ck_assert_int_eq(mux_session_ping(p.cli.s, p.net.now), 0);
    transmit(&p.net, p.cli.s, p.srv.s, 1 << 20, 1);
    p.net.now += 5;
    transmit(&p.net, p.srv.s, p.cli.s, 1 << 20, 0);
    ck_assert_int_eq(p.cli.rtt, 5);
    open_simple(&p, 0);
    static uint8_t buf[65536];
    uint64_t sent = 0;
    /* a fast consumer (the clock does not move): the window grows towards max_stream_window */
    for (int i = 0; i < 10000 && sent < (4u << 20); i++) {
        ssize_t w = mux_session_write(p.srv.s, 1, buf, sizeof(buf));
        if (w > 0)
            sent += (uint64_t)w;
        transmit(&p.net, p.srv.s, p.cli.s, 1 << 20, 0);
        app_consume(&p.cli, 1);
        transmit(&p.net, p.cli.s, p.srv.s, 1 << 20, 1);
    }
    ck_assert_uint_ge(sent, 4u << 20);
    /* the consumer stops: what is in flight now shows the grown window */
    p.cli.st[0].stalled = 1;
    for (int i = 0; i < 200; i++) {
        mux_session_write(p.srv.s, 1, buf, sizeof(buf));
        transmit(&p.net, p.srv.s, p.cli.s, 1 << 20, 0);
        transmit(&p.net, p.cli.s, p.srv.s, 1 << 20, 1);
    }
    uint64_t outstanding = p.cli.st[0].rx_got - p.cli.st[0].rx_consumed;
    ck_assert_uint_gt(outstanding, 4 * 16384);
    ck_assert_uint_le(outstanding, 1 << 20);
    ck_assert_int_eq(p.cli.window_violations, 0);
    pair_del(&p);
}
END_TEST

Suite *make_suite(void);
Suite *make_suite(void)
{
    Suite *s = suite_create("session_flow");
    TCase *tc = tcase_create("lifecycle");
    tcase_add_test(tc, test_want_writable);
    tcase_add_test(tc, test_stalled_streams_do_not_block);
    tcase_add_test(tc, test_interactive_first);
    tcase_add_test(tc, test_stall_accounting);
    tcase_add_test(tc, test_busy_rtt_probe);
    tcase_add_test(tc, test_growth_budget);
    tcase_add_test(tc, test_autotune);
    suite_add_tcase(s, tc);
    return s;
}

TM_CHECK_MAIN(make_suite)
