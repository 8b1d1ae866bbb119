/*
 * tunnelmux — credit accounting (flow.c) and envelope (envelope.c) unit tests: windows, quarter
 * batching, clamping, auto-tuning, overflow, header byte and record boundaries.
 */
#include <check.h>

#include "check_main.h"
#include "session_internal.h"

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
    /* a whole window consumed within 2 RTT (rtt 10 ms, 5 ms elapsed): the window doubles */
    ck_assert_int_eq(mux_rxwin_recv(&w, 1000), 0);
    uint32_t inc = mux_rxwin_consume(&w, 1000, 5, 10, 4000);
    ck_assert_uint_eq(w.window, 2000);
    ck_assert_uint_eq(inc, 2000); /* 1000 returned + 1000 growth */
    ck_assert_int_eq(w.limit, 3000);
    /* slowly consumed: no growth */
    ck_assert_int_eq(mux_rxwin_recv(&w, 2000), 0);
    inc = mux_rxwin_consume(&w, 2000, 1000, 10, 4000);
    ck_assert_uint_eq(w.window, 2000);
    ck_assert_uint_eq(inc, 2000);
    /* capped at max */
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(mux_rxwin_recv(&w, (size_t)(w.limit - w.received)), 0);
        mux_rxwin_consume(&w, (size_t)(w.received - w.consumed), 1000, 10, 4000);
    }
    ck_assert_uint_eq(w.window, 4000);
    /* no RTT sample: never grows */
    mux_rxwin_init(&w, 1000, 0);
    ck_assert_int_eq(mux_rxwin_recv(&w, 1000), 0);
    mux_rxwin_consume(&w, 1000, 0, -1, 4000);
    ck_assert_uint_eq(w.window, 1000);
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
    tcase_add_test(tc, test_txcredit);
    tcase_add_test(tc, test_envelope_header);
    tcase_add_test(tc, test_envelope_record);
    suite_add_tcase(s, tc);
    return s;
}

TM_CHECK_MAIN(make_suite)
