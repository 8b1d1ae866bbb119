/*
 * tunnelmux — mux session suite, lifecycle: keepalive, GOAWAY, resets, refused streams, upgrades,
 * write backpressure, header limits, and the fuzz seed transcripts. Two sessions talk in memory
 * through tests/mux/session_pair.h with a fake clock.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>

#include "check_main.h"
#include "mux/session_pair.h"

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
    Suite *s = suite_create("session_lifecycle");
    TCase *tc = tcase_create("lifecycle");
    tcase_add_test(tc, test_keepalive_timeout);
    tcase_add_test(tc, test_ping_rtt);
    tcase_add_test(tc, test_goaway_drain);
    tcase_add_test(tc, test_goaway_from_client);
    tcase_add_test(tc, test_reset_both_ways);
    tcase_add_test(tc, test_refused_stream);
    tcase_add_test(tc, test_upgrade);
    tcase_add_test(tc, test_write_backpressure);
    tcase_add_test(tc, test_header_limit);
    tcase_add_test(tc, test_record_transcripts);
    suite_add_tcase(s, tc);
    return s;
}

TM_CHECK_MAIN(make_suite)
