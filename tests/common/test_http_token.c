/*
 * tunnelmux — tests for src/common/http_token.c: the token table against RFC 9110's tchar list for
 * every byte, clean values, case-insensitive names, the hop-by-hop set and its near misses.
 */
#include <ctype.h>
#include <string.h>

#include "check_main.h"
#include "common/http_token.h"

START_TEST(test_token_every_byte)
{
    static const char extra[] = "!#$%&'*+-.^_`|~";
    for (int c = 0; c < 256; c++) {
        char s[3] = {'a', (char)c, 'b'};
        int want = (c < 128 && isalnum(c)) || (c != 0 && strchr(extra, c) != NULL);
        ck_assert_msg(http_is_token(s, 3) == want, "byte 0x%02x", c);
        ck_assert_int_eq(http_is_token(s + 1, 1), want);
    }
    ck_assert(!http_is_token("", 0));
    ck_assert(http_is_token("x-Forwarded_For!", 16));
    ck_assert(!http_is_token("a:b", 3));
    ck_assert(!http_is_token("bad name", 8));
}
END_TEST

START_TEST(test_clean_value)
{
    for (int c = 0; c < 256; c++) {
        char s[3] = {'a', (char)c, 'b'};
        ck_assert_int_eq(http_is_clean_value(s, 3), !(c == '\r' || c == '\n' || c == 0));
    }
    /* every position of a long value, each offending byte (the word-at-a-time path) */
    char v[40];
    for (size_t len = 1; len <= sizeof(v); len++)
        for (size_t at = 0; at < len; at++)
            for (int k = 0; k < 4; k++) {
                static const char bad[4] = {'\r', '\n', '\0', '\x0e'};
                memset(v, 'x', sizeof(v));
                v[at] = bad[k];
                ck_assert_int_eq(http_is_clean_value(v, len), k == 3);
            }
    memset(v, 0x7f, sizeof(v)); /* high and odd bytes are fine */
    v[3] = (char)0xff;
    v[17] = (char)0x80;
    v[30] = '\t';
    ck_assert(http_is_clean_value(v, sizeof(v)));
    ck_assert(http_is_clean_value(NULL, 0));
    ck_assert(http_is_clean_value("a\tb", 3));
}
END_TEST

START_TEST(test_name_is)
{
    ck_assert(http_name_is("Content-Length", 14, "content-length"));
    ck_assert(http_name_is("CONTENT-LENGTH", 14, "content-length"));
    ck_assert(!http_name_is("content-lengt", 13, "content-length"));
    ck_assert(!http_name_is("content-lengthx", 15, "content-length"));
    ck_assert(!http_name_is("content\rlength", 14, "content-length")); /* no case-fold of non-letters */
    ck_assert(!http_name_is("content\x0dlength", 14, "content-length"));
    ck_assert(!http_name_is("Host@", 5, "host`"));
    ck_assert(http_name_eq("", 0, "", 0));
}
END_TEST

START_TEST(test_hop_by_hop)
{
    static const char *const hop[] = {"connection", "keep-alive",        "proxy-connection", "te",
                                      "trailer",    "transfer-encoding", "upgrade",          "http2-settings"};
    for (size_t i = 0; i < sizeof(hop) / sizeof(hop[0]); i++) {
        char up[32];
        size_t n = strlen(hop[i]);
        for (size_t k = 0; k <= n; k++)
            up[k] = (char)toupper((unsigned char)hop[i][k]);
        ck_assert_msg(http_is_hop_by_hop(hop[i], n), "%s", hop[i]);
        ck_assert_msg(http_is_hop_by_hop(up, n), "%s", up);
        ck_assert_msg(!http_is_hop_by_hop(hop[i], n - 1), "%s shortened", hop[i]);
        char longer[40];
        memcpy(longer, hop[i], n);
        longer[n] = 's';
        ck_assert_msg(!http_is_hop_by_hop(longer, n + 1), "%s lengthened", hop[i]);
    }
    ck_assert(!http_is_hop_by_hop("set-cookie", 10));
    ck_assert(!http_is_hop_by_hop("tf", 2));
    ck_assert(!http_is_hop_by_hop("x", 1));
    ck_assert(!http_is_hop_by_hop("", 0));
}
END_TEST

/* The elements of |list| joined with '|' (each trimmed; empty ones kept). */
static void elements(const char *list, char *out, size_t cap)
{
    size_t pos = 0, n, o = 0;
    const char *e;
    int first = 1;
    out[0] = '\0';
    while (http_list_next(list, strlen(list), &pos, &e, &n)) {
        ck_assert_uint_lt(o + n + 2, cap);
        if (!first)
            out[o++] = '|';
        memcpy(out + o, e, n);
        o += n;
        out[o] = '\0';
        first = 0;
    }
}

START_TEST(test_list)
{
    char got[128];
    elements("", got, sizeof(got));
    ck_assert_str_eq(got, "");
    elements("a", got, sizeof(got));
    ck_assert_str_eq(got, "a");
    elements(" keep-alive ,\tUpgrade\t", got, sizeof(got));
    ck_assert_str_eq(got, "keep-alive|Upgrade");
    elements("a,,b", got, sizeof(got));
    ck_assert_str_eq(got, "a||b");
    elements("a,", got, sizeof(got)); /* a trailing comma ends the list */
    ck_assert_str_eq(got, "a");
    elements(",a", got, sizeof(got));
    ck_assert_str_eq(got, "|a");
    elements(" x y , z", got, sizeof(got)); /* inner blanks stay */
    ck_assert_str_eq(got, "x y|z");
    ck_assert(http_list_has("Keep-Alive, UPGRADE", 19, "upgrade", 7));
    ck_assert(http_list_has("websocket", 9, "WebSocket", 9));
    ck_assert(!http_list_has("websockets", 10, "websocket", 9));
    ck_assert(!http_list_has("web socket", 10, "websocket", 9));
    ck_assert(!http_list_has("", 0, "upgrade", 7));
    ck_assert(http_list_has("a, b ,c", 7, "b", 1));
    /* only |len| bytes count */
    ck_assert(!http_list_has("a, upgrade", 3, "upgrade", 7));
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("http_token");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_token_every_byte);
    tcase_add_test(tc, test_clean_value);
    tcase_add_test(tc, test_name_is);
    tcase_add_test(tc, test_hop_by_hop);
    tcase_add_test(tc, test_list);
    suite_add_tcase(s, tc);
    return s;
}

TM_CHECK_MAIN(make_suite)
