/*
 * tunnelmux client — one local connection per stream: the entry points. The tunnel's session
 * callbacks (a stream's head, request body, end, close, room to write), the lws callback of local
 * connections, and the two timer handlers (an upstream's deadlines; freed connection slots). The
 * work is done by the nouns below them (upstream_stream.h): connecting (upstream_connect.c), the
 * request writer (upstream_request.c), the response relay (upstream_response.c), the lifecycle
 * (upstream_stream.c), idle keep-alive connections (upstream_pool.c, conn_pool.c).
 *
 * Lifetime: an upstream lives from on_head until on_stream_close (the stream) AND until no entry
 * point is running on it (|busy|); its lws connection is detached (user pointer NULL) and closed
 * when it is freed, or forgotten when lws closes it first.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/sockopt.h"
#include "conn_queue.h"
#include "resolve.h"
#include "tls_membio.h"
#include "upstream.h"
#include "upstream_connect.h"
#include "upstream_pool.h"
#include "upstream_request.h"
#include "upstream_response.h"
#include "upstream_stream.h"

static void set_nodelay(struct lws *wsi)
{
    int fd = lws_get_socket_fd(wsi);
    if (fd >= 0)
        sockopt_set_nodelay(fd);
}

/* ---------------------------------------------------------------- timers */

static void u_timer_cb(lws_sorted_usec_list_t *sul)
{
    upstream *u = lws_container_of(sul, upstream, sul);
    u_hold(u);
    int64_t now = clock_mono_ms();
    if (u->opening && now >= u->opening_deadline)
        opening_end(u);
    if (u->write_deadline > 0 && now >= u->write_deadline) {
        write_stalled(u);
    } else if (u->detecting && !u->got_bytes && u->detect_deadline > 0 && now >= u->detect_deadline) {
        probe_decided(u, 0, "stayed silent after a TLS ClientHello");
    } else if (u->state < U_BODY && now >= u->head_deadline) {
        char why[640];
        if (u->state == U_QUEUED)
            snprintf(why, sizeof(why), "no local connection to %s became free within %lld s (%lld in use, LOCAL_MAX_CONNECTIONS)",
                     u->c->local_desc, (long long)(u->c->opt->read_timeout_ms / 1000), (long long)u->c->lq.active);
        else
            snprintf(why, sizeof(why), "local service %s did not answer within %lld s", u->c->local_desc,
                     (long long)(u->c->opt->read_timeout_ms / 1000));
        u_reset(u, MUX_CODE_TIMEOUT, why);
    } else if (u_connecting(u) && now >= u->connect_deadline) {
        u->c->metrics.local_connect_timeouts++;
        u->connect_timed_out = 1;
        u->connect_deadline = 0;
        LOG_DEBUG(LOG_EV_STREAM, "stream %u: connect to %s timed out after %lld ms (LOCAL_CONNECT_TIMEOUT)", u->id,
                  u->c->local_desc, (long long)u->c->opt->local_connect_timeout_ms);
        connect_next(u);
    }
    if (!u->dead)
        u_arm_timer(u);
    u_release(u);
}

/* ---------------------------------------------------------------- mux callbacks */

static void lq_dispatch_cb(lws_sorted_usec_list_t *sul);

static const upstream_timer_handlers timer_handlers = {
    .deadline = u_timer_cb,
    .slots_free = lq_dispatch_cb,
};

/* EXPECT_CONTINUE_TIMEOUT passed without a 100 or a final head from the local service. */
static void on_expect_timeout(continue_relay *cr)
{
    upstream *u = lws_container_of(cr, upstream, expect);
    u_hold(u);
    mux_session *s = u_session(u);
    if (s != NULL && !u->dead && continue_relay_synthesize(cr, s, u->id) != 0)
        u_reset(u, MUX_CODE_INTERNAL_ERROR, "cannot send 100 Continue");
    u_release(u);
}

int upstream_on_head(mux_session *s, uint32_t id, const mux_head *head, void *stream_user_data, void *user_data)
{
    upstream_host *h = user_data;
    client *c = h->c;
    c->metrics.requests++;
    upstream *u = calloc(1, sizeof(*u));
    if (u == NULL) {
        mux_session_reset_stream(s, id, MUX_CODE_INTERNAL_ERROR, "out of memory");
        return 0;
    }
    const char *reason = "";
    int r = http1_build_request(head, c->host_mode, c->host_value, &u->req, &reason);
    if (r != 0) {
        LOG_WARN(LOG_EV_STREAM, "stream %u: invalid request head from server: %s", id, reason);
        free(u);
        mux_session_reset_stream(s, id, r == MUX_ERR_NOMEM ? MUX_CODE_INTERNAL_ERROR : MUX_CODE_PROTOCOL_ERROR, reason);
        return 0;
    }
    u->c = c;
    u->host = h;
    u->ops = h->ops;
    u->timers = &timer_handlers;
    u->id = id;
    u->head_request = head->method.len == 4 && memcmp(head->method.base, "HEAD", 4) == 0;
    u->head_deadline = clock_mono_ms() + c->opt->read_timeout_ms;
    client_link_push_front(&h->streams, &u->link);
    mux_session_set_stream_user_data(s, id, u);
    if (continue_relay_wanted(s, head))
        continue_relay_start(&u->expect, c->lws, c->opt->expect_timeout_ms, on_expect_timeout);
    LOG_DEBUG(LOG_EV_STREAM, "stream %u: %.*s %.*s%s", id, (int)head->method.len, (const char *)head->method.base,
              (int)head->path.len, (const char *)head->path.base, (head->flags & MUX_HEAD_UPGRADE) ? " (upgrade)" : "");
    u_hold(u);
    if (out_add(u, u->req.buf, u->req.len) == 0) {
        switch (conn_queue_acquire(&c->lq, &u->qw, lq_idle(c), clock_mono_ms())) {
        case CONN_QUEUE_GRANTED:
            u->has_slot = 1;
            u_connect(u);
            break;
        case CONN_QUEUE_WAITING:
            /* the request head (and up to STREAM_WINDOW of body) waits in |out|; no credit returns
             * until it is written, so the server holds the rest of the body (PROTOCOL.md §6) */
            LOG_DEBUG(LOG_EV_STREAM, "stream %u: queued for a local connection (%lld in use, %lld opening, %lld waiting)", id,
                      (long long)c->lq.active, (long long)c->lq.opening, (long long)c->lq.queued);
            break;
        case CONN_QUEUE_FULL: {
            char why[640];
            snprintf(why, sizeof(why), "local service %s busy: %lld connections in use, %lld requests queued (LOCAL_QUEUE_MAX)",
                     c->local_desc, (long long)c->lq.active, (long long)c->lq.queued);
            if (c->lq.burst_refused == 1)
                LOG_WARN(LOG_EV_STREAM, "%s: refusing requests with 503 until the queue drains", why);
            u_reset(u, MUX_CODE_ENHANCE_YOUR_CALM, why);
            break;
        }
        }
        if (!u->dead)
            u_arm_timer(u);
    }
    u_release(u);
    return 0;
}

/* Hands the slots freed since the last run to the waiting streams, oldest first. */
static void lq_dispatch_cb(lws_sorted_usec_list_t *sul)
{
    client *c = lws_container_of(sul, client, lq_sul);
    int64_t now = clock_mono_ms(), wait = 0;
    conn_waiter *w;
    for (int guard = 0; guard < 100000 && (w = conn_queue_next(&c->lq, lq_idle(c), now, &wait)) != NULL; guard++) {
        upstream *u = (upstream *)((char *)w - offsetof(upstream, qw));
        u->has_slot = 1;
        u->queued_ms = wait;
        if (u->dead) { /* cannot happen (u_free cancels), but never leak the slot */
            slot_release(u);
            continue;
        }
        u_hold(u);
        LOG_DEBUG(LOG_EV_STREAM, "stream %u: local connection slot after %lld ms in the queue", u->id, (long long)wait);
        u_connect(u);
        if (!u->dead)
            u_arm_timer(u);
        u_release(u);
    }
    uint64_t refused = conn_queue_burst_over(&c->lq);
    if (refused > 0)
        LOG_WARN(LOG_EV_STREAM, "local service %s: queue drained; %llu requests were refused with 503 (LOCAL_QUEUE_MAX=%lld)",
                 c->local_desc, (unsigned long long)refused, (long long)c->lq.max_queued);
}

int upstream_on_data(mux_session *s, uint32_t id, const uint8_t *data, size_t len, void *stream_user_data, void *user_data)
{
    upstream *u = stream_user_data;
    if (u == NULL || u->dead) {
        mux_session_consume(s, id, len);
        return 0;
    }
    u_hold(u);
    if (u->req.body == HTTP1_REQ_BODY_NONE ||
        (u->req.body == HTTP1_REQ_BODY_LENGTH && u->req_body_seen + len > u->req.content_length)) {
        u_reset(u, MUX_CODE_PROTOCOL_ERROR, "request body longer than announced");
        u_release(u);
        return 0;
    }
    u->req_body_seen += len;
    if (u->state == U_DONE && u->wsi == NULL) {
        mux_session_consume(s, id, len); /* nobody to write to any more: discard */
        u_release(u);
        return 0;
    }
    int rv = 0;
    if (u->req.body == HTTP1_REQ_BODY_CHUNKED) {
        char ch[24];
        size_t hl = http1_chunk_header(ch, len);
        rv = out_add(u, ch, hl);
        if (rv == 0)
            rv = out_add(u, data, len);
        if (rv == 0)
            rv = out_add(u, HTTP1_CHUNK_TRAILER, 2);
    } else {
        rv = out_add(u, data, len);
    }
    if (rv == 0) {
        u->out_consume += len;
        /* DATA records arrive a few KiB at a time: gather the turn's records into one write */
        if (u->out_len - u->out_off >= UPSTREAM_WRITE_NOW)
            flush_out(u);
        else
            flushq_add(u);
    }
    u_release(u);
    return 0;
}

void upstream_flush_queued(client *c)
{
    if (c->flushq.next == NULL)
        return;
    for (int guard = 0; guard < 100000 && c->flushq.next != &c->flushq; guard++) {
        upstream *u = (upstream *)((char *)c->flushq.next - offsetof(upstream, flushq));
        flushq_remove(u);
        if (u->dead)
            continue;
        u_hold(u);
        flush_out(u);
        u_release(u);
    }
}

int upstream_on_end(mux_session *s, uint32_t id, void *stream_user_data, void *user_data)
{
    upstream *u = stream_user_data;
    if (u == NULL || u->dead)
        return 0;
    u_hold(u);
    u->req_fin = 1;
    switch (u->req.body) {
    case HTTP1_REQ_BODY_CHUNKED:
        if (out_add(u, HTTP1_LAST_CHUNK, 5) == 0)
            flush_out(u);
        break;
    case HTTP1_REQ_BODY_LENGTH:
        if (u->req_body_seen != u->req.content_length)
            u_reset(u, MUX_CODE_PROTOCOL_ERROR, "request body shorter than announced");
        break;
    case HTTP1_REQ_BODY_RAW:
        u->need_shutdown = 1;
        flush_out(u);
        break;
    default:
        break;
    }
    u_release(u);
    return 0;
}

void upstream_on_stream_close(mux_session *s, uint32_t id, unsigned code, const char *reason, int by_peer, void *stream_user_data,
                              void *user_data)
{
    upstream *u = stream_user_data;
    if (u == NULL)
        return;
    LOG_DEBUG(LOG_EV_STREAM, "stream %u: closed (%s%s%s%s)", id, mux_code_name(code), reason[0] ? ": " : "", reason,
              by_peer ? ", by server" : "");
    u->dead = 1;
    if (u->link.next != NULL)
        client_link_remove(&u->link);
    u->host = NULL;
    if (u->busy == 0)
        u_free(u);
}

void upstream_on_writable(mux_session *s, uint32_t id, void *stream_user_data, void *user_data)
{
    upstream *u = stream_user_data;
    if (u == NULL || u->dead || (u->pend_len == 0 && !u->paused))
        return;
    u_hold(u);
    size_t off = 0;
    while (off < u->pend_len) {
        ssize_t k = mux_session_write(s, id, u->pend + off, u->pend_len - off);
        if (k == MUX_ERR_AGAIN)
            break;
        if (k < 0) {
            u_reset(u, MUX_CODE_INTERNAL_ERROR, "cannot write to the stream");
            break;
        }
        off += (size_t)k;
    }
    if (!u->dead) {
        if (off > 0) {
            memmove(u->pend, u->pend + off, u->pend_len - off);
            u->pend_len -= off;
        }
        if (u->pend_len == 0) {
            if (u->end_pending) {
                u->end_pending = 0;
                response_complete(u);
            } else if (u->paused && mux_session_write_room(s, id) < CLIENT_IO_BUF && mux_session_want_writable(s, id) == 0) {
                /* not room for a whole read yet: wait for the next wake */
            } else if (u->paused) {
                u->paused = 0;
                if (u->tls != NULL && drain_tls(u) != 0 && !u->dead && u->wsi != NULL)
                    lws_set_timeout(u->wsi, 1, LWS_TO_KILL_ASYNC);
                if (!u->paused && u->wsi != NULL)
                    lws_rx_flow_control(u->wsi, 1);
            }
        }
    }
    u_release(u);
}

void upstream_abandon(client_link *l)
{
    upstream *u = (upstream *)l;
    client_link_remove(l);
    u->host = NULL;
    u->dead = 1;
    if (u->busy == 0)
        u_free(u);
}

/* ---------------------------------------------------------------- lws callback */

/* The local connection closed (or failed). */
static void on_local_close(upstream *u, const char *conn_error)
{
    char why[640];
    u->wsi = NULL;
    if (u->dead)
        return;
    if (conn_error != NULL || u->state == U_CONNECTING) {
        connect_next(u);
        return;
    }
    if (u->detecting && !u->got_bytes) {
        probe_decided(u, 0, "closed the connection after a TLS ClientHello");
        return;
    }
    switch (u->state) {
    case U_QUEUED:
    case U_CONNECTING:
        break;
    case U_TLS:
        snprintf(why, sizeof(why), "%s with %s", u->tls ? tls_membio_error(u->tls) : "TLS handshake failed", u->c->local_desc);
        connect_failed(u, why);
        break;
    case U_REQUEST:
        if (u->reused && !u->got_bytes && !u->retried && u->sent_on_conn <= u->req.len) {
            retry_fresh(u);
            break;
        }
        u_reset(u, MUX_CODE_UPSTREAM_ERROR, "local service closed the connection without a response");
        break;
    case U_BODY:
        if (u->body == HTTP1_RESP_BODY_CLOSE)
            response_complete(u);
        else
            u_reset(u, MUX_CODE_UPSTREAM_ERROR, "local service closed the connection before the end of the response");
        break;
    case U_RAW:
        response_complete(u);
        break;
    case U_DONE:
        break;
    }
}

/* Ends an lws callback on |wsi|: u_release(u), and |rv| unless the connection was just moved to
 * the pool by the release (then lws must keep it open). */
static int u_release_rv(upstream *u, struct lws *wsi, int rv)
{
    if (u_release(u) && rv != 0 && lws_get_opaque_user_data(wsi) != NULL)
        return 0;
    return rv;
}

int upstream_lws_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
    upstream *u = user;
    int rv = 0;
    if (u == NULL && wsi != NULL) {
        upool_conn *e = pool_conn_of(wsi);
        if (e != NULL)
            return pool_callback(e, reason);
    }
    switch (reason) {
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
        if (u == NULL)
            return 0;
        lws_set_wsi_user(wsi, NULL);
        if (u->connect_sync) {
            u->sync_failed = 1;
            return 0;
        }
        u_hold(u);
        LOG_DEBUG(LOG_EV_STREAM, "stream %u: connect to %s failed: %s", u->id, u->c->local_desc, in ? (const char *)in : "");
        on_local_close(u, in ? (const char *)in : "error");
        u_release(u);
        return 0;
    case LWS_CALLBACK_RAW_CONNECTED:
    case LWS_CALLBACK_RAW_ADOPT:
        if (u == NULL || u->state != U_CONNECTING)
            return 0;
        u_hold(u);
        u->wsi = wsi;
        set_nodelay(wsi);
        local_addrs_prefer(&u->c->addrs, u->attempt);
        u->attempt = 0;
        if (u->detecting) {
            /* Schema probe: a TLS ClientHello followed by an empty line. A TLS server answers the
             * ClientHello (handshake 0x16 or alert 0x15) before it reads further; a plain HTTP
             * server gets a complete (bad) request and answers 400 or closes at once, instead of
             * waiting for the end of a request line that never comes. */
            upstream_set_state(u, U_TLS);
            uint8_t probe[4096];
            size_t k = tls_membio_take(u->tls, probe, sizeof(probe) - 4);
            memcpy(probe + k, "\r\n\r\n", 4);
            if (k == 0 || lws_write(wsi, probe, k + 4, LWS_WRITE_RAW) < 0)
                rv = -1;
            u->detect_deadline = clock_mono_ms() + UPSTREAM_DETECT_MS;
            u_arm_timer(u);
        } else if (u->tls != NULL) {
            upstream_set_state(u, U_TLS);
            if (local_write(u, NULL, 0) != 0)
                rv = -1;
        } else {
            upstream_set_state(u, U_REQUEST);
            flush_out(u);
        }
        u_release(u);
        return rv;
    case LWS_CALLBACK_RAW_RX:
        if (u == NULL)
            return -1;
        u_hold(u);
        opening_end(u); /* the local service accepted this connection */
        if (u->tls == NULL) {
            u->got_bytes = 1;
            rv = on_local_plain(u, in, len);
        } else {
            if (u->detecting) {
                if (len == 0) {
                    u_release(u);
                    return 0;
                }
                unsigned char b = *(unsigned char *)in;
                if (b == 0x16 || b == 0x15)
                    probe_decided(u, 1, "answered a TLS ClientHello"); /* detaches this wsi */
                else
                    probe_decided(u, 0, "answered a TLS ClientHello in plaintext");
                u_release(u);
                return -1;
            }
            u->got_bytes = 1;
            if (tls_membio_feed(u->tls, in, len) != 0) {
                rv = -1;
            } else if (u->state == U_TLS) {
                int r = tls_membio_handshake(u->tls);
                if (local_write(u, NULL, 0) != 0 || r < 0) {
                    char why[640];
                    snprintf(why, sizeof(why), "%s with %s", tls_membio_error(u->tls), u->c->local_desc);
                    connect_failed(u, why);
                    rv = -1;
                } else if (r == 1) {
                    upstream_set_state(u, U_REQUEST);
                    flush_out(u);
                }
            }
            if (rv == 0 && u->state >= U_REQUEST && drain_tls(u) != 0)
                rv = u->dead ? -1 : 0;
            if (rv == 0 && !u->dead && u->wsi != NULL && local_write(u, NULL, 0) != 0)
                rv = -1;
        }
        if (u->dead)
            rv = -1;
        return u_release_rv(u, wsi, rv);
    case LWS_CALLBACK_RAW_WRITEABLE:
        if (u == NULL)
            return -1;
        u_hold(u);
        if (u->write_deadline > 0)
            u->write_deadline = clock_mono_ms() + u->c->opt->write_timeout_ms; /* lws drained its buffer: progress */
        if (flush_out(u) != 0)
            rv = -1;
        track_write(u, 1);
        return u_release_rv(u, wsi, rv);
    case LWS_CALLBACK_RAW_CLOSE:
    case LWS_CALLBACK_WSI_DESTROY:
        if (u == NULL || u->wsi != wsi)
            return 0;
        lws_set_wsi_user(wsi, NULL);
        u_hold(u);
        on_local_close(u, NULL);
        u_release(u);
        return 0;
    default:
        return 0;
    }
}
