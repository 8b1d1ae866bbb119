/*
 * tunnelmux — mux session suite, compression context lifecycle: contexts created on use, released
 * after the (jittered) idle period, senders that never end their frame. Two sessions talk in memory
 * through tests/mux/session_pair.h with a fake clock.
 */
#include <check.h>
#include <string.h>

#include "check_main.h"
#include "mux/session_pair.h"

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

Suite *make_suite(void);
Suite *make_suite(void)
{
    Suite *s = suite_create("session_zstd_context");
    TCase *tc = tcase_create("lifecycle");
    tcase_add_test(tc, test_zstd_small_messages_plain);
    tcase_add_test(tc, test_zstd_idle_release);
    tcase_add_test(tc, test_zstd_old_sender);
    tcase_add_test(tc, test_zstd_idle_jitter);
    suite_add_tcase(s, tc);
    return s;
}

TM_CHECK_MAIN(make_suite)
