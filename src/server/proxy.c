/*
 * tunnelmux server — one public request as one mux stream (see proxy.h, PROTOCOL.md §6).
 *
 * Ownership: the proxy_stream lives in the request's pool (h2o_mem_alloc_shared with a dispose
 * callback, which fires even when the user vanishes — the generator's stop is not reliable,
 * docs/ARCHITECTURE.md §7). It is attached to the tunnel (t->streams, stream user data) until the mux stream
 * closes; every path that hands control to h2o detaches first, so no callback can reach freed
 * memory.
 *
 * Upgrades (PROTOCOL.md §5.2 raw mode, §9.6): an HTTP/1.1 request with Upgrade goes out with
 * MUX_HEAD_UPGRADE and without END_STREAM. On a 101 the stream moves to a heap proxy_stream
 * (|raw|), because h2o_http1_upgrade() disposes of the request (and our pool object) before it
 * hands over the socket; that copy owns the public socket and pumps bytes both ways under credit.
 * Any other final status ends our direction and is relayed like a normal response.
 */
#include "server/proxy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <netinet/tcp.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/log.h"
#include "common/http_token.h"
#include "h2o/http1.h"
#include "server/admin.h"
#include "server/h2_body.h"
#include "server/headers.h"
#include "server/metrics.h"
#include "server/route.h"
#include "server/security.h"
#include "server/sockprogress.h"
#include "server/upload.h"
#include "server/upload_head.h"

#define BODY_SLICE (256 * 1024)             /* largest piece handed to mux_session_write at once */
#define BODY_RELEASE_STEP (4 * 1024 * 1024) /* release sent request-body pages in steps of this size */
#define RAW_KEEP_CAP (1024 * 1024)          /* raw streams free drained buffers above this (idle WebSockets stay small) */
#define ZC_MAX 256                          /* response slices of tunnel reads waiting for one h2o_send (rxslab.h) */
#define ZC_MIN 4096                         /* smaller DATA payloads are copied: a slice would cost more */
#define BUSY_WARN_INTERVAL_MS 10000         /* at most one WARN line per this for requests over the stream limit */
#define PROXY_BUSY_RETRY_AFTER_S "1"        /* Retry-After of a 503 for a full local queue (CLOSE ENHANCE_YOUR_CALM) */

struct proxy_stream {
    h2o_generator_t gen;
    server *srv;
    h2o_req_t *req;
    tunnel *tunnel; /* NULL once detached */
    uint32_t id;    /* mux stream id (0 = none) */
    h2o_linklist_t link;
    h2o_linklist_t all; /* in srv->proxies while it counts as a public request in progress (proxy_gather) */
    h2o_conn_t *conn;   /* the public connection (Rapid Reset budget, security.c) */
    uint64_t conn_id;
    h2o_timeout_entry_t head_timeout;
    h2o_timeout_entry_t send_entry;  /* zero-delay: hands what this loop turn delivered to h2o at once */
    h2o_timeout_entry_t stall_entry; /* WRITE_TIMEOUT watchdog of the public reader (on_stall_check) */
    uint64_t stall_acked;            /* the connection's acknowledged bytes at the last check */
    int stall_sampled;               /* stall_acked was taken while h2o held unwritten bytes */
    char name[ROUTE_MAX_NAME + 1];
    /* request body: req->entity, or streamed from the connection (upload.h, h2_body.h) */
    upload_body *ub;
    h2_body *hb;
    int body_chunked; /* |ub| decodes a chunked body: its length is known at its end */
    size_t body_off;
    size_t released_off; /* req->entity bytes below this were given back to the kernel */
    int has_body, body_done;
    int64_t held;           /* a held-back HTTP/1.1 body's length (upload.h), else -1 */
    int h1_held;            /* the HTTP/1.1 connection streams the body (upload.h; |held| < 0: chunked) */
    int h2_held;            /* the HTTP/2 hook holds the body (h2_body.h) */
    int64_t h2_len;         /* its Content-Length, or -1 */
    int drop_authorization; /* security_admit: the Authorization header is ours (basic auth), not forwarded */
    int expect_relay;       /* the user's Expect: 100-continue is the local service's to answer (PROTOCOL.md §9.3) */
    int continue_sent;      /* ... and "100 Continue" went to the user */
    int retried;            /* safe retry done once already (proxy_on_tunnel_lost) */
    /* response */
    int response_started, ended, final_sent, aborted, stopped, sending;
    /* Response bytes wait as slices of tunnel reads (pointers into |zc_slab|, no copy) and copies
     * (in pend). With no slice, pend alone holds them; once there is one, |zc| lists the pieces in
     * order, a piece with base NULL standing for the next |len| bytes of pend. One h2o_send hands
     * them all over; h2o holds them (fl_slab, inflight) until proceed or the end. */
    h2o_iovec_t *zc;                                       /* ZC_MAX entries, allocated on first use */
    size_t zc_n;                                           /* pieces in zc (0: none, pend alone) */
    size_t zc_len;                                         /* bytes in slices */
    rxslab *zc_slab, *fl_slab;                             /* references held for the pending / in-flight slices */
    uint8_t *pend, *inflight;                              /* on_data appends to pend; inflight is what h2o holds until proceed */
    size_t pend_len, pend_cap, inflight_len, inflight_cap; /* inflight_len: all bytes h2o holds */
    /* upgrade */
    int upgrade_req;                /* the request asked for an HTTP/1.1 Upgrade (MUX_HEAD_UPGRADE sent) */
    int raw;                        /* heap copy owning the upgraded public socket (req is NULL) */
    int upgrading;                  /* h2o_http1_upgrade in flight: the socket is not ours yet */
    int raw_closed;                 /* the mux stream is gone (raw_abort: with an error) */
    int raw_writing;                /* an h2o_socket_write of |inflight| is in flight */
    int read_paused;                /* the session took no more: user bytes wait in sock->input */
    int user_eof;                   /* the user half-closed; our end follows the bytes still in sock->input */
    int end_sent;                   /* our direction ended (mux_session_end_stream) */
    int peer_fin;                   /* the client ended its direction: shut down our write side once drained */
    int shut_wr;                    /* that shutdown happened */
    h2o_socket_t *sock;             /* the upgraded public socket */
    h2o_timeout_entry_t idle_entry; /* UPGRADE_IDLE_TIMEOUT */
};

h2o_linklist_t *proxy_link(proxy_stream *ps)
{
    return &ps->link;
}

proxy_stream *proxy_from_link(h2o_linklist_t *link)
{
    return H2O_STRUCT_FROM_MEMBER(proxy_stream, link, link);
}

/* ---------------------------------------------------------------- helpers */

/* A request refused because its tunnel has MAX_STREAMS_PER_CLIENT streams open: counted in
 * /metrics each time, logged at most once per BUSY_WARN_INTERVAL_MS (a flood of them would
 * otherwise write one WARN line per request) with the number left unlogged since. */
static void warn_busy(server *srv, const char *name)
{
    if (srv->metrics != NULL)
        metrics_on_stream_refused(srv->metrics, name);
    int64_t now = (int64_t)h2o_now(srv->ctx.loop);
    if (srv->busy_warn_ms != 0 && now - srv->busy_warn_ms < BUSY_WARN_INTERVAL_MS) {
        srv->busy_warn_suppressed++;
        return;
    }
    LOG_WARN(LOG_EV_STREAM,
             "request for %s refused (503): MAX_STREAMS_PER_CLIENT=%lld streams already open; %llu more refusals "
             "not logged in the last %d s (tunnelmux_streams_refused_total counts them all)",
             name, (long long)srv->opt->max_streams_per_client, (unsigned long long)srv->busy_warn_suppressed,
             BUSY_WARN_INTERVAL_MS / 1000);
    srv->busy_warn_ms = now;
    srv->busy_warn_suppressed = 0;
}

/* Response bytes |ps| holds for its public reader: copies and tunnel-read slices waiting, and what
 * h2o (or the upgraded socket) has not written yet. */
static uint64_t held_bytes(const proxy_stream *ps)
{
    return (uint64_t)ps->pend_len + ps->zc_len + ps->inflight_len;
}

static uint32_t name_hash(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s != '\0'; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

/* Adds every public request in progress to |live| (matched by client name; see proxy.h). */
uint64_t proxy_gather(server *srv, metrics_live *live, size_t nlive)
{
    size_t cap = 16;
    while (cap < 2 * nlive)
        cap *= 2;
    size_t *slot = nlive > 0 ? malloc(cap * sizeof(*slot)) : NULL; /* index + 1 into |live|, 0 = empty */
    if (slot != NULL) {
        memset(slot, 0, cap * sizeof(*slot));
        for (size_t i = 0; i < nlive; i++) {
            size_t k = name_hash(live[i].name) & (cap - 1);
            while (slot[k] != 0)
                k = (k + 1) & (cap - 1);
            slot[k] = i + 1;
        }
    }
    uint64_t total = 0;
    for (h2o_linklist_t *l = srv->proxies.next; l != &srv->proxies; l = l->next) {
        const proxy_stream *ps = H2O_STRUCT_FROM_MEMBER(proxy_stream, all, l);
        uint64_t held = held_bytes(ps);
        total += held;
        if (slot == NULL)
            continue;
        for (size_t k = name_hash(ps->name) & (cap - 1); slot[k] != 0; k = (k + 1) & (cap - 1)) {
            metrics_live *m = &live[slot[k] - 1];
            if (strcmp(m->name, ps->name) == 0) {
                m->requests_active++;
                m->response_bytes_held += held;
                break;
            }
        }
    }
    free(slot);
    return total;
}

/* Detaches |ps| from its tunnel and mux stream (no more callbacks). Returns the tunnel or NULL. */
static tunnel *detach(proxy_stream *ps)
{
    tunnel *t = ps->tunnel;
    if (t != NULL) {
        if (h2o_linklist_is_linked(&ps->link))
            h2o_linklist_unlink(&ps->link);
        if (ps->id != 0 && t->sess != NULL)
            mux_session_set_stream_user_data(t->sess, ps->id, NULL);
    }
    ps->tunnel = NULL;
    if (h2o_timeout_is_linked(&ps->head_timeout))
        h2o_timeout_unlink(&ps->head_timeout);
    return t;
}

/* Detaches and resets the mux stream with |code|. Does not flush the tunnel; returns it. */
static tunnel *reset(proxy_stream *ps, unsigned code, const char *reason)
{
    uint32_t id = ps->id;
    tunnel *t = detach(ps);
    if (t != NULL && id != 0 && t->sess != NULL)
        mux_session_reset_stream(t->sess, id, code, reason);
    ps->id = 0;
    return t;
}

static void send_text(h2o_req_t *req, int status, const char *reason, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void send_text(h2o_req_t *req, int status, const char *reason, const char *fmt, ...)
{
    char body[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(body, sizeof(body), fmt, ap);
    va_end(ap);
    h2o_send_error_generic(req, status, reason, body, H2O_SEND_ERROR_KEEP_HEADERS);
}

/* Host for messages: the request's authority, truncated and without control characters. */
static void safe_host(h2o_req_t *req, char *out, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < req->input.authority.len && n + 1 < cap; i++) {
        char c = req->input.authority.base[i];
        out[n++] = (c < 0x20 || c == 0x7f) ? '?' : c;
    }
    out[n] = '\0';
}

/* Fails a request whose response has not started (status from the mux close code). */
static void fail_before_head(proxy_stream *ps, unsigned code, const char *why)
{
    char host[128];
    if (ps->stopped || ps->response_started)
        return;
    safe_host(ps->req, host, sizeof(host));
    ps->response_started = 1;
    ps->final_sent = 1;
    if (code == MUX_CODE_TIMEOUT) {
        send_text(ps->req, 504, "Gateway Timeout", "tunnelmux: local service for %s did not answer in time%s%s\n", host,
                  why[0] ? ": " : "", why);
    } else if (code == MUX_CODE_CONNECT_ERROR) {
        send_text(ps->req, 502, "Bad Gateway", "tunnelmux: local service for %s could not be reached%s%s\n", host,
                  why[0] ? ": " : "", why);
    } else if (code == MUX_CODE_UPSTREAM_ERROR) {
        send_text(ps->req, 502, "Bad Gateway", "tunnelmux: local service for %s sent an invalid response (UPSTREAM_ERROR)%s%s\n",
                  host, why[0] ? ": " : "", why);
    } else if (code == MUX_CODE_ENHANCE_YOUR_CALM) {
        /* the client's queue for local connections is full (LOCAL_QUEUE_MAX, PROTOCOL.md §9.5):
         * overload, not failure — come back shortly */
        h2o_add_header(&ps->req->pool, &ps->req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL, H2O_STRLIT(PROXY_BUSY_RETRY_AFTER_S));
        send_text(ps->req, 503, "Service Unavailable", "tunnelmux: local service for %s is busy%s%s\n", host, why[0] ? ": " : "",
                  why);
    } else {
        send_text(ps->req, 502, "Bad Gateway", "tunnelmux: request for %s failed (%s)%s%s\n", host, mux_code_name(code),
                  why[0] ? ": " : "", why);
    }
}

/* Aborts a started response: never a clean end with a short body (h1 close, h2 RST_STREAM). */
static void abort_response(proxy_stream *ps)
{
    if (ps->final_sent || ps->stopped)
        return;
    ps->aborted = 1;
    if (ps->sending)
        return; /* proceed will send the error */
    ps->final_sent = 1;
    ps->req->http1_is_persistent = 0;
    h2o_send(ps->req, NULL, 0, H2O_SEND_STATE_ERROR);
}

/* Moves everything waiting into flight: the slices (and their slab reference) and the copy (the
 * pend and inflight buffers swap, so appends go to the spare one while h2o holds the other).
 * Fills |bufs| (ZC_MAX + 1 entries) for one h2o_send and returns their count. */
static size_t take_pending(proxy_stream *ps, h2o_iovec_t *bufs)
{
    size_t n = 0, off = 0;
    for (size_t i = 0; i < ps->zc_n; i++) {
        h2o_iovec_t v = ps->zc[i];
        if (v.base == NULL) { /* a piece of pend */
            v.base = (char *)ps->pend + off;
            off += v.len;
        }
        bufs[n++] = v;
    }
    if (ps->zc_n == 0 && ps->pend_len > 0)
        bufs[n++] = h2o_iovec_init(ps->pend, ps->pend_len);
    rxslab_unref(ps->fl_slab); /* NULL here: proceed dropped it, and nothing follows a final send */
    ps->fl_slab = ps->zc_slab;
    ps->zc_slab = NULL;
    ps->inflight_len = ps->zc_len + ps->pend_len;
    ps->zc_n = ps->zc_len = 0;
    if (ps->pend_len > 0) {
        uint8_t *b = ps->inflight;
        size_t cap = ps->inflight_cap;
        ps->inflight = ps->pend;
        ps->inflight_cap = ps->pend_cap;
        ps->pend = b;
        ps->pend_cap = cap;
        ps->pend_len = 0;
    }
    return n;
}

/* ---------------------------------------------------------------- public write stalls */

static void cancel(proxy_stream *ps, const char *why);

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
static void on_stall_check(h2o_timeout_entry_t *e)
{
    proxy_stream *ps = H2O_STRUCT_FROM_MEMBER(proxy_stream, stall_entry, e);
    if (!ps->sending && !ps->final_sent) {
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
            cancel(ps, "public reader stalled (WRITE_TIMEOUT)");
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
    if (ps->sending || ps->final_sent || ps->stopped || !ps->response_started)
        return;
    if (ps->aborted) {
        abort_response(ps);
        return;
    }
    if (ps->zc_n > 0 || ps->pend_len > 0) {
        h2o_iovec_t bufs[ZC_MAX + 1];
        size_t nbufs = take_pending(ps, bufs);
        if (ps->ended) {
            /* the last bytes and the end in one send: h2o finishes the response in this turn (no
             * proceed follows a final send, so their credit returns now; the stream is closing;
             * the buffers stay until the request is disposed of) */
            tunnel *t = ps->tunnel;
            if (t != NULL && ps->id != 0)
                mux_session_consume(t->sess, ps->id, ps->inflight_len);
            ps->final_sent = 1;
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
        ps->final_sent = 1;
        watch_stall(ps);
        h2o_send(ps->req, NULL, 0, H2O_SEND_STATE_FINAL);
    }
}

/* ---------------------------------------------------------------- h2o side */

static void on_proceed(h2o_generator_t *gen, h2o_req_t *req)
{
    proxy_stream *ps = H2O_STRUCT_FROM_MEMBER(proxy_stream, gen, gen);
    size_t n = ps->inflight_len;
    ps->sending = 0;
    ps->inflight_len = 0;
    rxslab_unref(ps->fl_slab); /* h2o is done with the slices */
    ps->fl_slab = NULL;
    tunnel *t = ps->tunnel;
    if (t != NULL && ps->id != 0 && n > 0)
        mux_session_consume(t->sess, ps->id, n); /* the bytes have left our hands (PROTOCOL.md §5) */
    send_more(ps);
    if (t != NULL)
        tunnel_flush(t);
}

static void cancel(proxy_stream *ps, const char *why)
{
    tunnel *t = reset(ps, MUX_CODE_CANCEL, why);
    if (t != NULL)
        tunnel_flush(t);
}

static void on_stop(h2o_generator_t *gen, h2o_req_t *req)
{
    proxy_stream *ps = H2O_STRUCT_FROM_MEMBER(proxy_stream, gen, gen);
    ps->stopped = 1;
    cancel(ps, "public client went away");
}

static void on_send_entry(h2o_timeout_entry_t *e)
{
    send_more(H2O_STRUCT_FROM_MEMBER(proxy_stream, send_entry, e));
}

/* send_more() at the end of this loop turn: the response bytes (and the end) that all the tunnel
 * reads of the turn delivered go to h2o in one send. */
static void schedule_send(proxy_stream *ps)
{
    if (ps->sending || ps->final_sent || h2o_timeout_is_linked(&ps->send_entry))
        return; /* on_proceed sends the rest */
    h2o_timeout_link(ps->srv->ctx.loop, &ps->srv->ctx.zero_timeout, &ps->send_entry);
}

static void on_dispose(void *p)
{
    proxy_stream *ps = p;
    if (h2o_timeout_is_linked(&ps->send_entry))
        h2o_timeout_unlink(&ps->send_entry);
    if (h2o_timeout_is_linked(&ps->stall_entry))
        h2o_timeout_unlink(&ps->stall_entry);
    if (ps->srv->nrequests > 0)
        ps->srv->nrequests--;
    if (h2o_linklist_is_linked(&ps->all))
        h2o_linklist_unlink(&ps->all);
    if (!ps->final_sent)
        security_on_cancel(ps->srv, ps->conn, ps->conn_id); /* cancelled by the user before the response ended */
    if (ps->tunnel != NULL) {
        if (ps->final_sent && ps->ended && !ps->aborted && (ps->end_sent || !ps->has_body || ps->body_done))
            detach(ps); /* the response was delivered whole and our end (DATA fin) is queued: the stream
                           closes normally once it is sent (PROTOCOL.md §9.2: no CANCEL) */
        else
            cancel(ps, "public client went away");
    }
    upload_body_free(ps->ub);
    ps->ub = NULL;
    h2_body_free(ps->hb, ps->final_sent && !ps->aborted && !ps->stopped);
    ps->hb = NULL;
    if (h2o_timeout_is_linked(&ps->head_timeout))
        h2o_timeout_unlink(&ps->head_timeout);
    free(ps->pend);
    free(ps->inflight);
    ps->pend = ps->inflight = NULL;
    rxslab_unref(ps->zc_slab);
    rxslab_unref(ps->fl_slab);
    ps->zc_slab = ps->fl_slab = NULL;
    free(ps->zc);
    ps->zc = NULL;
    ps->zc_n = 0;
}

static void on_head_timeout(h2o_timeout_entry_t *e)
{
    proxy_stream *ps = H2O_STRUCT_FROM_MEMBER(proxy_stream, head_timeout, e);
    LOG_INFO(LOG_EV_STREAM, "stream %u (%s): no response head within READ_TIMEOUT", ps->id, ps->name);
    tunnel *t = reset(ps, MUX_CODE_TIMEOUT, "no response head within READ_TIMEOUT");
    if (t != NULL)
        tunnel_flush(t);
    if (!ps->response_started)
        fail_before_head(ps, MUX_CODE_TIMEOUT, "");
}

/* Restarts the response-head deadline. */
static void rearm_head_timeout(proxy_stream *ps)
{
    if (h2o_timeout_is_linked(&ps->head_timeout))
        h2o_timeout_unlink(&ps->head_timeout);
    h2o_timeout_link(ps->srv->ctx.loop, &ps->srv->read_timeout, &ps->head_timeout);
}

/*
 * Gives the pages of the request body that were already copied into the mux session back to the
 * kernel. h2o 2.2.5 holds the whole body before the handler runs; above 32 MiB it lives in an
 * mmapped, unlinked temp file (h2o_socket_buffer_mmap_settings), so its pages are file pages
 * charged to us until the request ends. MADV_REMOVE punches a hole in that file (RSS and page cache
 * both drop); where it is refused (private memory, or a file system without hole punching)
 * MADV_DONTNEED at least drops the pages from our RSS. Only whole pages inside [entity, entity +
 * |upto|) are touched: those bytes were copied by mux_session_write and are never read again (the
 * head of a pipelined h1 request after the body is on a later, partial page, left alone).
 */
static void release_body_pages(proxy_stream *ps, size_t upto, int final)
{
    if (upto < ps->released_off + (final ? 1 : BODY_RELEASE_STEP))
        return;
    long psz = sysconf(_SC_PAGESIZE);
    uintptr_t page = psz > 0 ? (uintptr_t)psz : 4096;
    uintptr_t base = (uintptr_t)ps->req->entity.base;
    uintptr_t from = (base + ps->released_off + page - 1) & ~(page - 1);
    uintptr_t to = (base + upto) & ~(page - 1);
    if (to > from) {
        if (madvise((void *)from, to - from, MADV_REMOVE) != 0)
            (void)madvise((void *)from, to - from, MADV_DONTNEED);
    }
    ps->released_off = upto;
}

static void body_write_failed(proxy_stream *ps, ssize_t w)
{
    LOG_WARN(LOG_EV_STREAM, "stream %u (%s): body write failed: %s", ps->id, ps->name, mux_strerror((int)w));
    reset(ps, MUX_CODE_INTERNAL_ERROR, "body write failed");
    if (!ps->response_started)
        fail_before_head(ps, MUX_CODE_INTERNAL_ERROR, "");
    else
        abort_response(ps);
}

/* pump_body for a streamed body: forwards what the connection delivered, pauses it when the
 * stream takes no more (credit), ends the stream after the last byte. */
static void pump_streamed_body(proxy_stream *ps, tunnel *t)
{
    size_t start = ps->body_off;
    const uint8_t *p;
    size_t n;
    while ((n = ps->ub != NULL ? upload_body_peek(ps->ub, &p) : h2_body_peek(ps->hb, &p)) > 0) {
        ssize_t w = mux_session_write(t->sess, ps->id, p, n < BODY_SLICE ? n : BODY_SLICE);
        if (w == MUX_ERR_AGAIN) {
            /* backpressure: h1 to the client's TCP window, h2 to its stream window; on_writable resumes */
            if (ps->ub != NULL)
                upload_body_want(ps->ub, 0);
            break;
        }
        if (w < 0) {
            body_write_failed(ps, w);
            return;
        }
        if (ps->ub != NULL) {
            if (ps->body_chunked)
                ratelimit_charge(&t->rl_bytes, (double)w, server_now(ps->srv));
            upload_body_consume(ps->ub, (size_t)w);
        } else {
            ratelimit_charge(&t->rl_bytes, (double)w, server_now(ps->srv));
            h2_body_consume(ps->hb, (size_t)w); /* the user's HTTP/2 window for these bytes */
        }
        ps->body_off += (size_t)w;
    }
    if (ps->ub != NULL ? upload_body_done(ps->ub) : h2_body_done(ps->hb)) {
        ps->body_done = 1; /* the body object lives on until on_dispose (h1: it drains what follows the body) */
        if (ps->hb != NULL)
            admin_tag_body(ps->req, h2_body_received(ps->hb));
        else if (ps->body_chunked || ps->expect_relay)
            admin_tag_body(ps->req, ps->body_off);
        mux_session_end_stream(t->sess, ps->id);
    } else if (n > 0) {
        /* paused above */
    } else if (ps->ub != NULL) {
        upload_body_want(ps->ub, 1);
    }
    if (!ps->response_started && ps->body_off != start)
        rearm_head_timeout(ps); /* READ_TIMEOUT counts from the last body progress */
}

/* Writes request body bytes while the stream accepts them; ends the stream after the last. */
static void pump_body(proxy_stream *ps)
{
    tunnel *t = ps->tunnel;
    if (t == NULL || ps->id == 0 || !ps->has_body || ps->body_done)
        return;
    if (ps->ub != NULL || ps->hb != NULL) {
        pump_streamed_body(ps, t);
        return;
    }
    const uint8_t *base = (const uint8_t *)ps->req->entity.base;
    size_t len = ps->req->entity.len;
    size_t start = ps->body_off;
    while (ps->body_off < len) {
        /* window-sized slices: never touch the whole (possibly mmapped) body at once */
        size_t n = len - ps->body_off < BODY_SLICE ? len - ps->body_off : BODY_SLICE;
        ssize_t w = mux_session_write(t->sess, ps->id, base + ps->body_off, n);
        if (w == MUX_ERR_AGAIN) {
            if (len >= BODY_RELEASE_STEP)
                release_body_pages(ps, ps->body_off, 0);
            if (ps->body_off != start && !ps->response_started)
                rearm_head_timeout(ps); /* READ_TIMEOUT counts from the last body progress */
            return;                     /* on_writable resumes */
        }
        if (w < 0) {
            body_write_failed(ps, w);
            return;
        }
        ps->body_off += (size_t)w;
    }
    ps->body_done = 1;
    if (len >= BODY_RELEASE_STEP)
        release_body_pages(ps, len, 1);
    mux_session_end_stream(t->sess, ps->id);
    if (!ps->response_started && ps->body_off != start)
        rearm_head_timeout(ps);
}

/* |addr| = IP:PORT, or [IP]:PORT when |bracket| (per request: no printf). */
static void join_addr(char *addr, size_t addrcap, const char *ip, unsigned port, int bracket)
{
    char digits[5];
    size_t nd = 0, iplen = strlen(ip), n = 0;
    do {
        digits[nd++] = (char)('0' + port % 10);
        port /= 10;
    } while (port > 0 && nd < sizeof(digits));
    if (iplen + nd + 4 > addrcap)
        return; /* cannot happen with INET6_ADDRSTRLEN + 16; leave it empty */
    if (bracket)
        addr[n++] = '[';
    memcpy(addr + n, ip, iplen);
    n += iplen;
    if (bracket)
        addr[n++] = ']';
    addr[n++] = ':';
    while (nd > 0)
        addr[n++] = digits[--nd];
    addr[n] = '\0';
}

static void format_addr(h2o_conn_t *conn, char *ip, size_t ipcap, char *addr, size_t addrcap)
{
    struct sockaddr_storage ss;
    socklen_t len = conn->callbacks->get_peername(conn, (struct sockaddr *)&ss);
    ip[0] = addr[0] = '\0';
    if (len == 0)
        return;
    if (ss.ss_family == AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
        if (inet_ntop(AF_INET, &sin->sin_addr, ip, (socklen_t)ipcap) != NULL)
            join_addr(addr, addrcap, ip, ntohs(sin->sin_port), 0);
    } else if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
        int mapped = IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr);
        const void *a = mapped ? (const void *)&sin6->sin6_addr.s6_addr[12] : (const void *)&sin6->sin6_addr;
        if (inet_ntop(mapped ? AF_INET : AF_INET6, a, ip, (socklen_t)ipcap) != NULL)
            join_addr(addr, addrcap, ip, ntohs(sin6->sin6_port), !mapped);
    }
}

void proxy_take_absolute_target(h2o_req_t *req)
{
    h2o_iovec_t t = req->input.path;
    size_t ao, al, ro;
    if (req->version >= 0x200 || !route_absolute_form(t.base, t.len, &ao, &al, &ro))
        return;
    if (al != 0) /* "http:///x": no authority to take; Host stays */
        req->input.authority = h2o_iovec_init(t.base + ao, al);
    h2o_iovec_t rest = h2o_iovec_init(t.base + ro, t.len - ro);
    if (rest.len == 0 || rest.base[0] != '/') {
        /* "http://h" -> "/", "http://h?x" -> "/?x" */
        char *buf = h2o_mem_alloc_pool(&req->pool, rest.len + 1);
        buf[0] = '/';
        if (rest.len != 0)
            memcpy(buf + 1, rest.base, rest.len);
        rest = h2o_iovec_init(buf, rest.len + 1);
    }
    req->input.path = rest;
    req->path_normalized = h2o_url_normalize_path(&req->pool, rest.base, rest.len, &req->query_at, &req->norm_indexes);
}

static void on_header_drop(void *ctx, const char *name, size_t len, const char *why)
{
    proxy_stream *ps = ctx;
    LOG_WARN(LOG_EV_HTTP, "request for %s: dropped header %.*s: %s", ps->name, (int)(len > 64 ? 64 : len), name, why);
}

/* The streamed request body delivered bytes, or stopped short (upload_body_cb). */
static void on_body_event(void *data, const char *err)
{
    proxy_stream *ps = data;
    if (err != NULL) {
        LOG_INFO(LOG_EV_STREAM, "stream %u (%s): %s", ps->id, ps->name, err);
        int status = ps->hb != NULL ? h2_body_error_status(ps->hb) : ps->ub != NULL ? upload_body_error_status(ps->ub) : 400;
        upload_body_free(ps->ub);
        ps->ub = NULL;
        tunnel *t = reset(ps, MUX_CODE_CANCEL, err);
        if (t != NULL)
            tunnel_flush(t);
        if (ps->stopped || ps->final_sent)
            return;
        if (!ps->response_started) {
            ps->response_started = ps->final_sent = 1;
            if (status == 413)
                send_text(ps->req, 413, "Payload Too Large", "tunnelmux: %s\n", err);
            else
                send_text(ps->req, 400, "Bad Request", "tunnelmux: %s\n", err);
        } else {
            abort_response(ps);
        }
        return;
    }
    tunnel *t = ps->tunnel;
    pump_body(ps);
    if (t != NULL)
        tunnel_flush(t);
}

/* An HTTP/2 request with `expect: 100-continue` (h2o 2.2.5 never answers it over HTTP/2). */
static int user_expects_continue(h2o_req_t *req)
{
    ssize_t i = h2o_find_header(&req->headers, H2O_TOKEN_EXPECT, -1);
    return i != -1 &&
           h2o_lcstris(req->headers.entries[i].value.base, req->headers.entries[i].value.len, H2O_STRLIT("100-continue"));
}

/* The local service asked for the body (a relayed 100 head): "100 Continue" to the user, once. */
static void relay_continue(proxy_stream *ps)
{
    if (!ps->expect_relay || ps->continue_sent || ps->body_done)
        return;
    ps->continue_sent = 1;
    int rv = ps->ub != NULL ? upload_body_continue(ps->ub) : ps->hb != NULL ? h2_body_send_continue(ps->hb) : 0;
    if (rv != 0)
        LOG_INFO(LOG_EV_STREAM, "stream %u (%s): cannot send 100 Continue to the user", ps->id, ps->name);
}

/*
 * Sends |ps|'s request head (rebuilt from ps->req) as a new stream on |t|: the first time from
 * proxy_handle_request, again for a safe retry. Returns the stream id (> 0), 0 when out of memory,
 * or a negative MUX_ERR_* from mux_session_open_stream. Sets has_body, upgrade_req, body_done.
 */
static int32_t open_stream_on(proxy_stream *ps, tunnel *t)
{
    h2o_req_t *req = ps->req;
    char ip[INET6_ADDRSTRLEN + 1], addr[INET6_ADDRSTRLEN + 16];
    format_addr(req->conn, ip, sizeof(ip), addr, sizeof(addr));
    mux_header *in = h2o_mem_alloc_pool(&req->pool, sizeof(*in) * (req->headers.size + 1));
    size_t nin = 0;
    for (size_t i = 0; i < req->headers.size; i++) {
        const h2o_iovec_t *hn = req->headers.entries[i].name;
        if (ps->h1_held &&
            ((hn->len == UPLOAD_HIDDEN_HEADER_LEN && strncasecmp(hn->base, UPLOAD_HIDDEN_HEADER, hn->len) == 0) ||
             (hn->len == UPLOAD_HIDDEN_TE_HEADER_LEN && strncasecmp(hn->base, UPLOAD_HIDDEN_TE_HEADER, hn->len) == 0)))
            continue; /* the renamed framing header: the real one is built from |held| (none: chunked) */
        in[nin].name = (mux_iovec){(uint8_t *)hn->base, hn->len};
        in[nin].value = (mux_iovec){(uint8_t *)req->headers.entries[i].value.base, req->headers.entries[i].value.len};
        nin++;
    }
    ps->has_body = req->entity.base != NULL || ps->h1_held || ps->h2_held;
    /* -1: a chunked HTTP/1.1 body, an HTTP/2 body without Content-Length (chunked to the local service) */
    int64_t body_len = ps->h1_held ? (ps->held >= 0 ? ps->held : -1) : ps->h2_held ? ps->h2_len : (int64_t)req->entity.len;
    /* an upgrade with a request body is forwarded as a plain request (the body went first) */
    ps->upgrade_req = req->version < 0x200 && req->upgrade.base != NULL && (!ps->has_body || body_len == 0);
    if (ps->upgrade_req)
        ps->has_body = 0;
    const char *scheme = req->scheme != NULL ? req->scheme->name.base : ps->srv->scheme;
    headers_request_info info = {.scheme = scheme,
                                 .authority = req->input.authority.base,
                                 .authority_len = req->input.authority.len,
                                 .client_ip = ip,
                                 .keep_upgrade = ps->upgrade_req,
                                 .upgrade = req->upgrade.base,
                                 .upgrade_len = req->upgrade.len,
                                 .content_length = ps->has_body ? body_len : -1,
                                 .expect_continue = ps->expect_relay,
                                 .drop_authorization = ps->drop_authorization};
    headers_list hl;
    if (headers_build_request(&hl, in, nin, &info, on_header_drop, ps) != 0)
        return 0; /* out of memory */
    h2o_iovec_t path = req->input.path;
    mux_head head = {.flags = ps->upgrade_req                    ? MUX_HEAD_UPGRADE
                              : (!ps->has_body || body_len == 0) ? MUX_HEAD_END_STREAM
                                                                 : 0,
                     .method = {(uint8_t *)req->method.base, req->method.len},
                     .scheme = {(uint8_t *)scheme, strlen(scheme)},
                     .authority = {(uint8_t *)req->input.authority.base, req->input.authority.len},
                     .path = {(uint8_t *)path.base, path.len},
                     .remote_addr = {(uint8_t *)addr, strlen(addr)},
                     .headers = hl.v,
                     .nheaders = hl.n};
    if (ps->has_body && body_len == 0)
        ps->body_done = 1;
    int32_t id = mux_session_open_stream(t->sess, &head, ps);
    headers_list_free(&hl);
    return id;
}

int proxy_handle_request(server *srv, h2o_req_t *req)
{
    /* first: a held-back HTTP/1.1 body (upload.h) makes the connection non-persistent whatever the answer */
    int64_t held = upload_take(srv, req);
    h2_body_hook_upgraded(srv, req); /* later streams of an h2c-upgraded connection stream their bodies */
    int64_t h2_len = -1;
    int h1_held = held >= 0 || held == UPLOAD_LENGTH_CHUNKED; /* the connection streams it (upload.h) */
    int h2_held = !h1_held && h2_body_held(req, &h2_len);     /* an HTTP/2 body the hook holds (h2_body.h) */
    char name[ROUTE_MAX_NAME + 1], host[ROUTE_MAX_HOST + 1], shost[128];
    safe_host(req, shost, sizeof(shost));
    if (srv->shutting_down) {
        send_text(req, 503, "Service Unavailable", "tunnelmux: server is shutting down\n");
        return 0;
    }
    if (security_condemned(srv, req))
        return 0; /* answered 429: this connection exhausted its reset budget */
    if (security_reject_ambiguous(srv, req))
        return 0; /* answered 400: request smuggling attempt */
    int nl =
        route_lookup_name(req->input.authority.base, req->input.authority.len, srv->domain, name, sizeof(name), host, sizeof(host));
    if (nl < 0) {
        send_text(req, 404, "Not Found", "tunnelmux: host %s is not served here (expected NAME.%s)\n", shost, srv->domain);
        return 0;
    }
    if (h2o_memis(req->method.base, req->method.len, H2O_STRLIT("CONNECT"))) {
        send_text(req, 501, "Not Implemented",
                  "tunnelmux: CONNECT is not supported (no RFC 8441 extended CONNECT; use an HTTP/1.1 Upgrade for WebSockets)\n");
        return 0;
    }
    if (req->version >= 0x200 && (req->upgrade.base != NULL || h2o_find_header(&req->headers, H2O_TOKEN_UPGRADE, -1) != -1)) {
        /* RFC 9113 §8.2.2: no Upgrade in HTTP/2; h2o 2.2.5 has no RFC 8441 either */
        send_text(req, 400, "Bad Request",
                  "tunnelmux: Upgrade (WebSocket) needs HTTP/1.1; HTTP/2 has no Upgrade and this server has no RFC 8441 "
                  "extended CONNECT\n");
        return 0;
    }
    int known = 0;
    tunnel *t = registry_pick(&srv->reg, name, tunnel_load, NULL, &known);
    if (t == NULL || t->sess == NULL || t->dying) {
        if (known)
            send_text(req, 502, "Bad Gateway", "tunnelmux: tunnel %s is not connected (host %s)\n", name, shost);
        else
            send_text(req, 404, "Not Found", "tunnelmux: no tunnel named %s (host %s)\n", name, shost);
        return 0;
    }
    int drop_authorization = 0;
    if (security_admit(srv, t, req, name, &drop_authorization) != 0)
        return 0; /* answered (401, 429, 431) */

    proxy_stream *ps = h2o_mem_alloc_shared(&req->pool, sizeof(*ps), on_dispose);
    memset(ps, 0, sizeof(*ps));
    ps->gen.proceed = on_proceed;
    ps->gen.stop = on_stop;
    ps->srv = srv;
    srv->nrequests++; /* until on_dispose: the response has been fully handed to the public connection */
    h2o_linklist_insert(&srv->proxies, &ps->all);
    ps->req = req;
    ps->head_timeout.cb = on_head_timeout;
    ps->send_entry.cb = on_send_entry;
    ps->stall_entry.cb = on_stall_check;
    ps->conn = req->conn;
    ps->conn_id = req->conn->id;
    memcpy(ps->name, name, (size_t)nl + 1);

    ps->held = held;
    ps->h1_held = h1_held;
    ps->h2_held = h2_held;
    ps->h2_len = h2_len;
    ps->drop_authorization = drop_authorization;
    ps->expect_relay = (mux_session_capabilities(t->sess) & MUX_CAP_CONTINUE_RELAY) != 0 &&
                       (h1_held ? upload_defer_continue(srv, req) : h2_held && user_expects_continue(req));
    int32_t id = open_stream_on(ps, t);
    if (id == 0) {
        ps->response_started = ps->final_sent = 1;
        send_text(req, 503, "Service Unavailable", "tunnelmux: out of memory\n");
        return 0;
    }
    if (id <= 0) {
        if (id == MUX_ERR_TOO_MANY_STREAMS)
            warn_busy(srv, name);
        else
            LOG_WARN(LOG_EV_STREAM, "request for %s: cannot open stream: %s", name, mux_strerror(id));
        ps->response_started = ps->final_sent = 1;
        if (id == MUX_ERR_TOO_MANY_STREAMS)
            send_text(req, 503, "Service Unavailable", "tunnelmux: tunnel %s is busy (too many concurrent requests)\n", name);
        else if (id == MUX_ERR_HEADER_LIMIT)
            send_text(req, 431, "Request Header Fields Too Large", "tunnelmux: request headers too large for the tunnel\n");
        else
            send_text(req, 502, "Bad Gateway", "tunnelmux: tunnel %s cannot take the request (%s)\n", name, mux_strerror(id));
        return 0;
    }
    ps->id = (uint32_t)id;
    admin_tag_stream(req, ps->id); /* for the access log */
    ps->tunnel = t;
    h2o_linklist_insert(&t->streams, &ps->link);
    if (h1_held) {
        if (held >= 0) {
            ratelimit_charge(&t->rl_bytes, (double)held, server_now(srv));
            if (!ps->expect_relay) /* else counted as it arrives: the local service may never ask for it */
                admin_tag_body(req, (uint64_t)held);
        }
        ps->body_chunked = held == UPLOAD_LENGTH_CHUNKED;
        ps->ub = upload_body_start(srv, req, on_body_event, ps);
        if (ps->ub == NULL) {
            tunnel_flush(reset(ps, MUX_CODE_INTERNAL_ERROR, "cannot read the request body"));
            ps->response_started = ps->final_sent = 1;
            if (held == UPLOAD_LENGTH_CHUNKED)
                send_text(req, 400, "Bad Request", "tunnelmux: malformed chunked request body\n");
            else
                send_text(req, 500, "Internal Server Error", "tunnelmux: cannot read the request body\n");
            return 0;
        }
    } else if (h2_held) {
        if (h2_len >= 0 && !ps->expect_relay)
            admin_tag_body(req, (uint64_t)h2_len);
        ps->hb = h2_body_start(req, on_body_event, ps);
        if (ps->hb != NULL && ps->expect_relay)
            h2_body_expect_continue(ps->hb);
        if (ps->hb == NULL) {
            tunnel_flush(reset(ps, MUX_CODE_INTERNAL_ERROR, "cannot read the request body"));
            ps->response_started = ps->final_sent = 1;
            send_text(req, 400, "Bad Request", "tunnelmux: the request body cannot be read (over a limit or reset)\n");
            return 0;
        }
    }
    h2o_timeout_link(srv->ctx.loop, &srv->read_timeout, &ps->head_timeout);
    if (log_enabled(LOG_LVL_DEBUG)) {
        char ip[INET6_ADDRSTRLEN + 1], addr[INET6_ADDRSTRLEN + 16];
        format_addr(req->conn, ip, sizeof(ip), addr, sizeof(addr));
        h2o_iovec_t path = req->input.path;
        LOG_DEBUG(LOG_EV_STREAM, "stream %u (%s): %.*s %.*s from %s", ps->id, name, (int)req->method.len, req->method.base,
                  (int)(path.len > 200 ? 200 : path.len), path.base, addr);
    }
    pump_body(ps);
    tunnel_flush(t);
    return 0;
}

/* ---------------------------------------------------------------- mux side */

/* Copies status, reason and the headers of |head| into |req|'s response (hop-by-hop dropped). */
static void set_response_head(h2o_req_t *req, const mux_head *head, const char *default_reason)
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

static void start_upgrade(proxy_stream *ps, const mux_head *head);

/* Why a response head cannot become HTTP as it is (a header name that is not an RFC 9110 token,
 * a value with CR, LF or NUL), or NULL when it can. */
static const char *invalid_header(const mux_head *head)
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

void proxy_on_head(proxy_stream *ps, const mux_head *head)
{
    h2o_req_t *req = ps->req;
    LOG_DEBUG(LOG_EV_STREAM, "stream %u (%s): response head %u flags %u", ps->id, ps->name, head->status, head->flags);
    if (ps->raw || ps->response_started || ps->stopped)
        return;
    const char *bad = invalid_header(head);
    if (bad != NULL) { /* PROTOCOL.md §4.3, §9.4: a head we would have to alter fails its stream */
        LOG_INFO(LOG_EV_STREAM, "stream %u (%s): invalid response head from the client: %s", ps->id, ps->name, bad);
        tunnel *t = reset(ps, MUX_CODE_PROTOCOL_ERROR, bad);
        if (t != NULL)
            tunnel_flush(t);
        fail_before_head(ps, MUX_CODE_PROTOCOL_ERROR, "invalid response head from the client");
        return;
    }
    if (head->status == 101 && ps->upgrade_req) {
        start_upgrade(ps, head);
        return;
    }
    if (head->status < 200) {
        if (head->status == 101) { /* we never asked for an upgrade */
            tunnel *t = reset(ps, MUX_CODE_PROTOCOL_ERROR, "unexpected 101");
            (void)t;
            fail_before_head(ps, MUX_CODE_PROTOCOL_ERROR, "unexpected 101 Switching Protocols");
        }
        if (head->status == 100)
            relay_continue(ps); /* PROTOCOL.md §9.3: the user was waiting for it */
        return;                 /* other 1xx: h2o 2.2.5 cannot relay them; the final head follows */
    }
    if (h2o_timeout_is_linked(&ps->head_timeout))
        h2o_timeout_unlink(&ps->head_timeout);
    if (ps->upgrade_req && ps->tunnel != NULL && ps->id != 0) {
        /* upgrade refused: the request had no body; end our direction now (PROTOCOL.md §9.2) */
        mux_session_end_stream(ps->tunnel->sess, ps->id);
        ps->end_sent = 1;
        tunnel_flush(ps->tunnel);
    }
    set_response_head(req, head, "OK");
    ps->response_started = 1;
    h2o_start_response(req, &ps->gen);
}

static void raw_on_data(proxy_stream *rs, const uint8_t *data, size_t len);
static void raw_on_end(proxy_stream *rs);
static void raw_on_close(proxy_stream *rs, unsigned code);
static int raw_pump_input(proxy_stream *rs);
static void raw_free(proxy_stream *rs);

/* Keeps |data| as a slice of the tunnel read it lies in, when it is one (rxslab.h), it is not tiny,
 * it shares the slab of the slices already waiting and there is room for it, for the copied
 * bytes before it and for a copy after it. 1: taken. */
static int take_slice(proxy_stream *ps, const uint8_t *data, size_t len)
{
    if (len < ZC_MIN || ps->zc_n + 3 > ZC_MAX || ps->tunnel == NULL)
        return 0;
    rxslab *slab = tunnel_rx_slab(ps->tunnel, data, len);
    if (slab == NULL || (ps->zc_slab != NULL && ps->zc_slab != slab))
        return 0;
    if (ps->zc == NULL && (ps->zc = malloc(ZC_MAX * sizeof(*ps->zc))) == NULL)
        return 0;
    if (ps->zc_slab == NULL) {
        rxslab_ref(slab);
        ps->zc_slab = slab;
    }
    if (ps->zc_n == 0 && ps->pend_len > 0)
        ps->zc[ps->zc_n++] = h2o_iovec_init(NULL, ps->pend_len); /* what was copied before it */
    ps->zc[ps->zc_n++] = h2o_iovec_init(data, len);
    ps->zc_len += len;
    return 1;
}

void proxy_on_data(proxy_stream *ps, const uint8_t *data, size_t len)
{
    if (ps->raw) {
        raw_on_data(ps, data, len);
        return;
    }
    if (ps->stopped || ps->final_sent || ps->aborted || !ps->response_started) {
        if (ps->tunnel != NULL && ps->id != 0)
            mux_session_consume(ps->tunnel->sess, ps->id, len);
        return;
    }
    if (ps->tunnel != NULL)
        ratelimit_charge(&ps->tunnel->rl_bytes, (double)len, server_now(ps->srv));
    if (take_slice(ps, data, len)) {
        schedule_send(ps);
        return;
    }
    if (ps->pend_len + len > ps->pend_cap) {
        size_t cap = ps->pend_cap ? ps->pend_cap : 16384;
        while (cap < ps->pend_len + len)
            cap *= 2;
        uint8_t *b = realloc(ps->pend, cap);
        if (b == NULL) {
            reset(ps, MUX_CODE_INTERNAL_ERROR, "out of memory");
            abort_response(ps);
            return;
        }
        ps->pend = b;
        ps->pend_cap = cap;
    }
    memcpy(ps->pend + ps->pend_len, data, len);
    ps->pend_len += len;
    if (ps->zc_n > 0) { /* after slices: the copy is a piece of its own (take_slice left room) */
        if (ps->zc[ps->zc_n - 1].base == NULL)
            ps->zc[ps->zc_n - 1].len += len;
        else
            ps->zc[ps->zc_n++] = h2o_iovec_init(NULL, len);
    }
    schedule_send(ps);
}

void proxy_on_end(proxy_stream *ps)
{
    LOG_DEBUG(LOG_EV_STREAM, "stream %u (%s): response end", ps->id, ps->name);
    if (ps->raw) {
        raw_on_end(ps);
        return;
    }
    ps->ended = 1;
    schedule_send(ps);
}

void proxy_on_close(proxy_stream *ps, unsigned code, const char *reason, int by_peer)
{
    detach(ps);
    ps->id = 0;
    if (ps->raw) {
        LOG_DEBUG(LOG_EV_STREAM, "upgraded stream of %s closed: %s %s (by %s)", ps->name, mux_code_name(code), reason,
                  by_peer ? "client" : "server");
        raw_on_close(ps, code);
        return;
    }
    if (code == MUX_CODE_NO_ERROR && ps->ended)
        return; /* normal end; buffered bytes still drain to h2o */
    if (by_peer && !ps->response_started && !ps->stopped)
        LOG_INFO(LOG_EV_STREAM, "request for %s failed: the client sent CLOSE %s: %s", ps->name, mux_code_name(code), reason);
    else
        LOG_DEBUG(LOG_EV_STREAM, "stream of %s closed: %s %s (by %s)", ps->name, mux_code_name(code), reason,
                  by_peer ? "client" : "server");
    if (!ps->response_started) /* the client's reason is for our log only (PROTOCOL.md §9.5): it may name
                                  internal addresses; the public body names the code's cause */
        fail_before_head(ps, code, by_peer ? "" : reason);
    else
        abort_response(ps);
}

void proxy_on_writable(proxy_stream *ps)
{
    if (ps->raw)
        raw_pump_input(ps);
    else
        pump_body(ps);
}

/* 1 when the request may be sent twice (RFC 9110 §9.2.2): GET, HEAD, OPTIONS, or any method with
 * an Idempotency-Key header (draft-ietf-httpapi-idempotency-key-header). */
static int idempotent(h2o_req_t *req)
{
    h2o_iovec_t m = req->method;
    if (h2o_memis(m.base, m.len, H2O_STRLIT("GET")) || h2o_memis(m.base, m.len, H2O_STRLIT("HEAD")) ||
        h2o_memis(m.base, m.len, H2O_STRLIT("OPTIONS")))
        return 1;
    return h2o_find_header_by_str(&req->headers, H2O_STRLIT("idempotency-key"), -1) != -1;
}

/*
 * Safe retry (docs/SCALING.md): the tunnel of |ps| was lost before any response byte arrived. When
 * the request is idempotent, no body byte went into the lost tunnel (a body still in memory can be
 * sent again; a streamed one cannot), it is not an upgrade and was not retried already, it is sent
 * once more on another tunnel of the name. Returns 1 when it was.
 */
static int retry_elsewhere(proxy_stream *ps)
{
    server *srv = ps->srv;
    if (ps->retried || ps->response_started || ps->stopped || ps->upgrade_req || ps->ub != NULL || ps->hb != NULL ||
        ps->body_off > 0 || !idempotent(ps->req))
        return 0;
    tunnel *t = registry_pick(&srv->reg, ps->name, tunnel_load, NULL, NULL); /* the lost one left the registry */
    if (t == NULL || t->busy)
        return 0;
    ps->retried = 1;
    ps->body_done = 0;
    int32_t id = open_stream_on(ps, t);
    if (id <= 0) {
        LOG_INFO(LOG_EV_STREAM, "request for %s: safe retry on %s impossible: %s", ps->name, t->peer,
                 id == 0 ? "out of memory" : mux_strerror(id));
        return 0;
    }
    ps->id = (uint32_t)id;
    ps->tunnel = t;
    h2o_linklist_insert(&t->streams, &ps->link);
    admin_tag_stream(ps->req, ps->id);
    if (srv->metrics != NULL)
        metrics_on_retry(srv->metrics);
    LOG_INFO(LOG_EV_STREAM, "request for %s: tunnel lost before the response, retried on %s (stream %u): %.*s", ps->name, t->peer,
             ps->id, (int)ps->req->method.len, ps->req->method.base);
    h2o_timeout_link(srv->ctx.loop, &srv->read_timeout, &ps->head_timeout);
    pump_body(ps);
    tunnel_flush(t);
    return 1;
}

void proxy_on_tunnel_lost(proxy_stream *ps)
{
    ps->tunnel = NULL;
    ps->id = 0;
    if (ps->raw) {
        raw_on_close(ps, MUX_CODE_CANCEL);
        return;
    }
    if (h2o_timeout_is_linked(&ps->head_timeout))
        h2o_timeout_unlink(&ps->head_timeout);
    if (retry_elsewhere(ps))
        return;
    if (!ps->response_started && !ps->stopped) {
        char host[128];
        safe_host(ps->req, host, sizeof(host));
        ps->response_started = ps->final_sent = 1;
        send_text(ps->req, 502, "Bad Gateway", "tunnelmux: tunnel %s was lost before the response (host %s)\n", ps->name, host);
    } else {
        abort_response(ps);
    }
}

/* ---------------------------------------------------------------- upgraded (raw) streams */

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
    free(rs->pend);
    free(rs->inflight);
    free(rs);
}

/* Full close: resets the stream (when still open) and closes the public socket at once. */
static void raw_abort(proxy_stream *rs, unsigned code, const char *why)
{
    LOG_DEBUG(LOG_EV_STREAM, "upgraded stream %u (%s): closing: %s", rs->id, rs->name, why);
    tunnel *t = reset(rs, code, why);
    raw_free(rs);
    if (t != NULL)
        tunnel_flush(t);
}

/* Frees |rs| once the stream is gone and nothing is left to write. Returns 1 when freed. */
static int raw_maybe_finish(proxy_stream *rs)
{
    if (!rs->raw_closed || rs->upgrading || rs->raw_writing || rs->pend_len > 0)
        return 0;
    raw_free(rs);
    return 1;
}

static void raw_on_written(h2o_socket_t *sock, const char *err);

/* Gives back big drained buffers: a burst must not leave an idle WebSocket holding megabytes
 * (h2o reads a socket until EAGAIN, so its input buffer grows to the kernel's receive buffer). */
static void raw_trim(proxy_stream *rs)
{
    if (rs->pend_len == 0 && rs->pend_cap > RAW_KEEP_CAP) {
        free(rs->pend);
        rs->pend = NULL;
        rs->pend_cap = 0;
    }
    if (!rs->raw_writing && rs->inflight_cap > RAW_KEEP_CAP) {
        free(rs->inflight);
        rs->inflight = NULL;
        rs->inflight_cap = 0;
    }
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
    if (rs->pend_len > 0) {
        h2o_iovec_t bufs[ZC_MAX + 1]; /* one: raw streams copy (raw_on_data) */
        size_t nbufs = take_pending(rs, bufs);
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
            tunnel *t = detach(rs);
            rs->id = 0;
            if (t != NULL && id != 0 && !rs->end_sent)
                mux_session_end_stream(t->sess, id);
            else if (t != NULL && id != 0)
                mux_session_reset_stream(t->sess, id, MUX_CODE_CANCEL, "public TLS connection closed");
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
    size_t n = rs->inflight_len;
    rs->raw_writing = 0;
    rs->inflight_len = 0;
    if (err != NULL) {
        raw_abort(rs, MUX_CODE_CANCEL, "public connection write failed");
        return;
    }
    tunnel *t = rs->tunnel;
    if (t != NULL && rs->id != 0 && n > 0)
        mux_session_consume(t->sess, rs->id, n); /* the bytes have left our hands */
    raw_touch(rs);
    if (rs->pend_len == 0)
        raw_trim(rs);
    raw_send_more(rs); /* may free rs */
    if (t != NULL)
        tunnel_flush(t);
}

static void raw_on_read(h2o_socket_t *sock, const char *err);

/* Hands the user's bytes waiting in sock->input to the session while it takes them; pauses
 * reading when it does not (on_writable resumes); ends our direction after the user's EOF.
 * Returns 1 when |rs| was freed. */
static int raw_pump_input(proxy_stream *rs)
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
        ssize_t w = mux_session_write(t->sess, rs->id, (const uint8_t *)sock->input->bytes, n);
        if (w == MUX_ERR_AGAIN)
            break;
        if (w < 0) {
            raw_abort(rs, MUX_CODE_INTERNAL_ERROR, "stream write failed");
            return 1;
        }
        ratelimit_charge(&t->rl_bytes, (double)w, server_now(rs->srv));
        h2o_buffer_consume(&sock->input, (size_t)w);
    }
    if (sock->input->size > 0) {
        if (!rs->read_paused && !rs->user_eof) {
            rs->read_paused = 1;
            h2o_socket_read_stop(sock);
        }
    } else if (rs->user_eof) {
        rs->end_sent = 1;
        mux_session_end_stream(t->sess, rs->id); /* may close the stream: rs freed */
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
    raw_pump_input(rs);
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
    int one = 1;
    setsockopt(h2o_socket_get_fd(sock), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    LOG_DEBUG(LOG_EV_STREAM, "upgraded stream %u (%s): raw mode", rs->id, rs->name);
    raw_touch(rs);
    tunnel *t = rs->tunnel;
    h2o_socket_read_start(sock, raw_on_read);
    if (sock->input->size > 0 && raw_pump_input(rs))
        return;
    raw_send_more(rs); /* bytes that arrived meanwhile; may free rs */
    if (t != NULL)
        tunnel_flush(t);
}

/* The local service switched protocols: write the 101 and take the socket (see the top). */
static void start_upgrade(proxy_stream *ps, const mux_head *head)
{
    h2o_req_t *req = ps->req;
    tunnel *t = ps->tunnel;
    if (h2o_timeout_is_linked(&ps->head_timeout))
        h2o_timeout_unlink(&ps->head_timeout);
    proxy_stream *rs = t != NULL ? calloc(1, sizeof(*rs)) : NULL;
    if (rs == NULL) {
        reset(ps, MUX_CODE_INTERNAL_ERROR, "out of memory");
        fail_before_head(ps, MUX_CODE_INTERNAL_ERROR, "out of memory");
        return;
    }
    rs->srv = ps->srv;
    memcpy(rs->name, ps->name, sizeof(rs->name));
    rs->raw = 1;
    rs->upgrading = 1;
    rs->response_started = 1;
    rs->idle_entry.cb = on_raw_idle;
    rs->tunnel = t;
    rs->id = ps->id;
    if (h2o_linklist_is_linked(&ps->all)) /* the heap copy is the request in progress from now on */
        h2o_linklist_unlink(&ps->all);
    h2o_linklist_insert(&rs->srv->proxies, &rs->all);
    if (h2o_linklist_is_linked(&ps->link))
        h2o_linklist_unlink(&ps->link);
    h2o_linklist_insert(&t->streams, &rs->link);
    mux_session_set_stream_user_data(t->sess, rs->id, rs);
    ps->tunnel = NULL;
    ps->id = 0;
    ps->response_started = ps->final_sent = 1;

    set_response_head(req, head, "Switching Protocols");
    req->res.status = 101;
    req->res.content_length = SIZE_MAX;
    h2o_http1_upgrade(req, NULL, 0, on_upgraded, rs);
}

static void raw_on_data(proxy_stream *rs, const uint8_t *data, size_t len)
{
    if (rs->peer_fin || rs->shut_wr) {
        if (rs->tunnel != NULL && rs->id != 0)
            mux_session_consume(rs->tunnel->sess, rs->id, len);
        return;
    }
    if (rs->pend_len + len > rs->pend_cap) {
        size_t cap = rs->pend_cap ? rs->pend_cap : 16384;
        while (cap < rs->pend_len + len)
            cap *= 2;
        uint8_t *b = realloc(rs->pend, cap);
        if (b == NULL) {
            if (rs->upgrading) { /* on_upgraded frees */
                rs->aborted = rs->raw_closed = 1;
                tunnel *t = reset(rs, MUX_CODE_INTERNAL_ERROR, "out of memory");
                if (t != NULL)
                    tunnel_flush(t);
            } else {
                raw_abort(rs, MUX_CODE_INTERNAL_ERROR, "out of memory");
            }
            return;
        }
        rs->pend = b;
        rs->pend_cap = cap;
    }
    if (rs->tunnel != NULL)
        ratelimit_charge(&rs->tunnel->rl_bytes, (double)len, server_now(rs->srv)); /* RATE_LIMIT_BPS counts raw bytes too */
    memcpy(rs->pend + rs->pend_len, data, len);
    rs->pend_len += len;
    raw_touch(rs);
    raw_send_more(rs);
}

static void raw_on_end(proxy_stream *rs)
{
    rs->peer_fin = 1;
    LOG_DEBUG(LOG_EV_STREAM, "upgraded stream %u (%s): client ended its direction", rs->id, rs->name);
    raw_send_more(rs); /* may free rs */
}

/* The stream is gone (NO_ERROR: both directions ended) or the tunnel was lost; |rs| is detached. */
static void raw_on_close(proxy_stream *rs, unsigned code)
{
    rs->raw_closed = 1;
    if (code != MUX_CODE_NO_ERROR) {
        rs->aborted = 1;
        rs->pend_len = 0;
    }
    if (rs->upgrading)
        return; /* on_upgraded finishes */
    if (rs->aborted) {
        raw_free(rs);
        return;
    }
    raw_send_more(rs); /* drains, shuts down, frees */
}
