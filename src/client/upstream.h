/*
 * tunnelmux client — one local connection per stream (upstream.c): the request rebuilt by
 * http1.c and written to LOCAL_HOST:LOCAL_PORT, the response streamed back under backpressure.
 *
 * The tunnel drives upstreams through the mux_session callbacks below and upstream_abandon(); an
 * upstream reaches its tunnel only through the upstream_host the tunnel embeds (stream_host.h), so
 * no upstream file calls tunnel.c (issue 17: no import circle). Shutdown closes the idle keep-alive
 * connections with upstream_pool_clear() (upstream_pool.h).
 */
#ifndef TM_CLIENT_UPSTREAM_H
#define TM_CLIENT_UPSTREAM_H

#include <stddef.h>
#include <stdint.h>

#include <libwebsockets.h>

#include "client.h"
#include "client_link.h"
#include "mux/mux.h"
#include "stream_host.h"

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

/* Writes the request bytes that streams queued during this loop turn to their local connections
 * (one write per connection per turn instead of one per DATA record). Called by
 * tunnel_after_service() before the tunnel's own flush, so returned credit leaves with it. */
void upstream_flush_queued(client *c);

/* The tunnel is gone: forget the stream and close the local connection. |l| is the upstream's
 * link (first member) in its host's |streams|. Unlinks it; frees the upstream. */
void upstream_abandon(client_link *l);

#endif
