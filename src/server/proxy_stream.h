/*
 * tunnelmux server — the proxy_stream shared by the files of the proxy (internal: only proxy.c,
 * response.c, body_pump.c and upgrade_stream.c include it; everyone else uses proxy.h).
 *
 *   proxy.c          one public request as one mux stream: admission, the request head, the mux
 *                    events, safe retry, the stream's lifetime (detach/reset/cancel, on_dispose)
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

#define BODY_SLICE (256 * 1024)             /* largest piece handed to mux_session_write at once */
#define BODY_RELEASE_STEP (4 * 1024 * 1024) /* release sent request-body pages in steps of this size */
#define RAW_KEEP_CAP (1024 * 1024)          /* raw streams free drained buffers above this (idle WebSockets stay small) */
#define ZC_MAX RESP_QUEUE_MAX_PIECES        /* response slices of tunnel reads waiting for one h2o_send (rxslab.h) */
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
    int retried;            /* safe retry done once already (proxy_on_tunnel_lost) */
    /* response */
    int response_started, ended, final_sent, aborted, stopped, sending;
    resp_queue q; /* response bytes waiting for h2o (or the upgraded socket) and in flight (resp_queue.h) */
    /* upgrade */
    int upgrade_req;                /* the request asked for an HTTP/1.1 Upgrade (MUX_HEAD_UPGRADE sent) */
    int raw;                        /* heap copy owning the upgraded public socket (req is NULL) */
    int upgrading;                  /* h2o_http1_upgrade in flight: the socket is not ours yet */
    int raw_closed;                 /* the mux stream is gone (raw_abort: with an error) */
    int raw_writing;                /* an h2o_socket_write of |q.inflight| is in flight */
    int read_paused;                /* the session took no more: user bytes wait in sock->input */
    int user_eof;                   /* the user half-closed; our end follows the bytes still in sock->input */
    int end_sent;                   /* our direction ended (mux_session_end_stream) */
    int peer_fin;                   /* the client ended its direction: shut down our write side once drained */
    int shut_wr;                    /* that shutdown happened */
    h2o_socket_t *sock;             /* the upgraded public socket */
    h2o_timeout_entry_t idle_entry; /* UPGRADE_IDLE_TIMEOUT */
};

/* ---- proxy.c: the stream's link to its tunnel */

/* Detaches |ps| from its tunnel and mux stream (no more callbacks). Returns the tunnel or NULL. */
tunnel *proxy__detach(proxy_stream *ps);
/* Detaches and resets the mux stream with |code|. Does not flush the tunnel; returns it. */
tunnel *proxy__reset(proxy_stream *ps, unsigned code, const char *reason);
/* Resets the mux stream with CANCEL and flushes the tunnel. */
void proxy__cancel(proxy_stream *ps, const char *why);

/* ---- response.c: the response towards h2o */

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
