/*
 * tunnelmux — logging for the glue code (see log.h).
 *
 * Global state: this file keeps ONE static logger (`g_log` below: level, format, component name,
 * output stream and path). It is the only global mutable state allowed in the project: main()
 * configures it once with log_init() before any loop or thread starts; afterwards it is read-only
 * except for log_reopen(), which the owner of the event loop calls (never from a signal handler
 * directly: the SIGHUP handler sets a flag, the loop calls log_reopen()).
 *
 * Every line is built in a local buffer and written with one fwrite() + fflush(), so lines from
 * different threads never interleave. Values coming from peers (host names, paths, reasons) are
 * escaped in both formats: JSON strings per RFC 8259 (quotes, backslash, control characters,
 * invalid UTF-8 bytes as \u00XX), text lines with control characters as \n, \r, \t, \xNN, so
 * a hostile value can never forge a second log line.
 */
#include "common/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define LINE_MAX_BYTES 8192 /* longer lines are truncated, ending with "..." */

static struct {
    log_level level;
    log_format format;
    char component[32];
    char *path; /* NULL = stderr */
    FILE *fp;   /* NULL = stderr */
} g_log = {LOG_LVL_INFO, LOG_FMT_TEXT, "tunnelmux", NULL, NULL};

/* ------------------------------------------------------------------ line buffer */

#define LINE_RESERVE 32 /* room kept for closing a truncated line: '"' ,"truncated":true} '\n' */

typedef struct {
    char buf[LINE_MAX_BYTES];
    size_t len;
    int truncated; /* something did not fit: nothing more is appended */
    int open_str;  /* JSON: truncated inside a string value that finish() must close */
} line;

/* Appends n bytes atomically: all of them or (once the line is full) nothing, ever again. */
static void put(line *l, const char *s, size_t n)
{
    if (l->truncated || n > sizeof(l->buf) - LINE_RESERVE - l->len) {
        l->truncated = 1;
        return;
    }
    memcpy(l->buf + l->len, s, n);
    l->len += n;
}

static void puts_(line *l, const char *s)
{
    put(l, s, strlen(s));
}

static void putc_(line *l, char c)
{
    put(l, &c, 1);
}

/* Length of the valid UTF-8 sequence at s (at most n bytes), 0 if invalid. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t len;
    unsigned cp;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
        cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
        return 0;
    return len;
}

/* Appends |s| as the inside of a JSON string. */
static void put_json(line *l, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s);
    for (size_t i = 0; i < n;) {
        unsigned char c = p[i];
        char esc[8];
        switch (c) {
        case '"':
            puts_(l, "\\\"");
            break;
        case '\\':
            puts_(l, "\\\\");
            break;
        case '\n':
            puts_(l, "\\n");
            break;
        case '\r':
            puts_(l, "\\r");
            break;
        case '\t':
            puts_(l, "\\t");
            break;
        case '\b':
            puts_(l, "\\b");
            break;
        case '\f':
            puts_(l, "\\f");
            break;
        default:
            if (c < 0x20 || c == 0x7f) {
                snprintf(esc, sizeof(esc), "\\u%04x", c);
                puts_(l, esc);
            } else if (c >= 0x80) {
                size_t u = utf8_len(p + i, n - i);
                if (u == 0) {
                    snprintf(esc, sizeof(esc), "\\u%04x", c); /* invalid byte: its Latin-1 code point */
                    puts_(l, esc);
                } else {
                    put(l, (const char *)p + i, u);
                    i += u;
                    continue;
                }
            } else {
                putc_(l, (char)c);
            }
        }
        i++;
    }
}

/* Appends |s| for a text line: printable bytes as they are, control characters escaped. */
static void put_text(line *l, const char *s, int quoting)
{
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        unsigned char c = *p;
        char esc[8];
        if (c == '\n')
            puts_(l, "\\n");
        else if (c == '\r')
            puts_(l, "\\r");
        else if (c == '\t')
            puts_(l, "\\t");
        else if (c < 0x20 || c == 0x7f) {
            snprintf(esc, sizeof(esc), "\\x%02x", c);
            puts_(l, esc);
        } else if (quoting && (c == '"' || c == '\\')) {
            putc_(l, '\\');
            putc_(l, (char)c);
        } else
            putc_(l, (char)c);
    }
}

/* A text-mode value needs quotes when empty or holding spaces, quotes, '=' or control bytes. */
static int needs_quotes(const char *s)
{
    if (*s == '\0')
        return 1;
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        if (*p <= 0x20 || *p == 0x7f || *p == '"' || *p == '=' || *p == '\\')
            return 1;
    }
    return 0;
}

static const char *level_name(log_level level)
{
    switch (level) {
    case LOG_LVL_ERROR:
        return "error";
    case LOG_LVL_WARN:
        return "warn";
    case LOG_LVL_INFO:
        return "info";
    case LOG_LVL_DEBUG:
        return "debug";
    }
    return "info";
}

static const char *level_upper(log_level level)
{
    switch (level) {
    case LOG_LVL_ERROR:
        return "ERROR";
    case LOG_LVL_WARN:
        return "WARN ";
    case LOG_LVL_INFO:
        return "INFO ";
    case LOG_LVL_DEBUG:
        return "DEBUG";
    }
    return "INFO ";
}

/* Name of a single-bit event mask, NULL for several bits or none. */
static const char *event_name(unsigned ev)
{
    switch (ev) {
    case LOG_EV_CONF:
        return "conf";
    case LOG_EV_TUNNEL:
        return "tunnel";
    case LOG_EV_STREAM:
        return "stream";
    case LOG_EV_ACCESS:
        return "access";
    case LOG_EV_HTTP:
        return "http";
    }
    return NULL;
}

/* "2026-11-25T09:00:00.123Z" (UTC, milliseconds). */
static void put_timestamp(line *l)
{
    struct timespec ts;
    struct tm tm;
    char buf[40];
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, sizeof(buf) - n, ".%03ldZ", (long)(ts.tv_nsec / 1000000));
    puts_(l, buf);
}

static void begin(line *l, log_level level, unsigned ev_mask)
{
    l->len = 0;
    l->truncated = 0;
    l->open_str = 0;
    const char *ev = event_name(ev_mask);
    if (g_log.format == LOG_FMT_JSON) {
        puts_(l, "{\"ts\":\"");
        put_timestamp(l);
        puts_(l, "\",\"level\":\"");
        puts_(l, level_name(level));
        puts_(l, "\",\"component\":\"");
        put_json(l, g_log.component);
        if (ev != NULL) {
            puts_(l, "\",\"ev\":\"");
            puts_(l, ev);
        }
        puts_(l, "\"");
    } else {
        put_timestamp(l);
        putc_(l, ' ');
        puts_(l, level_upper(level));
        putc_(l, ' ');
        put_text(l, g_log.component, 0);
        puts_(l, ": ");
    }
}

/* JSON: appends ,"key":"value"; a value cut by truncation is left open for finish() to close. */
static void json_field(line *l, const char *key, const char *value)
{
    if (l->truncated)
        return;
    size_t before = l->len;
    puts_(l, ",\"");
    put_json(l, key);
    puts_(l, "\":\"");
    if (l->truncated) {
        l->len = before;
        return;
    }
    l->open_str = 1;
    put_json(l, value);
    if (l->truncated)
        return;
    putc_(l, '"');
    if (!l->truncated)
        l->open_str = 0;
}

static void put_msg(line *l, const char *msg)
{
    if (g_log.format == LOG_FMT_JSON) {
        json_field(l, "msg", msg);
    } else {
        put_text(l, msg, 0);
    }
}

static void put_kv(line *l, const char *key, const char *value)
{
    if (value == NULL)
        value = "";
    if (g_log.format == LOG_FMT_JSON) {
        json_field(l, key, value);
    } else {
        putc_(l, ' ');
        put_text(l, key, 0);
        putc_(l, '=');
        if (needs_quotes(value)) {
            putc_(l, '"');
            put_text(l, value, 1);
            putc_(l, '"');
        } else {
            put_text(l, value, 0);
        }
    }
}

static void finish(line *l)
{
    /* the reserve guarantees room for the closing bytes below */
    const char *tail = "";
    if (g_log.format == LOG_FMT_JSON)
        tail = !l->truncated ? "}" : l->open_str ? "\",\"truncated\":true}" : ",\"truncated\":true}";
    else if (l->truncated)
        tail = "...";
    size_t tl = strlen(tail);
    memcpy(l->buf + l->len, tail, tl);
    l->len += tl;
    l->buf[l->len++] = '\n';
    FILE *fp = g_log.fp != NULL ? g_log.fp : stderr;
    fwrite(l->buf, 1, l->len, fp);
    fflush(fp);
}

/* ------------------------------------------------------------------ public API */

/* Parses "error|warn|warning|info|debug" (case-insensitive) into *out; returns 0, or -1 when unknown. */
int log_parse_level(const char *s, log_level *out)
{
    if (s == NULL)
        return -1;
    if (strcasecmp(s, "error") == 0)
        *out = LOG_LVL_ERROR;
    else if (strcasecmp(s, "warn") == 0 || strcasecmp(s, "warning") == 0)
        *out = LOG_LVL_WARN;
    else if (strcasecmp(s, "info") == 0)
        *out = LOG_LVL_INFO;
    else if (strcasecmp(s, "debug") == 0)
        *out = LOG_LVL_DEBUG;
    else
        return -1;
    return 0;
}

/* Parses "text|json" (case-insensitive) into *out; returns 0, or -1 when unknown. */
int log_parse_format(const char *s, log_format *out)
{
    if (s == NULL)
        return -1;
    if (strcasecmp(s, "text") == 0)
        *out = LOG_FMT_TEXT;
    else if (strcasecmp(s, "json") == 0)
        *out = LOG_FMT_JSON;
    else
        return -1;
    return 0;
}

/*
 * Configures the process logger: lines at |level| or more severe, in |format|, tagged with
 * |component| (copied, truncated to 31 bytes; NULL keeps the current one), appended to the file at
 * |path| (copied; NULL = stderr). May be called again (tests do); the previous file is closed.
 * Returns 0, or -1 when the file cannot be opened (the logger then keeps its previous output).
 */
int log_init(log_level level, log_format format, const char *component, const char *path)
{
    FILE *fp = NULL;
    char *pathcopy = NULL;
    if (path != NULL) {
        if ((pathcopy = strdup(path)) == NULL)
            return -1;
        if ((fp = fopen(path, "a")) == NULL) {
            free(pathcopy);
            return -1;
        }
    }
    if (g_log.fp != NULL)
        fclose(g_log.fp);
    free(g_log.path);
    g_log.fp = fp;
    g_log.path = pathcopy;
    g_log.level = level;
    g_log.format = format;
    if (component != NULL)
        snprintf(g_log.component, sizeof(g_log.component), "%s", component);
    return 0;
}

/*
 * Reopens the log file by path (after rotation; call it from the loop when SIGHUP was seen).
 * No-op returning 0 for stderr. Returns -1 when the file cannot be reopened (the old stream stays).
 */
int log_reopen(void)
{
    if (g_log.path == NULL)
        return 0;
    FILE *fp = fopen(g_log.path, "a");
    if (fp == NULL)
        return -1;
    if (g_log.fp != NULL)
        fclose(g_log.fp);
    g_log.fp = fp;
    return 0;
}

/* Returns 1 when lines at |level| are written (level filter), else 0. */
int log_enabled(log_level level)
{
    return level <= g_log.level;
}

/* Writes one line (printf-style |fmt|) when |level| passes the filter; see log.h. */
void mux_log(log_level level, unsigned ev_mask, const char *fmt, ...)
{
    if (!log_enabled(level))
        return;
    char msg[LINE_MAX_BYTES];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    line l;
    begin(&l, level, ev_mask);
    put_msg(&l, msg);
    finish(&l);
}

/* Writes one structured line: |msg| then (key, value) string pairs until a NULL key; see log.h. */
void mux_log_kv(log_level level, unsigned ev_mask, const char *msg, ...)
{
    if (!log_enabled(level))
        return;
    line l;
    begin(&l, level, ev_mask);
    put_msg(&l, msg != NULL ? msg : "");
    va_list ap;
    va_start(ap, msg);
    for (int i = 0; i < 256; i++) {
        const char *key = va_arg(ap, const char *);
        if (key == NULL)
            break;
        const char *value = va_arg(ap, const char *);
        put_kv(&l, key, value);
    }
    va_end(ap);
    finish(&l);
}
