/*
 * tunnelmux server — the state shared by the server's modules (one instance per process,
 * owned by main.c and passed by pointer; no globals).
 */
#ifndef TM_SERVER_SERVER_H
#define TM_SERVER_SERVER_H

#include <stdint.h>

#include <h2o.h>
#include <openssl/ssl.h>

#include "common/heap.h"
#include "server/auth.h"
#include "server/guard.h"
#include "server/registry.h"
#include "server/rxslab.h"

/* Parsed options (table in main.c; strings owned by cfg_free). */
typedef struct {
    int64_t port;                  /* PORT */
    char *domain;                  /* DOMAIN */
    int64_t max_clients;           /* MAX_CLIENTS: registered tunnels, replicas included */
    int64_t max_replicas;          /* MAX_REPLICAS: tunnels per name (same credential) */
    uint64_t chunk_size;           /* CHUNK_SIZE */
    uint64_t max_message_size;     /* MAX_MESSAGE_SIZE */
    int64_t read_timeout_ms;       /* READ_TIMEOUT */
    int64_t write_timeout_ms;      /* WRITE_TIMEOUT */
    char *listen_addr;             /* LISTEN_ADDR ("" = all) */
    char *tls_cert;                /* TLS_CERT */
    char *tls_key;                 /* TLS_KEY */
    uint64_t max_request_body;     /* MAX_REQUEST_BODY */
    char *body_spool_dir;          /* BODY_SPOOL_DIR ("" = $TMPDIR or /tmp) */
    uint64_t body_spool_threshold; /* BODY_SPOOL_THRESHOLD: bodies whose buffer outgrows this move to a file there */
    int64_t upgrade_idle_ms;       /* UPGRADE_IDLE_TIMEOUT (0 = off) */
    char *log_level;               /* LOG_LEVEL */
    char *log_format;              /* LOG_FORMAT */
    char *admin_addr;              /* ADMIN_ADDR ("off" or "" = no admin listener) */
    char *admin_user;              /* ADMIN_USER */
    char *admin_password;          /* ADMIN_PASSWORD */
    int admin_tls;                 /* ADMIN_TLS: the admin listener speaks TLS (TLS_CERT/TLS_KEY) */
    char *log_file;                /* LOG_FILE ("" = stderr; reopened on SIGHUP) */
    int64_t ping_interval_ms;      /* PING_INTERVAL (0 = no keepalive PINGs) */
    int64_t ping_timeout_ms;       /* PING_TIMEOUT (0 = never declare a silent client dead) */
    int64_t drain_timeout_ms;      /* DRAIN_TIMEOUT: how long SIGTERM waits for in-flight requests */
    int64_t health_grace_ms;       /* HEALTH_GRACE: /healthz says 'starting' this long after start */
    int64_t takeover_check_ms;     /* NAME_TAKEOVER_CHECK: a holder silent this long after a liveness PING
                                      loses its name to a new HELLO (0 = never) */
    /* security (docs/SECURITY.md) */
    char *auth_token;                   /* AUTH_TOKEN: one shared client token, any name */
    char *auth_tokens_file;             /* AUTH_TOKENS_FILE: `token name-pattern` lines */
    int insecure_no_auth;               /* INSECURE_NO_AUTH / --insecure-no-auth */
    int64_t auth_fail_delay_ms;         /* AUTH_FAIL_DELAY: first throttle delay (0 = off) */
    char *basic_auth;                   /* BASIC_AUTH: user:password for every name */
    char *basic_auth_file;              /* BASIC_AUTH_FILE: `name-pattern user:password` lines */
    int64_t rate_limit_rps;             /* RATE_LIMIT_RPS (0 = off) */
    int64_t rate_limit_burst;           /* RATE_LIMIT_BURST (0 = 2 x RPS) */
    uint64_t rate_limit_bps;            /* RATE_LIMIT_BPS (0 = off) */
    uint64_t rate_limit_bps_burst;      /* RATE_LIMIT_BPS_BURST (0 = 2 x BPS) */
    int64_t max_header_count;           /* MAX_HEADER_COUNT */
    uint64_t max_header_bytes;          /* MAX_HEADER_BYTES */
    int64_t max_streams_per_client;     /* MAX_STREAMS_PER_CLIENT */
    int64_t max_streams_per_connection; /* MAX_STREAMS_PER_CONNECTION (h2) */
    uint64_t max_buffer_per_client;     /* MAX_BUFFER_PER_CLIENT: connection window of a tunnel */
    uint64_t stream_window;             /* STREAM_WINDOW: credit granted per stream (response bytes) */
    uint64_t max_stream_window;         /* MAX_STREAM_WINDOW: auto-tuning cap of one stream's window */
    uint64_t tunnel_notsent_lowat;      /* TUNNEL_NOTSENT_LOWAT: TCP_NOTSENT_LOWAT of tunnel sockets (0 = unset) */
    int64_t zstd_window_log;            /* ZSTD_WINDOW_LOG */
    int compression;                    /* COMPRESSION: offer zstd to clients */
    int64_t zstd_level;                 /* ZSTD_LEVEL of what the server compresses */
    int64_t h2_reset_budget;            /* H2_RESET_BUDGET (0 = off) */
    int64_t h2_reset_window_ms;         /* H2_RESET_WINDOW */
    int64_t request_timeout_ms;         /* REQUEST_TIMEOUT: h1 request head / h2 idle */
} server_options;

#define SERVER_MAX_LISTENERS 2

typedef struct server server;
struct server {
    const server_options *opt;
    char domain[256];   /* canonical DOMAIN */
    const char *scheme; /* "https" with TLS, else "http" */
    h2o_globalconf_t config;
    h2o_context_t ctx;
    h2o_accept_ctx_t accept_ctx;
    SSL_CTX *ssl_ctx;
    h2o_socket_t *listeners[SERVER_MAX_LISTENERS];
    size_t nlisteners;
    registry reg;
    h2o_linklist_t tunnels;                     /* every tunnel connection (tunnel.link), registered or not */
    const struct tunnel_stream_ops *tunnel_ops; /* what tunnels call for their streams (tunnel_init_server) */
    size_t ntunnels;
    h2o_timeout_t read_timeout;         /* READ_TIMEOUT: response head deadline per public request */
    h2o_timeout_t write_timeout;        /* WRITE_TIMEOUT: a tunnel write must complete within it */
    h2o_timeout_t tick_timeout;         /* 100 ms: drives every session's timers */
    h2o_timeout_t linger_timeout;       /* TUNNEL_LINGER_MS: how long a closing tunnel drains its peer */
    h2o_timeout_t upgrade_idle_timeout; /* UPGRADE_IDLE_TIMEOUT for raw (upgraded) streams, when > 0 */
    h2o_timeout_entry_t tick_entry;
    /* tunnel sockets read into buffers of this prototype (tunnel.c): one read() takes up to
     * TUNNEL_READ_BUF bytes, where h2o's default 8 KiB buffer doubled (and copied) its way up on
     * every loop turn. (Streamed request bodies read into a buffer of their own, upload.c.) */
    h2o_buffer_prototype_t tunnel_input;
    rxslab_pool rx_slabs; /* tunnel reads that responses still send from (rxslab.h) */
    /* streamed HTTP/1.1 request bodies (upload.c) */
    h2o_socket_cb upload_h1_read;          /* h2o's HTTP/1 request reader, learnt at the first plain accept */
    struct upload_pending *upload_pending; /* the head h2o is parsing right now (hook -> handler), or NULL */
    int shutting_down;
    int64_t healthz_polled_ms; /* loop time of the last GET /healthz (0 = never): a balancer checks us */
    int healthz_drained;       /* GET /healthz answered 503 "draining" at least once since the drain started */
    struct metrics *metrics;   /* counters for /metrics, the admin API and the access log (metrics.h) */
    struct admin *admin;       /* the admin listener (admin.h), NULL when off */
    size_t nrequests;          /* public requests routed to a tunnel and not yet disposed by h2o (drain) */
    /* security (docs/SECURITY.md) */
    auth_list tokens;               /* client tokens (AUTH_TOKEN, AUTH_TOKENS_FILE) */
    auth_list basic;                /* public credentials (BASIC_AUTH, BASIC_AUTH_FILE) */
    auth_throttle *throttle;        /* failed tunnel authentications per address */
    auth_throttle *basic_throttle;  /* wrong basic-auth credentials per address (public names, admin) */
    guard_table *guard;             /* Rapid Reset budget per public connection */
    heap_releaser heap;             /* gives a burst's freed memory back (heap.h), from heap_entry (main.c) */
    h2o_timeout_entry_t heap_entry; /* on tick_timeout: heap_release_idle_logged (main.c) */
    h2o_linklist_t proxies;         /* public requests in progress (proxy_stream.all; proxy_gather) */
    int64_t busy_warn_ms;           /* last WARN for a request over MAX_STREAMS_PER_CLIENT (rate-limited) */
    uint64_t busy_warn_suppressed;  /* such refusals not logged since */
};

/* Exit: makes h2o close the connections still open on |ctx| (idle HTTP/1 keep-alive, HTTP/2 after
 * GOAWAY, TLS handshakes) itself, by expiring their timeouts at the next loop run; the 1-second
 * one carries h2o's pending second HTTP/2 GOAWAY (h2o_context_request_shutdown). */
static inline void server_context_expire(h2o_context_t *ctx)
{
    ctx->one_sec_timeout.timeout = 0;
    ctx->hundred_ms_timeout.timeout = 0;
    ctx->handshake_timeout.timeout = 0;
    ctx->http1.req_timeout.timeout = 0;
    ctx->http2.idle_timeout.timeout = 0;
    ctx->http2.graceful_shutdown_timeout.timeout = 0;
}

/* 1 when |ctx| has no connection and no timer entry left: h2o_context_dispose() (which asserts
 * that its timeouts are empty) is then safe. */
static inline int server_context_quiet(h2o_context_t *ctx)
{
    h2o_timeout_t *t[] = {&ctx->zero_timeout,
                          &ctx->one_sec_timeout,
                          &ctx->hundred_ms_timeout,
                          &ctx->handshake_timeout,
                          &ctx->http1.req_timeout,
                          &ctx->http2.idle_timeout,
                          &ctx->http2.graceful_shutdown_timeout,
                          &ctx->proxy.io_timeout};
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
        if (!h2o_linklist_is_empty(&t[i]->_entries))
            return 0;
    return h2o_linklist_is_empty(&ctx->http1._conns) && h2o_linklist_is_empty(&ctx->http2._conns);
}

/* Milliseconds of the loop's clock (what the mux sessions are given as "now"). */
static inline int64_t server_now(server *srv)
{
    return (int64_t)h2o_now(srv->ctx.loop);
}

#endif
