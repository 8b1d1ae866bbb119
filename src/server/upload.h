/*
 * tunnelmux server — streamed HTTP/1.1 request bodies (docs/OPERATIONS.md "Uploads").
 *
 * h2o 2.2.5 runs a handler only after the whole request body arrived (docs/ARCHITECTURE.md §7), so a large
 * upload used to wait in memory or a spool file before its first byte entered the tunnel. On an
 * HTTP/1.1 connection (plain, or TLS: tls_accept_start installs the hook) this module lets such
 * bodies stream instead:
 *
 *  1. upload_on_accept() puts a hook in front of h2o's HTTP/1 request reader. When a request head
 *     has arrived and is eligible (upload_head.h: one Content-Length of at least UPLOAD_MIN_BODY
 *     and at most MAX_REQUEST_BODY, or Transfer-Encoding: chunked, nothing ambiguous), the hook
 *     renames that header in h2o's input buffer (same length) before h2o parses it: h2o sees a
 *     request without a body and runs the handler at once. A chunked body is decoded as it is read
 *     (picohttpparser's decoder, trailers dropped); the handler forwards it without a length.
 *  2. The handler calls upload_take() first thing. For such a request it returns the body's length
 *     and makes the connection non-persistent, so the body bytes can never reach h2o's parser.
 *  3. upload_body_start() reads the body through a second descriptor of the same socket (dup(2))
 *     with a socket of our own on the loop, while h2o's socket stays read-stopped: the request's
 *     strings point into h2o's input buffer, which must not move. Bytes h2o had already read after
 *     the head go first. The reader is paused and resumed by its consumer (tunnel credit).
 *     Over TLS no second descriptor can share the TLS state: h2o's input buffer is set aside until
 *     the request ends and h2o's own socket reads (and decrypts) into a fresh one that the reader
 *     drains; Expect: 100-continue keeps h2o's path there (our interim answer would be a write
 *     under h2o's).
 *  4. A held-back body nobody started (the handler answered early: 404, 401, 429, 502, ...) is read
 *     and discarded (plain connections), bounded by its length and READ_TIMEOUT, so the client gets
 *     that answer.
 *
 * Small bodies, GET/HEAD, and a request h2o had already started reading from its buffer
 * (pipelined) keep h2o's buffered path (HTTP/2 bodies: h2_body.h).
 *
 * Ownership: the per-connection hook state belongs to the socket (freed when it closes); an
 * upload_body belongs to whoever started it until upload_body_free().
 */
#ifndef TM_SERVER_UPLOAD_H
#define TM_SERVER_UPLOAD_H

#include <stdint.h>

#include "server/server.h"

/* Bodies shorter than this keep h2o's path (one buffered piece is cheaper than a second socket). */
#define UPLOAD_MIN_BODY (256 * 1024)
/* Discard mode (upload_body_free before the end, an answered request): bytes read and dropped at most. */
#define UPLOAD_DISCARD_MAX (64ULL * 1024 * 1024)
/* Largest read from the connection at once: with the tunnel's credit, what one upload holds. */
#define UPLOAD_READ_BUF (256 * 1024)

typedef struct upload_body upload_body;

/* Called with |err| NULL when body bytes became available, or with a reason when the body cannot
 * complete (the client closed the connection or the read failed); nothing follows an error. */
typedef void (*upload_body_cb)(void *data, const char *err);

/* Installs the request-head hook on a freshly accepted plain-HTTP socket (after h2o_accept). */
void upload_on_accept(server *srv, h2o_socket_t *sock);

/* upload_take(): a held-back chunked body (its length is known only at its end). */
#define UPLOAD_LENGTH_CHUNKED (-2)

/* First thing in the handler: the length of |req|'s held-back body, or UPLOAD_LENGTH_CHUNKED (and
 * the connection is made non-persistent), or -1 when its body (if any) is in req->entity as usual. */
int64_t upload_take(server *srv, h2o_req_t *req);

/* Starts reading the held-back body of |req| (upload_take() returned >= 0 or UPLOAD_LENGTH_CHUNKED),
 * calling |cb| as bytes arrive. Returns NULL when the body cannot be read (the caller answers an
 * error: for a chunked body, most likely its framing is malformed). */
upload_body *upload_body_start(server *srv, h2o_req_t *req, upload_body_cb cb, void *data);

/* Before upload_body_start(): when the user of |req|'s held-back body waits for "100 Continue" (it
 * sent Expect: 100-continue and no body byte yet, plain connection), leaves that answer to
 * upload_body_continue() — the local service decides (PROTOCOL.md §9.3) — and returns 1; else 0 (and
 * upload_body_start() answers 100 itself, as it always did). */
int upload_defer_continue(server *srv, h2o_req_t *req);

/* Sends the deferred "100 Continue" (the local service asked for the body). 0 when sent or not due,
 * -1 when it cannot be written (the caller fails the request). Until it is sent, upload_body_free()
 * reads nothing of the body: the connection closes after the answer. */
int upload_body_continue(upload_body *ub);

/* The next contiguous body bytes available now: sets |*p| and returns their count (0 = none yet,
 * or the body is complete). They stay valid until upload_body_consume() or upload_body_free(). */
size_t upload_body_peek(upload_body *ub, const uint8_t **p);

/* |n| bytes of the last peek were taken by the consumer. */
void upload_body_consume(upload_body *ub, size_t n);

/* The HTTP status that fits the last error reported to the callback (400, or 413 over MAX_REQUEST_BODY). */
int upload_body_error_status(const upload_body *ub);

/* 1 once every body byte was consumed. */
int upload_body_done(const upload_body *ub);

/* 1: read more whenever nothing is buffered (the default); 0: stop reading (backpressure). */
void upload_body_want(upload_body *ub, int want);

/* Releases |ub| (safe from within its callback). On a plain connection, what is left of the body is
 * then read and dropped (up to UPLOAD_DISCARD_MAX, READ_TIMEOUT without progress), and what the
 * client sent after the body is read away (bounded), so closing does not reset the connection under
 * a response. */
void upload_body_free(upload_body *ub);

#endif
