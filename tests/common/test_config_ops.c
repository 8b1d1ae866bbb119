/*
 * tunnelmux — tests for the configuration parts added for operations (issue 4): CFG_DOUBLE
 * values (RECONNECT_BACKOFF, RECONNECT_JITTER), the duration settings PING_INTERVAL /
 * PING_TIMEOUT / DRAIN_TIMEOUT with 0 meaning off, a cross-field validator, and --help showing
 * the new kinds.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check_main.h"
#include "common/config.h"

typedef struct {
    double backoff;
    double jitter;
    int64_t ping_interval;
    int64_t ping_timeout;
    int64_t drain;
    char *log_file;
} opts;

static int validate_ping(const cfg_option *opt, void *options, char *err, size_t errlen)
{
    const opts *o = options;
    if (o->ping_timeout != 0 && o->ping_interval != 0 && o->ping_timeout <= o->ping_interval) {
        snprintf(err, errlen, "must be larger than PING_INTERVAL");
        return -1;
    }
    return 0;
}

static const cfg_option table[] = {
    {"TO_BACKOFF", "backoff", CFG_DOUBLE, "1", offsetof(opts, backoff), 1, 10, "factor", NULL},
    {"TO_JITTER", "jitter", CFG_DOUBLE, "0", offsetof(opts, jitter), 0, 1, "fraction", NULL},
    {"TO_PING_INTERVAL", "ping-interval", CFG_DURATION, "15s", offsetof(opts, ping_interval), 0, 3600000, "ping", NULL},
    {"TO_PING_TIMEOUT", "ping-timeout", CFG_DURATION, "45s", offsetof(opts, ping_timeout), 0, 3600000, "dead", validate_ping},
    {"TO_DRAIN", "drain-timeout", CFG_DURATION, "30s", offsetof(opts, drain), 0, 3600000, "drain", NULL},
    {"TO_LOG_FILE", "log-file", CFG_STRING, "", offsetof(opts, log_file), 0, 0, "log", NULL},
};
#define N (sizeof(table) / sizeof(table[0]))

static void clear_env(void)
{
    for (size_t i = 0; i < N; i++)
        unsetenv(table[i].env);
}

/* cfg_parse over a NULL-terminated argument list; frees strings before returning. */
static int parse(opts *o, char *err, size_t errlen, ...)
{
    char *argv[16];
    int argc = 0;
    argv[argc++] = "prog";
    va_list ap;
    va_start(ap, errlen);
    char *a;
    while ((a = va_arg(ap, char *)) != NULL && argc < 15)
        argv[argc++] = a;
    va_end(ap);
    argv[argc] = NULL;
    memset(o, 0, sizeof(*o));
    int r = cfg_parse(table, N, o, argc, argv, "prog", NULL, NULL, err, errlen);
    cfg_free(table, N, o);
    return r;
}

START_TEST(test_double_defaults_and_values)
{
    clear_env();
    opts o;
    char err[256];
    ck_assert_int_eq(parse(&o, err, sizeof(err), NULL), 0);
    ck_assert(o.backoff == 1.0);
    ck_assert(o.jitter == 0.0);
    ck_assert_int_eq(o.ping_interval, 15000);
    ck_assert_int_eq(o.ping_timeout, 45000);
    ck_assert_int_eq(o.drain, 30000);

    ck_assert_int_eq(parse(&o, err, sizeof(err), "--backoff", "1.5", "--jitter=0.25", NULL), 0);
    ck_assert(o.backoff == 1.5);
    ck_assert(o.jitter == 0.25);
    ck_assert_int_eq(parse(&o, err, sizeof(err), "--backoff=2", "--jitter=.5", NULL), 0);
    ck_assert(o.backoff == 2.0);
    ck_assert(o.jitter == 0.5);
    ck_assert_int_eq(parse(&o, err, sizeof(err), "--backoff=10", "--jitter=1", NULL), 0); /* bounds inclusive */
    ck_assert(o.backoff == 10.0);
    ck_assert(o.jitter == 1.0);

    setenv("TO_JITTER", "0.1", 1);
    ck_assert_int_eq(parse(&o, err, sizeof(err), NULL), 0);
    ck_assert(o.jitter == 0.1);
    ck_assert_int_eq(parse(&o, err, sizeof(err), "--jitter", "0.3", NULL), 0); /* flag wins */
    ck_assert(o.jitter == 0.3);
    clear_env();
}
END_TEST

START_TEST(test_double_malformed)
{
    clear_env();
    opts o;
    char err[256];
    static const char *const bad[] = {"abc", "1e3", "0x2", "1.", "", ".", "1.5.2", "nan", "inf", "1,5", " 1", "2 "};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char arg[64];
        snprintf(arg, sizeof(arg), "--backoff=%s", bad[i]);
        int r = parse(&o, err, sizeof(err), arg, NULL);
        if (strcmp(bad[i], "1.") == 0) { /* "1." is accepted as 1 */
            ck_assert_int_eq(r, 0);
            continue;
        }
        ck_assert_msg(r == -1, "'%s' accepted", bad[i]);
        ck_assert_msg(strncmp(err, "TO_BACKOFF: ", 12) == 0, "message '%s' does not name the variable", err);
    }
    ck_assert_int_eq(parse(&o, err, sizeof(err), "--backoff=0.5", NULL), -1);
    ck_assert_str_eq(err, "TO_BACKOFF: '0.5' is out of range 1..10");
    ck_assert_int_eq(parse(&o, err, sizeof(err), "--jitter=1.01", NULL), -1);
    ck_assert_str_eq(err, "TO_JITTER: '1.01' is out of range 0..1");
    ck_assert_int_eq(parse(&o, err, sizeof(err), "--jitter=-0.1", NULL), -1);
    ck_assert_str_eq(err, "TO_JITTER: '-0.1' is out of range 0..1");
    ck_assert_int_eq(parse(&o, err, sizeof(err), "--jitter=99999999999999999999999999999999999999999", NULL), -1);
    ck_assert(strstr(err, "TO_JITTER") == err);
    setenv("TO_BACKOFF", "fast", 1);
    ck_assert_int_eq(parse(&o, err, sizeof(err), NULL), -1);
    ck_assert_str_eq(err, "TO_BACKOFF: 'fast' is not a number");
    clear_env();
}
END_TEST

START_TEST(test_durations_zero_off_and_cross_check)
{
    clear_env();
    opts o;
    char err[256];
    ck_assert_int_eq(parse(&o, err, sizeof(err), "--ping-interval=0", "--ping-timeout=0", "--drain-timeout=0", NULL), 0);
    ck_assert_int_eq(o.ping_interval, 0);
    ck_assert_int_eq(o.ping_timeout, 0);
    ck_assert_int_eq(o.drain, 0);
    ck_assert_int_eq(parse(&o, err, sizeof(err), "--ping-interval=500ms", "--ping-timeout=2s", NULL), 0);
    ck_assert_int_eq(o.ping_interval, 500);
    ck_assert_int_eq(o.ping_timeout, 2000);
    ck_assert_int_eq(parse(&o, err, sizeof(err), "--ping-interval=5", "--ping-timeout=5", NULL), -1);
    ck_assert_str_eq(err, "TO_PING_TIMEOUT: must be larger than PING_INTERVAL");
    ck_assert_int_eq(parse(&o, err, sizeof(err), "--ping-timeout=2h", NULL), -1);
    ck_assert_str_eq(err, "TO_PING_TIMEOUT: '2h' is out of range 0s..1h");
    ck_assert_int_eq(parse(&o, err, sizeof(err), "--drain-timeout=-5", NULL), -1);
    ck_assert(strncmp(err, "TO_DRAIN: ", 10) == 0);
    clear_env();
}
END_TEST

START_TEST(test_help_shows_kinds)
{
    clear_env();
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    ck_assert_ptr_nonnull(f);
    cfg_print_help(f, "prog", NULL, table, N);
    fclose(f);
    ck_assert_ptr_nonnull(strstr(buf, "--backoff=NUM"));
    ck_assert_ptr_nonnull(strstr(buf, "TO_JITTER"));
    ck_assert_ptr_nonnull(strstr(buf, "--drain-timeout=DURATION"));
    ck_assert_ptr_nonnull(strstr(buf, "default: 45s"));
    ck_assert_ptr_nonnull(strstr(buf, "TO_LOG_FILE"));
    free(buf);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("config_ops");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_double_defaults_and_values);
    tcase_add_test(tc, test_double_malformed);
    tcase_add_test(tc, test_durations_zero_off_and_cross_check);
    tcase_add_test(tc, test_help_shows_kinds);
    suite_add_tcase(s, tc);
    return s;
}

TM_CHECK_MAIN(make_suite)
