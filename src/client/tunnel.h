/*
 * tunnelmux client — the tunnel (tunnel.c): one lws RAW client connection to a server of
 * SERVER_URL carrying our own WebSocket upgrade and then a CLIENT mux_session. A tunnel belongs to
 * its slot (client_server.tun) and owns its session, its lws connection's user pointer and the
 * list of its upstreams (which it abandons when it goes). Streams reach upstream.c through the
 * session callbacks; upstreams reach the tunnel only through the upstream_host it embeds.
 */
#ifndef TM_CLIENT_TUNNEL_H
#define TM_CLIENT_TUNNEL_H

#include <stddef.h>

#include <libwebsockets.h>

#include "client.h"
#include "mux/mux.h"

/* The lws protocol callback of tunnel connections. */
int tunnel_lws_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len);

/* Starts a connection attempt to |srv| (srv->tun must be NULL). Returns 0, or -1 when it could
 * not even start (a retry is scheduled). */
int tunnel_connect(client_server *srv);

/* Schedules the next attempt to |srv| after RECONNECT_DELAY (or |delay_ms| if larger); when
 * MAX_RETRIES is exhausted for it, gives it up, and ends the loop with exit code 1 once every
 * server was given up. */
void tunnel_schedule_reconnect(client_server *srv, int64_t delay_ms);

/* Graceful stop: GOAWAY on every tunnel, then close once the streams finished. */
void tunnel_shutdown(client *c);

/* Tunnels registered now (the daemon is up while this is > 0). */
size_t tunnel_count_up(const client *c);

/* "up", "connecting" or "down" for |srv|'s tunnel (client metrics). */
const char *tunnel_state_name(const client_server *srv);

/* Marks the tunnel for a flush at the end of this loop turn when the session has something to
 * send, and re-arms the session timer. Call after anything that may have queued frames. */
void tunnel_kick(tunnel *t);
/* tunnel_kick() on every tunnel of |c|. */
void tunnel_kick_all(client *c);

/* The main loop calls this between lws_service() turns: everything the turn queued on the session
 * leaves in one batch (writev straight to the socket for ws://). */
void tunnel_after_service(client *c);

/* Makes sure tunnel_after_service() runs before lws waits again: lws runs its timers before it
 * polls, inside the same lws_service() call, so work queued by a timer is flushed by a zero-delay
 * timer of ours. Cheap to call repeatedly. */
void client_want_flush(client *c);

/* Its address left DNS (server_slots.c): GOAWAY when registered (the tunnel closes once its
 * streams finished), else the connection attempt is dropped. The slot is not redialled. */
void tunnel_retire(tunnel *t);

/* The session of |t| (NULL before the upgrade completed). The tunnel keeps ownership. */
mux_session *tunnel_session(const tunnel *t);

#endif
