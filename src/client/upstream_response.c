/*
 * tunnelmux client — the response towards the tunnel (like h2o's http1client reading side): the
 * local service's response head parsed by http1.c (picohttpparser) and checked, sent with
 * mux_session_respond; the body (by length, chunked, until close, or raw after 101) streamed with
 * mux_session_write under backpressure: what the stream does not take waits in |pend| and the
 * local connection stops being read (docs/PROTOCOL.md §6). Calls only upstream_stream.c and the
 * libraries (see upstream_stream.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "mux/ws.h"
#include "raw_conn.h"
#include "upstream_response.h"

/* Stops reading the local connection until on_writable. */
static void pause_reading(upstream *u)
{
    if (u->wsi != NULL && !u->paused) {
        lws_rx_flow_control(u->wsi, 0);
        u->paused = 1;
    }
}

/* Hands response bytes to the session; what it does not take waits in |pend| and the local
 * connection stops being read. The connection also stops being read, before anything has to wait,
 * while the stream's buffer has no room for another whole read (CLIENT_IO_BUF): so a stream whose
 * reader is slow holds at most its send buffer (2 * CLIENT_IO_BUF), and a read is copied once.
 * 0 or -1 (u reset). */
static int deliver(upstream *u, const uint8_t *p, size_t n)
{
    mux_session *s = u_session(u);
    if (s == NULL || u->dead)
        return -1;
    if (u->pend_len == 0) {
        while (n > 0) {
            ssize_t k = mux_session_write(s, u->id, p, n);
            if (k == MUX_ERR_AGAIN)
                break;
            if (k < 0) {
                u_reset(u, MUX_CODE_INTERNAL_ERROR, "cannot write to the stream");
                return -1;
            }
            p += k;
            n -= (size_t)k;
        }
    }
    if (n > 0) {
        if (append(&u->pend, &u->pend_len, &u->pend_cap, p, n) != 0) {
            u_reset(u, MUX_CODE_INTERNAL_ERROR, "out of memory");
            return -1;
        }
        pause_reading(u); /* the write that was not taken whole armed on_writable */
    } else if (!u->paused && (u->state == U_BODY || u->state == U_RAW) && mux_session_write_room(s, u->id) < CLIENT_IO_BUF &&
               mux_session_want_writable(s, u->id) == 0) {
        pause_reading(u);
    }
    return 0;
}

/* Our direction is complete: fin once everything pending went to the session. */
void response_complete(upstream *u)
{
    upstream_set_state(u, U_DONE);
    if (u->pend_len > 0) {
        u->end_pending = 1;
        return;
    }
    mux_session *s = u_session(u);
    if (s != NULL && !u->dead)
        mux_session_end_stream(s, u->id);
}

static int process_body(upstream *u, uint8_t *p, size_t n)
{
    switch (u->state) {
    case U_RAW:
        return deliver(u, p, n);
    case U_BODY:
        break;
    default:
        if (n > 0)
            u->no_reuse = 1;
        return 0; /* after the end: ignored */
    }
    switch (u->body) {
    case HTTP1_RESP_BODY_LENGTH: {
        size_t k = n < u->body_left ? n : (size_t)u->body_left;
        if (n > k)
            u->no_reuse = 1; /* bytes after the response */
        if (k > 0 && deliver(u, p, k) != 0)
            return -1;
        u->body_left -= k;
        if (u->body_left == 0)
            response_complete(u);
        return 0;
    }
    case HTTP1_RESP_BODY_CHUNKED: {
        size_t len = n;
        ssize_t r = http1_chunked_decode(&u->chunked, (char *)p, &len);
        if (r == MUX_ERR_PROTO) {
            u_reset(u, MUX_CODE_UPSTREAM_ERROR, "malformed chunked response body");
            return -1;
        }
        if (len > 0 && deliver(u, p, len) != 0)
            return -1;
        if (r > 0)
            u->no_reuse = 1; /* bytes after the last chunk */
        if (r >= 0)
            response_complete(u);
        return 0;
    }
    case HTTP1_RESP_BODY_CLOSE:
        return deliver(u, p, n);
    default:
        response_complete(u);
        return 0;
    }
}

/* A response head was parsed from hbuf (|r| bytes). 0: continue with the rest; -1: stop. */
static int on_response_head(upstream *u, int r)
{
    http1_response *resp = u->resp;
    mux_session *s = u_session(u);
    if (s == NULL)
        return -1;
    if (!continue_relay_on_local_head(&u->expect, resp->status))
        return 0; /* a 100 nobody waits for: the server answered 100-continue itself */
    if (resp->status == 101) {
        if (u->req.body != HTTP1_REQ_BODY_RAW) {
            u_reset(u, MUX_CODE_UPSTREAM_ERROR, "101 without an upgrade request");
            return -1;
        }
        if (u->req.ws_key[0] &&
            !mux_ws_check_accept(u->req.ws_key, strlen(u->req.ws_key), (const char *)resp->ws_accept.base, resp->ws_accept.len)) {
            u_reset(u, MUX_CODE_PROTOCOL_ERROR, "local service sent a wrong Sec-WebSocket-Accept");
            return -1;
        }
    }
    mux_head h;
    http1_response_to_head(resp, &h);
    /* the server logs the wait next to the request (PROTOCOL.md §9.4) */
    h.has_local_queue = 1;
    h.local_queue_wait_ms = u->queued_ms > UINT32_MAX ? UINT32_MAX : (uint32_t)u->queued_ms;
    h.local_queue_length = u->c->lq.queued > UINT32_MAX ? UINT32_MAX : (uint32_t)u->c->lq.queued;
    int rv = mux_session_respond(s, u->id, &h);
    if (rv == MUX_ERR_HEADER_LIMIT) {
        /* the tunnel carries at most 100 header fields / 64 KiB per head (PROTOCOL.md §10) */
        size_t bytes = 0;
        for (size_t i = 0; i < h.nheaders; i++)
            bytes += h.headers[i].name.len + h.headers[i].value.len;
        LOG_WARN(LOG_EV_STREAM,
                 "stream %u: response head from the local service not forwarded: %zu header fields, %zu bytes "
                 "(the tunnel carries at most 100 fields and 64 KiB per head)",
                 u->id, h.nheaders, bytes);
        u_reset(u, MUX_CODE_HEADERS_TOO_LARGE, "the local service's response head is over the tunnel's header limits");
        return -1;
    }
    if (rv != 0) {
        u_reset(u, MUX_CODE_INTERNAL_ERROR, "cannot send the response head");
        return -1;
    }
    LOG_DEBUG(LOG_EV_STREAM, "stream %u: local answered %d (queued %lld ms)", u->id, resp->status, (long long)u->queued_ms);
    u->c->metrics.responses[resp->status >= 100 && resp->status <= 599 ? resp->status / 100 : 0]++;
    if (resp->status < 200 && resp->status != 101)
        return 0; /* informational: a final head follows */
    if (u->dead)
        return -1;
    u->body = resp->body;
    u->keep_alive = resp->keep_alive && resp->body != HTTP1_RESP_BODY_CLOSE && resp->status != 101;
    if (resp->status == 101) {
        upstream_set_state(u, U_RAW);
        /* an upgraded connection lives as long as the WebSocket: it leaves LOCAL_MAX_CONNECTIONS
         * (bounded by MAX_STREAMS instead) so open WebSockets never starve plain requests */
        u->upgraded = 1;
        u->c->local_upgraded++;
        slot_release(u);
    } else if (h.flags & MUX_HEAD_END_STREAM) {
        upstream_set_state(u, U_DONE);
    } else {
        upstream_set_state(u, U_BODY);
        u->body_left = resp->content_length;
        http1_chunked_init(&u->chunked);
    }
    u_arm_timer(u);
    return 0;
}

/* Plaintext from the local service. 0 or -1 (u reset; stop reading).
 * While the head is awaited, at most UPSTREAM_HEAD_MAX bytes are buffered: a read that carries the
 * head and a large piece of body (up to CLIENT_IO_BUF) is split, the body part goes on directly. */
int on_local_plain(upstream *u, uint8_t *p, size_t n)
{
    if (u->dead)
        return -1;
    if (u->state != U_REQUEST)
        return process_body(u, p, n);
    if (u->resp == NULL && (u->resp = malloc(sizeof(*u->resp))) == NULL) {
        u_reset(u, MUX_CODE_INTERNAL_ERROR, "out of memory");
        return -1;
    }
    for (int guard = 0; guard < 64 && u->state == U_REQUEST; guard++) {
        size_t room = UPSTREAM_HEAD_MAX - u->hlen;
        size_t k = n < room ? n : room;
        if (u->hlen + k > u->hcap) {
            size_t nc = u->hcap ? u->hcap * 2 : 8192;
            while (nc < u->hlen + k)
                nc *= 2;
            char *b = realloc(u->hbuf, nc);
            if (b == NULL) {
                u_reset(u, MUX_CODE_INTERNAL_ERROR, "out of memory");
                return -1;
            }
            u->hbuf = b;
            u->hcap = nc;
        }
        if (k > 0)
            memcpy(u->hbuf + u->hlen, p, k);
        u->hlen += k;
        p += k;
        n -= k;
        if (u->hlen == 0)
            return 0;
        const char *reason = "";
        int r = http1_parse_response(u->hbuf, u->hlen, u->hlast, u->head_request, u->resp, &reason);
        if (r == MUX_ERR_AGAIN) {
            if (u->hlen >= UPSTREAM_HEAD_MAX) {
                u_reset(u, MUX_CODE_UPSTREAM_ERROR, "response head too large");
                return -1;
            }
            u->hlast = u->hlen;
            return 0; /* n == 0 here: everything fitted */
        }
        if (r < 0) {
            char why[128];
            snprintf(why, sizeof(why), "bad response from local service: %s", reason);
            u_reset(u, MUX_CODE_UPSTREAM_ERROR, why);
            return -1;
        }
        if (on_response_head(u, r) != 0)
            return -1;
        memmove(u->hbuf, u->hbuf + r, u->hlen - (size_t)r);
        u->hlen -= (size_t)r;
        u->hlast = 0;
    }
    if (u->state == U_REQUEST) {
        u_reset(u, MUX_CODE_UPSTREAM_ERROR, "too many informational responses");
        return -1;
    }
    size_t rest = u->hlen;
    u->hlen = 0;
    if (rest > 0 && process_body(u, (uint8_t *)u->hbuf, rest) != 0)
        return -1;
    if (n > 0 && !u->dead)
        return process_body(u, p, n);
    return u->dead ? -1 : 0;
}

/* raw_conn_tls_drain's consumer: on_local_plain() for each decrypted piece; stops once paused or dead. */
static raw_conn_verdict on_local_plain_piece(void *arg, uint8_t *p, size_t n)
{
    upstream *u = arg;
    if (on_local_plain(u, p, n) != 0)
        return RAW_CONN_FAIL;
    return u->paused || u->dead ? RAW_CONN_STOP : RAW_CONN_GO_ON;
}

/* Decrypts what TLS has and processes it, unless paused. 0 or -1. */
int drain_tls(upstream *u)
{
    if (u->paused || u->dead)
        return 0;
    /* close_notify or error: handled as EOF by the close callback */
    return raw_conn_tls_drain(u->tls, u->c->scratch, CLIENT_SCRATCH, on_local_plain_piece, u) < 0 ? -1 : 0;
}
