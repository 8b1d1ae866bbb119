/*
 * tunnelmux — out-of-memory sweep of the mux session (nghttp2 failmalloc style).
 *
 * One scenario — handshake, three request/response exchanges with bodies in both directions, a
 * GOAWAY and the drain to close — is first run with a counting allocator to learn how many
 * allocations each side makes. Then it is run again once per allocation index, failing that
 * allocation on one side (all later ones too: "persistent"; or that one only: "transient"),
 * with and without zstd. Every run must:
 *   - return only documented errors from the API calls (MUX_ERR_NOMEM, or a fatal code after which
 *     the session wants to close), never crash or loop;
 *   - fire on_stream_close exactly once for every stream that either side saw open, unless the
 *     session was deleted with the stream still open (mux_session_del calls no callbacks);
 *   - leave no block allocated through the session's mux_mem after mux_session_del (ASan checks
 *     the rest in the sanitized build).
 * A transient failure must not lose data silently: a stream that both sides closed with NO_ERROR
 * delivered every byte in order.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check_main.h"
#include "mux/failmalloc.h"
#include "mux/mux.h"
#include "mux/peer.h"

#define NSTREAMS 3
#define REQ_BYTES (96 * 1024)
#define RESP_BYTES (160 * 1024)
#define MAX_ROUNDS 4000

typedef struct {
    int opened; /* this side saw the stream start (server: open_stream succeeded; client: on_head) */
    int closes; /* on_stream_close calls */
    unsigned close_code;
    uint64_t rx, tx; /* payload bytes received (pattern-checked) / queued */
    int rx_ended, tx_ended;
    int responded; /* client: response head sent */
    int bad;       /* pattern mismatch */
} sw_stream;

typedef struct {
    mux_session *s;
    int server;
    sw_stream st[NSTREAMS];
    int undocumented; /* an API call returned an error outside the documented set */
    int fatal_seen;   /* a call returned a fatal (connection-level) error */
    int last_error;
} sw_side;

static sw_stream *sw_of(sw_side *d, uint32_t id)
{
    if (id == 0 || (id & 1) == 0 || (id - 1) / 2 >= NSTREAMS)
        return NULL;
    return &d->st[(id - 1) / 2];
}

/* Records |rv| when it is an error; flags errors the API does not document. */
static int sw_check(sw_side *d, long rv)
{
    if (rv >= 0 || rv == MUX_ERR_AGAIN)
        return 0;
    d->last_error = (int)rv;
    if (mux_is_fatal((int)rv))
        d->fatal_seen = 1;
    if (rv == MUX_ERR_NOMEM && mux_session_want_close(d->s)) {
        /* err.h: NOMEM leaves the session usable; an allocation failure it cannot survive is INTERNAL */
        fprintf(stderr, "NOMEM returned by a session that wants to close (%s side)\n", d->server ? "server" : "client");
        d->undocumented = 1;
    }
    if (rv != MUX_ERR_NOMEM && !mux_is_fatal((int)rv) && rv != MUX_ERR_GOAWAY && rv != MUX_ERR_STREAM_NOT_FOUND &&
        rv != MUX_ERR_INVALID_STATE) {
        fprintf(stderr, "undocumented error %ld (%s) on the %s side\n", rv, mux_session_last_error_reason(d->s),
                d->server ? "server" : "client");
        d->undocumented = 1;
    }
    return -1;
}

static int cb_hello(mux_session *s, const mux_hello_info *h, void *ud)
{
    return sw_check(ud, mux_session_accept(s, "http://demo.example.com"));
}

static void pump_body(sw_side *d, uint32_t id, uint64_t total)
{
    sw_stream *st = sw_of(d, id);
    uint8_t chunk[8192];
    while (st != NULL && !st->tx_ended && st->tx < total) {
        size_t n = total - st->tx < sizeof(chunk) ? (size_t)(total - st->tx) : sizeof(chunk);
        peer_pattern_fill(chunk, n, id, d->server, st->tx);
        ssize_t w = mux_session_write(d->s, id, chunk, n);
        if (w == MUX_ERR_AGAIN)
            return; /* on_writable continues */
        if (sw_check(d, w) != 0)
            return;
        st->tx += (uint64_t)w;
    }
    if (st != NULL && !st->tx_ended && st->tx == total) {
        st->tx_ended = 1;
        sw_check(d, mux_session_end_stream(d->s, id));
    }
}

static int cb_head(mux_session *s, uint32_t id, const mux_head *head, void *sud, void *ud)
{
    sw_side *d = ud;
    sw_stream *st = sw_of(d, id);
    if (st == NULL)
        return -1;
    if (d->server)
        return 0; /* the response head */
    st->opened = 1;
    static const mux_header hdr[] = {{{(uint8_t *)"content-type", 12}, {(uint8_t *)"application/octet-stream", 24}}};
    mux_head resp = {0};
    resp.status = 200;
    resp.reason = (mux_iovec){(uint8_t *)"OK", 2};
    resp.headers = hdr;
    resp.nheaders = 1;
    if (sw_check(d, mux_session_respond(s, id, &resp)) != 0)
        return -1;
    st->responded = 1;
    pump_body(d, id, RESP_BYTES);
    return 0;
}

static int cb_data(mux_session *s, uint32_t id, const uint8_t *data, size_t len, void *sud, void *ud)
{
    sw_side *d = ud;
    sw_stream *st = sw_of(d, id);
    if (st == NULL)
        return -1;
    if (peer_pattern_check(data, len, id, !d->server, st->rx) != len)
        st->bad = 1;
    st->rx += len;
    sw_check(d, mux_session_consume(s, id, len));
    return 0;
}

static int cb_end(mux_session *s, uint32_t id, void *sud, void *ud)
{
    sw_stream *st = sw_of(ud, id);
    if (st != NULL)
        st->rx_ended = 1;
    return 0;
}

static void cb_close(mux_session *s, uint32_t id, unsigned code, const char *reason, int by_peer, void *sud, void *ud)
{
    sw_stream *st = sw_of(ud, id);
    if (st != NULL) {
        st->closes++;
        st->close_code = code;
    }
}

static void cb_writable(mux_session *s, uint32_t id, void *sud, void *ud)
{
    sw_side *d = ud;
    pump_body(d, id, d->server ? REQ_BYTES : RESP_BYTES);
}

static const mux_session_callbacks sw_callbacks = {
    .on_hello = cb_hello,
    .on_head = cb_head,
    .on_data = cb_data,
    .on_end = cb_end,
    .on_stream_close = cb_close,
    .on_writable = cb_writable,
};

typedef struct {
    long server_allocs, client_allocs; /* successful allocations (a run without failures) */
    long failures;                     /* allocations refused in this run */
    int completed;                     /* every stream ended cleanly on both sides */
    int connection_lost;               /* the failure was fatal to the connection */
} sw_result;

/*
 * Runs the scenario. |fail_side| 0 = server, 1 = client, -1 = none; the failing side allocates
 * through a failmalloc with |fail_at| / |once|.
 */
static void run_scenario(int zstd, int fail_side, long fail_at, int once, sw_result *res)
{
    failmalloc fm[2];
    mux_mem mem[2] = {failmalloc_mem(&fm[0], fail_side == 0 ? fail_at : -1, once),
                      failmalloc_mem(&fm[1], fail_side == 1 ? fail_at : -1, once)};
    sw_side side[2];
    memset(side, 0, sizeof(side));
    side[0].server = 1;
    peer_net net;
    peer_net_init(&net, 0x5eed0000u); /* same cuts in every run: the allocation sequence is the same up to the failure */
    net.now = 1000;

    mux_session_options o[2];
    mux_session_options_default(&o[0], MUX_ROLE_SERVER);
    mux_session_options_default(&o[1], MUX_ROLE_CLIENT);
    for (int i = 0; i < 2; i++) {
        o[i].enable_zstd = zstd;
        o[i].initial_stream_window = 64 * 1024; /* several WINDOW rounds per stream */
        o[i].stream_send_buffer = 32 * 1024;
    }
    o[1].client_id = "demo";
    o[1].software = "failmalloc-sweep";

    int rv0 = mux_session_new(&side[0].s, &o[0], &sw_callbacks, &mem[0], &side[0], net.now);
    int rv1 = rv0 == 0 ? mux_session_new(&side[1].s, &o[1], &sw_callbacks, &mem[1], &side[1], net.now) : 0;
    if (rv0 != 0 || rv1 != 0) {
        ck_assert_int_eq(rv0 != 0 ? rv0 : rv1, MUX_ERR_NOMEM);
        goto out;
    }

    int opened = 0, goaway_sent = 0;
    for (int round = 0; round < MAX_ROUNDS; round++) {
        net.now += 1;
        ssize_t a = transmit(&net, side[1].s, side[0].s, 4096, 1);
        if (a < 0)
            sw_check(a == -1 ? &side[1] : &side[0], a == -1 ? MUX_ERR_INTERNAL : a);
        ssize_t b = transmit(&net, side[0].s, side[1].s, 4096, 0);
        if (b < 0)
            sw_check(b == -1 ? &side[0] : &side[1], b == -1 ? MUX_ERR_INTERNAL : b);
        for (int i = 0; i < 2; i++)
            if (mux_session_next_timeout(side[i].s) >= 0 && mux_session_next_timeout(side[i].s) <= net.now)
                sw_check(&side[i], mux_session_handle_timeout(side[i].s, net.now));

        if (!opened && mux_session_is_established(side[0].s)) {
            opened = 1;
            for (int k = 0; k < NSTREAMS; k++) {
                static const mux_header hdr[] = {{{(uint8_t *)"accept", 6}, {(uint8_t *)"*/*", 3}}};
                mux_head h = {0};
                h.method = (mux_iovec){(uint8_t *)"POST", 4};
                h.scheme = (mux_iovec){(uint8_t *)"https", 5};
                h.authority = (mux_iovec){(uint8_t *)"demo.example.com", 16};
                h.path = (mux_iovec){(uint8_t *)"/upload", 7};
                h.headers = hdr;
                h.nheaders = 1;
                int32_t id = mux_session_open_stream(side[0].s, &h, NULL);
                if (sw_check(&side[0], id) != 0)
                    continue;
                ck_assert_ptr_nonnull(sw_of(&side[0], (uint32_t)id));
                sw_of(&side[0], (uint32_t)id)->opened = 1;
                pump_body(&side[0], (uint32_t)id, REQ_BYTES);
            }
        }
        /* after a transient NOMEM the session stays usable: writers retry, as the daemons do on
         * their next writable event */
        for (int i = 0; i < 2; i++)
            for (int k = 0; k < NSTREAMS; k++) {
                sw_stream *st = &side[i].st[k];
                if (st->opened && st->closes == 0 && !st->tx_ended && (i == 0 || st->responded) &&
                    !mux_session_want_close(side[i].s))
                    pump_body(&side[i], (uint32_t)(2 * k + 1), i == 0 ? REQ_BYTES : RESP_BYTES);
            }
        int busy = 0;
        for (int k = 0; k < NSTREAMS; k++)
            for (int i = 0; i < 2; i++)
                if (side[i].st[k].opened && side[i].st[k].closes == 0)
                    busy = 1;
        if (opened && !busy && !goaway_sent) {
            goaway_sent = 1;
            sw_check(&side[0], mux_session_goaway(side[0].s, MUX_CODE_NO_ERROR, "done"));
        }
        if (a == 0 && b == 0 && !mux_session_want_write(side[0].s) && !mux_session_want_write(side[1].s) &&
            (goaway_sent || mux_session_want_close(side[0].s) || mux_session_want_close(side[1].s)))
            break;
    }

    /* Documented errors only; one close per stream seen open, unless deleted open. */
    ck_assert_msg(!side[0].undocumented && !side[1].undocumented, "undocumented error (fail_side %d at %ld once %d zstd %d)",
                  fail_side, fail_at, once, zstd);
    int all_clean = opened;
    for (int k = 0; k < NSTREAMS; k++)
        for (int i = 0; i < 2; i++) {
            sw_stream *st = &side[i].st[k];
            ck_assert_int_le(st->closes, 1);
            ck_assert_msg(!st->bad, "stream %d: bytes out of order on the %s side", 2 * k + 1, i == 0 ? "server" : "client");
            if (!side[0].st[k].opened || st->closes != 1 || st->close_code != MUX_CODE_NO_ERROR)
                all_clean = 0;
            if (st->closes == 1 && st->close_code == MUX_CODE_NO_ERROR) {
                /* a cleanly closed stream delivered everything */
                ck_assert_int_eq(st->rx, i == 0 ? RESP_BYTES : REQ_BYTES);
                ck_assert(st->rx_ended);
            }
        }
    if (fail_side < 0)
        ck_assert_msg(all_clean, "the scenario does not complete without failures");
    res->completed = all_clean;
    res->connection_lost = side[0].fatal_seen || side[1].fatal_seen;

out:
    for (int i = 0; i < 2; i++)
        if (side[i].s != NULL)
            mux_session_del(side[i].s);
    peer_net_free(&net);
    for (int i = 0; i < 2; i++)
        ck_assert_msg(fm[i].live == 0, "%ld blocks leaked by the %s (fail_side %d at %ld once %d zstd %d)", fm[i].live,
                      i == 0 ? "server" : "client", fail_side, fail_at, once, zstd);
    res->server_allocs = fm[0].allocs;
    res->client_allocs = fm[1].allocs;
    res->failures = fm[0].failures + fm[1].failures;
}

static void sweep(int zstd, int fail_side, int once)
{
    sw_result base = {0};
    run_scenario(zstd, -1, -1, 0, &base);
    long n = fail_side == 0 ? base.server_allocs : base.client_allocs;
    ck_assert_int_gt(n, 10);
    long completed = 0, failed_runs = 0, lost = 0;
    for (long at = 0; at <= n; at++) {
        sw_result r = {0};
        run_scenario(zstd, fail_side, at, once, &r);
        completed += r.completed;
        lost += r.connection_lost;
        failed_runs += r.failures > 0;
    }
    /* the sweep really failed allocations (a scenario that stopped allocating would test nothing) */
    ck_assert_int_ge(failed_runs, n);
    fprintf(stderr,
            "failmalloc sweep: %s side, zstd %d, %s: %ld allocations; runs that still completed every stream %ld, "
            "that lost the connection %ld\n",
            fail_side == 0 ? "server" : "client", zstd, once ? "transient" : "persistent", n, completed, lost);
}

/* _i: bit 0 zstd, bit 1 the failing side (0 server, 1 client), bit 2 transient (once) */
START_TEST(test_sweep)
{
    sweep(_i & 1, (_i >> 1) & 1, (_i >> 2) & 1);
}
END_TEST

START_TEST(test_allocator_counts)
{
    /* the allocator itself: index-based failure, once vs from-then-on, live-block count */
    failmalloc fm;
    mux_mem m = failmalloc_mem(&fm, 1, 1);
    void *a = m.malloc(8, m.user_data);
    void *b = m.malloc(8, m.user_data);
    void *c = m.calloc(2, 8, m.user_data);
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_null(b);
    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(fm.live, 2);
    m.free(a, m.user_data);
    m.free(c, m.user_data);
    ck_assert_int_eq(fm.live, 0);
    m = failmalloc_mem(&fm, 1, 0);
    a = m.malloc(8, m.user_data);
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_null(m.realloc(NULL, 8, m.user_data));
    ck_assert_ptr_null(m.malloc(8, m.user_data));
    ck_assert_int_eq(fm.failures, 2);
    m.free(a, m.user_data);
    ck_assert_int_eq(fm.live, 0);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("failmalloc");
    TCase *tc = tcase_create("sweep");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_allocator_counts);
    tcase_add_loop_test(tc, test_sweep, 0, 8);
    suite_add_tcase(s, tc);
    return s;
}

TM_CHECK_MAIN(make_suite)
