/*
 * tunnelmux — mux session suite: handshake, streams, flow control, the 64 MiB multi-stream
 * transfer, malformed input (each error code), keepalive, GOAWAY, resets. Two sessions talk in
 * memory through tests/mux/peer.h with a fake clock.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zstd.h>

#include "check_main.h"
#include "frame_codec.h"
#include "mux/mux.h"
#include "mux/ws.h"
#include "mux/peer.h"
#include "rtt.h"

#define MAXS 256

typedef struct {
    int used;
    uint64_t tx_total, tx_done;
    int tx_ended;
    uint64_t rx_got, rx_consumed;
    int rx_ended, closed, close_by_peer;
    unsigned close_code, status;
    int heads;
    int stalled; /* the app does not consume this stream */
    int bad;     /* pattern mismatch seen */
} tstream;

typedef struct {
    mux_session *s;
    int server;
    tstream st[MAXS];
    int hellos, welcomes, refuses;
    uint32_t welcome_ping_timeout; /* client: WELCOME's ping_timeout_ms */
    unsigned refuse_code;
    int accept_mode; /* server: 0 accept in on_hello, 1 refuse, 2 defer */
    int goaways;
    unsigned goaway_code;
    uint32_t goaway_last;
    int64_t rtt;
    uint32_t window, conn_window; /* what this side grants (no auto-tuning in these tests) */
    uint64_t unconsumed_total, max_unconsumed_total;
    int window_violations;
    int auto_respond;
    int fail_heads; /* on_head returns non-zero (the application refuses the head) */
    peer_rng *rng;
    uint64_t resp_seed, resp_per;
    int closes;
    int writable_calls;
    /* where DATA payloads lie: inside [in_lo, in_lo + in_len) (the caller's input) or elsewhere */
    const uint8_t *in_lo;
    size_t in_len;
    uint64_t bytes_in_place, bytes_elsewhere;
} side;

static tstream *ts_of(side *d, uint32_t id)
{
    uint32_t i = (id - 1) / 2;
    return i < MAXS ? &d->st[i] : NULL;
}

static uint64_t resp_size(side *d, uint32_t id)
{
    peer_rng r = {d->resp_seed ^ id};
    uint64_t v = peer_rng_next(&r);
    uint64_t per = d->resp_per != 0 ? d->resp_per : 64 * 1024;
    return (v % 8 == 0) ? 0 : 1 + (v >> 8) % (2 * per * 8 / 7);
}

/* ---------------------------------------------------------------- callbacks */

static int cb_hello(mux_session *s, const mux_hello_info *h, void *ud)
{
    side *d = ud;
    d->hellos++;
    if (d->accept_mode == 0)
        return mux_session_accept(s, "https://demo.example.com");
    if (d->accept_mode == 1)
        return mux_session_refuse(s, MUX_CODE_NAME_TAKEN, "taken", 5000);
    return 0;
}

static void cb_welcome(mux_session *s, const mux_welcome_info *w, void *ud)
{
    ((side *)ud)->welcomes++;
    ((side *)ud)->welcome_ping_timeout = w->ping_timeout_ms;
}

static void cb_refuse(mux_session *s, unsigned code, const char *reason, uint32_t retry, void *ud)
{
    side *d = ud;
    d->refuses++;
    d->refuse_code = code;
}

static int cb_head(mux_session *s, uint32_t id, const mux_head *head, void *sud, void *ud)
{
    side *d = ud;
    tstream *t = ts_of(d, id);
    if (t == NULL)
        return 1;
    t->heads++;
    if (d->fail_heads)
        return 1;
    if (!d->server) {
        t->used = 1;
        if (d->auto_respond) {
            t->tx_total = resp_size(d, id);
            mux_head r;
            memset(&r, 0, sizeof(r));
            r.status = 200;
            r.flags = t->tx_total == 0 ? MUX_HEAD_END_STREAM : 0;
            mux_header h = {{(uint8_t *)"content-type", 12}, {(uint8_t *)"text/plain", 10}};
            r.headers = &h;
            r.nheaders = 1;
            ck_assert_int_eq(mux_session_respond(s, id, &r), 0);
            if (t->tx_total == 0)
                t->tx_ended = 1;
        }
    } else {
        t->status = head->status;
    }
    return 0;
}

static int cb_data(mux_session *s, uint32_t id, const uint8_t *p, size_t len, void *sud, void *ud)
{
    side *d = ud;
    tstream *t = ts_of(d, id);
    if (t == NULL)
        return 1;
    int dir = d->server ? 1 : 0; /* 0: request body (server->client), 1: response body */
    if (peer_pattern_check(p, len, id, dir, t->rx_got) != len)
        t->bad = 1;
    if (d->in_lo != NULL && p >= d->in_lo && p + len <= d->in_lo + d->in_len)
        d->bytes_in_place += len;
    else
        d->bytes_elsewhere += len;
    t->rx_got += len;
    d->unconsumed_total += len;
    if (d->unconsumed_total > d->max_unconsumed_total)
        d->max_unconsumed_total = d->unconsumed_total;
    /* the sender never exceeds a stream's window: outstanding <= granted (PROTOCOL.md §6.1). The
     * connection window is returned on receipt (§6.2): the session itself fails a peer that
     * exceeds it, and unconsumed bytes are bounded by the stream windows alone. */
    if (t->rx_got - t->rx_consumed > d->window)
        d->window_violations++;
    return 0;
}

static int cb_end(mux_session *s, uint32_t id, void *sud, void *ud)
{
    tstream *t = ts_of(ud, id);
    if (t != NULL)
        t->rx_ended = 1;
    return 0;
}

static void cb_close(mux_session *s, uint32_t id, unsigned code, const char *reason, int by_peer, void *sud, void *ud)
{
    side *d = ud;
    tstream *t = ts_of(d, id);
    ck_assert_ptr_nonnull(reason);
    d->closes++;
    if (t == NULL)
        return;
    ck_assert_int_eq(t->closed, 0); /* the last callback, once */
    t->closed = 1;
    t->close_code = code;
    t->close_by_peer = by_peer;
    d->unconsumed_total -= t->rx_got - t->rx_consumed;
    t->rx_consumed = t->rx_got;
}

static void cb_writable(mux_session *s, uint32_t id, void *sud, void *ud)
{
    ((side *)ud)->writable_calls++;
}

static void cb_goaway(mux_session *s, uint32_t last, unsigned code, const char *reason, void *ud)
{
    side *d = ud;
    d->goaways++;
    d->goaway_code = code;
    d->goaway_last = last;
}

static void cb_rtt(mux_session *s, int64_t rtt, void *ud)
{
    ((side *)ud)->rtt = rtt;
}

static const mux_session_callbacks CBS = {cb_hello, cb_welcome, cb_refuse,   cb_head,   cb_data,
                                          cb_end,   cb_close,   cb_writable, cb_goaway, cb_rtt};

/* ---------------------------------------------------------------- pair setup */

typedef struct {
    peer_net net;
    side srv, cli;
    peer_rng rng;
} pair;

static void pair_new(pair *p, mux_session_options *so, mux_session_options *co, uint64_t seed)
{
    memset(p, 0, sizeof(*p));
    peer_net_init(&p->net, seed);
    p->rng.s = seed * 31 + 7;
    p->net.now = 1000;
    p->srv.server = 1;
    p->srv.rng = p->cli.rng = &p->rng;
    p->cli.auto_respond = 1;
    p->cli.resp_seed = seed;
    /* each side checks the windows IT grants */
    p->srv.window = so->initial_stream_window;
    p->srv.conn_window = so->initial_conn_window;
    p->cli.window = co->initial_stream_window;
    p->cli.conn_window = co->initial_conn_window;
    ck_assert_int_eq(mux_session_new(&p->srv.s, so, &CBS, NULL, &p->srv, p->net.now), 0);
    ck_assert_int_eq(mux_session_new(&p->cli.s, co, &CBS, NULL, &p->cli, p->net.now), 0);
}

static void pair_del(pair *p)
{
    mux_session_del(p->srv.s);
    mux_session_del(p->cli.s);
    peer_net_free(&p->net);
}

/* Pumps both ways until neither side has anything to send (bounded). */
static void pump(pair *p, size_t max_chunk)
{
    for (int i = 0; i < 1000; i++) {
        ssize_t a = transmit(&p->net, p->cli.s, p->srv.s, max_chunk, 1);
        ssize_t b = transmit(&p->net, p->srv.s, p->cli.s, max_chunk, 0);
        if (a <= 0 && b <= 0)
            return;
    }
}

static void opts(mux_session_options *so, mux_session_options *co)
{
    mux_session_options_default(so, MUX_ROLE_SERVER);
    mux_session_options_default(co, MUX_ROLE_CLIENT);
    co->client_id = "demo";
    co->auth_token = "secret";
    co->software = "test/1";
}

static void established(pair *p, int zstd_srv, int zstd_cli)
{
    mux_session_options so, co;
    opts(&so, &co);
    so.enable_zstd = zstd_srv;
    co.enable_zstd = zstd_cli;
    pair_new(p, &so, &co, 42);
    pump(p, 1 << 20);
    ck_assert(mux_session_is_established(p->srv.s));
    ck_assert(mux_session_is_established(p->cli.s));
}

/* ---------------------------------------------------------------- handshake */

START_TEST(test_handshake_ok)
{
    pair p;
    established(&p, 1, 1);
    ck_assert_int_eq(p.srv.hellos, 1);
    ck_assert_int_eq(p.cli.welcomes, 1);
    ck_assert_uint_eq(p.cli.welcome_ping_timeout, 45000); /* PROTOCOL.md §4.2: announced in WELCOME */
    ck_assert_uint_eq(mux_session_capabilities(p.srv.s), MUX_CAP_ZSTD | MUX_CAP_CONTINUE_RELAY);
    ck_assert_uint_eq(mux_session_capabilities(p.cli.s), MUX_CAP_ZSTD | MUX_CAP_CONTINUE_RELAY);
    ck_assert(!mux_session_want_close(p.srv.s));
    pair_del(&p);
}
END_TEST

START_TEST(test_handshake_no_zstd)
{
    for (int i = 0; i < 2; i++) {
        pair p;
        established(&p, i, !i);
        ck_assert_uint_eq(mux_session_capabilities(p.srv.s) & MUX_CAP_ZSTD, 0);
        ck_assert_uint_eq(mux_session_capabilities(p.cli.s) & MUX_CAP_ZSTD, 0);
        pair_del(&p);
    }
}
END_TEST

/* PROTOCOL.md §4.1: capability bit 1 (continue relay) is agreed only when both sides offer it; an
 * old peer (bit unset) gets today's behaviour. Each side's own switch is independent of zstd. */
START_TEST(test_handshake_continue_relay)
{
    for (int srv_on = 0; srv_on < 2; srv_on++) {
        for (int cli_on = 0; cli_on < 2; cli_on++) {
            mux_session_options so, co;
            opts(&so, &co);
            so.enable_continue_relay = srv_on;
            co.enable_continue_relay = cli_on;
            pair p;
            pair_new(&p, &so, &co, 43);
            pump(&p, 1 << 20);
            ck_assert(mux_session_is_established(p.cli.s));
            uint32_t want = srv_on && cli_on ? MUX_CAP_CONTINUE_RELAY : 0;
            ck_assert_uint_eq(mux_session_capabilities(p.srv.s) & MUX_CAP_CONTINUE_RELAY, want);
            ck_assert_uint_eq(mux_session_capabilities(p.cli.s) & MUX_CAP_CONTINUE_RELAY, want);
            ck_assert_uint_eq(mux_session_capabilities(p.cli.s) & MUX_CAP_ZSTD, MUX_CAP_ZSTD);
            pair_del(&p);
        }
    }
}
END_TEST

START_TEST(test_handshake_refused)
{
    mux_session_options so, co;
    opts(&so, &co);
    pair p;
    pair_new(&p, &so, &co, 1);
    p.srv.accept_mode = 1;
    ck_assert_int_gt(transmit(&p.net, p.cli.s, p.srv.s, 1 << 20, 1), 0);
    ck_assert(mux_session_want_close(p.srv.s));
    ck_assert_int_eq(transmit(&p.net, p.srv.s, p.cli.s, 1 << 20, 0), MUX_ERR_REFUSED);
    ck_assert_int_eq(p.cli.refuses, 1);
    ck_assert_uint_eq(p.cli.refuse_code, MUX_CODE_NAME_TAKEN);
    ck_assert(mux_session_want_close(p.cli.s));
    ck_assert(!mux_session_is_established(p.cli.s));
    pair_del(&p);
}
END_TEST

START_TEST(test_handshake_deferred)
{
    mux_session_options so, co;
    opts(&so, &co);
    pair p;
    pair_new(&p, &so, &co, 1);
    p.srv.accept_mode = 2;
    pump(&p, 7);
    ck_assert(!mux_session_is_established(p.srv.s));
    ck_assert_int_eq(mux_session_open_stream(p.srv.s, &(mux_head){0}, NULL), MUX_ERR_INVALID_STATE);
    ck_assert_int_eq(mux_session_accept(p.srv.s, NULL), 0);
    pump(&p, 7);
    ck_assert(mux_session_is_established(p.cli.s));
    pair_del(&p);
}
END_TEST

START_TEST(test_handshake_timeout)
{
    mux_session_options so, co;
    opts(&so, &co);
    pair p;
    pair_new(&p, &so, &co, 1);
    int64_t t = mux_session_next_timeout(p.srv.s);
    ck_assert_int_eq(t, 1000 + so.handshake_timeout_ms);
    ck_assert_int_eq(mux_session_handle_timeout(p.srv.s, t - 1), 0);
    ck_assert_int_eq(mux_session_handle_timeout(p.srv.s, t), MUX_ERR_TIMEOUT);
    ck_assert(mux_session_want_close(p.srv.s));
    ck_assert_int_eq(mux_session_handle_timeout(p.cli.s, t), MUX_ERR_TIMEOUT);
    pair_del(&p);
}
END_TEST

/* ---------------------------------------------------------------- the big transfer */

static uint8_t patbuf[256 * 1024];

static void app_write(side *d, size_t maxw)
{
    for (uint32_t i = 0; i < MAXS; i++) {
        tstream *t = &d->st[i];
        uint32_t id = 2 * i + 1;
        if (!t->used || t->closed || t->tx_ended)
            continue;
        int dir = d->server ? 0 : 1;
        while (t->tx_done < t->tx_total) {
            size_t n = (size_t)peer_rng_range(d->rng, 1, maxw);
            if (n > t->tx_total - t->tx_done)
                n = (size_t)(t->tx_total - t->tx_done);
            peer_pattern_fill(patbuf, n, id, dir, t->tx_done);
            ssize_t w = mux_session_write(d->s, id, patbuf, n);
            if (w == MUX_ERR_AGAIN)
                break;
            ck_assert_int_gt(w, 0);
            t->tx_done += (uint64_t)w;
            if ((size_t)w < n)
                break;
        }
        if (t->tx_done == t->tx_total) {
            ck_assert_int_eq(mux_session_end_stream(d->s, id), 0);
            t->tx_ended = 1;
        }
    }
}

static void app_consume(side *d, int all)
{
    for (uint32_t i = 0; i < MAXS; i++) {
        tstream *t = &d->st[i];
        if (!t->used || t->stalled || t->rx_got == t->rx_consumed)
            continue;
        if (!all && peer_rng_range(d->rng, 0, 3) != 0)
            continue; /* consume later */
        uint64_t n = t->rx_got - t->rx_consumed;
        if (!all && peer_rng_range(d->rng, 0, 1) == 0)
            n = peer_rng_range(d->rng, 1, n);
        t->rx_consumed += n;
        d->unconsumed_total -= n;
        ck_assert_int_eq(mux_session_consume(d->s, 2 * i + 1, (size_t)n), 0);
    }
}

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

/* ---------------------------------------------------------------- hand-crafted input */

/* Appends the record of |f| to |env| (an envelope being built). */
static void rec(mux_buf *env, const mux_frame *f)
{
    ck_assert_int_eq(mux_frame_encode(f, env, NULL), 0);
}

static void env_start(mux_buf *env, uint8_t hdr)
{
    mux_buf_init(env);
    ck_assert_int_eq(mux_buf_append(env, &hdr, 1, 0, NULL), 0);
}

/* Wraps |payload| in one WebSocket frame (masked when |mask|) and feeds it to |dst|. */
static ssize_t inject(pair *p, mux_session *dst, unsigned opcode, int fin, const uint8_t *payload, size_t n, int mask)
{
    uint8_t *buf = malloc(n + MUX_WS_MAX_HEADER);
    uint8_t key[4] = {0x12, 0x34, 0x56, 0x78};
    size_t hl = mux_ws_frame_header(buf, opcode, fin, n, mask ? key : NULL);
    if (n != 0)
        memcpy(buf + hl, payload, n);
    if (mask)
        mux_ws_mask(buf + hl, n, key, 0);
    ssize_t rv = mux_session_recv(dst, buf, hl + n, p->net.now);
    free(buf);
    return rv;
}

static ssize_t inject_env(pair *p, int to_server, mux_buf *env)
{
    ssize_t rv = inject(p, to_server ? p->srv.s : p->cli.s, MUX_WS_OP_BINARY, 1, env->base, env->len, to_server);
    mux_buf_free(env, NULL);
    return rv;
}

/* After |dst| failed with |rv|: it wants to close, and its peer gets GOAWAY(code) (unless the
 * WebSocket layer itself was broken) and the WebSocket close, which ends the peer too. */
static void expect_failed(pair *p, int to_server, ssize_t got, int want)
{
    mux_session *dst = to_server ? p->srv.s : p->cli.s;
    mux_session *peer = to_server ? p->cli.s : p->srv.s;
    side *pd = to_server ? &p->cli : &p->srv;
    ck_assert_msg(got == want, "got %d (%s), want %d", (int)got, mux_session_last_error_reason(dst), want);
    ck_assert(mux_session_want_close(dst));
    ck_assert_str_ne(mux_session_last_error_reason(dst), "");
    int before = pd->goaways;
    ck_assert_int_gt(transmit(&p->net, dst, peer, 1 << 20, !to_server), 0);
    if (want != MUX_ERR_WS_PROTOCOL) {
        ck_assert_int_eq(pd->goaways, before + 1);
        ck_assert_uint_eq(pd->goaway_code, mux_error_to_code(want));
    }
    ck_assert(mux_session_want_close(peer));                                /* it saw the WebSocket close */
    ck_assert_int_eq(transmit(&p->net, dst, peer, 1 << 20, !to_server), 0); /* nothing after the close */
}

static mux_frame fr(mux_frame_type type, uint32_t id)
{
    mux_frame f;
    memset(&f, 0, sizeof(f));
    f.type = type;
    f.stream_id = id;
    return f;
}

START_TEST(test_bad_varint)
{
    pair p;
    established(&p, 0, 0);
    mux_buf env;
    env_start(&env, 0x10);
    uint8_t b = 0x80;
    mux_buf_append(&env, &b, 1, 0, NULL);
    expect_failed(&p, 1, inject_env(&p, 1, &env), MUX_ERR_VARINT);
    pair_del(&p);
}
END_TEST

START_TEST(test_record_too_large)
{
    pair p;
    established(&p, 0, 0);
    mux_buf env;
    env_start(&env, 0x10);
    uint8_t b[2] = {0x05, 0x01};
    mux_buf_append(&env, b, 2, 0, NULL);
    expect_failed(&p, 1, inject_env(&p, 1, &env), MUX_ERR_FRAME_TOO_LARGE);
    pair_del(&p);
}
END_TEST

START_TEST(test_message_too_large)
{
    mux_session_options so, co;
    opts(&so, &co);
    so.max_message_size = 4096;
    pair p;
    pair_new(&p, &so, &co, 3);
    pump(&p, 1 << 20);
    uint8_t *big = calloc(1, 5000);
    big[0] = 0x10;
    expect_failed(&p, 1, inject(&p, p.srv.s, MUX_WS_OP_BINARY, 1, big, 5000, 1), MUX_ERR_MESSAGE_TOO_LARGE);
    free(big);
    pair_del(&p);
}
END_TEST

/* Appends one client WebSocket frame (masked) to |out|. */
static void ws_append(mux_buf *out, unsigned opcode, const uint8_t *payload, size_t n)
{
    uint8_t hdr[MUX_WS_MAX_HEADER], key[4] = {9, 8, 7, 6};
    size_t hl = mux_ws_frame_header(hdr, opcode, 1, n, key);
    ck_assert_int_eq(mux_buf_append(out, hdr, hl, 0, NULL), 0);
    size_t at = out->len;
    if (n != 0)
        ck_assert_int_eq(mux_buf_append(out, payload, n, 0, NULL), 0);
    mux_ws_mask(out->base + at, n, key, 0);
}

/* PROTOCOL.md §8 lingering close: after a fatal error the session keeps reading only to find the
 * peer's close frame, also behind an oversized message whose payload it never wanted. */
START_TEST(test_linger_finds_peer_close)
{
    mux_session_options so, co;
    opts(&so, &co);
    so.max_message_size = 4096;
    uint8_t *big = calloc(1, 100000);
    big[0] = 0x10;
    uint8_t code[2] = {0x03, 0xe8};
    for (int split = 0; split < 3; split++) {
        pair p;
        pair_new(&p, &so, &co, 12);
        pump(&p, 1 << 20);
        mux_buf in;
        mux_buf_init(&in);
        ws_append(&in, MUX_WS_OP_BINARY, big, 100000); /* over max_message_size */
        ws_append(&in, MUX_WS_OP_BINARY, big, 10);     /* more data the peer had in flight */
        ws_append(&in, MUX_WS_OP_CLOSE, code, 2);      /* its answer to our close */
        /* split 0: one input; 1: cut inside the oversized header; 2: fed a byte at a time after it */
        size_t cut = split == 0 ? in.len : split == 1 ? 3 : 20;
        ssize_t rv = mux_session_recv(p.srv.s, in.base, cut, p.net.now);
        ck_assert_int_eq(split == 1 ? rv : MUX_ERR_MESSAGE_TOO_LARGE, split == 1 ? 3 : rv);
        if (split == 2) {
            for (size_t i = cut; i < in.len; i++) {
                ck_assert(!mux_session_peer_closed(p.srv.s));
                mux_session_recv(p.srv.s, in.base + i, 1, p.net.now);
            }
        } else if (split == 1) {
            ck_assert_int_eq(mux_session_recv(p.srv.s, in.base + cut, in.len - cut, p.net.now), MUX_ERR_MESSAGE_TOO_LARGE);
        }
        ck_assert(mux_session_want_close(p.srv.s));
        ck_assert_msg(mux_session_peer_closed(p.srv.s), "split %d: the close frame was not found", split);
        mux_buf_free(&in, NULL);
        pair_del(&p);
    }
    /* a protocol error inside a message: the frames after it are still followed */
    pair p;
    established(&p, 0, 0);
    mux_buf env;
    env_start(&env, 0x10);
    mux_frame f = fr(MUX_FRAME_DATA, 99);
    f.payload = (const uint8_t *)"x";
    f.payload_len = 1;
    rec(&env, &f);
    rec(&env, &f);
    mux_buf in;
    mux_buf_init(&in);
    ws_append(&in, MUX_WS_OP_BINARY, env.base, env.len);
    ws_append(&in, MUX_WS_OP_BINARY, env.base, env.len);
    ck_assert_int_eq(mux_session_recv(p.srv.s, in.base, in.len, p.net.now), MUX_ERR_UNKNOWN_STREAM);
    ck_assert(!mux_session_peer_closed(p.srv.s));
    mux_buf_reset(&in);
    ws_append(&in, MUX_WS_OP_CLOSE, code, 2);
    mux_session_recv(p.srv.s, in.base, in.len, p.net.now);
    ck_assert(mux_session_peer_closed(p.srv.s));
    mux_buf_free(&in, NULL);
    mux_buf_free(&env, NULL);
    pair_del(&p);
    free(big);
}
END_TEST

START_TEST(test_unknown_stream)
{
    pair p;
    established(&p, 0, 0);
    mux_buf env;
    env_start(&env, 0x10);
    mux_frame f = fr(MUX_FRAME_DATA, 99);
    f.payload = (const uint8_t *)"x";
    f.payload_len = 1;
    rec(&env, &f);
    expect_failed(&p, 1, inject_env(&p, 1, &env), MUX_ERR_UNKNOWN_STREAM);
    pair_del(&p);
}
END_TEST

static int32_t open_simple(pair *p, uint32_t flags)
{
    mux_head h;
    memset(&h, 0, sizeof(h));
    h.method = (mux_iovec){(uint8_t *)"GET", 3};
    h.path = (mux_iovec){(uint8_t *)"/", 1};
    h.flags = flags;
    int32_t id = mux_session_open_stream(p->srv.s, &h, NULL);
    ck_assert_int_gt(id, 0);
    ts_of(&p->srv, (uint32_t)id)->used = 1;
    return id;
}

/* ---------------------------------------------------------------- compression context lifecycle */

static uint32_t zctx(mux_session *s)
{
    mux_session_stats st;
    mux_session_get_stats(s, &st);
    return st.zstd_contexts;
}

/* Advances the fake clock by |ms| in 1 s steps, running both sides' timers and pumping. */
static void idle_for(pair *p, int64_t ms)
{
    for (int64_t end = p->net.now + ms; p->net.now < end;) {
        p->net.now += 1000;
        ck_assert_int_eq(mux_session_handle_timeout(p->srv.s, p->net.now), 0);
        ck_assert_int_eq(mux_session_handle_timeout(p->cli.s, p->net.now), 0);
        pump(p, 1 << 20);
    }
}

/* A header value long and repetitive enough to be compressed (PROTOCOL.md §3.2: >= 256 bytes). */
static char bigval[700];

static mux_header big_header(void)
{
    for (size_t i = 0; i < sizeof(bigval); i++)
        bigval[i] = "session=abcdef; theme=dark; "[i % 28];
    mux_header h = {{(uint8_t *)"cookie", 6}, {(uint8_t *)bigval, sizeof(bigval)}};
    return h;
}

/* Server -> client: a request whose head is compressed. */
static int32_t open_big(pair *p)
{
    mux_header h = big_header();
    mux_head r;
    memset(&r, 0, sizeof(r));
    r.method = (mux_iovec){(uint8_t *)"GET", 3};
    r.path = (mux_iovec){(uint8_t *)"/", 1};
    r.flags = MUX_HEAD_END_STREAM;
    r.headers = &h;
    r.nheaders = 1;
    int32_t id = mux_session_open_stream(p->srv.s, &r, NULL);
    ck_assert_int_gt(id, 0);
    ts_of(&p->srv, (uint32_t)id)->used = 1;
    return id;
}

/* Client -> server: a compressed response head ending the stream. */
static void respond_big(pair *p, int32_t id, unsigned status)
{
    mux_header h = big_header();
    mux_head r;
    memset(&r, 0, sizeof(r));
    r.status = status;
    r.flags = MUX_HEAD_END_STREAM;
    r.headers = &h;
    r.nheaders = 1;
    ck_assert_int_eq(mux_session_respond(p->cli.s, (uint32_t)id, &r), 0);
}

/* Keepalive and small messages never create a zstd context (PROTOCOL.md §3.2). */
START_TEST(test_zstd_small_messages_plain)
{
    pair p;
    established(&p, 1, 1);
    p.cli.auto_respond = 0;
    mux_session_stats before;
    mux_session_get_stats(p.srv.s, &before);
    idle_for(&p, 200000); /* ~13 keepalive rounds */
    mux_session_stats after;
    mux_session_get_stats(p.srv.s, &after);
    ck_assert_uint_ge(after.messages_in - before.messages_in, 5); /* PINGs and PONGs did flow */
    ck_assert(!mux_session_want_close(p.srv.s));
    /* a small request and response, then credit */
    int32_t id = open_simple(&p, MUX_HEAD_END_STREAM);
    pump(&p, 1 << 20);
    mux_head r;
    memset(&r, 0, sizeof(r));
    r.status = 204;
    r.flags = MUX_HEAD_END_STREAM;
    ck_assert_int_eq(mux_session_respond(p.cli.s, (uint32_t)id, &r), 0);
    pump(&p, 1 << 20);
    ck_assert_uint_eq(p.srv.st[0].status, 204);
    ck_assert_uint_eq(zctx(p.srv.s), 0);
    ck_assert_uint_eq(zctx(p.cli.s), 0);
    pair_del(&p);
}
END_TEST

/* Both directions: contexts are created on use, the sender ends its frame after the (jittered)
 * idle period, both ends free their contexts in step, and the next use re-creates them. */
START_TEST(test_zstd_idle_release)
{
    pair p;
    established(&p, 1, 1);
    p.cli.auto_respond = 0;
    mux_session_options d;
    mux_session_options_default(&d, MUX_ROLE_SERVER);
    for (int round = 0; round < 3; round++) {
        int32_t id = open_big(&p); /* server compresses, client decompresses */
        pump(&p, 1 << 20);
        ck_assert_int_eq(ts_of(&p.cli, (uint32_t)id)->heads, 1);
        ck_assert_uint_eq(zctx(p.srv.s), 1);
        ck_assert_uint_eq(zctx(p.cli.s), 1);
        respond_big(&p, id, 200 + (unsigned)round); /* client compresses, server decompresses */
        pump(&p, 1 << 20);
        ck_assert_uint_eq(ts_of(&p.srv, (uint32_t)id)->status, 200 + (unsigned)round);
        ck_assert_uint_eq(zctx(p.srv.s), 2);
        ck_assert_uint_eq(zctx(p.cli.s), 2);
        /* before the shortest idle period: kept */
        idle_for(&p, d.zstd_idle_ms - 2000);
        ck_assert_uint_eq(zctx(p.srv.s), 2);
        ck_assert_uint_eq(zctx(p.cli.s), 2);
        /* after the longest: released on both ends, keepalive did not bring them back */
        idle_for(&p, d.zstd_idle_ms * 3 / 2 + 2000);
        ck_assert_uint_eq(zctx(p.srv.s), 0);
        ck_assert_uint_eq(zctx(p.cli.s), 0);
        idle_for(&p, 60000);
        ck_assert_uint_eq(zctx(p.srv.s), 0);
        ck_assert_uint_eq(zctx(p.cli.s), 0);
        ck_assert(!mux_session_want_close(p.srv.s) && !mux_session_want_close(p.cli.s));
    }
    pair_del(&p);
}
END_TEST

/* A sender that never ends its frame (zstd_idle_ms 0: what every sender did before the idle frame
 * end) keeps the receiver's context alive and the stream intact. */
START_TEST(test_zstd_old_sender)
{
    mux_session_options so, co;
    opts(&so, &co);
    co.zstd_idle_ms = 0; /* the client behaves like an old sender */
    pair p;
    pair_new(&p, &so, &co, 5);
    p.cli.auto_respond = 0;
    pump(&p, 1 << 20);
    int32_t id = open_big(&p);
    pump(&p, 1 << 20);
    respond_big(&p, id, 200);
    pump(&p, 1 << 20);
    idle_for(&p, 40000);
    ck_assert_uint_eq(zctx(p.srv.s), 1); /* its decompressor: the old sender's frame is still open */
    ck_assert_uint_eq(zctx(p.cli.s), 1); /* its compressor */
    int32_t id2 = open_big(&p);
    pump(&p, 1 << 20);
    respond_big(&p, id2, 201);
    pump(&p, 1 << 20);
    ck_assert_uint_eq(ts_of(&p.srv, (uint32_t)id2)->status, 201);
    ck_assert(!mux_session_want_close(p.srv.s));
    pair_del(&p);
}
END_TEST

/* Tunnels created together get different idle periods (within [idle, 1.5 idle)). */
START_TEST(test_zstd_idle_jitter)
{
    mux_session_options so, co;
    opts(&so, &co);
    so.ping_interval_ms = so.ping_timeout_ms = 0; /* the compressor's deadline is the only timer */
    int64_t seen_min = INT64_MAX, seen_max = 0;
    for (int i = 0; i < 16; i++) {
        pair p;
        pair_new(&p, &so, &co, (uint64_t)i + 100);
        p.cli.auto_respond = 0;
        pump(&p, 1 << 20);
        open_big(&p);
        pump(&p, 1 << 20);
        int64_t due = mux_session_next_timeout(p.srv.s) - p.net.now;
        ck_assert_int_ge(due, so.zstd_idle_ms);
        ck_assert_int_lt(due, so.zstd_idle_ms * 3 / 2);
        seen_min = due < seen_min ? due : seen_min;
        seen_max = due > seen_max ? due : seen_max;
        pair_del(&p);
    }
    ck_assert_int_gt(seen_max - seen_min, 100); /* 16 draws over 7.5 s: all equal is ~impossible */
}
END_TEST

/* A CLOSE crossing our forgetting of a finished stream is a legal race, not an error (PROTOCOL.md
 * §5.3): the peer may abort after its fin went out and before ours arrived. */
START_TEST(test_close_after_both_ends_is_ignored)
{
    pair p;
    established(&p, 0, 0);
    p.cli.auto_respond = 0;
    open_simple(&p, MUX_HEAD_END_STREAM);
    pump(&p, 1 << 20);
    mux_head r = {0};
    r.status = 204;
    r.flags = MUX_HEAD_END_STREAM;
    ck_assert_int_eq(mux_session_respond(p.cli.s, 1, &r), 0);
    pump(&p, 1 << 20);
    ck_assert_int_eq(p.srv.st[0].closed, 1); /* both ends done: forgotten on both sides */
    mux_buf env;
    env_start(&env, 0x10);
    mux_frame f = fr(MUX_FRAME_CLOSE, 1);
    f.code = MUX_CODE_CANCEL;
    rec(&env, &f);
    ck_assert_int_ge(inject_env(&p, 1, &env), 0);
    ck_assert_int_eq(mux_session_want_close(p.srv.s), 0);
    pair_del(&p);
}
END_TEST

/* on_head failing on a response head that carried END_STREAM frees the stream, as on_request and
 * on_data do: a CLOSING stub would wait for a fin that already came (the client has forgotten the
 * stream or only answers CLOSE by forgetting it), and stubs count against the stream limit. */
START_TEST(test_response_head_failure_with_end_stream)
{
    mux_session_options so, co;
    opts(&so, &co);
    so.max_concurrent_streams = 1;
    pair p;
    pair_new(&p, &so, &co, 5);
    pump(&p, 1 << 20);
    p.cli.auto_respond = 0;
    p.srv.fail_heads = 1;
    /* round 0: the request had ended (server half-closed local); round 1: it had not (open) */
    for (int round = 0; round < 2; round++) {
        int32_t id = open_simple(&p, round == 0 ? MUX_HEAD_END_STREAM : 0);
        pump(&p, 1 << 20);
        mux_head r = {0};
        r.status = 200;
        r.flags = MUX_HEAD_END_STREAM;
        ck_assert_int_eq(mux_session_respond(p.cli.s, (uint32_t)id, &r), 0);
        pump(&p, 1 << 20);
        tstream *s = ts_of(&p.srv, (uint32_t)id), *c = ts_of(&p.cli, (uint32_t)id);
        ck_assert_int_eq(s->heads, 1);
        ck_assert_int_eq(s->closed, 1);
        ck_assert_uint_eq(s->close_code, MUX_CODE_CANCEL);
        ck_assert_int_eq(s->close_by_peer, 0);
        ck_assert_int_eq(c->closed, 1);
        mux_session_stats st;
        mux_session_get_stats(p.srv.s, &st);
        ck_assert_uint_eq(st.streams_active, 0);
    }
    /* nothing left behind: the one allowed stream can be opened again */
    p.srv.fail_heads = 0;
    int32_t id = open_simple(&p, MUX_HEAD_END_STREAM);
    pump(&p, 1 << 20);
    mux_head r = {0};
    r.status = 204;
    r.flags = MUX_HEAD_END_STREAM;
    ck_assert_int_eq(mux_session_respond(p.cli.s, (uint32_t)id, &r), 0);
    pump(&p, 1 << 20);
    ck_assert_int_eq(ts_of(&p.srv, (uint32_t)id)->closed, 1);
    ck_assert_uint_eq(ts_of(&p.srv, (uint32_t)id)->close_code, MUX_CODE_NO_ERROR);
    ck_assert(!mux_session_want_close(p.srv.s));
    pair_del(&p);
}
END_TEST

START_TEST(test_data_after_close)
{
    pair p;
    established(&p, 0, 0);
    p.cli.auto_respond = 0;
    open_simple(&p, 0);
    pump(&p, 1 << 20);
    mux_buf env;
    env_start(&env, 0x10);
    mux_frame f = fr(MUX_FRAME_CLOSE, 1);
    f.code = MUX_CODE_CANCEL;
    rec(&env, &f);
    f = fr(MUX_FRAME_DATA, 1);
    f.payload = (const uint8_t *)"x";
    f.payload_len = 1;
    rec(&env, &f);
    expect_failed(&p, 1, inject_env(&p, 1, &env), MUX_ERR_STREAM_CLOSED);
    ck_assert_int_eq(p.srv.st[0].closed, 1);
    ck_assert_uint_eq(p.srv.st[0].close_code, MUX_CODE_CANCEL);
    ck_assert_int_eq(p.srv.st[0].close_by_peer, 1);
    pair_del(&p);
}
END_TEST

/* PROTOCOL.md §5.1: only the server opens streams, with odd ids; an even one fails. */
START_TEST(test_even_stream_id)
{
    for (uint32_t id = 2; id <= 4; id += 2) {
        pair p;
        established(&p, 0, 0);
        mux_buf env;
        env_start(&env, 0x10);
        mux_frame f = fr(MUX_FRAME_OPEN, id);
        f.head.method = (mux_iovec){(uint8_t *)"GET", 3};
        f.head.path = (mux_iovec){(uint8_t *)"/", 1};
        f.head.flags = MUX_HEAD_END_STREAM;
        rec(&env, &f);
        expect_failed(&p, 0, inject_env(&p, 0, &env), MUX_ERR_PROTO);
        pair_del(&p);
    }
}
END_TEST

START_TEST(test_duplicate_open)
{
    pair p;
    established(&p, 0, 0);
    mux_buf env;
    env_start(&env, 0x10);
    mux_frame f = fr(MUX_FRAME_OPEN, 1);
    f.head.method = (mux_iovec){(uint8_t *)"GET", 3};
    rec(&env, &f);
    rec(&env, &f);
    expect_failed(&p, 0, inject_env(&p, 0, &env), MUX_ERR_DUPLICATE_OPEN);
    pair_del(&p);
}
END_TEST

START_TEST(test_second_response_head)
{
    pair p;
    established(&p, 0, 0);
    p.cli.auto_respond = 0;
    open_simple(&p, 0);
    pump(&p, 1 << 20);
    mux_buf env;
    env_start(&env, 0x10);
    mux_frame f = fr(MUX_FRAME_OPEN, 1);
    f.head.status = 200;
    rec(&env, &f);
    rec(&env, &f);
    expect_failed(&p, 1, inject_env(&p, 1, &env), MUX_ERR_DUPLICATE_OPEN);
    pair_del(&p);
}
END_TEST

START_TEST(test_data_before_head)
{
    pair p;
    established(&p, 0, 0);
    p.cli.auto_respond = 0;
    open_simple(&p, 0);
    pump(&p, 1 << 20);
    mux_buf env;
    env_start(&env, 0x10);
    mux_frame f = fr(MUX_FRAME_DATA, 1);
    f.payload = (const uint8_t *)"x";
    f.payload_len = 1;
    rec(&env, &f);
    expect_failed(&p, 1, inject_env(&p, 1, &env), MUX_ERR_PROTO);
    pair_del(&p);
}
END_TEST

START_TEST(test_window_overflow)
{
    pair p;
    established(&p, 0, 0);
    mux_buf env;
    env_start(&env, 0x10);
    mux_frame f = fr(MUX_FRAME_WINDOW, 0);
    f.increment = 0x7fffffff;
    rec(&env, &f);
    expect_failed(&p, 1, inject_env(&p, 1, &env), MUX_ERR_WINDOW_OVERFLOW);
    pair_del(&p);
}
END_TEST

START_TEST(test_window_zero)
{
    pair p;
    established(&p, 0, 0);
    mux_buf env;
    env_start(&env, 0x10);
    mux_frame f = fr(MUX_FRAME_WINDOW, 0);
    f.increment = 0;
    rec(&env, &f);
    expect_failed(&p, 1, inject_env(&p, 1, &env), MUX_ERR_WINDOW_OVERFLOW);
    pair_del(&p);
}
END_TEST

START_TEST(test_data_over_credit)
{
    mux_session_options so, co;
    opts(&so, &co);
    so.initial_stream_window = 1024;
    pair p;
    pair_new(&p, &so, &co, 5);
    p.cli.auto_respond = 0;
    pump(&p, 1 << 20);
    open_simple(&p, 0);
    pump(&p, 1 << 20);
    mux_buf env;
    env_start(&env, 0x10);
    mux_frame f = fr(MUX_FRAME_OPEN, 1);
    f.head.status = 200;
    rec(&env, &f);
    uint8_t pay[1025] = {0};
    f = fr(MUX_FRAME_DATA, 1);
    f.payload = pay;
    f.payload_len = 1024; /* exactly the window: fine */
    rec(&env, &f);
    ck_assert_int_gt(inject_env(&p, 1, &env), 0);
    env_start(&env, 0x10);
    f.payload_len = 1;
    rec(&env, &f);
    expect_failed(&p, 1, inject_env(&p, 1, &env), MUX_ERR_FLOW_CONTROL);
    pair_del(&p);
}
END_TEST

START_TEST(test_decompression_bomb)
{
    mux_session_options so, co;
    opts(&so, &co);
    so.max_message_size = 64 * 1024;
    pair p;
    pair_new(&p, &so, &co, 6);
    pump(&p, 1 << 20);
    ck_assert_uint_eq(mux_session_capabilities(p.srv.s) & MUX_CAP_ZSTD, MUX_CAP_ZSTD);
    size_t n = 4 << 20;
    uint8_t *zeros = calloc(1, n);
    size_t cap = ZSTD_compressBound(n) + 1;
    uint8_t *c = malloc(cap);
    c[0] = 0x13; /* compressed + reset */
    ZSTD_CCtx *cc = ZSTD_createCCtx();
    ZSTD_CCtx_setParameter(cc, ZSTD_c_windowLog, 17); /* a legal window: only the size is the problem */
    size_t cl = ZSTD_compress2(cc, c + 1, cap - 1, zeros, n);
    ZSTD_freeCCtx(cc);
    ck_assert(!ZSTD_isError(cl));
    ck_assert_uint_lt(cl, 4096);
    expect_failed(&p, 1, inject(&p, p.srv.s, MUX_WS_OP_BINARY, 1, c, cl + 1, 1), MUX_ERR_DECOMPRESS_LIMIT);
    free(zeros);
    free(c);
    pair_del(&p);
}
END_TEST

/* One compressed message (R set) holding a PING, compressed with window log |wlog|. */
static ssize_t inject_zstd_wlog(pair *p, int wlog)
{
    mux_buf env;
    env_start(&env, 0x10);
    mux_frame f = fr(MUX_FRAME_PING, 0);
    f.opaque = 1;
    rec(&env, &f);
    ZSTD_CCtx *cc = ZSTD_createCCtx();
    ZSTD_CCtx_setParameter(cc, ZSTD_c_windowLog, wlog);
    ZSTD_CCtx_setParameter(cc, ZSTD_c_contentSizeFlag, 0); /* else zstd shrinks the window to the content */
    uint8_t out[256];
    out[0] = 0x13;
    ZSTD_inBuffer in = {env.base + 1, env.len - 1, 0};
    ZSTD_outBuffer ob = {out + 1, sizeof(out) - 1, 0};
    size_t r = ZSTD_compressStream2(cc, &ob, &in, ZSTD_e_flush);
    ck_assert(!ZSTD_isError(r) && r == 0);
    ZSTD_freeCCtx(cc);
    mux_buf_free(&env, NULL);
    return inject(p, p->srv.s, MUX_WS_OP_BINARY, 1, out, ob.pos + 1, 1);
}

/* PROTOCOL.md §3.2: a receiver accepts window logs up to 20 whatever its own ZSTD_WINDOW_LOG, and
 * tells a larger window apart from corrupt data. */
START_TEST(test_zstd_window_limit)
{
    mux_session_options so, co;
    opts(&so, &co);
    so.zstd_window_log = 17;
    pair p;
    pair_new(&p, &so, &co, 11);
    pump(&p, 1 << 20);
    ck_assert_uint_eq(mux_session_capabilities(p.srv.s) & MUX_CAP_ZSTD, MUX_CAP_ZSTD);
    ck_assert_int_gt(inject_zstd_wlog(&p, 20), 0);
    ck_assert(!mux_session_want_close(p.srv.s));
    ck_assert_int_eq(inject_zstd_wlog(&p, 21), MUX_ERR_DECOMPRESS);
    ck_assert(mux_session_want_close(p.srv.s));
    ck_assert_msg(strstr(mux_session_last_error_reason(p.srv.s), "zstd window too large") != NULL, "reason: %s",
                  mux_session_last_error_reason(p.srv.s));
    pair_del(&p);
}
END_TEST

START_TEST(test_compressed_not_negotiated)
{
    pair p;
    established(&p, 0, 1);
    uint8_t m[4] = {0x13, 0x28, 0xb5, 0x2f};
    expect_failed(&p, 1, inject(&p, p.srv.s, MUX_WS_OP_BINARY, 1, m, 4, 1), MUX_ERR_DECOMPRESS);
    pair_del(&p);
}
END_TEST

START_TEST(test_bad_envelope)
{
    pair p;
    established(&p, 0, 0);
    uint8_t m[1] = {0x20};
    expect_failed(&p, 1, inject(&p, p.srv.s, MUX_WS_OP_BINARY, 1, m, 1, 1), MUX_ERR_BAD_VERSION);
    pair_del(&p);
    established(&p, 0, 0);
    m[0] = 0x14;
    expect_failed(&p, 0, inject(&p, p.cli.s, MUX_WS_OP_BINARY, 1, m, 1, 0), MUX_ERR_PROTO);
    pair_del(&p);
}
END_TEST

START_TEST(test_hello_version)
{
    mux_session_options so, co;
    opts(&so, &co);
    pair p;
    pair_new(&p, &so, &co, 7);
    mux_buf env;
    env_start(&env, 0x10);
    mux_frame f = fr(MUX_FRAME_HELLO, 0);
    f.hello.version = 2;
    f.hello.client_id = "demo";
    f.hello.auth_token = "";
    f.hello.software = "";
    rec(&env, &f);
    ck_assert_int_eq(inject_env(&p, 1, &env), MUX_ERR_BAD_VERSION);
    ck_assert(mux_session_want_close(p.srv.s));
    ck_assert_int_eq(p.srv.hellos, 0);
    ck_assert_int_eq(transmit(&p.net, p.srv.s, p.cli.s, 1 << 20, 0), MUX_ERR_REFUSED);
    ck_assert_int_eq(p.cli.refuses, 1);
    ck_assert_uint_eq(p.cli.refuse_code, MUX_CODE_UNSUPPORTED_VERSION);
    pair_del(&p);
}
END_TEST

/* Feeds the server one message: a version-1 HELLO followed by |extra| (PROTOCOL.md §4.1: the
 * client sends nothing but PING, PONG, GOAWAY before WELCOME). */
static ssize_t hello_then(pair *p, const mux_frame *extra)
{
    mux_buf env;
    env_start(&env, 0x10);
    mux_frame f = fr(MUX_FRAME_HELLO, 0);
    f.hello.version = 1;
    f.hello.client_id = "demo";
    f.hello.auth_token = "";
    f.hello.software = "";
    rec(&env, &f);
    rec(&env, extra);
    return inject_env(p, 1, &env);
}

START_TEST(test_frame_before_welcome)
{
    mux_session_options so, co;
    opts(&so, &co);
    pair p;
    /* a WINDOW in the HELLO's message: the server accepts the HELLO at once, and still fails it */
    pair_new(&p, &so, &co, 9);
    mux_frame w = fr(MUX_FRAME_WINDOW, 0);
    w.increment = 1000;
    ck_assert_int_eq(hello_then(&p, &w), MUX_ERR_HANDSHAKE);
    ck_assert_int_eq(p.srv.hellos, 1);
    ck_assert(mux_session_want_close(p.srv.s));
    ck_assert_str_eq(mux_session_last_error_reason(p.srv.s), "frame before WELCOME (in the HELLO's message)");
    ck_assert_uint_eq(mux_error_to_code(MUX_ERR_HANDSHAKE), MUX_CODE_PROTOCOL_ERROR);
    pair_del(&p);
    /* a PING there is fine (answered), and a WINDOW in a later message is ordinary */
    pair_new(&p, &so, &co, 10);
    mux_frame ping = fr(MUX_FRAME_PING, 0);
    ping.opaque = 7;
    ck_assert_int_gt(hello_then(&p, &ping), 0);
    ck_assert(!mux_session_want_close(p.srv.s));
    ck_assert(mux_session_is_established(p.srv.s));
    mux_buf env;
    env_start(&env, 0x10);
    rec(&env, &w);
    ck_assert_int_gt(inject_env(&p, 1, &env), 0);
    ck_assert(!mux_session_want_close(p.srv.s));
    pair_del(&p);
}
END_TEST

START_TEST(test_first_frame_not_hello)
{
    mux_session_options so, co;
    opts(&so, &co);
    pair p;
    pair_new(&p, &so, &co, 8);
    mux_buf env;
    env_start(&env, 0x10);
    mux_frame f = fr(MUX_FRAME_PING, 0);
    rec(&env, &f);
    ck_assert_int_eq(inject_env(&p, 1, &env), MUX_ERR_HANDSHAKE);
    ck_assert(mux_session_want_close(p.srv.s));
    pair_del(&p);
}
END_TEST

START_TEST(test_unmasked_client_frame)
{
    pair p;
    established(&p, 0, 0);
    uint8_t m[1] = {0x10};
    expect_failed(&p, 1, inject(&p, p.srv.s, MUX_WS_OP_BINARY, 1, m, 1, 0), MUX_ERR_WS_PROTOCOL);
    pair_del(&p);
}
END_TEST

START_TEST(test_text_frame)
{
    pair p;
    established(&p, 0, 0);
    uint8_t m[2] = {'h', 'i'};
    expect_failed(&p, 1, inject(&p, p.srv.s, MUX_WS_OP_TEXT, 1, m, 2, 1), MUX_ERR_WS_PROTOCOL);
    pair_del(&p);
}
END_TEST

START_TEST(test_fragmented_message)
{
    /* a message split into BINARY + CONT frames with a PING in between is reassembled */
    pair p;
    established(&p, 0, 0);
    mux_buf env;
    env_start(&env, 0x10);
    mux_frame f = fr(MUX_FRAME_PING, 0);
    f.opaque = 77;
    rec(&env, &f);
    size_t half = env.len / 2;
    ck_assert_int_gt(inject(&p, p.srv.s, MUX_WS_OP_BINARY, 0, env.base, half, 1), 0);
    ck_assert_int_gt(inject(&p, p.srv.s, MUX_WS_OP_PING, 1, (const uint8_t *)"abc", 3, 1), 0);
    ck_assert_int_gt(inject(&p, p.srv.s, MUX_WS_OP_CONT, 1, env.base + half, env.len - half, 1), 0);
    mux_buf_free(&env, NULL);
    /* the WebSocket PONG goes first, then the tunnel PONG */
    mux_iovec iov[16];
    ssize_t n = mux_session_send(p.srv.s, iov, 16, p.net.now);
    ck_assert_int_gt(n, 0);
    ck_assert_uint_eq(iov[0].base[0], 0x8a);
    ck_assert_uint_eq(iov[0].base[1], 3);
    ck_assert(memcmp(iov[0].base + 2, "abc", 3) == 0);
    mux_session_send_done(p.srv.s, p.net.now);
    ck_assert(!mux_session_want_close(p.srv.s));
    pair_del(&p);
}
END_TEST

/* A masked client->server WebSocket frame with |env| as its payload (malloc'd, |*len| bytes). */
static uint8_t *client_wire(const mux_buf *env, unsigned opcode, int fin, size_t *len)
{
    uint8_t key[4] = {0x9a, 0x0b, 0x7c, 0x1d};
    uint8_t *w = malloc(env->len + MUX_WS_MAX_HEADER);
    size_t hl = mux_ws_frame_header(w, opcode, fin, env->len, key);
    memcpy(w + hl, env->base, env->len);
    mux_ws_mask(w + hl, env->len, key, 0);
    *len = hl + env->len;
    return w;
}

START_TEST(test_split_message_in_place)
{
    /* A message cut anywhere by the end of a recv() input: each record wholly inside one input
     * reaches on_data where it lies (a pointer into the input, no copy); only the one record cut
     * is carried; the bytes arrive whole and in order; nothing fails. */
    enum { NREC = 4, RLEN = 5000 };
    static uint8_t body[NREC * RLEN];
    peer_pattern_fill(body, sizeof(body), 1, 1, 0);
    mux_buf env;
    env_start(&env, 0x10);
    mux_frame f = fr(MUX_FRAME_OPEN, 1);
    f.head.status = 200;
    rec(&env, &f);
    for (int i = 0; i < NREC; i++) {
        f = fr(MUX_FRAME_DATA, 1);
        f.payload = body + i * RLEN;
        f.payload_len = RLEN;
        rec(&env, &f);
    }
    size_t total;
    uint8_t *wire = client_wire(&env, MUX_WS_OP_BINARY, 1, &total);
    mux_buf_free(&env, NULL);
    for (size_t cut = 0; cut <= total; cut += cut < 40 ? 1 : 251) {
        pair p;
        established(&p, 0, 0);
        p.cli.auto_respond = 0;
        open_simple(&p, 0);
        pump(&p, 1 << 20);
        uint8_t *in = malloc(total); /* unmasked in place: a fresh copy per cut */
        memcpy(in, wire, total);
        p.srv.in_lo = in;
        p.srv.in_len = total;
        ck_assert_int_eq(mux_session_recv(p.srv.s, in, cut, p.net.now), (ssize_t)cut);
        ck_assert_int_eq(mux_session_recv(p.srv.s, in + cut, total - cut, p.net.now), (ssize_t)(total - cut));
        ck_assert(!mux_session_want_close(p.srv.s));
        ck_assert_uint_eq(p.srv.st[0].status, 200);
        ck_assert_uint_eq(p.srv.st[0].rx_got, sizeof(body));
        ck_assert_int_eq(p.srv.st[0].bad, 0);
        ck_assert_msg(p.srv.bytes_elsewhere <= RLEN, "cut %zu: %llu bytes copied", cut, (unsigned long long)p.srv.bytes_elsewhere);
        ck_assert_uint_eq(p.srv.bytes_in_place + p.srv.bytes_elsewhere, sizeof(body));
        free(in);
        pair_del(&p);
    }
    free(wire);
}
END_TEST

START_TEST(test_split_message_errors)
{
    /* a fragmented message whose last record is cut by its end fails as a whole one does */
    for (int truncated_varint = 0; truncated_varint < 2; truncated_varint++) {
        pair p;
        established(&p, 0, 0);
        mux_buf env;
        env_start(&env, 0x10);
        mux_frame f = fr(MUX_FRAME_PING, 0);
        f.opaque = 5;
        rec(&env, &f);
        size_t len;
        uint8_t *w = client_wire(&env, MUX_WS_OP_BINARY, 0, &len);
        ck_assert_int_eq(mux_session_recv(p.srv.s, w, len, p.net.now), (ssize_t)len);
        free(w);
        mux_buf_free(&env, NULL);
        mux_buf_init(&env);
        const uint8_t cut_varint[1] = {0x80}, cut_record[3] = {0x05, 0x08, 0x01};
        if (truncated_varint)
            mux_buf_append(&env, cut_varint, sizeof(cut_varint), 0, NULL);
        else
            mux_buf_append(&env, cut_record, sizeof(cut_record), 0, NULL);
        w = client_wire(&env, MUX_WS_OP_CONT, 1, &len);
        ssize_t rv = mux_session_recv(p.srv.s, w, len, p.net.now);
        free(w);
        mux_buf_free(&env, NULL);
        expect_failed(&p, 1, rv, truncated_varint ? MUX_ERR_VARINT : MUX_ERR_FRAME_TOO_LARGE);
        pair_del(&p);
    }
    /* over max_message_size across fragments: fails before the rest is taken */
    pair p;
    established(&p, 0, 0);
    mux_session_options d;
    mux_session_options_default(&d, MUX_ROLE_SERVER);
    mux_buf env;
    env_start(&env, 0x10);
    mux_frame f = fr(MUX_FRAME_PING, 0);
    rec(&env, &f);
    size_t len;
    uint8_t *w = client_wire(&env, MUX_WS_OP_BINARY, 0, &len);
    ck_assert_int_eq(mux_session_recv(p.srv.s, w, len, p.net.now), (ssize_t)len);
    free(w);
    mux_buf_free(&env, NULL);
    mux_buf_init(&env);
    uint8_t *zeros = calloc(1, d.max_message_size);
    mux_buf_append(&env, zeros, d.max_message_size, 0, NULL);
    free(zeros);
    w = client_wire(&env, MUX_WS_OP_CONT, 1, &len);
    ssize_t rv = mux_session_recv(p.srv.s, w, len, p.net.now);
    free(w);
    mux_buf_free(&env, NULL);
    expect_failed(&p, 1, rv, MUX_ERR_MESSAGE_TOO_LARGE);
    pair_del(&p);
}
END_TEST

START_TEST(test_ws_close)
{
    pair p;
    established(&p, 0, 0);
    open_simple(&p, 0);
    pump(&p, 1 << 20);
    uint8_t code[2] = {0x03, 0xe8};
    ck_assert_int_eq(inject(&p, p.srv.s, MUX_WS_OP_CLOSE, 1, code, 2, 1), 4 + 2 + 2);
    ck_assert(mux_session_want_close(p.srv.s));
    ck_assert_int_eq(p.srv.st[0].closed, 1);
    ck_assert_uint_eq(p.srv.st[0].close_code, MUX_CODE_INTERNAL_ERROR);
    ck_assert_int_eq(p.srv.st[0].close_by_peer, 1);
    mux_iovec iov[16];
    ssize_t n = mux_session_send(p.srv.s, iov, 16, p.net.now);
    ck_assert_int_eq(n, 1);
    ck_assert_uint_eq(iov[0].base[0], 0x88); /* the CLOSE reply */
    pair_del(&p);
}
END_TEST

/* ---------------------------------------------------------------- keepalive, goaway, resets */

START_TEST(test_keepalive_timeout)
{
    pair p;
    established(&p, 0, 0);
    mux_session_options d;
    mux_session_options_default(&d, MUX_ROLE_SERVER);
    int64_t t = mux_session_next_timeout(p.srv.s);
    ck_assert_int_eq(t, p.net.now + d.ping_interval_ms);
    ck_assert_int_eq(mux_session_handle_timeout(p.srv.s, t), 0);
    ck_assert(mux_session_want_write(p.srv.s));                 /* a PING */
    ck_assert_int_gt(transmit(&p.net, p.srv.s, NULL, 1, 0), 0); /* lost: the peer is silent */
    t = mux_session_next_timeout(p.srv.s);
    ck_assert_int_eq(t, p.net.now + 2 * (int64_t)d.ping_interval_ms);
    ck_assert_int_eq(mux_session_handle_timeout(p.srv.s, t), 0);
    t = mux_session_next_timeout(p.srv.s);
    ck_assert_int_eq(t, p.net.now + d.ping_timeout_ms);
    p.net.now = t;
    ck_assert_int_eq(mux_session_handle_timeout(p.srv.s, t), MUX_ERR_TIMEOUT);
    ck_assert(mux_session_want_close(p.srv.s));
    ck_assert_int_eq(mux_session_next_timeout(p.srv.s), -1);
    ck_assert_int_gt(transmit(&p.net, p.srv.s, p.cli.s, 1 << 20, 0), 0);
    ck_assert_int_eq(p.cli.goaways, 1);
    ck_assert_uint_eq(p.cli.goaway_code, MUX_CODE_TIMEOUT);
    pair_del(&p);
}
END_TEST

START_TEST(test_ping_rtt)
{
    pair p;
    established(&p, 0, 0);
    ck_assert_int_eq(mux_session_ping(p.srv.s, p.net.now), 0);
    ck_assert_int_gt(transmit(&p.net, p.srv.s, p.cli.s, 3, 0), 0);
    p.net.now += 7;
    ck_assert_int_gt(transmit(&p.net, p.cli.s, p.srv.s, 3, 1), 0);
    ck_assert_int_eq(p.srv.rtt, 7);
    mux_session_stats st;
    mux_session_get_stats(p.srv.s, &st);
    ck_assert_int_eq(st.last_rtt_ms, 7);
    /* activity postpones keepalive */
    ck_assert_int_eq(mux_session_next_timeout(p.srv.s), p.net.now + 15000);
    pair_del(&p);
}
END_TEST

START_TEST(test_goaway_drain)
{
    pair p;
    established(&p, 0, 0);
    p.cli.auto_respond = 0;
    open_simple(&p, MUX_HEAD_END_STREAM);
    open_simple(&p, MUX_HEAD_END_STREAM);
    ck_assert_int_eq(mux_session_goaway(p.srv.s, MUX_CODE_SHUTDOWN, "restart"), 0);
    mux_head h = {0};
    ck_assert_int_eq(mux_session_open_stream(p.srv.s, &h, NULL), MUX_ERR_GOAWAY);
    pump(&p, 1 << 20);
    ck_assert_int_eq(p.cli.goaways, 1);
    ck_assert_uint_eq(p.cli.goaway_code, MUX_CODE_SHUTDOWN);
    ck_assert_uint_eq(p.cli.goaway_last, 3);
    ck_assert(!mux_session_want_close(p.srv.s));
    /* the client finishes both streams */
    for (uint32_t id = 1; id <= 3; id += 2) {
        mux_head r = {0};
        r.status = 204;
        r.flags = MUX_HEAD_END_STREAM;
        ck_assert_int_eq(mux_session_respond(p.cli.s, id, &r), 0);
    }
    pump(&p, 1 << 20);
    ck_assert_int_eq(p.srv.st[0].closed + p.srv.st[1].closed, 2);
    ck_assert_uint_eq(p.srv.st[1].status, 204);
    ck_assert(mux_session_want_close(p.srv.s));
    ck_assert(mux_session_want_close(p.cli.s));
    ck_assert_int_eq(mux_session_want_write(p.srv.s) + mux_session_want_write(p.cli.s), 0);
    pair_del(&p);
}
END_TEST

START_TEST(test_goaway_from_client)
{
    pair p;
    established(&p, 0, 0);
    p.cli.auto_respond = 0;
    open_simple(&p, 0);
    pump(&p, 1 << 20);
    open_simple(&p, 0); /* id 3: in flight when the client says goodbye */
    ck_assert_int_eq(mux_session_goaway(p.cli.s, MUX_CODE_SHUTDOWN, ""), 0);
    ck_assert_int_gt(transmit(&p.net, p.cli.s, p.srv.s, 1 << 20, 1), 0);
    ck_assert_int_eq(p.srv.goaways, 1);
    ck_assert_uint_eq(p.srv.goaway_last, 1);
    ck_assert_int_eq(p.srv.st[1].closed, 1);
    ck_assert_uint_eq(p.srv.st[1].close_code, MUX_CODE_REFUSED_STREAM);
    ck_assert_int_eq(p.srv.st[0].closed, 0);
    uint8_t b[100] = {0};
    ck_assert_int_eq(mux_session_write(p.srv.s, 1, b, sizeof(b)), 100);
    pump(&p, 1 << 20); /* OPEN 3 crosses the GOAWAY: the client ignores it, no CLOSE comes back */
    ck_assert_int_eq(p.cli.st[1].heads, 0);
    ck_assert(!mux_session_want_close(p.srv.s)); /* stream 1 goes on */
    ck_assert_uint_eq(p.cli.st[0].rx_got, 100);
    mux_head r = {0};
    r.status = 200;
    r.flags = MUX_HEAD_END_STREAM;
    ck_assert_int_eq(mux_session_respond(p.cli.s, 1, &r), 0);
    ck_assert_int_eq(mux_session_end_stream(p.srv.s, 1), 0);
    pump(&p, 1 << 20);
    ck_assert_int_eq(p.srv.st[0].closed, 1);
    ck_assert(mux_session_want_close(p.srv.s));
    ck_assert(mux_session_want_close(p.cli.s));
    pair_del(&p);
}
END_TEST

START_TEST(test_reset_both_ways)
{
    pair p;
    established(&p, 0, 0);
    p.cli.auto_respond = 0;
    for (int i = 0; i < 3; i++)
        open_simple(&p, 0);
    pump(&p, 1 << 20);
    for (uint32_t id = 1; id <= 5; id += 2) {
        mux_head r = {0};
        r.status = 200;
        ck_assert_int_eq(mux_session_respond(p.cli.s, id, &r), 0);
    }
    pump(&p, 1 << 20);
    /* the client has response data in flight for 1 when the server resets it */
    uint8_t buf[3000];
    peer_pattern_fill(buf, sizeof(buf), 1, 1, 0);
    ck_assert_int_eq(mux_session_write(p.cli.s, 1, buf, sizeof(buf)), (ssize_t)sizeof(buf));
    ck_assert_int_eq(mux_session_reset_stream(p.srv.s, 1, MUX_CODE_CANCEL, "user left"), 0);
    ck_assert_int_eq(p.srv.st[0].closed, 1); /* before returning */
    ck_assert_int_eq(p.srv.st[0].close_by_peer, 0);
    ck_assert_int_eq(mux_session_write(p.srv.s, 1, buf, 1), MUX_ERR_STREAM_NOT_FOUND);
    ck_assert_int_eq(mux_session_reset_stream(p.srv.s, 1, MUX_CODE_CANCEL, ""), MUX_ERR_STREAM_NOT_FOUND);
    mux_session_stats st0;
    mux_session_get_stats(p.srv.s, &st0);
    pump(&p, 1 << 20);
    ck_assert_int_eq(p.cli.st[0].closed, 1);
    ck_assert_uint_eq(p.cli.st[0].close_code, MUX_CODE_CANCEL);
    ck_assert_int_eq(p.cli.st[0].close_by_peer, 1);
    ck_assert_uint_eq(p.srv.st[0].rx_got, 0); /* discarded, never delivered */
    /* the client resets 3 */
    ck_assert_int_eq(mux_session_reset_stream(p.cli.s, 3, MUX_CODE_UPSTREAM_ERROR, "local died"), 0);
    pump(&p, 1 << 20);
    ck_assert_int_eq(p.srv.st[1].closed, 1);
    ck_assert_uint_eq(p.srv.st[1].close_code, MUX_CODE_UPSTREAM_ERROR);
    ck_assert_int_eq(p.srv.st[1].close_by_peer, 1);
    /* 5 still works and both sides forgot 1 and 3 */
    ck_assert_int_eq(mux_session_write(p.cli.s, 5, (const uint8_t *)"ok", 2), 2);
    ck_assert_int_eq(mux_session_end_stream(p.cli.s, 5), 0);
    ck_assert_int_eq(mux_session_end_stream(p.srv.s, 5), 0);
    pump(&p, 1 << 20);
    ck_assert_int_eq(p.srv.st[2].closed, 1);
    ck_assert_uint_eq(p.srv.st[2].close_code, MUX_CODE_NO_ERROR);
    ck_assert_uint_eq(p.srv.st[2].rx_got, 2);
    mux_session_stats st;
    mux_session_get_stats(p.srv.s, &st);
    ck_assert_uint_eq(st.streams_active, 0);
    mux_session_get_stats(p.cli.s, &st);
    ck_assert_uint_eq(st.streams_active, 0);
    pair_del(&p);
}
END_TEST

START_TEST(test_refused_stream)
{
    mux_session_options so, co;
    opts(&so, &co);
    co.max_concurrent_streams = 2;
    pair p;
    pair_new(&p, &so, &co, 9);
    p.cli.auto_respond = 0;
    pump(&p, 1 << 20);
    for (int i = 0; i < 3; i++)
        open_simple(&p, 0);
    uint8_t b[100] = {0};
    ck_assert_int_eq(mux_session_write(p.srv.s, 5, b, sizeof(b)), 100);
    pump(&p, 1 << 20);
    ck_assert_int_eq(p.srv.st[2].closed, 1);
    ck_assert_uint_eq(p.srv.st[2].close_code, MUX_CODE_REFUSED_STREAM);
    ck_assert_int_eq(p.cli.st[2].heads, 0);
    ck_assert(!mux_session_want_close(p.cli.s));
    pair_del(&p);
}
END_TEST

START_TEST(test_upgrade)
{
    pair p;
    established(&p, 0, 0);
    p.cli.auto_respond = 0;
    open_simple(&p, MUX_HEAD_UPGRADE);
    open_simple(&p, 0);
    pump(&p, 1 << 20);
    mux_head r = {0};
    r.status = 101;
    ck_assert_int_eq(mux_session_respond(p.cli.s, 3, &r), MUX_ERR_INVALID_STATE);
    r.status = 100; /* informational first */
    ck_assert_int_eq(mux_session_respond(p.cli.s, 1, &r), 0);
    r.status = 101;
    ck_assert_int_eq(mux_session_respond(p.cli.s, 1, &r), 0);
    ck_assert_int_eq(mux_session_write(p.cli.s, 1, (const uint8_t *)"raw", 3), 3);
    pump(&p, 1 << 20);
    ck_assert_int_eq(p.srv.st[0].heads, 2);
    ck_assert_uint_eq(p.srv.st[0].status, 101);
    ck_assert_uint_eq(p.srv.st[0].rx_got, 3);
    /* a crafted 101 on a non-upgrade stream: that stream only is reset */
    mux_buf env;
    env_start(&env, 0x10);
    mux_frame f = fr(MUX_FRAME_OPEN, 3);
    f.head.status = 101;
    rec(&env, &f);
    ck_assert_int_gt(inject_env(&p, 1, &env), 0);
    ck_assert_int_eq(p.srv.st[1].closed, 1);
    ck_assert_uint_eq(p.srv.st[1].close_code, MUX_CODE_PROTOCOL_ERROR);
    ck_assert(!mux_session_want_close(p.srv.s));
    pair_del(&p);
}
END_TEST

START_TEST(test_write_backpressure)
{
    mux_session_options so, co;
    opts(&so, &co);
    so.stream_send_buffer = 10000;
    pair p;
    pair_new(&p, &so, &co, 10);
    p.cli.auto_respond = 0;
    pump(&p, 1 << 20);
    open_simple(&p, 0);
    uint8_t b[12000] = {0};
    ck_assert_int_eq(mux_session_write(p.srv.s, 1, b, sizeof(b)), 10000);
    ck_assert_int_eq(mux_session_write(p.srv.s, 1, b, 1), MUX_ERR_AGAIN);
    ck_assert_uint_eq(mux_session_write_room(p.srv.s, 1), 0);
    pump(&p, 1 << 20);
    ck_assert_int_eq(p.srv.writable_calls, 1);
    ck_assert_uint_eq(mux_session_write_room(p.srv.s, 1), 10000);
    ck_assert_uint_eq(p.cli.st[0].rx_got, 10000);
    pair_del(&p);
}
END_TEST

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

START_TEST(test_header_limit)
{
    mux_session_options so, co;
    opts(&so, &co);
    co.max_header_count = 2;
    pair p;
    pair_new(&p, &so, &co, 13);
    p.cli.auto_respond = 0;
    pump(&p, 1 << 20);
    mux_header hs[3] = {{{(uint8_t *)"a", 1}, {(uint8_t *)"1", 1}},
                        {{(uint8_t *)"b", 1}, {(uint8_t *)"2", 1}},
                        {{(uint8_t *)"c", 1}, {(uint8_t *)"3", 1}}};
    mux_head h = {0};
    h.headers = hs;
    h.nheaders = 3;
    ck_assert_int_eq(mux_session_open_stream(p.srv.s, &h, NULL), 1);
    p.srv.st[0].used = 1;
    h.nheaders = 2;
    ck_assert_int_eq(mux_session_open_stream(p.srv.s, &h, NULL), 3);
    p.srv.st[1].used = 1;
    pump(&p, 1 << 20);
    ck_assert_int_eq(p.srv.st[0].closed, 1);
    ck_assert_uint_eq(p.srv.st[0].close_code, MUX_CODE_HEADERS_TOO_LARGE);
    ck_assert_int_eq(p.cli.st[0].heads, 0);
    ck_assert_int_eq(p.cli.st[1].heads, 1); /* the other stream is fine */
    ck_assert(!mux_session_want_close(p.cli.s));
    /* our own limits apply to what we send */
    ck_assert_int_eq(mux_session_respond(p.cli.s, 3, &(mux_head){.status = 200, .headers = hs, .nheaders = 3}),
                     MUX_ERR_HEADER_LIMIT);
    pair_del(&p);
}
END_TEST

/* ---------------------------------------------------------------- fuzz seed transcripts */

typedef struct {
    mux_buf dir[2]; /* [0] server->client, [1] client->server */
} transcript;

static void record_cb(void *ctx, const uint8_t *p, size_t n, int to_server)
{
    transcript *t = ctx;
    mux_buf_append(&t->dir[to_server ? 1 : 0], p, n, 0, NULL);
}

static void write_seed(const char *dir, const char *name, uint8_t mode, const mux_buf *b)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    fputc(mode, f);
    size_t off = 0;
    while (off < b->len) {
        size_t n = b->len - off > 255 ? 255 : b->len - off;
        fputc((int)n, f);
        fwrite(b->base + off, 1, n, f);
        off += n;
    }
    fputc(0, f); /* let the timers run once */
    fclose(f);
}

/* Records the exchange that fuzz/fuzz_session.c replays (set TM_FUZZ_CORPUS_DIR to write it). */
START_TEST(test_record_transcripts)
{
    const char *dir = getenv("TM_FUZZ_CORPUS_DIR");
    if (dir == NULL)
        return;
    for (int zstd = 0; zstd < 2; zstd++) {
        mux_session_options so, co;
        opts(&so, &co);
        so.enable_zstd = co.enable_zstd = zstd;
        co.client_id = "fuzz";
        so.max_message_size = co.max_message_size = 1 << 20;
        pair p;
        pair_new(&p, &so, &co, 11);
        transcript t;
        mux_buf_init(&t.dir[0]);
        mux_buf_init(&t.dir[1]);
        p.net.record = record_cb;
        p.net.record_ctx = &t;
        p.cli.auto_respond = 0;
        pump(&p, 1 << 20);
        for (int i = 0; i < 4; i++)
            open_simple(&p, MUX_HEAD_END_STREAM | (i == 3 ? MUX_HEAD_UPGRADE : 0));
        pump(&p, 1 << 20);
        static const uint8_t body[100];
        for (uint32_t id = 1; id <= 7; id += 2) {
            mux_head r = {0};
            r.status = id == 7 ? 101 : 200;
            ck_assert_int_eq(mux_session_respond(p.cli.s, id, &r), 0);
            ck_assert_int_eq(mux_session_write(p.cli.s, id, body, sizeof(body)), 100);
            ck_assert_int_eq(mux_session_end_stream(p.cli.s, id), 0);
        }
        mux_session_ping(p.cli.s, p.net.now);
        pump(&p, 1 << 20);
        mux_session_goaway(p.srv.s, MUX_CODE_SHUTDOWN, "bye");
        pump(&p, 1 << 20);
        char name[64];
        snprintf(name, sizeof(name), "server_transcript%s", zstd ? "_zstd" : "");
        write_seed(dir, name, (uint8_t)(zstd ? 2 : 0), &t.dir[1]);
        snprintf(name, sizeof(name), "client_transcript%s", zstd ? "_zstd" : "");
        write_seed(dir, name, (uint8_t)(1 | (zstd ? 2 : 0)), &t.dir[0]);
        mux_buf_free(&t.dir[0], NULL);
        mux_buf_free(&t.dir[1], NULL);
        pair_del(&p);
    }
}
END_TEST

Suite *make_suite(void);
Suite *make_suite(void)
{
    Suite *s = suite_create("session");
    TCase *tc = tcase_create("handshake");
    tcase_add_test(tc, test_handshake_ok);
    tcase_add_test(tc, test_handshake_no_zstd);
    tcase_add_test(tc, test_handshake_continue_relay);
    tcase_add_test(tc, test_handshake_refused);
    tcase_add_test(tc, test_handshake_deferred);
    tcase_add_test(tc, test_handshake_timeout);
    suite_add_tcase(s, tc);
    tc = tcase_create("malformed");
    tcase_add_test(tc, test_bad_varint);
    tcase_add_test(tc, test_record_too_large);
    tcase_add_test(tc, test_message_too_large);
    tcase_add_test(tc, test_unknown_stream);
    tcase_add_test(tc, test_linger_finds_peer_close);
    tcase_add_test(tc, test_response_head_failure_with_end_stream);
    tcase_add_test(tc, test_data_after_close);
    tcase_add_test(tc, test_close_after_both_ends_is_ignored);
    tcase_add_test(tc, test_duplicate_open);
    tcase_add_test(tc, test_even_stream_id);
    tcase_add_test(tc, test_second_response_head);
    tcase_add_test(tc, test_data_before_head);
    tcase_add_test(tc, test_window_overflow);
    tcase_add_test(tc, test_window_zero);
    tcase_add_test(tc, test_data_over_credit);
    tcase_add_test(tc, test_decompression_bomb);
    tcase_add_test(tc, test_compressed_not_negotiated);
    tcase_add_test(tc, test_zstd_window_limit);
    tcase_add_test(tc, test_bad_envelope);
    tcase_add_test(tc, test_hello_version);
    tcase_add_test(tc, test_first_frame_not_hello);
    tcase_add_test(tc, test_frame_before_welcome);
    tcase_add_test(tc, test_unmasked_client_frame);
    tcase_add_test(tc, test_text_frame);
    tcase_add_test(tc, test_fragmented_message);
    tcase_add_test(tc, test_split_message_in_place);
    tcase_add_test(tc, test_split_message_errors);
    tcase_add_test(tc, test_ws_close);
    suite_add_tcase(s, tc);
    tc = tcase_create("lifecycle");
    tcase_add_test(tc, test_keepalive_timeout);
    tcase_add_test(tc, test_ping_rtt);
    tcase_add_test(tc, test_goaway_drain);
    tcase_add_test(tc, test_goaway_from_client);
    tcase_add_test(tc, test_reset_both_ways);
    tcase_add_test(tc, test_refused_stream);
    tcase_add_test(tc, test_upgrade);
    tcase_add_test(tc, test_write_backpressure);
    tcase_add_test(tc, test_want_writable);
    tcase_add_test(tc, test_stalled_streams_do_not_block);
    tcase_add_test(tc, test_interactive_first);
    tcase_add_test(tc, test_stall_accounting);
    tcase_add_test(tc, test_busy_rtt_probe);
    tcase_add_test(tc, test_growth_budget);
    tcase_add_test(tc, test_autotune);
    tcase_add_test(tc, test_header_limit);
    tcase_add_test(tc, test_record_transcripts);
    tcase_add_test(tc, test_zstd_small_messages_plain);
    tcase_add_test(tc, test_zstd_idle_release);
    tcase_add_test(tc, test_zstd_old_sender);
    tcase_add_test(tc, test_zstd_idle_jitter);
    suite_add_tcase(s, tc);
    tc = tcase_create("transfer");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_transfer_64mib);
    tcase_add_test(tc, test_transfer_zstd);
    tcase_add_test(tc, test_transfer_stalled_stream);
    suite_add_tcase(s, tc);
    return s;
}

TM_CHECK_MAIN(make_suite)
