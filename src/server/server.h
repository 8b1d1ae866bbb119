/*
 * tunnelmux server — the state shared by the server's modules (one instance per process,
 * owned by main.c and passed by pointer; no globals).
 */
#ifndef TM_SERVER_SERVER_H
#define TM_SERVER_SERVER_H

#include <stdint.h>

#include <h2o.h>
#include <openssl/ssl.h>

#include "server/registry.h"

/* Parsed options (table in main.c; strings owned by cfg_free). */
typedef struct {
    int64_t port;              /* PORT */
    char *domain;              /* DOMAIN */
    int64_t max_clients;       /* MAX_CLIENTS */
    uint64_t chunk_size;       /* CHUNK_SIZE */
    uint64_t max_message_size; /* MAX_MESSAGE_SIZE */
    int64_t read_timeout_ms;   /* READ_TIMEOUT */
    int64_t write_timeout_ms;  /* WRITE_TIMEOUT */
    char *listen_addr;         /* LISTEN_ADDR ("" = all) */
    char *tls_cert;            /* TLS_CERT */
    char *tls_key;             /* TLS_KEY */
    uint64_t max_request_body; /* MAX_REQUEST_BODY */
    int64_t upgrade_idle_ms;   /* UPGRADE_IDLE_TIMEOUT (0 = off) */
    int64_t max_streams;       /* MAX_STREAMS: concurrent streams per tunnel */
    char *log_level;           /* LOG_LEVEL */
    char *log_format;          /* LOG_FORMAT */
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
    h2o_linklist_t tunnels; /* every tunnel connection (tunnel.link), registered or not */
    size_t ntunnels;
    h2o_timeout_t read_timeout;         /* READ_TIMEOUT: response head deadline per public request */
    h2o_timeout_t write_timeout;        /* WRITE_TIMEOUT: a tunnel write must complete within it */
    h2o_timeout_t tick_timeout;         /* 100 ms: drives every session's timers */
    h2o_timeout_t upgrade_idle_timeout; /* UPGRADE_IDLE_TIMEOUT for raw (upgraded) streams, when > 0 */
    h2o_timeout_entry_t tick_entry;
    int shutting_down;
};

/* Milliseconds of the loop's clock (what the mux sessions are given as "now"). */
static inline int64_t server_now(server *srv)
{
    return (int64_t)h2o_now(srv->ctx.loop);
}

#endif
