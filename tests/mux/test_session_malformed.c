/*
 * tunnelmux — mux session suite, malformed input: hand-crafted envelopes and WebSocket frames that
 * must fail the connection with their error code (and the lingering close), and the legal races
 * that must not. Two sessions talk in memory through tests/mux/session_pair.h with a fake clock.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "check_main.h"
#include "mux/session_pair.h"

/* ---------------------------------------------------------------- hand-crafted input */

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

Suite *make_suite(void);
Suite *make_suite(void)
{
    Suite *s = suite_create("session_malformed");
    TCase *tc = tcase_create("malformed");
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
    return s;
}

TM_CHECK_MAIN(make_suite)
