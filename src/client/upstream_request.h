/*
 * tunnelmux client — the request towards the local service (upstream_request.c).
 */
#ifndef TM_CLIENT_UPSTREAM_REQUEST_H
#define TM_CLIENT_UPSTREAM_REQUEST_H

#include "upstream_stream.h"

/* Appends |n| bytes to the request bytes waiting for the local socket. 0 or -1 (|u| reset). */
int out_add(upstream *u, const void *p, size_t n);

/* TLS: encrypts |n| bytes and hands the records to lws (which keeps what the socket did not take;
 * callers only write when lws_send_pipe_choked() says the socket has room). 0 or -1. */
int local_write(upstream *u, const uint8_t *p, size_t n);

/* WRITE_TIMEOUT bookkeeping after a write attempt; |progress| 1 when the socket took bytes since
 * the last call (a writable callback: lws only reports one once its own buffer drained). */
void track_write(upstream *u, int progress);

/* Nothing could be written to the local service for WRITE_TIMEOUT. While the response is still
 * due, the stream fails with CLOSE(TIMEOUT); once the response is complete, the rest of the
 * request body is discarded (a service may answer without reading the whole body). */
void write_stalled(upstream *u);

/* Writes |out| when the socket takes it; returns credit for the body bytes written. 0 or -1. */
int flush_out(upstream *u);

#endif
