/*
 * Unit tests for src/client/conn_queue.c: the LOCAL_MAX_CONNECTIONS budget, the FIFO of waiting
 * streams, the LOCAL_QUEUE_MAX bound, cancellation, the wait statistics and the refusal bursts.
 */
#include <stdint.h>

#include "check_main.h"
#include "conn_queue.h"

START_TEST(test_grant_until_cap)
{
    conn_queue q;
    conn_waiter w[4] = {{0}};
    conn_queue_init(&q, 2, 10, 0);
    ck_assert_int_eq(conn_queue_acquire(&q, &w[0], 0, 0), CONN_QUEUE_GRANTED);
    ck_assert_int_eq(conn_queue_acquire(&q, &w[1], 0, 0), CONN_QUEUE_GRANTED);
    ck_assert_int_eq(conn_queue_acquire(&q, &w[2], 0, 5), CONN_QUEUE_WAITING);
    ck_assert_int_eq(q.active, 2);
    ck_assert_int_eq(q.queued, 1);
    ck_assert(!conn_queue_is_waiting(&w[0]));
    ck_assert(conn_queue_is_waiting(&w[2]));
    ck_assert_ptr_null(conn_queue_next(&q, 0, 6, NULL)); /* no slot free */
}
END_TEST

START_TEST(test_fifo_order_and_no_overtaking)
{
    conn_queue q;
    conn_waiter w[6] = {{0}};
    conn_queue_init(&q, 1, 10, 0);
    ck_assert_int_eq(conn_queue_acquire(&q, &w[0], 0, 0), CONN_QUEUE_GRANTED);
    for (int i = 1; i < 5; i++)
        ck_assert_int_eq(conn_queue_acquire(&q, &w[i], 0, 10 * i), CONN_QUEUE_WAITING);
    conn_queue_release(&q);
    /* a slot is free, but waiters exist: a new arrival queues behind them */
    ck_assert_int_eq(conn_queue_acquire(&q, &w[5], 0, 100), CONN_QUEUE_WAITING);
    int64_t wait = -1;
    for (int i = 1; i < 6; i++) {
        conn_waiter *n = conn_queue_next(&q, 0, 200, &wait);
        ck_assert_ptr_eq(n, &w[i]);
        ck_assert_int_eq(wait, i < 5 ? 200 - 10 * i : 100);
        ck_assert(!conn_queue_is_waiting(n));
        ck_assert_ptr_null(conn_queue_next(&q, 0, 200, NULL)); /* the one slot is taken again */
        conn_queue_release(&q);
    }
    ck_assert_int_eq(q.queued, 0);
    ck_assert_int_eq(q.active, 0);
    ck_assert_uint_eq(q.admitted, 6);
    ck_assert_uint_eq(q.waited, 5);
}
END_TEST

START_TEST(test_bound_refuses)
{
    conn_queue q;
    conn_waiter w[5] = {{0}};
    conn_queue_init(&q, 1, 2, 0);
    ck_assert_int_eq(conn_queue_acquire(&q, &w[0], 0, 0), CONN_QUEUE_GRANTED);
    ck_assert_int_eq(conn_queue_acquire(&q, &w[1], 0, 0), CONN_QUEUE_WAITING);
    ck_assert_int_eq(conn_queue_acquire(&q, &w[2], 0, 0), CONN_QUEUE_WAITING);
    ck_assert_int_eq(conn_queue_acquire(&q, &w[3], 0, 0), CONN_QUEUE_FULL);
    ck_assert_int_eq(conn_queue_acquire(&q, &w[4], 0, 0), CONN_QUEUE_FULL);
    ck_assert(!conn_queue_is_waiting(&w[3]));
    ck_assert_uint_eq(q.refused, 2);
    ck_assert_int_eq(q.peak_queued, 2);
    /* no queue at all: refused as soon as the budget is used */
    conn_queue_init(&q, 1, 0, 0);
    ck_assert_int_eq(conn_queue_acquire(&q, &w[0], 0, 0), CONN_QUEUE_GRANTED);
    ck_assert_int_eq(conn_queue_acquire(&q, &w[1], 0, 0), CONN_QUEUE_FULL);
}
END_TEST

START_TEST(test_unlimited)
{
    conn_queue q;
    conn_waiter w = {0};
    conn_queue_init(&q, 0, 0, 0);
    for (int i = 0; i < 1000; i++)
        ck_assert_int_eq(conn_queue_acquire(&q, &w, 0, 0), CONN_QUEUE_GRANTED);
    ck_assert_int_eq(q.active, 1000);
    ck_assert_int_eq(q.queued, 0);
}
END_TEST

START_TEST(test_cancel)
{
    conn_queue q;
    conn_waiter w[4] = {{0}};
    conn_queue_init(&q, 1, 10, 0);
    ck_assert_int_eq(conn_queue_acquire(&q, &w[0], 0, 0), CONN_QUEUE_GRANTED);
    ck_assert_int_eq(conn_queue_acquire(&q, &w[1], 0, 1), CONN_QUEUE_WAITING);
    ck_assert_int_eq(conn_queue_acquire(&q, &w[2], 0, 2), CONN_QUEUE_WAITING);
    ck_assert_int_eq(conn_queue_acquire(&q, &w[3], 0, 3), CONN_QUEUE_WAITING);
    ck_assert_int_eq(conn_queue_oldest_wait_ms(&q, 11), 10);
    ck_assert_int_eq(conn_queue_cancel(&q, &w[2], 11), 1); /* the middle one */
    ck_assert_int_eq(conn_queue_cancel(&q, &w[2], 11), 0); /* twice: no-op */
    ck_assert_int_eq(conn_queue_cancel(&q, &w[0], 11), 0); /* holds a slot, not queued */
    ck_assert_int_eq(conn_queue_cancel(&q, &w[1], 11), 1); /* the head */
    ck_assert_int_eq(q.queued, 1);
    ck_assert_int_eq(conn_queue_oldest_wait_ms(&q, 11), 8);
    conn_queue_release(&q);
    ck_assert_ptr_eq(conn_queue_next(&q, 0, 20, NULL), &w[3]);
    ck_assert_int_eq(conn_queue_oldest_wait_ms(&q, 30), 0);
    ck_assert_uint_eq(q.cancelled, 2);
    /* the cancelled waits (9 and 10 ms) are recorded with the granted ones (0 and 17 ms) */
    ck_assert_uint_eq(q.waits, 4);
    ck_assert_uint_eq(q.admitted, 2);
    ck_assert_uint_eq(q.wait_ms_sum, 9 + 10 + 17);
}
END_TEST

START_TEST(test_wait_histogram)
{
    conn_queue q;
    conn_waiter w[3] = {{0}};
    conn_queue_init(&q, 1, 10, 0);
    ck_assert_int_eq(conn_queue_acquire(&q, &w[0], 0, 0), CONN_QUEUE_GRANTED); /* wait 0 -> first bucket */
    ck_assert_int_eq(conn_queue_acquire(&q, &w[1], 0, 0), CONN_QUEUE_WAITING);
    ck_assert_int_eq(conn_queue_acquire(&q, &w[2], 0, 0), CONN_QUEUE_WAITING);
    conn_queue_release(&q);
    ck_assert_ptr_eq(conn_queue_next(&q, 0, 300, NULL), &w[1]); /* 0.3 s -> le 0.5 */
    conn_queue_release(&q);
    ck_assert_ptr_eq(conn_queue_next(&q, 0, 100000, NULL), &w[2]); /* 100 s -> +Inf */
    ck_assert_uint_eq(q.wait_buckets[0], 1);
    int b05 = -1;
    for (int b = 0; b < CONN_QUEUE_BUCKETS; b++)
        if (conn_queue_bucket_le[b] == 0.5)
            b05 = b;
    ck_assert_int_ge(b05, 0);
    ck_assert_uint_eq(q.wait_buckets[b05], 1);
    ck_assert_uint_eq(q.wait_buckets[CONN_QUEUE_BUCKETS], 1);
    ck_assert_uint_eq(q.wait_ms_sum, 100300);
}
END_TEST

START_TEST(test_burst)
{
    conn_queue q;
    conn_waiter w[5] = {{0}};
    conn_queue_init(&q, 1, 1, 0);
    ck_assert_uint_eq(conn_queue_burst_over(&q), 0);
    ck_assert_int_eq(conn_queue_acquire(&q, &w[0], 0, 0), CONN_QUEUE_GRANTED);
    ck_assert_int_eq(conn_queue_acquire(&q, &w[1], 0, 0), CONN_QUEUE_WAITING);
    ck_assert_int_eq(conn_queue_acquire(&q, &w[2], 0, 0), CONN_QUEUE_FULL);
    ck_assert_int_eq(conn_queue_acquire(&q, &w[3], 0, 0), CONN_QUEUE_FULL);
    ck_assert_uint_eq(conn_queue_burst_over(&q), 0); /* still waiting */
    conn_queue_release(&q);
    ck_assert_ptr_eq(conn_queue_next(&q, 0, 1, NULL), &w[1]);
    ck_assert_uint_eq(conn_queue_burst_over(&q), 0); /* nobody waits, but the slot is taken */
    conn_queue_release(&q);
    ck_assert_uint_eq(conn_queue_burst_over(&q), 2);
    ck_assert_uint_eq(conn_queue_burst_over(&q), 0); /* reported once */
    ck_assert_uint_eq(q.refused, 2);
}
END_TEST

START_TEST(test_opening_limit)
{
    conn_queue q;
    conn_waiter w[6] = {{0}};
    conn_queue_init(&q, 10, 10, 2);
    /* two new connections may be opening at once; the third stream waits although slots are free */
    ck_assert_int_eq(conn_queue_acquire(&q, &w[0], 0, 0), CONN_QUEUE_GRANTED);
    conn_queue_open_begin(&q);
    ck_assert_int_eq(conn_queue_acquire(&q, &w[1], 0, 0), CONN_QUEUE_GRANTED);
    conn_queue_open_begin(&q);
    ck_assert_int_eq(conn_queue_acquire(&q, &w[2], 0, 1), CONN_QUEUE_WAITING);
    /* ... unless it can reuse an idle connection; FIFO still holds (w[2] waits already) */
    ck_assert_int_eq(conn_queue_acquire(&q, &w[3], 1, 2), CONN_QUEUE_WAITING);
    ck_assert_ptr_null(conn_queue_next(&q, 0, 3, NULL));
    ck_assert_ptr_eq(conn_queue_next(&q, 1, 3, NULL), &w[2]); /* an idle connection appeared */
    /* the first connection answered: one more may open */
    conn_queue_open_end(&q);
    ck_assert_ptr_eq(conn_queue_next(&q, 0, 4, NULL), &w[3]);
    conn_queue_open_begin(&q);
    ck_assert_ptr_null(conn_queue_next(&q, 0, 4, NULL));
    ck_assert_int_eq(q.opening, 2);
    ck_assert_int_eq(q.active, 4);
    conn_queue_open_end(&q);
    conn_queue_open_end(&q);
    conn_queue_open_end(&q); /* never below 0 */
    ck_assert_int_eq(q.opening, 0);
    /* 0 = no opening limit */
    conn_queue_init(&q, 0, 0, 0);
    for (int i = 0; i < 100; i++) {
        ck_assert_int_eq(conn_queue_acquire(&q, &w[5], 0, 0), CONN_QUEUE_GRANTED);
        conn_queue_open_begin(&q);
    }
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("conn_queue");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_grant_until_cap);
    tcase_add_test(tc, test_fifo_order_and_no_overtaking);
    tcase_add_test(tc, test_bound_refuses);
    tcase_add_test(tc, test_unlimited);
    tcase_add_test(tc, test_cancel);
    tcase_add_test(tc, test_wait_histogram);
    tcase_add_test(tc, test_burst);
    tcase_add_test(tc, test_opening_limit);
    suite_add_tcase(s, tc);
    return s;
}

TM_CHECK_MAIN(make_suite)
