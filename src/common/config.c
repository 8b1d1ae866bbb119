/*
 * tunnelmux — table-driven configuration (see config.h).
 *
 * Order: defaults, then the environment, then argv; the last one wins. Values are parsed by type
 * (string, integer, size, duration, boolean, flag), range-checked against the table, and finally
 * every option with a validator is validated. Nothing is printed here except --help / --version
 * to the caller's |out|; errors go into the caller's buffer as one line naming the variable.
 */
#include "common/config.h"
#include "common/log.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Writes a formatted one-line error into err (if any) and returns -1. */
static int seterr(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int seterr(char *err, size_t errlen, const char *fmt, ...)
{
    if (err != NULL && errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

static void *field(const cfg_option *opt, void *options)
{
    return (char *)options + opt->offset;
}

/* Skips a leading '+', or a '-' when |allow_negative| (setting |*neg|). Returns the rest. */
static const char *skip_sign(const char *s, int allow_negative, int *neg)
{
    *neg = 0;
    if (*s == '-' && allow_negative) {
        *neg = 1;
        return s + 1;
    }
    return *s == '+' ? s + 1 : s;
}

/* Parses an optional '-' and decimal digits into *out (no overflow). Returns the rest or NULL. */
static const char *parse_int_prefix(const char *s, int allow_negative, int64_t *out)
{
    int neg;
    s = skip_sign(s, allow_negative, &neg);
    if (!isdigit((unsigned char)*s))
        return NULL;
    uint64_t v = 0;
    while (isdigit((unsigned char)*s)) {
        unsigned d = (unsigned)(*s - '0');
        if (v > ((uint64_t)INT64_MAX - d) / 10)
            return NULL;
        v = v * 10 + d;
        s++;
    }
    *out = neg ? -(int64_t)v : (int64_t)v;
    return s;
}

/* "8192", "64k", "10M", "1G", "2T", optionally followed by "b"/"B"/"iB" (binary units). */
static int parse_size(const char *s, uint64_t *out)
{
    int64_t n;
    const char *p = parse_int_prefix(s, 0, &n);
    if (p == NULL)
        return -1;
    unsigned shift = 0;
    switch (*p) {
    case '\0':
        break;
    case 'k':
    case 'K':
        shift = 10;
        p++;
        break;
    case 'm':
    case 'M':
        shift = 20;
        p++;
        break;
    case 'g':
    case 'G':
        shift = 30;
        p++;
        break;
    case 't':
    case 'T':
        shift = 40;
        p++;
        break;
    case 'b':
    case 'B':
        break;
    default:
        return -1;
    }
    if (shift != 0 && *p == 'i')
        p++;
    if (*p == 'b' || *p == 'B')
        p++;
    if (*p != '\0')
        return -1;
    if (shift != 0 && (uint64_t)n > (UINT64_MAX >> shift))
        return -1;
    *out = (uint64_t)n << shift;
    return 0;
}

/* Milliseconds per unit at |*p| ("ms", "s", "m"/"min", "h"; none = seconds when |bare_ok|),
 * advancing |*p| past it; 0 for anything else. */
static int64_t duration_unit(const char **p, int bare_ok)
{
    static const struct {
        const char *name;
        size_t len;
        int64_t ms;
    } units[] = {{"ms", 2, 1}, {"min", 3, 60 * 1000}, {"s", 1, 1000}, {"m", 1, 60 * 1000}, {"h", 1, 3600 * 1000}};
    if (**p == '\0' || isdigit((unsigned char)**p) || **p == '.')
        return bare_ok && **p == '\0' ? 1000 : 0;
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (strncmp(*p, units[i].name, units[i].len) == 0 && !isalpha((unsigned char)(*p)[units[i].len])) {
            *p += units[i].len;
            return units[i].ms;
        }
    }
    return 0;
}

/*
 * "30" or "0.5" (seconds), "30s", "500ms", "2m", "1.5h", and sums of such terms as Go writes them
 * ("1m30s", "1h0m0s"); units ms, s, m (or min), h. Result in milliseconds; a value finer than a
 * millisecond ("1.5ms"), an empty or overflowing one is an error.
 */
static int parse_duration(const char *s, int allow_negative, int64_t *out)
{
    int neg;
    s = skip_sign(s, allow_negative, &neg);
    if (*s == '\0')
        return -1;
    int64_t total = 0;
    for (int term = 0; *s != '\0'; term++) {
        uint64_t ip = 0, fp = 0, fscale = 1;
        int digits = 0;
        for (; isdigit((unsigned char)*s); s++, digits++) {
            if (ip > (uint64_t)INT64_MAX / 10)
                return -1;
            ip = ip * 10 + (uint64_t)(*s - '0');
        }
        if (*s == '.') {
            for (s++; isdigit((unsigned char)*s); s++, digits++) {
                if (fscale < 1000000000ull) {
                    fp = fp * 10 + (uint64_t)(*s - '0');
                    fscale *= 10;
                } else if (*s != '0') {
                    return -1; /* finer than a nanosecond of an hour: certainly finer than 1 ms */
                }
            }
        }
        if (digits == 0)
            return -1;
        int64_t mul = duration_unit(&s, term == 0);
        if (mul == 0 || ip > (uint64_t)(INT64_MAX / mul))
            return -1;
        if ((fp * (uint64_t)mul) % fscale != 0)
            return -1; /* not a whole number of milliseconds */
        int64_t v = (int64_t)ip * mul + (int64_t)(fp * (uint64_t)mul / fscale);
        if (v < 0 || total > INT64_MAX - v)
            return -1;
        total += v;
    }
    *out = neg ? -total : total;
    return 0;
}

/* Decimal number without exponent or hex: [+-]DIGITS[.DIGITS] or .DIGITS; finite. */
static int parse_double(const char *s, double *out)
{
    const char *p = s;
    if (*p == '+' || *p == '-')
        p++;
    int digits = 0;
    while (isdigit((unsigned char)*p)) {
        p++;
        digits++;
    }
    if (*p == '.') {
        p++;
        while (isdigit((unsigned char)*p)) {
            p++;
            digits++;
        }
    }
    if (digits == 0 || *p != '\0' || p - s > 40)
        return -1;
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (end != p || errno == ERANGE || v != v)
        return -1;
    *out = v;
    return 0;
}

static int parse_bool(const char *s, int *out)
{
    static const char *const yes[] = {"1", "true", "yes", "on"};
    static const char *const no[] = {"0", "false", "no", "off"};
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = 1;
            return 0;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = 0;
            return 0;
        }
    }
    return -1;
}

/* Formats a bound for messages: sizes as 64k/16M when exact, durations as 500ms/30s/2m/1h. */
static void fmt_bound(char *buf, size_t len, cfg_type type, int64_t v)
{
    if (type == CFG_SIZE && v > 0) {
        static const char units[] = {'G', 'M', 'k'};
        static const unsigned shifts[] = {30, 20, 10};
        for (size_t i = 0; i < 3; i++) {
            if ((v & ((INT64_C(1) << shifts[i]) - 1)) == 0) {
                snprintf(buf, len, "%" PRId64 "%c", v >> shifts[i], units[i]);
                return;
            }
        }
    } else if (type == CFG_DURATION) {
        if (v != 0 && v % (3600 * 1000) == 0)
            snprintf(buf, len, "%" PRId64 "h", v / (3600 * 1000));
        else if (v != 0 && v % (60 * 1000) == 0)
            snprintf(buf, len, "%" PRId64 "m", v / (60 * 1000));
        else if (v % 1000 == 0)
            snprintf(buf, len, "%" PRId64 "s", v / 1000);
        else
            snprintf(buf, len, "%" PRId64 "ms", v);
        return;
    }
    snprintf(buf, len, "%" PRId64, v);
}

/* Copies |text| for an error message: at most 64 chars, control characters as '?'. */
static const char *shown(const char *text, char *buf, size_t len)
{
    size_t i = 0;
    for (; text[i] != '\0' && i + 1 < len && i < 64; i++)
        buf[i] = isprint((unsigned char)text[i]) ? text[i] : '?';
    if (text[i] != '\0' && i >= 3)
        memcpy(buf + i - 3, "...", 3);
    buf[i] = '\0';
    return buf;
}

static int range_err(const cfg_option *opt, const char *text, char *err, size_t errlen)
{
    char lo[32], hi[32];
    fmt_bound(lo, sizeof(lo), opt->type, opt->min);
    fmt_bound(hi, sizeof(hi), opt->type, opt->max);
    return seterr(err, errlen, "%s: '%s' is out of range %s..%s", opt->env, text, lo, hi);
}

static int bounded(const cfg_option *opt)
{
    return !(opt->min == 0 && opt->max == 0);
}

/* Parses |text| for |opt| and stores it into |options|. |text| NULL = unset (zero / NULL). */
static int set_value(const cfg_option *opt, void *options, const char *text, char *err, size_t errlen)
{
    void *f = field(opt, options);
    char tb[72];
    switch (opt->type) {
    case CFG_STRING: {
        char **sp = f;
        char *copy = NULL;
        if (text != NULL && (copy = strdup(text)) == NULL)
            return seterr(err, errlen, "%s: out of memory", opt->env);
        free(*sp);
        *sp = copy;
        return 0;
    }
    case CFG_INT: {
        int64_t v = 0;
        if (text != NULL) {
            const char *p = parse_int_prefix(text, 1, &v);
            if (p == NULL || *p != '\0')
                return seterr(err, errlen, "%s: '%s' is not an integer", opt->env, shown(text, tb, sizeof(tb)));
            if (bounded(opt) && (v < opt->min || v > opt->max))
                return range_err(opt, shown(text, tb, sizeof(tb)), err, errlen);
        }
        *(int64_t *)f = v;
        return 0;
    }
    case CFG_SIZE: {
        uint64_t v = 0;
        if (text != NULL) {
            if (parse_size(text, &v) != 0)
                return seterr(err, errlen, "%s: '%s' is not a size", opt->env, shown(text, tb, sizeof(tb)));
            if (bounded(opt) && (v > (uint64_t)INT64_MAX || (int64_t)v < opt->min || (int64_t)v > opt->max))
                return range_err(opt, shown(text, tb, sizeof(tb)), err, errlen);
        }
        *(uint64_t *)f = v;
        return 0;
    }
    case CFG_DURATION: {
        int64_t v = 0;
        if (text != NULL) {
            if (parse_duration(text, bounded(opt) && opt->min < 0, &v) != 0)
                return seterr(err, errlen, "%s: '%s' is not a duration (e.g. 30, 1.5s, 500ms, 2m, 1m30s, 1h)", opt->env,
                              shown(text, tb, sizeof(tb)));
            if (bounded(opt) && (v < opt->min || v > opt->max))
                return range_err(opt, shown(text, tb, sizeof(tb)), err, errlen);
        }
        *(int64_t *)f = v;
        return 0;
    }
    case CFG_DOUBLE: {
        double v = 0;
        if (text != NULL) {
            if (parse_double(text, &v) != 0)
                return seterr(err, errlen, "%s: '%s' is not a number", opt->env, shown(text, tb, sizeof(tb)));
            if (bounded(opt) && (v < (double)opt->min || v > (double)opt->max))
                return range_err(opt, shown(text, tb, sizeof(tb)), err, errlen);
        }
        *(double *)f = v;
        return 0;
    }
    case CFG_BOOL:
    case CFG_FLAG: {
        int v = 0;
        if (text != NULL && parse_bool(text, &v) != 0)
            return seterr(err, errlen, "%s: '%s' is not a boolean (true/false, yes/no, on/off, 1/0)", opt->env,
                          shown(text, tb, sizeof(tb)));
        *(int *)f = v;
        return 0;
    }
    }
    return seterr(err, errlen, "%s: unknown option type", opt->env);
}

static const char *type_metavar(cfg_type t)
{
    switch (t) {
    case CFG_STRING:
        return "STR";
    case CFG_INT:
        return "INT";
    case CFG_SIZE:
        return "SIZE";
    case CFG_DURATION:
        return "DURATION";
    case CFG_BOOL:
        return "BOOL";
    case CFG_FLAG:
        return NULL;
    case CFG_DOUBLE:
        return "NUM";
    }
    return "VALUE";
}

/*
 * Prints the usage: one block per option with its flag, value kind, environment variable,
 * default and help line, then --help / --version. Does not take ownership of anything.
 */
void cfg_print_help(FILE *out, const char *prog, const char *summary, const cfg_option *table, size_t n)
{
    fprintf(out, "Usage: %s [OPTIONS]\n", prog);
    if (summary != NULL && *summary != '\0')
        fprintf(out, "%s\n", summary);
    fprintf(out, "\nEvery option is an environment variable and a flag; flags win over the environment.\n"
                 "Sizes take k/M/G suffixes (binary); durations are seconds or take ms/s/m/h suffixes (1.5s, 1m30s).\n\n"
                 "Options:\n");
    for (size_t i = 0; i < n; i++) {
        const cfg_option *o = &table[i];
        char left[96];
        const char *mv = type_metavar(o->type);
        if (mv != NULL)
            snprintf(left, sizeof(left), "--%s=%s", o->flag, mv);
        else
            snprintf(left, sizeof(left), "--%s", o->flag);
        fprintf(out, "  %-32s env %-18s default: %s\n", left, o->env,
                o->def != NULL ? (*o->def != '\0' ? o->def : "(empty)") : "(unset)");
        if (o->help != NULL)
            fprintf(out, "      %s\n", o->help);
    }
    fprintf(out, "  %-32s show this help and exit\n", "-h, --help");
    fprintf(out, "  %-32s print the version and exit\n", "-V, --version");
}

static const cfg_option *find_flag(const cfg_option *table, size_t n, const char *name, size_t len)
{
    for (size_t i = 0; i < n; i++) {
        if (strlen(table[i].flag) == len && strncmp(table[i].flag, name, len) == 0)
            return &table[i];
    }
    return NULL;
}

/*
 * Fills |options| (see config.h). String fields are overwritten without being freed first, so
 * |options| must not hold allocations; call cfg_free() afterwards in every case (success or error).
 */
int cfg_parse(const cfg_option *table, size_t n, void *options, int argc, char **argv, const char *prog, const char *summary,
              FILE *out, char *err, size_t errlen)
{
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    if (prog == NULL)
        prog = (argc > 0 && argv != NULL && argv[0] != NULL) ? argv[0] : "tunnelmux";

    /* 1. defaults (string fields start NULL so set_value can free the previous value) */
    for (size_t i = 0; i < n; i++) {
        if (table[i].type == CFG_STRING)
            *(char **)field(&table[i], options) = NULL;
    }
    for (size_t i = 0; i < n; i++) {
        if (set_value(&table[i], options, table[i].def, err, errlen) != 0)
            return -1;
    }

    /* 2. help / version win over everything (even bad values elsewhere) */
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0)
            break;
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            if (out != NULL)
                cfg_print_help(out, prog, summary, table, n);
            return 1;
        }
        if (strcmp(argv[i], "--version") == 0 || strcmp(argv[i], "-V") == 0) {
            if (out != NULL)
                fprintf(out, "%s %s\n", prog, TUNNELMUX_VERSION);
            return 1;
        }
    }

    /* 3. environment; an empty value counts as unset except for strings */
    for (size_t i = 0; i < n; i++) {
        const char *v = getenv(table[i].env);
        if (v == NULL || (*v == '\0' && table[i].type != CFG_STRING))
            continue;
        if (set_value(&table[i], options, v, err, errlen) != 0)
            return -1;
    }

    /* 4. flags */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0) {
            if (i + 1 < argc)
                return seterr(err, errlen, "unexpected argument '%s'", argv[i + 1]);
            break;
        }
        if (strncmp(a, "--", 2) != 0)
            return seterr(err, errlen, "unexpected argument '%s'", a);
        const char *name = a + 2;
        const char *eq = strchr(name, '=');
        size_t len = eq != NULL ? (size_t)(eq - name) : strlen(name);
        const cfg_option *o = find_flag(table, n, name, len);
        const char *value = eq != NULL ? eq + 1 : NULL;
        if (o == NULL && eq == NULL && len > 3 && strncmp(name, "no-", 3) == 0) {
            /* --no-FLAG for booleans and flags */
            o = find_flag(table, n, name + 3, len - 3);
            if (o == NULL || (o->type != CFG_BOOL && o->type != CFG_FLAG))
                return seterr(err, errlen, "unknown option --%.*s", (int)len, name);
            if (set_value(o, options, "0", err, errlen) != 0)
                return -1;
            continue;
        }
        if (o == NULL)
            return seterr(err, errlen, "unknown option --%.*s", (int)len, name);
        if (o->type == CFG_FLAG || o->type == CFG_BOOL) {
            int dummy;
            if (value == NULL && o->type == CFG_BOOL && i + 1 < argc && parse_bool(argv[i + 1], &dummy) == 0)
                value = argv[++i];
            if (value == NULL)
                value = "1";
        } else if (value == NULL) {
            if (i + 1 >= argc)
                return seterr(err, errlen, "%s: option --%s needs a value", o->env, o->flag);
            value = argv[++i];
        }
        if (set_value(o, options, value, err, errlen) != 0)
            return -1;
    }

    /* 5. validators */
    for (size_t i = 0; i < n; i++) {
        if (table[i].validate == NULL)
            continue;
        char reason[256] = "";
        if (table[i].validate(&table[i], options, reason, sizeof(reason)) != 0)
            return seterr(err, errlen, "%s: %s", table[i].env, reason[0] != '\0' ? reason : "invalid value");
    }
    return 0;
}

/* Frees every CFG_STRING field of |options| and sets it to NULL; safe to call twice. */
void cfg_free(const cfg_option *table, size_t n, void *options)
{
    for (size_t i = 0; i < n; i++) {
        if (table[i].type == CFG_STRING) {
            char **sp = field(&table[i], options);
            free(*sp);
            *sp = NULL;
        }
    }
}

/* Returns 1 when s[0..len) is an RFC 1123 label (1..63 of [A-Za-z0-9-], no '-' at either end). */
int cfg_is_dns_label(const char *s, size_t len)
{
    if (s == NULL || len == 0 || len > 63 || s[0] == '-' || s[len - 1] == '-')
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!(isascii(c) && (isalnum(c) || c == '-')))
            return 0;
    }
    return 1;
}

/*
 * Validator for a CFG_STRING option that must be a single DNS label (CLIENT_ID). An unset (NULL)
 * value passes; whether the option is required is the caller's business. Writes the reason
 * (without the variable name, cfg_parse prefixes it) and returns -1 when invalid, else 0.
 */
int cfg_validate_dns_label(const cfg_option *opt, void *options, char *err, size_t errlen)
{
    const char *v = *(char **)field(opt, options);
    if (v == NULL)
        return 0;
    if (cfg_is_dns_label(v, strlen(v)))
        return 0;
    /* never echo control characters back */
    int printable = strlen(v) <= 80;
    for (const char *p = v; printable && *p != '\0'; p++)
        printable = isprint((unsigned char)*p);
    if (printable)
        snprintf(err, errlen, "'%s' is not a DNS label (1-63 of a-z, 0-9, '-', not starting or ending with '-')", v);
    else
        snprintf(err, errlen, "value is not a DNS label (1-63 of a-z, 0-9, '-', not starting or ending with '-')");
    return -1;
}

/* Validator for LOG_LEVEL (a CFG_STRING): error, warn, info or debug. */
int cfg_validate_log_level(const cfg_option *opt, void *options, char *err, size_t errlen)
{
    log_level l;
    const char *v = *(char **)field(opt, options);
    if (v != NULL && log_parse_level(v, &l) == 0)
        return 0;
    snprintf(err, errlen, "must be error, warn, info or debug");
    return -1;
}

/* Validator for LOG_FORMAT (a CFG_STRING): text or json. */
int cfg_validate_log_format(const cfg_option *opt, void *options, char *err, size_t errlen)
{
    log_format f;
    const char *v = *(char **)field(opt, options);
    if (v != NULL && log_parse_format(v, &f) == 0)
        return 0;
    snprintf(err, errlen, "must be text or json");
    return -1;
}
