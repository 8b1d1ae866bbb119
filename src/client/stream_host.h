/*
 * tunnelmux client — the host interface between a tunnel and the upstreams of its streams: what
 * an upstream may ask of the tunnel carrying its stream (an ops table, like nghttp2's callbacks),
 * so upstream code never calls tunnel.c (issue 17: no import circle). tunnel.c embeds and owns one
 * upstream_host per tunnel; upstream.h and the upstream files use it. Types only.
 */
#ifndef TM_CLIENT_STREAM_HOST_H
#define TM_CLIENT_STREAM_HOST_H

#include "client.h"
#include "client_link.h"
#include "mux/mux.h"

typedef struct upstream_host upstream_host;

/* What an upstream may ask of the tunnel that carries its stream. The table is static (it outlives
 * every host and upstream); an upstream keeps a pointer to it after its host went away. */
typedef struct upstream_host_ops {
    /* The session of |h|; NULL before the upgrade completed. The host keeps ownership. */
    mux_session *(*session)(const upstream_host *h);
    /* Frames may have been queued on streams of |c| (response head or data, CLOSE, returned
     * credit): flush every tunnel at the end of this loop turn and re-arm its timers. */
    void (*kick_all)(client *c);
    /* Request bytes wait in the end-of-turn flush queue: make sure that flush runs before lws polls
     * again (timers run inside lws_service(), after the main loop's own flush). */
    void (*want_flush)(client *c);
} upstream_host_ops;

/* The tunnel as its upstreams see it. Embedded in (and owned by) the tunnel; its address is the
 * session's user_data, which upstream_on_head receives. */
struct upstream_host {
    const upstream_host_ops *ops;
    client *c;
    client_link streams; /* the upstreams on this tunnel (their first member), so a lost tunnel releases them */
};

#endif
