/*
 * tunnelmux client — the request towards the local service (like h2o's http1client writing
 * side): the request head rebuilt by http1.c and the body DATA wait in |out| until the socket
 * takes them, written straight to the socket (plain) or through TLS (raw_conn.h); the body's
 * credit returns to the server as its bytes leave (PROTOCOL.md §6). WRITE_TIMEOUT watches a local
 * service that stops reading. Calls only upstream_stream.c and the libraries (see
 * upstream_stream.h).
 */
#include <errno.h>
#include <stdio.h>
#include <sys/socket.h>

#include "common/clock.h"
#include "common/log.h"
#include "raw_conn.h"
#include "upstream_request.h"

int out_add(upstream *u, const void *p, size_t n)
{
    if (u->out_off > 0 && (u->out_off == u->out_len || u->out_off >= u->out_cap / 2)) {
        memmove(u->out, u->out + u->out_off, u->out_len - u->out_off); /* what is left goes to the front */
        u->out_len -= u->out_off;
        u->out_off = 0;
    }
    if (append(&u->out, &u->out_len, &u->out_cap, p, n) != 0) {
        u_reset(u, MUX_CODE_INTERNAL_ERROR, "out of memory");
        return -1;
    }
    return 0;
}

/* Plaintext: writes what the socket takes now, straight to it (no copy into lws's buffer, so the
 * kernel's socket buffer is the only one past |out|). Returns the bytes written (0 when the socket
 * is full) or -1 when the connection failed. */
static ssize_t plain_send(upstream *u, const uint8_t *p, size_t n)
{
    int fd = lws_get_socket_fd(u->wsi);
    if (fd < 0)
        return -1;
    for (;;) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w >= 0)
            return w;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return 0;
        return -1;
    }
}

/* TLS: encrypts |n| bytes and hands the records to lws (which keeps what the socket did not take;
 * callers only write when lws_send_pipe_choked() says the socket has room). 0 or -1. */
int local_write(upstream *u, const uint8_t *p, size_t n)
{
    uint8_t buf[16384 + 512];
    return raw_conn_tls_write(u->wsi, u->tls, p, n, buf, sizeof(buf));
}

/* Bytes for the local service are waiting (in |out| or in lws's send buffer). */
static int out_pending(upstream *u)
{
    if (u->state < U_REQUEST || u->wsi == NULL)
        return 0; /* still connecting: the head deadline covers it */
    return u->out_len > u->out_off || u->need_shutdown || (u->tls != NULL && lws_partial_buffered(u->wsi));
}

/* WRITE_TIMEOUT bookkeeping after a write attempt; |progress| 1 when the socket took bytes since
 * the last call (a writable callback: lws only reports one once its own buffer drained). */
void track_write(upstream *u, int progress)
{
    if (u->dead)
        return;
    if (u->state == U_RAW) {
        /* upgraded (WebSocket) streams: a local reader that pauses is backpressure under flow
         * control, not a failure; their idle limit is the server's UPGRADE_IDLE_TIMEOUT */
        if (u->write_deadline != 0) {
            u->write_deadline = 0;
            u_arm_timer(u);
        }
        return;
    }
    if (raw_conn_stall_track(&u->write_deadline, out_pending(u), progress, clock_mono_ms(), u->c->opt->write_timeout_ms))
        u_arm_timer(u);
}

/* Nothing could be written to the local service for WRITE_TIMEOUT. While the response is still
 * due, the stream fails with CLOSE(TIMEOUT); once the response is complete, the rest of the
 * request body is discarded (a service may answer without reading the whole body). */
void write_stalled(upstream *u)
{
    u->write_deadline = 0;
    if (u->state != U_DONE || u->end_pending) {
        char why[640];
        snprintf(why, sizeof(why), "local service %s did not take the request for %lld s (WRITE_TIMEOUT)", u->c->local_desc,
                 (long long)(u->c->opt->write_timeout_ms / 1000));
        u_reset(u, MUX_CODE_TIMEOUT, why);
        return;
    }
    LOG_DEBUG(LOG_EV_STREAM, "stream %u: local service stopped reading the request body after its response; discarding the rest",
              u->id);
    mux_session *s = u_session(u);
    if (s != NULL && u->out_consume > 0)
        mux_session_consume(s, u->id, u->out_consume);
    u->out_consume = 0;
    u->out_len = u->out_off = 0;
    u->need_shutdown = 0;
    u_detach(u);
}

/* Writes |out| when the socket takes it; returns credit for the body bytes written. 0 or -1. */
int flush_out(upstream *u)
{
    if (u->wsi == NULL || u->state < U_REQUEST || (u->tls != NULL && lws_send_pipe_choked(u->wsi)))
        goto again;
    if (u->out_len > u->out_off) {
        size_t left = u->out_len - u->out_off, took = left;
        if (u->tls == NULL) {
            ssize_t w = plain_send(u, u->out + u->out_off, left);
            if (w < 0)
                return -1;
            took = (size_t)w;
        } else if (local_write(u, u->out + u->out_off, left) != 0) {
            return -1;
        }
        u->sent_on_conn += took;
        u->out_off += took;
        /* credit returns with the body bytes that left (in proportion; the rest once |out| drained) */
        size_t credit = u->out_off == u->out_len ? u->out_consume : (size_t)((double)u->out_consume * took / left);
        if (u->out_off == u->out_len)
            u->out_off = u->out_len = 0;
        if (credit > 0) {
            u->out_consume -= credit;
            mux_session *s = u_session(u);
            if (s != NULL)
                mux_session_consume(s, u->id, credit);
        }
        goto again;
    }
    if (u->need_shutdown && u->tls == NULL) {
        int fd = lws_get_socket_fd(u->wsi);
        if (fd >= 0)
            shutdown(fd, SHUT_WR);
        u->need_shutdown = 0;
    }
    track_write(u, 0);
    return 0;
again:
    if (u->wsi != NULL && (u->out_len > u->out_off || u->need_shutdown))
        lws_callback_on_writable(u->wsi);
    track_write(u, 0);
    return 0;
}
