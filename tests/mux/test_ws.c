/*
 * tunnelmux — unit tests for src/mux/ws_frame.c and ws_handshake.c (RFC 6455 framing/handshake).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "check_main.h"
#include "mux/err.h"
#include "mux/ws.h"

/* ---------------------------------------------------------------- helpers */

/* ck_assert records a mark point (a pipe write in fork mode) even on success: hot loops use this,
 * which only calls into check on failure. */
#define HOT_CHECK(cond)                                                                                                            \
    do {                                                                                                                           \
        if (!(cond))                                                                                                               \
            ck_abort_msg("%s:%d: %s", __FILE__, __LINE__, #cond);                                                                  \
    } while (0)

/* Deterministic xorshift64 (state is the caller's). */
static uint64_t rnd(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

typedef struct {
    unsigned opcode;
    int fin;
    uint8_t *data; /* owned, frame_len bytes */
    size_t len;
} frame_out;

typedef struct {
    frame_out frames[64];
    size_t nframes;
    int partial;     /* 1 when the input ended inside a frame */
    const char *why; /* reason of the error, if any */
} decode_result;

static void result_free(decode_result *r)
{
    for (size_t i = 0; i < r->nframes; i++)
        free(r->frames[i].data);
    if (r->partial)
        free(r->frames[r->nframes].data);
    memset(r, 0, sizeof(*r));
}

enum { SPLIT_WHOLE = 0, SPLIT_ONE = 1, SPLIT_RANDOM = 2 };

/*
 * Decodes |n| bytes (copied; the decoder unmasks in place) fed in chunks by |mode|, checking the
 * piece invariants on the way. Returns 0 or the decoder's error; frames land in |r|.
 */
static int decode(int require_masked, uint64_t max, const uint8_t *bytes, size_t n, int mode, uint64_t seed, decode_result *r)
{
    memset(r, 0, sizeof(*r));
    uint8_t *in = malloc(n ? n : 1);
    HOT_CHECK(NULL != in);
    if (n)
        memcpy(in, bytes, n);
    mux_ws_decoder d;
    mux_ws_decoder_init(&d, require_masked, max);
    uint64_t s = seed | 1;
    frame_out *cur = NULL;
    size_t pos = 0;
    int rv = 0;
    while (pos < n) {
        size_t chunk = n - pos;
        if (mode == SPLIT_ONE)
            chunk = 1;
        else if (mode == SPLIT_RANDOM)
            chunk = 1 + (size_t)(rnd(&s) % 17);
        if (chunk > n - pos)
            chunk = n - pos;
        size_t off = 0;
        while (off < chunk) {
            mux_ws_piece piece;
            int has = 0;
            const char *why = NULL;
            ssize_t c = mux_ws_decoder_feed(&d, in + pos + off, chunk - off, &piece, &has, &why);
            if (c < 0) {
                HOT_CHECK(NULL != why);
                r->why = why;
                rv = (int)c;
                goto out;
            }
            HOT_CHECK((c) > (0)); /* progress on non-empty input */
            HOT_CHECK(((size_t)c) <= (chunk - off));
            if (has) {
                HOT_CHECK((piece.len) <= ((size_t)c));
                if (piece.len) /* the payload is the tail of what was consumed */
                    HOT_CHECK((piece.data) == (in + pos + off + (size_t)c - piece.len));
                else
                    HOT_CHECK(NULL == piece.data);
                if (piece.frame_start) {
                    HOT_CHECK(NULL == cur);
                    HOT_CHECK((r->nframes) < (63));
                    cur = &r->frames[r->nframes];
                    cur->opcode = piece.opcode;
                    cur->fin = piece.fin;
                    cur->data = malloc(piece.frame_len ? piece.frame_len : 1);
                    HOT_CHECK(NULL != cur->data);
                    cur->len = 0;
                    r->partial = 1;
                }
                HOT_CHECK(NULL != cur);
                HOT_CHECK((piece.opcode) == (cur->opcode));
                HOT_CHECK((cur->len + piece.len) <= (piece.frame_len));
                if (piece.len)
                    memcpy(cur->data + cur->len, piece.data, piece.len);
                cur->len += piece.len;
                HOT_CHECK((piece.frame_end) == (cur->len == piece.frame_len));
                if (piece.frame_end) {
                    r->nframes++;
                    r->partial = 0;
                    cur = NULL;
                }
            }
            off += (size_t)c;
        }
        pos += chunk;
    }
out:
    free(in);
    return rv;
}

typedef struct {
    unsigned opcode;
    int fin;
    const char *payload;
    size_t len;
} want_frame;

static void check_frames(const decode_result *r, const want_frame *w, size_t nw)
{
    HOT_CHECK((r->nframes) == (nw));
    HOT_CHECK((r->partial) == (0));
    for (size_t i = 0; i < nw; i++) {
        HOT_CHECK((r->frames[i].opcode) == (w[i].opcode));
        HOT_CHECK((r->frames[i].fin) == (w[i].fin));
        HOT_CHECK((r->frames[i].len) == (w[i].len));
        if (w[i].len)
            HOT_CHECK(memcmp(r->frames[i].data, w[i].payload, w[i].len) == 0);
    }
}

/* Decodes |bytes| whole, one byte at a time and in 20 random splittings; all must match |w|. */
static void check_vector(int require_masked, const uint8_t *bytes, size_t n, const want_frame *w, size_t nw)
{
    for (int mode = 0; mode < 22; mode++) {
        decode_result r;
        int rv = decode(require_masked, UINT64_MAX >> 1, bytes, n, mode < 2 ? mode : SPLIT_RANDOM, (uint64_t)mode * 7919, &r);
        ck_assert_msg(rv == 0, "mode %d: %s", mode, r.why ? r.why : "");
        check_frames(&r, w, nw);
        result_free(&r);
    }
}

/* Appends a frame (masked with a fixed key when |masked|) to |out| at |*n|. */
static void put_frame(uint8_t *out, size_t *n, unsigned opcode, int fin, const void *payload, size_t len, int masked)
{
    static const uint8_t key[4] = {0xA1, 0x02, 0xF3, 0x44};
    *n += mux_ws_frame_header(out + *n, opcode, fin, len, masked ? key : NULL);
    if (len)
        memcpy(out + *n, payload, len);
    if (masked)
        mux_ws_mask(out + *n, len, key, 0);
    *n += len;
}

/* ---------------------------------------------------------------- encoding */

START_TEST(test_header_round_trip)
{
    static const uint64_t lens[] = {0, 1, 125, 126, 127, 65535, 65536, (1ull << 32) + 5};
    static const size_t hl[] = {2, 2, 2, 4, 4, 4, 10, 10};
    static const uint8_t key[4] = {1, 2, 3, 4};
    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        for (int masked = 0; masked < 2; masked++) {
            uint8_t hdr[MUX_WS_MAX_HEADER];
            size_t n = mux_ws_frame_header(hdr, MUX_WS_OP_BINARY, 1, lens[i], masked ? key : NULL);
            ck_assert_uint_eq(n, hl[i] + (masked ? 4 : 0));
            ck_assert_int_eq(hdr[0], 0x82);
            ck_assert_int_eq(hdr[1] & 0x80, masked ? 0x80 : 0);
            if (masked)
                ck_assert_int_eq(memcmp(hdr + n - 4, key, 4), 0);
            /* header only, fed one byte at a time */
            mux_ws_decoder d;
            mux_ws_decoder_init(&d, masked, UINT64_MAX >> 1);
            mux_ws_piece piece;
            int has = 0;
            for (size_t j = 0; j < n; j++) {
                ssize_t c = mux_ws_decoder_feed(&d, hdr + j, 1, &piece, &has, NULL);
                ck_assert_int_eq(c, 1);
                ck_assert_int_eq(has, lens[i] == 0 && j == n - 1);
            }
            if (lens[i] == 0) {
                ck_assert(piece.frame_start && piece.frame_end);
                ck_assert_uint_eq(piece.frame_len, 0);
                ck_assert_uint_eq(piece.len, 0);
                ck_assert_ptr_null(piece.data);
                ck_assert_uint_eq(piece.opcode, MUX_WS_OP_BINARY);
                ck_assert_int_eq(piece.fin, 1);
            } else {
                /* one payload byte then reports the announced length */
                uint8_t b = 0;
                ck_assert_int_eq(mux_ws_decoder_feed(&d, &b, 1, &piece, &has, NULL), 1);
                ck_assert_int_eq(has, 1);
                ck_assert_uint_eq(piece.frame_len, lens[i]);
                ck_assert_int_eq(piece.frame_start, 1);
                ck_assert_int_eq(piece.frame_end, lens[i] == 1);
            }
        }
    }
    /* opcode and fin bits */
    uint8_t hdr[MUX_WS_MAX_HEADER];
    mux_ws_frame_header(hdr, MUX_WS_OP_CONT, 0, 3, NULL);
    ck_assert_int_eq(hdr[0], 0x00);
    mux_ws_frame_header(hdr, MUX_WS_OP_PONG, 1, 0, NULL);
    ck_assert_int_eq(hdr[0], 0x8A);
    ck_assert_int_eq(hdr[1], 0x00);
}
END_TEST

START_TEST(test_mask_matches_reference)
{
    uint64_t s = 0x1234567;
    /* lengths up to 1300 cross the vector path's threshold (256), its 128- and 32-byte rounds and
     * the word and byte tails behind them */
    uint8_t buf[1400], ref[1400], port[1400];
    for (int iter = 0; iter < 6000; iter++) {
        size_t len = (size_t)(rnd(&s) % 1300);
        size_t at = (size_t)(rnd(&s) % 16); /* alignment of the start */
        uint64_t offset = rnd(&s) % 1000;
        if (iter % 7 == 0)
            offset += 1ull << 40;
        uint8_t key[4];
        uint64_t k = rnd(&s);
        memcpy(key, &k, 4);
        for (size_t i = 0; i < len; i++)
            buf[at + i] = ref[at + i] = port[at + i] = (uint8_t)rnd(&s);
        buf[at + len] = port[at + len] = 0x5A; /* sentinel */
        for (size_t i = 0; i < len; i++)
            ref[at + i] ^= key[(offset + i) % 4];
        mux_ws_mask(buf + at, len, key, offset);
        mux_ws_mask_portable(port + at, len, key, offset);
        HOT_CHECK(memcmp(buf + at, ref + at, len) == 0);
        HOT_CHECK(memcmp(port + at, ref + at, len) == 0);
        HOT_CHECK(buf[at + len] == 0x5A && port[at + len] == 0x5A);
    }
    /* masking in pieces equals masking at once; twice is the identity */
    uint8_t a[300], b[300];
    const uint8_t key[4] = {0xde, 0xad, 0xbe, 0xef};
    for (size_t i = 0; i < sizeof(a); i++)
        a[i] = b[i] = (uint8_t)(i * 31);
    mux_ws_mask(a, sizeof(a), key, 0);
    size_t p = 0;
    while (p < sizeof(b)) {
        size_t n = 1 + (size_t)(rnd(&s) % 40);
        if (n > sizeof(b) - p)
            n = sizeof(b) - p;
        mux_ws_mask(b + p, n, key, p);
        p += n;
    }
    ck_assert_int_eq(memcmp(a, b, sizeof(a)), 0);
    mux_ws_mask(a, sizeof(a), key, 0);
    for (size_t i = 0; i < sizeof(a); i++)
        ck_assert_int_eq(a[i], (uint8_t)(i * 31));
    mux_ws_mask(NULL, 0, key, 3); /* no-op */
}
END_TEST

START_TEST(test_keygen)
{
    mux_ws_keygen *g = malloc(sizeof(*g));
    ck_assert_ptr_nonnull(g);
    mux_ws_keygen_init(g);
    uint8_t keys[3000][4];
    for (int i = 0; i < 3000; i++) /* 12000 bytes: refills the 4 KiB pool twice */
        HOT_CHECK(mux_ws_keygen_next(g, keys[i]) == 0);
    int same = 0;
    for (int i = 1; i < 3000; i++)
        same += memcmp(keys[i], keys[i - 1], 4) == 0;
    ck_assert_int_le(same, 1);
    free(g);
}
END_TEST

/* ---------------------------------------------------------------- decoding: RFC 6455 §5.7 */

START_TEST(test_rfc_examples)
{
    /* single-frame unmasked text */
    static const uint8_t unmasked[] = {0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
    const want_frame hello = {MUX_WS_OP_TEXT, 1, "Hello", 5};
    check_vector(0, unmasked, sizeof(unmasked), &hello, 1);
    /* single-frame masked text */
    static const uint8_t masked[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58};
    check_vector(1, masked, sizeof(masked), &hello, 1);
    /* fragmented unmasked text */
    static const uint8_t frag[] = {0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f};
    const want_frame fw[] = {{MUX_WS_OP_TEXT, 0, "Hel", 3}, {MUX_WS_OP_CONT, 1, "lo", 2}};
    check_vector(0, frag, sizeof(frag), fw, 2);
    /* unmasked ping, masked pong */
    static const uint8_t ping[] = {0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
    const want_frame pw = {MUX_WS_OP_PING, 1, "Hello", 5};
    check_vector(0, ping, sizeof(ping), &pw, 1);
    static const uint8_t pong[] = {0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58};
    const want_frame qw = {MUX_WS_OP_PONG, 1, "Hello", 5};
    check_vector(1, pong, sizeof(pong), &qw, 1);
    /* 256 bytes binary in a single unmasked frame: 16-bit length */
    uint8_t *big = malloc(4 + 256);
    big[0] = 0x82;
    big[1] = 0x7E;
    big[2] = 0x01;
    big[3] = 0x00;
    for (int i = 0; i < 256; i++)
        big[4 + i] = (uint8_t)i;
    const want_frame bw = {MUX_WS_OP_BINARY, 1, (const char *)big + 4, 256};
    check_vector(0, big, 4 + 256, &bw, 1);
    free(big);
}
END_TEST

START_TEST(test_decode_sequences)
{
    for (int masked = 0; masked < 2; masked++) {
        uint8_t *buf = malloc(80000);
        uint8_t *payload = malloc(65536);
        ck_assert_ptr_nonnull(buf);
        ck_assert_ptr_nonnull(payload);
        for (size_t i = 0; i < 65536; i++)
            payload[i] = (uint8_t)(i * 7 + 3);
        size_t n = 0;
        /* fragmented binary with interleaved control frames and empty fragments */
        put_frame(buf, &n, MUX_WS_OP_BINARY, 0, payload, 10, masked);
        put_frame(buf, &n, MUX_WS_OP_PING, 1, "ping", 4, masked);
        put_frame(buf, &n, MUX_WS_OP_CONT, 0, NULL, 0, masked);
        put_frame(buf, &n, MUX_WS_OP_PONG, 1, NULL, 0, masked);
        put_frame(buf, &n, MUX_WS_OP_CONT, 1, payload + 10, 300, masked);
        /* an empty binary message, then a 64-bit-length frame, then a close */
        put_frame(buf, &n, MUX_WS_OP_BINARY, 1, NULL, 0, masked);
        put_frame(buf, &n, MUX_WS_OP_BINARY, 1, payload, 65536, masked);
        put_frame(buf, &n, MUX_WS_OP_CLOSE, 1, "\x03\xe8", 2, masked);
        const want_frame w[] = {
            {MUX_WS_OP_BINARY, 0, (const char *)payload, 10},
            {MUX_WS_OP_PING, 1, "ping", 4},
            {MUX_WS_OP_CONT, 0, NULL, 0},
            {MUX_WS_OP_PONG, 1, NULL, 0},
            {MUX_WS_OP_CONT, 1, (const char *)payload + 10, 300},
            {MUX_WS_OP_BINARY, 1, NULL, 0},
            {MUX_WS_OP_BINARY, 1, (const char *)payload, 65536},
            {MUX_WS_OP_CLOSE, 1, "\x03\xe8", 2},
        };
        check_vector(masked, buf, n, w, sizeof(w) / sizeof(w[0]));
        free(buf);
        free(payload);
    }
}
END_TEST

START_TEST(test_max_frame_len_boundary)
{
    uint8_t buf[1100];
    uint8_t payload[1001];
    memset(payload, 'p', sizeof(payload));
    size_t n = 0;
    put_frame(buf, &n, MUX_WS_OP_BINARY, 1, payload, 1000, 1);
    decode_result r;
    ck_assert_int_eq(decode(1, 1000, buf, n, SPLIT_WHOLE, 0, &r), 0);
    ck_assert_uint_eq(r.nframes, 1);
    result_free(&r);
    /* 1001 announced: rejected from the header alone, with no payload byte present */
    uint8_t hdr[MUX_WS_MAX_HEADER];
    static const uint8_t key[4] = {9, 9, 9, 9};
    size_t hl = mux_ws_frame_header(hdr, MUX_WS_OP_BINARY, 1, 1001, key);
    for (int mode = 0; mode < 2; mode++) {
        ck_assert_int_eq(decode(1, 1000, hdr, hl, mode, 0, &r), MUX_ERR_MESSAGE_TOO_LARGE);
        ck_assert_ptr_nonnull(r.why);
        result_free(&r);
    }
    /* 2^62 announced with a small limit */
    hl = mux_ws_frame_header(hdr, MUX_WS_OP_BINARY, 1, 1ull << 62, NULL);
    ck_assert_int_eq(decode(0, 1 << 20, hdr, hl, SPLIT_ONE, 0, &r), MUX_ERR_MESSAGE_TOO_LARGE);
    result_free(&r);
}
END_TEST

/* ---------------------------------------------------------------- decoding: rejections */

typedef struct {
    const char *name;
    int require_masked;
    uint8_t bytes[24];
    size_t n;
    int err;
} reject_case;

#define K 0x11, 0x22, 0x33, 0x44 /* a mask key */

static const reject_case rejects[] = {
    {"RSV1", 1, {0xC2, 0x80, K}, 6, MUX_ERR_WS_PROTOCOL},
    {"RSV2", 1, {0xA2, 0x80, K}, 6, MUX_ERR_WS_PROTOCOL},
    {"RSV3", 1, {0x92, 0x80, K}, 6, MUX_ERR_WS_PROTOCOL},
    {"opcode 3", 1, {0x83, 0x80, K}, 6, MUX_ERR_WS_PROTOCOL},
    {"opcode 4", 1, {0x84, 0x80, K}, 6, MUX_ERR_WS_PROTOCOL},
    {"opcode 5", 1, {0x85, 0x80, K}, 6, MUX_ERR_WS_PROTOCOL},
    {"opcode 6", 1, {0x86, 0x80, K}, 6, MUX_ERR_WS_PROTOCOL},
    {"opcode 7", 1, {0x87, 0x80, K}, 6, MUX_ERR_WS_PROTOCOL},
    {"opcode B", 1, {0x8B, 0x80, K}, 6, MUX_ERR_WS_PROTOCOL},
    {"opcode C", 1, {0x8C, 0x80, K}, 6, MUX_ERR_WS_PROTOCOL},
    {"opcode D", 1, {0x8D, 0x80, K}, 6, MUX_ERR_WS_PROTOCOL},
    {"opcode E", 1, {0x8E, 0x80, K}, 6, MUX_ERR_WS_PROTOCOL},
    {"opcode F", 1, {0x8F, 0x80, K}, 6, MUX_ERR_WS_PROTOCOL},
    {"masked from server", 0, {0x82, 0x80, K}, 6, MUX_ERR_WS_PROTOCOL},
    {"unmasked from client", 1, {0x82, 0x00}, 2, MUX_ERR_WS_PROTOCOL},
    {"fragmented ping", 1, {0x09, 0x80, K}, 6, MUX_ERR_WS_PROTOCOL},
    {"fragmented close", 0, {0x08, 0x00}, 2, MUX_ERR_WS_PROTOCOL},
    {"ping len 126", 1, {0x89, 0xFE, 0x00, 0x7E, K}, 8, MUX_ERR_WS_PROTOCOL},
    {"pong len 127", 0, {0x8A, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0}, 10, MUX_ERR_WS_PROTOCOL},
    {"64-bit MSB", 1, {0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0, K}, 14, MUX_ERR_WS_PROTOCOL},
    {"non-minimal 16", 1, {0x82, 0xFE, 0x00, 0x7D, K}, 8, MUX_ERR_WS_PROTOCOL},
    {"non-minimal 16 zero", 0, {0x82, 0x7E, 0x00, 0x00}, 4, MUX_ERR_WS_PROTOCOL},
    {"non-minimal 64", 1, {0x82, 0xFF, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, K}, 14, MUX_ERR_WS_PROTOCOL},
    {"non-minimal 64 small", 0, {0x82, 0x7F, 0, 0, 0, 0, 0, 0, 0, 5}, 10, MUX_ERR_WS_PROTOCOL},
    {"CONT outside message", 1, {0x80, 0x80, K}, 6, MUX_ERR_WS_PROTOCOL},
    {"CONT after finished message", 0, {0x02, 0x00, 0x80, 0x00, 0x80, 0x00}, 6, MUX_ERR_WS_PROTOCOL},
    {"BINARY inside fragmented", 1, {0x02, 0x80, K, 0x82, 0x80, K}, 12, MUX_ERR_WS_PROTOCOL},
    {"TEXT inside fragmented", 0, {0x01, 0x00, 0x89, 0x00, 0x81, 0x00}, 6, MUX_ERR_WS_PROTOCOL},
    {"too large", 1, {0x82, 0xFE, 0x10, 0x00, K}, 8, MUX_ERR_MESSAGE_TOO_LARGE},
};

START_TEST(test_rejections)
{
    const reject_case *c = &rejects[_i];
    for (int mode = 0; mode < 2; mode++) {
        decode_result r;
        int rv = decode(c->require_masked, 4095, c->bytes, c->n, mode, 0, &r);
        ck_assert_msg(rv == c->err, "%s (mode %d): got %d", c->name, mode, rv);
        ck_assert_ptr_nonnull(r.why);
        result_free(&r);
    }
    /* after an error the decoder keeps failing */
    mux_ws_decoder d;
    mux_ws_decoder_init(&d, c->require_masked, 4095);
    uint8_t in[24];
    memcpy(in, c->bytes, c->n);
    mux_ws_piece piece;
    int has;
    ssize_t rv = 0;
    size_t off = 0;
    while (off < c->n && (rv = mux_ws_decoder_feed(&d, in + off, c->n - off, &piece, &has, NULL)) >= 0)
        off += (size_t)rv;
    ck_assert_int_eq(rv, c->err);
    const char *why = NULL;
    ck_assert_int_lt(mux_ws_decoder_feed(&d, in, 1, &piece, &has, &why), 0);
    ck_assert_ptr_nonnull(why);
    ck_assert_int_eq(has, 0);
}
END_TEST

START_TEST(test_accepted_edges)
{
    /* control frame of exactly 125 bytes, masked; control frames between fragments */
    uint8_t buf[400];
    char p125[125];
    memset(p125, 'c', sizeof(p125));
    size_t n = 0;
    put_frame(buf, &n, MUX_WS_OP_TEXT, 0, "a", 1, 1);
    put_frame(buf, &n, MUX_WS_OP_PING, 1, p125, 125, 1);
    put_frame(buf, &n, MUX_WS_OP_CLOSE, 1, NULL, 0, 1);
    put_frame(buf, &n, MUX_WS_OP_CONT, 1, "b", 1, 1);
    const want_frame w[] = {
        {MUX_WS_OP_TEXT, 0, "a", 1},
        {MUX_WS_OP_PING, 1, p125, 125},
        {MUX_WS_OP_CLOSE, 1, NULL, 0},
        {MUX_WS_OP_CONT, 1, "b", 1},
    };
    check_vector(1, buf, n, w, 4);
    /* empty feed */
    mux_ws_decoder d;
    mux_ws_decoder_init(&d, 0, 100);
    mux_ws_piece piece;
    int has = 1;
    ck_assert_int_eq(mux_ws_decoder_feed(&d, NULL, 0, &piece, &has, NULL), 0);
    ck_assert_int_eq(has, 0);
}
END_TEST

/* ---------------------------------------------------------------- guard page */

static uint8_t *guard_alloc(size_t *page)
{
    *page = (size_t)sysconf(_SC_PAGESIZE);
    uint8_t *p = mmap(NULL, 2 * *page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ck_assert(p != MAP_FAILED);
    ck_assert_int_eq(mprotect(p + *page, *page, PROT_NONE), 0);
    return p;
}

START_TEST(test_guard_page)
{
    size_t page;
    uint8_t *mem = guard_alloc(&page);
    static const uint8_t key[4] = {5, 6, 7, 8};
    uint8_t frame[MUX_WS_MAX_HEADER + 40];
    uint8_t payload[40];
    memset(payload, 'g', sizeof(payload));
    size_t n = 0;
    n += mux_ws_frame_header(frame, MUX_WS_OP_BINARY, 1, 70000, key); /* 64-bit length, masked */
    memcpy(frame + n, payload, sizeof(payload));
    mux_ws_mask(frame + n, sizeof(payload), key, 0);
    n += sizeof(payload);
    /* every truncation of (header + partial payload) placed flush against the guard page */
    for (size_t cut = 1; cut <= n; cut++) {
        uint8_t *at = mem + page - cut;
        memcpy(at, frame, cut);
        for (int mode = 0; mode < 2; mode++) {
            if (mode == 1 && cut != n)
                continue;
            memcpy(at, frame, cut);
            mux_ws_decoder d;
            mux_ws_decoder_init(&d, 1, 1 << 20);
            size_t off = 0;
            size_t got = 0;
            while (off < cut) {
                mux_ws_piece piece;
                int has;
                size_t give = mode ? 1 : cut - off;
                ssize_t c = mux_ws_decoder_feed(&d, at + off, give, &piece, &has, NULL);
                ck_assert_int_gt(c, 0);
                if (has) {
                    ck_assert_uint_eq(piece.frame_len, 70000);
                    ck_assert_int_eq(piece.frame_end, 0);
                    for (size_t i = 0; i < piece.len; i++)
                        HOT_CHECK(piece.data[i] == 'g');
                    got += piece.len;
                }
                off += (size_t)c;
            }
            ck_assert_uint_eq(got, cut > 14 ? cut - 14 : 0);
        }
    }
    /* a truncated handshake response against the guard page */
    static const char head[] = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n";
    size_t hl = sizeof(head) - 1;
    memcpy(mem + page - hl, head, hl);
    for (size_t cut = 0; cut <= hl; cut++) {
        const char *reason = NULL;
        ck_assert_int_eq(mux_ws_parse_response((const char *)mem + page - cut, cut, "dGhlIHNhbXBsZSBub25jZQ==", NULL, &reason),
                         MUX_ERR_AGAIN);
    }
    munmap(mem, 2 * page);
}
END_TEST

/* ---------------------------------------------------------------- handshake */

static const char *rfc_key = "dGhlIHNhbXBsZSBub25jZQ==";
static const char *rfc_accept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

START_TEST(test_accept_key)
{
    char out[MUX_WS_ACCEPT_LEN + 1];
    ck_assert_int_eq(mux_ws_accept_key(rfc_key, strlen(rfc_key), out), 0);
    ck_assert_str_eq(out, rfc_accept);
    ck_assert_int_eq(mux_ws_check_accept(rfc_key, strlen(rfc_key), rfc_accept, strlen(rfc_accept)), 1);
    ck_assert_int_eq(mux_ws_check_accept(rfc_key, strlen(rfc_key), "s3pPLMBiTxaQ9kYGzzhZRbK+xOO=", 28), 0);
    ck_assert_int_eq(mux_ws_check_accept(rfc_key, strlen(rfc_key), rfc_accept, 27), 0);
    ck_assert_int_eq(mux_ws_check_accept(rfc_key, strlen(rfc_key), NULL, 0), 0);
    /* invalid keys */
    static const char *bad[] = {"",
                                "dGhlIHNhbXBsZSBub25jZQ=",
                                "dGhlIHNhbXBsZSBub25jZQ===",
                                "dGhlIHNhbXBsZSBub25jZQ!=",
                                "dGhlIHNhbXBsZSBub25jZ===",
                                "dGhlIHNhbXBsZSBub25jZQAA",
                                "dGhl IHNhbXBsZSBub25jZQ="};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ck_assert_int_eq(mux_ws_accept_key(bad[i], strlen(bad[i]), out), MUX_ERR_BAD_HANDSHAKE);
        ck_assert_int_eq(mux_ws_check_accept(bad[i], strlen(bad[i]), rfc_accept, 28), 0);
    }
    ck_assert_int_eq(mux_ws_accept_key(NULL, 24, out), MUX_ERR_BAD_HANDSHAKE);
}
END_TEST

START_TEST(test_make_key)
{
    char k1[MUX_WS_KEY_LEN + 1], k2[MUX_WS_KEY_LEN + 1];
    char acc[MUX_WS_ACCEPT_LEN + 1];
    ck_assert_int_eq(mux_ws_make_key(k1), 0);
    ck_assert_int_eq(mux_ws_make_key(k2), 0);
    ck_assert_uint_eq(strlen(k1), MUX_WS_KEY_LEN);
    ck_assert_str_ne(k1, k2);
    ck_assert_int_eq(mux_ws_accept_key(k1, strlen(k1), acc), 0);
    ck_assert_uint_eq(strlen(acc), MUX_WS_ACCEPT_LEN);
}
END_TEST

START_TEST(test_client_request)
{
    char buf[1024];
    ssize_t n = mux_ws_client_request(buf, sizeof(buf), "a.example.com:8080", "/_tunnel", rfc_key, "Authorization: Bearer x\r\n");
    ck_assert_int_gt(n, 0);
    ck_assert_uint_eq(strlen(buf), (size_t)n);
    ck_assert_str_eq(buf, "GET /_tunnel HTTP/1.1\r\n"
                          "Host: a.example.com:8080\r\n"
                          "Upgrade: websocket\r\n"
                          "Connection: Upgrade\r\n"
                          "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                          "Sec-WebSocket-Version: 13\r\n"
                          "Sec-WebSocket-Protocol: tunnelmux.v1\r\n"
                          "Authorization: Bearer x\r\n"
                          "\r\n");
    /* the NUL needs a byte too */
    ck_assert_int_eq(
        mux_ws_client_request(buf, (size_t)n, "a.example.com:8080", "/_tunnel", rfc_key, "Authorization: Bearer x\r\n"),
        MUX_ERR_BUFFER_TOO_SMALL);
    ck_assert_int_eq(
        mux_ws_client_request(buf, (size_t)n + 1, "a.example.com:8080", "/_tunnel", rfc_key, "Authorization: Bearer x\r\n"), n);
    ck_assert_int_eq(mux_ws_client_request(buf, 10, "h", "/", rfc_key, NULL), MUX_ERR_BUFFER_TOO_SMALL);
    ck_assert_int_gt(mux_ws_client_request(buf, sizeof(buf), "h", "/", rfc_key, NULL), 0);
    ck_assert_int_gt(mux_ws_client_request(buf, sizeof(buf), "h", "/", rfc_key, ""), 0);
    /* injection and malformed arguments */
    ck_assert_int_eq(mux_ws_client_request(buf, sizeof(buf), "h\r\nX: y", "/", rfc_key, NULL), MUX_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(mux_ws_client_request(buf, sizeof(buf), "h", "/a\nb", rfc_key, NULL), MUX_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(mux_ws_client_request(buf, sizeof(buf), "h", "/a b", rfc_key, NULL), MUX_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(mux_ws_client_request(buf, sizeof(buf), "h", "x", rfc_key, NULL), MUX_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(mux_ws_client_request(buf, sizeof(buf), "", "/", rfc_key, NULL), MUX_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(mux_ws_client_request(buf, sizeof(buf), "h", "/", "short", NULL), MUX_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(mux_ws_client_request(buf, sizeof(buf), "h", "/", rfc_key, "X: y"), MUX_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(mux_ws_client_request(buf, sizeof(buf), "h", "/", rfc_key, "X: y\r\n\r\nGET /"), MUX_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(mux_ws_client_request(buf, sizeof(buf), "h", "/", rfc_key, "\r\n"), MUX_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(mux_ws_client_request(buf, sizeof(buf), NULL, "/", rfc_key, NULL), MUX_ERR_INVALID_ARGUMENT);
}
END_TEST

static ssize_t parse(const char *s, int *status, const char **reason)
{
    return mux_ws_parse_response(s, strlen(s), rfc_key, status, reason);
}

START_TEST(test_parse_response_ok)
{
    static const char ok[] = "HTTP/1.1 101 Switching Protocols\r\n"
                             "Upgrade: websocket\r\n"
                             "Connection: Upgrade\r\n"
                             "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
                             "Sec-WebSocket-Protocol: tunnelmux.v1\r\n"
                             "\r\n";
    int status = -1;
    const char *reason = "x";
    ck_assert_int_eq(parse(ok, &status, &reason), (ssize_t)strlen(ok));
    ck_assert_int_eq(status, 101);
    /* bytes after the head are not part of it */
    char more[512];
    snprintf(more, sizeof(more), "%s\x82\x05hello", ok);
    ck_assert_int_eq(mux_ws_parse_response(more, strlen(ok) + 7, rfc_key, &status, &reason), (ssize_t)strlen(ok));
    /* every strict prefix is incomplete */
    for (size_t i = 0; i < strlen(ok); i++)
        ck_assert_int_eq(mux_ws_parse_response(ok, i, rfc_key, &status, &reason), MUX_ERR_AGAIN);
    /* case-insensitive names, token lists, OWS, no reason phrase, no subprotocol header */
    static const char ok2[] = "HTTP/1.1 101\r\n"
                              "upgrade:WebSocket\r\n"
                              "CONNECTION: keep-alive ,  upgrade\t\r\n"
                              "X-Other: 1\r\n"
                              "sec-websocket-accept:   s3pPLMBiTxaQ9kYGzzhZRbK+xOo=  \r\n"
                              "\r\n";
    ck_assert_int_eq(parse(ok2, &status, &reason), (ssize_t)strlen(ok2));
    ck_assert_int_eq(mux_ws_parse_response(ok2, strlen(ok2), rfc_key, NULL, NULL), (ssize_t)strlen(ok2));
}
END_TEST

START_TEST(test_parse_response_bad)
{
    static const struct {
        const char *head;
        int status;
    } bad[] = {
        {"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 200},
        {"HTTP/1.1 426 Upgrade Required\r\nUpgrade: websocket\r\n\r\n", 426},
        {"HTTP/1.0 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
         "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
         0},
        {"HTTP/1.1 1x1 Switching\r\n\r\n", 0},
        {"HTTP/1.1 101x\r\n\r\n", 0},
        {"\r\n\r\n", 0},
        {"HTTP/1.1 101 S\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n", 101},
        {"HTTP/1.1 101 S\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n", 101},
        {"HTTP/1.1 101 S\r\nUpgrade: websocket\r\nConnection: keep-alive\r\n"
         "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
         101},
        {"HTTP/1.1 101 S\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", 101},
        {"HTTP/1.1 101 S\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
         "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOO=\r\n\r\n",
         101},
        {"HTTP/1.1 101 S\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
         "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
         101},
        {"HTTP/1.1 101 S\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
         "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Protocol: chat\r\n\r\n",
         101},
        {"HTTP/1.1 101 S\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
         "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n",
         101},
        {"HTTP/1.1 101 S\r\nUpgrade websocket\r\n\r\n", 101},
        {"HTTP/1.1 101 S\r\n folded: x\r\n\r\n", 101},
        {"HTTP/1.1 101 S\r\nUpgrade: web\nsocket\r\n\r\n", 101},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int status = -1;
        const char *reason = NULL;
        ck_assert_msg(parse(bad[i].head, &status, &reason) == MUX_ERR_BAD_HANDSHAKE, "case %zu", i);
        ck_assert_int_eq(status, bad[i].status);
        ck_assert_ptr_nonnull(reason);
    }
    /* NUL inside the head */
    static const char nul[] = "HTTP/1.1 101 S\r\nUpgrade: web\0socket\r\n\r\n";
    ck_assert_int_eq(mux_ws_parse_response(nul, sizeof(nul) - 1, rfc_key, NULL, NULL), MUX_ERR_BAD_HANDSHAKE);
}
END_TEST

START_TEST(test_parse_response_size_limit)
{
    static const char start[] = "HTTP/1.1 101 Switching Protocols\r\n"
                                "Upgrade: websocket\r\n"
                                "Connection: Upgrade\r\n"
                                "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
                                "X-Pad: ";
    char *buf = malloc(20000);
    ck_assert_ptr_nonnull(buf);
    size_t sl = strlen(start);
    memcpy(buf, start, sl);
    /* head of exactly 16384 bytes is accepted */
    size_t pad = 16384 - sl - 4;
    memset(buf + sl, 'a', pad);
    memcpy(buf + sl + pad, "\r\n\r\n", 4);
    ck_assert_int_eq(mux_ws_parse_response(buf, 16384, rfc_key, NULL, NULL), 16384);
    ck_assert_int_eq(mux_ws_parse_response(buf, 16383, rfc_key, NULL, NULL), MUX_ERR_AGAIN);
    /* one byte more is refused, as soon as 16 KiB arrived without an end */
    memset(buf + sl, 'a', pad + 1);
    memcpy(buf + sl + pad + 1, "\r\n\r\n", 4);
    ck_assert_int_eq(mux_ws_parse_response(buf, 16385, rfc_key, NULL, NULL), MUX_ERR_BAD_HANDSHAKE);
    ck_assert_int_eq(mux_ws_parse_response(buf, 16384, rfc_key, NULL, NULL), MUX_ERR_BAD_HANDSHAKE);
    ck_assert_int_eq(mux_ws_parse_response(buf, 16383, rfc_key, NULL, NULL), MUX_ERR_AGAIN);
    free(buf);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("ws");
    TCase *tc = tcase_create("frame");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_header_round_trip);
    tcase_add_test(tc, test_mask_matches_reference);
    tcase_add_test(tc, test_keygen);
    tcase_add_test(tc, test_rfc_examples);
    tcase_add_test(tc, test_decode_sequences);
    tcase_add_test(tc, test_max_frame_len_boundary);
    tcase_add_loop_test(tc, test_rejections, 0, (int)(sizeof(rejects) / sizeof(rejects[0])));
    tcase_add_test(tc, test_accepted_edges);
    tcase_add_test(tc, test_guard_page);
    suite_add_tcase(s, tc);
    TCase *th = tcase_create("handshake");
    tcase_add_test(th, test_accept_key);
    tcase_add_test(th, test_make_key);
    tcase_add_test(th, test_client_request);
    tcase_add_test(th, test_parse_response_ok);
    tcase_add_test(th, test_parse_response_bad);
    tcase_add_test(th, test_parse_response_size_limit);
    suite_add_tcase(s, th);
    return s;
}

TM_CHECK_MAIN(make_suite)
