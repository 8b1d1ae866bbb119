/*
 * tunnelmux client — the tunnel slots (server_slots.c): one per address of each SERVER_URL host.
 * The slots live in the client (client.servers); this module opens, retires and re-resolves them.
 */
#ifndef TM_CLIENT_SERVER_SLOTS_H
#define TM_CLIENT_SERVER_SLOTS_H

#include "client.h"

/* Resolves the host of every SERVER_URL element and makes the tunnel slots match: one per address
 * (at most HA_CONNECTIONS per URL; an address gone from DNS gets GOAWAY and is not redialled, a new
 * one is dialled now). A host that does not resolve keeps its slots (or gets one that lets lws
 * resolve at each attempt). Blocking (getaddrinfo), at start and every RESOLVE_INTERVAL. */
void tunnel_resolve_all(client *c);

#endif
