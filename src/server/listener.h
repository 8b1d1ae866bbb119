/*
 * tunnelmux server — listening sockets, TLS context (ALPN h2 + http/1.1), accept with TCP_NODELAY.
 */
#ifndef TM_SERVER_LISTENER_H
#define TM_SERVER_LISTENER_H

#include "server/server.h"

/*
 * Sets up TLS when TLS_CERT and TLS_KEY are both set (srv->ssl_ctx, srv->scheme = "https"), else
 * cleartext (HTTP/1.1, h2c prior knowledge and Upgrade: h2c). Writes a one-line reason into |err|
 * and returns -1 on failure (unreadable cert/key, only one of them set).
 */
int listener_setup_tls(server *srv, char *err, size_t errlen);

/*
 * Binds LISTEN_ADDR:PORT ("" = all addresses: IPv6 dual-stack, else IPv4) and starts accepting
 * into srv->accept_ctx. |bound| receives a printable "addr:port". Returns 0 or -1 with |err| set.
 */
int listener_open(server *srv, char *bound, size_t boundlen, char *err, size_t errlen);

/* Stops accepting and closes every listening socket. */
void listener_close_all(server *srv);

#endif
