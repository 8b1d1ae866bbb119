/*
 * tunnelmux server — upgraded raw streams (WebSocket, kubectl exec pass-through; PROTOCOL.md §5.2
 * raw mode, §9.6; see proxy_stream.h). On a 101 the stream moves to a heap proxy_stream (|raw|),
 * because h2o_http1_upgrade() disposes of the request (and its pool object) before it hands over
 * the socket; that copy owns the public socket and pumps bytes both ways under credit. Moved out of
 * proxy.c (issue 17 §3).
 */
#include "server/proxy_stream.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/sockopt.h"
#include "common/log.h"
#include "server/metrics.h"
#include "h2o/http1.h"

static void raw_on_written(h2o_socket_t *sock, const char *err);
static void raw_on_read(h2o_socket_t *sock, const char *err);

static void raw_touch(proxy_stream *rs)
{
    if (rs->srv->opt->upgrade_idle_ms <= 0 || rs->sock == NULL)
        return;
    if (h2o_timeout_is_linked(&rs->idle_entry))
        h2o_timeout_unlink(&rs->idle_entry);
    h2o_timeout_link(rs->srv->ctx.loop, &rs->srv->upgrade_idle_timeout, &rs->idle_entry);
}

/* Closes the public socket (pending bytes are dropped) and frees |rs|; |rs| must be detached. */
static void raw_free(proxy_stream *rs)
{
    if (h2o_timeout_is_linked(&rs->idle_entry))
        h2o_timeout_unlink(&rs->idle_entry);
    if (rs->sock != NULL) {
        rs->sock->data = NULL;
        h2o_socket_close(rs->sock);
        rs->sock = NULL;
    }
    if (h2o_linklist_is_linked(&rs->all))
        h2o_linklist_unlink(&rs->all);
    resp_queue_free(&rs->q);
    free(rs);
}

/* Full close: resets the stream (when still open) and closes the public socket at once. */
static void raw_abort(proxy_stream *rs, unsigned code, const char *why)
{
    LOG_DEBUG(LOG_EV_STREAM, "upgraded stream %u (%s): closing: %s", rs->id, rs->name, why);
    tunnel *t = proxy_link_reset(rs, code, why);
    raw_free(rs);
    if (t != NULL)
        tunnel_flush(t);
}

/* Frees |rs| once the stream is gone and nothing is left to write. Returns 1 when freed. */
static int raw_maybe_finish(proxy_stream *rs)
{
    if (!rs->raw_closed || rs->upgrading || rs->raw_writing || rs->q.pend_len > 0)
        return 0;
    raw_free(rs);
    return 1;
}

/* Gives back big drained buffers: a burst must not leave an idle WebSocket holding megabytes
 * (h2o reads a socket until EAGAIN, so its input buffer grows to the kernel's receive buffer). */
static void raw_trim(proxy_stream *rs)
{
    resp_queue_trim(&rs->q, RAW_KEEP_CAP, rs->raw_writing);
    h2o_socket_t *sock = rs->sock;
    if (sock != NULL && sock->input->size == 0 && sock->input->bytes != NULL && sock->input->capacity > RAW_KEEP_CAP) {
        h2o_buffer_prototype_t *proto = sock->input->_prototype;
        h2o_buffer_dispose(&sock->input);
        h2o_buffer_init(&sock->input, proto);
    }
}

/* Writes what the client sent, or propagates its end once everything went out. May free |rs|. */
static void raw_send_more(proxy_stream *rs)
{
    if (rs->raw_writing || rs->sock == NULL)
        return;
    if (rs->q.pend_len > 0) {
        h2o_iovec_t bufs[ZC_MAX + 1]; /* one: raw streams copy (upgrade_stream_on_data) */
        size_t nbufs = response_take_pending(rs, bufs);
        rs->raw_writing = 1;
        h2o_socket_write(rs->sock, bufs, nbufs, raw_on_written);
        return;
    }
    if (rs->peer_fin && !rs->shut_wr) {
        rs->shut_wr = 1;
        if (rs->sock->ssl == NULL) {
            /* half-close: the user reads EOF and may go on sending */
            shutdown(h2o_socket_get_fd(rs->sock), SHUT_WR);
        } else if (!rs->raw_closed) {
            /* TLS cannot half-close here: end our direction and close (close_notify) */
            uint32_t id = rs->id;
            tunnel *t = proxy_link_detach(rs);
            rs->id = 0;
            if (t != NULL && id != 0 && !rs->end_sent)
                mux_session_end_stream(tunnel_session(t), id);
            else if (t != NULL && id != 0)
                mux_session_reset_stream(tunnel_session(t), id, MUX_CODE_CANCEL, "public TLS connection closed");
            rs->raw_closed = 1;
            raw_free(rs);
            if (t != NULL)
                tunnel_flush(t);
            return;
        }
    }
    raw_maybe_finish(rs);
}

static void raw_on_written(h2o_socket_t *sock, const char *err)
{
    proxy_stream *rs = sock->data;
    if (rs == NULL)
        return;
    size_t n = resp_queue_written(&rs->q);
    rs->raw_writing = 0;
    if (err != NULL) {
        raw_abort(rs, MUX_CODE_CANCEL, "public connection write failed");
        return;
    }
    tunnel *t = rs->tunnel;
    if (t != NULL && rs->id != 0 && n > 0)
        mux_session_consume(tunnel_session(t), rs->id, n); /* the bytes have left our hands */
    raw_touch(rs);
    if (rs->q.pend_len == 0)
        raw_trim(rs);
    raw_send_more(rs); /* may free rs */
    if (t != NULL)
        tunnel_flush(t);
}

/* Hands the user's bytes waiting in sock->input to the session while it takes them; pauses
 * reading when it does not (on_writable resumes); ends our direction after the user's EOF.
 * Returns 1 when |rs| was freed. */
int upgrade_stream_pump_input(proxy_stream *rs)
{
    h2o_socket_t *sock = rs->sock;
    tunnel *t = rs->tunnel;
    if (sock == NULL)
        return 0;
    if (t == NULL || rs->id == 0 || rs->end_sent) {
        h2o_buffer_consume(&sock->input, sock->input->size); /* nobody to take them */
        return 0;
    }
    for (int guard = 0; guard < 1024 && sock->input->size > 0; guard++) {
        size_t n = sock->input->size < BODY_SLICE ? sock->input->size : BODY_SLICE;
        ssize_t w = mux_session_write(tunnel_session(t), rs->id, (const uint8_t *)sock->input->bytes, n);
        if (w == MUX_ERR_AGAIN)
            break;
        if (w < 0) {
            raw_abort(rs, MUX_CODE_INTERNAL_ERROR, "stream write failed");
            return 1;
        }
        ratelimit_charge(tunnel_rate_bytes(t), (double)w, server_now(rs->srv));
        h2o_buffer_consume(&sock->input, (size_t)w);
    }
    if (sock->input->size > 0) {
        if (!rs->read_paused && !rs->user_eof) {
            rs->read_paused = 1;
            h2o_socket_read_stop(sock);
        }
    } else if (rs->user_eof) {
        rs->end_sent = 1;
        mux_session_end_stream(tunnel_session(t), rs->id); /* may close the stream: rs freed */
        tunnel_flush(t);
        return 1;
    } else {
        raw_trim(rs);
        if (rs->read_paused) {
            rs->read_paused = 0;
            h2o_socket_read_start(sock, raw_on_read);
        }
    }
    tunnel_flush(t);
    return 0;
}

static void raw_on_read(h2o_socket_t *sock, const char *err)
{
    proxy_stream *rs = sock->data;
    if (rs == NULL)
        return;
    raw_touch(rs);
    if (err != NULL) {
        h2o_socket_read_stop(sock);
        if (err != h2o_socket_error_closed) {
            raw_abort(rs, MUX_CODE_CANCEL, err);
            return;
        }
        rs->user_eof = 1;
        LOG_DEBUG(LOG_EV_STREAM, "upgraded stream %u (%s): public user half-closed", rs->id, rs->name);
        if (rs->raw_closed || rs->tunnel == NULL) {
            raw_abort(rs, MUX_CODE_CANCEL, "public client went away");
            return;
        }
    }
    upgrade_stream_pump_input(rs);
}

static void on_raw_idle(h2o_timeout_entry_t *e)
{
    proxy_stream *rs = H2O_STRUCT_FROM_MEMBER(proxy_stream, idle_entry, e);
    LOG_INFO(LOG_EV_STREAM, "upgraded stream %u (%s): idle for UPGRADE_IDLE_TIMEOUT, closing", rs->id, rs->name);
    raw_abort(rs, MUX_CODE_TIMEOUT, "upgraded connection idle for UPGRADE_IDLE_TIMEOUT");
}

static void on_upgraded(void *user_data, h2o_socket_t *sock, size_t reqsize)
{
    proxy_stream *rs = user_data;
    rs->upgrading = 0;
    if (sock == NULL) {
        raw_abort(rs, MUX_CODE_CANCEL, "public client went away before the 101 was written");
        return;
    }
    h2o_buffer_consume(&sock->input, reqsize);
    rs->sock = sock;
    sock->data = rs;
    if (rs->aborted) { /* the stream was reset or the tunnel lost meanwhile */
        raw_free(rs);
        return;
    }
    sockopt_set_nodelay(h2o_socket_get_fd(sock));
    LOG_DEBUG(LOG_EV_STREAM, "upgraded stream %u (%s): raw mode", rs->id, rs->name);
    raw_touch(rs);
    tunnel *t = rs->tunnel;
    h2o_socket_read_start(sock, raw_on_read);
    if (sock->input->size > 0 && upgrade_stream_pump_input(rs))
        return;
    raw_send_more(rs); /* bytes that arrived meanwhile; may free rs */
    if (t != NULL)
        tunnel_flush(t);
}

/* The local service switched protocols: write the 101 and take the socket (see the top). */
void upgrade_stream_start(proxy_stream *ps, const mux_head *head)
{
    h2o_req_t *req = ps->req;
    tunnel *t = ps->tunnel;
    if (h2o_timeout_is_linked(&ps->head_timeout))
        h2o_timeout_unlink(&ps->head_timeout);
    proxy_stream *rs = t != NULL ? calloc(1, sizeof(*rs)) : NULL;
    if (rs == NULL) {
        proxy_link_reset(ps, MUX_CODE_INTERNAL_ERROR, "out of memory");
        response_fail_before_head(ps, MUX_CODE_INTERNAL_ERROR, "out of memory");
        return;
    }
    rs->srv = ps->srv;
    memcpy(rs->name, ps->name, sizeof(rs->name));
    rs->raw = 1;
    rs->upgrading = 1;
    response_set_state(rs, PROXY_RESP_STARTED);
    rs->idle_entry.cb = on_raw_idle;
    rs->tunnel = t;
    rs->id = ps->id;
    if (h2o_linklist_is_linked(&ps->all)) /* the heap copy is the request in progress from now on */
        h2o_linklist_unlink(&ps->all);
    h2o_linklist_insert(&rs->srv->proxies, &rs->all);
    if (h2o_linklist_is_linked(&ps->link))
        h2o_linklist_unlink(&ps->link);
    tunnel_add_stream(t, &rs->link);
    mux_session_set_stream_user_data(tunnel_session(t), rs->id, rs);
    ps->tunnel = NULL;
    ps->id = 0;
    response_set_state(ps, PROXY_RESP_FINAL_SENT);

    response_set_head(req, head, "Switching Protocols");
    req->res.status = 101;
    req->res.content_length = SIZE_MAX;
    h2o_http1_upgrade(req, NULL, 0, on_upgraded, rs);
}

void upgrade_stream_on_data(proxy_stream *rs, const uint8_t *data, size_t len)
{
    if (rs->peer_fin || rs->shut_wr) {
        if (rs->tunnel != NULL && rs->id != 0)
            mux_session_consume(tunnel_session(rs->tunnel), rs->id, len);
        return;
    }
    if (resp_queue_append_copy(&rs->q, data, len) != 0) {
        if (rs->upgrading) { /* on_upgraded frees */
            rs->aborted = rs->raw_closed = 1;
            tunnel *t = proxy_link_reset(rs, MUX_CODE_INTERNAL_ERROR, "out of memory");
            if (t != NULL)
                tunnel_flush(t);
        } else {
            raw_abort(rs, MUX_CODE_INTERNAL_ERROR, "out of memory");
        }
        return;
    }
    if (rs->tunnel != NULL)
        ratelimit_charge(tunnel_rate_bytes(rs->tunnel), (double)len, server_now(rs->srv)); /* RATE_LIMIT_BPS counts raw bytes too */
    raw_touch(rs);
    raw_send_more(rs);
}

void upgrade_stream_on_end(proxy_stream *rs)
{
    rs->peer_fin = 1;
    LOG_DEBUG(LOG_EV_STREAM, "upgraded stream %u (%s): client ended its direction", rs->id, rs->name);
    raw_send_more(rs); /* may free rs */
}

/* The stream is gone (NO_ERROR: both directions ended) or the tunnel was lost; |rs| is detached. */
void upgrade_stream_on_close(proxy_stream *rs, unsigned code)
{
    rs->raw_closed = 1;
    if (code != MUX_CODE_NO_ERROR) {
        rs->aborted = 1;
        rs->q.pend_len = 0;
    }
    if (rs->upgrading)
        return; /* on_upgraded finishes */
    if (rs->aborted) {
        raw_free(rs);
        return;
    }
    raw_send_more(rs); /* drains, shuts down, frees */
}
