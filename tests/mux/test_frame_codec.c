/*
 * tunnelmux — tests of the frame record codec (frame_codec.h: src/mux/frame_encode.c, frame_decode.c, varint.h):
 * varints, round trips, the DATA fast path, record errors, header limits, allocation failures. The
 * OPEN fast paths against protobuf-c: tests/mux/test_frame_codec_open.c.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check_main.h"
#include "mux/failmalloc.h"
#include "frame_codec.h"
#include "mux/frame_records.h"
#include "tunnel.pb-c.h"

/* counting / failing allocator: tests/mux/failmalloc.h */

/* ---------------------------------------------------------------- varints */

START_TEST(test_varint)
{
    static const uint64_t vals[] = {0, 1, 127, 128, 300, 16383, 16384, UINT32_MAX, (uint64_t)1 << 63, UINT64_MAX};
    for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
        uint8_t b[10];
        size_t n = mux_varint_put(b, vals[i]);
        ck_assert_uint_eq(n, mux_varint_len(vals[i]));
        uint64_t v = 0;
        ck_assert_int_eq(mux_varint_get(b, n, &v), (int)n);
        ck_assert(v == vals[i]);
        /* every strict prefix is "truncated" */
        for (size_t k = 0; k < n; k++)
            ck_assert_int_eq(mux_varint_get(b, k, &v), 0);
    }
    ck_assert_uint_eq(mux_varint_len(UINT64_MAX), 10);
    /* 11 bytes: over-long */
    uint8_t over[11];
    memset(over, 0x80, sizeof(over));
    over[10] = 0x01;
    uint64_t v;
    ck_assert_int_eq(mux_varint_get(over, sizeof(over), &v), -1);
    /* 10th byte with bits past 2^64 */
    uint8_t big[10];
    memset(big, 0xff, 9);
    big[9] = 0x02;
    ck_assert_int_eq(mux_varint_get(big, sizeof(big), &v), -1);
}
END_TEST

/* ---------------------------------------------------------------- round trips */

START_TEST(test_rt_hello_welcome_refuse)
{
    mux_frame f, d;
    mux_buf b;
    memset(&f, 0, sizeof(f));
    f.type = MUX_FRAME_HELLO;
    f.hello.version = 1;
    f.hello.client_id = "demo";
    f.hello.auth_token = "s3cret";
    f.hello.capabilities = MUX_CAP_ZSTD;
    f.hello.software = "tunnelmux-client/0.1.0";
    f.initial_stream_window = 262144;
    f.initial_conn_window = 16777216;
    f.max_message_size = 10485760;
    round_trip(&f, &d, &b);
    ck_assert_uint_eq(d.hello.version, 1);
    ck_assert_str_eq(d.hello.client_id, "demo");
    ck_assert_str_eq(d.hello.auth_token, "s3cret");
    ck_assert_uint_eq(d.hello.capabilities, MUX_CAP_ZSTD);
    ck_assert_str_eq(d.hello.software, "tunnelmux-client/0.1.0");
    ck_assert_uint_eq(d.initial_stream_window, 262144);
    ck_assert_uint_eq(d.initial_conn_window, 16777216);
    ck_assert_uint_eq(d.max_message_size, 10485760);
    mux_frame_clear(&d, NULL);
    mux_buf_free(&b, NULL);

    /* absent strings decode as "" (client_id NULL is sent as the required empty string) */
    memset(&f, 0, sizeof(f));
    f.type = MUX_FRAME_HELLO;
    f.hello.version = 1;
    round_trip(&f, &d, &b);
    ck_assert_str_eq(d.hello.client_id, "");
    ck_assert_str_eq(d.hello.auth_token, "");
    ck_assert_str_eq(d.hello.software, "");
    mux_frame_clear(&d, NULL);
    mux_buf_free(&b, NULL);

    memset(&f, 0, sizeof(f));
    f.type = MUX_FRAME_WELCOME;
    f.welcome.version = 1;
    f.welcome.capabilities = MUX_CAP_ZSTD;
    f.welcome.ping_interval_ms = 15000;
    f.welcome.ping_timeout_ms = 45000;
    f.welcome.public_url = "https://demo.example.com";
    f.initial_stream_window = 1;
    f.initial_conn_window = 2;
    f.max_message_size = 3;
    round_trip(&f, &d, &b);
    ck_assert_uint_eq(d.welcome.version, 1);
    ck_assert_uint_eq(d.welcome.capabilities, MUX_CAP_ZSTD);
    ck_assert_uint_eq(d.welcome.ping_interval_ms, 15000);
    ck_assert_uint_eq(d.welcome.ping_timeout_ms, 45000);
    ck_assert_str_eq(d.welcome.public_url, "https://demo.example.com");
    ck_assert_uint_eq(d.initial_stream_window, 1);
    ck_assert_uint_eq(d.initial_conn_window, 2);
    ck_assert_uint_eq(d.max_message_size, 3);
    mux_frame_clear(&d, NULL);
    mux_buf_free(&b, NULL);

    memset(&f, 0, sizeof(f));
    f.type = MUX_FRAME_WELCOME;
    round_trip(&f, &d, &b);
    ck_assert_str_eq(d.welcome.public_url, "");
    mux_frame_clear(&d, NULL);
    mux_buf_free(&b, NULL);

    /* REFUSE: reason decodes NUL-terminated (usable as a C string) */
    static char longreason[600];
    memset(longreason, 'r', sizeof(longreason) - 1);
    const char *reasons[] = {"name taken", "", longreason};
    for (int i = 0; i < 3; i++) {
        memset(&f, 0, sizeof(f));
        f.type = MUX_FRAME_REFUSE;
        f.code = MUX_CODE_NAME_TAKEN;
        f.reason = iov_str(reasons[i]);
        f.retry_after_ms = 5000;
        round_trip(&f, &d, &b);
        ck_assert_uint_eq(d.code, MUX_CODE_NAME_TAKEN);
        ck_assert(iov_eq(d.reason, reasons[i]));
        ck_assert_str_eq((const char *)d.reason.base, reasons[i]);
        ck_assert_uint_eq(d.retry_after_ms, 5000);
        mux_frame_clear(&d, NULL);
        mux_buf_free(&b, NULL);
    }
    /* a NUL inside a REFUSE reason cannot be a proto string */
    memset(&f, 0, sizeof(f));
    f.type = MUX_FRAME_REFUSE;
    f.reason.base = (uint8_t *)"a\0b";
    f.reason.len = 3;
    mux_buf_init(&b);
    ck_assert_int_eq(mux_frame_encode(&f, &b, NULL), MUX_ERR_INVALID_ARGUMENT);
    mux_buf_free(&b, NULL);
}
END_TEST

START_TEST(test_rt_open)
{
    mux_frame f, d;
    mux_buf b;
    mux_header hs[40];
    char names[40][16], values[40][32];
    for (int i = 0; i < 40; i++) {
        snprintf(names[i], sizeof(names[i]), "x-h%d", i);
        snprintf(values[i], sizeof(values[i]), "value-%d", i * 7);
        hs[i].name = iov_str(names[i]);
        hs[i].value = iov_str(values[i]);
    }
    hs[3].value = iov_str(""); /* empty value survives */

    /* request head: stack headers (3) and allocated headers (40) */
    size_t counts[] = {0, 3, 40};
    for (int c = 0; c < 3; c++) {
        memset(&f, 0, sizeof(f));
        f.type = MUX_FRAME_OPEN;
        f.stream_id = 7;
        f.head.flags = MUX_HEAD_END_STREAM | MUX_HEAD_UPGRADE;
        f.head.method = iov_str("POST");
        f.head.scheme = iov_str("https");
        f.head.authority = iov_str("demo.example.com");
        f.head.path = iov_str("/api/v1/users?x=1");
        f.head.remote_addr = iov_str("[::1]:51234");
        f.head.headers = hs;
        f.head.nheaders = counts[c];
        round_trip(&f, &d, &b);
        ck_assert_uint_eq(d.stream_id, 7);
        ck_assert_uint_eq(d.head.flags, MUX_HEAD_END_STREAM | MUX_HEAD_UPGRADE);
        ck_assert(iov_eq(d.head.method, "POST"));
        ck_assert(iov_eq(d.head.scheme, "https"));
        ck_assert(iov_eq(d.head.authority, "demo.example.com"));
        ck_assert(iov_eq(d.head.path, "/api/v1/users?x=1"));
        ck_assert(iov_eq(d.head.remote_addr, "[::1]:51234"));
        ck_assert_uint_eq(d.head.status, 0);
        ck_assert_uint_eq(d.head.reason.len, 0);
        ck_assert_uint_eq(d.head.nheaders, counts[c]);
        for (size_t i = 0; i < counts[c]; i++) {
            ck_assert(iov_eq(d.head.headers[i].name, names[i]));
            ck_assert(iov_eq(d.head.headers[i].value, i == 3 ? "" : values[i]));
        }
        mux_frame_clear(&d, NULL);
        mux_buf_free(&b, NULL);
    }

    /* response head */
    memset(&f, 0, sizeof(f));
    f.type = MUX_FRAME_OPEN;
    f.stream_id = 0xfffffffdu;
    f.head.status = 404;
    f.head.reason = iov_str("Not Found");
    f.head.headers = hs;
    f.head.nheaders = 2;
    round_trip(&f, &d, &b);
    ck_assert_uint_eq(d.stream_id, 0xfffffffdu);
    ck_assert_uint_eq(d.head.status, 404);
    ck_assert(iov_eq(d.head.reason, "Not Found"));
    ck_assert_uint_eq(d.head.method.len, 0);
    ck_assert_uint_eq(d.head.nheaders, 2);
    mux_frame_clear(&d, NULL);
    mux_buf_free(&b, NULL);

    /* binary header bytes (NUL, 0xff) are bytes, not strings */
    mux_header bin = {{(uint8_t *)"a\0b", 3}, {(uint8_t *)"\xff\x00", 2}};
    f.head.headers = &bin;
    f.head.nheaders = 1;
    round_trip(&f, &d, &b);
    ck_assert_uint_eq(d.head.headers[0].name.len, 3);
    ck_assert(memcmp(d.head.headers[0].name.base, "a\0b", 3) == 0);
    ck_assert(memcmp(d.head.headers[0].value.base, "\xff\x00", 2) == 0);
    mux_frame_clear(&d, NULL);
    mux_buf_free(&b, NULL);

    /* stream id 0 and NULL bases are refused by the encoder */
    f.stream_id = 0;
    mux_buf_init(&b);
    ck_assert_int_eq(mux_frame_encode(&f, &b, NULL), MUX_ERR_INVALID_ARGUMENT);
    f.stream_id = 1;
    f.head.path.base = NULL;
    f.head.path.len = 3;
    ck_assert_int_eq(mux_frame_encode(&f, &b, NULL), MUX_ERR_INVALID_ARGUMENT);
    ck_assert_uint_eq(mux_buf_size(&b), 0);
    mux_buf_free(&b, NULL);
}
END_TEST

START_TEST(test_rt_control)
{
    mux_frame f, d;
    mux_buf b;

    memset(&f, 0, sizeof(f));
    f.type = MUX_FRAME_WINDOW;
    f.stream_id = 0; /* connection window */
    f.increment = 0x7fffffff;
    round_trip(&f, &d, &b);
    ck_assert_uint_eq(d.stream_id, 0);
    ck_assert_uint_eq(d.increment, 0x7fffffff);
    mux_frame_clear(&d, NULL);
    mux_buf_free(&b, NULL);

    f.stream_id = 9;
    f.increment = 65536;
    round_trip(&f, &d, &b);
    ck_assert_uint_eq(d.stream_id, 9);
    ck_assert_uint_eq(d.increment, 65536);
    mux_frame_clear(&d, NULL);
    mux_buf_free(&b, NULL);

    memset(&f, 0, sizeof(f));
    f.type = MUX_FRAME_CLOSE;
    f.stream_id = 11;
    f.code = MUX_CODE_CANCEL;
    f.reason = iov_str("client went away");
    round_trip(&f, &d, &b);
    ck_assert_uint_eq(d.stream_id, 11);
    ck_assert_uint_eq(d.code, MUX_CODE_CANCEL);
    ck_assert(iov_eq(d.reason, "client went away"));
    mux_frame_clear(&d, NULL);
    mux_buf_free(&b, NULL);

    uint64_t opaques[] = {0, 1, UINT64_MAX};
    for (int i = 0; i < 3; i++) {
        memset(&f, 0, sizeof(f));
        f.type = i == 1 ? MUX_FRAME_PONG : MUX_FRAME_PING;
        f.opaque = opaques[i];
        round_trip(&f, &d, &b);
        ck_assert(d.opaque == opaques[i]);
        mux_frame_clear(&d, NULL);
        mux_buf_free(&b, NULL);
        f.type = i == 1 ? MUX_FRAME_PING : MUX_FRAME_PONG;
        round_trip(&f, &d, &b);
        ck_assert(d.opaque == opaques[i]);
        mux_frame_clear(&d, NULL);
        mux_buf_free(&b, NULL);
    }

    memset(&f, 0, sizeof(f));
    f.type = MUX_FRAME_GOAWAY;
    f.last_stream_id = 101;
    f.code = MUX_CODE_SHUTDOWN;
    f.reason = iov_str("bye");
    round_trip(&f, &d, &b);
    ck_assert_uint_eq(d.last_stream_id, 101);
    ck_assert_uint_eq(d.code, MUX_CODE_SHUTDOWN);
    ck_assert(iov_eq(d.reason, "bye"));
    mux_frame_clear(&d, NULL);
    mux_buf_free(&b, NULL);

    /* unknown type */
    memset(&f, 0, sizeof(f));
    f.type = (mux_frame_type)42;
    mux_buf_init(&b);
    ck_assert_int_eq(mux_frame_encode(&f, &b, NULL), MUX_ERR_INVALID_ARGUMENT);
    ck_assert_uint_eq(mux_frame_encoded_size(&f), 0);
    f.type = MUX_FRAME_CLOSE; /* stream id 0 */
    ck_assert_int_eq(mux_frame_encode(&f, &b, NULL), MUX_ERR_INVALID_ARGUMENT);
    mux_buf_free(&b, NULL);
}
END_TEST

/* ---------------------------------------------------------------- DATA fast path */

START_TEST(test_data_prefix_cross_check)
{
    static uint8_t payload[200000];
    for (size_t i = 0; i < sizeof(payload); i++)
        payload[i] = (uint8_t)(i * 31 + 7);
    size_t lens[] = {0, 1, 127, 128, 8192, 16384, 200000};
    uint32_t ids[] = {1, 127, 128, 0xffffffffu};
    for (size_t li = 0; li < sizeof(lens) / sizeof(lens[0]); li++) {
        for (size_t ii = 0; ii < 4; ii++) {
            for (int fin = 0; fin <= 1; fin++) {
                uint8_t pre[MUX_DATA_PREFIX_MAX];
                size_t pn = mux_frame_data_prefix(pre, ids[ii], fin, lens[li]);
                ck_assert_uint_le(pn, MUX_DATA_PREFIX_MAX);
                mux_buf b;
                mux_buf_init(&b);
                ck_assert_int_eq(mux_buf_append(&b, pre, pn, 0, NULL), 0);
                ck_assert_int_eq(mux_buf_append(&b, payload, lens[li], 0, NULL), 0);

                /* same bytes as mux_frame_encode of the DATA frame */
                mux_frame f;
                memset(&f, 0, sizeof(f));
                f.type = MUX_FRAME_DATA;
                f.stream_id = ids[ii];
                f.fin = fin;
                f.payload = payload;
                f.payload_len = lens[li];
                mux_buf e;
                mux_buf_init(&e);
                ck_assert_int_eq(mux_frame_encode(&f, &e, NULL), 0);
                ck_assert_uint_eq(mux_buf_size(&e), mux_buf_size(&b));
                ck_assert(memcmp(e.base, b.base, b.len) == 0);
                ck_assert_uint_eq(mux_frame_encoded_size(&f), b.len);
                mux_buf_free(&e, NULL);

                /* fast path: points into the input */
                mux_frame d;
                ck_assert_int_eq(decode_raw(b.base, b.len, &d), (ssize_t)b.len);
                ck_assert_int_eq(d.type, MUX_FRAME_DATA);
                ck_assert_uint_eq(d.stream_id, ids[ii]);
                ck_assert_int_eq(d.fin, fin);
                ck_assert_uint_eq(d.payload_len, lens[li]);
                if (lens[li] != 0) {
                    ck_assert(d.payload == b.base + pn);
                    ck_assert(memcmp(d.payload, payload, lens[li]) == 0);
                }
                ck_assert_ptr_null(d._pb);
                mux_frame_clear(&d, NULL);

                /* protobuf-c reads the same bytes the same way */
                uint64_t body;
                int vn = mux_varint_get(b.base, b.len, &body);
                ck_assert_int_gt(vn, 0);
                ck_assert_uint_eq(vn + body, b.len);
                Tunnelmux__Frame *m = tunnelmux__frame__unpack(NULL, body, b.base + vn);
                ck_assert_ptr_nonnull(m);
                ck_assert_int_eq(m->kind_case, TUNNELMUX__FRAME__KIND_DATA);
                ck_assert_uint_eq(m->data->stream_id, ids[ii]);
                ck_assert_int_eq(m->data->has_fin, fin);
                ck_assert_int_eq(!!m->data->fin, fin);
                ck_assert_uint_eq(m->data->payload.len, lens[li]);
                if (lens[li] != 0)
                    ck_assert(memcmp(m->data->payload.data, payload, lens[li]) == 0);
                tunnelmux__frame__free_unpacked(m, NULL);
                mux_buf_free(&b, NULL);
            }
        }
    }
}
END_TEST

START_TEST(test_data_other_orders)
{
    mux_frame d;
    uint8_t rec[64];
    /* payload first, then fin, then stream_id */
    const uint8_t a[] = {0x2A, 0x09, 0x1A, 0x03, 'a', 'b', 'c', 0x10, 0x01, 0x08, 0x05};
    ck_assert_int_eq(decode_raw(rec, make_record(rec, a, sizeof(a)), &d), 1 + (ssize_t)sizeof(a));
    ck_assert_uint_eq(d.stream_id, 5);
    ck_assert_int_eq(d.fin, 1);
    ck_assert_uint_eq(d.payload_len, 3);
    ck_assert(memcmp(d.payload, "abc", 3) == 0);
    ck_assert_ptr_null(d._pb);
    mux_frame_clear(&d, NULL);

    /* unknown fields of wire types 0, 1, 2, 5 skipped; no payload; fin 0 explicit; repeated id: last wins */
    uint8_t b[] = {0x2A, 0x00, 0x08, 0x02, 0x20, 0x96, 0x01,       /* id 2, f4 varint */
                   0x29, 1,    2,    3,    4,    5,    6,    7, 8, /* f5 i64 */
                   0x32, 0x02, 'z',  'z',                          /* f6 len */
                   0x3D, 1,    2,    3,    4,                      /* f7 i32 */
                   0x10, 0x00, 0x08, 0x09};                        /* fin 0, id 9 */
    b[1] = (uint8_t)(sizeof(b) - 2);
    ck_assert_int_eq(decode_raw(rec, make_record(rec, b, sizeof(b)), &d), 1 + (ssize_t)sizeof(b));
    ck_assert_uint_eq(d.stream_id, 9);
    ck_assert_int_eq(d.fin, 0);
    ck_assert_uint_eq(d.payload_len, 0);
    mux_frame_clear(&d, NULL);
    /* protobuf-c agrees */
    Tunnelmux__Frame *m = tunnelmux__frame__unpack(NULL, sizeof(b), b);
    ck_assert_ptr_nonnull(m);
    ck_assert_uint_eq(m->data->stream_id, 9);
    tunnelmux__frame__free_unpacked(m, NULL);

    /* a DATA record that is not exactly one Frame.data field takes the protobuf-c path */
    const uint8_t c[] = {0x2A, 0x05, 0x08, 0x03, 0x1A, 0x01, 'q', 0x78, 0x01}; /* + Frame field 15 */
    ck_assert_int_eq(decode_raw(rec, make_record(rec, c, sizeof(c)), &d), 1 + (ssize_t)sizeof(c));
    ck_assert_int_eq(d.type, MUX_FRAME_DATA);
    ck_assert_uint_eq(d.stream_id, 3);
    ck_assert_uint_eq(d.payload_len, 1);
    ck_assert_int_eq(d.payload[0], 'q');
    ck_assert_ptr_nonnull(d._pb);
    mux_frame_clear(&d, NULL);

    /* non-minimal Frame tag (0xAA 0x00 = field 5, LEN) still takes the fast path */
    const uint8_t e[] = {0xAA, 0x00, 0x02, 0x08, 0x04};
    ck_assert_int_eq(decode_raw(rec, make_record(rec, e, sizeof(e)), &d), 1 + (ssize_t)sizeof(e));
    ck_assert_uint_eq(d.stream_id, 4);
    ck_assert_ptr_null(d._pb);
    mux_frame_clear(&d, NULL);
}
END_TEST

START_TEST(test_data_errors)
{
    mux_frame d;
    uint8_t rec[64];
    struct {
        uint8_t bytes[16];
        size_t len;
        const char *what;
    } cases[] = {
        {{0x2A, 0x02, 0x08, 0x00}, 4, "stream_id 0"},
        {{0x2A, 0x02, 0x10, 0x01}, 4, "no stream_id"},
        {{0x2A, 0x00}, 2, "empty Data"},
        {{0x2A, 0x03, 0x08, 0x01, 0x1B}, 5, "group start"},
        {{0x2A, 0x04, 0x08, 0x01, 0x1C, 0x00}, 6, "group end"},
        {{0x2A, 0x03, 0x08, 0x01, 0x1E}, 5, "wire type 6"},
        {{0x2A, 0x04, 0x08, 0x01, 0x1A, 0x05}, 6, "payload past the end"},
        {{0x2A, 0x02, 0x09, 0x01}, 4, "stream_id with wire type 1"},
        {{0x2A, 0x03, 0x0A, 0x01, 0x01}, 5, "stream_id with wire type 2"},
        {{0x2A, 0x02, 0x08, 0x81}, 4, "truncated stream_id varint"},
        {{0x2A, 0x03, 0x08, 0x01, 0x00}, 5, "field number 0"},
        {{0x2A, 0x03, 0x08, 0x01, 0x29}, 5, "truncated fixed64"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t n = make_record(rec, cases[i].bytes, cases[i].len);
        ssize_t rv = decode_raw(rec, n, &d);
        ck_assert_msg(rv == MUX_ERR_FRAME_DECODE, "%s: got %zd", cases[i].what, rv);
        ck_assert_int_eq(d.type, MUX_FRAME_DATA);
        ck_assert_ptr_null(d._pb);
        mux_frame_clear(&d, NULL);
        /* protobuf-c rejects them too */
        Tunnelmux__Frame *m = tunnelmux__frame__unpack(NULL, cases[i].len, cases[i].bytes);
        int ok = m != NULL && m->kind_case == TUNNELMUX__FRAME__KIND_DATA && m->data->stream_id != 0;
        ck_assert_msg(!ok, "%s: protobuf-c accepts it", cases[i].what);
        if (m != NULL)
            tunnelmux__frame__free_unpacked(m, NULL);
    }
    /* encoder refuses DATA on stream 0 */
    mux_frame f;
    memset(&f, 0, sizeof(f));
    f.type = MUX_FRAME_DATA;
    mux_buf b;
    mux_buf_init(&b);
    ck_assert_int_eq(mux_frame_encode(&f, &b, NULL), MUX_ERR_INVALID_ARGUMENT);
    ck_assert_uint_eq(mux_frame_encoded_size(&f), 0);
    mux_buf_free(&b, NULL);
}
END_TEST

/* ---------------------------------------------------------------- record errors */

START_TEST(test_record_errors)
{
    mux_frame d;
    const char *reason;
    /* truncated varint */
    const uint8_t t[] = {0x80, 0x80};
    ck_assert_int_eq(mux_frame_decode(t, sizeof(t), &d, NO_LIMIT, NO_LIMIT, NULL, &reason), MUX_ERR_VARINT);
    ck_assert_int_eq(mux_frame_decode(t, 0, &d, NO_LIMIT, NO_LIMIT, NULL, NULL), MUX_ERR_VARINT);
    /* 11-byte varint */
    uint8_t over[20];
    memset(over, 0x80, 10);
    memset(over + 10, 0x01, 10);
    ck_assert_int_eq(mux_frame_decode(over, sizeof(over), &d, NO_LIMIT, NO_LIMIT, NULL, &reason), MUX_ERR_VARINT);
    ck_assert_str_ne(reason, "");
    /* length past the end */
    const uint8_t p[] = {0x05, 0x2A, 0x02, 0x08};
    ck_assert_int_eq(mux_frame_decode(p, sizeof(p), &d, NO_LIMIT, NO_LIMIT, NULL, &reason), MUX_ERR_FRAME_TOO_LARGE);
    const uint8_t huge[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0x00};
    ck_assert_int_eq(mux_frame_decode(huge, sizeof(huge), &d, NO_LIMIT, NO_LIMIT, NULL, &reason), MUX_ERR_FRAME_TOO_LARGE);
    /* garbage protobuf */
    const uint8_t g[] = {0x06, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    ck_assert_int_eq(mux_frame_decode(g, sizeof(g), &d, NO_LIMIT, NO_LIMIT, NULL, &reason), MUX_ERR_FRAME_DECODE);
    ck_assert_ptr_null(d._pb);
    /* Frame without a oneof: empty, and only an unknown field */
    const uint8_t e[] = {0x00};
    ck_assert_int_eq(mux_frame_decode(e, sizeof(e), &d, NO_LIMIT, NO_LIMIT, NULL, &reason), MUX_ERR_FRAME_DECODE);
    const uint8_t u[] = {0x02, 0x78, 0x01};
    ck_assert_int_eq(mux_frame_decode(u, sizeof(u), &d, NO_LIMIT, NO_LIMIT, NULL, &reason), MUX_ERR_FRAME_DECODE);
    ck_assert_ptr_null(d._pb);
    /* HELLO without its required client_id */
    const uint8_t h[] = {0x04, 0x0A, 0x02, 0x08, 0x01};
    ck_assert_int_eq(mux_frame_decode(h, sizeof(h), &d, NO_LIMIT, NO_LIMIT, NULL, &reason), MUX_ERR_FRAME_DECODE);
    /* OPEN and CLOSE with stream id 0 */
    const uint8_t o[] = {0x04, 0x22, 0x02, 0x08, 0x00};
    ck_assert_int_eq(mux_frame_decode(o, sizeof(o), &d, NO_LIMIT, NO_LIMIT, NULL, &reason), MUX_ERR_FRAME_DECODE);
    ck_assert_ptr_null(d._pb);
    const uint8_t c[] = {0x04, 0x3A, 0x02, 0x08, 0x00};
    ck_assert_int_eq(mux_frame_decode(c, sizeof(c), &d, NO_LIMIT, NO_LIMIT, NULL, &reason), MUX_ERR_FRAME_DECODE);
    /* WINDOW on 0 is fine */
    const uint8_t w[] = {0x06, 0x32, 0x04, 0x08, 0x00, 0x10, 0x01};
    ck_assert_int_eq(mux_frame_decode(w, sizeof(w), &d, NO_LIMIT, NO_LIMIT, NULL, &reason), 7);
    ck_assert_int_eq(d.type, MUX_FRAME_WINDOW);
    mux_frame_clear(&d, NULL);
}
END_TEST

START_TEST(test_every_prefix)
{
    /* every truncation of a valid record is an error, never a crash (ASan checks the reads) */
    mux_header hs[2] = {{iov_str("host"), iov_str("a.example.com")}, {iov_str("accept"), iov_str("*/*")}};
    mux_frame f;
    memset(&f, 0, sizeof(f));
    f.type = MUX_FRAME_OPEN;
    f.stream_id = 300;
    f.head.method = iov_str("GET");
    f.head.path = iov_str("/");
    f.head.headers = hs;
    f.head.nheaders = 2;
    mux_buf b;
    mux_buf_init(&b);
    ck_assert_int_eq(mux_frame_encode(&f, &b, NULL), 0);
    size_t n = b.len;
    for (size_t k = 0; k < n; k++) {
        uint8_t *copy = malloc(k ? k : 1);
        memcpy(copy, b.base, k);
        mux_frame d;
        ssize_t rv = mux_frame_decode(copy, k, &d, NO_LIMIT, NO_LIMIT, NULL, NULL);
        ck_assert(rv == MUX_ERR_VARINT || rv == MUX_ERR_FRAME_TOO_LARGE);
        free(copy);
    }
    /* a batch of records decodes in sequence */
    mux_frame g;
    memset(&g, 0, sizeof(g));
    g.type = MUX_FRAME_DATA;
    g.stream_id = 300;
    g.payload = (const uint8_t *)"hello";
    g.payload_len = 5;
    g.fin = 1;
    ck_assert_int_eq(mux_frame_encode(&g, &b, NULL), 0);
    g.type = MUX_FRAME_PING;
    g.opaque = 77;
    ck_assert_int_eq(mux_frame_encode(&g, &b, NULL), 0);
    size_t off = 0;
    int types[3], k = 0;
    while (off < b.len && k < 3) {
        mux_frame d;
        ssize_t rv = mux_frame_decode(b.base + off, b.len - off, &d, NO_LIMIT, NO_LIMIT, NULL, NULL);
        ck_assert_int_gt(rv, 0);
        types[k++] = d.type;
        off += (size_t)rv;
        mux_frame_clear(&d, NULL);
    }
    ck_assert_uint_eq(off, b.len);
    ck_assert_int_eq(types[0], MUX_FRAME_OPEN);
    ck_assert_int_eq(types[1], MUX_FRAME_DATA);
    ck_assert_int_eq(types[2], MUX_FRAME_PING);
    mux_buf_free(&b, NULL);
}
END_TEST

START_TEST(test_header_limits)
{
    mux_header hs[5];
    for (int i = 0; i < 5; i++) {
        hs[i].name = iov_str("name");   /* 4 */
        hs[i].value = iov_str("value"); /* 5 */
    }
    mux_frame f;
    memset(&f, 0, sizeof(f));
    f.type = MUX_FRAME_OPEN;
    f.stream_id = 13;
    f.head.headers = hs;
    f.head.nheaders = 5;
    mux_buf b;
    mux_buf_init(&b);
    ck_assert_int_eq(mux_frame_encode(&f, &b, NULL), 0);
    failmalloc st;
    mux_mem mem = failmalloc_mem(&st, -1, 0);
    mux_frame d;
    const char *reason;
    /* exactly at the limits: fine */
    ck_assert_int_eq(mux_frame_decode(b.base, b.len, &d, 5, 45, &mem, &reason), (ssize_t)b.len);
    mux_frame_clear(&d, &mem);
    /* one header too many */
    ck_assert_int_eq(mux_frame_decode(b.base, b.len, &d, 4, 45, &mem, &reason), MUX_ERR_HEADER_LIMIT);
    ck_assert_int_eq(d.type, MUX_FRAME_OPEN);
    ck_assert_uint_eq(d.stream_id, 13);
    ck_assert_str_ne(reason, "");
    mux_frame_clear(&d, &mem); /* optional, harmless */
    /* one byte too many */
    ck_assert_int_eq(mux_frame_decode(b.base, b.len, &d, 5, 44, &mem, &reason), MUX_ERR_HEADER_LIMIT);
    ck_assert_int_eq(d.type, MUX_FRAME_OPEN);
    ck_assert_uint_eq(d.stream_id, 13);
    ck_assert_ptr_null(d._pb);
    ck_assert_int_eq(st.live, 0);
    /* the record's extent is still known: varint + length */
    uint64_t body;
    int vn = mux_varint_get(b.base, b.len, &body);
    ck_assert_uint_eq(vn + body, b.len);
    mux_buf_free(&b, NULL);
}
END_TEST

START_TEST(test_nomem)
{
    mux_header hs[20];
    for (int i = 0; i < 20; i++) {
        hs[i].name = iov_str("x-name");
        hs[i].value = iov_str("some value");
    }
    mux_frame f;
    memset(&f, 0, sizeof(f));
    f.type = MUX_FRAME_OPEN;
    f.stream_id = 1;
    f.head.method = iov_str("GET");
    f.head.headers = hs;
    f.head.nheaders = 20;
    failmalloc st;
    mux_mem mem;
    mux_buf b;
    /* encode: fail each allocation in turn, then succeed */
    int ok = 0;
    for (long k = 0; k < 50 && !ok; k++) {
        mem = failmalloc_mem(&st, k, 0);
        mux_buf_init(&b);
        int rv = mux_frame_encode(&f, &b, &mem);
        ck_assert(rv == 0 || rv == MUX_ERR_NOMEM);
        ok = rv == 0;
        if (!ok)
            ck_assert_uint_eq(b.len, 0);
        mux_buf_free(&b, &mem);
        ck_assert_int_eq(st.live, 0);
    }
    ck_assert(ok);
    mux_buf_init(&b);
    ck_assert_int_eq(mux_frame_encode(&f, &b, NULL), 0);
    ok = 0;
    for (long k = 0; k < 200 && !ok; k++) {
        mem = failmalloc_mem(&st, k, 0);
        mux_frame d;
        const char *reason;
        ssize_t rv = mux_frame_decode(b.base, b.len, &d, NO_LIMIT, NO_LIMIT, &mem, &reason);
        ck_assert_msg(rv == (ssize_t)b.len || rv == MUX_ERR_NOMEM, "k=%ld rv=%zd (%s)", k, rv, reason);
        ok = rv > 0;
        mux_frame_clear(&d, &mem);
        ck_assert_int_eq(st.live, 0);
    }
    ck_assert(ok);
    mux_buf_free(&b, NULL);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("frame_codec");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_varint);
    tcase_add_test(tc, test_rt_hello_welcome_refuse);
    tcase_add_test(tc, test_rt_open);
    tcase_add_test(tc, test_rt_control);
    tcase_add_test(tc, test_data_prefix_cross_check);
    tcase_add_test(tc, test_data_other_orders);
    tcase_add_test(tc, test_data_errors);
    tcase_add_test(tc, test_record_errors);
    tcase_add_test(tc, test_every_prefix);
    tcase_add_test(tc, test_header_limits);
    tcase_add_test(tc, test_nomem);
    suite_add_tcase(s, tc);
    return s;
}

TM_CHECK_MAIN(make_suite)
