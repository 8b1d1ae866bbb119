/*
 * tunnelmux server — listening sockets and TLS (see listener.h).
 */
#include "server/listener.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>

#include "common/sockopt.h"
#include "common/log.h"
#include "server/tls_accept.h"
#include "server/upload.h"

int listener_setup_tls(server *srv, char *err, size_t errlen)
{
    const char *cert = srv->opt->tls_cert, *key = srv->opt->tls_key;
    int has_cert = cert != NULL && cert[0] != '\0', has_key = key != NULL && key[0] != '\0';
    srv->scheme = "http";
    if (!has_cert && !has_key)
        return 0;
    if (!has_cert || !has_key) {
        snprintf(err, errlen, "%s: must be set together with %s", has_cert ? "TLS_KEY" : "TLS_CERT",
                 has_cert ? "TLS_CERT" : "TLS_KEY");
        return -1;
    }
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL) {
        snprintf(err, errlen, "TLS_CERT: cannot create a TLS context");
        return -1;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
        snprintf(err, errlen, "TLS_CERT: cannot load %s: %s", cert, ERR_reason_error_string(ERR_get_error()));
        SSL_CTX_free(ctx);
        return -1;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
        snprintf(err, errlen, "TLS_KEY: cannot load %s: %s", key, ERR_reason_error_string(ERR_get_error()));
        SSL_CTX_free(ctx);
        return -1;
    }
    h2o_ssl_register_alpn_protocols(ctx, h2o_http2_alpn_protocols);
    srv->ssl_ctx = ctx;
    srv->scheme = "https";
    return 0;
}

static void on_accept(h2o_socket_t *listener, const char *err)
{
    server *srv = listener->data;
    if (err != NULL)
        return;
    for (int i = 0; i < 64; i++) { /* bounded batch per wake-up */
        h2o_socket_t *sock = h2o_evloop_socket_accept(listener);
        if (sock == NULL)
            return;
        sockopt_set_nodelay(h2o_socket_get_fd(sock));
        if (srv->ssl_ctx != NULL) {
            tls_accept_start(srv, sock); /* HTTP/2 and HTTP/1.1 request bodies stream (tls_accept.h) */
        } else {
            h2o_accept(&srv->accept_ctx, sock);
            upload_on_accept(srv, sock); /* large HTTP/1.1 request bodies stream (upload.h), h2c bodies too */
        }
    }
}

static int bind_listen(int family, const struct sockaddr *sa, socklen_t salen, int v6only, char *err, size_t errlen)
{
    int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "LISTEN_ADDR: socket: %s", strerror(errno));
        return -1;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof(v6only));
    if (bind(fd, sa, salen) != 0 || listen(fd, SOMAXCONN) != 0) {
        snprintf(err, errlen, "PORT: cannot listen: %s", strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

static int add_listener(server *srv, int fd)
{
    if (srv->nlisteners >= SERVER_MAX_LISTENERS) {
        close(fd);
        return -1;
    }
    h2o_socket_t *sock = h2o_evloop_socket_create(srv->ctx.loop, fd, H2O_SOCKET_FLAG_DONT_READ);
    sock->data = srv;
    h2o_socket_read_start(sock, on_accept);
    srv->listeners[srv->nlisteners++] = sock;
    return 0;
}

int listener_open(server *srv, char *bound, size_t boundlen, char *err, size_t errlen)
{
    const char *addr = srv->opt->listen_addr != NULL ? srv->opt->listen_addr : "";
    uint16_t port = (uint16_t)srv->opt->port;
    int fd;
    if (addr[0] == '\0') {
        struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6, .sin6_port = htons(port), .sin6_addr = in6addr_any};
        char err6[256];
        fd = bind_listen(AF_INET6, (struct sockaddr *)&sin6, sizeof(sin6), 0, err6, sizeof(err6));
        if (fd >= 0) {
            snprintf(bound, boundlen, "[::]:%u", (unsigned)port);
        } else {
            struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_ANY)};
            if ((fd = bind_listen(AF_INET, (struct sockaddr *)&sin, sizeof(sin), 0, err, errlen)) < 0)
                return -1;
            snprintf(bound, boundlen, "0.0.0.0:%u", (unsigned)port);
        }
    } else {
        struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICHOST | AI_PASSIVE};
        struct addrinfo *res = NULL;
        char portstr[8];
        snprintf(portstr, sizeof(portstr), "%u", (unsigned)port);
        const char *host = addr;
        char buf[128];
        size_t alen = strlen(addr);
        if (addr[0] == '[' && alen > 2 && addr[alen - 1] == ']' && alen - 2 < sizeof(buf)) {
            memcpy(buf, addr + 1, alen - 2);
            buf[alen - 2] = '\0';
            host = buf;
        }
        int rv = getaddrinfo(host, portstr, &hints, &res);
        if (rv != 0 || res == NULL) {
            snprintf(err, errlen, "LISTEN_ADDR: %s is not a numeric IP address (%s)", addr, gai_strerror(rv));
            return -1;
        }
        fd = bind_listen(res->ai_family, res->ai_addr, res->ai_addrlen, 1, err, errlen);
        int fam = res->ai_family;
        freeaddrinfo(res);
        if (fd < 0)
            return -1;
        if (fam == AF_INET6)
            snprintf(bound, boundlen, "[%s]:%u", host, (unsigned)port);
        else
            snprintf(bound, boundlen, "%s:%u", host, (unsigned)port);
    }
    if (add_listener(srv, fd) != 0) {
        snprintf(err, errlen, "LISTEN_ADDR: too many listeners");
        return -1;
    }
    return 0;
}

void listener_close_all(server *srv)
{
    for (size_t i = 0; i < srv->nlisteners; i++) {
        h2o_socket_read_stop(srv->listeners[i]);
        h2o_socket_close(srv->listeners[i]);
        srv->listeners[i] = NULL;
    }
    srv->nlisteners = 0;
}
