/*
 * Unit tests for src/client/conn_pool.c: the keep-alive pool's order (most recent first), its
 * bound (the oldest goes), taking by kind (other kinds met on the way are dropped), removal of an
 * entry whose connection closed, trimming to a budget, clearing, and the zero-filled pool.
 */
#include <string.h>

#include "check_main.h"
#include "conn_pool.h"

/* Test entries and a drop callback that records what the pool let go, in order. */
typedef struct {
    conn_pool_entry e;
    int id;
    int dropped;
} item;

typedef struct {
    int order[32];
    int n;
} drop_log;

static void on_drop(conn_pool_entry *e, void *arg)
{
    drop_log *log = arg;
    item *it = (item *)e;
    ck_assert_ptr_null(e->link.next); /* unlinked before the pool lets it go */
    ck_assert_int_eq(it->dropped, 0); /* once */
    it->dropped = 1;
    log->order[log->n++] = it->id;
}

static void items_init(item *it, int n, const int *tls)
{
    memset(it, 0, sizeof(*it) * (size_t)n);
    for (int i = 0; i < n; i++) {
        it[i].id = i;
        it[i].e.tls = tls != NULL ? tls[i] : 0;
    }
}

START_TEST(test_most_recent_first)
{
    conn_pool p;
    drop_log log = {{0}, 0};
    item it[3];
    items_init(it, 3, NULL);
    conn_pool_init(&p, 8, on_drop, &log);
    for (int i = 0; i < 3; i++)
        conn_pool_put(&p, &it[i].e);
    ck_assert_int_eq(p.n, 3);
    ck_assert_ptr_eq(conn_pool_take(&p, 0), &it[2].e);
    ck_assert_ptr_eq(conn_pool_take(&p, 0), &it[1].e);
    ck_assert_ptr_eq(conn_pool_take(&p, 0), &it[0].e);
    ck_assert_ptr_null(conn_pool_take(&p, 0));
    ck_assert_int_eq(p.n, 0);
    ck_assert_int_eq(log.n, 0);
    ck_assert_ptr_null(it[0].e.link.next); /* taken entries are unlinked */
}
END_TEST

START_TEST(test_bound_drops_oldest)
{
    conn_pool p;
    drop_log log = {{0}, 0};
    item it[5];
    items_init(it, 5, NULL);
    conn_pool_init(&p, 3, on_drop, &log);
    for (int i = 0; i < 5; i++)
        conn_pool_put(&p, &it[i].e);
    ck_assert_int_eq(p.n, 3);
    ck_assert_int_eq(log.n, 2);
    ck_assert_int_eq(log.order[0], 0);
    ck_assert_int_eq(log.order[1], 1);
    ck_assert_ptr_eq(conn_pool_take(&p, 0), &it[4].e);
}
END_TEST

START_TEST(test_take_by_kind)
{
    conn_pool p;
    drop_log log = {{0}, 0};
    item it[4];
    const int tls[4] = {1, 0, 1, 0}; /* put in this order: most recent is it[3] (plain) */
    items_init(it, 4, tls);
    conn_pool_init(&p, 8, on_drop, &log);
    for (int i = 0; i < 4; i++)
        conn_pool_put(&p, &it[i].e);
    /* a TLS connection is wanted: the more recent plain one is dropped on the way */
    ck_assert_ptr_eq(conn_pool_take(&p, 1), &it[2].e);
    ck_assert_int_eq(log.n, 1);
    ck_assert_int_eq(log.order[0], 3);
    ck_assert_int_eq(p.n, 2);
    /* any non-zero value means TLS */
    ck_assert_ptr_eq(conn_pool_take(&p, 7), &it[0].e);
    ck_assert_int_eq(log.order[1], 1);
    ck_assert_int_eq(p.n, 0);
    ck_assert_ptr_null(conn_pool_take(&p, 0));
}
END_TEST

START_TEST(test_remove_closed)
{
    conn_pool p;
    drop_log log = {{0}, 0};
    item it[3];
    items_init(it, 3, NULL);
    conn_pool_init(&p, 8, on_drop, &log);
    for (int i = 0; i < 3; i++)
        conn_pool_put(&p, &it[i].e);
    conn_pool_remove(&p, &it[1].e); /* its peer closed it: no drop call */
    ck_assert_int_eq(p.n, 2);
    ck_assert_int_eq(log.n, 0);
    conn_pool_remove(&p, &it[1].e); /* not pooled any more: no-op */
    ck_assert_int_eq(p.n, 2);
    ck_assert_ptr_eq(conn_pool_take(&p, 0), &it[2].e);
    ck_assert_ptr_eq(conn_pool_take(&p, 0), &it[0].e);
}
END_TEST

START_TEST(test_trim_and_clear)
{
    conn_pool p;
    drop_log log = {{0}, 0};
    item it[5];
    items_init(it, 5, NULL);
    conn_pool_init(&p, 8, on_drop, &log);
    for (int i = 0; i < 5; i++)
        conn_pool_put(&p, &it[i].e);
    conn_pool_trim(&p, 5); /* within budget: nothing */
    ck_assert_int_eq(log.n, 0);
    conn_pool_trim(&p, 3); /* the two oldest go */
    ck_assert_int_eq(p.n, 3);
    ck_assert_int_eq(log.n, 2);
    ck_assert_int_eq(log.order[0], 0);
    ck_assert_int_eq(log.order[1], 1);
    conn_pool_trim(&p, -4); /* budget used up: all */
    ck_assert_int_eq(p.n, 0);
    ck_assert_int_eq(log.n, 5);
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(it[i].dropped, 1);

    item more[2];
    items_init(more, 2, NULL);
    conn_pool_put(&p, &more[0].e);
    conn_pool_put(&p, &more[1].e);
    conn_pool_clear(&p);
    ck_assert_int_eq(p.n, 0);
    ck_assert_int_eq(log.n, 7);
    ck_assert(client_link_empty(&p.idle));
}
END_TEST

START_TEST(test_zero_filled_is_empty)
{
    conn_pool p;
    memset(&p, 0, sizeof(p)); /* the client's pool before the first put */
    ck_assert_ptr_null(conn_pool_take(&p, 0));
    conn_pool_trim(&p, 0);
    conn_pool_clear(&p);
    ck_assert_int_eq(p.n, 0);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("conn_pool");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_most_recent_first);
    tcase_add_test(tc, test_bound_drops_oldest);
    tcase_add_test(tc, test_take_by_kind);
    tcase_add_test(tc, test_remove_closed);
    tcase_add_test(tc, test_trim_and_clear);
    tcase_add_test(tc, test_zero_filled_is_empty);
    suite_add_tcase(s, tc);
    return s;
}

TM_CHECK_MAIN(make_suite)
