/*
 * tunnelmux tests — helpers of the frame codec suites (tests/mux/test_frame_codec*.c): NO_LIMIT,
 * iovecs from C strings, the encode/decode round trip, and building/decoding raw records.
 * Header-only, all `static inline`, so a suite that uses part of it still builds with -Werror.
 */
#ifndef TM_TESTS_MUX_FRAME_RECORDS_H
#define TM_TESTS_MUX_FRAME_RECORDS_H

#include <check.h>
#include <stdint.h>
#include <string.h>

#include "frame_codec.h"

#define NO_LIMIT UINT32_MAX

static inline mux_iovec iov_str(const char *s)
{
    mux_iovec v = {(uint8_t *)(uintptr_t)s, strlen(s)};
    return v;
}

static inline int iov_eq(mux_iovec a, const char *s)
{
    return a.len == strlen(s) && (a.len == 0 || memcmp(a.base, s, a.len) == 0);
}

/* Encodes |f|, checks encoded_size, decodes it back into |out| (caller clears). */
static inline void round_trip(const mux_frame *f, mux_frame *out, mux_buf *b)
{
    mux_buf_init(b);
    ck_assert_int_eq(mux_frame_encode(f, b, NULL), 0);
    ck_assert_uint_eq(mux_buf_size(b), mux_frame_encoded_size(f));
    const char *reason = NULL;
    ssize_t n = mux_frame_decode(b->base + b->pos, mux_buf_size(b), out, NO_LIMIT, NO_LIMIT, NULL, &reason);
    ck_assert_msg(n == (ssize_t)mux_buf_size(b), "decode returned %zd (%s)", n, reason ? reason : "");
    ck_assert_int_eq(out->type, f->type);
}

/* Builds a record (varint length + body) from a Frame body. */
static inline size_t make_record(uint8_t *out, const uint8_t *body, size_t len)
{
    size_t n = mux_varint_put(out, len);
    memcpy(out + n, body, len);
    return n + len;
}

static inline ssize_t decode_raw(const uint8_t *rec, size_t len, mux_frame *f)
{
    const char *reason = NULL;
    ssize_t n = mux_frame_decode(rec, len, f, NO_LIMIT, NO_LIMIT, NULL, &reason);
    ck_assert_ptr_nonnull(reason);
    return n;
}

#endif
