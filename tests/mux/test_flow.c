/*
 * tunnelmux — credit accounting (flow.c) and envelope (envelope.c) unit tests: windows, quarter
 * batching, clamping, auto-tuning, overflow, header byte and record boundaries.
 */
#include <check.h>

#include "check_main.h"
#include "mux_internal.h"

START_TEST(test_rxwin_basic)
{
    mux_rxwin w;
    mux_rxwin_init(&w, 1000, 0);
    ck_assert_int_eq(mux_rxwin_recv(&w, 1000), 0);
    ck_assert_int_eq(mux_rxwin_recv(&w, 1), MUX_ERR_FLOW_CONTROL);
    ck_assert_uint_eq(mux_rxwin_consume(&w, 200, 0, 0, 0), 0); /* below a quarter: batched */
    ck_assert_uint_eq(mux_rxwin_consume(&w, 50, 0, 0, 0), 250);
    ck_assert_int_eq(mux_rxwin_recv(&w, 250), 0);
    ck_assert_int_eq(mux_rxwin_recv(&w, 1), MUX_ERR_FLOW_CONTROL);
    /* consuming more than was received is clamped */
    ck_assert_uint_eq(mux_rxwin_consume(&w, 1000000, 0, 0, 0), 1000);
    ck_assert_int_eq(w.consumed, w.received);
    ck_assert_uint_eq(mux_rxwin_consume(&w, 1, 0, 0, 0), 0);
}
END_TEST

START_TEST(test_rxwin_autotune)
{
    mux_rxwin w;
    mux_rxwin_init(&w, 1000, 0);
    /* a whole window consumed within 2 RTT (rtt 10 ms, 10 ms elapsed): the window grows 4x (at
     * most max_window) */
    ck_assert_int_eq(mux_rxwin_recv(&w, 1000), 0);
    uint32_t inc = mux_rxwin_consume(&w, 1000, 10, 10, 64000);
    ck_assert_uint_eq(w.window, 4000);
    ck_assert_uint_eq(inc, 4000); /* 1000 returned + 3000 growth */
    ck_assert_int_eq(w.limit, 5000);
    /* slowly consumed: no growth */
    ck_assert_int_eq(mux_rxwin_recv(&w, 4000), 0);
    inc = mux_rxwin_consume(&w, 4000, 1000, 10, 64000);
    ck_assert_uint_eq(w.window, 4000);
    ck_assert_uint_eq(inc, 4000);
    /* capped at max */
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(mux_rxwin_recv(&w, (size_t)(w.limit - w.received)), 0);
        mux_rxwin_consume(&w, (size_t)(w.received - w.consumed), 1000, 10, 10000);
    }
    ck_assert_uint_eq(w.window, 10000);
    /* no RTT sample: never grows */
    mux_rxwin_init(&w, 1000, 0);
    ck_assert_int_eq(mux_rxwin_recv(&w, 1000), 0);
    mux_rxwin_consume(&w, 1000, 0, -1, 4000);
    ck_assert_uint_eq(w.window, 1000);
}
END_TEST

START_TEST(test_rxwin_grow_to_path_and_shrink_idle)
{
    /* a fast reader on a 50 ms path: each window delivered within 2 RTT grows it to 2 x the
     * measured bandwidth-delay product (here a window per 20 ms: 2 x 50/20 = 5 times; at least
     * 4x) until max_window */
    mux_rxwin w;
    mux_rxwin_init(&w, 1000, 0);
    int64_t now = 0;
    while (w.window < 16000) {
        uint32_t before = w.window;
        ck_assert_int_eq(mux_rxwin_recv(&w, (size_t)(w.limit - w.received)), 0);
        now += 20; /* a window every 20 ms: faster than 2 x 50 ms */
        mux_rxwin_consume(&w, (size_t)(w.received - w.consumed), now, 50, 16000);
        ck_assert_uint_eq(w.window, before * 5 > 16000 ? 16000 : before * 5); /* 5x > 4x */
    }
    ck_assert_int_eq(w.limit - w.consumed, 16000); /* the whole grown window is announced */
    /* delivered in 80 ms (< 2 RTT, rate x 2 RTT = 20000 > 16000): 4x, to the cap */
    mux_rxwin w2;
    mux_rxwin_init(&w2, 16000, 0);
    ck_assert_int_eq(mux_rxwin_recv(&w2, 16000), 0);
    mux_rxwin_consume(&w2, 16000, 80, 50, 40000);
    ck_assert_uint_eq(w2.window, 40000);
    /* the reader keeps up with the path but no more: one window per 2 RTT or slower, no growth */
    ck_assert_int_eq(mux_rxwin_recv(&w, 16000), 0);
    now += 150;
    mux_rxwin_consume(&w, 16000, now, 50, 64000);
    ck_assert_uint_eq(w.window, 16000);
    /* idle for less than MUX_RXWIN_IDLE_MS: kept */
    ck_assert_uint_eq(mux_rxwin_idle(&w, now + MUX_RXWIN_IDLE_MS - 1, 50), 0);
    ck_assert_uint_eq(w.window, 16000);
    /* idle longer: back to the initial window; announced credit stays valid */
    int64_t limit = w.limit;
    ck_assert_uint_eq(mux_rxwin_idle(&w, now + MUX_RXWIN_IDLE_MS, 50), 15000);
    ck_assert_uint_eq(w.window, 1000);
    ck_assert_int_eq(w.limit, limit);
    ck_assert_uint_eq(mux_rxwin_idle(&w, now + 5 * MUX_RXWIN_IDLE_MS, 50), 0); /* once */
    /* the peer uses the credit it holds: no new credit until consumption passes limit - window */
    now += 5 * MUX_RXWIN_IDLE_MS;
    ck_assert_int_eq(mux_rxwin_recv(&w, 16000), 0);
    ck_assert_uint_eq(mux_rxwin_consume(&w, 14000, now + 1000, 50, 1000), 0);
    ck_assert_uint_gt(mux_rxwin_consume(&w, 2000, now + 1000, 50, 1000), 0);
    ck_assert_int_eq(w.limit - w.consumed, 1000);
    /* on a long path the idle limit is 8 RTT */
    mux_rxwin_init(&w, 1000, 0);
    w.window = 4000;
    ck_assert_uint_eq(mux_rxwin_idle(&w, 8 * 400 - 1, 400), 0);
    ck_assert_uint_eq(mux_rxwin_idle(&w, 8 * 400, 400), 3000);
    /* a consumption after a long pause starts again from the initial window */
    mux_rxwin_init(&w, 1000, 0);
    w.window = 8000;
    w.limit = 8000;
    ck_assert_int_eq(mux_rxwin_recv(&w, 10), 0);
    mux_rxwin_consume(&w, 10, 5000, 50, 8000);
    ck_assert_uint_eq(w.window, 1000);
}
END_TEST

START_TEST(test_rxwin_queue_brake)
{
    /* PROTOCOL.md §6.2: windows grow only while the path shows no queue (smoothed - minimum RTT
     * within the allowance: MUX_RXWIN_QUEUE_MS, or a quarter of the minimum RTT), and shrink by an
     * eighth per window while it is more than four times that; never below the initial window */
    ck_assert_int_eq(mux_rxwin_queue_allowance(0), MUX_RXWIN_QUEUE_MS);
    ck_assert_int_eq(mux_rxwin_queue_allowance(100), 25);
    mux_rxwin w;
    mux_rxwin_init(&w, 1000, 0);
    w.queue_ms = MUX_RXWIN_QUEUE_MS;
    ck_assert_int_eq(mux_rxwin_recv(&w, 1000), 0);
    mux_rxwin_consume(&w, 1000, 60, 50, 64000);
    ck_assert_uint_eq(w.window, 4000); /* at the threshold: grows (4x) */
    w.queue_ms = MUX_RXWIN_QUEUE_MS + 1;
    ck_assert_int_eq(mux_rxwin_recv(&w, 4000), 0);
    mux_rxwin_consume(&w, 4000, 120, 50, 64000);
    ck_assert_uint_eq(w.window, 4000); /* a little queue: holds */
    w.queue_ms = 4 * MUX_RXWIN_QUEUE_MS;
    ck_assert_int_eq(mux_rxwin_recv(&w, 4000), 0);
    mux_rxwin_consume(&w, 4000, 150, 50, 64000);
    ck_assert_uint_eq(w.window, 4000); /* up to 4x the allowance: holds */
    w.queue_ms = 4 * MUX_RXWIN_QUEUE_MS + 1;
    ck_assert_int_eq(mux_rxwin_recv(&w, 4000), 0);
    uint32_t inc = mux_rxwin_consume(&w, 4000, 180, 50, 64000);
    ck_assert_uint_eq(w.window, 3500); /* a queue: shrinks */
    ck_assert_uint_eq(inc, 3500);      /* what is announced follows the smaller window */
    for (int i = 0; i < 20; i++) {
        ck_assert_int_eq(mux_rxwin_recv(&w, (size_t)(w.limit - w.received)), 0);
        mux_rxwin_consume(&w, (size_t)(w.received - w.consumed), 200 + i, 50, 64000);
    }
    ck_assert_uint_eq(w.window, 1000); /* down to the initial window, no further */
    ck_assert_int_eq(w.limit - w.consumed, 1000);
    /* the queue drains: it grows again */
    w.queue_ms = 0;
    ck_assert_int_eq(mux_rxwin_recv(&w, 1000), 0);
    mux_rxwin_consume(&w, 1000, 280, 50, 64000);
    ck_assert_uint_eq(w.window, 4000);
}
END_TEST

START_TEST(test_txcredit)
{
    int64_t c = 0;
    ck_assert_int_eq(mux_txcredit_add(&c, 0), MUX_ERR_WINDOW_OVERFLOW);
    ck_assert_int_eq(mux_txcredit_add(&c, 0x7fffffff), 0);
    ck_assert_int_eq(mux_txcredit_add(&c, 1), MUX_ERR_WINDOW_OVERFLOW);
    ck_assert_int_eq(c, 0x7fffffff);
    c = -100; /* a sender may be below zero after a shrink; increments still add */
    ck_assert_int_eq(mux_txcredit_add(&c, 0x80000000u), MUX_ERR_WINDOW_OVERFLOW);
    ck_assert_int_eq(mux_txcredit_add(&c, 100), 0);
    ck_assert_int_eq(c, 0);
}
END_TEST

START_TEST(test_envelope_header)
{
    int c, r;
    const char *why = NULL;
    ck_assert_int_eq(mux_envelope_parse(0x10, &c, &r, &why), 0);
    ck_assert(!c && !r);
    ck_assert_int_eq(mux_envelope_parse(0x11, &c, &r, &why), 0);
    ck_assert(c && !r);
    ck_assert_int_eq(mux_envelope_parse(0x13, &c, &r, &why), 0);
    ck_assert(c && r);
    ck_assert_int_eq(mux_envelope_parse(0x12, &c, &r, &why), MUX_ERR_PROTO);
    ck_assert_int_eq(mux_envelope_parse(0x14, &c, &r, &why), MUX_ERR_PROTO);
    ck_assert_int_eq(mux_envelope_parse(0x18, &c, &r, &why), MUX_ERR_PROTO);
    ck_assert_int_eq(mux_envelope_parse(0x20, &c, &r, &why), MUX_ERR_BAD_VERSION);
    ck_assert_int_eq(mux_envelope_parse(0x00, &c, &r, &why), MUX_ERR_BAD_VERSION);
    ck_assert_uint_eq(mux_envelope_byte(0, 0), 0x10);
    ck_assert_uint_eq(mux_envelope_byte(1, 1), 0x13);
}
END_TEST

START_TEST(test_envelope_record)
{
    const char *why = NULL;
    uint8_t a[] = {0x03, 1, 2, 3, 0x01};
    ck_assert_int_eq(mux_envelope_record(a, sizeof(a), &why), 4);
    ck_assert_int_eq(mux_envelope_record(a, 3, &why), MUX_ERR_FRAME_TOO_LARGE);
    uint8_t b[] = {0x80};
    ck_assert_int_eq(mux_envelope_record(b, 1, &why), MUX_ERR_VARINT);
    uint8_t c[11];
    memset(c, 0xff, sizeof(c));
    ck_assert_int_eq(mux_envelope_record(c, sizeof(c), &why), MUX_ERR_VARINT);
    uint8_t d[] = {0x00};
    ck_assert_int_eq(mux_envelope_record(d, 1, &why), MUX_ERR_FRAME_DECODE);
    uint8_t e[] = {0xff, 0xff, 0xff, 0xff, 0x0f}; /* 4 GiB record in a 5-byte body */
    ck_assert_int_eq(mux_envelope_record(e, sizeof(e), &why), MUX_ERR_FRAME_TOO_LARGE);
}
END_TEST

Suite *make_suite(void);
Suite *make_suite(void)
{
    Suite *s = suite_create("flow");
    TCase *tc = tcase_create("flow");
    tcase_add_test(tc, test_rxwin_basic);
    tcase_add_test(tc, test_rxwin_autotune);
    tcase_add_test(tc, test_rxwin_grow_to_path_and_shrink_idle);
    tcase_add_test(tc, test_rxwin_queue_brake);
    tcase_add_test(tc, test_txcredit);
    tcase_add_test(tc, test_envelope_header);
    tcase_add_test(tc, test_envelope_record);
    suite_add_tcase(s, tc);
    return s;
}

TM_CHECK_MAIN(make_suite)
