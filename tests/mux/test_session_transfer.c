/*
 * tunnelmux — mux session suite, the big transfer: the 64 MiB multi-stream request/response
 * exchange (plain and zstd, and with one stalled stream), checked exactly-once and in order. Two
 * sessions talk in memory through tests/mux/session_pair.h with a fake clock.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check_main.h"
#include "mux/session_pair.h"

/* ---------------------------------------------------------------- the big transfer */

static int all_closed(side *d, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        if (d->st[i].used && !d->st[i].closed)
            return 0;
    return 1;
}

/* Runs |nstreams| request/response exchanges carrying ~|total| bytes in all. */
static void run_transfer(uint64_t seed, uint32_t nstreams, uint64_t total, int zstd, int stall_one, double *secs)
{
    peer_rng cfg = {seed};
    mux_session_options so, co;
    opts(&so, &co);
    so.enable_zstd = co.enable_zstd = zstd;
    static const uint32_t wins[] = {4096, 16384, 65536, 262144, 1 << 20};
    so.initial_stream_window = wins[peer_rng_range(&cfg, 0, 4)];
    co.initial_stream_window = wins[peer_rng_range(&cfg, 0, 4)];
    so.initial_conn_window = (uint32_t)peer_rng_range(&cfg, 64 * 1024, 4 << 20);
    co.initial_conn_window = (uint32_t)peer_rng_range(&cfg, 64 * 1024, 4 << 20);
    if (stall_one) { /* one stalled stream must not be able to eat the whole connection window */
        so.initial_conn_window = co.initial_conn_window = 4 << 20;
        so.initial_stream_window = co.initial_stream_window = 65536;
    }
    so.max_stream_window = so.initial_stream_window; /* exact window checks: no auto-tuning */
    co.max_stream_window = co.initial_stream_window;
    so.chunk_size = (uint32_t)peer_rng_range(&cfg, 512, 16384);
    co.chunk_size = (uint32_t)peer_rng_range(&cfg, 512, 16384);
    so.send_message_size = (uint32_t)peer_rng_range(&cfg, 4096, 256 * 1024);
    co.send_message_size = (uint32_t)peer_rng_range(&cfg, 4096, 256 * 1024);
    so.stream_send_buffer = (uint32_t)peer_rng_range(&cfg, 8192, 256 * 1024);
    co.stream_send_buffer = (uint32_t)peer_rng_range(&cfg, 8192, 256 * 1024);
    so.max_concurrent_streams = co.max_concurrent_streams = nstreams;
    fprintf(stderr, "transfer seed=%llu streams=%u total=%llu zstd=%d win srv=%u/%u cli=%u/%u chunk=%u/%u msg=%u/%u buf=%u/%u\n",
            (unsigned long long)seed, nstreams, (unsigned long long)total, zstd, so.initial_stream_window, so.initial_conn_window,
            co.initial_stream_window, co.initial_conn_window, so.chunk_size, co.chunk_size, so.send_message_size,
            co.send_message_size, so.stream_send_buffer, co.stream_send_buffer);
    pair *p = calloc(1, sizeof(*p));
    pair_new(p, &so, &co, seed);
    pump(p, 1 << 20);
    ck_assert(mux_session_is_established(p->cli.s));
    uint64_t per = total / 2 / nstreams;
    p->cli.resp_per = per;
    for (uint32_t i = 0; i < nstreams; i++) {
        tstream *t = &p->srv.st[i];
        t->used = 1;
        t->tx_total = peer_rng_range(&cfg, 0, 7) == 0 ? 0 : peer_rng_range(&cfg, 1, 2 * per * 8 / 7);
        if (stall_one && i == 0)
            t->tx_total = 1 << 20; /* the stalled one: much more than its window */
        mux_head h;
        memset(&h, 0, sizeof(h));
        h.method = (mux_iovec){(uint8_t *)"POST", 4};
        h.scheme = (mux_iovec){(uint8_t *)"http", 4};
        h.authority = (mux_iovec){(uint8_t *)"demo.example.com", 16};
        h.path = (mux_iovec){(uint8_t *)"/upload", 7};
        h.flags = t->tx_total == 0 ? MUX_HEAD_END_STREAM : 0;
        int32_t id = mux_session_open_stream(p->srv.s, &h, t);
        ck_assert_int_eq(id, (int32_t)(2 * i + 1));
        if (t->tx_total == 0)
            t->tx_ended = 1;
    }
    if (stall_one)
        p->cli.st[0].stalled = 1; /* the client stops consuming stream 1's request body */
    clock_t c0 = clock();
    int iter;
    int stalled_released = 0;
    for (iter = 0; iter < 2000000; iter++) {
        app_write(&p->srv, 64 * 1024);
        app_write(&p->cli, 64 * 1024);
        uint64_t r = peer_rng_range(&p->rng, 0, 999);
        size_t chunk = r < 30    ? (size_t)peer_rng_range(&p->rng, 1, 16)
                       : r < 130 ? (size_t)peer_rng_range(&p->rng, 17, 4096)
                                 : (size_t)1 << 30;
        ssize_t a = transmit(&p->net, p->srv.s, p->cli.s, chunk, 0);
        ck_assert_msg(a >= 0, "client recv failed: %d %s", (int)a, mux_session_last_error_reason(p->cli.s));
        ssize_t b = transmit(&p->net, p->cli.s, p->srv.s, chunk, 1);
        ck_assert_msg(b >= 0, "server recv failed: %d %s", (int)b, mux_session_last_error_reason(p->srv.s));
        app_consume(&p->srv, 0);
        app_consume(&p->cli, 0);
        p->net.now++;
        if (stall_one && !stalled_released && all_closed(&p->srv, nstreams) == 0) {
            /* everything but stream 1 finished? */
            int others = 1;
            for (uint32_t i = 1; i < nstreams && others; i++)
                others = p->srv.st[i].closed;
            if (others) {
                tstream *t = &p->cli.st[0];
                /* the stalled stream got at most its window */
                ck_assert_uint_le(t->rx_got, co.initial_stream_window);
                if (p->srv.st[0].tx_total > co.initial_stream_window)
                    ck_assert_uint_eq(t->rx_got, co.initial_stream_window);
                t->stalled = 0;
                stalled_released = 1;
            }
        }
        if (a == 0 && b == 0 && all_closed(&p->srv, nstreams) && all_closed(&p->cli, nstreams))
            break;
        if ((clock() - c0) / CLOCKS_PER_SEC > 300)
            break;
    }
    *secs = (double)(clock() - c0) / CLOCKS_PER_SEC;
    ck_assert_msg(all_closed(&p->srv, nstreams) && all_closed(&p->cli, nstreams), "not finished after %d iterations", iter);
    uint64_t moved = 0;
    for (uint32_t i = 0; i < nstreams; i++) {
        tstream *s = &p->srv.st[i], *c = &p->cli.st[i];
        ck_assert_int_eq(s->bad, 0);
        ck_assert_int_eq(c->bad, 0);
        ck_assert_uint_eq(c->rx_got, s->tx_total); /* exactly once */
        ck_assert_uint_eq(s->rx_got, c->tx_total);
        ck_assert_uint_eq(s->close_code, MUX_CODE_NO_ERROR);
        ck_assert_uint_eq(c->close_code, MUX_CODE_NO_ERROR);
        ck_assert_int_eq(s->status, 200);
        moved += s->tx_total + c->tx_total;
    }
    if (stall_one && !stalled_released)
        for (uint32_t i = 0; i < nstreams; i++)
            fprintf(stderr,
                    "  stream %u: srv closed=%d tx %llu/%llu ended=%d rx=%llu | cli closed=%d tx %llu/%llu ended=%d rx=%llu\n",
                    2 * i + 1, p->srv.st[i].closed, (unsigned long long)p->srv.st[i].tx_done,
                    (unsigned long long)p->srv.st[i].tx_total, p->srv.st[i].tx_ended, (unsigned long long)p->srv.st[i].rx_got,
                    p->cli.st[i].closed, (unsigned long long)p->cli.st[i].tx_done, (unsigned long long)p->cli.st[i].tx_total,
                    p->cli.st[i].tx_ended, (unsigned long long)p->cli.st[i].rx_got);
    if (stall_one)
        ck_assert_msg(stalled_released, "the other streams did not finish while one was stalled");
    ck_assert_int_eq(p->srv.window_violations, 0);
    ck_assert_int_eq(p->cli.window_violations, 0);
    mux_session_stats st;
    mux_session_get_stats(p->srv.s, &st);
    ck_assert_uint_eq(st.streams_active, 0);
    ck_assert_uint_eq(st.streams_opened, nstreams);
    fprintf(stderr, "  moved %llu bytes in %d iterations, %.2f s cpu, srv msgs out %llu, flow_blocked_ms %llu\n",
            (unsigned long long)moved, iter, *secs, (unsigned long long)st.messages_out, (unsigned long long)st.flow_blocked_ms);
    pair_del(p);
    free(p);
}

static uint64_t test_seed(void)
{
    const char *e = getenv("TM_SEED");
    if (e != NULL)
        return strtoull(e, NULL, 0);
    return (uint64_t)time(NULL);
}

START_TEST(test_transfer_64mib)
{
    double secs;
    uint64_t seed = test_seed();
    run_transfer(seed, 100, 64ull << 20, 0, 0, &secs);
}
END_TEST

START_TEST(test_transfer_zstd)
{
    double secs;
    run_transfer(test_seed() + 1, 20, 8ull << 20, 1, 0, &secs);
}
END_TEST

START_TEST(test_transfer_stalled_stream)
{
    double secs;
    run_transfer(test_seed() + 2, 10, 8ull << 20, 0, 1, &secs);
}
END_TEST

Suite *make_suite(void);
Suite *make_suite(void)
{
    Suite *s = suite_create("session_transfer");
    TCase *tc = tcase_create("transfer");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_transfer_64mib);
    tcase_add_test(tc, test_transfer_zstd);
    tcase_add_test(tc, test_transfer_stalled_stream);
    suite_add_tcase(s, tc);
    return s;
}

TM_CHECK_MAIN(make_suite)
