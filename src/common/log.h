/*
 * tunnelmux — logging for the glue code (server, client). src/mux never logs.
 * Lines go to stderr (or a file reopened on SIGHUP): text "2026-11-25T09:00:00.123Z INFO  server: msg"
 * or one JSON object per line (LOG_FORMAT=json). Never pass secrets (tokens, Authorization).
 * State: one logger configured once by main() before any other thread or loop starts.
 */
#ifndef TM_LOG_H
#define TM_LOG_H

#include <stdarg.h>

typedef enum { LOG_LVL_ERROR = 0, LOG_LVL_WARN = 1, LOG_LVL_INFO = 2, LOG_LVL_DEBUG = 3 } log_level;
typedef enum { LOG_FMT_TEXT = 0, LOG_FMT_JSON = 1 } log_format;

/* Event masks (haproxy style) to filter debug output by component. */
enum {
    LOG_EV_CONF = 0x01,
    LOG_EV_TUNNEL = 0x02, /* tunnel connections: register, refuse, lost */
    LOG_EV_STREAM = 0x04, /* per-stream events */
    LOG_EV_ACCESS = 0x08, /* access log lines */
    LOG_EV_HTTP = 0x10,   /* public / local HTTP */
    LOG_EV_ALL = 0xff,
};

/* Parse "error|warn|info|debug" / "text|json". 0 or -1 when unknown. */
int log_parse_level(const char *s, log_level *out);
int log_parse_format(const char *s, log_format *out);

/* Configure (call from main). |path| NULL = stderr. Returns 0 or -1 (file cannot be opened). */
int log_init(log_level level, log_format format, const char *component, const char *path);
/* Reopen the log file (SIGHUP). No-op for stderr. */
int log_reopen(void);
int log_enabled(log_level level);

/*
 * One log line. In JSON mode the message is the "msg" field; use mux_log_kv for structured
 * access-log fields. Format string is printf-style.
 */
void mux_log(log_level level, unsigned ev_mask, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/*
 * Structured line: |msg| plus key/value pairs given as a NULL-terminated list of
 * (const char *key, const char *value) string pairs. Text mode prints key=value (values with
 * spaces or quotes are quoted and escaped); JSON mode adds them as string fields (escaped).
 */
void mux_log_kv(log_level level, unsigned ev_mask, const char *msg, ...) __attribute__((sentinel));

#define LOG_ERROR(ev, ...) mux_log(LOG_LVL_ERROR, (ev), __VA_ARGS__)
#define LOG_WARN(ev, ...) mux_log(LOG_LVL_WARN, (ev), __VA_ARGS__)
#define LOG_INFO(ev, ...) mux_log(LOG_LVL_INFO, (ev), __VA_ARGS__)
#define LOG_DEBUG(ev, ...)                                                                                                         \
    do {                                                                                                                           \
        if (log_enabled(LOG_LVL_DEBUG))                                                                                            \
            mux_log(LOG_LVL_DEBUG, (ev), __VA_ARGS__);                                                                             \
    } while (0)

#endif
