/*
 * tunnelmux — tests of the streaming zstd codec (src/mux/zstd_codec.c).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <zstd.h>

#include "check_main.h"
#include "mux/failmalloc.h"
#include "zstd_codec.h"

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static uint32_t next_rand(uint32_t *seed)
{
    *seed = *seed * 1103515245u + 12345u;
    return *seed >> 8;
}

/* A header-like message like the ones a tunnel carries (deterministic pseudo-random fields). */
static size_t header_message(char *out, size_t cap, int i, uint32_t *seed)
{
    static const char *paths[] = {"/api/v1/users", "/api/v1/orders/", "/static/app.js", "/healthz", "/api/v2/search?q="};
    uint32_t r[6];
    for (int k = 0; k < 6; k++)
        r[k] = next_rand(seed);
    int n = snprintf(out, cap,
                     "method=%s path=%s%u host=myapp%d.example.com user-agent=Mozilla/5.0 (X11; Linux x86_64) "
                     "curl/7.88.1 accept=application/json x-request-id=%08x-%04x cookie=sid=%08x%08x "
                     "content-length=%u\n",
                     i % 4 ? "GET" : "POST", paths[i % 5], r[0] % 100000, i % 3, r[1], r[2] & 0xffff, r[3], r[4], r[5] % 5000);
    return (size_t)n;
}

/* ---------------------------------------------------------------- tests */

START_TEST(test_args)
{
    mux_zstd_tx *tx;
    mux_zstd_rx *rx;
    ck_assert_int_eq(mux_zstd_tx_new(&tx, 0, 17, NULL), MUX_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(mux_zstd_tx_new(&tx, 20, 17, NULL), MUX_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(mux_zstd_tx_new(&tx, 3, 9, NULL), MUX_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(mux_zstd_tx_new(&tx, 3, 21, NULL), MUX_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(mux_zstd_rx_new(&rx, 9, NULL), MUX_ERR_INVALID_ARGUMENT);
    mux_zstd_tx_del(NULL);
    mux_zstd_rx_del(NULL);
}
END_TEST

START_TEST(test_many_messages_ratio)
{
    failmalloc a;
    mux_mem mem = failmalloc_mem(&a, -1, 0);
    mux_zstd_tx *tx;
    mux_zstd_rx *rx;
    ck_assert_int_eq(mux_zstd_tx_new(&tx, 3, 17, &mem), 0);
    ck_assert_int_eq(mux_zstd_rx_new(&rx, 17, &mem), 0);
    mux_buf c, d;
    mux_buf_init(&c);
    mux_buf_init(&d);
    uint32_t seed = 1;
    size_t raw = 0, comp = 0;
    for (int i = 0; i < 1000; i++) {
        char msg[512];
        size_t n = header_message(msg, sizeof(msg), i, &seed);
        raw += n;
        /* split over two iovecs: the compressor sees their concatenation */
        mux_iovec iov[2] = {{(uint8_t *)msg, n / 3}, {(uint8_t *)msg + n / 3, n - n / 3}};
        int reset = -1;
        mux_buf_reset(&c);
        ck_assert_int_eq(mux_zstd_tx_compress(tx, iov, 2, &c, &reset, &mem), 0);
        ck_assert_int_eq(reset, i == 0);
        size_t live_tx = a.live_bytes;
        comp += mux_buf_size(&c);
        mux_buf_reset(&d);
        ck_assert_int_eq(mux_zstd_rx_decompress(rx, c.base + c.pos, mux_buf_size(&c), reset, &d, 4096, &mem), 0);
        ck_assert_uint_eq(mux_buf_size(&d), n);
        ck_assert(memcmp(d.base + d.pos, msg, n) == 0);
        if (i == 0)
            printf("zstd contexts (level 3, window 17), live through mux_mem after one message: compressor %.2f MiB, "
                   "decompressor %.2f MiB\n",
                   (double)(live_tx - c.cap) / (1 << 20), (double)(a.live_bytes - live_tx - d.cap) / (1 << 20));
    }
    double ratio = (double)raw / (double)comp;
    printf("zstd: 1000 header-like messages, level 3, window 17: %zu -> %zu bytes, ratio %.2f\n", raw, comp, ratio);
    ck_assert(ratio > 2.5);

    /* appending to a buffer that already holds bytes keeps them */
    mux_buf_reset(&d);
    ck_assert_int_eq(mux_buf_append(&d, "head", 4, 0, &mem), 0);
    mux_iovec one = {(uint8_t *)"tail", 4};
    int reset;
    mux_buf_reset(&c);
    ck_assert_int_eq(mux_zstd_tx_compress(tx, &one, 1, &c, &reset, &mem), 0);
    ck_assert_int_eq(mux_zstd_rx_decompress(rx, c.base, c.len, reset, &d, 4, &mem), 0);
    ck_assert_uint_eq(mux_buf_size(&d), 8);
    ck_assert(memcmp(d.base + d.pos, "headtail", 8) == 0);
    /* an empty message is a valid flush too */
    mux_buf_reset(&c);
    ck_assert_int_eq(mux_zstd_tx_compress(tx, NULL, 0, &c, &reset, &mem), 0);
    mux_buf_reset(&d);
    ck_assert_int_eq(mux_zstd_rx_decompress(rx, c.base, c.len, reset, &d, 10, &mem), 0);
    ck_assert_uint_eq(mux_buf_size(&d), 0);

    mux_buf_free(&c, &mem);
    mux_buf_free(&d, &mem);
    mux_zstd_tx_del(tx);
    mux_zstd_rx_del(rx);
    ck_assert_int_eq(a.live, 0);
    ck_assert_uint_eq(a.live_bytes, 0);
}
END_TEST

/* Compresses |s| as one message; returns reset. */
static int compress_str(mux_zstd_tx *tx, const char *s, mux_buf *c)
{
    mux_iovec iov = {(uint8_t *)(uintptr_t)s, strlen(s)};
    int reset = -1;
    mux_buf_reset(c);
    ck_assert_int_eq(mux_zstd_tx_compress(tx, &iov, 1, c, &reset, NULL), 0);
    return reset;
}

START_TEST(test_reset)
{
    mux_zstd_tx *tx;
    mux_zstd_rx *rx;
    ck_assert_int_eq(mux_zstd_tx_new(&tx, 3, 17, NULL), 0);
    ck_assert_int_eq(mux_zstd_rx_new(&rx, 17, NULL), 0);
    mux_buf c, d;
    mux_buf_init(&c);
    mux_buf_init(&d);
    const char *m1 = "GET /index.html HTTP/1.1 host: example.com";

    ck_assert_int_eq(compress_str(tx, m1, &c), 1);
    ck_assert_int_eq(mux_zstd_rx_decompress(rx, c.base, c.len, 1, &d, 1000, NULL), 0);
    ck_assert_int_eq(compress_str(tx, m1, &c), 0);
    mux_buf_reset(&d);
    ck_assert_int_eq(mux_zstd_rx_decompress(rx, c.base, c.len, 0, &d, 1000, NULL), 0);
    ck_assert_uint_eq(d.len, strlen(m1));

    /* sender releases: the next message starts a new frame (RESET), receiver keeps its context */
    mux_zstd_tx_release(tx);
    mux_zstd_tx_release(tx); /* idempotent */
    ck_assert_int_eq(compress_str(tx, m1, &c), 1);
    mux_buf_reset(&d);
    ck_assert_int_eq(mux_zstd_rx_decompress(rx, c.base, c.len, 1, &d, 1000, NULL), 0);
    ck_assert(d.len == strlen(m1) && memcmp(d.base, m1, d.len) == 0);

    /* a new frame delivered without the RESET bit is an error (the decoder is mid-frame) */
    mux_zstd_tx_release(tx);
    ck_assert_int_eq(compress_str(tx, m1, &c), 1);
    mux_buf_reset(&d);
    ck_assert_int_eq(mux_zstd_rx_decompress(rx, c.base, c.len, 0, &d, 1000, NULL), MUX_ERR_DECOMPRESS);
    ck_assert_uint_eq(mux_buf_size(&d), 0);

    /* both sides release: start over in step */
    mux_zstd_tx_release(tx);
    mux_zstd_rx_release(rx);
    ck_assert_int_eq(compress_str(tx, m1, &c), 1);
    mux_buf_reset(&d);
    ck_assert_int_eq(mux_zstd_rx_decompress(rx, c.base, c.len, 1, &d, 1000, NULL), 0);
    ck_assert_int_eq(compress_str(tx, "second", &c), 0);
    mux_buf_reset(&d);
    ck_assert_int_eq(mux_zstd_rx_decompress(rx, c.base, c.len, 0, &d, 1000, NULL), 0);
    ck_assert(d.len == 6 && memcmp(d.base, "second", 6) == 0);

    /* a fresh or released receiver needs RESET on its first message */
    mux_zstd_tx_release(tx);
    mux_zstd_rx_release(rx);
    ck_assert_int_eq(compress_str(tx, m1, &c), 1);
    mux_buf_reset(&d);
    ck_assert_int_eq(mux_zstd_rx_decompress(rx, c.base, c.len, 0, &d, 1000, NULL), MUX_ERR_DECOMPRESS);
    ck_assert_int_eq(mux_zstd_rx_decompress(rx, c.base, c.len, 1, &d, 1000, NULL), 0);

    /* receiver released while the sender kept its history: the continuation fails */
    mux_zstd_rx_release(rx);
    ck_assert_int_eq(compress_str(tx, "third", &c), 0);
    mux_buf_reset(&d);
    ck_assert_int_eq(mux_zstd_rx_decompress(rx, c.base, c.len, 0, &d, 1000, NULL), MUX_ERR_DECOMPRESS);

    mux_buf_free(&c, NULL);
    mux_buf_free(&d, NULL);
    mux_zstd_tx_del(tx);
    mux_zstd_rx_del(rx);
}
END_TEST

/* What a receiver before the idle frame end (PROTOCOL.md §3.2) did with a message: one
 * decompressor for the life of the connection, reset on R, never freed. Returns bytes produced. */
static size_t old_receiver(ZSTD_DCtx *dctx, const mux_buf *c, int reset, char *out, size_t cap)
{
    if (reset)
        ZSTD_DCtx_reset(dctx, ZSTD_reset_session_only);
    ZSTD_inBuffer ib = {c->base + c->pos, mux_buf_size(c), 0};
    ZSTD_outBuffer ob = {out, cap, 0};
    while (ib.pos < ib.size) {
        size_t r = ZSTD_decompressStream(dctx, &ob, &ib);
        ck_assert_msg(!ZSTD_isError(r), "old receiver: %s", ZSTD_getErrorName(r));
    }
    return ob.pos;
}

/* The idle frame end: the sender ends its frame in a message that decompresses to nothing and
 * frees its context; a current receiver frees its own on seeing the frame end, re-creates it on
 * the next message (which carries R), and an old receiver (context kept) decodes the same bytes. */
START_TEST(test_frame_end)
{
    failmalloc a;
    mux_mem m = failmalloc_mem(&a, -1, 0);
    mux_zstd_tx *tx;
    mux_zstd_rx *rx;
    ck_assert_int_eq(mux_zstd_tx_new(&tx, 3, 17, &m), 0);
    ck_assert_int_eq(mux_zstd_rx_new(&rx, 17, &m), 0);
    ZSTD_DCtx *old = ZSTD_createDCtx();
    mux_buf c, d;
    mux_buf_init(&c);
    mux_buf_init(&d);
    char o[256];
    const char *m1 = "GET /index.html HTTP/1.1 host: example.com accept: text/html";
    const char *m2 = "GET /index.html HTTP/1.1 host: example.com accept: text/css";

    for (int round = 0; round < 3; round++) {
        ck_assert_int_eq(compress_str(tx, m1, &c), 1); /* a new frame: R */
        ck_assert(mux_zstd_tx_live(tx));
        mux_buf_reset(&d);
        ck_assert_int_eq(mux_zstd_rx_decompress(rx, c.base, c.len, 1, &d, 1000, &m), 0);
        ck_assert(d.len == strlen(m1) && memcmp(d.base, m1, d.len) == 0);
        ck_assert_uint_eq(old_receiver(old, &c, 1, o, sizeof(o)), strlen(m1));
        ck_assert(mux_zstd_rx_live(rx));
        ck_assert_int_eq(compress_str(tx, m2, &c), 0); /* continues the frame */
        mux_buf_reset(&d);
        ck_assert_int_eq(mux_zstd_rx_decompress(rx, c.base, c.len, 0, &d, 1000, &m), 0);
        ck_assert(d.len == strlen(m2) && memcmp(d.base, m2, d.len) == 0);
        ck_assert_uint_eq(old_receiver(old, &c, 0, o, sizeof(o)), strlen(m2));
        ck_assert(mux_zstd_rx_live(rx)); /* a flushed message does not end the frame */

        /* idle: end the frame; a few bytes, nothing decoded, both contexts gone */
        mux_buf_reset(&c);
        ck_assert_int_eq(mux_zstd_tx_end(tx, &c, &m), 0);
        ck_assert_uint_gt(c.len, 0);
        ck_assert_uint_le(c.len, 8);
        ck_assert(!mux_zstd_tx_live(tx));
        mux_buf_reset(&d);
        ck_assert_int_eq(mux_zstd_rx_decompress(rx, c.base, c.len, 0, &d, 1000, &m), 0);
        ck_assert_uint_eq(d.len, 0);
        ck_assert(!mux_zstd_rx_live(rx));
        ck_assert_uint_eq(old_receiver(old, &c, 0, o, sizeof(o)), 0);
        /* only the two objects and the output buffer |d| are left: no context on either side */
        ck_assert_int_eq(a.live, 3);
        ck_assert_uint_lt(a.live_bytes, d.cap + 1024);
        mux_buf_reset(&c);
        ck_assert_int_eq(mux_zstd_tx_end(tx, &c, &m), 0); /* nothing open: no-op */
        ck_assert_uint_eq(c.len, 0);
    }

    /* after a frame end the next message starts a new frame by construction: accepted without R
     * too (lenient, like an old receiver, whose decoder simply begins the next frame) */
    ck_assert_int_eq(compress_str(tx, m1, &c), 1);
    mux_buf_reset(&d);
    ck_assert_int_eq(mux_zstd_rx_decompress(rx, c.base, c.len, 0, &d, 1000, &m), 0);
    ck_assert(d.len == strlen(m1) && memcmp(d.base, m1, d.len) == 0);
    /* but once in a frame, a frame that is not a continuation still needs R */
    mux_zstd_tx_release(tx);
    ck_assert_int_eq(compress_str(tx, m2, &c), 1);
    mux_buf_reset(&d);
    ck_assert_int_eq(mux_zstd_rx_decompress(rx, c.base, c.len, 0, &d, 1000, &m), MUX_ERR_DECOMPRESS);

    ZSTD_freeDCtx(old);
    mux_buf_free(&c, NULL); /* compress_str grows it through libc */
    mux_buf_free(&d, &m);
    mux_zstd_tx_del(tx);
    mux_zstd_rx_del(rx);
    ck_assert_int_eq(a.live, 0);
}
END_TEST

START_TEST(test_exact_limit)
{
    mux_zstd_tx *tx;
    mux_zstd_rx *rx;
    ck_assert_int_eq(mux_zstd_tx_new(&tx, 1, 17, NULL), 0);
    ck_assert_int_eq(mux_zstd_rx_new(&rx, 17, NULL), 0);
    static uint8_t msg[300000];
    for (size_t i = 0; i < sizeof(msg); i++)
        msg[i] = (uint8_t)((i * 2654435761u) >> 13);
    mux_iovec iov = {msg, sizeof(msg)};
    mux_buf c, d;
    mux_buf_init(&c);
    mux_buf_init(&d);
    int reset;
    /* exactly max_out: accepted */
    ck_assert_int_eq(mux_zstd_tx_compress(tx, &iov, 1, &c, &reset, NULL), 0);
    ck_assert_int_eq(mux_zstd_rx_decompress(rx, c.base, c.len, reset, &d, sizeof(msg), NULL), 0);
    ck_assert_uint_eq(d.len, sizeof(msg));
    ck_assert(memcmp(d.base, msg, sizeof(msg)) == 0);
    ck_assert_uint_le(d.cap, sizeof(msg));
    /* one byte less: over the limit */
    mux_buf_reset(&c);
    ck_assert_int_eq(mux_zstd_tx_compress(tx, &iov, 1, &c, &reset, NULL), 0);
    mux_buf_free(&d, NULL);
    ck_assert_int_eq(mux_zstd_rx_decompress(rx, c.base, c.len, reset, &d, sizeof(msg) - 1, NULL), MUX_ERR_DECOMPRESS_LIMIT);
    ck_assert_uint_eq(d.len, 0);
    ck_assert_uint_le(d.cap, sizeof(msg) - 1);
    mux_buf_free(&c, NULL);
    mux_buf_free(&d, NULL);
    mux_zstd_tx_del(tx);
    mux_zstd_rx_del(rx);
}
END_TEST

START_TEST(test_bomb)
{
    /* 1 GiB of zeros in 1 MiB pieces, one message body */
    const size_t piece = 1 << 20, pieces = 1024, max_out = 10u << 20;
    uint8_t *zeros = calloc(1, piece);
    mux_iovec *iov = calloc(pieces, sizeof(*iov));
    for (size_t i = 0; i < pieces; i++) {
        iov[i].base = zeros;
        iov[i].len = piece;
    }
    mux_zstd_tx *tx;
    ck_assert_int_eq(mux_zstd_tx_new(&tx, 3, 20, NULL), 0);
    mux_buf c;
    mux_buf_init(&c);
    int reset;
    double t0 = now_s();
    ck_assert_int_eq(mux_zstd_tx_compress(tx, iov, pieces, &c, &reset, NULL), 0);
    double t1 = now_s();

    failmalloc a;
    mux_mem mem = failmalloc_mem(&a, -1, 0);
    mux_zstd_rx *rx;
    ck_assert_int_eq(mux_zstd_rx_new(&rx, 20, &mem), 0);
    mux_buf d;
    mux_buf_init(&d);
    ck_assert_int_eq(mux_zstd_rx_decompress(rx, c.base, c.len, reset, &d, max_out, &mem), MUX_ERR_DECOMPRESS_LIMIT);
    double t2 = now_s();
    printf("zstd bomb: 1 GiB of zeros -> %zu bytes (%.2f s); decompress with max_out 10 MiB: LIMIT after %.3f s, "
           "peak allocation %.2f MiB (output buffer cap %.2f MiB)\n",
           c.len, t1 - t0, t2 - t1, (double)a.peak_bytes / (1 << 20), (double)d.cap / (1 << 20));
    ck_assert_uint_le(d.cap, max_out);
    ck_assert_uint_le(a.peak_bytes, max_out + (3u << 19)); /* output + decoder context (~1.2 MiB at window 20) */
    ck_assert_uint_eq(d.len, 0);
    mux_buf_free(&d, &mem);
    mux_zstd_rx_del(rx);
    ck_assert_uint_eq(a.live_bytes, 0);
    mux_buf_free(&c, NULL);
    mux_zstd_tx_del(tx);
    free(iov);
    free(zeros);
}
END_TEST

START_TEST(test_corrupt)
{
    mux_zstd_rx *rx;
    ck_assert_int_eq(mux_zstd_rx_new(&rx, 17, NULL), 0);
    mux_buf d;
    mux_buf_init(&d);
    /* not a zstd frame */
    uint8_t junk[64];
    for (size_t i = 0; i < sizeof(junk); i++)
        junk[i] = (uint8_t)(i * 37 + 11);
    ck_assert_int_eq(mux_zstd_rx_decompress(rx, junk, sizeof(junk), 1, &d, 1 << 20, NULL), MUX_ERR_DECOMPRESS);
    ck_assert_uint_eq(d.len, 0);
    ck_assert_int_eq(mux_zstd_rx_window_too_large(rx), 0); /* corrupt, not a window problem */

    /* valid message followed by garbage (a reserved block type) */
    mux_zstd_tx *tx;
    ck_assert_int_eq(mux_zstd_tx_new(&tx, 3, 17, NULL), 0);
    mux_buf c;
    mux_buf_init(&c);
    compress_str(tx, "hello hello hello", &c);
    ck_assert_int_eq(mux_buf_append(&c, "\xff\xff\xff\xff", 4, 0, NULL), 0);
    ck_assert_int_eq(mux_zstd_rx_decompress(rx, c.base, c.len, 1, &d, 1 << 20, NULL), MUX_ERR_DECOMPRESS);
    ck_assert_uint_eq(d.len, 0);

    /* truncated frame header: nothing to output, input consumed, still "not complete" is fine;
     * a later message then continues; corrupt block contents fail */
    mux_buf_reset(&c);
    compress_str(tx, "abc", &c);
    c.base[c.len - 1] ^= 0x55;
    int rv = mux_zstd_rx_decompress(rx, c.base, c.len, 0, &d, 1 << 20, NULL);
    ck_assert(rv == MUX_ERR_DECOMPRESS || rv == 0);

    mux_buf_free(&c, NULL);
    mux_buf_free(&d, NULL);
    mux_zstd_tx_del(tx);
    mux_zstd_rx_del(rx);
}
END_TEST

START_TEST(test_window_too_large)
{
    /* a peer compressing with window log 27 against our cap of 20 */
    ZSTD_CCtx *cc = ZSTD_createCCtx();
    ZSTD_CCtx_setParameter(cc, ZSTD_c_compressionLevel, 3);
    ZSTD_CCtx_setParameter(cc, ZSTD_c_windowLog, 27);
    static uint8_t src[1 << 16], dst[1 << 17];
    for (size_t i = 0; i < sizeof(src); i++)
        src[i] = (uint8_t)(i % 251);
    ZSTD_inBuffer in = {src, sizeof(src), 0};
    ZSTD_outBuffer out = {dst, sizeof(dst), 0};
    size_t r = ZSTD_compressStream2(cc, &out, &in, ZSTD_e_flush);
    ck_assert(!ZSTD_isError(r) && r == 0);
    ZSTD_freeCCtx(cc);

    mux_zstd_rx *rx;
    ck_assert_int_eq(mux_zstd_rx_new(&rx, 20, NULL), 0);
    mux_buf d;
    mux_buf_init(&d);
    ck_assert_int_eq(mux_zstd_rx_decompress(rx, dst, out.pos, 1, &d, 10 << 20, NULL), MUX_ERR_DECOMPRESS);
    ck_assert_int_eq(mux_zstd_rx_window_too_large(rx), 1); /* told apart from corrupt data */
    mux_buf_free(&d, NULL);
    /* the same bytes against a cap of 27 decode */
    mux_zstd_rx *rx27;
    ck_assert_int_eq(mux_zstd_rx_new(&rx27, 27, NULL), 0);
    ck_assert_int_eq(mux_zstd_rx_decompress(rx27, dst, out.pos, 1, &d, 10 << 20, NULL), 0);
    ck_assert_uint_eq(d.len, sizeof(src));
    mux_buf_free(&d, NULL);
    mux_zstd_rx_del(rx27);
    mux_zstd_rx_del(rx);
}
END_TEST

START_TEST(test_nomem)
{
    static uint8_t msg[100000];
    for (size_t i = 0; i < sizeof(msg); i++)
        msg[i] = (uint8_t)((i * 7) ^ (i >> 5));
    mux_iovec iov = {msg, sizeof(msg)};
    failmalloc a;
    int ok = 0;
    for (long k = 0; k < 60 && !ok; k++) {
        mux_mem mem = failmalloc_mem(&a, k, 0);
        mux_zstd_tx *tx = NULL;
        mux_zstd_rx *rx = NULL;
        mux_buf c, d;
        mux_buf_init(&c);
        mux_buf_init(&d);
        int rv = mux_zstd_tx_new(&tx, 3, 17, &mem);
        if (rv == 0) {
            int reset;
            rv = mux_zstd_tx_compress(tx, &iov, 1, &c, &reset, &mem);
            ck_assert(rv == 0 || rv == MUX_ERR_NOMEM);
            if (rv == MUX_ERR_NOMEM)
                ck_assert_uint_eq(c.len, 0);
            if (rv == 0)
                rv = mux_zstd_rx_new(&rx, 17, &mem);
            if (rv == 0) {
                rv = mux_zstd_rx_decompress(rx, c.base, c.len, reset, &d, sizeof(msg), &mem);
                ck_assert(rv == 0 || rv == MUX_ERR_NOMEM || rv == MUX_ERR_INTERNAL);
                if (rv == 0)
                    ck_assert(d.len == sizeof(msg) && memcmp(d.base, msg, d.len) == 0);
                else
                    ck_assert_uint_eq(d.len, 0);
            }
        } else {
            ck_assert_int_eq(rv, MUX_ERR_NOMEM);
        }
        ok = rv == 0;
        mux_buf_free(&c, &mem);
        mux_buf_free(&d, &mem);
        mux_zstd_tx_del(tx);
        mux_zstd_rx_del(rx);
        ck_assert_int_eq(a.live, 0);
    }
    ck_assert(ok);
}
END_TEST

/* Compresses 64 KiB slices of |pool| (64 slices) through one stream for ~0.4 s, then decompresses
 * them all; prints ratio and MB/s. */
static void throughput(const char *what, const uint8_t *pool, int level)
{
    enum { MSG = 64 * 1024, MAXN = 2048 };
    mux_zstd_tx *tx;
    mux_zstd_rx *rx;
    ck_assert_int_eq(mux_zstd_tx_new(&tx, level, 17, NULL), 0);
    ck_assert_int_eq(mux_zstd_rx_new(&rx, 17, NULL), 0);
    mux_buf *cs = calloc(MAXN, sizeof(*cs));
    int *resets = calloc(MAXN, sizeof(int));
    double t0 = now_s(), t1 = t0;
    int n = 0;
    size_t comp = 0;
    while (n < MAXN && (n < 16 || t1 - t0 < 0.4)) {
        mux_iovec iov = {(uint8_t *)(uintptr_t)pool + (size_t)(n % 64) * MSG, MSG};
        mux_buf_init(&cs[n]);
        ck_assert_int_eq(mux_zstd_tx_compress(tx, &iov, 1, &cs[n], &resets[n], NULL), 0);
        comp += cs[n].len;
        mux_buf_shrink(&cs[n], 0, NULL); /* keep only the compressed bytes */
        n++;
        t1 = now_s();
    }
    mux_buf d;
    mux_buf_init(&d);
    double t2 = now_s();
    for (int i = 0; i < n; i++) {
        mux_buf_reset(&d);
        ck_assert_int_eq(mux_zstd_rx_decompress(rx, cs[i].base, cs[i].len, resets[i], &d, MSG, NULL), 0);
        ck_assert_uint_eq(d.len, MSG);
        ck_assert(memcmp(d.base, pool + (size_t)(i % 64) * MSG, MSG) == 0);
    }
    double t3 = now_s();
    double mb = (double)n * MSG / 1e6;
    printf("zstd 64 KiB messages, %s (level %d, window 17): %d msgs, ratio %.2f, compress %.0f MB/s, decompress %.0f "
           "MB/s\n",
           what, level, n, (double)n * MSG / (double)comp, mb / (t1 - t0), mb / (t3 - t2));
    for (int i = 0; i < n; i++)
        mux_buf_free(&cs[i], NULL);
    free(cs);
    free(resets);
    mux_buf_free(&d, NULL);
    mux_zstd_tx_del(tx);
    mux_zstd_rx_del(rx);
}

START_TEST(test_throughput)
{
    enum { POOL = 64 * 64 * 1024 };
    uint8_t *pool = malloc(POOL);
    /* header-like text: distinct content, shared vocabulary */
    uint32_t seed = 7;
    size_t off = 0;
    for (int i = 0; off < POOL; i++) {
        char line[512];
        size_t n = header_message(line, sizeof(line), i, &seed);
        if (n > POOL - off)
            n = POOL - off;
        memcpy(pool + off, line, n);
        off += n;
    }
    throughput("header-like text", pool, 3);
    throughput("header-like text", pool, 1);
    /* incompressible (already compressed media) */
    for (size_t i = 0; i < POOL; i += 4) {
        uint32_t r = next_rand(&seed) ^ (next_rand(&seed) << 16);
        memcpy(pool + i, &r, 4);
    }
    throughput("random bytes", pool, 3);
    free(pool);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("zstd_codec");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_args);
    tcase_add_test(tc, test_many_messages_ratio);
    tcase_add_test(tc, test_reset);
    tcase_add_test(tc, test_frame_end);
    tcase_add_test(tc, test_exact_limit);
    tcase_add_test(tc, test_bomb);
    tcase_add_test(tc, test_corrupt);
    tcase_add_test(tc, test_window_too_large);
    tcase_add_test(tc, test_nomem);
    tcase_add_test(tc, test_throughput);
    suite_add_tcase(s, tc);
    return s;
}

TM_CHECK_MAIN(make_suite)
