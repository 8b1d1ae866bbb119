/*
 * tunnelmux — unit tests for src/mux/buf.c, mem.c and err.c.
 */
#include <stdlib.h>
#include <string.h>

#include <protobuf-c/protobuf-c.h>

#include "buf.h"
#include "check_main.h"
#include "mux/failmalloc.h"
#include "mem.h"
#include "mux/err.h"

/* the failing allocator: tests/mux/failmalloc.h (fails from allocation index N on) */

START_TEST(test_buf_append_and_consume)
{
    mux_buf b;
    mux_buf_init(&b);
    ck_assert_uint_eq(mux_buf_size(&b), 0);
    uint8_t data[1000];
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (uint8_t)i;
    for (int i = 0; i < 10; i++)
        ck_assert_int_eq(mux_buf_append(&b, data, sizeof(data), 0, NULL), 0);
    ck_assert_uint_eq(mux_buf_size(&b), 10000);
    ck_assert_uint_ge(b.cap, 10000);
    ck_assert_int_eq(memcmp(b.base + 3000, data, sizeof(data)), 0);
    b.pos += 9500;
    ck_assert_uint_eq(mux_buf_size(&b), 500);
    mux_buf_reset(&b);
    ck_assert_uint_eq(mux_buf_size(&b), 0);
    mux_buf_free(&b, NULL);
    ck_assert_ptr_null(b.base);
    ck_assert_uint_eq(b.cap, 0);
}
END_TEST

START_TEST(test_buf_compacts_before_growing)
{
    mux_buf b;
    mux_buf_init(&b);
    uint8_t data[1024];
    memset(data, 'x', sizeof(data));
    ck_assert_int_eq(mux_buf_append(&b, data, 200, 0, NULL), 0);
    size_t cap = b.cap;
    uint8_t *base = b.base;
    ck_assert_uint_ge(cap, 200);
    ck_assert_uint_le(cap, sizeof(data));
    b.pos = 150; /* 50 unread bytes */
    data[0] = 'y';
    /* cap - 50 bytes are free once compacted: fits without growing */
    ck_assert_int_eq(mux_buf_append(&b, data, cap - 50, 0, NULL), 0);
    ck_assert_uint_eq(b.cap, cap);
    ck_assert_ptr_eq(b.base, base);
    ck_assert_uint_eq(b.pos, 0);
    ck_assert_uint_eq(b.len, cap);
    ck_assert_int_eq(b.base[49], 'x');
    ck_assert_int_eq(b.base[50], 'y');
    mux_buf_free(&b, NULL);
}
END_TEST

START_TEST(test_buf_grows_geometrically)
{
    mux_buf b;
    mux_buf_init(&b);
    int reallocs = 0;
    size_t lastcap = 0;
    uint8_t byte = 1;
    for (int i = 0; i < 100000; i++) {
        ck_assert_int_eq(mux_buf_append(&b, &byte, 1, 0, NULL), 0);
        if (b.cap != lastcap) {
            reallocs++;
            lastcap = b.cap;
        }
    }
    ck_assert_uint_eq(mux_buf_size(&b), 100000);
    ck_assert_int_le(reallocs, 12); /* 256 .. 131072 */
    mux_buf_free(&b, NULL);
}
END_TEST

START_TEST(test_buf_limit)
{
    mux_buf b;
    mux_buf_init(&b);
    uint8_t data[600];
    memset(data, 1, sizeof(data));
    ck_assert_int_eq(mux_buf_append(&b, data, 600, 1000, NULL), 0);
    ck_assert_int_eq(mux_buf_append(&b, data, 400, 1000, NULL), 0);
    ck_assert_uint_le(b.cap, 1000);
    ck_assert_uint_eq(mux_buf_size(&b), 1000);
    ck_assert_int_eq(mux_buf_append(&b, data, 1, 1000, NULL), MUX_ERR_MESSAGE_TOO_LARGE);
    ck_assert_uint_eq(mux_buf_size(&b), 1000); /* unchanged */
    /* consuming makes room again under the same limit */
    b.pos += 500;
    ck_assert_int_eq(mux_buf_append(&b, data, 500, 1000, NULL), 0);
    ck_assert_uint_le(b.cap, 1000);
    ck_assert_int_eq(mux_buf_reserve(&b, SIZE_MAX, 0, NULL), MUX_ERR_MESSAGE_TOO_LARGE);
    mux_buf_free(&b, NULL);
}
END_TEST

START_TEST(test_buf_nomem_and_shrink)
{
    failmalloc fm;
    mux_mem mem = failmalloc_mem(&fm, 1, 0);
    mux_buf b;
    mux_buf_init(&b);
    uint8_t data[300];
    memset(data, 7, sizeof(data));
    ck_assert_int_eq(mux_buf_append(&b, data, 100, 0, &mem), 0);
    ck_assert_int_eq(fm.live, 1);
    ck_assert_int_eq(mux_buf_append(&b, data, 300, 0, &mem), MUX_ERR_NOMEM);
    ck_assert_uint_eq(mux_buf_size(&b), 100); /* content preserved */
    ck_assert_int_eq(b.base[99], 7);
    fm.fail_at = -1;
    ck_assert_int_eq(mux_buf_append(&b, data, 300, 0, &mem), 0);
    ck_assert_uint_ge(b.cap, 400);
    b.pos = b.len - 10;
    mux_buf_shrink(&b, 64, &mem);
    ck_assert_uint_eq(b.cap, 64);
    ck_assert_uint_eq(mux_buf_size(&b), 10);
    ck_assert_uint_eq(b.pos, 0);
    b.pos = b.len;
    mux_buf_shrink(&b, 16, &mem);
    ck_assert_ptr_null(b.base);
    ck_assert_int_eq(fm.live, 0);
    mux_buf_free(&b, &mem);
}
END_TEST

START_TEST(test_mem_wrappers)
{
    failmalloc fm;
    mux_mem mem = failmalloc_mem(&fm, -1, 0);
    uint8_t *p = mux_mem_calloc(&mem, 4, 8);
    ck_assert_ptr_nonnull(p);
    for (int i = 0; i < 32; i++)
        ck_assert_int_eq(p[i], 0);
    p = mux_mem_realloc(&mem, p, 64);
    ck_assert_ptr_nonnull(p);
    mux_mem_free(&mem, p);
    mux_mem_free(&mem, NULL);
    ck_assert_int_eq(fm.live, 0);

    /* calloc fallback through malloc, with overflow check */
    mem.calloc = NULL;
    p = mux_mem_calloc(&mem, 3, 5);
    ck_assert_ptr_nonnull(p);
    ck_assert_int_eq(p[14], 0);
    mux_mem_free(&mem, p);
    ck_assert_ptr_null(mux_mem_calloc(&mem, SIZE_MAX / 2, 4));
    ck_assert_int_eq(fm.live, 0);

    /* libc path */
    p = mux_mem_malloc(NULL, 10);
    ck_assert_ptr_nonnull(p);
    mux_mem_free(NULL, p);
}
END_TEST

START_TEST(test_mem_protobuf_allocator)
{
    failmalloc fm;
    mux_mem mem = failmalloc_mem(&fm, -1, 0);
    ProtobufCAllocator pa;
    mux_mem_protobuf_allocator(&mem, &pa);
    void *p = pa.alloc(pa.allocator_data, 100);
    ck_assert_ptr_nonnull(p);
    ck_assert_int_eq(fm.live, 1);
    pa.free(pa.allocator_data, p);
    ck_assert_int_eq(fm.live, 0);
    fm.fail_at = fm.calls; /* every allocation from now on fails */
    ck_assert_ptr_null(pa.alloc(pa.allocator_data, 100));

    mux_mem_protobuf_allocator(NULL, &pa);
    p = pa.alloc(pa.allocator_data, 100);
    ck_assert_ptr_nonnull(p);
    pa.free(pa.allocator_data, p);
}
END_TEST

START_TEST(test_err_strings)
{
    ck_assert_str_eq(mux_strerror(MUX_ERR_WS_PROTOCOL), "WebSocket protocol violation");
    ck_assert_str_eq(mux_strerror(12345), "unknown error");
    for (int rv = -1000; rv <= 0; rv++)
        ck_assert_ptr_nonnull(mux_strerror(rv));
    ck_assert_str_eq(mux_code_name(MUX_CODE_FLOW_CONTROL_ERROR), "FLOW_CONTROL_ERROR");
    ck_assert_str_eq(mux_code_name(MUX_CODE_RATE_LIMITED), "RATE_LIMITED");
    ck_assert_str_eq(mux_code_name(999), "UNKNOWN");
    ck_assert_uint_eq(mux_error_to_code(MUX_ERR_FLOW_CONTROL), MUX_CODE_FLOW_CONTROL_ERROR);
    ck_assert_uint_eq(mux_error_to_code(MUX_ERR_WS_PROTOCOL), MUX_CODE_PROTOCOL_ERROR);
    ck_assert_uint_eq(mux_error_to_code(MUX_ERR_MESSAGE_TOO_LARGE), MUX_CODE_FRAME_SIZE_ERROR);
    ck_assert_uint_eq(mux_error_to_code(MUX_ERR_DECOMPRESS_LIMIT), MUX_CODE_COMPRESSION_ERROR);
    ck_assert_uint_eq(mux_error_to_code(MUX_ERR_TIMEOUT), MUX_CODE_TIMEOUT);
    ck_assert_uint_eq(mux_error_to_code(MUX_ERR_INTERNAL), MUX_CODE_INTERNAL_ERROR);
    ck_assert_uint_eq(mux_error_to_code(-987), MUX_CODE_PROTOCOL_ERROR);
    ck_assert(mux_is_fatal(MUX_ERR_WS_PROTOCOL));
    ck_assert(!mux_is_fatal(MUX_ERR_AGAIN));
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("buf");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_buf_append_and_consume);
    tcase_add_test(tc, test_buf_compacts_before_growing);
    tcase_add_test(tc, test_buf_grows_geometrically);
    tcase_add_test(tc, test_buf_limit);
    tcase_add_test(tc, test_buf_nomem_and_shrink);
    tcase_add_test(tc, test_mem_wrappers);
    tcase_add_test(tc, test_mem_protobuf_allocator);
    tcase_add_test(tc, test_err_strings);
    suite_add_tcase(s, tc);
    return s;
}

TM_CHECK_MAIN(make_suite)
