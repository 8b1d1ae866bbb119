/*
 * tunnelmux server — the /_tunnel endpoint: one WebSocket (our own framing, raw socket taken
 * with h2o_http1_upgrade) per client daemon, driving one mux_session (role SERVER).
 *
 * Lifetime: a tunnel is created by tunnel_handle_request(), lives while its socket does, and is
 * destroyed only from a loop callback (never from inside a mux callback or a proxy call), after
 * which every public request still on it is failed through the stream ops' on_tunnel_lost().
 *
 * Ownership: srv->tunnels owns every tunnel; callers get borrowed pointers that stay valid until
 * the next return to the loop (a tunnel is only destroyed from a loop callback).
 */
#ifndef TM_SERVER_TUNNEL_H
#define TM_SERVER_TUNNEL_H

#include "mux/mux.h"
#include "server/metrics.h"
#include "server/ratelimit.h"
#include "server/rxslab.h"
#include "server/server.h"

typedef struct tunnel tunnel; /* opaque (tunnel.c); owned by the server's loop, see the top */

/*
 * What a tunnel calls for the public requests it carries, like nghttp2's callbacks: proxy.c
 * supplies it (proxy_tunnel_ops) through tunnel_init_server, so that the tunnel does not know the
 * proxy. |stream| is the user data given to mux_session_open_stream. Every function must be set.
 */
typedef struct tunnel_stream_ops {
    /* mux events of the stream (called inside mux calls: the tunnel must not be destroyed) */
    void (*on_head)(void *stream, const mux_head *head);
    void (*on_data)(void *stream, const uint8_t *data, size_t len);
    void (*on_end)(void *stream);
    /* the stream is gone; the tunnel already unlinked the stream's node from its list */
    void (*on_close)(void *stream, unsigned code, const char *reason, int by_peer);
    void (*on_writable)(void *stream);
    /* the tunnel is being released: the stream is already gone and unlinked; fail the request */
    void (*on_tunnel_lost)(void *stream);
    /* the stream's node in the tunnel's list (tunnel_add_stream) and back */
    h2o_linklist_t *(*link)(void *stream);
    void *(*from_link)(h2o_linklist_t *link);
    /* tunnel_gather_requests: adds the requests in progress to |live| (see there) */
    uint64_t (*gather)(server *srv, metrics_live *live, size_t nlive);
} tunnel_stream_ops;

/* Handles a request for /_tunnel: validates the WebSocket upgrade and takes the socket. Always
 * answers (400/426/503 on errors). Returns 0 (h2o handler convention). */
int tunnel_handle_request(server *srv, h2o_req_t *req);

/* registry_pick's load of a tunnel (a registry value): the public requests on it, or -1 when it
 * must not get a new one (closing, handed over, it sent GOAWAY). */
long tunnel_load(void *tunnel_value, void *unused);

/* The public requests using |t| now (its streams list). */
size_t tunnel_open_requests(const tunnel *t);

/* Writes what the session has to send at the end of this loop turn (after every socket event of
 * the turn was handled, so that the frames of many requests leave in one write). Safe from
 * anywhere; never destroys |t| synchronously. */
void tunnel_flush(tunnel *t);

/* The read buffer |data| (|len| bytes, delivered by a DATA callback) lies in, with its refcount
 * untouched, or NULL: not inside on_read, the bytes are a copy (reassembled or decompressed
 * message), or the slab budget is used up. A caller that keeps |data| takes a reference. */
rxslab *tunnel_rx_slab(tunnel *t, const uint8_t *data, size_t len);

/* Closes |t| on an operator's request (admin API): GOAWAY with |reason|, then the connection is
 * dropped from the loop; its public requests fail as for a lost tunnel. */
void tunnel_disconnect(tunnel *t, const char *reason);

/* Initialises the tunnel machinery of |srv| (timeouts, tick) with the |ops| every tunnel calls for
 * its streams (not copied: static storage). Call once after h2o_context_init. */
void tunnel_init_server(server *srv, const tunnel_stream_ops *ops);

/* For /metrics and the admin API: adds the public requests in progress and the response bytes they
 * hold to the entries of |live| (|nlive| registered tunnels, by name); returns the bytes held by all
 * requests (the stream ops' gather). */
uint64_t tunnel_gather_requests(server *srv, metrics_live *live, size_t nlive);

/* Graceful shutdown: GOAWAY(SHUTDOWN) to every client; tunnels close when their streams finished. */
void tunnel_shutdown_all(server *srv);

/* Immediately destroys every tunnel (at exit). */
void tunnel_destroy_all(server *srv);

/* ---- accessors (the fields other files need; the struct is tunnel.c's) */

/* The mux session of |t| (NULL before the upgrade completed or after it closed). Borrowed. */
mux_session *tunnel_session(const tunnel *t);

/* 1 while |t| is inside mux_session_recv / handle_timeout / send_done (no stream may be opened
 * on it from a callback of another tunnel now). */
int tunnel_in_mux_call(const tunnel *t);

/* 1 once |t|'s destruction is scheduled. */
int tunnel_is_dying(const tunnel *t);

/* 1 when |t| serves its name: registered, session up, not closing, not handed over to a newer
 * client (the admin API and /metrics list exactly these). */
int tunnel_serves_name(const tunnel *t);

/* Its registered NAME ("" until accepted) and the "ip:port" of its client daemon. Borrowed. */
const char *tunnel_name(const tunnel *t);
const char *tunnel_peer(const tunnel *t);

/* Wall-clock time of its registration (admin API). */
int64_t tunnel_connected_unix_ms(const tunnel *t);

/* "leaving" (the client sent GOAWAY), "closing" (destroy scheduled) or "serving" (admin API). */
const char *tunnel_state_name(const tunnel *t);

/* RATE_LIMIT_RPS and RATE_LIMIT_BPS buckets of its client name. Borrowed. */
ratelimit_bucket *tunnel_rate_requests(tunnel *t);
ratelimit_bucket *tunnel_rate_bytes(tunnel *t);

/* Puts a public request's node (the stream ops' link) in |t|'s list of streams; it leaves by
 * h2o_linklist_unlink, or when the tunnel closes the stream or is released. */
void tunnel_add_stream(tunnel *t, h2o_linklist_t *node);

/* Walks srv->tunnels: the first tunnel after |prev| (NULL: the first one), or NULL at the end. */
tunnel *tunnel_next(server *srv, tunnel *prev);

#endif
