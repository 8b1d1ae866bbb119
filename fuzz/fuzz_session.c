/*
 * tunnelmux — libFuzzer target for the mux session (include/mux/mux.h).
 *
 * Input: byte 0 = mode (bit 0: 0 SERVER session, 1 CLIENT session; bit 1: enable zstd; bit 2: the
 * harness first feeds a valid HELLO (server) / WELCOME (client) so the fuzzer starts established).
 * Then pieces: a length byte L (1..255: the next L bytes are transport input; 0: the clock moves
 * 5 s and timers run). After every piece the session's output is drained. The SERVER opens four
 * GET streams once established; the CLIENT answers every request with 200 + 400 bytes (compressed
 * when zstd is on: bodies under 256 bytes go plain, PROTOCOL.md §3.2). Both
 * consume delivered data at once. Seeds: fuzz/corpus/fuzz_session (transcripts recorded by
 * tests/mux/test_session_lifecycle.c, test_record_transcripts, with TM_FUZZ_CORPUS_DIR set).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "frame_codec.h"
#include "mux/mux.h"
#include "mux/ws.h"

typedef struct {
    mux_session *s;
    int server;
    int opened;
} fz;

static int on_hello(mux_session *s, const mux_hello_info *h, void *ud)
{
    return mux_session_accept(s, "https://fuzz.example.com");
}

static int on_head(mux_session *s, uint32_t id, const mux_head *head, void *sud, void *ud)
{
    fz *f = ud;
    if (f->server)
        return 0;
    mux_head r;
    memset(&r, 0, sizeof(r));
    r.status = (head->flags & MUX_HEAD_UPGRADE) ? 101 : 200;
    if (mux_session_respond(s, id, &r) == 0) {
        static const uint8_t body[400];
        mux_session_write(s, id, body, sizeof(body));
        mux_session_end_stream(s, id);
    }
    return 0;
}

static int on_data(mux_session *s, uint32_t id, const uint8_t *data, size_t len, void *sud, void *ud)
{
    mux_session_consume(s, id, len);
    return len == 7 ? 1 : 0; /* sometimes the application fails: reset path */
}

static void drain(mux_session *s, int64_t now)
{
    mux_iovec iov[64];
    for (int i = 0; i < 64; i++) {
        ssize_t n = mux_session_send(s, iov, 64, now);
        if (n <= 0)
            return;
        for (ssize_t k = 0; k < n; k++)
            if (iov[k].len != 0 && iov[k].base == NULL)
                abort();
        mux_session_send_done(s, now);
    }
}

static void feed_frame(mux_session *s, int server, const mux_frame *f, int64_t now)
{
    mux_buf env;
    mux_buf_init(&env);
    uint8_t hdr = 0x10;
    uint8_t ws[MUX_WS_MAX_HEADER];
    static const uint8_t key[4] = {1, 2, 3, 4};
    if (mux_buf_append(&env, &hdr, 1, 0, NULL) != 0 || mux_frame_encode(f, &env, NULL) != 0) {
        mux_buf_free(&env, NULL);
        return;
    }
    size_t hl = mux_ws_frame_header(ws, MUX_WS_OP_BINARY, 1, env.len, server ? key : NULL);
    uint8_t *msg = malloc(hl + env.len);
    if (msg != NULL) {
        memcpy(msg, ws, hl);
        memcpy(msg + hl, env.base, env.len);
        if (server)
            mux_ws_mask(msg + hl, env.len, key, 0);
        mux_session_recv(s, msg, hl + env.len, now);
        free(msg);
    }
    mux_buf_free(&env, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t mode = data[0];
    fz f = {NULL, !(mode & 1), 0};
    mux_session_options opt;
    mux_session_options_default(&opt, f.server ? MUX_ROLE_SERVER : MUX_ROLE_CLIENT);
    opt.enable_zstd = (mode & 2) != 0;
    opt.max_message_size = 1 << 20;
    opt.max_concurrent_streams = 8;
    opt.client_id = "fuzz";
    mux_session_callbacks cb;
    memset(&cb, 0, sizeof(cb));
    cb.on_hello = on_hello;
    cb.on_head = on_head;
    cb.on_data = on_data;
    int64_t now = 1000;
    if (mux_session_new(&f.s, &opt, &cb, NULL, &f, now) != 0)
        return 0;
    drain(f.s, now);
    if (mode & 4) {
        mux_frame fr;
        memset(&fr, 0, sizeof(fr));
        if (f.server) {
            fr.type = MUX_FRAME_HELLO;
            fr.hello.version = 1;
            fr.hello.client_id = "fuzz";
            fr.hello.auth_token = "";
            fr.hello.software = "";
            fr.hello.capabilities = opt.enable_zstd ? MUX_CAP_ZSTD : 0;
        } else {
            fr.type = MUX_FRAME_WELCOME;
            fr.welcome.version = 1;
            fr.welcome.capabilities = opt.enable_zstd ? MUX_CAP_ZSTD : 0;
            fr.welcome.public_url = "";
        }
        feed_frame(f.s, f.server, &fr, now);
        drain(f.s, now);
    }
    size_t off = 1;
    uint8_t *piece = malloc(256);
    if (piece == NULL) {
        mux_session_del(f.s);
        return 0;
    }
    while (off < size) {
        size_t len = data[off++];
        if (len == 0) {
            now += 5000;
            mux_session_handle_timeout(f.s, now);
        } else {
            if (len > size - off)
                len = size - off;
            memcpy(piece, data + off, len); /* recv unmasks in place: work on a copy */
            off += len;
            mux_session_recv(f.s, piece, len, now);
        }
        if (f.server && f.opened < 4 && mux_session_is_established(f.s) && !mux_session_want_close(f.s)) {
            mux_head h;
            memset(&h, 0, sizeof(h));
            h.method = (mux_iovec){(uint8_t *)"GET", 3};
            h.path = (mux_iovec){(uint8_t *)"/", 1};
            h.flags = MUX_HEAD_END_STREAM | (f.opened == 3 ? MUX_HEAD_UPGRADE : 0);
            while (f.opened < 4 && mux_session_open_stream(f.s, &h, NULL) > 0)
                f.opened++;
        }
        drain(f.s, now);
        (void)mux_session_next_timeout(f.s);
        (void)mux_session_want_write(f.s);
    }
    free(piece);
    mux_session_stats st;
    mux_session_get_stats(f.s, &st);
    mux_session_del(f.s);
    return 0;
}
