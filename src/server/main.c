/*
 * tunnelmux-server — the public side: h2o 2.2.5 (evloop) serving public HTTP/1.1, h2 (TLS ALPN)
 * and h2c, routing NAME.DOMAIN to the client daemon connected as NAME over /_tunnel on the same
 * port (docs/PROTOCOL.md §6, ../shared/DESIGN.md §3-§4).
 *
 * Global state: only the signal flags below (written by the signal handler).
 */
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/config.h"
#include "common/log.h"
#include "server/listener.h"
#include "server/proxy.h"
#include "server/route.h"
#include "server/server.h"
#include "server/tunnel.h"

#define SHUTDOWN_GRACE_MS 5000

static volatile sig_atomic_t stop_signals; /* count of SIGTERM/SIGINT received */

static void on_signal(int sig)
{
    (void)sig;
    stop_signals++;
}

static int validate_level(const cfg_option *opt, void *options, char *err, size_t errlen)
{
    log_level l;
    const char *v = ((server_options *)options)->log_level;
    if (v == NULL || log_parse_level(v, &l) != 0) {
        snprintf(err, errlen, "must be error, warn, info or debug");
        return -1;
    }
    return 0;
}

static int validate_format(const cfg_option *opt, void *options, char *err, size_t errlen)
{
    log_format f;
    const char *v = ((server_options *)options)->log_format;
    if (v == NULL || log_parse_format(v, &f) != 0) {
        snprintf(err, errlen, "must be text or json");
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
    {"MAX_CLIENTS", "max-clients", CFG_INT, "100", OFF(max_clients), 1, 1000000, "most client daemons connected at once", NULL},
    {"CHUNK_SIZE", "chunk-size", CFG_SIZE, "8192", OFF(chunk_size), 512, 16 << 20, "largest DATA payload sent through a tunnel",
     NULL},
    {"MAX_MESSAGE_SIZE", "max-message-size", CFG_SIZE, "10485760", OFF(max_message_size), 65536, 1 << 30,
     "largest tunnel WebSocket message accepted", NULL},
    {"READ_TIMEOUT", "read-timeout", CFG_DURATION, "120s", OFF(read_timeout_ms), 1, 86400000,
     "a response head must arrive within this (else 504)", NULL},
    {"WRITE_TIMEOUT", "write-timeout", CFG_DURATION, "30s", OFF(write_timeout_ms), 1, 86400000,
     "a write to a tunnel must complete within this (else the tunnel is dropped)", NULL},
    {"LISTEN_ADDR", "listen-addr", CFG_STRING, "", OFF(listen_addr), 0, 0,
     "IP address to bind (empty = all: IPv6 dual-stack, IPv4 fallback)", NULL},
    {"TLS_CERT", "tls-cert", CFG_STRING, NULL, OFF(tls_cert), 0, 0,
     "PEM certificate chain; with TLS_KEY, PORT speaks TLS (h2, http/1.1)", NULL},
    {"TLS_KEY", "tls-key", CFG_STRING, NULL, OFF(tls_key), 0, 0, "PEM private key for TLS_CERT", NULL},
    {"MAX_REQUEST_BODY", "max-request-body", CFG_SIZE, "1G", OFF(max_request_body), 0, 0,
     "largest public request body; h2o buffers the whole body (large ones in a temp file) before it is forwarded", NULL},
    {"UPGRADE_IDLE_TIMEOUT", "upgrade-idle-timeout", CFG_DURATION, "0", OFF(upgrade_idle_ms), 0, 7 * 86400000LL,
     "close an upgraded (WebSocket) connection after this long without bytes either way (0 = never)", NULL},
    {"MAX_STREAMS", "max-streams", CFG_INT, "100", OFF(max_streams), 1, 100000,
     "most concurrent requests and WebSockets per tunnel (the client has its own MAX_STREAMS)", NULL},
    {"LOG_LEVEL", "log-level", CFG_STRING, "info", OFF(log_level), 0, 0, "error, warn, info or debug", validate_level},
    {"LOG_FORMAT", "log-format", CFG_STRING, "text", OFF(log_format), 0, 0, "text or json", validate_format},
};
#define NOPTIONS (sizeof(options_table) / sizeof(options_table[0]))

typedef struct {
    h2o_handler_t super;
    server *srv;
} server_handler;

static int is_tunnel_path(h2o_req_t *req)
{
    h2o_iovec_t p = req->path_normalized;
    return h2o_memis(p.base, p.len, H2O_STRLIT("/_tunnel"));
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    server *srv = ((server_handler *)self)->srv;
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
    if (rv == 1)
        return 0;
    if (rv != 0) {
        fprintf(stderr, "tunnelmux-server: %s\n", err);
        return 2;
    }
    log_level level = LOG_LVL_INFO;
    log_format format = LOG_FMT_TEXT;
    log_parse_level(opt.log_level, &level);
    log_parse_format(opt.log_format, &format);
    log_init(level, format, "server", NULL);
    install_signals();

    server *srv = calloc(1, sizeof(*srv));
    if (srv == NULL) {
        fprintf(stderr, "tunnelmux-server: out of memory\n");
        return 1;
    }
    srv->opt = &opt;
    route_canonical_domain(opt.domain, srv->domain, sizeof(srv->domain));
    registry_init(&srv->reg);
    if (listener_setup_tls(srv, err, sizeof(err)) != 0) {
        fprintf(stderr, "tunnelmux-server: %s\n", err);
        return 2;
    }

    h2o_config_init(&srv->config);
    srv->config.max_request_entity_size = (size_t)opt.max_request_body;
    srv->config.server_name = h2o_iovec_init(H2O_STRLIT("")); /* no own Server header: the local service's passes */
    h2o_hostconf_t *hostconf = h2o_config_register_host(&srv->config, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *pathconf = h2o_config_register_path(hostconf, "/", 0);
    server_handler *handler = (server_handler *)h2o_create_handler(pathconf, sizeof(*handler));
    handler->super.on_req = on_req;
    handler->srv = srv;

    h2o_context_init(&srv->ctx, h2o_evloop_create(), &srv->config);
    h2o_timeout_init(srv->ctx.loop, &srv->read_timeout, (uint64_t)opt.read_timeout_ms);
    if (opt.upgrade_idle_ms > 0)
        h2o_timeout_init(srv->ctx.loop, &srv->upgrade_idle_timeout, (uint64_t)opt.upgrade_idle_ms);
    tunnel_init_server(srv);
    srv->accept_ctx.ctx = &srv->ctx;
    srv->accept_ctx.hosts = srv->config.hosts;
    srv->accept_ctx.ssl_ctx = srv->ssl_ctx;

    char bound[160];
    if (listener_open(srv, bound, sizeof(bound), err, sizeof(err)) != 0) {
        fprintf(stderr, "tunnelmux-server: %s\n", err);
        return 1;
    }
    LOG_INFO(LOG_EV_CONF, "tunnelmux-server %s listening on %s (%s%s) domain=%s tunnel=%s://%s:%lld/_tunnel", TUNNELMUX_VERSION,
             bound, srv->ssl_ctx ? "TLS, h2 + http/1.1" : "cleartext, HTTP/1.1 + h2c", "", srv->domain, srv->ssl_ctx ? "wss" : "ws",
             srv->domain, (long long)opt.port);

    while (stop_signals == 0)
        h2o_evloop_run(srv->ctx.loop, INT32_MAX);

    LOG_INFO(LOG_EV_CONF, "shutting down: %zu tunnel(s), GOAWAY sent, waiting up to %d ms", srv->ntunnels, SHUTDOWN_GRACE_MS);
    srv->shutting_down = 1;
    listener_close_all(srv);
    tunnel_shutdown_all(srv);
    int64_t deadline = server_now(srv) + SHUTDOWN_GRACE_MS;
    while (srv->ntunnels > 0 && stop_signals < 2 && server_now(srv) < deadline)
        h2o_evloop_run(srv->ctx.loop, 100);
    tunnel_destroy_all(srv);
    /* let the public responses produced by the teardown (502s, aborts) go out */
    int64_t flush_until = server_now(srv) + 200;
    while (server_now(srv) < flush_until)
        h2o_evloop_run(srv->ctx.loop, 50);
    LOG_INFO(LOG_EV_CONF, "stopped");
    registry_free(&srv->reg);
    if (srv->ssl_ctx != NULL)
        SSL_CTX_free(srv->ssl_ctx);
    free(srv); /* h2o's context and idle public connections are left to the exit */
    cfg_free(options_table, NOPTIONS, &opt);
    return 0;
}
