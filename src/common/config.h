/*
 * tunnelmux — table-driven configuration shared by both binaries (names: README.md).
 *
 * Each option is an environment variable and a long flag (--max-clients / --max-clients=V);
 * flags win over the environment, the environment over the default. --help prints every option
 * with its env name and default; --version prints the version. A malformed or out-of-range value
 * stops start-up with one line naming the variable, exit code 2 (done by the caller with the
 * message cfg_parse returns).
 */
#ifndef TM_CONFIG_H
#define TM_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define TUNNELMUX_VERSION "0.1.0"

typedef enum {
    CFG_STRING,   /* char * (strdup'ed; freed by cfg_free) */
    CFG_INT,      /* int64_t, within [min, max] */
    CFG_SIZE,     /* uint64_t bytes: "8192", "64k", "10M", "1G" (binary units), within [min, max] */
    CFG_DURATION, /* int64_t milliseconds: "30" (seconds), "30s", "500ms", "2m", "1h"; min/max in ms */
    CFG_BOOL,     /* int: 1/0 true/false yes/no on/off */
    CFG_FLAG,     /* int: a flag without value (--insecure-no-auth); env accepts bool words */
    CFG_DOUBLE,   /* double: decimal "1.5", "0.2", "2"; within [min, max] (integers, inclusive) */
} cfg_type;

typedef struct cfg_option cfg_option;
struct cfg_option {
    const char *env;  /* "MAX_CLIENTS" */
    const char *flag; /* "max-clients" (without the dashes) */
    cfg_type type;
    const char *def;  /* default as text, NULL = unset (string NULL / number 0) */
    size_t offset;    /* offsetof() of the field in the options struct */
    int64_t min, max; /* for INT / SIZE / DURATION / DOUBLE; min == max == 0 means unbounded */
    const char *help; /* one line */
    /* optional extra check on the parsed field; returns 0 or writes a reason into err */
    int (*validate)(const cfg_option *opt, void *options, char *err, size_t errlen);
};

/*
 * Fills |options| from defaults, the environment (getenv) and argv, in that order.
 * Returns 0 on success; 1 when --help or --version was handled (printed to |out|; exit 0);
 * -1 on error with a one-line message in |err| naming the variable (e.g.
 * "PORT: 70000 is out of range 1..65535"), unknown flags included ("unknown option --foo").
 */
int cfg_parse(const cfg_option *table, size_t n, void *options, int argc, char **argv, const char *prog, const char *summary,
              FILE *out, char *err, size_t errlen);
void cfg_print_help(FILE *out, const char *prog, const char *summary, const cfg_option *table, size_t n);
/* Frees CFG_STRING fields. */
void cfg_free(const cfg_option *table, size_t n, void *options);

/* Validators usable in tables. */
int cfg_validate_dns_label(const cfg_option *opt, void *options, char *err, size_t errlen);
/* LOG_LEVEL (error|warn|info|debug) and LOG_FORMAT (text|json) string options. */
int cfg_validate_log_level(const cfg_option *opt, void *options, char *err, size_t errlen);
int cfg_validate_log_format(const cfg_option *opt, void *options, char *err, size_t errlen);

/* 1 when |s| (|len| bytes) is an RFC 1123 label: 1..63 of [A-Za-z0-9-], not starting/ending '-'. */
int cfg_is_dns_label(const char *s, size_t len);

#endif
