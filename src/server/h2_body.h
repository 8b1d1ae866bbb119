/*
 * tunnelmux server — streamed HTTP/2 request bodies (docs/ARCHITECTURE.md §8, OPERATIONS.md "Uploads").
 *
 * A hook in front of h2o 2.2.5's HTTP/2 frame reader: a request with a body is handed to the handler
 * at its HEADERS (h2o sees END_STREAM), its DATA never reaches h2o but waits in a per-stream buffer
 * bounded by the stream window, and the window is returned to the public client only as the
 * consumer (body_pump.c) takes the bytes. Trailers are decoded with h2o's HPACK table and dropped.
 *
 * Ownership: the per-connection state belongs to the public socket (freed when it closes, after h2o
 * closed every stream); an h2_body handle belongs to the consumer that started it until
 * h2_body_free(), which must come no later than the request's disposal.
 */
#ifndef TM_SERVER_H2_BODY_H
#define TM_SERVER_H2_BODY_H

#include <stdint.h>

#include "server/server.h"

typedef struct h2_body h2_body;

/* Called with |err| NULL when body bytes or the end became available, or with a reason when the body
 * cannot complete (the user reset the stream, broke Content-Length or MAX_REQUEST_BODY); nothing
 * follows an error. */
typedef void (*h2_body_cb)(void *data, const char *err);

/* TLS listener after the handshake chose ALPN h2 (tls_accept.c): h2o_http2_accept with the socket's
 * input moved aside, hooks the connection, then lets h2o read the input. |connected_at| is when the
 * connection was accepted. */
void h2_body_accept_h2(server *srv, h2o_socket_t *sock, struct timeval connected_at);

/* Plain listener (upload.c's HTTP/1 hook): |sock| starts with a complete prior-knowledge preface.
 * Lets |h1_read| (h2o's HTTP/1 reader) switch the connection to HTTP/2 on the preface alone, then
 * hooks it and lets h2o read the rest. */
void h2_body_accept_prior_knowledge(server *srv, h2o_socket_t *sock, h2o_socket_cb h1_read);

/* First thing for every request: hooks an h2c connection reached by `Upgrade: h2c` (h2o switched
 * inside its HTTP/1 reader; |req| is its stream 1 and the client's preface is not read yet). */
void h2_body_hook_upgraded(server *srv, h2o_req_t *req);

/* 1: |p| (|len| bytes) starts with the whole HTTP/2 client preface; -1: it is a strict prefix of it
 * (wait for more); 0: it is not a preface. */
int h2_body_is_preface(const char *p, size_t len);

/* 1 when |req| is an HTTP/2 request whose body is held by the hook (its HEADERS had no END_STREAM);
 * then |*content_length| is its Content-Length, or -1 when it has none. 0 otherwise. */
int h2_body_held(h2o_req_t *req, int64_t *content_length);

/* Takes the held body of |req| (h2_body_held() returned 1), calling |cb| as bytes arrive (possibly
 * from within this call's loop turn, never from within this call). NULL when it cannot. */
h2_body *h2_body_start(h2o_req_t *req, h2_body_cb cb, void *data);

/* The next contiguous body bytes available now: sets |*p| and returns their count (0 = none yet, or
 * the body is complete). Valid until h2_body_consume() or h2_body_free(). */
size_t h2_body_peek(h2_body *hb, const uint8_t **p);

/* |n| bytes of the last peek were taken: their window goes back to the user (ARCHITECTURE.md §8.3). */
void h2_body_consume(h2_body *hb, size_t n);

/* 1 once the user ended the body and every byte was consumed. */
int h2_body_done(const h2_body *hb);

/* Bytes received so far. */
uint64_t h2_body_received(const h2_body *hb);

/* The HTTP status that fits the last error (400, or 413 over MAX_REQUEST_BODY). */
int h2_body_error_status(const h2_body *hb);

/* The user of |hb| sent Expect: 100-continue and waits for h2_body_send_continue(). While it was sent
 * neither a 100 nor a body byte, an answered request's stream is left for the user to end (it
 * learns from the final response that no body is wanted) instead of RST_STREAM(NO_ERROR); the record
 * is a tombstone meanwhile (ARCHITECTURE.md §8.4). */
void h2_body_expect_continue(h2_body *hb);

/* Sends the user an informational `:status 100` HEADERS frame on |hb|'s stream (the local service
 * asked for the body of a request with Expect: 100-continue, PROTOCOL.md §9.3). Only before the
 * response head was started. 0, or -1 when the stream or connection can take no frame. */
int h2_body_send_continue(h2_body *hb);

/* Bytes of the frame h2_body_send_continue() writes (9-byte frame header + 5-byte header block). */
#define H2_BODY_CONTINUE_FRAME_LEN 14

/* Writes that frame for |stream_id| into |out| (H2_BODY_CONTINUE_FRAME_LEN bytes); returns its length. */
size_t h2_body_continue_frame(uint8_t *out, uint32_t stream_id);

/* Releases |hb| (safe from within its callback). |response_complete|: the request was answered in
 * full; when the user is still sending, RST_STREAM(NO_ERROR) asks it to stop (RFC 9113 §8.1). */
void h2_body_free(h2_body *hb, int response_complete);

#endif
