/*
 * tunnelmux server — one public request carried as one mux stream (PROTOCOL.md §6).
 *
 * The request head and body go out with mux_session_open_stream / mux_session_write; the
 * response comes back through the tunnel's mux callbacks, which call the proxy through the
 * tunnel_stream_ops table (proxy_tunnel_ops) with the proxy_stream attached as stream user data.
 */
#ifndef TM_SERVER_PROXY_H
#define TM_SERVER_PROXY_H

#include "server/metrics.h"
#include "server/server.h"
#include "server/tunnel.h"

/*
 * RFC 9112 §3.2.2: an HTTP/1.x request whose target is in absolute-form ("http://host/path") is
 * about the target's host, whatever its Host header says. Rewrites |req|'s input authority and
 * path (origin-form, path_normalized recomputed; new bytes from req's pool) before anything reads
 * them. No-op for origin-form targets and for HTTP/2.
 */
void proxy_take_absolute_target(h2o_req_t *req);

/* h2o handler for every public request (everything except /_tunnel). Always answers; returns 0. */
int proxy_handle_request(server *srv, h2o_req_t *req);

/* The stream ops every tunnel calls for the public requests it carries (tunnel_init_server): the
 * mux events of a stream, the tunnel's loss, the request list for /metrics. Static storage. */
const tunnel_stream_ops *proxy_tunnel_ops(void);

/*
 * For /metrics: walks every public request in progress (srv->proxies: a mux stream open, or a
 * response still buffered for its reader, or an upgraded connection) and adds each to the entry
 * of |live| (|nlive| registered tunnels) with its client name: requests_active += 1,
 * response_bytes_held += the response bytes it holds. Returns the bytes held by all of them
 * (requests whose tunnel is gone included). Does not take ownership of |live|.
 */
uint64_t proxy_gather(server *srv, metrics_live *live, size_t nlive);

#endif
