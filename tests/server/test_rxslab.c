/* Unit tests for src/server/rxslab.c: taking a socket's read buffer, references, the pool's count. */
#include <string.h>

#include "check_main.h"
#include "server/rxslab.h"

/* A socket-like input holding |n| bytes of |fill|, in a buffer of |proto|. */
static h2o_buffer_t *filled(h2o_buffer_prototype_t *proto, size_t n, int fill)
{
    h2o_buffer_t *b;
    h2o_buffer_init(&b, proto);
    h2o_iovec_t room = h2o_buffer_reserve(&b, n);
    ck_assert_ptr_nonnull(room.base);
    memset(room.base, fill, n);
    b->size += n;
    return b;
}

START_TEST(test_adopt_and_release)
{
    h2o_buffer_prototype_t proto = {.allocator = {.max = 0}, ._initial_buf = {.capacity = 64 * 1024}};
    rxslab_pool pool = {.budget = 1 << 20};
    h2o_buffer_t *input = filled(&proto, 1000, 'a');
    const char *bytes = input->bytes;
    size_t cap = input->capacity;

    rxslab *s = rxslab_adopt(&pool, &input);
    ck_assert_ptr_nonnull(s);
    /* the socket gets an empty buffer of the same prototype; the slab has the bytes */
    ck_assert_uint_eq(input->size, 0);
    ck_assert_ptr_eq(input, &proto._initial_buf);
    ck_assert_ptr_eq(rxslab_bytes(s), (const uint8_t *)bytes);
    ck_assert_uint_eq(s->buf->size, 1000);
    ck_assert_uint_eq(pool.live, cap);
    ck_assert_uint_eq(pool.adopted, 1);

    /* the socket reads on into a new buffer while the slab is alive */
    h2o_iovec_t room = h2o_buffer_reserve(&input, 10);
    ck_assert_ptr_ne(room.base, bytes);

    /* contains: only ranges wholly inside the bytes (not the spare capacity) */
    const uint8_t *b = rxslab_bytes(s);
    ck_assert(rxslab_contains(s, b, 1000));
    ck_assert(rxslab_contains(s, b + 999, 1));
    ck_assert(rxslab_contains(s, b + 1000, 0));
    ck_assert(!rxslab_contains(s, b + 999, 2));
    ck_assert(!rxslab_contains(s, b - 1, 1));
    ck_assert(!rxslab_contains(s, b, 1001));
    ck_assert(!rxslab_contains(s, b + 500, SIZE_MAX));
    uint8_t elsewhere[4];
    ck_assert(!rxslab_contains(s, elsewhere, sizeof(elsewhere)));

    /* references: the last one frees and uncounts */
    rxslab_ref(s);
    rxslab_unref(s);
    ck_assert_uint_eq(pool.live, cap);
    ck_assert_uint_eq(pool.freed, 0);
    rxslab_unref(s);
    ck_assert_uint_eq(pool.live, 0);
    ck_assert_uint_eq(pool.freed, 1);
    rxslab_unref(NULL);
    h2o_buffer_dispose(&input);
}
END_TEST

START_TEST(test_budget)
{
    /* the pool says "full" once the live slabs exceed the budget, and not after they went */
    h2o_buffer_prototype_t proto = {.allocator = {.max = 0}, ._initial_buf = {.capacity = 64 * 1024}};
    rxslab_pool pool = {.budget = 150 * 1024}; /* two 64 KiB buffers fit, three do not */
    rxslab *held[3];
    for (int i = 0; i < 3; i++) {
        ck_assert(!rxslab_pool_full(&pool));
        h2o_buffer_t *input = filled(&proto, 100, i);
        held[i] = rxslab_adopt(&pool, &input);
        ck_assert_ptr_nonnull(held[i]);
        ck_assert_uint_eq(rxslab_bytes(held[i])[99], (uint8_t)i);
        h2o_buffer_dispose(&input);
    }
    ck_assert(rxslab_pool_full(&pool));
    for (int i = 0; i < 3; i++)
        rxslab_unref(held[i]);
    ck_assert(!rxslab_pool_full(&pool));
    ck_assert_uint_eq(pool.live, 0);
    ck_assert_uint_eq(pool.adopted, 3);
    ck_assert_uint_eq(pool.freed, 3);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("server_rxslab");
    TCase *tc = tcase_create("rxslab");
    tcase_add_test(tc, test_adopt_and_release);
    tcase_add_test(tc, test_budget);
    suite_add_tcase(s, tc);
    return s;
}

TM_CHECK_MAIN(make_suite)
