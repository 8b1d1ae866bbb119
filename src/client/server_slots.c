/*
 * tunnelmux client — the tunnel slots (client.servers): one per address of each SERVER_URL host,
 * up to HA_CONNECTIONS per URL, kept in step with DNS at start and every RESOLVE_INTERVAL. A slot
 * whose address left DNS is retired (its tunnel says GOAWAY and is not redialled); a new address
 * gets a new slot, dialled at once. Calls tunnel.c (tunnel_connect, tunnel_retire); tunnel.c
 * does not call back.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "resolve.h"
#include "server_slots.h"
#include "tunnel.h"

/* Stops using |srv| (its address left DNS): GOAWAY on a registered tunnel (it closes once its
 * streams finished, and is not redialled), a tunnel still connecting is dropped, an idle slot is
 * freed at once. */
static void retire(client_server *srv)
{
    srv->retiring = 1;
    lws_sul_cancel(&srv->reconnect_sul);
    tunnel *t = srv->tun;
    LOG_INFO(LOG_EV_TUNNEL, "%s no longer resolves to %s: leaving that server", srv->url.host, srv->addr[0] ? srv->addr : "-");
    if (t == NULL) {
        srv->in_use = 0;
        return;
    }
    tunnel_retire(t);
}

/* A free slot for a new tunnel, or NULL when CLIENT_MAX_TUNNELS are in use. */
static client_server *slot_alloc(client *c)
{
    for (size_t i = 0; i < CLIENT_MAX_TUNNELS; i++) {
        client_server *srv = &c->servers[i];
        if (srv->in_use || srv->tun != NULL)
            continue;
        memset(srv, 0, sizeof(*srv));
        if (i >= c->nservers)
            c->nservers = i + 1;
        return srv;
    }
    return NULL;
}

/* Opens a slot for address |addr| ("" = let lws resolve) of URL |u| and dials it. */
static void slot_open(client *c, size_t u, const char *addr)
{
    client_server *srv = slot_alloc(c);
    if (srv == NULL) {
        LOG_WARN(LOG_EV_TUNNEL, "%s: no tunnel to %s (CLIENT_MAX_TUNNELS=%d in use)", c->urls[u].hostport, addr,
                 CLIENT_MAX_TUNNELS);
        return;
    }
    srv->c = c;
    srv->url = c->urls[u];
    srv->index = (int)u + 1;
    snprintf(srv->addr, sizeof(srv->addr), "%s", addr);
    srv->in_use = 1;
    if (addr[0])
        LOG_INFO(LOG_EV_TUNNEL, "tunnel to %s at %s", srv->url.hostport, addr);
    tunnel_connect(srv);
}

static void resolve_cb(lws_sorted_usec_list_t *sul)
{
    client *c = lws_container_of(sul, client, resolve_sul);
    if (!c->stopping)
        tunnel_resolve_all(c);
}

void tunnel_resolve_all(client *c)
{
    for (size_t u = 0; u < c->nurls; u++) {
        const client_url *url = &c->urls[u];
        char want[LOCAL_ADDR_MAX][64];
        size_t nwant = 0;
        unsigned char bin[sizeof(struct in6_addr)];
        if (inet_pton(AF_INET, url->host, bin) == 1 || inet_pton(AF_INET6, url->host, bin) == 1) {
            size_t hl = strlen(url->host); /* an address literal: one tunnel (at most 45 characters) */
            if (hl < sizeof(want[0])) {
                memcpy(want[0], url->host, hl + 1);
                nwant = 1;
            }
        } else {
            local_addrs la;
            const char *reason = "";
            if (local_addrs_resolve(&la, url->host, &reason) > 0) {
                for (int k = 0; k < la.n && nwant < (size_t)c->opt->ha_connections; k++)
                    snprintf(want[nwant++], sizeof(want[0]), "%s", la.a[k].text);
            } else {
                LOG_WARN(LOG_EV_TUNNEL, "cannot resolve %s: %s (its tunnels stay as they are)", url->host, reason);
            }
        }
        size_t have = 0;
        for (size_t i = 0; i < c->nservers; i++) {
            client_server *srv = &c->servers[i];
            if (!srv->in_use || srv->retiring || srv->index != (int)u + 1)
                continue;
            if (nwant == 0) { /* unresolvable: keep what we have */
                have++;
                continue;
            }
            int found = 0;
            for (size_t k = 0; k < nwant; k++)
                found |= strcmp(want[k], srv->addr) == 0;
            if (found)
                have++;
            else
                retire(srv); /* gone from DNS (or the unresolved "" slot, now that it resolves) */
        }
        if (nwant == 0 && have == 0) {
            slot_open(c, u, ""); /* let lws resolve at each attempt, as with one URL before */
            continue;
        }
        for (size_t k = 0; k < nwant; k++) {
            int present = 0;
            for (size_t i = 0; i < c->nservers; i++) {
                client_server *srv = &c->servers[i];
                present |= srv->in_use && !srv->retiring && srv->index == (int)u + 1 && strcmp(srv->addr, want[k]) == 0;
            }
            if (!present)
                slot_open(c, u, want[k]);
        }
    }
    if (c->opt->resolve_interval_ms > 0 && !c->stopping)
        lws_sul_schedule(c->lws, 0, &c->resolve_sul, resolve_cb, (lws_usec_t)c->opt->resolve_interval_ms * 1000);
}
