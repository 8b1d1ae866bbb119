/*
 * tunnelmux — tests for src/common/log.c: level/format parsing, level filter, text and JSON lines,
 * timestamps, escaping of quotes, backslashes, control characters and invalid UTF-8, truncation.
 * Each test logs into its own temporary file and reads it back.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check_main.h"
#include "common/log.h"

static char path[64];

static void setup(log_level level, log_format fmt)
{
    snprintf(path, sizeof(path), "/tmp/tm_test_log_XXXXXX");
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    close(fd);
    ck_assert_int_eq(log_init(level, fmt, "test", path), 0);
}

/* Returns the whole file (caller frees) and points the logger back to stderr. */
static char *slurp(void)
{
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    static char buf[65536];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = 0;
    fclose(f);
    log_init(LOG_LVL_INFO, LOG_FMT_TEXT, "test", NULL);
    unlink(path);
    return strdup(buf);
}

static int count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

START_TEST(test_parse)
{
    log_level l;
    log_format f;
    ck_assert_int_eq(log_parse_level("error", &l), 0);
    ck_assert_int_eq(l, LOG_LVL_ERROR);
    ck_assert_int_eq(log_parse_level("WARN", &l), 0);
    ck_assert_int_eq(l, LOG_LVL_WARN);
    ck_assert_int_eq(log_parse_level("info", &l), 0);
    ck_assert_int_eq(l, LOG_LVL_INFO);
    ck_assert_int_eq(log_parse_level("debug", &l), 0);
    ck_assert_int_eq(l, LOG_LVL_DEBUG);
    ck_assert_int_eq(log_parse_level("loud", &l), -1);
    ck_assert_int_eq(log_parse_level(NULL, &l), -1);
    ck_assert_int_eq(log_parse_format("json", &f), 0);
    ck_assert_int_eq(f, LOG_FMT_JSON);
    ck_assert_int_eq(log_parse_format("Text", &f), 0);
    ck_assert_int_eq(f, LOG_FMT_TEXT);
    ck_assert_int_eq(log_parse_format("xml", &f), -1);
}
END_TEST

START_TEST(test_level_filter)
{
    setup(LOG_LVL_WARN, LOG_FMT_TEXT);
    ck_assert_int_eq(log_enabled(LOG_LVL_ERROR), 1);
    ck_assert_int_eq(log_enabled(LOG_LVL_WARN), 1);
    ck_assert_int_eq(log_enabled(LOG_LVL_INFO), 0);
    ck_assert_int_eq(log_enabled(LOG_LVL_DEBUG), 0);
    LOG_ERROR(LOG_EV_CONF, "e%d", 1);
    LOG_WARN(LOG_EV_CONF, "w%d", 2);
    LOG_INFO(LOG_EV_CONF, "i%d", 3);
    LOG_DEBUG(LOG_EV_CONF, "d%d", 4);
    mux_log_kv(LOG_LVL_INFO, LOG_EV_ACCESS, "hidden", "k", "v", NULL);
    char *s = slurp();
    ck_assert_int_eq(count_lines(s), 2);
    ck_assert_ptr_nonnull(strstr(s, "ERROR test: e1\n"));
    ck_assert_ptr_nonnull(strstr(s, "WARN  test: w2\n"));
    ck_assert_ptr_null(strstr(s, "i3"));
    free(s);
}
END_TEST

/* 2026-11-25T09:00:00.123Z */
static void assert_timestamp(const char *t)
{
    static const char pat[] = "dddd-dd-ddTdd:dd:dd.dddZ";
    for (size_t i = 0; i < sizeof(pat) - 1; i++) {
        if (pat[i] == 'd')
            ck_assert_msg(t[i] >= '0' && t[i] <= '9', "timestamp %.24s", t);
        else
            ck_assert_msg(t[i] == pat[i], "timestamp %.24s", t);
    }
}

START_TEST(test_text_format)
{
    setup(LOG_LVL_DEBUG, LOG_FMT_TEXT);
    LOG_INFO(LOG_EV_TUNNEL, "client %s registered", "demo");
    mux_log_kv(LOG_LVL_INFO, LOG_EV_ACCESS, "request", "method", "GET", "path", "/a b", "ua", "x\"y", "empty", "", NULL);
    LOG_DEBUG(LOG_EV_STREAM, "line1\nline2\r\x01");
    char *s = slurp();
    ck_assert_int_eq(count_lines(s), 3);
    assert_timestamp(s);
    ck_assert_ptr_nonnull(strstr(s, "Z INFO  test: client demo registered\n"));
    ck_assert_ptr_nonnull(strstr(s, "INFO  test: request method=GET path=\"/a b\" ua=\"x\\\"y\" empty=\"\"\n"));
    ck_assert_ptr_nonnull(strstr(s, "DEBUG test: line1\\nline2\\r\\x01\n"));
    free(s);
}
END_TEST

START_TEST(test_json_format)
{
    setup(LOG_LVL_INFO, LOG_FMT_JSON);
    LOG_WARN(LOG_EV_TUNNEL, "quote \" backslash \\ tab \t nl \n cr \r nul-ish \x01 del \x7f");
    mux_log_kv(LOG_LVL_INFO, LOG_EV_ACCESS, "req", "host", "a\"b.example", "path", "/\x1b[31m", "utf8", "caf\xc3\xa9", "bad",
               "x\xff\xc3", NULL);
    LOG_ERROR(LOG_EV_ALL, "multi-bit mask");
    char *s = slurp();
    ck_assert_int_eq(count_lines(s), 3);
    ck_assert_ptr_nonnull(strstr(s, "{\"ts\":\""));
    assert_timestamp(strstr(s, "{\"ts\":\"") + 7);
    ck_assert_ptr_nonnull(strstr(s, "\"level\":\"warn\",\"component\":\"test\",\"ev\":\"tunnel\""));
    ck_assert_ptr_nonnull(strstr(s, "\"msg\":\"quote \\\" backslash \\\\ tab \\t nl \\n cr \\r nul-ish \\u0001 del \\u007f\"}\n"));
    ck_assert_ptr_nonnull(strstr(s, "\"ev\":\"access\",\"msg\":\"req\",\"host\":\"a\\\"b.example\",\"path\":\"/\\u001b[31m\""));
    ck_assert_ptr_nonnull(strstr(s, "\"utf8\":\"caf\xc3\xa9\""));
    ck_assert_ptr_nonnull(strstr(s, "\"bad\":\"x\\u00ff\\u00c3\"}\n"));
    ck_assert_ptr_nonnull(strstr(s, "\"level\":\"error\",\"component\":\"test\",\"msg\":\"multi-bit mask\"}\n"));
    /* no raw control character anywhere except the line ends */
    for (const char *p = s; *p; p++)
        ck_assert_msg((unsigned char)*p >= 0x20 || *p == '\n', "raw control char 0x%02x", (unsigned char)*p);
    free(s);
}
END_TEST

/* A crude JSON sanity check: balanced quotes outside escapes, starts with { and ends with }. */
static void assert_json_line(const char *l, size_t len)
{
    ck_assert_int_eq(l[0], '{');
    ck_assert_int_eq(l[len - 1], '}');
    int in = 0;
    for (size_t i = 0; i < len; i++) {
        if (in && l[i] == '\\') {
            i++;
            continue;
        }
        if (l[i] == '"')
            in = !in;
    }
    ck_assert_int_eq(in, 0);
}

START_TEST(test_truncation)
{
    size_t big = 20000;
    char *v = malloc(big + 1);
    for (size_t i = 0; i < big; i++)
        v[i] = (i % 7 == 0) ? '"' : 'a';
    v[big] = 0;
    setup(LOG_LVL_INFO, LOG_FMT_JSON);
    mux_log_kv(LOG_LVL_INFO, LOG_EV_ACCESS, "big", "k", v, "k2", "v2", NULL);
    LOG_INFO(LOG_EV_ACCESS, "%s", v);
    char *s = slurp();
    ck_assert_int_eq(count_lines(s), 2);
    char *nl = strchr(s, '\n');
    assert_json_line(s, (size_t)(nl - s));
    ck_assert_ptr_nonnull(strstr(s, "\"truncated\":true}"));
    assert_json_line(nl + 1, strlen(nl + 1) - 1);
    free(s);

    setup(LOG_LVL_INFO, LOG_FMT_TEXT);
    LOG_INFO(LOG_EV_ACCESS, "%s", v);
    s = slurp();
    ck_assert_int_eq(count_lines(s), 1);
    ck_assert_ptr_nonnull(strstr(s, "...\n"));
    ck_assert_uint_le(strlen(s), 8192);
    free(s);
    free(v);
}
END_TEST

START_TEST(test_reopen)
{
    setup(LOG_LVL_INFO, LOG_FMT_TEXT);
    LOG_INFO(LOG_EV_CONF, "before");
    char rotated[80];
    snprintf(rotated, sizeof(rotated), "%s.1", path);
    ck_assert_int_eq(rename(path, rotated), 0);
    ck_assert_int_eq(log_reopen(), 0);
    LOG_INFO(LOG_EV_CONF, "after");
    char *s = slurp();
    ck_assert_ptr_null(strstr(s, "before"));
    ck_assert_ptr_nonnull(strstr(s, "after"));
    free(s);
    unlink(rotated);
    ck_assert_int_eq(log_reopen(), 0); /* stderr: no-op */
    ck_assert_int_eq(log_init(LOG_LVL_INFO, LOG_FMT_TEXT, "x", "/nonexistent-dir/x.log"), -1);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("log");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_parse);
    tcase_add_test(tc, test_level_filter);
    tcase_add_test(tc, test_text_format);
    tcase_add_test(tc, test_json_format);
    tcase_add_test(tc, test_truncation);
    tcase_add_test(tc, test_reopen);
    suite_add_tcase(s, tc);
    return s;
}

TM_CHECK_MAIN(make_suite)
