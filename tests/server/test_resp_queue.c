/* Unit tests for src/server/resp_queue.c: slices and copies in order, one take, the in-flight
 * swap, slab references, trimming. */
#include <string.h>

#include "check_main.h"
#include "server/resp_queue.h"

static h2o_buffer_prototype_t proto = {.allocator = {.max = 0}, ._initial_buf = {.capacity = 256 * 1024}};

/* A slab holding |n| bytes of the pattern i % 251 + |salt|. One reference, the caller's. */
static rxslab *slab_of(rxslab_pool *pool, size_t n, int salt)
{
    h2o_buffer_t *b;
    h2o_buffer_init(&b, &proto);
    h2o_iovec_t room = h2o_buffer_reserve(&b, n);
    ck_assert_ptr_nonnull(room.base);
    for (size_t i = 0; i < n; i++)
        room.base[i] = (char)(i % 251 + salt);
    b->size += n;
    rxslab *s = rxslab_adopt(pool, &b);
    ck_assert_ptr_nonnull(s);
    h2o_buffer_dispose(&b);
    return s;
}

/* The bytes of |bufs| joined. */
static size_t join(const h2o_iovec_t *bufs, size_t n, uint8_t *out)
{
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
        memcpy(out + len, bufs[i].base, bufs[i].len);
        len += bufs[i].len;
    }
    return len;
}

START_TEST(test_copies_only)
{
    resp_queue q;
    memset(&q, 0, sizeof(q));
    ck_assert(!resp_queue_has_pending(&q));
    ck_assert_int_eq(resp_queue_append_copy(&q, (const uint8_t *)"hello ", 6), 0);
    ck_assert_int_eq(resp_queue_append_copy(&q, (const uint8_t *)"world", 5), 0);
    ck_assert(resp_queue_has_pending(&q));
    ck_assert_uint_eq(resp_queue_held(&q), 11);
    h2o_iovec_t bufs[RESP_QUEUE_MAX_PIECES + 1];
    size_t n = resp_queue_take(&q, bufs);
    ck_assert_uint_eq(n, 1); /* one buffer: no slices */
    ck_assert_uint_eq(bufs[0].len, 11);
    ck_assert(memcmp(bufs[0].base, "hello world", 11) == 0);
    ck_assert(!resp_queue_has_pending(&q));
    ck_assert_uint_eq(resp_queue_held(&q), 11); /* in flight still counts */
    /* appends while the writer holds the first buffer go to the spare one */
    ck_assert_int_eq(resp_queue_append_copy(&q, (const uint8_t *)"again", 5), 0);
    ck_assert(memcmp(bufs[0].base, "hello world", 11) == 0);
    ck_assert_uint_eq(resp_queue_written(&q), 11);
    ck_assert_uint_eq(resp_queue_held(&q), 5);
    n = resp_queue_take(&q, bufs);
    ck_assert_uint_eq(n, 1);
    ck_assert(memcmp(bufs[0].base, "again", 5) == 0);
    ck_assert_uint_eq(resp_queue_written(&q), 5);
    ck_assert_uint_eq(resp_queue_held(&q), 0);
    resp_queue_free(&q);
    ck_assert_ptr_null(q.pend);
    ck_assert_ptr_null(q.inflight);
}
END_TEST

START_TEST(test_slices_and_copies_keep_order)
{
    rxslab_pool pool = {.budget = 1 << 24};
    rxslab *s = slab_of(&pool, 64 * 1024, 0);
    const uint8_t *base = rxslab_bytes(s);
    resp_queue q;
    memset(&q, 0, sizeof(q));
    uint8_t expect[128 * 1024];
    size_t elen = 0;
    /* copy, slice, copy, copy, slice, copy */
    ck_assert_int_eq(resp_queue_append_copy(&q, (const uint8_t *)"AB", 2), 0);
    memcpy(expect + elen, "AB", 2), elen += 2;
    ck_assert_int_eq(resp_queue_add_slice(&q, s, base, 8192), 1);
    memcpy(expect + elen, base, 8192), elen += 8192;
    ck_assert_uint_eq(s->refs, 2); /* the queue took one reference for its slices */
    ck_assert_int_eq(resp_queue_append_copy(&q, (const uint8_t *)"CD", 2), 0);
    ck_assert_int_eq(resp_queue_append_copy(&q, (const uint8_t *)"EF", 2), 0);
    memcpy(expect + elen, "CDEF", 4), elen += 4;
    ck_assert_int_eq(resp_queue_add_slice(&q, s, base + 10000, 5000), 1);
    memcpy(expect + elen, base + 10000, 5000), elen += 5000;
    ck_assert_uint_eq(s->refs, 2); /* the same slab: still one reference */
    ck_assert_int_eq(resp_queue_append_copy(&q, (const uint8_t *)"G", 1), 0);
    memcpy(expect + elen, "G", 1), elen += 1;
    ck_assert_uint_eq(resp_queue_held(&q), elen);
    h2o_iovec_t bufs[RESP_QUEUE_MAX_PIECES + 1];
    size_t n = resp_queue_take(&q, bufs);
    ck_assert_uint_eq(n, 5);                      /* AB | slice | CDEF | slice | G */
    ck_assert_ptr_eq(bufs[1].base, (char *)base); /* no copy */
    uint8_t got[128 * 1024];
    ck_assert_uint_eq(join(bufs, n, got), elen);
    ck_assert(memcmp(got, expect, elen) == 0);
    ck_assert_uint_eq(s->refs, 2); /* in flight holds it now */
    ck_assert_uint_eq(resp_queue_written(&q), elen);
    ck_assert_uint_eq(s->refs, 1); /* the writer finished: reference dropped */
    resp_queue_free(&q);
    rxslab_unref(s);
    ck_assert_uint_eq(pool.live, 0);
}
END_TEST

START_TEST(test_slice_refusals)
{
    rxslab_pool pool = {.budget = 1 << 24};
    rxslab *a = slab_of(&pool, 64 * 1024, 0), *b = slab_of(&pool, 64 * 1024, 7);
    resp_queue q;
    memset(&q, 0, sizeof(q));
    ck_assert(!resp_queue_slice_fits(&q, RESP_QUEUE_MIN_SLICE - 1)); /* tiny: copied */
    ck_assert_int_eq(resp_queue_add_slice(&q, a, rxslab_bytes(a), RESP_QUEUE_MIN_SLICE - 1), 0);
    ck_assert_int_eq(resp_queue_add_slice(&q, NULL, rxslab_bytes(a), 8192), 0); /* not in a slab */
    ck_assert_int_eq(resp_queue_add_slice(&q, a, rxslab_bytes(a), RESP_QUEUE_MIN_SLICE), 1);
    ck_assert_int_eq(resp_queue_add_slice(&q, b, rxslab_bytes(b), 8192), 0); /* another slab */
    /* room: pieces for the slice, the copy before it and one after it */
    size_t taken = 1;
    while (resp_queue_add_slice(&q, a, rxslab_bytes(a), RESP_QUEUE_MIN_SLICE))
        taken++;
    ck_assert_uint_le(q.zc_n + 2, RESP_QUEUE_MAX_PIECES);
    ck_assert_uint_gt(q.zc_n + 3, RESP_QUEUE_MAX_PIECES);
    ck_assert_int_eq(resp_queue_append_copy(&q, (const uint8_t *)"x", 1), 0); /* a copy still fits as a piece */
    ck_assert_uint_le(q.zc_n, RESP_QUEUE_MAX_PIECES);
    h2o_iovec_t bufs[RESP_QUEUE_MAX_PIECES + 1];
    ck_assert_uint_eq(resp_queue_take(&q, bufs), taken + 1);
    ck_assert_uint_eq(b->refs, 1);
    resp_queue_free(&q); /* drops the in-flight reference too */
    ck_assert_uint_eq(a->refs, 1);
    rxslab_unref(a);
    rxslab_unref(b);
    ck_assert_uint_eq(pool.live, 0);
}
END_TEST

START_TEST(test_trim)
{
    resp_queue q;
    memset(&q, 0, sizeof(q));
    static uint8_t big[2 * 1024 * 1024];
    ck_assert_int_eq(resp_queue_append_copy(&q, big, sizeof(big)), 0);
    ck_assert_uint_ge(q.pend_cap, sizeof(big));
    resp_queue_trim(&q, 1024 * 1024, 0);
    ck_assert_ptr_nonnull(q.pend); /* holds bytes: kept */
    h2o_iovec_t bufs[RESP_QUEUE_MAX_PIECES + 1];
    resp_queue_take(&q, bufs);
    resp_queue_trim(&q, 1024 * 1024, 1);
    ck_assert_ptr_nonnull(q.inflight); /* the writer holds it: kept */
    resp_queue_written(&q);
    resp_queue_trim(&q, 1024 * 1024, 0);
    ck_assert_ptr_null(q.inflight);
    ck_assert_uint_eq(q.inflight_cap, 0);
    ck_assert_int_eq(resp_queue_append_copy(&q, (const uint8_t *)"small", 5), 0);
    ck_assert_uint_eq(q.pend_cap, RESP_QUEUE_FIRST_CAP);
    resp_queue_trim(&q, 1024 * 1024, 0);
    ck_assert_ptr_nonnull(q.pend); /* small buffers stay */
    resp_queue_free(&q);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("server_resp_queue");
    TCase *tc = tcase_create("resp_queue");
    tcase_add_test(tc, test_copies_only);
    tcase_add_test(tc, test_slices_and_copies_keep_order);
    tcase_add_test(tc, test_slice_refusals);
    tcase_add_test(tc, test_trim);
    suite_add_tcase(s, tc);
    return s;
}

TM_CHECK_MAIN(make_suite)
