/*
 * tunnelmux server — the public TLS handshake and the ALPN dispatch (see tls_accept.h). Moved out
 * of h2_body.c (issue 17): it hands connections to both body hooks, so living in one of them made
 * h2_body.c and upload.c call each other.
 */
#include "server/tls_accept.h"

#include <stdlib.h>
#include <string.h>

#include <h2o/http1.h>
#include <h2o/http2.h>

#include "server/h2_body.h"
#include "server/upload.h"

typedef struct {
    server *srv;
    h2o_socket_t *sock;
    h2o_timeout_entry_t timeout;
    struct timeval connected_at;
} tls_accept;

static void on_tls_timeout(h2o_timeout_entry_t *e)
{
    tls_accept *a = H2O_STRUCT_FROM_MEMBER(tls_accept, timeout, e);
    h2o_socket_t *sock = a->sock;
    sock->data = NULL;
    free(a);
    h2o_socket_close(sock);
}

static void on_tls_handshake(h2o_socket_t *sock, const char *err)
{
    tls_accept *a = sock->data;
    sock->data = NULL;
    if (h2o_timeout_is_linked(&a->timeout))
        h2o_timeout_unlink(&a->timeout);
    server *srv = a->srv;
    struct timeval at = a->connected_at;
    free(a);
    if (err != NULL) {
        h2o_socket_close(sock);
        return;
    }
    h2o_iovec_t proto = h2o_socket_ssl_get_selected_protocol(sock);
    for (const h2o_iovec_t *id = h2o_http2_alpn_protocols; id->len != 0; id++) {
        if (proto.len == id->len && memcmp(proto.base, id->base, proto.len) == 0) {
            h2_body_accept_h2(srv, sock, at);
            return;
        }
    }
    /* HTTP/1.1 over TLS: upload.c's hook goes in before h2o reads a request (input moved aside as above) */
    h2o_buffer_t *input = sock->input;
    h2o_buffer_init(&sock->input, &h2o_socket_buffer_prototype);
    h2o_http1_accept(&srv->accept_ctx, sock, at);
    upload_on_accept(srv, sock);
    h2o_buffer_dispose(&sock->input);
    sock->input = input;
    if (sock->input->size != 0)
        sock->_cb.read(sock, NULL);
}

void tls_accept_start(server *srv, h2o_socket_t *sock)
{
    tls_accept *a = calloc(1, sizeof(*a));
    if (a == NULL) {
        h2o_accept(&srv->accept_ctx, sock);
        return;
    }
    a->srv = srv;
    a->sock = sock;
    a->connected_at = *h2o_get_timestamp(&srv->ctx, NULL, NULL);
    a->timeout.cb = on_tls_timeout;
    h2o_timeout_link(srv->ctx.loop, &srv->ctx.handshake_timeout, &a->timeout);
    sock->data = a;
    h2o_socket_ssl_handshake(sock, srv->ssl_ctx, NULL, on_tls_handshake);
}
