/*
 * tunnelmux — mux session suite, handshake: HELLO/WELCOME, capability agreement, REFUSE, a
 * deferred accept, the handshake timeout. Two sessions talk in memory through
 * tests/mux/session_pair.h with a fake clock.
 */
#include <check.h>

#include "check_main.h"
#include "mux/session_pair.h"

START_TEST(test_handshake_ok)
{
    pair p;
    established(&p, 1, 1);
    ck_assert_int_eq(p.srv.hellos, 1);
    ck_assert_int_eq(p.cli.welcomes, 1);
    ck_assert_uint_eq(p.cli.welcome_ping_timeout, 45000); /* PROTOCOL.md §4.2: announced in WELCOME */
    ck_assert_uint_eq(mux_session_capabilities(p.srv.s), MUX_CAP_ZSTD | MUX_CAP_CONTINUE_RELAY);
    ck_assert_uint_eq(mux_session_capabilities(p.cli.s), MUX_CAP_ZSTD | MUX_CAP_CONTINUE_RELAY);
    ck_assert(!mux_session_want_close(p.srv.s));
    pair_del(&p);
}
END_TEST

START_TEST(test_handshake_no_zstd)
{
    for (int i = 0; i < 2; i++) {
        pair p;
        established(&p, i, !i);
        ck_assert_uint_eq(mux_session_capabilities(p.srv.s) & MUX_CAP_ZSTD, 0);
        ck_assert_uint_eq(mux_session_capabilities(p.cli.s) & MUX_CAP_ZSTD, 0);
        pair_del(&p);
    }
}
END_TEST

/* PROTOCOL.md §4.1: capability bit 1 (continue relay) is agreed only when both sides offer it; an
 * old peer (bit unset) gets today's behaviour. Each side's own switch is independent of zstd. */
START_TEST(test_handshake_continue_relay)
{
    for (int srv_on = 0; srv_on < 2; srv_on++) {
        for (int cli_on = 0; cli_on < 2; cli_on++) {
            mux_session_options so, co;
            opts(&so, &co);
            so.enable_continue_relay = srv_on;
            co.enable_continue_relay = cli_on;
            pair p;
            pair_new(&p, &so, &co, 43);
            pump(&p, 1 << 20);
            ck_assert(mux_session_is_established(p.cli.s));
            uint32_t want = srv_on && cli_on ? MUX_CAP_CONTINUE_RELAY : 0;
            ck_assert_uint_eq(mux_session_capabilities(p.srv.s) & MUX_CAP_CONTINUE_RELAY, want);
            ck_assert_uint_eq(mux_session_capabilities(p.cli.s) & MUX_CAP_CONTINUE_RELAY, want);
            ck_assert_uint_eq(mux_session_capabilities(p.cli.s) & MUX_CAP_ZSTD, MUX_CAP_ZSTD);
            pair_del(&p);
        }
    }
}
END_TEST

START_TEST(test_handshake_refused)
{
    mux_session_options so, co;
    opts(&so, &co);
    pair p;
    pair_new(&p, &so, &co, 1);
    p.srv.accept_mode = 1;
    ck_assert_int_gt(transmit(&p.net, p.cli.s, p.srv.s, 1 << 20, 1), 0);
    ck_assert(mux_session_want_close(p.srv.s));
    ck_assert_int_eq(transmit(&p.net, p.srv.s, p.cli.s, 1 << 20, 0), MUX_ERR_REFUSED);
    ck_assert_int_eq(p.cli.refuses, 1);
    ck_assert_uint_eq(p.cli.refuse_code, MUX_CODE_NAME_TAKEN);
    ck_assert(mux_session_want_close(p.cli.s));
    ck_assert(!mux_session_is_established(p.cli.s));
    pair_del(&p);
}
END_TEST

START_TEST(test_handshake_deferred)
{
    mux_session_options so, co;
    opts(&so, &co);
    pair p;
    pair_new(&p, &so, &co, 1);
    p.srv.accept_mode = 2;
    pump(&p, 7);
    ck_assert(!mux_session_is_established(p.srv.s));
    ck_assert_int_eq(mux_session_open_stream(p.srv.s, &(mux_head){0}, NULL), MUX_ERR_INVALID_STATE);
    ck_assert_int_eq(mux_session_accept(p.srv.s, NULL), 0);
    pump(&p, 7);
    ck_assert(mux_session_is_established(p.cli.s));
    pair_del(&p);
}
END_TEST

START_TEST(test_handshake_timeout)
{
    mux_session_options so, co;
    opts(&so, &co);
    pair p;
    pair_new(&p, &so, &co, 1);
    int64_t t = mux_session_next_timeout(p.srv.s);
    ck_assert_int_eq(t, 1000 + so.handshake_timeout_ms);
    ck_assert_int_eq(mux_session_handle_timeout(p.srv.s, t - 1), 0);
    ck_assert_int_eq(mux_session_handle_timeout(p.srv.s, t), MUX_ERR_TIMEOUT);
    ck_assert(mux_session_want_close(p.srv.s));
    ck_assert_int_eq(mux_session_handle_timeout(p.cli.s, t), MUX_ERR_TIMEOUT);
    pair_del(&p);
}
END_TEST

Suite *make_suite(void);
Suite *make_suite(void)
{
    Suite *s = suite_create("session_handshake");
    TCase *tc = tcase_create("handshake");
    tcase_add_test(tc, test_handshake_ok);
    tcase_add_test(tc, test_handshake_no_zstd);
    tcase_add_test(tc, test_handshake_continue_relay);
    tcase_add_test(tc, test_handshake_refused);
    tcase_add_test(tc, test_handshake_deferred);
    tcase_add_test(tc, test_handshake_timeout);
    suite_add_tcase(s, tc);
    return s;
}

TM_CHECK_MAIN(make_suite)
