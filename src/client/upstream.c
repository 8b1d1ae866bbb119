/*
 * tunnelmux client — one local connection per stream: an lws RAW client connection to
 * LOCAL_HOST:LOCAL_PORT (TLS through tls_membio for https, or detection), the request rebuilt by
 * http1.c, the response parsed with picohttpparser and streamed back with mux_session_write under
 * backpressure (docs/PROTOCOL.md §6).
 *
 * Lifetime: an upstream lives from on_head until on_stream_close (the stream) AND until no entry
 * point is running on it (|busy|); its lws connection is detached (user pointer NULL) and closed
 * when it is freed, or forgotten when lws closes it first.
 */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "client.h"
#include "common/log.h"
#include "conn_queue.h"
#include "continue_relay.h"
#include "mux/ws.h"
#include "resolve.h"
#include "tls_membio.h"

#define UPSTREAM_HEAD_MAX (80 * 1024)
#define UPSTREAM_DETECT_MS 1500
#define UPSTREAM_WRITE_NOW (256 * 1024) /* request bytes buffered that are written without waiting for the turn's end */
/* A new local connection counts against LOCAL_MAX_CONNECTING until its first byte, or this long
 * (a long poll on a fresh connection must not hold back every other new connection) */
#define UPSTREAM_OPENING_MAX_MS 250

typedef enum {
    U_QUEUED = 0, /* waiting for a local connection slot (LOCAL_MAX_CONNECTIONS, conn_queue.h) */
    U_CONNECTING, /* TCP connect in progress */
    U_TLS,        /* TLS handshake (or schema detection) in progress */
    U_REQUEST,    /* request flowing, waiting for the response head */
    U_BODY,       /* final head sent, response body flowing */
    U_RAW,        /* 101: raw bytes both ways */
    U_DONE,       /* our direction ended (or is about to, see end_pending) */
} ustate;

struct upstream {
    client_link link;   /* first member: the tunnel's list */
    client_link flushq; /* in c->flushq while request bytes wait for the end of the loop turn */
    tunnel *tun;        /* NULL once the stream is gone */
    client *c;
    uint32_t id;
    struct lws *wsi;
    tls_membio *tls;
    ustate state;
    int busy;         /* entry points running on this upstream */
    int dead;         /* the stream is gone: free when busy drops to 0 */
    int detecting;    /* this connection is a schema probe (ClientHello + CRLFCRLF), never used for the request */
    int attempt;      /* index of the LOCAL_HOST address tried (local_addrs_pick) */
    int got_bytes;    /* something came back on this connection */
    int connect_sync; /* inside lws_client_connect_via_info */
    int sync_failed;
    int head_request;
    http1_request req;
    uint64_t req_body_seen;
    int req_fin;
    int need_shutdown; /* raw mode: shut down our write side once |out| is drained */
    /* plaintext bytes for the local socket: out[out_off, out_len) are still to be written;
     * out_consume of them are body bytes whose credit returns as they leave */
    uint8_t *out;
    size_t out_off, out_len, out_cap, out_consume;
    uint64_t sent_on_conn; /* bytes written to the current connection, its request head first (> req.len:
                              body bytes went out, so a failed reused connection cannot be retried) */
    /* response head accumulation */
    char *hbuf;
    size_t hlen, hcap, hlast;
    http1_response *resp;
    http1_chunked chunked;
    uint64_t body_left;
    http1_resp_body body;
    /* response bytes the session did not accept yet */
    uint8_t *pend;
    size_t pend_len, pend_cap;
    int paused;
    int end_pending;
    lws_sorted_usec_list_t sul;
    int64_t head_deadline, detect_deadline;
    int64_t write_deadline; /* bytes for the local socket pending: WRITE_TIMEOUT from the last progress (0 = idle) */
    /* keep-alive (docs/OPERATIONS.md): the connection goes back to c->pool after a clean exchange */
    int keep_alive; /* the final response allows another request on this connection */
    int no_reuse;   /* bytes beyond the response, or anything else that rules reuse out */
    int failed;     /* the stream was reset */
    int reused;     /* this connection came from the pool */
    int retried;    /* already retried once on a fresh connection */
    int no_pool;    /* connect fresh (the retry) */
    /* local connection budget (conn_queue.h, docs/OPERATIONS.md "Local connections") */
    conn_waiter qw;           /* in c->lq while U_QUEUED */
    int has_slot;             /* holds one of the LOCAL_MAX_CONNECTIONS slots */
    int upgraded;             /* 101 relayed: the connection left the budget, counted in c->local_upgraded */
    int64_t queued_ms;        /* how long the stream waited for its slot */
    int64_t connect_deadline; /* LOCAL_CONNECT_TIMEOUT of the current attempt (TCP connect and TLS handshake) */
    int opening;              /* the current connection counts in c->lq.opening (LOCAL_MAX_CONNECTING) */
    int64_t opening_deadline; /* ... until its first byte or this time (UPSTREAM_OPENING_MAX_MS) */
    int connect_timed_out;    /* the last attempt ended by LOCAL_CONNECT_TIMEOUT */
    continue_relay expect;    /* Expect: 100-continue decided by the local service (continue_relay.h) */
};

/* ---------------------------------------------------------------- keep-alive pool
 *
 * An idle connection is an lws RAW wsi whose user pointer is NULL and whose opaque user data is its
 * upool_conn. Anything it receives while idle (bytes, EOF) closes it; lws closes it after
 * UPSTREAM_POOL_IDLE_S. It is handed out most-recent first to a stream of the same schema. */

typedef struct upool_conn {
    client_link link; /* c->pool */
    client *c;
    struct lws *wsi;
    tls_membio *tls;
} upool_conn;

static void pool_init(client *c)
{
    if (c->pool.next == NULL)
        c->pool.next = c->pool.prev = &c->pool;
}

static void pool_unlink(upool_conn *e)
{
    if (e->link.next == NULL)
        return;
    e->link.prev->next = e->link.next;
    e->link.next->prev = e->link.prev;
    e->link.next = e->link.prev = NULL;
    e->c->pool_n--;
}

/* Frees |e|; asks lws to close its connection when |close_wsi|. */
static void pool_drop(upool_conn *e, int close_wsi)
{
    pool_unlink(e);
    if (e->wsi != NULL) {
        lws_set_opaque_user_data(e->wsi, NULL);
        if (close_wsi)
            lws_set_timeout(e->wsi, 1, LWS_TO_KILL_ASYNC);
    }
    tls_membio_del(e->tls);
    free(e);
}

void upstream_pool_clear(client *c)
{
    c->lq_closed = 1;
    lws_sul_cancel(&c->lq_sul);
    if (c->pool.next == NULL)
        return;
    for (int guard = 0; guard < UPSTREAM_POOL_MAX + 8 && c->pool.next != &c->pool; guard++)
        pool_drop((upool_conn *)c->pool.next, 1);
}

/* Takes the most recent idle connection of the right kind (TLS or not), or NULL. */
static upool_conn *pool_take(client *c, int https)
{
    for (int guard = 0; guard < UPSTREAM_POOL_MAX + 8 && c->pool_n > 0; guard++) {
        upool_conn *e = (upool_conn *)c->pool.next;
        pool_unlink(e);
        if ((e->tls != NULL) == (https != 0))
            return e;
        pool_drop(e, 1);
    }
    return NULL;
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

/* Moves the connection of |u| into the pool. Returns 1 when it did (u->wsi, u->tls are NULL then). */
static int pool_put(upstream *u)
{
    client *c = u->c;
    if (c->stopping || c->lws == NULL)
        return 0;
    pool_init(c);
    upool_conn *e = calloc(1, sizeof(*e));
    if (e == NULL)
        return 0;
    if (c->pool_n >= UPSTREAM_POOL_MAX)
        pool_drop((upool_conn *)c->pool.prev, 1); /* the oldest */
    e->c = c;
    e->wsi = u->wsi;
    e->tls = u->tls;
    lws_set_wsi_user(e->wsi, NULL);
    lws_set_opaque_user_data(e->wsi, e);
    lws_set_timeout(e->wsi, PENDING_TIMEOUT_USER_OK, UPSTREAM_POOL_IDLE_S);
    if (u->paused)
        lws_rx_flow_control(e->wsi, 1); /* an idle connection must see EOF */
    e->link.next = c->pool.next;
    e->link.prev = &c->pool;
    c->pool.next->prev = &e->link;
    c->pool.next = &e->link;
    c->pool_n++;
    u->wsi = NULL;
    u->tls = NULL;
    return 1;
}

static void flushq_remove(upstream *u)
{
    if (u->flushq.next == NULL)
        return;
    u->flushq.prev->next = u->flushq.next;
    u->flushq.next->prev = u->flushq.prev;
    u->flushq.next = u->flushq.prev = NULL;
}

/* Queues |u| for upstream_flush_queued() at the end of the loop turn. */
static void flushq_add(upstream *u)
{
    client *c = u->c;
    if (u->flushq.next != NULL)
        return;
    if (c->flushq.next == NULL)
        c->flushq.next = c->flushq.prev = &c->flushq;
    u->flushq.next = &c->flushq;
    u->flushq.prev = c->flushq.prev;
    c->flushq.prev->next = &u->flushq;
    c->flushq.prev = &u->flushq;
    client_want_flush(c);
}

/* ---------------------------------------------------------------- local connection budget */

static void lq_dispatch_cb(lws_sorted_usec_list_t *sul);

/* A slot may have become free: hand it to the oldest waiting stream after this callback (never
 * from inside another stream's callback, so no stream starts connecting while another is torn
 * down). */
static void lq_kick(client *c)
{
    if (c->lws == NULL || c->lq_closed)
        return; /* (while draining on SIGTERM the queue is still served: those requests are in flight) */
    lws_sul_schedule(c->lws, 0, &c->lq_sul, lq_dispatch_cb, 0);
}

/* An idle keep-alive connection can serve the next stream without opening one (pool_take may still
 * find only connections of the other schema: then one more opens than LOCAL_MAX_CONNECTING). */
static int lq_idle(const client *c)
{
    return c->pool_n > 0 && c->schema != LOCAL_SCHEMA_DETECT;
}

/* The connection of |u| stops counting as opening: it answered, closed, or waited long enough. */
static void opening_end(upstream *u)
{
    if (!u->opening)
        return;
    u->opening = 0;
    u->opening_deadline = 0;
    conn_queue_open_end(&u->c->lq);
    lq_kick(u->c);
}

/* |u| gives its local connection slot back (its connection is pooled, closed, or upgraded). */
static void slot_release(upstream *u)
{
    if (!u->has_slot)
        return;
    u->has_slot = 0;
    conn_queue_release(&u->c->lq);
    lq_kick(u->c);
}

static void u_free(upstream *u)
{
    flushq_remove(u);
    lws_sul_cancel(&u->sul);
    continue_relay_stop(&u->expect);
    if (conn_queue_cancel(&u->c->lq, &u->qw, client_now_ms()))
        lq_kick(u->c); /* (no slot freed, but the queue may have drained: end of a refusal burst) */
    opening_end(u);
    if (u->upgraded) {
        u->upgraded = 0;
        u->c->local_upgraded--;
    }
    if (u->wsi != NULL && u_reusable(u))
        pool_put(u);
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

static void u_hold(upstream *u)
{
    u->busy++;
}

/* Ends an entry point; frees |u| when it died meanwhile. Returns 1 when freed. */
static int u_release(upstream *u)
{
    /* u->tun is already NULL after a reset or a clean end: the last frames (CLOSE, or a head with
     * END_STREAM that closed the stream) still need a flush, so kick the client's tunnel even when
     * |u| is freed here (all of them: |u| no longer says which one it was on). */
    client *c = u->c;
    int freed = 0;
    if (--u->busy == 0 && u->dead) {
        u_free(u);
        freed = 1;
    }
    tunnel_kick_all(c);
    return freed;
}

static mux_session *u_session(upstream *u)
{
    return u->tun ? tunnel_session(u->tun) : NULL;
}

/* Aborts the stream (CLOSE |code|); on_stream_close marks |u| dead. */
static void u_reset(upstream *u, unsigned code, const char *reason)
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
        tunnel_remove_link(&u->link);
    u->tun = NULL;
}

static int append(uint8_t **buf, size_t *len, size_t *cap, const void *p, size_t n)
{
    if (*len + n > *cap) {
        size_t nc = *cap ? *cap : 16384;
        while (nc < *len + n)
            nc *= 2;
        uint8_t *b = realloc(*buf, nc);
        if (b == NULL)
            return -1;
        *buf = b;
        *cap = nc;
    }
    memcpy(*buf + *len, p, n);
    *len += n;
    return 0;
}

static void set_nodelay(struct lws *wsi)
{
    int fd = lws_get_socket_fd(wsi);
    int one = 1;
    if (fd >= 0)
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* ---------------------------------------------------------------- timers */

static void u_timer_cb(lws_sorted_usec_list_t *sul);

/* The current attempt is establishing its connection (LOCAL_CONNECT_TIMEOUT applies): TCP
 * connect, or the TLS handshake of an https local service (a schema probe has its own deadline). */
static int u_connecting(const upstream *u)
{
    return u->connect_deadline > 0 && (u->state == U_CONNECTING || (u->state == U_TLS && !u->detecting));
}

static void u_arm_timer(upstream *u)
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
    int64_t delay = next - client_now_ms();
    if (delay < 0)
        delay = 0;
    lws_sul_schedule(u->c->lws, 0, &u->sul, u_timer_cb, (lws_usec_t)delay * 1000);
}

static void u_connect(upstream *u);

/* Drops the current local connection (its callbacks no longer reach |u|). */
static void u_detach(upstream *u)
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

/* The schema probe has its answer (|https| or not): remember it and open the real connection. */
static void probe_decided(upstream *u, int https, const char *why)
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

static void write_stalled(upstream *u);
static void connect_next(upstream *u);

static void u_timer_cb(lws_sorted_usec_list_t *sul)
{
    upstream *u = lws_container_of(sul, upstream, sul);
    u_hold(u);
    int64_t now = client_now_ms();
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

/* ---------------------------------------------------------------- response towards the tunnel */

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
static void response_complete(upstream *u)
{
    u->state = U_DONE;
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
        u->state = U_RAW;
        /* an upgraded connection lives as long as the WebSocket: it leaves LOCAL_MAX_CONNECTIONS
         * (bounded by MAX_STREAMS instead) so open WebSockets never starve plain requests */
        u->upgraded = 1;
        u->c->local_upgraded++;
        slot_release(u);
    } else if (h.flags & MUX_HEAD_END_STREAM) {
        u->state = U_DONE;
    } else {
        u->state = U_BODY;
        u->body_left = resp->content_length;
        http1_chunked_init(&u->chunked);
    }
    u_arm_timer(u);
    return 0;
}

/* Plaintext from the local service. 0 or -1 (u reset; stop reading).
 * While the head is awaited, at most UPSTREAM_HEAD_MAX bytes are buffered: a read that carries the
 * head and a large piece of body (up to CLIENT_IO_BUF) is split, the body part goes on directly. */
static int on_local_plain(upstream *u, uint8_t *p, size_t n)
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

/* Decrypts what TLS has and processes it, unless paused. 0 or -1. */
static int drain_tls(upstream *u)
{
    for (int i = 0; i < 4096 && !u->paused && !u->dead; i++) {
        ssize_t n = tls_membio_read(u->tls, u->c->scratch, CLIENT_SCRATCH);
        if (n == 0)
            return 0;
        if (n < 0)
            return -1; /* close_notify or error: handled as EOF by the close callback */
        if (on_local_plain(u, u->c->scratch, (size_t)n) != 0)
            return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------- request towards the local service */

static int out_add(upstream *u, const void *p, size_t n)
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
static int local_write(upstream *u, const uint8_t *p, size_t n)
{
    if (n > 0 && tls_membio_write(u->tls, p, n) != 0)
        return -1;
    uint8_t buf[16384 + 512];
    size_t k;
    while ((k = tls_membio_take(u->tls, buf, sizeof(buf))) > 0)
        if (lws_write(u->wsi, buf, k, LWS_WRITE_RAW) < 0)
            return -1;
    return 0;
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
static void track_write(upstream *u, int progress)
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
    if (!out_pending(u)) {
        if (u->write_deadline == 0)
            return;
        u->write_deadline = 0;
    } else if (u->write_deadline == 0 || progress) {
        u->write_deadline = client_now_ms() + u->c->opt->write_timeout_ms;
    } else {
        return;
    }
    u_arm_timer(u);
}

/* Nothing could be written to the local service for WRITE_TIMEOUT. While the response is still
 * due, the stream fails with CLOSE(TIMEOUT); once the response is complete, the rest of the
 * request body is discarded (a service may answer without reading the whole body). */
static void write_stalled(upstream *u)
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
static int flush_out(upstream *u)
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

/* ---------------------------------------------------------------- connecting */

static void connect_failed(upstream *u, const char *why)
{
    if (!u->c->schema_fixed)
        u->c->schema = LOCAL_SCHEMA_DETECT; /* re-detect after a connect failure */
    u_reset(u, MUX_CODE_CONNECT_ERROR, why);
}

/* Seconds after which the LOCAL_HOST address list is made again (at the start of a connection). */
#define UPSTREAM_RESOLVE_TTL_MS 30000

/* The connection to the current address failed before it was established (refused, unreachable):
 * try the next address of LOCAL_HOST, or fail the stream with CONNECT_ERROR when all were tried.
 * A refusal is final for that address: it is never retried with the other schema. */
static void connect_next(upstream *u)
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

static void u_connect(upstream *u)
{
    client *c = u->c;
    u->sent_on_conn = 0;
    if (u->attempt == 0 && !u->no_pool && c->schema != LOCAL_SCHEMA_DETECT && c->pool_n > 0) {
        upool_conn *e = pool_take(c, c->schema == LOCAL_SCHEMA_HTTPS);
        if (e != NULL) {
            u->wsi = e->wsi;
            u->tls = e->tls;
            free(e);
            lws_set_opaque_user_data(u->wsi, NULL);
            lws_set_wsi_user(u->wsi, u);
            lws_set_timeout(u->wsi, NO_PENDING_TIMEOUT, 0);
            u->detecting = 0;
            u->got_bytes = 0;
            u->reused = 1;
            u->state = U_REQUEST;
            flush_out(u);
            return;
        }
    }
    u->reused = 0;
    /* idle pooled connections count towards LOCAL_MAX_CONNECTIONS too: a fresh one replaces the
     * oldest idle one (of the other schema, or left over) when the budget is used up */
    for (int guard = 0;
         guard < UPSTREAM_POOL_MAX + 8 && c->pool_n > 0 && c->lq.max_active > 0 && c->lq.active + c->pool_n > c->lq.max_active;
         guard++)
        pool_drop((upool_conn *)c->pool.prev, 1);
    if (u->attempt == 0 && (c->addrs.n == 0 || client_now_ms() - c->addrs.resolved_ms > UPSTREAM_RESOLVE_TTL_MS)) {
        const char *reason = "";
        if (local_addrs_resolve(&c->addrs, c->opt->local_host, &reason) < 0) {
            char why[640];
            snprintf(why, sizeof(why), "cannot resolve %s: %s", c->opt->local_host, reason);
            connect_failed(u, why);
            return;
        }
        c->addrs.resolved_ms = client_now_ms();
    }
    const local_addr *a = local_addrs_pick(&c->addrs, u->attempt);
    if (a == NULL) {
        connect_next(u);
        return;
    }
    int https = c->schema != LOCAL_SCHEMA_HTTP;
    u->detecting = c->schema == LOCAL_SCHEMA_DETECT;
    u->got_bytes = 0;
    u->state = U_CONNECTING;
    u->connect_timed_out = 0;
    u->connect_deadline = client_now_ms() + c->opt->local_connect_timeout_ms;
    c->metrics.local_connects++;
    if (!u->opening) {
        u->opening = 1;
        conn_queue_open_begin(&c->lq);
    }
    u->opening_deadline = client_now_ms() + UPSTREAM_OPENING_MAX_MS;
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

/* ---------------------------------------------------------------- mux callbacks */

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
    tunnel *t = user_data;
    client *c = tunnel_client(t);
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
    u->tun = t;
    u->id = id;
    u->head_request = head->method.len == 4 && memcmp(head->method.base, "HEAD", 4) == 0;
    u->head_deadline = client_now_ms() + c->opt->read_timeout_ms;
    tunnel_add_link(t, &u->link);
    mux_session_set_stream_user_data(s, id, u);
    if (continue_relay_wanted(s, head))
        continue_relay_start(&u->expect, c->lws, c->opt->expect_timeout_ms, on_expect_timeout);
    LOG_DEBUG(LOG_EV_STREAM, "stream %u: %.*s %.*s%s", id, (int)head->method.len, (const char *)head->method.base,
              (int)head->path.len, (const char *)head->path.base, (head->flags & MUX_HEAD_UPGRADE) ? " (upgrade)" : "");
    u_hold(u);
    if (out_add(u, u->req.buf, u->req.len) == 0) {
        switch (conn_queue_acquire(&c->lq, &u->qw, lq_idle(c), client_now_ms())) {
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
    int64_t now = client_now_ms(), wait = 0;
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
        tunnel_remove_link(&u->link);
    u->tun = NULL;
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
    tunnel_remove_link(l);
    u->tun = NULL;
    u->dead = 1;
    if (u->busy == 0)
        u_free(u);
}

/* ---------------------------------------------------------------- lws callback */

/* A reused keep-alive connection closed before any response byte (the local service closed it
 * while it was idle): the request goes once more on a fresh connection. */
static void retry_fresh(upstream *u)
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

/* Callbacks of an idle pooled connection |e|: any byte or EOF ends it. */
static int pool_callback(upool_conn *e, enum lws_callback_reasons reason)
{
    switch (reason) {
    case LWS_CALLBACK_RAW_RX:
        pool_drop(e, 0);
        return -1; /* an idle connection has nothing to say: lws closes it */
    case LWS_CALLBACK_RAW_CLOSE:
    case LWS_CALLBACK_WSI_DESTROY:
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
        pool_drop(e, 0);
        return 0;
    default:
        return 0;
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
        upool_conn *e = lws_get_opaque_user_data(wsi);
        if (e != NULL && e->wsi == wsi)
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
            u->state = U_TLS;
            uint8_t probe[4096];
            size_t k = tls_membio_take(u->tls, probe, sizeof(probe) - 4);
            memcpy(probe + k, "\r\n\r\n", 4);
            if (k == 0 || lws_write(wsi, probe, k + 4, LWS_WRITE_RAW) < 0)
                rv = -1;
            u->detect_deadline = client_now_ms() + UPSTREAM_DETECT_MS;
            u_arm_timer(u);
        } else if (u->tls != NULL) {
            u->state = U_TLS;
            if (local_write(u, NULL, 0) != 0)
                rv = -1;
        } else {
            u->state = U_REQUEST;
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
                    u->state = U_REQUEST;
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
            u->write_deadline = client_now_ms() + u->c->opt->write_timeout_ms; /* lws drained its buffer: progress */
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
