/*
 * tunnelmux client — getting an upstream its local connection (like h2o's http1client connect
 * and socketpool lookup): an idle keep-alive connection of the current schema, or a fresh lws RAW
 * connection to the addresses of LOCAL_HOST in turn (resolve.h, re-resolved after
 * UPSTREAM_RESOLVE_TTL_MS), TLS for https local services (tls_membio.h), a schema probe while the
 * schema is unknown, and one retry on a fresh connection when a reused one was closed under the
 * request. Calls upstream_request.c, upstream_stream.c, upstream_pool.c (see upstream_stream.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/log.h"
#include "conn_pool.h"
#include "resolve.h"
#include "upstream_connect.h"
#include "upstream_pool.h"
#include "upstream_request.h"

/* The schema probe has its answer (|https| or not): remember it and open the real connection. */
void probe_decided(upstream *u, int https, const char *why)
{
    LOG_DEBUG(LOG_EV_STREAM, "stream %u: %s %s, using %s", u->id, u->c->local_desc, why, https ? "https" : "http");
    if (!u->c->schema_fixed)
        u->c->schema = https ? LOCAL_SCHEMA_HTTPS : LOCAL_SCHEMA_HTTP;
    u_detach(u);
    u->detecting = 0;
    u->detect_deadline = 0;
    u->attempt = 0; /* the address that answered is preferred now */
    u_connect(u);
}

void connect_failed(upstream *u, const char *why)
{
    if (!u->c->schema_fixed)
        u->c->schema = LOCAL_SCHEMA_DETECT; /* re-detect after a connect failure */
    u_reset(u, MUX_CODE_CONNECT_ERROR, why);
}

/* The connection to the current address failed before it was established (refused, unreachable):
 * try the next address of LOCAL_HOST, or fail the stream with CONNECT_ERROR when all were tried.
 * A refusal is final for that address: it is never retried with the other schema. */
void connect_next(upstream *u)
{
    client *c = u->c;
    u_detach(u);
    if (local_addrs_pick(&c->addrs, u->attempt + 1) != NULL) {
        LOG_DEBUG(LOG_EV_STREAM, "stream %u: %s %s, trying the next address", u->id, local_addrs_pick(&c->addrs, u->attempt)->text,
                  u->connect_timed_out ? "timed out" : "refused");
        u->attempt++;
        u_connect(u);
        return;
    }
    char why[640];
    if (u->connect_timed_out)
        snprintf(why, sizeof(why), "connecting to %s timed out after %lld ms (LOCAL_CONNECT_TIMEOUT)", c->local_desc,
                 (long long)c->opt->local_connect_timeout_ms);
    else
        snprintf(why, sizeof(why), "connection refused to %s", c->local_desc);
    c->addrs.resolved_ms = 0; /* resolve again next time */
    connect_failed(u, why);
}

void u_connect(upstream *u)
{
    client *c = u->c;
    u->sent_on_conn = 0;
    if (u->attempt == 0 && !u->no_pool && c->schema != LOCAL_SCHEMA_DETECT && c->pool.n > 0) {
        if (pool_take(c, c->schema == LOCAL_SCHEMA_HTTPS, &u->wsi, &u->tls)) {
            lws_set_wsi_user(u->wsi, u);
            lws_set_timeout(u->wsi, NO_PENDING_TIMEOUT, 0);
            u->detecting = 0;
            u->got_bytes = 0;
            u->reused = 1;
            upstream_set_state(u, U_REQUEST);
            flush_out(u);
            return;
        }
    }
    u->reused = 0;
    /* idle pooled connections count towards LOCAL_MAX_CONNECTIONS too: a fresh one replaces the
     * oldest idle one (of the other schema, or left over) when the budget is used up */
    if (c->lq.max_active > 0 && c->lq.active + c->pool.n > c->lq.max_active) {
        int64_t keep = c->lq.max_active - c->lq.active; /* < pool.n */
        conn_pool_trim(&c->pool, keep > 0 ? (int)keep : 0);
    }
    if (u->attempt == 0 && (c->addrs.n == 0 || clock_mono_ms() - c->addrs.resolved_ms > UPSTREAM_RESOLVE_TTL_MS)) {
        const char *reason = "";
        if (local_addrs_resolve(&c->addrs, c->opt->local_host, &reason) < 0) {
            char why[640];
            snprintf(why, sizeof(why), "cannot resolve %s: %s", c->opt->local_host, reason);
            connect_failed(u, why);
            return;
        }
        c->addrs.resolved_ms = clock_mono_ms();
    }
    const local_addr *a = local_addrs_pick(&c->addrs, u->attempt);
    if (a == NULL) {
        connect_next(u);
        return;
    }
    int https = c->schema != LOCAL_SCHEMA_HTTP;
    u->detecting = c->schema == LOCAL_SCHEMA_DETECT;
    u->got_bytes = 0;
    upstream_set_state(u, U_CONNECTING);
    u->connect_timed_out = 0;
    u->connect_deadline = clock_mono_ms() + c->opt->local_connect_timeout_ms;
    c->metrics.local_connects++;
    if (!u->opening) {
        u->opening = 1;
        conn_queue_open_begin(&c->lq);
    }
    u->opening_deadline = clock_mono_ms() + UPSTREAM_OPENING_MAX_MS;
    if (https) {
        u->tls = tls_membio_new(c->local_tls, c->opt->local_host, 0);
        if (u->tls == NULL) {
            u_reset(u, MUX_CODE_INTERNAL_ERROR, "out of memory");
            return;
        }
    }
    struct lws_client_connect_info ci;
    memset(&ci, 0, sizeof(ci));
    ci.context = c->lws;
    ci.address = a->text;
    ci.port = (int)c->opt->local_port;
    ci.path = "/";
    ci.host = c->opt->local_host;
    ci.method = "RAW";
    ci.local_protocol_name = "tm-upstream";
    ci.userdata = u;
    u->connect_sync = 1;
    u->sync_failed = 0;
    struct lws *wsi = lws_client_connect_via_info(&ci);
    u->connect_sync = 0;
    if (wsi == NULL || u->sync_failed) {
        u->wsi = NULL;
        connect_next(u);
        return;
    }
    if (u->wsi == NULL)
        u->wsi = wsi;
}

/* A reused keep-alive connection closed before any response byte (the local service closed it
 * while it was idle): the request goes once more on a fresh connection. */
void retry_fresh(upstream *u)
{
    LOG_DEBUG(LOG_EV_STREAM, "stream %u: reused connection to %s closed before the response, retrying on a new one", u->id,
              u->c->local_desc);
    u_detach(u);
    u->retried = 1;
    u->no_pool = 1;
    if (u->sent_on_conn > 0) {
        /* (part of) the head went to the dead connection: all of it goes first again, before the
         * body bytes still queued (none was written: a retry needs sent_on_conn <= req.len) */
        size_t head_tail = u->sent_on_conn < u->req.len ? u->req.len - (size_t)u->sent_on_conn : 0;
        size_t rest = u->out_len - u->out_off;
        if (head_tail > rest)
            head_tail = rest;
        uint8_t *nb = malloc(u->req.len + rest - head_tail + 1);
        if (nb == NULL) {
            u_reset(u, MUX_CODE_INTERNAL_ERROR, "out of memory");
            return;
        }
        memcpy(nb, u->req.buf, u->req.len);
        if (rest > head_tail)
            memcpy(nb + u->req.len, u->out + u->out_off + head_tail, rest - head_tail);
        free(u->out);
        u->out = nb;
        u->out_len = u->req.len + rest - head_tail;
        u->out_off = 0;
        u->out_cap = u->out_len + 1;
    }
    u->attempt = 0;
    u_connect(u);
}
