/*
 * tunnelmux — tests for src/common/config.c: every value type, bounds, env vs flag precedence,
 * malformed values, --help / --version output, validators.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "check_main.h"
#include "common/config.h"

typedef struct {
    int64_t port;
    char *domain;
    char *client_id;
    uint64_t chunk_size;
    int64_t read_timeout;
    int64_t max_retries;
    int tls_insecure;
    int verbose;
} opts;

static const cfg_option table[] = {
    {"TT_PORT", "port", CFG_INT, "8080", offsetof(opts, port), 1, 65535, "listen port", NULL},
    {"TT_DOMAIN", "domain", CFG_STRING, "example.com", offsetof(opts, domain), 0, 0, "public domain", NULL},
    {"TT_CLIENT_ID", "client-id", CFG_STRING, NULL, offsetof(opts, client_id), 0, 0, "tunnel name", cfg_validate_dns_label},
    {"TT_CHUNK_SIZE", "chunk-size", CFG_SIZE, "8k", offsetof(opts, chunk_size), 1024, 16 << 20, "DATA chunk", NULL},
    {"TT_READ_TIMEOUT", "read-timeout", CFG_DURATION, "120s", offsetof(opts, read_timeout), 1000, 3600 * 1000, "timeout", NULL},
    {"TT_MAX_RETRIES", "max-retries", CFG_INT, "-1", offsetof(opts, max_retries), -1, 1000000, "retries", NULL},
    {"TT_TLS_INSECURE", "tls-insecure", CFG_BOOL, "false", offsetof(opts, tls_insecure), 0, 0, "skip verify", NULL},
    {"TT_VERBOSE", "verbose", CFG_FLAG, NULL, offsetof(opts, verbose), 0, 0, "chatty", NULL},
};
#define N (sizeof(table) / sizeof(table[0]))

static void clear_env(void)
{
    for (size_t i = 0; i < N; i++)
        unsetenv(table[i].env);
}

/* Runs cfg_parse on a NULL-terminated argument list (argv[0] = "prog"). */
static int parse(opts *o, char *err, size_t errlen, ...)
{
    char *argv[32];
    int argc = 0;
    argv[argc++] = "prog";
    va_list ap;
    va_start(ap, errlen);
    char *a;
    while ((a = va_arg(ap, char *)) != NULL && argc < 31)
        argv[argc++] = a;
    va_end(ap);
    argv[argc] = NULL;
    memset(o, 0, sizeof(*o));
    return cfg_parse(table, N, o, argc, argv, "prog", "a test program", NULL, err, errlen);
}

START_TEST(test_defaults)
{
    clear_env();
    opts o;
    char err[256];
    ck_assert_int_eq(parse(&o, err, sizeof(err), NULL), 0);
    ck_assert_int_eq(o.port, 8080);
    ck_assert_str_eq(o.domain, "example.com");
    ck_assert_ptr_null(o.client_id);
    ck_assert_uint_eq(o.chunk_size, 8192);
    ck_assert_int_eq(o.read_timeout, 120000);
    ck_assert_int_eq(o.max_retries, -1);
    ck_assert_int_eq(o.tls_insecure, 0);
    ck_assert_int_eq(o.verbose, 0);
    cfg_free(table, N, &o);
    ck_assert_ptr_null(o.domain);
    cfg_free(table, N, &o); /* idempotent */
}
END_TEST

START_TEST(test_env_then_flags)
{
    clear_env();
    setenv("TT_PORT", "9000", 1);
    setenv("TT_DOMAIN", "env.example", 1);
    setenv("TT_TLS_INSECURE", "yes", 1);
    opts o;
    char err[256];
    ck_assert_int_eq(parse(&o, err, sizeof(err), NULL), 0);
    ck_assert_int_eq(o.port, 9000);
    ck_assert_str_eq(o.domain, "env.example");
    ck_assert_int_eq(o.tls_insecure, 1);
    cfg_free(table, N, &o);

    /* flags win; --flag=value and --flag value */
    ck_assert_int_eq(parse(&o, err, sizeof(err), "--port=9100", "--domain", "flag.example", "--no-tls-insecure", NULL), 0);
    ck_assert_int_eq(o.port, 9100);
    ck_assert_str_eq(o.domain, "flag.example");
    ck_assert_int_eq(o.tls_insecure, 0);
    cfg_free(table, N, &o);

    /* the last flag wins */
    ck_assert_int_eq(parse(&o, err, sizeof(err), "--port", "1", "--port", "2", NULL), 0);
    ck_assert_int_eq(o.port, 2);
    cfg_free(table, N, &o);
    clear_env();
}
END_TEST

START_TEST(test_empty_env)
{
    clear_env();
    setenv("TT_PORT", "", 1);   /* empty number = unset */
    setenv("TT_DOMAIN", "", 1); /* empty string is a value */
    opts o;
    char err[256];
    ck_assert_int_eq(parse(&o, err, sizeof(err), NULL), 0);
    ck_assert_int_eq(o.port, 8080);
    ck_assert_str_eq(o.domain, "");
    cfg_free(table, N, &o);
    clear_env();
}
END_TEST

START_TEST(test_int_bounds)
{
    clear_env();
    opts o;
    char err[256];
    ck_assert_int_eq(parse(&o, err, sizeof(err), "--port=65535", NULL), 0);
    ck_assert_int_eq(o.port, 65535);
    cfg_free(table, N, &o);
    ck_assert_int_eq(parse(&o, err, sizeof(err), "--port=1", NULL), 0);
    cfg_free(table, N, &o);

    ck_assert_int_eq(parse(&o, err, sizeof(err), "--port=70000", NULL), -1);
    ck_assert_str_eq(err, "TT_PORT: '70000' is out of range 1..65535");
    cfg_free(table, N, &o);
    ck_assert_int_eq(parse(&o, err, sizeof(err), "--port=0", NULL), -1);
    ck_assert_str_eq(err, "TT_PORT: '0' is out of range 1..65535");
    cfg_free(table, N, &o);
    ck_assert_int_eq(parse(&o, err, sizeof(err), "--port=abc", NULL), -1);
    ck_assert_str_eq(err, "TT_PORT: 'abc' is not an integer");
    cfg_free(table, N, &o);
    ck_assert_int_eq(parse(&o, err, sizeof(err), "--port=80x", NULL), -1);
    cfg_free(table, N, &o);
    ck_assert_int_eq(parse(&o, err, sizeof(err), "--port=99999999999999999999999", NULL), -1);
    cfg_free(table, N, &o);
    ck_assert_int_eq(parse(&o, err, sizeof(err), "--port=", NULL), -1);
    cfg_free(table, N, &o);

    setenv("TT_PORT", "70000", 1);
    ck_assert_int_eq(parse(&o, err, sizeof(err), NULL), -1);
    ck_assert_str_eq(err, "TT_PORT: '70000' is out of range 1..65535");
    cfg_free(table, N, &o);
    /* a good flag does not rescue a bad environment value: the env is parsed first */
    ck_assert_int_eq(parse(&o, err, sizeof(err), "--port=80", NULL), -1);
    cfg_free(table, N, &o);
    clear_env();

    ck_assert_int_eq(parse(&o, err, sizeof(err), "--max-retries=-1", NULL), 0);
    ck_assert_int_eq(o.max_retries, -1);
    cfg_free(table, N, &o);
    ck_assert_int_eq(parse(&o, err, sizeof(err), "--max-retries", "-2", NULL), -1);
    ck_assert_str_eq(err, "TT_MAX_RETRIES: '-2' is out of range -1..1000000");
    cfg_free(table, N, &o);
}
END_TEST

START_TEST(test_sizes)
{
    clear_env();
    static const struct {
        const char *in;
        uint64_t out;
    } ok[] = {{"1024", 1024},    {"64k", 65536}, {"64K", 65536},    {"1M", 1 << 20},
              {"16M", 16 << 20}, {"2kb", 2048},  {"1MiB", 1 << 20}, {"4096B", 4096}};
    opts o;
    char err[256], arg[64];
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        snprintf(arg, sizeof(arg), "--chunk-size=%s", ok[i].in);
        ck_assert_msg(parse(&o, err, sizeof(err), arg, NULL) == 0, "%s: %s", ok[i].in, err);
        ck_assert_uint_eq(o.chunk_size, ok[i].out);
        cfg_free(table, N, &o);
    }
    static const char *bad[] = {"abc", "", "1X", "k", "-1k", "1.5M", "1 k", "99999999999999999999G"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(arg, sizeof(arg), "--chunk-size=%s", bad[i]);
        ck_assert_msg(parse(&o, err, sizeof(err), arg, NULL) == -1, "%s accepted", bad[i]);
        ck_assert_ptr_nonnull(strstr(err, "is not a size"));
        cfg_free(table, N, &o);
    }
    setenv("TT_CHUNK_SIZE", "abc", 1);
    ck_assert_int_eq(parse(&o, err, sizeof(err), NULL), -1);
    ck_assert_str_eq(err, "TT_CHUNK_SIZE: 'abc' is not a size");
    cfg_free(table, N, &o);
    clear_env();
    ck_assert_int_eq(parse(&o, err, sizeof(err), "--chunk-size=1G", NULL), -1);
    ck_assert_str_eq(err, "TT_CHUNK_SIZE: '1G' is out of range 1k..16M");
    cfg_free(table, N, &o);
    ck_assert_int_eq(parse(&o, err, sizeof(err), "--chunk-size=100", NULL), -1);
    cfg_free(table, N, &o);
    ck_assert_int_eq(parse(&o, err, sizeof(err), "--chunk-size=20000000000000G", NULL), -1);
    cfg_free(table, N, &o);
}
END_TEST

START_TEST(test_durations)
{
    clear_env();
    static const struct {
        const char *in;
        int64_t ms;
    } ok[] = {{"30", 30000},    {"30s", 30000},  {"1500ms", 1500},  {"2m", 120000},   {"1h", 3600000},
              {"1", 1000},      {"1.5s", 1500},  {"1.25", 1250},    {"1m30s", 90000}, {"1h0m0s", 3600000},
              {"2min", 120000}, {"0.5m", 30000}, {"1s500ms", 1500}, {"+3s", 3000},    {"1.000000000000s", 1000}};
    opts o;
    char err[256], arg[64];
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        snprintf(arg, sizeof(arg), "--read-timeout=%s", ok[i].in);
        ck_assert_msg(parse(&o, err, sizeof(err), arg, NULL) == 0, "%s: %s", ok[i].in, err);
        ck_assert_int_eq(o.read_timeout, ok[i].ms);
        cfg_free(table, N, &o);
    }
    static const char *bad[] = {"abc",   "30x",     "s",
                                "-5s",   "1.0005s", "30 s",
                                "1m30",  "",        ".s",
                                "1.5ms", "1sm",     "1mss",
                                "1hh",   "1e3s",    "99999999999999999999s",
                                "1..5s", "1.5.5s",  "3000000000000000h"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(arg, sizeof(arg), "--read-timeout=%s", bad[i]);
        ck_assert_msg(parse(&o, err, sizeof(err), arg, NULL) == -1, "%s accepted", bad[i]);
        ck_assert_ptr_nonnull(strstr(err, "is not a duration"));
        cfg_free(table, N, &o);
    }
    ck_assert_int_eq(parse(&o, err, sizeof(err), "--read-timeout=500ms", NULL), -1);
    ck_assert_str_eq(err, "TT_READ_TIMEOUT: '500ms' is out of range 1s..1h");
    cfg_free(table, N, &o);
    ck_assert_int_eq(parse(&o, err, sizeof(err), "--read-timeout=2h", NULL), -1);
    cfg_free(table, N, &o);
}
END_TEST

START_TEST(test_bools_and_flags)
{
    clear_env();
    static const char *yes[] = {"1", "true", "TRUE", "yes", "on", "On"};
    static const char *no[] = {"0", "false", "no", "off", "OFF"};
    opts o;
    char err[256], arg[64];
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        setenv("TT_TLS_INSECURE", yes[i], 1);
        setenv("TT_VERBOSE", yes[i], 1);
        ck_assert_int_eq(parse(&o, err, sizeof(err), NULL), 0);
        ck_assert_int_eq(o.tls_insecure, 1);
        ck_assert_int_eq(o.verbose, 1);
        cfg_free(table, N, &o);
    }
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
        snprintf(arg, sizeof(arg), "--tls-insecure=%s", no[i]);
        ck_assert_int_eq(parse(&o, err, sizeof(err), arg, "--no-verbose", NULL), 0);
        ck_assert_int_eq(o.tls_insecure, 0);
        ck_assert_int_eq(o.verbose, 0);
        cfg_free(table, N, &o);
    }
    clear_env();
    /* bare boolean flag = true; "--bool value" consumes a bool word only */
    ck_assert_int_eq(parse(&o, err, sizeof(err), "--tls-insecure", "--verbose", NULL), 0);
    ck_assert_int_eq(o.tls_insecure, 1);
    ck_assert_int_eq(o.verbose, 1);
    cfg_free(table, N, &o);
    ck_assert_int_eq(parse(&o, err, sizeof(err), "--tls-insecure", "no", "--port", "81", NULL), 0);
    ck_assert_int_eq(o.tls_insecure, 0);
    ck_assert_int_eq(o.port, 81);
    cfg_free(table, N, &o);
    ck_assert_int_eq(parse(&o, err, sizeof(err), "--tls-insecure=maybe", NULL), -1);
    ck_assert_str_eq(err, "TT_TLS_INSECURE: 'maybe' is not a boolean (true/false, yes/no, on/off, 1/0)");
    cfg_free(table, N, &o);
    setenv("TT_VERBOSE", "sure", 1);
    ck_assert_int_eq(parse(&o, err, sizeof(err), NULL), -1);
    cfg_free(table, N, &o);
    clear_env();
    /* --no- only for booleans */
    ck_assert_int_eq(parse(&o, err, sizeof(err), "--no-port", NULL), -1);
    ck_assert_str_eq(err, "unknown option --no-port");
    cfg_free(table, N, &o);
}
END_TEST

START_TEST(test_unknown_and_missing)
{
    clear_env();
    opts o;
    char err[256];
    ck_assert_int_eq(parse(&o, err, sizeof(err), "--foo", NULL), -1);
    ck_assert_str_eq(err, "unknown option --foo");
    cfg_free(table, N, &o);
    ck_assert_int_eq(parse(&o, err, sizeof(err), "--foo=bar", NULL), -1);
    ck_assert_str_eq(err, "unknown option --foo");
    cfg_free(table, N, &o);
    ck_assert_int_eq(parse(&o, err, sizeof(err), "stray", NULL), -1);
    ck_assert_str_eq(err, "unexpected argument 'stray'");
    cfg_free(table, N, &o);
    ck_assert_int_eq(parse(&o, err, sizeof(err), "-p", NULL), -1);
    cfg_free(table, N, &o);
    ck_assert_int_eq(parse(&o, err, sizeof(err), "--port", NULL), -1);
    ck_assert_str_eq(err, "TT_PORT: option --port needs a value");
    cfg_free(table, N, &o);
    ck_assert_int_eq(parse(&o, err, sizeof(err), "--", NULL), 0);
    cfg_free(table, N, &o);
    /* a tiny error buffer is not overrun */
    char small[8];
    ck_assert_int_eq(parse(&o, small, sizeof(small), "--port=70000", NULL), -1);
    ck_assert_uint_eq(strlen(small), 7);
    cfg_free(table, N, &o);
    ck_assert_int_eq(parse(&o, NULL, 0, "--port=70000", NULL), -1);
    cfg_free(table, N, &o);
}
END_TEST

START_TEST(test_control_chars_in_error)
{
    clear_env();
    setenv("TT_PORT", "8\n080", 1);
    opts o;
    char err[256];
    ck_assert_int_eq(parse(&o, err, sizeof(err), NULL), -1);
    ck_assert_ptr_null(strchr(err, '\n'));
    ck_assert_str_eq(err, "TT_PORT: '8?080' is not an integer");
    cfg_free(table, N, &o);
    clear_env();
}
END_TEST

START_TEST(test_dns_label)
{
    clear_env();
    ck_assert_int_eq(cfg_is_dns_label("demo", 4), 1);
    ck_assert_int_eq(cfg_is_dns_label("a-b-9", 5), 1);
    ck_assert_int_eq(cfg_is_dns_label("A", 1), 1);
    ck_assert_int_eq(cfg_is_dns_label("", 0), 0);
    ck_assert_int_eq(cfg_is_dns_label("-a", 2), 0);
    ck_assert_int_eq(cfg_is_dns_label("a-", 2), 0);
    ck_assert_int_eq(cfg_is_dns_label("a.b", 3), 0);
    ck_assert_int_eq(cfg_is_dns_label("a_b", 3), 0);
    ck_assert_int_eq(cfg_is_dns_label("\xc3\xa9", 2), 0);
    char l63[64], l64[65];
    memset(l63, 'a', 63);
    l63[63] = 0;
    memset(l64, 'a', 64);
    l64[64] = 0;
    ck_assert_int_eq(cfg_is_dns_label(l63, 63), 1);
    ck_assert_int_eq(cfg_is_dns_label(l64, 64), 0);

    opts o;
    char err[256];
    ck_assert_int_eq(parse(&o, err, sizeof(err), "--client-id=demo", NULL), 0);
    ck_assert_str_eq(o.client_id, "demo");
    cfg_free(table, N, &o);
    ck_assert_int_eq(parse(&o, err, sizeof(err), "--client-id=bad_name", NULL), -1);
    ck_assert_ptr_nonnull(strstr(err, "TT_CLIENT_ID: 'bad_name' is not a DNS label"));
    cfg_free(table, N, &o);
    ck_assert_int_eq(parse(&o, err, sizeof(err), "--client-id=a\nb", NULL), -1);
    ck_assert_ptr_null(strchr(err, '\n'));
    cfg_free(table, N, &o);
}
END_TEST

/* Runs cfg_parse with output captured into a memory stream; returns the text (caller frees). */
static char *capture(const char *arg, int *rv)
{
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    ck_assert_ptr_nonnull(out);
    char *argv[] = {"prog", (char *)arg, NULL};
    opts o;
    memset(&o, 0, sizeof(o));
    char err[256];
    *rv = cfg_parse(table, N, &o, 2, argv, "prog", "a test program", out, err, sizeof(err));
    fclose(out);
    cfg_free(table, N, &o);
    return text;
}

START_TEST(test_help_and_version)
{
    clear_env();
    int rv;
    char *text = capture("--help", &rv);
    ck_assert_int_eq(rv, 1);
    ck_assert_ptr_nonnull(strstr(text, "Usage: prog"));
    ck_assert_ptr_nonnull(strstr(text, "a test program"));
    for (size_t i = 0; i < N; i++) {
        ck_assert_msg(strstr(text, table[i].env) != NULL, "help misses %s", table[i].env);
        char flag[64];
        snprintf(flag, sizeof(flag), "--%s", table[i].flag);
        ck_assert_msg(strstr(text, flag) != NULL, "help misses %s", flag);
        ck_assert_msg(strstr(text, table[i].help) != NULL, "help misses help of %s", table[i].env);
        if (table[i].def != NULL)
            ck_assert_msg(strstr(text, table[i].def) != NULL, "help misses default of %s", table[i].env);
    }
    ck_assert_ptr_nonnull(strstr(text, "--version"));
    free(text);

    text = capture("-h", &rv);
    ck_assert_int_eq(rv, 1);
    free(text);

    text = capture("--version", &rv);
    ck_assert_int_eq(rv, 1);
    ck_assert_str_eq(text, "prog " TUNNELMUX_VERSION "\n");
    free(text);

    /* nothing is printed on success or error */
    text = capture("--port=1", &rv);
    ck_assert_int_eq(rv, 0);
    ck_assert_str_eq(text, "");
    free(text);
    text = capture("--port=0", &rv);
    ck_assert_int_eq(rv, -1);
    ck_assert_str_eq(text, "");
    free(text);

    /* help wins even when the environment holds a bad value */
    setenv("TT_PORT", "nope", 1);
    text = capture("--help", &rv);
    ck_assert_int_eq(rv, 1);
    free(text);
    clear_env();
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_defaults);
    tcase_add_test(tc, test_env_then_flags);
    tcase_add_test(tc, test_empty_env);
    tcase_add_test(tc, test_int_bounds);
    tcase_add_test(tc, test_sizes);
    tcase_add_test(tc, test_durations);
    tcase_add_test(tc, test_bools_and_flags);
    tcase_add_test(tc, test_unknown_and_missing);
    tcase_add_test(tc, test_control_chars_in_error);
    tcase_add_test(tc, test_dns_label);
    tcase_add_test(tc, test_help_and_version);
    suite_add_tcase(s, tc);
    return s;
}

TM_CHECK_MAIN(make_suite)
