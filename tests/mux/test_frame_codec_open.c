/*
 * tunnelmux — tests of the OPEN fast paths of the frame record codec (src/mux/frame_decode.c) against
 * the protobuf-c reference decoder: the local queue report, random and odd-shaped bodies, and the
 * examples of PROTOCOL.md §4.3 byte for byte.
 */
#include <stdint.h>
#include <string.h>

#include "check_main.h"
#include "mux/failmalloc.h"
#include "frame_codec.h"
#include "frames_same.h"
#include "mux/frame_records.h"

/* ---------------------------------------------------------------- OPEN fast paths vs protobuf-c */

static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* A random field: empty a quarter of the time, else 1..max bytes (any byte values). */
static mux_iovec rand_field(uint64_t *rng, uint8_t *pool, size_t max)
{
    mux_iovec v = {NULL, 0};
    if (rng_next(rng) % 4 == 0)
        return v;
    v.len = 1 + rng_next(rng) % max;
    v.base = pool + rng_next(rng) % 256;
    return v;
}

/*
 * Decodes |rec| with the fast and the reference decoder and checks they agree: same result, same
 * reason, same frame. Returns the fast decoder's result; |*fast_allocs| gets its allocation count.
 */
static ssize_t decode_both(const uint8_t *rec, size_t len, uint32_t max_count, uint32_t max_bytes, long *fast_allocs)
{
    failmalloc st;
    mux_mem mem = failmalloc_mem(&st, -1, 0);
    mux_frame a, b;
    const char *ra = NULL, *rb = NULL;
    ssize_t na = mux_frame_decode(rec, len, &a, max_count, max_bytes, &mem, &ra);
    *fast_allocs = st.allocs;
    ssize_t nb = mux_frame_decode_reference(rec, len, &b, max_count, max_bytes, NULL, &rb);
    ck_assert_msg(na == nb, "fast %zd (%s) vs protobuf-c %zd (%s)", na, ra, nb, rb);
    ck_assert_str_eq(ra, rb);
    ck_assert_int_eq(a.type, b.type);
    ck_assert_uint_eq(a.stream_id, b.stream_id);
    if (na > 0 && a.type == MUX_FRAME_OPEN)
        ck_assert(heads_same(&a.head, &b.head));
    mux_frame_clear(&a, &mem);
    mux_frame_clear(&b, NULL);
    ck_assert_int_eq(st.live, 0);
    return na;
}

/* The local queue report (PROTOCOL.md §9.4): response heads carry it, request heads never; both
 * decoders read it the same way, a lone field included. */
START_TEST(test_open_local_queue)
{
    mux_frame f;
    memset(&f, 0, sizeof(f));
    f.type = MUX_FRAME_OPEN;
    f.stream_id = 7;
    f.head.status = 200;
    f.head.has_local_queue = 1;
    f.head.local_queue_wait_ms = 1234567;
    f.head.local_queue_length = 0;
    mux_buf b;
    mux_buf_init(&b);
    ck_assert_int_eq(mux_frame_encode(&f, &b, NULL), 0);
    mux_frame d;
    const char *why = NULL;
    ck_assert_int_eq(mux_frame_decode(b.base, b.len, &d, NO_LIMIT, NO_LIMIT, NULL, &why), (ssize_t)b.len);
    ck_assert_int_eq(d.head.has_local_queue, 1);
    ck_assert_uint_eq(d.head.local_queue_wait_ms, 1234567);
    ck_assert_uint_eq(d.head.local_queue_length, 0); /* a zero is sent, not left out: "no wait" is news */
    long allocs;
    ck_assert_int_eq(decode_both(b.base, b.len, NO_LIMIT, NO_LIMIT, &allocs), (ssize_t)b.len);
    mux_frame_clear(&d, NULL);
    size_t with = b.len;
    mux_buf_free(&b, NULL);

    /* a request head (status 0) never carries it, whatever the struct says */
    f.head.status = 0;
    f.head.method = (mux_iovec){(uint8_t *)"GET", 3};
    mux_buf_init(&b);
    ck_assert_int_eq(mux_frame_encode(&f, &b, NULL), 0);
    ck_assert_uint_eq(b.len, mux_frame_encoded_size(&f));
    ck_assert_int_eq(mux_frame_decode(b.base, b.len, &d, NO_LIMIT, NO_LIMIT, NULL, &why), (ssize_t)b.len);
    ck_assert_int_eq(d.head.has_local_queue, 0);
    mux_frame_clear(&d, NULL);
    ck_assert_uint_lt(b.len, with + 5);
    mux_buf_free(&b, NULL);

    /* a request head that carries them anyway (not from our encoder): both decoders ignore them */
    static const uint8_t req[] = {0x22, 0x06, 0x08, 0x03, 0x58, 0x05, 0x60, 0x02};
    uint8_t rrec[1 + sizeof(req)];
    rrec[0] = (uint8_t)sizeof(req);
    memcpy(rrec + 1, req, sizeof(req));
    ck_assert_int_eq(decode_both(rrec, sizeof(rrec), NO_LIMIT, NO_LIMIT, &allocs), (ssize_t)sizeof(rrec));
    ck_assert_int_eq(mux_frame_decode(rrec, sizeof(rrec), &d, NO_LIMIT, NO_LIMIT, NULL, &why), (ssize_t)sizeof(rrec));
    ck_assert_int_eq(d.head.has_local_queue, 0);
    mux_frame_clear(&d, NULL);

    /* written by hand: Frame{open{stream_id 3, status 200, queue_wait_ms 5}} without queue_length */
    static const uint8_t lone[] = {0x22, 0x07, 0x08, 0x03, 0x38, 0xC8, 0x01, 0x58, 0x05};
    uint8_t rec[1 + sizeof(lone)];
    rec[0] = (uint8_t)sizeof(lone);
    memcpy(rec + 1, lone, sizeof(lone));
    ck_assert_int_eq(decode_both(rec, sizeof(rec), NO_LIMIT, NO_LIMIT, &allocs), (ssize_t)sizeof(rec));
    ck_assert_int_eq(mux_frame_decode(rec, sizeof(rec), &d, NO_LIMIT, NO_LIMIT, NULL, &why), (ssize_t)sizeof(rec));
    ck_assert_int_eq(d.head.has_local_queue, 1);
    ck_assert_uint_eq(d.head.local_queue_wait_ms, 5);
    ck_assert_uint_eq(d.head.local_queue_length, 0);
    mux_frame_clear(&d, NULL);
}
END_TEST

START_TEST(test_open_matches_protobuf_c)
{
    uint8_t pool[256 + 300];
    uint64_t rng = 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i < sizeof(pool); i++)
        pool[i] = (uint8_t)rng_next(&rng);
    mux_header hs[60];
    for (int round = 0; round < 2000; round++) {
        mux_frame f;
        memset(&f, 0, sizeof(f));
        f.type = MUX_FRAME_OPEN;
        f.stream_id = (uint32_t)(1 + rng_next(&rng) % (round % 2 ? 100 : UINT32_MAX));
        mux_head *h = &f.head;
        h->flags = rng_next(&rng) % 3 == 0 ? 0 : (uint32_t)rng_next(&rng) >> (rng_next(&rng) % 32);
        h->method = rand_field(&rng, pool, 8);
        h->scheme = rand_field(&rng, pool, 5);
        h->authority = rand_field(&rng, pool, 40);
        h->path = rand_field(&rng, pool, 300);
        h->status = rng_next(&rng) % 2 ? 0 : (unsigned)(rng_next(&rng) % 600);
        h->reason = rand_field(&rng, pool, 20);
        h->remote_addr = rand_field(&rng, pool, 30);
        h->has_local_queue = (int)(rng_next(&rng) % 2);
        h->local_queue_wait_ms = (uint32_t)rng_next(&rng) >> (rng_next(&rng) % 32);
        h->local_queue_length = (uint32_t)rng_next(&rng) >> (rng_next(&rng) % 32);
        h->nheaders = rng_next(&rng) % 61; /* past OPEN_FAST_HEADERS: the two-pass decode too */
        h->headers = hs;
        for (size_t k = 0; k < h->nheaders; k++) {
            hs[k].name = rand_field(&rng, pool, 30);
            hs[k].value = rand_field(&rng, pool, 200);
        }
        mux_buf fast, ref;
        mux_buf_init(&fast);
        mux_buf_init(&ref);
        ck_assert_int_eq(mux_frame_encode(&f, &fast, NULL), 0);
        ck_assert_int_eq(mux_frame_encode_reference(&f, &ref, NULL), 0);
        ck_assert_uint_eq(fast.len, ref.len);
        ck_assert_uint_eq(fast.len, mux_frame_encoded_size(&f));
        ck_assert_msg(memcmp(fast.base, ref.base, fast.len) == 0, "round %d: encodings differ", round);
        long allocs;
        ck_assert_int_eq(decode_both(fast.base, fast.len, NO_LIMIT, NO_LIMIT, &allocs), (ssize_t)fast.len);
        ck_assert_int_eq(allocs, h->nheaders != 0 ? 1 : 0); /* the fast path: only the header array */
        /* the limits, exactly at and one below what the head needs */
        uint32_t bytes = 0;
        for (size_t k = 0; k < h->nheaders; k++)
            bytes += (uint32_t)(hs[k].name.len + hs[k].value.len);
        ck_assert_int_eq(decode_both(fast.base, fast.len, (uint32_t)h->nheaders, bytes, &allocs), (ssize_t)fast.len);
        if (h->nheaders != 0)
            ck_assert_int_eq(decode_both(fast.base, fast.len, (uint32_t)h->nheaders - 1, bytes, &allocs), MUX_ERR_HEADER_LIMIT);
        if (bytes != 0)
            ck_assert_int_eq(decode_both(fast.base, fast.len, NO_LIMIT, bytes - 1, &allocs), MUX_ERR_HEADER_LIMIT);
        mux_buf_free(&fast, NULL);
        mux_buf_free(&ref, NULL);
    }
}
END_TEST

/* Open-body builder for the shapes below. */
typedef struct {
    uint8_t b[2048];
    size_t n;
} ob;

static void ob_varint(ob *o, uint64_t v)
{
    o->n += mux_varint_put(o->b + o->n, v);
}

static void ob_int(ob *o, unsigned field, uint64_t v)
{
    ob_varint(o, field << 3 | 0);
    ob_varint(o, v);
}

static void ob_bytes(ob *o, unsigned field, const void *p, size_t len)
{
    ck_assert_uint_lt(o->n + len + 20, sizeof(o->b));
    ob_varint(o, field << 3 | 2);
    ob_varint(o, len);
    memcpy(o->b + o->n, p, len);
    o->n += len;
}

static void ob_header(ob *o, const char *name, const char *value)
{
    ob inner = {.n = 0};
    ob_bytes(&inner, 1, name, strlen(name));
    ob_bytes(&inner, 2, value, strlen(value));
    ob_bytes(o, 9, inner.b, inner.n);
}

/* Wraps an Open body as Frame{open} in a record and decodes it both ways. */
static ssize_t open_both(const ob *open, long *allocs)
{
    ob frame = {.n = 0};
    ob_bytes(&frame, 4, open->b, open->n);
    uint8_t rec[2100];
    size_t n = make_record(rec, frame.b, frame.n);
    return decode_both(rec, n, 100, 65536, allocs);
}

START_TEST(test_open_odd_shapes_agree)
{
    long allocs;
    /* plain shapes in unusual orders: the fast path, same frame */
    ob o = {.n = 0};
    ob_header(&o, "a", "1");
    ob_bytes(&o, 6, "/p", 2);
    ob_int(&o, 7, 200);
    ob_int(&o, 1, 5);
    ob_header(&o, "b", "");
    ck_assert_int_gt(open_both(&o, &allocs), 0);
    ck_assert_int_eq(allocs, 1);
    o.n = 0; /* value before name */
    ob_int(&o, 1, 5);
    ob inner = {.n = 0};
    ob_bytes(&inner, 2, "v", 1);
    ob_bytes(&inner, 1, "n", 1);
    ob_bytes(&o, 9, inner.b, inner.n);
    ck_assert_int_gt(open_both(&o, &allocs), 0);
    ck_assert_int_eq(allocs, 1);
    o.n = 0; /* an empty bytes field present: decodes as absent, both ways */
    ob_int(&o, 1, 5);
    ob_bytes(&o, 3, "", 0);
    ck_assert_int_gt(open_both(&o, &allocs), 0);
    ck_assert_int_eq(allocs, 0);

    /* shapes the fast path declines: protobuf-c decides, results agree */
    o.n = 0; /* a repeated scalar: last one wins */
    ob_int(&o, 1, 5);
    ob_int(&o, 1, 9);
    ck_assert_int_gt(open_both(&o, &allocs), 0);
    o.n = 0; /* a repeated bytes field */
    ob_int(&o, 1, 5);
    ob_bytes(&o, 3, "GET", 3);
    ob_bytes(&o, 3, "PUT", 3);
    ck_assert_int_gt(open_both(&o, &allocs), 0);
    o.n = 0; /* an unknown field */
    ob_int(&o, 1, 5);
    ob_int(&o, 99, 1);
    ck_assert_int_gt(open_both(&o, &allocs), 0);
    o.n = 0; /* a uint32 over 32 bits */
    ob_int(&o, 1, 5);
    ob_int(&o, 7, 0x100000000ull + 200);
    ck_assert_int_gt(open_both(&o, &allocs), 0);
    o.n = 0; /* wrong wire type */
    ob_int(&o, 1, 5);
    ob_int(&o, 3, 1);
    ck_assert_int_eq(open_both(&o, &allocs), MUX_ERR_FRAME_DECODE);
    o.n = 0; /* no stream id */
    ob_bytes(&o, 3, "GET", 3);
    ck_assert_int_eq(open_both(&o, &allocs), MUX_ERR_FRAME_DECODE);
    o.n = 0; /* stream id 0 */
    ob_int(&o, 1, 0);
    ck_assert_int_eq(open_both(&o, &allocs), MUX_ERR_FRAME_DECODE);
    o.n = 0; /* a header without a value */
    ob_int(&o, 1, 5);
    inner.n = 0;
    ob_bytes(&inner, 1, "n", 1);
    ob_bytes(&o, 9, inner.b, inner.n);
    ck_assert_int_eq(open_both(&o, &allocs), MUX_ERR_FRAME_DECODE);
    o.n = 0; /* a header with an extra field */
    ob_int(&o, 1, 5);
    inner.n = 0;
    ob_bytes(&inner, 1, "n", 1);
    ob_bytes(&inner, 2, "v", 1);
    ob_int(&inner, 3, 7);
    ob_bytes(&o, 9, inner.b, inner.n);
    ck_assert_int_gt(open_both(&o, &allocs), 0);
    o.n = 0; /* a header with its name twice */
    ob_int(&o, 1, 5);
    inner.n = 0;
    ob_bytes(&inner, 1, "n", 1);
    ob_bytes(&inner, 1, "m", 1);
    ob_bytes(&inner, 2, "v", 1);
    ob_bytes(&o, 9, inner.b, inner.n);
    ck_assert_int_gt(open_both(&o, &allocs), 0);
    o.n = 0; /* a bytes length running past the message */
    ob_int(&o, 1, 5);
    ob_varint(&o, 3 << 3 | 2);
    ob_varint(&o, 40);
    ck_assert_int_eq(open_both(&o, &allocs), MUX_ERR_FRAME_DECODE);
    o.n = 0; /* a truncated varint */
    ob_int(&o, 1, 5);
    ob_varint(&o, 7 << 3);
    o.b[o.n++] = 0x80;
    ck_assert_int_eq(open_both(&o, &allocs), MUX_ERR_FRAME_DECODE);
    o.n = 0; /* an over-long (7-byte) length prefix: protobuf-c takes at most 5 (found by fuzz_frame_decode) */
    ob_int(&o, 1, 3);
    ob_varint(&o, 3 << 3 | 2);
    static const uint8_t longlen[] = {0x85, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00};
    memcpy(o.b + o.n, longlen, sizeof(longlen));
    o.n += sizeof(longlen);
    memcpy(o.b + o.n, "GET/x", 5);
    o.n += 5;
    ck_assert_int_eq(open_both(&o, &allocs), MUX_ERR_FRAME_DECODE);
    o.n = 0;                                                                     /* an over-long (6-byte) tag: the same */
    static const uint8_t longtag[] = {0x88, 0x80, 0x80, 0x80, 0x80, 0x00, 0x03}; /* stream_id 3 */
    memcpy(o.b + o.n, longtag, sizeof(longtag));
    o.n += sizeof(longtag);
    ck_assert_int_eq(open_both(&o, &allocs), MUX_ERR_FRAME_DECODE);
    o.n = 0; /* in a header too */
    ob_int(&o, 1, 3);
    static const uint8_t hdr[] = {0x4a, 0x0b, 0x8a, 0x80, 0x80, 0x80, 0x80, 0x00, 0x01, 0x6e, 0x12, 0x01, 0x76};
    memcpy(o.b + o.n, hdr, sizeof(hdr));
    o.n += sizeof(hdr);
    ck_assert_int_eq(open_both(&o, &allocs), MUX_ERR_FRAME_DECODE);
    o.n = 0; /* a 5-byte length is fine both ways */
    ob_int(&o, 1, 3);
    ob_varint(&o, 3 << 3 | 2);
    static const uint8_t len5[] = {0x83, 0x80, 0x80, 0x80, 0x00};
    memcpy(o.b + o.n, len5, sizeof(len5));
    o.n += sizeof(len5);
    memcpy(o.b + o.n, "GET", 3);
    o.n += 3;
    ck_assert_int_gt(open_both(&o, &allocs), 0);
    o.n = 0; /* over the header limits */
    ob_int(&o, 1, 5);
    for (int i = 0; i < 101; i++)
        ob_header(&o, "h", "");
    ck_assert_int_eq(open_both(&o, &allocs), MUX_ERR_HEADER_LIMIT);
}
END_TEST

/* The OPEN examples of PROTOCOL.md §4.3, byte for byte, both ways. */
START_TEST(test_open_doc_examples)
{
    static const uint8_t req[] = {0x49, 0x22, 0x47, 0x08, 0x03, 0x10, 0x01, 0x1a, 0x03, 0x47, 0x45, 0x54, 0x22, 0x05, 0x68,
                                  0x74, 0x74, 0x70, 0x73, 0x2a, 0x10, 0x64, 0x65, 0x6d, 0x6f, 0x2e, 0x65, 0x78, 0x61, 0x6d,
                                  0x70, 0x6c, 0x65, 0x2e, 0x63, 0x6f, 0x6d, 0x32, 0x01, 0x2f, 0x4a, 0x0d, 0x0a, 0x06, 0x61,
                                  0x63, 0x63, 0x65, 0x70, 0x74, 0x12, 0x03, 0x2a, 0x2f, 0x2a, 0x52, 0x11, 0x32, 0x30, 0x33,
                                  0x2e, 0x30, 0x2e, 0x31, 0x31, 0x33, 0x2e, 0x37, 0x3a, 0x35, 0x31, 0x30, 0x30, 0x30};
    static const uint8_t resp[] = {0x20, 0x22, 0x1e, 0x08, 0x03, 0x38, 0xc8, 0x01, 0x42, 0x02, 0x4f,
                                   0x4b, 0x4a, 0x13, 0x0a, 0x0e, 0x63, 0x6f, 0x6e, 0x74, 0x65, 0x6e,
                                   0x74, 0x2d, 0x6c, 0x65, 0x6e, 0x67, 0x74, 0x68, 0x12, 0x01, 0x35};
    mux_header rh = {iov_str("accept"), iov_str("*/*")};
    mux_frame f;
    memset(&f, 0, sizeof(f));
    f.type = MUX_FRAME_OPEN;
    f.stream_id = 3;
    f.head.flags = MUX_HEAD_END_STREAM;
    f.head.method = iov_str("GET");
    f.head.scheme = iov_str("https");
    f.head.authority = iov_str("demo.example.com");
    f.head.path = iov_str("/");
    f.head.remote_addr = iov_str("203.0.113.7:51000");
    f.head.headers = &rh;
    f.head.nheaders = 1;
    mux_buf b;
    mux_buf_init(&b);
    ck_assert_int_eq(mux_frame_encode(&f, &b, NULL), 0);
    ck_assert_uint_eq(b.len, sizeof(req));
    ck_assert(memcmp(b.base, req, sizeof(req)) == 0);
    mux_frame d;
    ck_assert_int_eq(decode_raw(req, sizeof(req), &d), (ssize_t)sizeof(req));
    ck_assert(heads_same(&d.head, &f.head));
    ck_assert_uint_eq(d.stream_id, 3);
    mux_frame_clear(&d, NULL);
    mux_buf_free(&b, NULL);

    mux_header sh = {iov_str("content-length"), iov_str("5")};
    memset(&f, 0, sizeof(f));
    f.type = MUX_FRAME_OPEN;
    f.stream_id = 3;
    f.head.status = 200;
    f.head.reason = iov_str("OK");
    f.head.headers = &sh;
    f.head.nheaders = 1;
    mux_buf_init(&b);
    ck_assert_int_eq(mux_frame_encode(&f, &b, NULL), 0);
    ck_assert_uint_eq(b.len, sizeof(resp));
    ck_assert(memcmp(b.base, resp, sizeof(resp)) == 0);
    ck_assert_int_eq(decode_raw(resp, sizeof(resp), &d), (ssize_t)sizeof(resp));
    ck_assert(heads_same(&d.head, &f.head));
    mux_frame_clear(&d, NULL);
    mux_buf_free(&b, NULL);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("frame_codec_open");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_open_matches_protobuf_c);
    tcase_add_test(tc, test_open_local_queue);
    tcase_add_test(tc, test_open_odd_shapes_agree);
    tcase_add_test(tc, test_open_doc_examples);
    suite_add_tcase(s, tc);
    return s;
}

TM_CHECK_MAIN(make_suite)
