/*
 * tunnelmux server — the access log: one line per public request (LOG_EV_ACCESS) and the request
 * counters of srv->metrics, fed by a per-request access_log_entry.
 *
 * The proxy fills what only it knows (the mux stream id, a streamed body's length, later the local
 * queue wait) into the entry of the request (access_log_entry_of); h2o's logger hook fills the rest
 * (method, path, status, bytes, duration) from the request when it ends and writes the line.
 *
 * Ownership: an entry lives in its request's pool (freed with the request); the request keeps a
 * pointer to it in req->env under ACCESS_LOG_ENV_KEY (a pointer, not a string). Nothing here takes
 * ownership of its arguments.
 */
#ifndef TM_SERVER_ACCESS_LOG_H
#define TM_SERVER_ACCESS_LOG_H

#include <stddef.h>
#include <stdint.h>

#include "server/server.h"

#define ACCESS_LOG_ENV_KEY "TM_ACCESS" /* req->env key whose value points at the request's entry */
#define ACCESS_LOG_METHOD_MAX 32
#define ACCESS_LOG_PATH_MAX 2048
#define ACCESS_LOG_REMOTE_MAX 1025 /* NI_MAXHOST */

/* What the access log knows about one public request. Numbers are -1 while unknown. */
typedef struct access_log_entry {
    /* set by the proxy while the request runs */
    uint32_t stream_id;    /* mux stream that carried it (0 = none: answered by the server itself) */
    int64_t body_bytes;    /* request body bytes streamed through the tunnel (upload.h, h2_body.h), -1 =
                              not streamed (bytes_in is then h2o's in-memory entity) */
    int64_t queue_wait_ms; /* time the request waited in the client's local queue, -1 = unknown (printed only when known) */
    int64_t queue_length;  /* requests still waiting there when its response began, -1 = unknown */
    /* set when the request ends, by the logger: the strings are NUL-terminated and borrowed (the
     * logger's own buffers, so that the entry kept in every request's pool stays small) */
    const char *client; /* registered NAME, NULL for unknown names (kept out of per-client series) */
    const char *proto;  /* "HTTP/1.0", "HTTP/1.1", "HTTP/2" (static string) */
    const char *method; /* truncated to ACCESS_LOG_METHOD_MAX - 1 bytes */
    const char *path;   /* the request target, truncated to ACCESS_LOG_PATH_MAX - 1 bytes */
    const char *remote; /* the public peer's IP ("" until formatted: only for the line) */
    int status;         /* response status */
    uint64_t bytes_in;  /* request body bytes */
    uint64_t bytes_out; /* response bytes h2o sent */
    double duration_ms; /* from the request's first byte to the end */
} access_log_entry;

/* The entry's numbers as the strings of the log line (access_log_format). */
typedef struct access_log_text {
    char status[24], bytes_in[24], bytes_out[24], duration_ms[24], stream[24], queue_wait_ms[24];
    int has_queue_wait; /* queue_wait_ms is known: the line carries the queue_wait_ms field */
} access_log_text;

/* Sets |e| to an empty entry: no stream, no streamed body, queue wait unknown, strings empty. */
void access_log_entry_init(access_log_entry *e);

/* The protocol name of an HTTP version as h2o numbers it (0x100, 0x101, 0x200). */
const char *access_log_proto_name(int version);

/* The request body bytes of the line: the streamed body's length when known, else |entity_len|. */
uint64_t access_log_bytes_in(const access_log_entry *e, uint64_t entity_len);

/* Turns |e|'s numbers into the strings of the log line (duration in ms with 3 decimals). Pure. */
void access_log_format(const access_log_entry *e, access_log_text *out);

/* The entry of |req|, created in its pool (access_log_entry_init) on first use. Never NULL except
 * when the pool cannot allocate (h2o aborts then). */
access_log_entry *access_log_entry_of(h2o_req_t *req);

/* Records the mux stream |id| that carries |req|. The first id recorded wins: the line of a request
 * sent again after its tunnel was lost (safe retry) names the first stream, as it did when the id
 * travelled in req->env. */
void access_log_note_stream(h2o_req_t *req, uint32_t id);

/* Records the length of |req|'s streamed request body (upload.h, h2_body.h) for bytes_in. The first
 * length recorded wins (an announced Content-Length before the count at the body's end). */
void access_log_note_body(h2o_req_t *req, uint64_t len);

/* Records the local queue wait and length the client reported in |req|'s final response head
 * (PROTOCOL.md §9.4). */
void access_log_note_queue(h2o_req_t *req, uint32_t wait_ms, uint32_t length);

/* The entry of |req| when the proxy made one, else NULL. */
access_log_entry *access_log_find(h2o_req_t *req);

/*
 * Registers the access logger on |pathconf| (the public path): one access-log line per public
 * request and the request counters of srv->metrics. Requests to /_tunnel are not logged here
 * (tunnel.c logs connection events). |srv| must outlive the pathconf.
 */
void access_log_register(server *srv, h2o_pathconf_t *pathconf);

#endif
