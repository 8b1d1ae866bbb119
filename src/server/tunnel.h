/*
 * tunnelmux server — the /_tunnel endpoint: one WebSocket (our own framing, raw socket taken
 * with h2o_http1_upgrade) per client daemon, driving one mux_session (role SERVER).
 *
 * Lifetime: a tunnel is created by tunnel_handle_request(), lives while its socket does, and is
 * destroyed only from a loop callback (never from inside a mux callback or a proxy call), after
 * which every public request still on it is failed through proxy_on_tunnel_lost().
 */
#ifndef TM_SERVER_TUNNEL_H
#define TM_SERVER_TUNNEL_H

#include "mux/mux.h"
#include "server/metrics.h"
#include "server/ratelimit.h"
#include "server/rxslab.h"
#include "server/server.h"

#define TUNNEL_IOVCNT 128
#define TUNNEL_LINGER_MS 2000             /* lingering close: longest wait for the peer's close or EOF */
#define TUNNEL_LINGER_BYTES (1024 * 1024) /* lingering close: most input read and dropped */

typedef struct tunnel tunnel;
struct tunnel {
    server *srv;
    h2o_socket_t *sock; /* the upgraded socket (NULL before the upgrade completed) */
    mux_session *sess;
    h2o_linklist_t link;    /* in srv->tunnels */
    h2o_linklist_t streams; /* proxy_stream.link: public requests using this tunnel */
    char name[64];          /* registered NAME ("" until accepted) */
    char peer[64];          /* "ip:port" of the client daemon */
    char close_reason[128]; /* why it is going away (for the "lost" log line) */
    int registered;
    int64_t connected_unix_ms; /* wall-clock time of the registration (admin API) */
    int busy;                  /* > 0 while inside mux_session_recv / handle_timeout / send_done */
    int writing;               /* a h2o_socket_write is in flight */
    int dying;                 /* destroy scheduled */
    /* lingering close (PROTOCOL.md §8): our GOAWAY and close went out, the write side is shut, the
     * peer's bytes are read and dropped until its close frame, EOF, TUNNEL_LINGER_BYTES or
     * TUNNEL_LINGER_MS, so that a peer still sending reads why it was dropped instead of a reset */
    int lingering;
    int released;          /* unregistered, its requests failed (tunnel_release) */
    uint64_t linger_bytes; /* bytes read since the session wanted to close */
    h2o_timeout_entry_t linger_entry;
    /* name takeover (NAME_TAKEOVER_CHECK, docs/OPERATIONS.md): liveness of a registered tunnel */
    int64_t last_rx_ms; /* loop time of the last bytes received from the client */
    int64_t probe_ms;   /* loop time of the liveness PING sent because a HELLO wanted our name; 0 = none
                           pending (any bytes received clear it) */
    int goaway_recv;    /* the client sent GOAWAY: it is shutting down */
    int handed_over;    /* the name went to a newer client while we finish our in-flight streams */
    h2o_timeout_entry_t write_timeout_entry;
    h2o_timeout_entry_t reap_entry;  /* zero-delay: destroys the tunnel from the loop */
    h2o_timeout_entry_t flush_entry; /* zero-delay: one write for all a loop turn queued */
    ratelimit_bucket rl_requests;    /* RATE_LIMIT_RPS of this client name */
    ratelimit_bucket rl_bytes;       /* RATE_LIMIT_BPS of this client name */
    char peer_ip[48];                /* IP of the client daemon (throttle key) */
    rxslab *rx_slab;                 /* the read being handed to the session right now (on_read), else NULL */
    mux_iovec iov[TUNNEL_IOVCNT];
};

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

/* Initialises the tunnel machinery of |srv| (timeouts, tick). Call once after h2o_context_init. */
void tunnel_init_server(server *srv);

/* For /metrics and the admin API: adds the public requests in progress and the response bytes they
 * hold to the entries of |live| (|nlive| registered tunnels, by name); returns the bytes held by all
 * requests (proxy_gather). */
uint64_t tunnel_gather_requests(server *srv, metrics_live *live, size_t nlive);

/* Graceful shutdown: GOAWAY(SHUTDOWN) to every client; tunnels close when their streams finished. */
void tunnel_shutdown_all(server *srv);

/* Immediately destroys every tunnel (at exit). */
void tunnel_destroy_all(server *srv);

#endif
