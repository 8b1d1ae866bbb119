/*
 * tunnelmux client — an upstream (one local connection per stream) as the upstream files share
 * it: the struct and its state, the limits, and the lifecycle functions of upstream_stream.c.
 * Not for other modules: they use upstream.h. Each other upstream file has its own header:
 * upstream_connect.h, upstream_request.h, upstream_response.h, upstream_pool.h.
 *
 * Lifetime: an upstream lives from on_head until on_stream_close (the stream) AND until no entry
 * point is running on it (|busy|); its lws connection is detached (user pointer NULL) and closed
 * when it is freed, or forgotten when lws closes it first.
 *
 * Calls go one way, from the entry points down: upstream.c (mux and lws callbacks, the timer
 * handlers) -> upstream_connect.c -> upstream_request.c; upstream_response.c; all of them ->
 * upstream_stream.c (lifecycle) -> upstream_pool.c -> conn_pool.c. The two lws timers that the
 * lower files arm run upstream.c's handlers through upstream_timer_handlers, so nothing calls up.
 */
#ifndef TM_CLIENT_UPSTREAM_STREAM_H
#define TM_CLIENT_UPSTREAM_STREAM_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <libwebsockets.h>

#include "conn_queue.h"
#include "continue_relay.h"
#include "http1.h"
#include "tls_membio.h"
#include "stream_host.h"

#define UPSTREAM_HEAD_MAX (80 * 1024)
#define UPSTREAM_DETECT_MS 1500
#define UPSTREAM_WRITE_NOW (256 * 1024) /* request bytes buffered that are written without waiting for the turn's end */
/* A new local connection counts against LOCAL_MAX_CONNECTING until its first byte, or this long
 * (a long poll on a fresh connection must not hold back every other new connection) */
#define UPSTREAM_OPENING_MAX_MS 250

/* Seconds after which the LOCAL_HOST address list is made again (at the start of a connection). */
#define UPSTREAM_RESOLVE_TTL_MS 30000

/* The handlers of upstream.c that the lower files arm on lws timers: a table, so that they never
 * call up into upstream.c. Static; every upstream points at it from upstream_on_head on. */
typedef struct upstream_timer_handlers {
    sul_cb_t deadline;   /* u->sul: one of the upstream's deadlines passed (armed by u_arm_timer) */
    sul_cb_t slots_free; /* c->lq_sul: local connection slots were freed, serve the waiting streams */
} upstream_timer_handlers;

/* Where one upstream is in its exchange with the local service. Transitions go through
 * upstream_set_state() only; the order matters: "state < U_BODY" means the response head is still
 * due (READ_TIMEOUT applies), "state >= U_REQUEST" that a connection is established. */
typedef enum {
    U_QUEUED = 0, /* waiting for a local connection slot (LOCAL_MAX_CONNECTIONS, conn_queue.h) */
    U_CONNECTING, /* TCP connect in progress */
    U_TLS,        /* TLS handshake (or schema detection) in progress */
    U_REQUEST,    /* request flowing, waiting for the response head */
    U_BODY,       /* final head sent, response body flowing */
    U_RAW,        /* 101: raw bytes both ways */
    U_DONE,       /* our direction ended (or is about to, see end_pending) */
} upstream_state;

struct upstream {
    client_link link;                      /* first member: the tunnel's list */
    client_link flushq;                    /* in c->flushq while request bytes wait for the end of the loop turn */
    upstream_host *host;                   /* the tunnel carrying the stream (upstream.h); NULL once the stream is gone */
    const upstream_host_ops *ops;          /* its ops (static): still reachable when |host| is NULL */
    const upstream_timer_handlers *timers; /* upstream.c's timer handlers (static) */
    client *c;
    uint32_t id;
    struct lws *wsi;
    tls_membio *tls;
    upstream_state state; /* written by upstream_set_state() only */
    int busy;             /* entry points running on this upstream */
    int attempt;          /* index of the LOCAL_HOST address tried (local_addrs_pick) */
    /* -- flag bits. Lifetime: */
    unsigned dead : 1;         /* the stream is gone: free when busy drops to 0 */
    unsigned failed : 1;       /* the stream was reset (u_reset): the connection is never reused */
    unsigned connect_sync : 1; /* inside lws_client_connect_via_info (its error callback only marks sync_failed) */
    unsigned sync_failed : 1;  /* ... and the connect failed synchronously */
    /* -- the current connection: */
    unsigned detecting : 1;         /* a schema probe (ClientHello + CRLFCRLF), never used for the request */
    unsigned got_bytes : 1;         /* something came back on it */
    unsigned reused : 1;            /* it came from the keep-alive pool */
    unsigned retried : 1;           /* already retried once on a fresh connection */
    unsigned no_pool : 1;           /* connect fresh, not from the pool (the retry) */
    unsigned connect_timed_out : 1; /* the last attempt ended by LOCAL_CONNECT_TIMEOUT */
    /* -- the request: */
    unsigned head_request : 1;  /* HEAD: the response has no body whatever its headers say */
    unsigned req_fin : 1;       /* the server ended the request body (on_end) */
    unsigned need_shutdown : 1; /* blocked on |out|: raw mode shuts our write side once |out| is drained */
    /* -- the response ("blocked because"): */
    unsigned paused : 1;      /* the local connection is not read because the stream has no room (pend or
                                 write room below CLIENT_IO_BUF); on_writable resumes it */
    unsigned end_pending : 1; /* the end of the response waits because |pend| still holds bytes */
    /* -- keep-alive (docs/OPERATIONS.md): the connection goes back to c->pool after a clean exchange */
    unsigned keep_alive : 1; /* the final response allows another request on this connection */
    unsigned no_reuse : 1;   /* bytes beyond the response, or anything else that rules reuse out */
    /* -- local connection budget (conn_queue.h, docs/OPERATIONS.md "Local connections"): */
    unsigned has_slot : 1; /* holds one of the LOCAL_MAX_CONNECTIONS slots */
    unsigned upgraded : 1; /* 101 relayed: the connection left the budget, counted in c->local_upgraded */
    unsigned opening : 1;  /* the current connection counts in c->lq.opening (LOCAL_MAX_CONNECTING) */
    http1_request req;
    uint64_t req_body_seen;
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
    lws_sorted_usec_list_t sul;
    int64_t head_deadline, detect_deadline;
    int64_t write_deadline;   /* bytes for the local socket pending: WRITE_TIMEOUT from the last progress (0 = idle) */
    conn_waiter qw;           /* in c->lq while U_QUEUED */
    int64_t queued_ms;        /* how long the stream waited for its slot */
    int64_t connect_deadline; /* LOCAL_CONNECT_TIMEOUT of the current attempt (TCP connect and TLS handshake) */
    int64_t opening_deadline; /* |opening| until its first byte or this time (UPSTREAM_OPENING_MAX_MS) */
    continue_relay expect;    /* Expect: 100-continue decided by the local service (continue_relay.h) */
};

/* Appends |n| bytes to the growable buffer (*buf, *len, *cap). 0 or -1 (out of memory). */
static inline int append(uint8_t **buf, size_t *len, size_t *cap, const void *p, size_t n)
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

/* The name of |st| for logs. */
const char *upstream_state_to_str(upstream_state st);

/* The one place an upstream changes state. */
void upstream_set_state(upstream *u, upstream_state st);

/* Takes |u| out of the end-of-turn flush queue (no-op when it is not queued). */
void flushq_remove(upstream *u);

/* Queues |u| for upstream_flush_queued() at the end of the loop turn. */
void flushq_add(upstream *u);

/* An idle keep-alive connection can serve the next stream without opening one (pool_take may still
 * find only connections of the other schema: then one more opens than LOCAL_MAX_CONNECTING). */
int lq_idle(const client *c);

/* The connection of |u| stops counting as opening: it answered, closed, or waited long enough. */
void opening_end(upstream *u);

/* |u| gives its local connection slot back (its connection is pooled, closed, or upgraded). */
void slot_release(upstream *u);

/* Frees |u|: gives back its queue place, slot and opening count, pools its connection when it can
 * carry another request (else closes it). Only when |busy| is 0. */
void u_free(upstream *u);

/* Starts an entry point on |u| (u_release ends it). */
void u_hold(upstream *u);

/* Ends an entry point; frees |u| when it died meanwhile. Returns 1 when freed. */
int u_release(upstream *u);

/* The session of the stream, or NULL once the stream or its tunnel is gone. */
mux_session *u_session(upstream *u);

/* Aborts the stream (CLOSE |code|); on_stream_close marks |u| dead. */
void u_reset(upstream *u, unsigned code, const char *reason);

/* The current attempt is establishing its connection (LOCAL_CONNECT_TIMEOUT applies): TCP
 * connect, or the TLS handshake of an https local service (a schema probe has its own deadline). */
int u_connecting(const upstream *u);

/* Arms u->sul at the nearest of its deadlines (head, connect, opening, probe, write), or cancels it. */
void u_arm_timer(upstream *u);

/* Drops the current local connection (its callbacks no longer reach |u|). */
void u_detach(upstream *u);

#endif
