/*
 * tunnelmux client — one local connection per stream (upstream.c): the request rebuilt by
 * http1.c and written to LOCAL_HOST:LOCAL_PORT, the response streamed back under backpressure.
 *
 * The tunnel drives upstreams through the mux_session callbacks below and upstream_abandon(); an
 * upstream reaches its tunnel only through the upstream_host the tunnel embeds (an ops table, like
 * nghttp2's callbacks), so upstream.c never calls tunnel.c (issue 17: no import circle).
 */
#ifndef TM_CLIENT_UPSTREAM_H
#define TM_CLIENT_UPSTREAM_H

#include <stddef.h>
#include <stdint.h>

#include <libwebsockets.h>

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

/* The lws protocol callback of local connections. */
int upstream_lws_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len);

/* mux_session callbacks for streams (installed by tunnel.c). |user_data| is the session's: the
 * tunnel's upstream_host. */
int upstream_on_head(mux_session *s, uint32_t id, const mux_head *head, void *stream_user_data, void *user_data);
int upstream_on_data(mux_session *s, uint32_t id, const uint8_t *data, size_t len, void *stream_user_data, void *user_data);
int upstream_on_end(mux_session *s, uint32_t id, void *stream_user_data, void *user_data);
void upstream_on_stream_close(mux_session *s, uint32_t id, unsigned code, const char *reason, int by_peer, void *stream_user_data,
                              void *user_data);
void upstream_on_writable(mux_session *s, uint32_t id, void *stream_user_data, void *user_data);

/* Idle keep-alive connections to the local service kept at most (the oldest is closed first). */
#define UPSTREAM_POOL_MAX 128
/* An idle keep-alive connection is closed after this many seconds. */
#define UPSTREAM_POOL_IDLE_S 30

/* Closes every idle keep-alive local connection and stops handing out queued slots (shutdown). */
void upstream_pool_clear(client *c);

/* Writes the request bytes that streams queued during this loop turn to their local connections
 * (one write per connection per turn instead of one per DATA record). Called by
 * tunnel_after_service() before the tunnel's own flush, so returned credit leaves with it. */
void upstream_flush_queued(client *c);

/* The tunnel is gone: forget the stream and close the local connection. |l| is the upstream's
 * link (first member) in its host's |streams|. Unlinks it; frees the upstream. */
void upstream_abandon(client_link *l);

#endif
