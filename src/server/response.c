/*
 * tunnelmux server — the response of one public request towards h2o (see proxy_stream.h): error
 * pages, the response head, the zero-copy queue of response bytes handed to h2o_send, and the
 * WRITE_TIMEOUT watchdog of the public reader. Moved out of proxy.c (issue 17 §3).
 */
#include "server/proxy_stream.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/log.h"
#include "server/metrics.h"
#include "common/http_token.h"
#include "server/headers.h"
#include "server/sockprogress.h"

void response_set_state(proxy_stream *ps, proxy_resp_state to)
{
    assert(to > ps->resp_state); /* forwards only (see proxy_resp_state) */
    ps->resp_state = to;
}

const char *proxy_resp_state_to_str(proxy_resp_state s)
{
    switch (s) {
    case PROXY_RESP_WAITING_HEAD:
        return "waiting_head";
    case PROXY_RESP_STARTED:
        return "started";
    case PROXY_RESP_FINAL_SENT:
        return "final_sent";
    }
    return "unknown";
}

void response_send_text(h2o_req_t *req, int status, const char *reason, const char *fmt, ...)
{
    char body[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(body, sizeof(body), fmt, ap);
    va_end(ap);
    h2o_send_error_generic(req, status, reason, body, H2O_SEND_ERROR_KEEP_HEADERS);
}

/* Host for messages: the request's authority, truncated and without control characters. */
void response_safe_host(h2o_req_t *req, char *out, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < req->input.authority.len && n + 1 < cap; i++) {
        char c = req->input.authority.base[i];
        out[n++] = (c < 0x20 || c == 0x7f) ? '?' : c;
    }
    out[n] = '\0';
}

/* Fails a request whose response has not started (status from the mux close code). */
void response_fail_before_head(proxy_stream *ps, unsigned code, const char *why)
{
    char host[128];
    if (ps->stopped || response_started(ps))
        return;
    response_safe_host(ps->req, host, sizeof(host));
    response_set_state(ps, PROXY_RESP_FINAL_SENT);
    if (code == MUX_CODE_TIMEOUT) {
        response_send_text(ps->req, 504, "Gateway Timeout", "tunnelmux: local service for %s did not answer in time%s%s\n", host,
                           why[0] ? ": " : "", why);
    } else if (code == MUX_CODE_CONNECT_ERROR) {
        response_send_text(ps->req, 502, "Bad Gateway", "tunnelmux: local service for %s could not be reached%s%s\n", host,
                           why[0] ? ": " : "", why);
    } else if (code == MUX_CODE_UPSTREAM_ERROR) {
        response_send_text(ps->req, 502, "Bad Gateway",
                           "tunnelmux: local service for %s sent an invalid response (UPSTREAM_ERROR)%s%s\n", host,
                           why[0] ? ": " : "", why);
    } else if (code == MUX_CODE_ENHANCE_YOUR_CALM) {
        /* the client's queue for local connections is full (LOCAL_QUEUE_MAX, PROTOCOL.md §9.5):
         * overload, not failure — come back shortly */
        h2o_add_header(&ps->req->pool, &ps->req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL, H2O_STRLIT(PROXY_BUSY_RETRY_AFTER_S));
        response_send_text(ps->req, 503, "Service Unavailable", "tunnelmux: local service for %s is busy%s%s\n", host,
                           why[0] ? ": " : "", why);
    } else {
        response_send_text(ps->req, 502, "Bad Gateway", "tunnelmux: request for %s failed (%s)%s%s\n", host, mux_code_name(code),
                           why[0] ? ": " : "", why);
    }
}

/* Aborts a started response: never a clean end with a short body (h1 close, h2 RST_STREAM). */
void response_abort(proxy_stream *ps)
{
    if (response_final_sent(ps) || ps->stopped)
        return;
    ps->aborted = 1;
    if (ps->sending)
        return; /* proceed will send the error */
    response_set_state(ps, PROXY_RESP_FINAL_SENT);
    ps->req->http1_is_persistent = 0;
    h2o_send(ps->req, NULL, 0, H2O_SEND_STATE_ERROR);
}

/* Moves everything waiting into flight: the slices (and their slab reference) and the copy (the
 * pend and inflight buffers swap, so appends go to the spare one while h2o holds the other).
 * Fills |bufs| (ZC_MAX + 1 entries) for one h2o_send and returns their count. */
size_t response_take_pending(proxy_stream *ps, h2o_iovec_t *bufs)
{
    return resp_queue_take(&ps->q, bufs);
}

static int public_fd(proxy_stream *ps)
{
    h2o_socket_t *sock = ps->conn->callbacks->get_socket != NULL ? ps->conn->callbacks->get_socket(ps->conn) : NULL;
    return sock != NULL ? h2o_socket_get_fd(sock) : -1;
}

/*
 * Every WRITE_TIMEOUT while h2o holds response bytes it has not written (a send in flight, or
 * the final one): if the public peer acknowledged no byte of the connection since the previous
 * check, it stopped reading. Its connection is closed abortively (h1: the response is cut, never
 * a clean short end; h2: every stream of the connection ends) and the mux stream is cancelled, so
 * the stream's slot, window and buffers are released. A stall is thus cut after one to two
 * WRITE_TIMEOUTs; a reader that keeps taking bytes, however slowly, never is.
 */
void response_on_stall_check(h2o_timeout_entry_t *e)
{
    proxy_stream *ps = H2O_STRUCT_FROM_MEMBER(proxy_stream, stall_entry, e);
    if (!ps->sending && !response_final_sent(ps)) {
        ps->stall_sampled = 0; /* waiting for the tunnel, not for the reader: re-armed by the next send */
        return;
    }
    int fd = public_fd(ps);
    uint64_t acked;
    if (sockprogress_acked(fd, &acked) == 0) {
        if (ps->stall_sampled && acked == ps->stall_acked) {
            LOG_WARN(LOG_EV_HTTP,
                     "public connection %llu (%s): the reader took no bytes of a response for WRITE_TIMEOUT (%lld ms): "
                     "connection reset",
                     (unsigned long long)ps->conn_id, ps->name, (long long)ps->srv->opt->write_timeout_ms);
            if (ps->srv->metrics != NULL)
                metrics_on_reader_stalled(ps->srv->metrics);
            ps->aborted = 1;
            proxy_link_cancel(ps, "public reader stalled (WRITE_TIMEOUT)");
            sockprogress_abort(fd); /* h2o's pending write fails; the request is disposed of */
            return;
        }
        ps->stall_acked = acked;
        ps->stall_sampled = 1;
    }
    h2o_timeout_link(ps->srv->ctx.loop, &ps->srv->write_timeout, &ps->stall_entry);
}

/* Starts the watchdog when h2o is handed response bytes (no-op while it runs). */
static void watch_stall(proxy_stream *ps)
{
    if (!h2o_timeout_is_linked(&ps->stall_entry))
        h2o_timeout_link(ps->srv->ctx.loop, &ps->srv->write_timeout, &ps->stall_entry);
}

/* Sends buffered bytes / the end to h2o when nothing is in flight. */
static void send_more(proxy_stream *ps)
{
    if (ps->sending || response_final_sent(ps) || ps->stopped || !response_started(ps))
        return;
    if (ps->aborted) {
        response_abort(ps);
        return;
    }
    if (resp_queue_has_pending(&ps->q)) {
        h2o_iovec_t bufs[ZC_MAX + 1];
        size_t nbufs = response_take_pending(ps, bufs);
        if (ps->ended) {
            /* the last bytes and the end in one send: h2o finishes the response in this turn (no
             * proceed follows a final send, so their credit returns now; the stream is closing;
             * the buffers stay until the request is disposed of) */
            tunnel *t = ps->tunnel;
            if (t != NULL && ps->id != 0)
                mux_session_consume(tunnel_session(t), ps->id, ps->q.inflight_len);
            response_set_state(ps, PROXY_RESP_FINAL_SENT);
            watch_stall(ps);
            h2o_send(ps->req, bufs, nbufs, H2O_SEND_STATE_FINAL);
            return;
        }
        ps->sending = 1;
        watch_stall(ps);
        h2o_send(ps->req, bufs, nbufs, H2O_SEND_STATE_IN_PROGRESS);
        return;
    }
    if (ps->ended) {
        response_set_state(ps, PROXY_RESP_FINAL_SENT);
        watch_stall(ps);
        h2o_send(ps->req, NULL, 0, H2O_SEND_STATE_FINAL);
    }
}

void response_on_proceed(h2o_generator_t *gen, h2o_req_t *req)
{
    proxy_stream *ps = H2O_STRUCT_FROM_MEMBER(proxy_stream, gen, gen);
    size_t n = resp_queue_written(&ps->q); /* h2o is done with the slices */
    ps->sending = 0;
    tunnel *t = ps->tunnel;
    if (t != NULL && ps->id != 0 && n > 0)
        mux_session_consume(tunnel_session(t), ps->id, n); /* the bytes have left our hands (PROTOCOL.md §5) */
    send_more(ps);
    if (t != NULL)
        tunnel_flush(t);
}

void response_on_stop(h2o_generator_t *gen, h2o_req_t *req)
{
    proxy_stream *ps = H2O_STRUCT_FROM_MEMBER(proxy_stream, gen, gen);
    ps->stopped = 1;
    proxy_link_cancel(ps, "public client went away");
}

void response_on_send_entry(h2o_timeout_entry_t *e)
{
    send_more(H2O_STRUCT_FROM_MEMBER(proxy_stream, send_entry, e));
}

/* send_more() at the end of this loop turn: the response bytes (and the end) that all the tunnel
 * reads of the turn delivered go to h2o in one send. */
void response_schedule_send(proxy_stream *ps)
{
    if (ps->sending || response_final_sent(ps) || h2o_timeout_is_linked(&ps->send_entry))
        return; /* response_on_proceed sends the rest */
    h2o_timeout_link(ps->srv->ctx.loop, &ps->srv->ctx.zero_timeout, &ps->send_entry);
}

/* Copies status, reason and the headers of |head| into |req|'s response (hop-by-hop dropped). */
void response_set_head(h2o_req_t *req, const mux_head *head, const char *default_reason)
{
    req->res.status = (int)head->status;
    if (head->reason.len > 0 && http_is_clean_value((const char *)head->reason.base, head->reason.len)) {
        char *r = h2o_mem_alloc_pool(&req->pool, head->reason.len + 1);
        memcpy(r, head->reason.base, head->reason.len);
        r[head->reason.len] = '\0';
        req->res.reason = r;
    } else {
        req->res.reason = default_reason;
    }
    for (size_t i = 0; i < head->nheaders; i++) {
        const mux_header *h = &head->headers[i];
        const char *n = (const char *)h->name.base, *v = (const char *)h->value.base;
        if (h->name.len == 14 && strncasecmp(n, "content-length", 14) == 0) {
            int64_t cl = headers_parse_content_length(v, h->value.len);
            if (cl >= 0 && head->status != 101)
                req->res.content_length = (size_t)cl;
            continue;
        }
        if (!headers_response_keep(n, h->name.len, v, h->value.len, head->status))
            continue;
        if (req->version >= 0x200 && h->name.len == 7 && strncasecmp(n, "upgrade", 7) == 0)
            continue; /* no connection-specific headers in HTTP/2 (a 426's Upgrade) */
        if (h->name.len == 4 && strncasecmp(n, "date", 4) == 0)
            continue; /* h2o 2.2.5 always writes its own Date */
        char *nc = h2o_mem_alloc_pool(&req->pool, h->name.len);
        for (size_t k = 0; k < h->name.len; k++)
            nc[k] = (n[k] >= 'A' && n[k] <= 'Z') ? (char)(n[k] - 'A' + 'a') : n[k];
        char *vc = h2o_mem_alloc_pool(&req->pool, h->value.len + 1);
        memcpy(vc, v, h->value.len);
        h2o_add_header_by_str(&req->pool, &req->res.headers, nc, h->name.len, 1, NULL, vc, h->value.len);
    }
}

/* Why a response head cannot become HTTP as it is (a header name that is not an RFC 9110 token,
 * a value with CR, LF or NUL), or NULL when it can. */
const char *response_invalid_header(const mux_head *head)
{
    for (size_t i = 0; i < head->nheaders; i++) {
        const mux_header *h = &head->headers[i];
        if (!http_is_token((const char *)h->name.base, h->name.len))
            return "header name is not a token";
        if (!http_is_clean_value((const char *)h->value.base, h->value.len))
            return "header value contains CR, LF or NUL";
    }
    return NULL;
}

/* Keeps |data| as a slice of the tunnel read it lies in, when it is one (rxslab.h), it is not tiny,
 * it shares the slab of the slices already waiting and there is room for it, for the copied
 * bytes before it and for a copy after it. 1: taken. */
int response_take_slice(proxy_stream *ps, const uint8_t *data, size_t len)
{
    if (!resp_queue_slice_fits(&ps->q, len) || ps->tunnel == NULL)
        return 0;
    return resp_queue_add_slice(&ps->q, tunnel_rx_slab(ps->tunnel, data, len), data, len);
}
