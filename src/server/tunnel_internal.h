/*
 * tunnelmux server — the inside of a tunnel, shared by the files of the tunnel only (tunnel.c: the
 * socket, the session, timers; tunnel_register.c: the HELLO, authentication, name takeover).
 * Everyone else sees an opaque tunnel through tunnel.h.
 *
 * Ownership: srv->tunnels owns every tunnel (tunnel.h); a tunnel owns its mux_session and, once
 * upgraded, its socket.
 */
#ifndef TM_SERVER_TUNNEL_INTERNAL_H
#define TM_SERVER_TUNNEL_INTERNAL_H

#include "server/tunnel.h"

#define TUNNEL_IOVCNT 128
#define TUNNEL_LINGER_MS 2000             /* lingering close: longest wait for the peer's close or EOF */
#define TUNNEL_LINGER_BYTES (1024 * 1024) /* lingering close: most input read and dropped */

struct tunnel {
    server *srv;
    const tunnel_stream_ops *ops; /* the proxy, for the streams on this tunnel (srv->tunnel_ops) */
    h2o_socket_t *sock;           /* the upgraded socket (NULL before the upgrade completed) */
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

/* tunnel.c: destroys |t| from the loop (never synchronously), |reason| kept for the "lost" line. */
void tunnel__schedule_destroy(tunnel *t, const char *reason);

/* tunnel_register.c: the session's on_hello callback (mux_session_callbacks): authenticates the
 * client, registers its name (replicas, takeover) and accepts or refuses the session. */
int tunnel__on_hello(mux_session *s, const mux_hello_info *hello, void *user_data);

#endif
