/*
 * tunnelmux tests — the two-session harness of the mux session suites (tests/mux/test_session_*.c):
 * per-stream bookkeeping (`tstream`), one `side` per session with its callbacks, the in-memory
 * `pair` (tests/mux/peer.h underneath, fake clock), pump()/established(), the application loops of
 * the transfers, and the helpers that hand-craft envelopes and WebSocket frames. Header-only, all
 * `static inline`, so a suite that uses part of it still builds with -Werror.
 */
#ifndef TM_TESTS_MUX_SESSION_PAIR_H
#define TM_TESTS_MUX_SESSION_PAIR_H

#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "frame_codec.h"
#include "mux/mux.h"
#include "mux/peer.h"
#include "mux/ws.h"

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

static inline tstream *ts_of(side *d, uint32_t id)
{
    uint32_t i = (id - 1) / 2;
    return i < MAXS ? &d->st[i] : NULL;
}

static inline uint64_t resp_size(side *d, uint32_t id)
{
    peer_rng r = {d->resp_seed ^ id};
    uint64_t v = peer_rng_next(&r);
    uint64_t per = d->resp_per != 0 ? d->resp_per : 64 * 1024;
    return (v % 8 == 0) ? 0 : 1 + (v >> 8) % (2 * per * 8 / 7);
}

/* ---------------------------------------------------------------- callbacks */

static inline int cb_hello(mux_session *s, const mux_hello_info *h, void *ud)
{
    side *d = ud;
    d->hellos++;
    if (d->accept_mode == 0)
        return mux_session_accept(s, "https://demo.example.com");
    if (d->accept_mode == 1)
        return mux_session_refuse(s, MUX_CODE_NAME_TAKEN, "taken", 5000);
    return 0;
}

static inline void cb_welcome(mux_session *s, const mux_welcome_info *w, void *ud)
{
    ((side *)ud)->welcomes++;
    ((side *)ud)->welcome_ping_timeout = w->ping_timeout_ms;
}

static inline void cb_refuse(mux_session *s, unsigned code, const char *reason, uint32_t retry, void *ud)
{
    side *d = ud;
    d->refuses++;
    d->refuse_code = code;
}

static inline int cb_head(mux_session *s, uint32_t id, const mux_head *head, void *sud, void *ud)
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

static inline int cb_data(mux_session *s, uint32_t id, const uint8_t *p, size_t len, void *sud, void *ud)
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

static inline int cb_end(mux_session *s, uint32_t id, void *sud, void *ud)
{
    tstream *t = ts_of(ud, id);
    if (t != NULL)
        t->rx_ended = 1;
    return 0;
}

static inline void cb_close(mux_session *s, uint32_t id, unsigned code, const char *reason, int by_peer, void *sud, void *ud)
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

static inline void cb_writable(mux_session *s, uint32_t id, void *sud, void *ud)
{
    ((side *)ud)->writable_calls++;
}

static inline void cb_goaway(mux_session *s, uint32_t last, unsigned code, const char *reason, void *ud)
{
    side *d = ud;
    d->goaways++;
    d->goaway_code = code;
    d->goaway_last = last;
}

static inline void cb_rtt(mux_session *s, int64_t rtt, void *ud)
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

static inline void pair_new(pair *p, mux_session_options *so, mux_session_options *co, uint64_t seed)
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

static inline void pair_del(pair *p)
{
    mux_session_del(p->srv.s);
    mux_session_del(p->cli.s);
    peer_net_free(&p->net);
}

/* Pumps both ways until neither side has anything to send (bounded). */
static inline void pump(pair *p, size_t max_chunk)
{
    for (int i = 0; i < 1000; i++) {
        ssize_t a = transmit(&p->net, p->cli.s, p->srv.s, max_chunk, 1);
        ssize_t b = transmit(&p->net, p->srv.s, p->cli.s, max_chunk, 0);
        if (a <= 0 && b <= 0)
            return;
    }
}

static inline void opts(mux_session_options *so, mux_session_options *co)
{
    mux_session_options_default(so, MUX_ROLE_SERVER);
    mux_session_options_default(co, MUX_ROLE_CLIENT);
    co->client_id = "demo";
    co->auth_token = "secret";
    co->software = "test/1";
}

static inline void established(pair *p, int zstd_srv, int zstd_cli)
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

/* ---------------------------------------------------------------- application loops (transfers) */

static inline void app_write(side *d, size_t maxw)
{
    static uint8_t patbuf[256 * 1024];
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

static inline void app_consume(side *d, int all)
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

/* ---------------------------------------------------------------- hand-crafted input */

/* Appends the record of |f| to |env| (an envelope being built). */
static inline void rec(mux_buf *env, const mux_frame *f)
{
    ck_assert_int_eq(mux_frame_encode(f, env, NULL), 0);
}

static inline void env_start(mux_buf *env, uint8_t hdr)
{
    mux_buf_init(env);
    ck_assert_int_eq(mux_buf_append(env, &hdr, 1, 0, NULL), 0);
}

/* Wraps |payload| in one WebSocket frame (masked when |mask|) and feeds it to |dst|. */
static inline ssize_t inject(pair *p, mux_session *dst, unsigned opcode, int fin, const uint8_t *payload, size_t n, int mask)
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

static inline ssize_t inject_env(pair *p, int to_server, mux_buf *env)
{
    ssize_t rv = inject(p, to_server ? p->srv.s : p->cli.s, MUX_WS_OP_BINARY, 1, env->base, env->len, to_server);
    mux_buf_free(env, NULL);
    return rv;
}

/* After |dst| failed with |rv|: it wants to close, and its peer gets GOAWAY(code) (unless the
 * WebSocket layer itself was broken) and the WebSocket close, which ends the peer too. */
static inline void expect_failed(pair *p, int to_server, ssize_t got, int want)
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

static inline mux_frame fr(mux_frame_type type, uint32_t id)
{
    mux_frame f;
    memset(&f, 0, sizeof(f));
    f.type = type;
    f.stream_id = id;
    return f;
}
static inline int32_t open_simple(pair *p, uint32_t flags)
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

#endif
