/*
 * tunnelmux-client — options, lws context, signals, event loop (see client.h for the modules).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "client.h"
#include "common/clock.h"
#include "common/config.h"
#include "common/heap.h"
#include "common/http_token.h"
#include "common/log.h"
#include "metrics.h"
#include "server_slots.h"
#include "tls_membio.h"
#include "tunnel.h"
#include "upstream.h"
#include "upstream_pool.h"

/* The only global state: set by the signal handler, read by the loop. */
static volatile sig_atomic_t g_stop_signal;
static volatile sig_atomic_t g_stop_count;
static volatile sig_atomic_t g_hup_count;
/* Write end of the self-pipe that wakes the lws poll() (set once before the loop; -1 = none): a
 * signal landing between the loop's flag check and poll() would otherwise wait for the next timer
 * (up to PING_INTERVAL) before SIGTERM is acted on. */
static volatile sig_atomic_t g_wake_fd = -1;

static void on_signal(int sig)
{
    if (sig == SIGHUP) {
        g_hup_count++;
    } else {
        g_stop_signal = sig;
        g_stop_count++;
    }
    int fd = g_wake_fd;
    if (fd >= 0) {
        int saved = errno;
        ssize_t n = write(fd, "s", 1); /* async-signal-safe; a full pipe already wakes the loop */
        (void)n;
        errno = saved;
    }
}

/* lws callback of the self-pipe's read end (adopted as a RAW file): drains it. The loop checks the
 * signal flags once lws_service() returns. */
static int wake_lws_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
    if (reason == LWS_CALLBACK_RAW_RX_FILE) {
        char buf[64];
        int fd = lws_get_socket_fd(wsi);
        for (int i = 0; i < 16 && fd >= 0 && read(fd, buf, sizeof(buf)) > 0; i++)
            ;
    }
    return 0;
}

/* Puts the read end of a non-blocking self-pipe into the lws poll set and publishes the write
 * end for on_signal. Returns the write end (closed by the caller after the loop) or -1 (signals
 * are then seen at the next lws wake-up only). */
static int setup_wake_pipe(struct lws_context *ctx)
{
    int p[2];
    struct lws_vhost *vh = lws_get_vhost_by_name(ctx, "default");
    if (vh == NULL || pipe(p) != 0)
        return -1;
    for (int i = 0; i < 2; i++) {
        fcntl(p[i], F_SETFL, fcntl(p[i], F_GETFL) | O_NONBLOCK);
        fcntl(p[i], F_SETFD, FD_CLOEXEC);
    }
    lws_sock_file_fd_type fd;
    fd.filefd = p[0];
    if (lws_adopt_descriptor_vhost(vh, LWS_ADOPT_RAW_FILE_DESC, fd, "tm-wake", NULL) == NULL) {
        close(p[0]);
        close(p[1]);
        return -1;
    }
    g_wake_fd = p[1];
    return p[1];
}

static int validate_ping(const cfg_option *opt, void *options, char *err, size_t errlen)
{
    const client_options *o = options;
    if (o->ping_timeout_ms != 0 && o->ping_interval_ms != 0 && o->ping_timeout_ms <= o->ping_interval_ms) {
        snprintf(err, errlen, "must be larger than PING_INTERVAL (or 0 = off)");
        return -1;
    }
    return 0;
}

static int validate_schema(const cfg_option *opt, void *options, char *err, size_t errlen)
{
    const char *v = ((client_options *)options)->local_schema;
    if (v == NULL || v[0] == '\0' || strcmp(v, "http") == 0 || strcmp(v, "https") == 0)
        return 0;
    snprintf(err, errlen, "must be http, https or empty (detect)");
    return -1;
}

static int validate_url(const cfg_option *opt, void *options, char *err, size_t errlen)
{
    client_url u[CLIENT_MAX_SERVERS];
    size_t n;
    const char *v = ((client_options *)options)->server_url;
    if (v == NULL)
        v = "";
    return client_parse_url_list(v, u, CLIENT_MAX_SERVERS, &n, err, errlen);
}

static int validate_host_header(const cfg_option *opt, void *options, char *err, size_t errlen)
{
    const char *v = ((client_options *)options)->host_header;
    if (v != NULL && v[0] != '\0' && http_is_clean_value(v, strlen(v)) && strchr(v, ' ') == NULL)
        return 0;
    snprintf(err, errlen, "must be preserve, rewrite or a host value");
    return -1;
}

#define O(f) offsetof(client_options, f)
static const cfg_option options_table[] = {
    {"SERVER_URL", "server-url", CFG_STRING, "ws://127.0.0.1:8080", O(server_url), 0, 0,
     "tunnel endpoint ws[s]://HOST[:PORT][/PATH] (path default /_tunnel); a comma-separated list = one tunnel to each server",
     validate_url},
    {"CLIENT_ID", "client-id", CFG_STRING, NULL, O(client_id), 0, 0, "name to register (RFC 1123 label; required)",
     cfg_validate_dns_label},
    {"LOCAL_HOST", "local-host", CFG_STRING, "localhost", O(local_host), 0, 0, "host of the local service", NULL},
    {"LOCAL_PORT", "local-port", CFG_INT, "3000", O(local_port), 1, 65535, "port of the local service", NULL},
    {"LOCAL_SCHEMA", "local-schema", CFG_STRING, "", O(local_schema), 0, 0,
     "http, https, or empty to detect (TLS probe on the first connection)", validate_schema},
    {"MAX_MESSAGE_SIZE", "max-message-size", CFG_SIZE, "10485760", O(max_message_size), 65536, 1073741824,
     "largest WebSocket message accepted", NULL},
    {"READ_TIMEOUT", "read-timeout", CFG_DURATION, "120s", O(read_timeout_ms), 1, 86400000,
     "the local service must send its response head within this (else 504 to the public user)", NULL},
    {"WRITE_TIMEOUT", "write-timeout", CFG_DURATION, "30s", O(write_timeout_ms), 1, 86400000,
     "the server must keep taking tunnel bytes: a write stalled this long drops the tunnel (then redial)", NULL},
    {"RECONNECT_DELAY", "reconnect-delay", CFG_DURATION, "5s", O(reconnect_delay_ms), 0, 86400000,
     "pause before reconnecting to the server", NULL},
    {"MAX_RETRIES", "max-retries", CFG_INT, "-1", O(max_retries), -1, 1000000000,
     "reconnect attempts before giving up (-1 = forever)", NULL},
    {"MAX_STREAMS", "max-streams", CFG_INT, "100", O(max_streams), 1, 100000,
     "most concurrent requests and WebSockets the tunnel accepts (more are refused: the server answers 502)", NULL},
    {"LOCAL_MAX_CONNECTIONS", "local-max-connections", CFG_INT, "100", O(local_max_connections), 0, 100000,
     "most connections to the local service in use at once (0 = no limit); more requests wait in arrival order", NULL},
    {"LOCAL_MAX_CONNECTING", "local-max-connecting", CFG_INT, "4", O(local_max_connecting), 0, 100000,
     "new local connections being opened at once, each until its first answer byte (0 = no limit): keeps a small listen "
     "backlog from overflowing",
     NULL},
    {"LOCAL_QUEUE_MAX", "local-queue-max", CFG_INT, "-1", O(local_queue_max), -1, 100000,
     "requests waiting for a local connection at most (-1 = MAX_STREAMS: any request the tunnel accepts may wait); beyond it "
     "the public user gets 503 with Retry-After",
     NULL},
    {"LOCAL_CONNECT_TIMEOUT", "local-connect-timeout", CFG_DURATION, "5s", O(local_connect_timeout_ms), 1, 3600000,
     "connecting to the local service (TCP, and TLS for https) may take this long; then the next address, else 502", NULL},
    {"EXPECT_CONTINUE_TIMEOUT", "expect-continue-timeout", CFG_DURATION, "1s", O(expect_timeout_ms), 0, 60000,
     "a request with Expect: 100-continue waits this long for the local service's 100 Continue or final answer before the "
     "user is told to send the body anyway (0 = off: the server answers 100 Continue itself)",
     NULL},
    {"STREAM_WINDOW", "stream-window", CFG_SIZE, "1M", O(stream_window), 65536, 16 << 20,
     "credit granted per stream: request-body bytes the server may send ahead of the local service", NULL},
    {"TUNNEL_NOTSENT_LOWAT", "tunnel-notsent-lowat", CFG_SIZE, "128k", O(tunnel_notsent_lowat), 0, 1 << 30,
     "unsent bytes the kernel may hold on the tunnel socket (TCP_NOTSENT_LOWAT; 0 = the kernel's default): "
     "less lets small responses overtake bulk data sooner",
     NULL},
    {"MAX_STREAM_WINDOW", "max-stream-window", CFG_SIZE, "32M", O(max_stream_window), 65536, 1 << 30,
     "largest window auto-tuning gives one stream (towards bandwidth x RTT; at most MAX_CONN_WINDOW)", NULL},
    {"MAX_CONN_WINDOW", "max-conn-window", CFG_SIZE, "64M", O(max_conn_window), 65536, 1 << 30,
     "the tunnel's connection window (request-body bytes in flight), and how much auto-tuning may grow its "
     "streams' windows in all",
     NULL},
    {"RECONNECT_BACKOFF", "reconnect-backoff", CFG_DOUBLE, "1", O(reconnect_backoff), 1, 10,
     "multiply the delay by this after each failed attempt (1 = fixed RECONNECT_DELAY)", NULL},
    {"RECONNECT_MAX_DELAY", "reconnect-max-delay", CFG_DURATION, "5m", O(reconnect_max_delay_ms), 0, 86400000,
     "upper bound of the grown delay (with RECONNECT_BACKOFF > 1)", NULL},
    {"HA_CONNECTIONS", "ha-connections", CFG_INT, "4", O(ha_connections), 1, 16,
     "tunnels per SERVER_URL host: one per address it resolves to, at most this many", NULL},
    {"RESOLVE_INTERVAL", "resolve-interval", CFG_DURATION, "60s", O(resolve_interval_ms), 0, 86400000,
     "re-resolve the SERVER_URL hosts this often: new addresses get a tunnel, gone ones are left (0 = at start only)", NULL},
    {"RECONNECT_JITTER", "reconnect-jitter", CFG_DOUBLE, "0", O(reconnect_jitter), 0, 1,
     "randomise each delay by +-this fraction (0.2 = 80%..120%) so clients do not return in lockstep", NULL},
    {"PING_INTERVAL", "ping-interval", CFG_DURATION, "15s", O(ping_interval_ms), 0, 3600000,
     "send a PING when the tunnel was silent for this long (0 = off)", NULL},
    {"COMPRESSION", "compression", CFG_BOOL, "on", O(compression), 0, 0,
     "offer zstd compression of tunnel messages (used when both sides offer it; streams that do not compress are "
     "sent plain)",
     NULL},
    {"ZSTD_LEVEL", "zstd-level", CFG_INT, "3", O(zstd_level), 1, 19, "zstd level for what this side compresses", NULL},
    {"PING_TIMEOUT", "ping-timeout", CFG_DURATION, "45s", O(ping_timeout_ms), 0, 3600000,
     "declare the server dead (and reconnect) after this much silence (0 = never)", validate_ping},
    {"DRAIN_TIMEOUT", "drain-timeout", CFG_DURATION, "30s", O(drain_timeout_ms), 0, 3600000,
     "on SIGTERM: GOAWAY (no new streams), wait this long for in-flight ones, then exit 0", NULL},
    {"AUTH_TOKEN", "auth-token", CFG_STRING, "", O(auth_token), 0, 0, "token sent in HELLO (never logged)", NULL},
    {"AUTH_TOKEN_FILE", "auth-token-file", CFG_STRING, NULL, O(auth_token_file), 0, 0,
     "file whose first line is the token (wins over AUTH_TOKEN; keeps it out of ps and the environment)", NULL},
    {"HOST_HEADER", "host-header", CFG_STRING, "preserve", O(host_header), 0, 0,
     "Host towards the local service: preserve (public host), rewrite (LOCAL_HOST:LOCAL_PORT) or a value", validate_host_header},
    {"TLS_CA_FILE", "tls-ca-file", CFG_STRING, NULL, O(tls_ca_file), 0, 0, "extra CA file to verify a wss:// server", NULL},
    {"TLS_INSECURE", "tls-insecure", CFG_BOOL, "false", O(tls_insecure), 0, 0, "do not verify the wss:// server certificate", NULL},
    {"LOG_LEVEL", "log-level", CFG_STRING, "info", O(log_level), 0, 0, "error, warn, info or debug", cfg_validate_log_level},
    {"LOG_FORMAT", "log-format", CFG_STRING, "text", O(log_format), 0, 0, "text or json", cfg_validate_log_format},
    {"METRICS_ADDR", "metrics-addr", CFG_STRING, "", O(metrics_addr), 0, 0,
     "IP:PORT for this daemon's Prometheus /metrics (empty = off)", NULL},
    {"LOG_FILE", "log-file", CFG_STRING, "", O(log_file), 0, 0, "append logs to this file instead of stderr; SIGHUP reopens it",
     NULL},
};
#define N_OPTIONS (sizeof(options_table) / sizeof(options_table[0]))

/* Replaces opt->auth_token by the first line of AUTH_TOKEN_FILE (trimmed) when that is set.
 * Returns 0, or -1 with a reason in |err| (never the token). */
static int load_token_file(client_options *opt, char *err, size_t errlen)
{
    if (opt->auth_token_file == NULL || opt->auth_token_file[0] == '\0')
        return 0;
    FILE *f = fopen(opt->auth_token_file, "rb");
    if (f == NULL) {
        snprintf(err, errlen, "%s: cannot open", opt->auth_token_file);
        return -1;
    }
    char line[4096];
    size_t n = fread(line, 1, sizeof(line) - 1, f);
    fclose(f);
    line[n] = '\0';
    char *p = line;
    while (*p == ' ' || *p == '\t')
        p++;
    size_t len = strcspn(p, "\r\n");
    while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t'))
        len--;
    p[len] = '\0';
    int bad = len == 0 || memchr(p, '\0', len) != NULL;
    for (size_t i = 0; i < len && !bad; i++)
        bad = (unsigned char)p[i] < 0x20 || p[i] == 0x7f;
    if (bad) {
        memset(line, 0, sizeof(line));
        snprintf(err, errlen, "%s: the first line must be a token (no control characters)", opt->auth_token_file);
        return -1;
    }
    char *tok = strdup(p);
    memset(line, 0, sizeof(line));
    if (tok == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    free(opt->auth_token);
    opt->auth_token = tok;
    return 0;
}

static struct lws_protocols protocols[] = {
    {"tm-tunnel", tunnel_lws_callback, 0, CLIENT_IO_BUF, 0, NULL, CLIENT_IO_BUF},
    {"tm-upstream", upstream_lws_callback, 0, CLIENT_IO_BUF, 0, NULL, CLIENT_IO_BUF},
    {"tm-wake", wake_lws_callback, 0, 0, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

static int setup(client *c, const client_options *opt)
{
    char err[512];
    memset(c, 0, sizeof(*c));
    c->opt = opt;
    client_url urls[CLIENT_MAX_SERVERS];
    size_t nurls = 0;
    if (client_parse_url_list(opt->server_url, urls, CLIENT_MAX_SERVERS, &nurls, err, sizeof(err)) != 0) {
        fprintf(stderr, "SERVER_URL: %s\n", err);
        return -1;
    }
    int any_tls = 0;
    for (size_t i = 0; i < nurls; i++) {
        c->urls[i] = urls[i];
        any_tls |= urls[i].tls;
    }
    c->nurls = nurls;
    int v6 = strchr(opt->local_host, ':') != NULL;
    snprintf(c->local_desc, sizeof(c->local_desc), v6 ? "[%s]:%lld" : "%s:%lld", opt->local_host, (long long)opt->local_port);
    if (strcmp(opt->host_header, "preserve") == 0) {
        c->host_mode = HTTP1_HOST_PRESERVE;
        c->host_value = strdup(c->local_desc); /* only when the head has no authority */
    } else if (strcmp(opt->host_header, "rewrite") == 0) {
        c->host_mode = HTTP1_HOST_VALUE;
        c->host_value = strdup(c->local_desc);
    } else {
        c->host_mode = HTTP1_HOST_VALUE;
        c->host_value = strdup(opt->host_header);
    }
    c->schema_fixed = opt->local_schema[0] != '\0';
    c->schema = strcmp(opt->local_schema, "https") == 0  ? LOCAL_SCHEMA_HTTPS
                : strcmp(opt->local_schema, "http") == 0 ? LOCAL_SCHEMA_HTTP
                                                         : LOCAL_SCHEMA_DETECT;
    conn_queue_init(&c->lq, opt->local_max_connections, opt->local_queue_max < 0 ? opt->max_streams : opt->local_queue_max,
                    opt->local_max_connecting);
    c->scratch = malloc(CLIENT_SCRATCH);
    if (c->host_value == NULL || c->scratch == NULL) {
        fprintf(stderr, "out of memory\n");
        return -1;
    }
    if (any_tls) {
        c->tunnel_tls = tls_membio_ctx_new(!opt->tls_insecure, opt->tls_ca_file, err, sizeof(err));
        if (c->tunnel_tls == NULL) {
            fprintf(stderr, "%s\n", err);
            return -1;
        }
    }
    /* local services use self-signed certificates more often than not: no verification there */
    c->local_tls = tls_membio_ctx_new(0, NULL, err, sizeof(err));
    if (c->local_tls == NULL) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }

    lws_set_log_level(LLL_ERR, NULL);
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof(info));
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = protocols;
    info.pt_serv_buf_size = CLIENT_IO_BUF;
    info.user = c;
    info.timeout_secs = 20;
    info.connect_timeout_secs = 20;
    c->lws = lws_create_context(&info);
    if (c->lws == NULL) {
        fprintf(stderr, "cannot create the libwebsockets context\n");
        return -1;
    }
    return 0;
}

/* RSS follows load (heap.h): once a second, give the memory of a finished burst back. */
static void heap_cb(lws_sorted_usec_list_t *sul)
{
    client *c = lws_container_of(sul, client, heap_sul);
    heap_release_idle_logged(&c->heap, clock_mono_ms(), LOG_EV_CONF);
    lws_sul_schedule(c->lws, 0, &c->heap_sul, heap_cb, (lws_usec_t)HEAP_CHECK_MS * 1000);
}

static void teardown(client *c)
{
    for (size_t i = 0; i < c->nservers; i++)
        lws_sul_cancel(&c->servers[i].reconnect_sul);
    lws_sul_cancel(&c->stop_sul);
    lws_sul_cancel(&c->resolve_sul);
    lws_sul_cancel(&c->flush_sul);
    lws_sul_cancel(&c->heap_sul);
    upstream_pool_clear(c);
    if (c->lws != NULL)
        lws_context_destroy(c->lws);
    if (c->tunnel_tls != NULL)
        SSL_CTX_free(c->tunnel_tls);
    if (c->local_tls != NULL)
        SSL_CTX_free(c->local_tls);
    free(c->host_value);
    free(c->scratch);
}

int main(int argc, char **argv)
{
    client_options opt;
    char err[512];
    memset(&opt, 0, sizeof(opt));
    int r = cfg_parse(options_table, N_OPTIONS, &opt, argc, argv, "tunnelmux-client",
                      "tunnelmux-client: exposes a local HTTP service through a tunnelmux server", stdout, err, sizeof(err));
    if (r == 1) {
        cfg_free(options_table, N_OPTIONS, &opt);
        return 0;
    }
    if (r != 0) {
        fprintf(stderr, "tunnelmux-client: %s\n", err);
        cfg_free(options_table, N_OPTIONS, &opt);
        return 2;
    }
    if (load_token_file(&opt, err, sizeof(err)) != 0) {
        fprintf(stderr, "tunnelmux-client: AUTH_TOKEN_FILE: %s\n", err);
        cfg_free(options_table, N_OPTIONS, &opt);
        return 2;
    }
    if (opt.client_id == NULL || opt.client_id[0] == '\0') {
        fprintf(stderr, "tunnelmux-client: CLIENT_ID: required (a DNS label such as \"demo\")\n");
        cfg_free(options_table, N_OPTIONS, &opt);
        return 2;
    }
    log_level lvl = LOG_LVL_INFO;
    log_format fmt = LOG_FMT_TEXT;
    log_parse_level(opt.log_level, &lvl);
    log_parse_format(opt.log_format, &fmt);
    if (log_init(lvl, fmt, "client", opt.log_file[0] != '\0' ? opt.log_file : NULL) != 0) {
        fprintf(stderr, "tunnelmux-client: LOG_FILE: cannot open '%s' for appending\n", opt.log_file);
        cfg_free(options_table, N_OPTIONS, &opt);
        return 2;
    }
    if (heap_tune() != 0)
        LOG_DEBUG(LOG_EV_CONF, "heap settings refused by the C library; defaults kept");

    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    client *c = calloc(1, sizeof(*c));
    if (c == NULL || setup(c, &opt) != 0) {
        if (c != NULL)
            teardown(c);
        free(c);
        cfg_free(options_table, N_OPTIONS, &opt);
        return 2;
    }
    char servers[CLIENT_MAX_SERVERS * 64] = "";
    for (size_t i = 0; i < c->nurls; i++)
        snprintf(servers + strlen(servers), sizeof(servers) - strlen(servers), "%s%.60s", i ? "," : "", c->urls[i].hostport);
    LOG_INFO(LOG_EV_CONF, "tunnelmux-client %s: %s -> %s://%s as %s", TUNNELMUX_VERSION, servers,
             c->schema == LOCAL_SCHEMA_HTTPS  ? "https"
             : c->schema == LOCAL_SCHEMA_HTTP ? "http"
                                              : "auto",
             c->local_desc, opt.client_id);
    if (client_metrics_start(c, err, sizeof(err)) != 0) {
        fprintf(stderr, "tunnelmux-client: %s\n", err);
        teardown(c);
        free(c);
        cfg_free(options_table, N_OPTIONS, &opt);
        return 2;
    }
    {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        c->rng = ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)ts.tv_sec ^ ((uint64_t)getpid() << 40);
    }
    int wake_fd = setup_wake_pipe(c->lws);
    if (wake_fd < 0)
        LOG_WARN(LOG_EV_CONF, "no signal wake-up pipe: SIGTERM may be noticed only at the next timer");
    tunnel_resolve_all(c); /* one tunnel per server address, each reconnecting on its own */
    lws_sul_schedule(c->lws, 0, &c->heap_sul, heap_cb, (lws_usec_t)HEAP_CHECK_MS * 1000);
    sig_atomic_t hup_seen = 0;
    while (!c->done) {
        if (g_hup_count != hup_seen) {
            hup_seen = g_hup_count;
            if (log_reopen() != 0)
                LOG_ERROR(LOG_EV_CONF, "SIGHUP: cannot reopen the log file (still writing to the old one)");
            else
                LOG_INFO(LOG_EV_CONF, "SIGHUP: log file reopened");
        }
        if (g_stop_signal && !c->stopping) {
            LOG_INFO(LOG_EV_CONF, "signal %d: shutting down", (int)g_stop_signal);
            tunnel_shutdown(c);
            if (c->done)
                break;
        }
        if (c->stopping && (clock_mono_ms() > c->stop_deadline_ms || g_stop_count >= 2)) {
            LOG_WARN(LOG_EV_CONF, "drain %s: closing with streams in flight",
                     g_stop_count >= 2 ? "interrupted by a second signal" : "timed out (DRAIN_TIMEOUT)");
            break;
        }
        tunnel_after_service(c);
        if (lws_service(c->lws, 0) < 0)
            break;
    }
    int code = c->stopping ? 0 : c->exit_code;
    c->stopping = 1;
    teardown(c);
    if (wake_fd >= 0) {
        g_wake_fd = -1;
        close(wake_fd);
    }
    free(c);
    cfg_free(options_table, N_OPTIONS, &opt);
    LOG_INFO(LOG_EV_CONF, "exit %d", code);
    return code;
}
