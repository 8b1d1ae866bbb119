/*
 * tunnelmux client — one upstream's lifecycle: its state, entry points holding it (u_hold /
 * u_release), reset and free, the local connection budget it takes part in (LOCAL_MAX_CONNECTIONS
 * slots, LOCAL_MAX_CONNECTING openings, conn_queue.h), the end-of-turn flush queue and its timer.
 * The bottom of the upstream files: it calls only upstream_pool.c and the libraries (see
 * upstream_stream.h).
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include "common/clock.h"
#include "common/log.h"
#include "conn_queue.h"
#include "upstream_pool.h"
#include "upstream_stream.h"

/* The name of |st| for logs. */
const char *upstream_state_to_str(upstream_state st)
{
    switch (st) {
    case U_QUEUED:
        return "queued";
    case U_CONNECTING:
        return "connecting";
    case U_TLS:
        return "tls";
    case U_REQUEST:
        return "request";
    case U_BODY:
        return "body";
    case U_RAW:
        return "raw";
    case U_DONE:
        return "done";
    }
    return "?";
}

/* The one place an upstream changes state. */
void upstream_set_state(upstream *u, upstream_state st)
{
    if (u->state != st)
        LOG_DEBUG(LOG_EV_STREAM, "stream %u: %s -> %s", u->id, upstream_state_to_str(u->state), upstream_state_to_str(st));
    u->state = st;
}

/* 1 when the local connection of |u| can carry another request: the request went out completely,
 * the final response ended cleanly with a known length (or chunked end), nothing followed it, and
 * neither side asked to close. Never for upgraded streams. */
static int u_reusable(const upstream *u)
{
    if (u->wsi == NULL || u->failed || u->no_reuse || !u->keep_alive || u->state != U_DONE || u->detecting)
        return 0;
    if (u->end_pending || u->pend_len > 0 || u->out_len > u->out_off || u->need_shutdown || u->req.body == HTTP1_REQ_BODY_RAW)
        return 0;
    if (u->req.body != HTTP1_REQ_BODY_NONE && !u->req_fin)
        return 0;
    if (u->req.body == HTTP1_REQ_BODY_LENGTH && u->req_body_seen != u->req.content_length)
        return 0;
    return u->tls == NULL || !lws_partial_buffered(u->wsi);
}

void flushq_remove(upstream *u)
{
    client_link_remove(&u->flushq);
}

/* Queues |u| for upstream_flush_queued() at the end of the loop turn. */
void flushq_add(upstream *u)
{
    client *c = u->c;
    if (u->flushq.next != NULL)
        return;
    if (c->flushq.next == NULL)
        client_link_init(&c->flushq);
    client_link_push_back(&c->flushq, &u->flushq);
    u->ops->want_flush(c);
}

/* A slot may have become free: hand it to the oldest waiting stream after this callback (never
 * from inside another stream's callback, so no stream starts connecting while another is torn
 * down). */
static void lq_kick(upstream *u)
{
    client *c = u->c;
    if (c->lws == NULL || c->lq_closed)
        return; /* (while draining on SIGTERM the queue is still served: those requests are in flight) */
    lws_sul_schedule(c->lws, 0, &c->lq_sul, u->timers->slots_free, 0);
}

/* An idle keep-alive connection can serve the next stream without opening one (pool_take may still
 * find only connections of the other schema: then one more opens than LOCAL_MAX_CONNECTING). */
int lq_idle(const client *c)
{
    return c->pool.n > 0 && c->schema != LOCAL_SCHEMA_DETECT;
}

/* The connection of |u| stops counting as opening: it answered, closed, or waited long enough. */
void opening_end(upstream *u)
{
    if (!u->opening)
        return;
    u->opening = 0;
    u->opening_deadline = 0;
    conn_queue_open_end(&u->c->lq);
    lq_kick(u);
}

/* |u| gives its local connection slot back (its connection is pooled, closed, or upgraded). */
void slot_release(upstream *u)
{
    if (!u->has_slot)
        return;
    u->has_slot = 0;
    conn_queue_release(&u->c->lq);
    lq_kick(u);
}

void u_free(upstream *u)
{
    flushq_remove(u);
    lws_sul_cancel(&u->sul);
    continue_relay_stop(&u->expect);
    if (conn_queue_cancel(&u->c->lq, &u->qw, clock_mono_ms()))
        lq_kick(u); /* (no slot freed, but the queue may have drained: end of a refusal burst) */
    opening_end(u);
    if (u->upgraded) {
        u->upgraded = 0;
        u->c->local_upgraded--;
    }
    if (u->wsi != NULL && u_reusable(u) && pool_put(u->c, u->wsi, u->tls, u->paused)) {
        u->wsi = NULL; /* the pool owns the connection now */
        u->tls = NULL;
    }
    if (u->wsi != NULL) {
        lws_set_wsi_user(u->wsi, NULL);
        lws_set_timeout(u->wsi, 1, LWS_TO_KILL_ASYNC);
        u->wsi = NULL;
    }
    slot_release(u); /* after pool_put: the next waiter takes the pooled connection */
    tls_membio_del(u->tls);
    free(u->req.buf);
    free(u->out);
    free(u->hbuf);
    free(u->resp);
    free(u->pend);
    free(u);
}

void u_hold(upstream *u)
{
    u->busy++;
}

/* Ends an entry point; frees |u| when it died meanwhile. Returns 1 when freed. */
int u_release(upstream *u)
{
    /* u->host is already NULL after a reset or a clean end: the last frames (CLOSE, or a head with
     * END_STREAM that closed the stream) still need a flush, so kick the client's tunnel even when
     * |u| is freed here (all of them: |u| no longer says which one it was on). */
    client *c = u->c;
    const upstream_host_ops *ops = u->ops;
    int freed = 0;
    if (--u->busy == 0 && u->dead) {
        u_free(u);
        freed = 1;
    }
    ops->kick_all(c);
    return freed;
}

mux_session *u_session(upstream *u)
{
    return u->host ? u->host->ops->session(u->host) : NULL;
}

/* Aborts the stream (CLOSE |code|); on_stream_close marks |u| dead. */
void u_reset(upstream *u, unsigned code, const char *reason)
{
    if (u->dead)
        return;
    LOG_DEBUG(LOG_EV_STREAM, "stream %u: %s (%s)", u->id, reason, mux_code_name(code));
    u->failed = 1;
    u->c->metrics.stream_resets++;
    mux_session *s = u_session(u);
    if (s != NULL)
        mux_session_reset_stream(s, u->id, code, reason);
    u->dead = 1; /* in case on_stream_close did not come (unknown stream) */
    if (u->link.next != NULL)
        client_link_remove(&u->link);
    u->host = NULL;
}

/* The current attempt is establishing its connection (LOCAL_CONNECT_TIMEOUT applies): TCP
 * connect, or the TLS handshake of an https local service (a schema probe has its own deadline). */
int u_connecting(const upstream *u)
{
    return u->connect_deadline > 0 && (u->state == U_CONNECTING || (u->state == U_TLS && !u->detecting));
}

void u_arm_timer(upstream *u)
{
    int64_t next = -1;
    if (u->state < U_BODY)
        next = u->head_deadline;
    if (u_connecting(u) && (next < 0 || u->connect_deadline < next))
        next = u->connect_deadline;
    if (u->opening && (next < 0 || u->opening_deadline < next))
        next = u->opening_deadline;
    if (u->detecting && !u->got_bytes && u->detect_deadline > 0 && (next < 0 || u->detect_deadline < next))
        next = u->detect_deadline;
    if (u->write_deadline > 0 && (next < 0 || u->write_deadline < next))
        next = u->write_deadline;
    if (next < 0) {
        lws_sul_cancel(&u->sul);
        return;
    }
    int64_t delay = next - clock_mono_ms();
    if (delay < 0)
        delay = 0;
    lws_sul_schedule(u->c->lws, 0, &u->sul, u->timers->deadline, (lws_usec_t)delay * 1000);
}

/* Drops the current local connection (its callbacks no longer reach |u|). */
void u_detach(upstream *u)
{
    opening_end(u);
    if (u->wsi != NULL) {
        lws_set_wsi_user(u->wsi, NULL);
        lws_set_timeout(u->wsi, 1, LWS_TO_KILL_ASYNC);
        u->wsi = NULL;
    }
    tls_membio_del(u->tls);
    u->tls = NULL;
}
