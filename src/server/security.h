/*
 * tunnelmux server — the h2o side of the public-request checks (docs/SECURITY.md): Rapid Reset
 * budget per connection, basic auth, header limits and per-client rate limits, applied before any
 * stream is opened. The pure parts live in auth.c, ratelimit.c and guard.c.
 */
#ifndef TM_SERVER_SECURITY_H
#define TM_SERVER_SECURITY_H

#include "server/server.h"
#include "server/tunnel.h"

/* The public peer's IP address of |req| as text ("-" when unknown). */
void security_peer_ip(h2o_req_t *req, char *out, size_t cap);

/*
 * Wrong basic-auth credentials per address (AUTH_FAIL_DELAY; auth.h's throttle, shared by the
 * public names and the admin listener). security_basic_wait: milliseconds |ip| must still wait
 * before its credentials are looked at again (0: now); callers answer 429 + Retry-After meanwhile
 * (counted in the metrics), so a right guess during the wait is not confirmed.
 * security_basic_failed: records wrong credentials from |ip| (not their absence: a browser's first
 * try) and logs when a wait starts.
 */
int64_t security_basic_wait(server *srv, const char *ip);
void security_basic_failed(server *srv, const char *ip, const char *what);

/* 429 with Retry-After (whole seconds, rounded up) for a wait of |wait_ms|. */
void security_too_many(h2o_req_t *req, int64_t wait_ms, const char *msg);

/* When |req|'s connection was condemned (reset budget exhausted), answers 429 and returns 1. */
int security_condemned(server *srv, h2o_req_t *req);

/* Request smuggling guard (docs/SECURITY.md §5): an HTTP/1.1 request with both Transfer-Encoding
 * and Content-Length, several different Content-Length values, or an empty header name (obs-fold)
 * is answered 400 and its connection closed, so nothing after it is parsed. Returns 1 when answered. */
int security_reject_ambiguous(server *srv, h2o_req_t *req);

/*
 * Admission of |req| for client |name| on tunnel |t|: basic auth (401 + WWW-Authenticate),
 * MAX_HEADER_COUNT / MAX_HEADER_BYTES (431), RATE_LIMIT_RPS / RATE_LIMIT_BPS (429 + Retry-After).
 * Returns 0 when admitted (the request is charged to the buckets; |*drop_authorization| is set
 * when basic auth consumed the Authorization header), or 1 when the request was answered.
 */
int security_admit(server *srv, tunnel *t, h2o_req_t *req, const char *name, int *drop_authorization);

/* A request of connection |conn| (id |conn_id|) ended before its final response. Over the budget,
 * condemns the connection and shuts its socket down. |conn| must still be alive (request disposal). */
void security_on_cancel(server *srv, h2o_conn_t *conn, uint64_t conn_id);

#endif
