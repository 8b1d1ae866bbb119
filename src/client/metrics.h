/*
 * tunnelmux client — the daemon's Prometheus endpoint (metrics.c): an lws HTTP vhost on the
 * daemon's lws context answering GET /metrics. It reads the counters in client.metrics, the local
 * connection budget, and the tunnels through tunnel.h's accessors; nothing calls back into it.
 */
#ifndef TM_CLIENT_METRICS_H
#define TM_CLIENT_METRICS_H

#include <stddef.h>

#include "client.h"

/* Starts the Prometheus endpoint on METRICS_ADDR (an HTTP vhost on c->lws: GET /metrics). No-op
 * returning 0 when METRICS_ADDR is empty or "off". Returns -1 with a reason in |err| (malformed
 * address, cannot listen). */
int client_metrics_start(client *c, char *err, size_t errlen);

/* Renders the daemon's Prometheus text exposition into a malloc'ed string (*out, caller frees).
 * Returns 0 or -1 (out of memory). */
int client_metrics_render(const client *c, char **out, size_t *outlen);

#endif
