/*
 * tunnelmux client — the response towards the tunnel (upstream_response.c).
 */
#ifndef TM_CLIENT_UPSTREAM_RESPONSE_H
#define TM_CLIENT_UPSTREAM_RESPONSE_H

#include "upstream_stream.h"

/* Our direction is complete: fin once everything pending went to the session. */
void response_complete(upstream *u);

/* Plaintext from the local service. 0 or -1 (u reset; stop reading).
 * While the head is awaited, at most UPSTREAM_HEAD_MAX bytes are buffered: a read that carries the
 * head and a large piece of body (up to CLIENT_IO_BUF) is split, the body part goes on directly. */
int on_local_plain(upstream *u, uint8_t *p, size_t n);

/* Decrypts what TLS has and processes it, unless paused. 0 or -1. */
int drain_tls(upstream *u);

#endif
