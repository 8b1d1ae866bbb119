/*
 * tunnelmux server — the proxy_stream shared by the files of the proxy (internal: only proxy.c,
 * response.c, body_pump.c and upgrade_stream.c include it; everyone else uses proxy.h).
 *
 *   proxy.c          one public request as one mux stream: admission, the request head, the mux
 *                    events, safe retry, the stream's lifetime (on_dispose)
 *   proxy_link.c     the stream's link to its tunnel: detach, reset, cancel
 *   response.c       the response towards h2o: error pages, the head, the zero-copy queue handed to
 *                    h2o_send, the WRITE_TIMEOUT watchdog
 *   body_pump.c      the request body into the tunnel (h2o's entity, or streamed by upload.c/h2_body.c)
 *   upgrade_stream.c an upgraded (101) raw stream: a heap copy owning the public socket
 *
 * Ownership is as described at the top of proxy.c: a proxy_stream lives in its request's pool, an
 * upgraded one on the heap (owned by its public socket until upgrade_stream frees it).
 */
#ifndef TM_SERVER_PROXY_STREAM_H
#define TM_SERVER_PROXY_STREAM_H

#include "server/h2_body.h"
#include "server/resp_queue.h"
#include "server/proxy.h"
#include "server/route.h"
#include "server/rxslab.h"
#include "server/tunnel.h"
#include "server/upload.h"

typedef struct proxy_stream proxy_stream;

#define BODY_SLICE (256 * 1024)             /* largest piece handed to mux_session_write at once */
#define BODY_RELEASE_STEP (4 * 1024 * 1024) /* release sent request-body pages in steps of this size */
#define RAW_KEEP_CAP (1024 * 1024)          /* raw streams free drained buffers above this (idle WebSockets stay small) */
#define ZC_MAX RESP_QUEUE_MAX_PIECES        /* response slices of tunnel reads waiting for one h2o_send (rxslab.h) */
#define BUSY_WARN_INTERVAL_MS 10000         /* at most one WARN line per this for requests over the stream limit */
#define PROXY_BUSY_RETRY_AFTER_S "1"        /* Retry-After of a 503 for a full local queue (CLOSE ENHANCE_YOUR_CALM) */

/* Where the response of a proxy_stream is. Only response_set_state changes it, and only forwards
 * (WAITING_HEAD -> STARTED -> FINAL_SENT, or WAITING_HEAD -> FINAL_SENT). */
typedef enum proxy_resp_state {
    PROXY_RESP_WAITING_HEAD = 0, /* nothing answered yet: an error page can still replace the response */
    PROXY_RESP_STARTED,          /* the head went to h2o (h2o_start_response) or the stream was upgraded: body bytes flow */
    PROXY_RESP_FINAL_SENT,       /* the last h2o_send (final or error) or an error page was handed to h2o: nothing follows */
} proxy_resp_state;

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
    char name[ROUTE_MAX_NAME + 1];
    /* request body: req->entity, or streamed from the connection (upload.h, h2_body.h) */
    upload_body *ub;
    h2_body *hb;
    size_t body_off;
    size_t released_off;            /* req->entity bytes below this were given back to the kernel */
    int64_t held;                   /* a held-back HTTP/1.1 body's length (upload.h), else -1 */
    int64_t h2_len;                 /* its Content-Length, or -1 */
    proxy_resp_state resp_state;    /* response_set_state */
    resp_queue q;                   /* response bytes waiting for h2o (or the upgraded socket) and in flight (resp_queue.h) */
    h2o_socket_t *sock;             /* the upgraded public socket */
    h2o_timeout_entry_t idle_entry; /* UPGRADE_IDLE_TIMEOUT */
    /*
     * Flag bits. The ones that stop data say which way it is blocked and who resumes it.
     */
    /* request and its body */
    unsigned has_body : 1;           /* the request has a body to forward (in memory or streamed) */
    unsigned body_done : 1;          /* the whole body went into the stream (END_STREAM queued) */
    unsigned body_chunked : 1;       /* |ub| decodes a chunked body: its length is known at its end */
    unsigned h1_held : 1;            /* the HTTP/1.1 connection streams the body (upload.h; |held| < 0: chunked) */
    unsigned h2_held : 1;            /* the HTTP/2 hook holds the body (h2_body.h) */
    unsigned drop_authorization : 1; /* security_admit: the Authorization header is ours (basic auth), not forwarded */
    unsigned expect_relay : 1;       /* the user's Expect: 100-continue is the local service's to answer (PROTOCOL.md §9.3) */
    unsigned continue_sent : 1;      /* ... and "100 Continue" went to the user */
    unsigned retried : 1;            /* safe retry done once already (proxy_on_tunnel_lost) */
    /* response (with resp_state) */
    unsigned ended : 1;         /* the client's response ended (DATA fin): the final send follows the bytes queued */
    unsigned aborted : 1;       /* the response must end in an error (h1 close, h2 RST_STREAM), never a clean short end */
    unsigned stopped : 1;       /* h2o stopped the generator (the public user went away): nothing more to h2o */
    unsigned sending : 1;       /* blocked because h2o holds a send: response_on_proceed resumes (q.inflight) */
    unsigned stall_sampled : 1; /* stall_acked was taken while h2o held unwritten bytes */
    /* upgrade (raw streams, upgrade_stream.c) */
    unsigned upgrade_req : 1; /* the request asked for an HTTP/1.1 Upgrade (MUX_HEAD_UPGRADE sent) */
    unsigned raw : 1;         /* heap copy owning the upgraded public socket (req is NULL) */
    unsigned upgrading : 1;   /* blocked because h2o_http1_upgrade is in flight: the socket is not ours yet (on_upgraded) */
    unsigned raw_closed : 1;  /* the mux stream is gone (raw_abort: with an error) */
    unsigned raw_writing : 1; /* blocked because an h2o_socket_write of |q.inflight| is in flight (raw_on_written) */
    unsigned read_paused : 1; /* blocked because the session took no more: user bytes wait in sock->input (on_writable) */
    unsigned user_eof : 1;    /* the user half-closed; our end follows the bytes still in sock->input */
    unsigned end_sent : 1;    /* our direction ended (mux_session_end_stream) */
    unsigned peer_fin : 1;    /* the client ended its direction: shut down our write side once drained */
    unsigned shut_wr : 1;     /* that shutdown happened */
};

/* The response head (or an upgrade, or an error page) went out. */
static inline int response_started(const proxy_stream *ps)
{
    return ps->resp_state != PROXY_RESP_WAITING_HEAD;
}

/* The last send went to h2o: nothing more may be handed to it. */
static inline int response_final_sent(const proxy_stream *ps)
{
    return ps->resp_state == PROXY_RESP_FINAL_SENT;
}

/* ---- proxy_link.c: the stream's link to its tunnel */

/* Detaches |ps| from its tunnel and mux stream (no more callbacks). Returns the tunnel or NULL. */
tunnel *proxy_link_detach(proxy_stream *ps);
/* Detaches and resets the mux stream with |code|. Does not flush the tunnel; returns it. */
tunnel *proxy_link_reset(proxy_stream *ps, unsigned code, const char *reason);
/* Resets the mux stream with CANCEL and flushes the tunnel. */
void proxy_link_cancel(proxy_stream *ps, const char *why);

/* ---- response.c: the response towards h2o */

/* The one transition of resp_state: only forwards (asserted). */
void response_set_state(proxy_stream *ps, proxy_resp_state to);
/* "waiting_head", "started", "final_sent" (logs). */
const char *proxy_resp_state_to_str(proxy_resp_state s);

/* An error page (h2o_send_error_generic, headers kept) with a printf-formatted body. */
void response_send_text(h2o_req_t *req, int status, const char *reason, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Host for messages: the request's authority, truncated and without control characters. */
void response_safe_host(h2o_req_t *req, char *out, size_t cap);
/* Fails a request whose response has not started (status from the mux close code). */
void response_fail_before_head(proxy_stream *ps, unsigned code, const char *why);
/* Aborts a started response: never a clean end with a short body (h1 close, h2 RST_STREAM). */
void response_abort(proxy_stream *ps);
/* Moves the waiting response bytes into flight; fills |bufs| (ZC_MAX + 1) and returns their count. */
size_t response_take_pending(proxy_stream *ps, h2o_iovec_t *bufs);
/* Keeps |data| as a slice of the tunnel read it lies in when it can (rxslab.h). 1: taken. */
int response_take_slice(proxy_stream *ps, const uint8_t *data, size_t len);
/* Hands what this loop turn delivered to h2o at the end of the turn. */
void response_schedule_send(proxy_stream *ps);
/* Copies status, reason and the headers of |head| into |req|'s response (hop-by-hop dropped). */
void response_set_head(h2o_req_t *req, const mux_head *head, const char *default_reason);
/* Why a response head cannot become HTTP as it is, or NULL when it can. */
const char *response_invalid_header(const mux_head *head);
/* h2o generator callbacks and the timers of a response (set up by proxy_handle_request). */
void response_on_proceed(h2o_generator_t *gen, h2o_req_t *req);
void response_on_stop(h2o_generator_t *gen, h2o_req_t *req);
void response_on_send_entry(h2o_timeout_entry_t *e);
void response_on_stall_check(h2o_timeout_entry_t *e);

/* ---- body_pump.c: the request body into the tunnel */

/* Writes request body bytes while the stream accepts them; ends the stream after the last. */
void body_pump_run(proxy_stream *ps);
/* The streamed request body delivered bytes, or stopped short (upload_body_cb, h2_body_cb). */
void body_pump_on_event(void *data, const char *err);

/* ---- upgrade_stream.c: upgraded (101) raw streams */

/* The local service switched protocols: writes the 101 and moves the stream to a heap copy. */
void upgrade_stream_start(proxy_stream *ps, const mux_head *head);
/* Mux events of an upgraded stream (|rs|->raw). on_close: |rs| is already detached. */
void upgrade_stream_on_data(proxy_stream *rs, const uint8_t *data, size_t len);
void upgrade_stream_on_end(proxy_stream *rs);
void upgrade_stream_on_close(proxy_stream *rs, unsigned code);
/* Hands the user's waiting bytes to the session while it takes them. Returns 1 when |rs| was freed. */
int upgrade_stream_pump_input(proxy_stream *rs);

#endif
