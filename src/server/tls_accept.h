/*
 * tunnelmux server — the public TLS listener's accept: runs the handshake (what h2o_accept does,
 * within h2o's handshake timeout) and hands the socket to h2o's HTTP/2 server (ALPN h2, hooked by
 * h2_body.c before h2o reads a frame) or HTTP/1 server (hooked by upload.c before h2o reads a
 * request), so that request bodies of both stream (docs/ARCHITECTURE.md §8).
 *
 * Ownership: takes |sock| (closes it when the handshake fails or times out; otherwise h2o owns it).
 */
#ifndef TM_SERVER_TLS_ACCEPT_H
#define TM_SERVER_TLS_ACCEPT_H

#include "server/server.h"

/* Starts the TLS handshake of a just-accepted public connection (srv->ssl_ctx set). */
void tls_accept_start(server *srv, h2o_socket_t *sock);

#endif
