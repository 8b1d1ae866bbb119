/*
 * tunnelmux-server — the public side: h2o 2.2.5 (evloop) serving public HTTP/1.1, h2 (TLS ALPN)
 * and h2c, routing NAME.DOMAIN to the client daemon connected as NAME over /_tunnel on the same
 * port (docs/PROTOCOL.md §6, docs/ARCHITECTURE.md).
 *
 * Global state: only the signal flags below (written by the signal handler).
 */
#include <sys/stat.h>
#include <unistd.h>
#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/config.h"
#include "common/heap.h"
#include "common/log.h"
#include "server/access_log.h"
#include "server/admin.h"
#include "server/listener.h"
#include "server/metrics.h"
#include "server/proxy.h"
#include "server/route.h"
#include "server/server.h"
#include "server/tunnel.h"

static volatile sig_atomic_t stop_signals; /* count of SIGTERM/SIGINT received */
static volatile sig_atomic_t hup_signals;  /* count of SIGHUP received (log reopen) */

static void on_signal(int sig)
{
    if (sig == SIGHUP)
        hup_signals++;
    else
        stop_signals++;
}

/* SIGHUP seen since the last call: reopen LOG_FILE (the loop calls this, never the handler). */
static void maybe_reopen_log(sig_atomic_t *seen)
{
    if (hup_signals == *seen)
        return;
    *seen = hup_signals;
    if (log_reopen() != 0)
        LOG_ERROR(LOG_EV_CONF, "SIGHUP: cannot reopen the log file (still writing to the old one)");
    else
        LOG_INFO(LOG_EV_CONF, "SIGHUP: log file reopened");
}

static int validate_ping(const cfg_option *opt, void *options, char *err, size_t errlen)
{
    const server_options *o = options;
    if (o->ping_timeout_ms != 0 && o->ping_interval_ms != 0 && o->ping_timeout_ms <= o->ping_interval_ms) {
        snprintf(err, errlen, "must be larger than PING_INTERVAL (or 0 = off)");
        return -1;
    }
    return 0;
}

static int validate_domain(const cfg_option *opt, void *options, char *err, size_t errlen)
{
    char buf[ROUTE_MAX_HOST + 1];
    const char *d = ((server_options *)options)->domain;
    if (d == NULL || route_canonical_domain(d, buf, sizeof(buf)) < 0 || route_canonical_host(d, strlen(d), buf, sizeof(buf)) < 0 ||
        strchr(d, ':') != NULL) {
        snprintf(err, errlen, "must be a DNS name such as example.com");
        return -1;
    }
    return 0;
}

#define OFF(f) offsetof(server_options, f)
static const cfg_option options_table[] = {
    {"PORT", "port", CFG_INT, "8080", OFF(port), 1, 65535, "port for public HTTP and the /_tunnel endpoint", NULL},
    {"DOMAIN", "domain", CFG_STRING, "example.com", OFF(domain), 0, 0, "public requests for NAME.DOMAIN go to client NAME",
     validate_domain},
    {"MAX_CLIENTS", "max-clients", CFG_INT, "100", OFF(max_clients), 1, 1000000,
     "most client tunnels registered at once (each replica of a name counts)", NULL},
    {"MAX_REPLICAS", "max-replicas", CFG_INT, "8", OFF(max_replicas), 1, REGISTRY_MAX_REPLICAS,
     "most tunnels one name may have at once (replicas: daemons presenting the same token; 1 = one daemon per name)", NULL},
    {"CHUNK_SIZE", "chunk-size", CFG_SIZE, "8192", OFF(chunk_size), 512, 16 << 20, "largest DATA payload sent through a tunnel",
     NULL},
    {"MAX_MESSAGE_SIZE", "max-message-size", CFG_SIZE, "10485760", OFF(max_message_size), 65536, 1 << 30,
     "largest tunnel WebSocket message accepted", NULL},
    {"READ_TIMEOUT", "read-timeout", CFG_DURATION, "120s", OFF(read_timeout_ms), 1, 86400000,
     "a response head must arrive within this (else 504); also the public connections' read/idle timeout", NULL},
    {"WRITE_TIMEOUT", "write-timeout", CFG_DURATION, "30s", OFF(write_timeout_ms), 1, 86400000,
     "a write to a tunnel must complete within this (else the tunnel is dropped); a public reader that takes no byte of a "
     "response this long is cut (its connection reset)",
     NULL},
    {"LISTEN_ADDR", "listen-addr", CFG_STRING, "", OFF(listen_addr), 0, 0,
     "IP address to bind (empty = all: IPv6 dual-stack, IPv4 fallback)", NULL},
    {"TLS_CERT", "tls-cert", CFG_STRING, NULL, OFF(tls_cert), 0, 0,
     "PEM certificate chain; with TLS_KEY, PORT speaks TLS (h2, http/1.1)", NULL},
    {"TLS_KEY", "tls-key", CFG_STRING, NULL, OFF(tls_key), 0, 0, "PEM private key for TLS_CERT", NULL},
    {"MAX_REQUEST_BODY", "max-request-body", CFG_SIZE, "0", OFF(max_request_body), 0, 0,
     "largest public request body, 0 = no cap on streamed bodies (HTTP/2, HTTP/1.1 chunked or of 256 KiB and more); a body h2o "
     "buffers whole (small, or TLS with Expect: 100-continue) is capped at this or, when 0, at 1 GiB",
     NULL},
    {"BODY_SPOOL_DIR", "body-spool-dir", CFG_STRING, "", OFF(body_spool_dir), 0, 0,
     "directory for request bodies larger than BODY_SPOOL_THRESHOLD (unlinked files; empty = $TMPDIR or /tmp); a tmpfs "
     "here trades RAM for upload speed",
     NULL},
    {"BODY_SPOOL_THRESHOLD", "body-spool-threshold", CFG_SIZE, "32M", OFF(body_spool_threshold), 1 << 20, 1ULL << 40,
     "a request body whose buffer grows beyond this is moved from memory to a file in BODY_SPOOL_DIR", NULL},
    {"UPGRADE_IDLE_TIMEOUT", "upgrade-idle-timeout", CFG_DURATION, "0", OFF(upgrade_idle_ms), 0, 7 * 86400000LL,
     "close an upgraded (WebSocket) connection after this long without bytes either way (0 = never)", NULL},
    {"LOG_LEVEL", "log-level", CFG_STRING, "info", OFF(log_level), 0, 0, "error, warn, info or debug", cfg_validate_log_level},
    {"LOG_FORMAT", "log-format", CFG_STRING, "text", OFF(log_format), 0, 0, "text or json", cfg_validate_log_format},
    {"ADMIN_ADDR", "admin-addr", CFG_STRING, "127.0.0.1:9090", OFF(admin_addr), 0, 0,
     "admin listener IP:PORT (/metrics, /api/clients, dashboard at /); \"off\" disables it", NULL},
    {"ADMIN_USER", "admin-user", CFG_STRING, "", OFF(admin_user), 0, 0,
     "admin basic-auth user (with ADMIN_PASSWORD; required unless ADMIN_ADDR is loopback)", NULL},
    {"ADMIN_PASSWORD", "admin-password", CFG_STRING, "", OFF(admin_password), 0, 0, "admin basic-auth password", NULL},
    {"ADMIN_TLS", "admin-tls", CFG_FLAG, "false", OFF(admin_tls), 0, 0,
     "serve the admin listener over TLS with TLS_CERT/TLS_KEY (off loopback, basic auth over cleartext exposes the password)",
     NULL},
    {"LOG_FILE", "log-file", CFG_STRING, "", OFF(log_file), 0, 0, "append logs to this file instead of stderr; SIGHUP reopens it",
     NULL},
    {"PING_INTERVAL", "ping-interval", CFG_DURATION, "15s", OFF(ping_interval_ms), 0, 3600000,
     "send a PING on a tunnel silent for this long (0 = off)", NULL},
    {"PING_TIMEOUT", "ping-timeout", CFG_DURATION, "45s", OFF(ping_timeout_ms), 0, 3600000,
     "drop a tunnel whose client sent nothing for this long (0 = never)", validate_ping},
    {"NAME_TAKEOVER_CHECK", "name-takeover-check", CFG_DURATION, "3s", OFF(takeover_check_ms), 0, 600000,
     "a HELLO for a connected name PINGs its holder; a holder silent this long loses the name to the newcomer (0 = never)", NULL},
    {"HEALTH_GRACE", "health-grace", CFG_DURATION, "0s", OFF(health_grace_ms), 0, 3600000,
     "GET /healthz answers 503 'starting' this long after start, while the daemons reconnect (behind a balancer: "
     "docs/SCALING.md)",
     NULL},
    {"DRAIN_TIMEOUT", "drain-timeout", CFG_DURATION, "30s", OFF(drain_timeout_ms), 0, 3600000,
     "on SIGTERM: GOAWAY, stop listening, wait this long for in-flight requests, then exit 0", NULL},
    /* security: docs/SECURITY.md */
    {"AUTH_TOKEN", "auth-token", CFG_STRING, NULL, OFF(auth_token), 0, 0,
     "shared client token allowed to register any name (prefer AUTH_TOKENS_FILE; never logged)", NULL},
    {"AUTH_TOKENS_FILE", "auth-tokens-file", CFG_STRING, NULL, OFF(auth_tokens_file), 0, 0,
     "file of `token name-pattern` lines ('*' and '?' globs, comma lists); a token may only claim matching names", NULL},
    {"INSECURE_NO_AUTH", "insecure-no-auth", CFG_FLAG, "false", OFF(insecure_no_auth), 0, 0,
     "accept clients without a token (testing only; required when no token is configured)", NULL},
    {"AUTH_FAIL_DELAY", "auth-fail-delay", CFG_DURATION, "1s", OFF(auth_fail_delay_ms), 0, 60000,
     "after 5 failed tunnel logins, or 5 wrong basic-auth credentials (public or admin), from one address within a "
     "minute, it waits this long (doubling per further failure, max 60 s; 429 meanwhile); 0 = off",
     NULL},
    {"BASIC_AUTH", "basic-auth", CFG_STRING, NULL, OFF(basic_auth), 0, 0,
     "user:password required from public users of every name (HTTP basic auth; never logged)", NULL},
    {"BASIC_AUTH_FILE", "basic-auth-file", CFG_STRING, NULL, OFF(basic_auth_file), 0, 0,
     "file of `name-pattern user:password` lines: basic auth per client name", NULL},
    {"RATE_LIMIT_RPS", "rate-limit-rps", CFG_INT, "10000", OFF(rate_limit_rps), 0, 100000000,
     "public requests per second per client name (0 = unlimited); over it 429 + Retry-After", NULL},
    {"RATE_LIMIT_BURST", "rate-limit-burst", CFG_INT, "0", OFF(rate_limit_burst), 0, 1000000000,
     "request bucket size per client name (0 = 2 x RATE_LIMIT_RPS)", NULL},
    {"RATE_LIMIT_BPS", "rate-limit-bps", CFG_SIZE, "0", OFF(rate_limit_bps), 0, 0,
     "request+response payload bytes per second per client name (0 = unlimited)", NULL},
    {"RATE_LIMIT_BPS_BURST", "rate-limit-bps-burst", CFG_SIZE, "0", OFF(rate_limit_bps_burst), 0, 0,
     "byte bucket size per client name (0 = 2 x RATE_LIMIT_BPS)", NULL},
    {"MAX_HEADER_COUNT", "max-header-count", CFG_INT, "100", OFF(max_header_count), 1, 10000,
     "most header fields in a public request (else 431) and in a tunnel head", NULL},
    {"MAX_HEADER_BYTES", "max-header-bytes", CFG_SIZE, "65536", OFF(max_header_bytes), 1024, 16 << 20,
     "most bytes of header names+values in a public request (else 431) and in a tunnel head", NULL},
    {"MAX_STREAMS_PER_CLIENT", "max-streams-per-client", CFG_INT, "100", OFF(max_streams_per_client), 1, 100000,
     "concurrent requests in flight per client name (else 503)", NULL},
    {"MAX_STREAMS_PER_CONNECTION", "max-streams-per-connection", CFG_INT, "100", OFF(max_streams_per_connection), 1, 10000,
     "concurrent streams per public HTTP/2 connection (SETTINGS_MAX_CONCURRENT_STREAMS)", NULL},
    {"STREAM_WINDOW", "stream-window", CFG_SIZE, "1M", OFF(stream_window), 65536, 16 << 20,
     "credit granted per stream: response bytes a client may send ahead of the public reader; times "
     "MAX_STREAMS_PER_CLIENT, what one client's slow readers may make the server hold",
     NULL},
    {"MAX_BUFFER_PER_CLIENT", "max-buffer-per-client", CFG_SIZE, "64M", OFF(max_buffer_per_client), 65536, 1 << 30,
     "the tunnel's connection window, and how much auto-tuning may grow its streams' windows in all", NULL},
    {"TUNNEL_NOTSENT_LOWAT", "tunnel-notsent-lowat", CFG_SIZE, "128k", OFF(tunnel_notsent_lowat), 0, 1 << 30,
     "unsent bytes the kernel may hold on a tunnel socket (TCP_NOTSENT_LOWAT; 0 = the kernel's default): "
     "less lets small responses overtake bulk data sooner",
     NULL},
    {"MAX_STREAM_WINDOW", "max-stream-window", CFG_SIZE, "32M", OFF(max_stream_window), 65536, 1 << 30,
     "largest window auto-tuning gives one stream (towards bandwidth x RTT; at most MAX_BUFFER_PER_CLIENT)", NULL},
    {"COMPRESSION", "compression", CFG_BOOL, "on", OFF(compression), 0, 0,
     "offer zstd compression of tunnel messages (used when the client offers it too; streams that do not compress "
     "are sent plain)",
     NULL},
    {"ZSTD_LEVEL", "zstd-level", CFG_INT, "3", OFF(zstd_level), 1, 19, "zstd level for what the server compresses", NULL},
    {"ZSTD_WINDOW_LOG", "zstd-window-log", CFG_INT, "17", OFF(zstd_window_log), 10, 20,
     "zstd window of what the server compresses (log2 bytes); received messages may use up to 20 whatever this is "
     "(PROTOCOL.md §3.2)",
     NULL},
    {"H2_RESET_BUDGET", "h2-reset-budget", CFG_INT, "100", OFF(h2_reset_budget), 0, 1000000,
     "requests a public connection may cancel per H2_RESET_WINDOW before it is closed (Rapid Reset; 0 = off)", NULL},
    {"H2_RESET_WINDOW", "h2-reset-window", CFG_DURATION, "10s", OFF(h2_reset_window_ms), 1, 3600000,
     "refill period of H2_RESET_BUDGET", NULL},
    {"REQUEST_TIMEOUT", "request-timeout", CFG_DURATION, "10s", OFF(request_timeout_ms), 100, 3600000,
     "a public HTTP/1.1 request must arrive within this; idle HTTP/2 connections close after it (slow senders)", NULL},
};
#define NOPTIONS (sizeof(options_table) / sizeof(options_table[0]))

/* Where h2o keeps request bodies while they arrive (it hands a request over only once its whole
 * body is in; docs/OPERATIONS.md "Uploads"): in memory up to BODY_SPOOL_THRESHOLD, then in an
 * unlinked, mmapped file under BODY_SPOOL_DIR. Sets h2o's process-wide settings (the one place
 * that writes them). Returns 0 or -1 with a one-line message. */
static int body_spool_setup(const server_options *o, char *err, size_t errlen)
{
    const char *dir = o->body_spool_dir != NULL && o->body_spool_dir[0] != '\0' ? o->body_spool_dir : getenv("TMPDIR");
    if (dir == NULL || dir[0] == '\0')
        dir = "/tmp";
    struct stat st;
    errno = 0;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode) || access(dir, W_OK | X_OK) != 0) {
        snprintf(err, errlen, "BODY_SPOOL_DIR: '%s' is not a writable directory (%s)", dir,
                 errno != 0 ? strerror(errno) : "not a directory");
        return -1;
    }
    char tmpl[sizeof(h2o_socket_buffer_mmap_settings.fn_template)];
    int n = snprintf(tmpl, sizeof(tmpl), "%s/tunnelmux-body.XXXXXX", dir);
    if (n < 0 || (size_t)n >= sizeof(tmpl)) {
        snprintf(err, errlen, "BODY_SPOOL_DIR: path too long");
        return -1;
    }
    memcpy(h2o_socket_buffer_mmap_settings.fn_template, tmpl, (size_t)n + 1);
    h2o_socket_buffer_mmap_settings.threshold = (size_t)o->body_spool_threshold;
    return 0;
}

/* Loads tokens and credentials, allocates the throttle and Rapid Reset tables. Secrets never reach
 * the log or |err|. Returns 0 or -1 with a one-line message. */
static int security_setup(server *srv, char *err, size_t errlen)
{
    const server_options *o = srv->opt;
    auth_list_init(&srv->tokens);
    auth_list_init(&srv->basic);
    if (o->auth_token != NULL && o->auth_token[0] != '\0' &&
        auth_list_add(&srv->tokens, o->auth_token, strlen(o->auth_token), "*") != AUTH_OK) {
        snprintf(err, errlen, "AUTH_TOKEN: cannot be used");
        return -1;
    }
    if (o->auth_tokens_file != NULL && o->auth_tokens_file[0] != '\0') {
        char why[400];
        int n = auth_list_load_file(&srv->tokens, o->auth_tokens_file, 0, why, sizeof(why));
        if (n < 0) {
            snprintf(err, errlen, "AUTH_TOKENS_FILE: %s", why);
            return -1;
        }
        if (n == 0) {
            snprintf(err, errlen, "AUTH_TOKENS_FILE: %s has no token", o->auth_tokens_file);
            return -1;
        }
    }
    if (srv->tokens.n == 0 && !o->insecure_no_auth) {
        snprintf(err, errlen, "AUTH_TOKEN or AUTH_TOKENS_FILE is required (or --insecure-no-auth / INSECURE_NO_AUTH=1 for tests)");
        return -1;
    }
    if (o->basic_auth != NULL && o->basic_auth[0] != '\0') {
        if (strchr(o->basic_auth, ':') == NULL ||
            auth_list_add(&srv->basic, o->basic_auth, strlen(o->basic_auth), "*") != AUTH_OK) {
            snprintf(err, errlen, "BASIC_AUTH: must be user:password");
            return -1;
        }
    }
    if (o->basic_auth_file != NULL && o->basic_auth_file[0] != '\0') {
        char why[400];
        if (auth_list_load_file(&srv->basic, o->basic_auth_file, 1, why, sizeof(why)) < 0) {
            snprintf(err, errlen, "BASIC_AUTH_FILE: %s", why);
            return -1;
        }
    }
    srv->throttle = malloc(sizeof(*srv->throttle));
    srv->basic_throttle = malloc(sizeof(*srv->basic_throttle));
    srv->guard = malloc(sizeof(*srv->guard));
    if (srv->throttle == NULL || srv->basic_throttle == NULL || srv->guard == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    auth_throttle_init(srv->throttle, (uint32_t)o->auth_fail_delay_ms);
    auth_throttle_init(srv->basic_throttle, (uint32_t)o->auth_fail_delay_ms);
    guard_init(srv->guard, (uint32_t)o->h2_reset_budget, o->h2_reset_window_ms);
    if (srv->tokens.n == 0)
        LOG_WARN(LOG_EV_CONF,
                 "INSECURE: --insecure-no-auth: any client may register any free name (no AUTH_TOKEN/AUTH_TOKENS_FILE)");
    else
        LOG_INFO(LOG_EV_CONF, "client authentication: %zu token(s)%s", srv->tokens.n,
                 o->insecure_no_auth ? " (--insecure-no-auth ignored)" : "");
    if (srv->basic.n > 0)
        LOG_INFO(LOG_EV_CONF, "public basic auth: %zu credential(s)", srv->basic.n);
    return 0;
}

static void security_free(server *srv)
{
    auth_list_free(&srv->tokens);
    auth_list_free(&srv->basic);
    free(srv->throttle);
    free(srv->basic_throttle);
    free(srv->guard);
    srv->throttle = NULL;
    srv->basic_throttle = NULL;
    srv->guard = NULL;
}

/* Start-up failed before h2o was initialised: frees what was set up (LeakSanitizer would turn the
 * exit status into 1 under ASan) and returns |code| for main. */
static int startup_failed(server *srv, server_options *opt, int code)
{
    if (srv != NULL) {
        security_free(srv);
        metrics_free(srv->metrics);
        if (srv->ssl_ctx != NULL)
            SSL_CTX_free(srv->ssl_ctx);
        free(srv);
    }
    cfg_free(options_table, NOPTIONS, opt);
    return code;
}

typedef struct {
    h2o_handler_t super;
    server *srv;
} server_handler;

#define HEALTHZ_RECENT_MS 10000 /* drain: a /healthz poll this recent means a balancer checks us */
#define CLOSE_ROUNDS 50         /* exit: loop runs (10 ms each at most) for h2o to close what is still open */

/* Exit, after the drain: idle public and admin connections are closed by h2o itself (their
 * timeouts expire now), so that the contexts can be disposed. Bounded to CLOSE_ROUNDS runs. */
static void close_connections(server *srv)
{
    h2o_context_t *admin = admin_context(srv);
    server_context_expire(&srv->ctx);
    if (admin != NULL)
        server_context_expire(admin);
    for (int i = 0; i < CLOSE_ROUNDS; i++) {
        if (server_context_quiet(&srv->ctx) && (admin == NULL || server_context_quiet(admin)))
            break;
        h2o_evloop_run(srv->ctx.loop, 10);
    }
    h2o_evloop_run(srv->ctx.loop, 0); /* sockets closed in the last round are freed on the next */
}

/* RSS follows load (heap.h): on every tick (heap_release_idle looks at the heap once per
 * HEAP_CHECK_MS), give the memory of a finished burst back. */
static void on_heap_tick(h2o_timeout_entry_t *e)
{
    server *srv = H2O_STRUCT_FROM_MEMBER(server, heap_entry, e);
    heap_release_idle_logged(&srv->heap, server_now(srv), LOG_EV_TUNNEL);
    h2o_timeout_link(srv->ctx.loop, &srv->tick_timeout, &srv->heap_entry);
}

/* Exit: disposes the server's h2o context, configuration and loop (after admin_free, which
 * disposes the admin context sharing the loop). When a connection is still open (it would point at
 * the context) or a timer is still linked (h2o asserts), they are left to the exit, with a debug
 * line. */
static void dispose_h2o(server *srv)
{
    if (h2o_timeout_is_linked(&srv->tick_entry))
        h2o_timeout_unlink(&srv->tick_entry);
    if (h2o_timeout_is_linked(&srv->heap_entry))
        h2o_timeout_unlink(&srv->heap_entry);
    h2o_timeout_t *own[] = {&srv->read_timeout, &srv->write_timeout, &srv->tick_timeout};
    int quiet = server_context_quiet(&srv->ctx) && srv->admin == NULL;
    for (size_t i = 0; i < sizeof(own) / sizeof(own[0]); i++)
        quiet = quiet && h2o_linklist_is_empty(&own[i]->_entries);
    if (!quiet) {
        LOG_DEBUG(LOG_EV_CONF, "exit: public connections still open, h2o's context is left to the exit");
        return;
    }
    h2o_evloop_t *loop = srv->ctx.loop;
    for (size_t i = 0; i < sizeof(own) / sizeof(own[0]); i++)
        h2o_timeout_dispose(loop, own[i]);
    h2o_context_dispose(&srv->ctx);
    h2o_config_dispose(&srv->config);
    if (h2o_linklist_is_empty(&loop->_timeouts))
        h2o_evloop_destroy(loop);
}

/* Start-up failed after h2o was initialised (the public or the admin listener): closes what is
 * open, disposes h2o, then frees the rest as startup_failed() does. Returns |code| for main. */
static int startup_failed_h2o(server *srv, server_options *opt, int code)
{
    listener_close_all(srv);
    admin_free(srv);
    dispose_h2o(srv);
    registry_free(&srv->reg);
    return startup_failed(srv, opt, code);
}

static int is_tunnel_path(h2o_req_t *req)
{
    h2o_iovec_t p = req->path_normalized;
    return h2o_memis(p.base, p.len, H2O_STRLIT("/_tunnel"));
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    server *srv = ((server_handler *)self)->srv;
    proxy_take_absolute_target(req);
    if (is_tunnel_path(req))
        return tunnel_handle_request(srv, req);
    return proxy_handle_request(srv, req);
}

static void install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal; /* no SA_RESTART: epoll_wait returns EINTR */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

int main(int argc, char **argv)
{
    server_options opt;
    memset(&opt, 0, sizeof(opt));
    char err[512];
    int rv = cfg_parse(options_table, NOPTIONS, &opt, argc, argv, "tunnelmux-server",
                       "Public side of tunnelmux: routes NAME.DOMAIN to the client daemon registered as NAME.", stdout, err,
                       sizeof(err));
    if (rv == 1) {
        cfg_free(options_table, NOPTIONS, &opt);
        return 0;
    }
    if (rv != 0) {
        fprintf(stderr, "tunnelmux-server: %s\n", err);
        cfg_free(options_table, NOPTIONS, &opt);
        return 2;
    }
    log_level level = LOG_LVL_INFO;
    log_format format = LOG_FMT_TEXT;
    log_parse_level(opt.log_level, &level);
    log_parse_format(opt.log_format, &format);
    if (log_init(level, format, "server", opt.log_file[0] != '\0' ? opt.log_file : NULL) != 0) {
        fprintf(stderr, "tunnelmux-server: LOG_FILE: cannot open '%s' for appending\n", opt.log_file);
        cfg_free(options_table, NOPTIONS, &opt);
        return 2;
    }
    install_signals();
    if (heap_tune() != 0)
        LOG_DEBUG(LOG_EV_CONF, "heap settings refused by the C library; defaults kept");

    server *srv = calloc(1, sizeof(*srv));
    if (srv == NULL) {
        fprintf(stderr, "tunnelmux-server: out of memory\n");
        return startup_failed(NULL, &opt, 1);
    }
    srv->opt = &opt;
    route_canonical_domain(opt.domain, srv->domain, sizeof(srv->domain));
    if (security_setup(srv, err, sizeof(err)) != 0) {
        fprintf(stderr, "tunnelmux-server: %s\n", err);
        return startup_failed(srv, &opt, 2);
    }
    registry_init(&srv->reg);
    if ((srv->metrics = metrics_new()) == NULL) {
        fprintf(stderr, "tunnelmux-server: out of memory\n");
        return startup_failed(srv, &opt, 1);
    }
    if (listener_setup_tls(srv, err, sizeof(err)) != 0) {
        fprintf(stderr, "tunnelmux-server: %s\n", err);
        return startup_failed(srv, &opt, 2);
    }

    if (body_spool_setup(&opt, err, sizeof(err)) != 0) {
        fprintf(stderr, "tunnelmux-server: %s\n", err);
        return startup_failed(srv, &opt, 2);
    }
    h2o_config_init(&srv->config);
    srv->config.http2.graceful_shutdown_timeout = (uint64_t)opt.drain_timeout_ms;
    /* bodies h2o buffers whole always have a cap (memory, spool file): MAX_REQUEST_BODY, or 1 GiB */
    srv->config.max_request_entity_size = opt.max_request_body > 0 ? (size_t)opt.max_request_body : (size_t)1 << 30;
    srv->config.server_name = h2o_iovec_init(H2O_STRLIT("")); /* no own Server header: the local service's passes */
    /* REQUEST_TIMEOUT is the public connections' read timeout: a request must keep arriving (slow
     * senders) and an idle keep-alive / h2 connection is closed after it */
    srv->config.http1.req_timeout = (uint64_t)opt.request_timeout_ms;
    srv->config.http2.idle_timeout = (uint64_t)opt.request_timeout_ms;
    srv->config.http2.max_concurrent_requests_per_connection = (size_t)opt.max_streams_per_connection;
    h2o_hostconf_t *hostconf = h2o_config_register_host(&srv->config, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *pathconf = h2o_config_register_path(hostconf, "/", 0);
    server_handler *handler = (server_handler *)h2o_create_handler(pathconf, sizeof(*handler));
    handler->super.on_req = on_req;
    handler->srv = srv;
    access_log_register(srv, pathconf);

    h2o_context_init(&srv->ctx, h2o_evloop_create(), &srv->config);
    h2o_timeout_init(srv->ctx.loop, &srv->read_timeout, (uint64_t)opt.read_timeout_ms);
    if (opt.upgrade_idle_ms > 0)
        h2o_timeout_init(srv->ctx.loop, &srv->upgrade_idle_timeout, (uint64_t)opt.upgrade_idle_ms);
    tunnel_init_server(srv, proxy_tunnel_ops());
    srv->heap_entry.cb = on_heap_tick;
    h2o_timeout_link(srv->ctx.loop, &srv->tick_timeout, &srv->heap_entry);
    srv->accept_ctx.ctx = &srv->ctx;
    srv->accept_ctx.hosts = srv->config.hosts;
    srv->accept_ctx.ssl_ctx = srv->ssl_ctx;

    char bound[160];
    if (listener_open(srv, bound, sizeof(bound), err, sizeof(err)) != 0) {
        fprintf(stderr, "tunnelmux-server: %s\n", err);
        return startup_failed_h2o(srv, &opt, 1);
    }
    char admin_bound[160];
    if (admin_start(srv, admin_bound, sizeof(admin_bound), err, sizeof(err)) != 0) {
        fprintf(stderr, "tunnelmux-server: %s\n", err);
        return startup_failed_h2o(srv, &opt, 2);
    }
    LOG_INFO(LOG_EV_CONF, "admin listener: %s%s%s", admin_bound, srv->admin != NULL && opt.admin_tls ? " (TLS)" : "",
             srv->admin == NULL  ? ""
             : opt.admin_user[0] ? " (basic auth)"
                                 : " (loopback only, no auth)");
    LOG_INFO(LOG_EV_CONF, "tunnelmux-server %s listening on %s (%s%s) domain=%s tunnel=%s://%s:%lld/_tunnel", TUNNELMUX_VERSION,
             bound, srv->ssl_ctx ? "TLS, h2 + http/1.1" : "cleartext, HTTP/1.1 + h2c", "", srv->domain, srv->ssl_ctx ? "wss" : "ws",
             srv->domain, (long long)opt.port);

    sig_atomic_t hup_seen = 0;
    while (stop_signals == 0) {
        h2o_evloop_run(srv->ctx.loop, INT32_MAX);
        maybe_reopen_log(&hup_seen);
    }

    /* graceful: no new connections (a balancer sees the port closed), GOAWAY to every client (no new
     * streams; they reconnect elsewhere or to our successor), in-flight requests finish */
    LOG_INFO(LOG_EV_CONF, "shutting down: %zu tunnel(s), %zu request(s) in flight, GOAWAY sent, draining up to %lld ms",
             srv->ntunnels, srv->nrequests, (long long)opt.drain_timeout_ms);
    srv->shutting_down = 1;
    listener_close_all(srv);
    /* the admin listener stays during the drain: /healthz answers 503 and /metrics shows it */
    tunnel_shutdown_all(srv);
    h2o_context_request_shutdown(&srv->ctx); /* h2: GOAWAY to public HTTP/2 connections */
    int64_t started = server_now(srv);
    int64_t deadline = started + opt.drain_timeout_ms;
    /* a balancer checked /healthz in the last HEALTHZ_RECENT_MS: wait (within the deadline) until it saw the 503 */
    int checked = srv->healthz_polled_ms > 0 && started - srv->healthz_polled_ms < HEALTHZ_RECENT_MS;
    /* a balancer that health-checks us must see the 503 before we exit: else it keeps us "up" until
     * its next check and a successor started at once would get traffic for names it has no tunnel
     * for yet (docs/SCALING.md "Rolling upgrades") */
    while ((srv->ntunnels > 0 || srv->nrequests > 0 || (checked && !srv->healthz_drained)) && stop_signals < 2 &&
           server_now(srv) < deadline) {
        h2o_evloop_run(srv->ctx.loop, 100);
        maybe_reopen_log(&hup_seen);
    }
    if (srv->ntunnels > 0 || srv->nrequests > 0)
        LOG_WARN(LOG_EV_CONF, "drain %s after %lld ms: closing %zu tunnel(s), %zu request(s) still in flight",
                 stop_signals >= 2 ? "interrupted by a second signal" : "timed out", (long long)(server_now(srv) - started),
                 srv->ntunnels, srv->nrequests);
    else
        LOG_INFO(LOG_EV_CONF, "drained in %lld ms", (long long)(server_now(srv) - started));
    admin_stop(srv);
    tunnel_destroy_all(srv);
    /* let the public responses produced by the teardown (502s, aborts) go out */
    int64_t flush_until = server_now(srv) + 200;
    while (server_now(srv) < flush_until)
        h2o_evloop_run(srv->ctx.loop, 50);
    close_connections(srv);
    LOG_INFO(LOG_EV_CONF, "stopped");
    registry_free(&srv->reg);
    security_free(srv);
    admin_free(srv);
    dispose_h2o(srv);
    metrics_free(srv->metrics);
    if (srv->ssl_ctx != NULL)
        SSL_CTX_free(srv->ssl_ctx);
    free(srv);
    cfg_free(options_table, NOPTIONS, &opt);
    return 0;
}
