/*
 * tunnelmux server — the admin listener (ADMIN_ADDR, default 127.0.0.1:9090): Prometheus
 * /metrics, the JSON API (/api/clients, POST /api/clients/NAME/disconnect) and the dashboard
 * (/, /app.js, /style.css; assets embedded at build time from src/server/dashboard/).
 *
 * It is a second h2o listener with its own globalconf, hostconf and context on the server's loop,
 * so nothing on the public port can reach it. With ADMIN_USER and ADMIN_PASSWORD every request
 * needs HTTP basic auth (compared in constant time); without them ADMIN_ADDR must be a loopback
 * address or the server refuses to start. State-changing requests (POST) also need the header
 * "X-TM-Admin: 1", which a cross-site form cannot send.
 */
#ifndef TM_SERVER_ADMIN_H
#define TM_SERVER_ADMIN_H

#include "server/server.h"

/*
 * Checks the ADMIN_* options and, unless ADMIN_ADDR is "off" or empty, binds the admin listener
 * and starts serving on srv's loop (call after h2o_context_init of srv->ctx). |bound| receives a
 * printable "addr:port" ("off" when disabled). Returns 0, or -1 with a one-line reason in |err|
 * naming the variable (malformed address, credentials missing for a non-loopback address, only
 * one of ADMIN_USER / ADMIN_PASSWORD set, bind failure).
 */
int admin_start(server *srv, char *bound, size_t boundlen, char *err, size_t errlen);

/* Stops accepting admin connections (shutdown); idle ones are left to the exit. */
void admin_stop(server *srv);

/* Frees the admin state (after the loop stopped). When the admin h2o context is quiet
 * (server_context_quiet) it is disposed with its configuration; otherwise they are left to the
 * exit (idle admin connections may still point at them). */
void admin_free(server *srv);

/* The admin listener's h2o context (to close its connections at exit), or NULL when off. */
h2o_context_t *admin_context(server *srv);

/*
 * Registers the access logger on |pathconf| (the public path): one access-log line per public
 * request and the request counters of srv->metrics. Requests to /_tunnel are not logged here
 * (tunnel.c logs connection events).
 */
void admin_register_access_log(server *srv, h2o_pathconf_t *pathconf);

/* Remembers the mux stream |id| of |req| for its access-log line (proxy.c, after opening it). */
void admin_tag_stream(h2o_req_t *req, uint32_t id);

/* Records the length of |req|'s streamed request body (upload.h) for the access log's bytes_in. */
void admin_tag_body(h2o_req_t *req, uint64_t len);
/* Tags |req| with the local queue wait and length its client reported in the response head
 * (PROTOCOL.md §9.4), for the access log and the dashboard. */
void admin_tag_queue(h2o_req_t *req, uint32_t wait_ms, uint32_t length);

#endif
