/*
 * tunnelmux client — the top-level client object: options, the lws context, the tunnel slots and
 * the state the local (upstream) connections share. One thread; everything runs from the lws event
 * loop. main.c owns the one client and passes it by pointer. Each module has its own header
 * (docs/ARCHITECTURE.md §4); this one includes only leaf headers, never a module that includes it.
 *
 *   main.c      options, lws context, signals, loop
 *   tunnel.h    the WebSocket to each server of SERVER_URL (RAW lws connection, own upgrade, mux_session
 *               CLIENT); a stream belongs to the tunnel it arrived on
 *   upstream.h  one local connection per stream (RAW lws connection, HTTP/1.1 via http1.c), reached by
 *               the tunnel only through its host interface (upstream_host)
 *   metrics.h   the daemon's /metrics listener
 *   conn_queue  LOCAL_MAX_CONNECTIONS / LOCAL_MAX_CONNECTING budget and its FIFO of waiting streams
 *   tls_membio  OpenSSL over memory BIOs for wss:// and https local services
 */
#ifndef TM_CLIENT_CLIENT_H
#define TM_CLIENT_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include <libwebsockets.h>
#include <openssl/ssl.h>

#include "client_link.h"
#include "common/heap.h"
#include "conn_pool.h"
#include "conn_queue.h"
#include "http1.h"
#include "mux/mux.h"
#include "resolve.h"
#include "url.h"

/* Options (env + flags, see main.c's table). Durations in milliseconds. */
typedef struct {
    char *server_url;
    char *client_id;
    char *local_host;
    int64_t local_port;
    char *local_schema;
    uint64_t max_message_size;
    int64_t read_timeout_ms;
    int64_t write_timeout_ms;
    int64_t reconnect_delay_ms;
    int64_t max_retries;
    int64_t max_streams;           /* MAX_STREAMS: concurrent streams the tunnel accepts */
    uint64_t stream_window;        /* STREAM_WINDOW: credit granted per stream (request-body bytes) */
    uint64_t max_stream_window;    /* MAX_STREAM_WINDOW: auto-tuning cap of one stream's window */
    uint64_t max_conn_window;      /* MAX_CONN_WINDOW: connection window and growth budget */
    uint64_t tunnel_notsent_lowat; /* TUNNEL_NOTSENT_LOWAT: TCP_NOTSENT_LOWAT of the tunnel socket (0 = unset) */
    char *auth_token;
    char *auth_token_file; /* AUTH_TOKEN_FILE: first line is the token (wins over AUTH_TOKEN) */
    char *host_header;
    char *tls_ca_file;
    int tls_insecure;
    char *log_level;
    char *log_format;
    char *metrics_addr;       /* METRICS_ADDR: IP:PORT of the Prometheus endpoint ("" = off) */
    char *log_file;           /* "" = stderr; reopened on SIGHUP */
    double reconnect_backoff; /* factor per consecutive failed attempt (1 = fixed delay) */
    int64_t reconnect_max_delay_ms;
    double reconnect_jitter;          /* 0..1 */
    int64_t ping_interval_ms;         /* 0 = no keepalive PINGs */
    int64_t ping_timeout_ms;          /* 0 = never declare a silent server dead */
    int64_t drain_timeout_ms;         /* SIGTERM: how long in-flight streams may take */
    int compression;                  /* COMPRESSION: offer zstd (used only when the server agrees) */
    int64_t zstd_level;               /* ZSTD_LEVEL of what we compress */
    int64_t local_max_connections;    /* LOCAL_MAX_CONNECTIONS: local connections in use at once (0 = no limit) */
    int64_t local_max_connecting;     /* LOCAL_MAX_CONNECTING: new local connections not yet answered (0 = no limit) */
    int64_t local_queue_max;          /* LOCAL_QUEUE_MAX: streams waiting for one (beyond: 503; -1 = MAX_STREAMS) */
    int64_t local_connect_timeout_ms; /* LOCAL_CONNECT_TIMEOUT: TCP connect (+ TLS handshake) to the local service */
    int64_t ha_connections;           /* HA_CONNECTIONS: tunnels per SERVER_URL host (one per address it resolves to) */
    int64_t resolve_interval_ms;      /* RESOLVE_INTERVAL: re-resolve the hosts of SERVER_URL (0 = at start only) */
    int64_t expect_timeout_ms;        /* EXPECT_CONTINUE_TIMEOUT: wait for the local 100 Continue (0 = no relay) */
} client_options;

/* Most tunnels at once: HA_CONNECTIONS per URL, all URLs together. */
#define CLIENT_MAX_TUNNELS 64

/* What the local service speaks (LOCAL_SCHEMA, or what the last probe found). */
typedef enum {
    LOCAL_SCHEMA_DETECT = 0, /* not known: the next fresh connection is a schema probe first */
    LOCAL_SCHEMA_HTTP = 1,   /* plain HTTP/1.1 */
    LOCAL_SCHEMA_HTTPS = 2,  /* HTTP/1.1 over TLS (tls_membio, no verification) */
} local_schema;

typedef struct tunnel tunnel;
typedef struct upstream upstream;

/* The daemon's own counters for its /metrics endpoint (metrics.c). */
typedef struct {
    uint64_t connect_attempts;                     /* tunnel connections started */
    uint64_t registrations;                        /* WELCOMEs received */
    uint64_t refusals;                             /* REFUSEs received */
    uint64_t tunnels_lost;                         /* registered tunnels that went away */
    uint64_t requests;                             /* streams (public requests) opened by the server */
    uint64_t responses[6];                         /* response heads sent, by status class (0 = other, 1..5 = 1xx..5xx) */
    uint64_t stream_resets;                        /* streams we aborted (local service unreachable or failed, ...) */
    uint64_t local_connect_timeouts;               /* local connect attempts ended by LOCAL_CONNECT_TIMEOUT */
    uint64_t local_connects;                       /* fresh local connections started (not from the keep-alive pool) */
    uint64_t bytes_in, bytes_out, flow_blocked_ms; /* from finished tunnel sessions */
    uint64_t stall_ms[MUX_STALL_CAUSES];           /* from finished tunnel sessions, by cause */
    int64_t registered_unix_ms;                    /* wall clock of the last WELCOME */
} client_metrics;

struct client;

/* One tunnel slot: an address of one element of SERVER_URL (one per address its host resolves
 * to, up to HA_CONNECTIONS), with its own tunnel, reconnected on its own (tunnel.c). */
typedef struct client_server {
    struct client *c;
    client_url url;
    int index;     /* position of the URL in SERVER_URL, from 1 (log lines, metrics label) */
    char addr[64]; /* numeric address dialled; "" = let lws resolve url.host (resolution failed) */
    int in_use;    /* the slot is live (slots are reused after a retired address went away) */
    int retiring;  /* its address left DNS: GOAWAY, no redial; the slot frees when the tunnel is gone */
    tunnel *tun;   /* the current connection to this server, NULL between attempts */
    lws_sorted_usec_list_t reconnect_sul;
    int64_t attempts; /* consecutive failed attempts since the last WELCOME */
    int gave_up;      /* MAX_RETRIES exhausted for this server: no more attempts */
} client_server;

typedef struct client {
    const client_options *opt;
    struct lws_context *lws;
    client_url urls[CLIENT_MAX_SERVERS]; /* SERVER_URL */
    size_t nurls;
    client_server servers[CLIENT_MAX_TUNNELS]; /* tunnel slots (in_use), HA_CONNECTIONS per URL */
    size_t nservers;                           /* slots ever used (high-water mark) */
    lws_sorted_usec_list_t resolve_sul;        /* every RESOLVE_INTERVAL: tunnel_resolve_all */
    SSL_CTX *tunnel_tls;                       /* for wss:// (NULL for ws://) */
    SSL_CTX *local_tls;                        /* for https local services (no verification: local certificates) */
    http1_host_mode host_mode;
    char *host_value;     /* LOCAL_HOST:LOCAL_PORT or the literal HOST_HEADER value */
    char local_desc[300]; /* "LOCAL_HOST:PORT" for messages */
    local_schema schema;  /* current (cached) schema of the local service */
    int schema_fixed;     /* LOCAL_SCHEMA was given: never re-detect */
    local_addrs addrs;    /* addresses of LOCAL_HOST, the one that answered last first */
    uint8_t *scratch;     /* CLIENT_SCRATCH bytes for decrypted data */
    uint64_t rng;         /* RECONNECT_JITTER random state (seeded at start-up) */
    int stopping;         /* SIGTERM/SIGINT received */
    int64_t stop_deadline_ms;
    lws_sorted_usec_list_t stop_sul; /* wakes the loop at stop_deadline_ms */
    client_metrics metrics;
    struct lws_vhost *metrics_vhost;  /* METRICS_ADDR listener (NULL = off) */
    conn_pool pool;                   /* idle keep-alive local connections (upstream.c), most recent first */
    client_link flushq;               /* upstreams with request bytes to write after this loop turn (upstream.c) */
    lws_sorted_usec_list_t flush_sul; /* zero-delay: flushes work queued by timers (they run before lws polls) */
    int flush_armed;                  /* flush_sul is scheduled */
    heap_releaser heap;               /* gives a burst's freed memory back (heap.h) */
    lws_sorted_usec_list_t heap_sul;  /* every HEAP_CHECK_MS: heap_release_idle */
    conn_queue lq;                    /* LOCAL_MAX_CONNECTIONS slots and the streams waiting for one (upstream.c) */
    lws_sorted_usec_list_t lq_sul;    /* zero-delay: hands freed slots to waiting streams */
    int64_t local_upgraded;           /* upgraded (WebSocket) local connections open: outside the budget */
    int lq_closed;                    /* shutting down (upstream_pool_clear): no more slot hand-outs */
    int done;                         /* leave the loop */
    int exit_code;
} client;

#define CLIENT_SCRATCH (256 * 1024)
/* pt_serv_buf_size, rx_buffer_size: one read of a socket (local or tunnel) takes up to this. 512 KiB
 * halves the reads, writes and wake-ups of 256 KiB (PERFORMANCE.md §3); a stream's send buffer is
 * twice this (tunnel.c), which is what a stream with a slow reader holds. */
#define CLIENT_IO_BUF (512 * 1024)

#endif
