/*
 * tunnelmux client — OpenSSL over memory BIOs (see tls_membio.h).
 */
#include "tls_membio.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

struct tls_membio {
    SSL *ssl;
    BIO *rbio, *wbio; /* owned by ssl */
    int established;
    char err[256];
};

SSL_CTX *tls_membio_ctx_new(int verify, const char *ca_file, char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL) {
        snprintf(err, errlen, "SSL_CTX_new failed");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    if (verify) {
        if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
            snprintf(err, errlen, "cannot load the system CA store");
            SSL_CTX_free(ctx);
            return NULL;
        }
        if (ca_file != NULL && ca_file[0] != '\0' && SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1) {
            snprintf(err, errlen, "TLS_CA_FILE: cannot load %s", ca_file);
            SSL_CTX_free(ctx);
            return NULL;
        }
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    } else {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    }
    return ctx;
}

static int is_ip_literal(const char *s)
{
    unsigned char buf[16];
    return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

tls_membio *tls_membio_new(SSL_CTX *ctx, const char *server_name, int check_host)
{
    tls_membio *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return NULL;
    t->ssl = SSL_new(ctx);
    t->rbio = BIO_new(BIO_s_mem());
    t->wbio = BIO_new(BIO_s_mem());
    if (t->ssl == NULL || t->rbio == NULL || t->wbio == NULL) {
        BIO_free(t->rbio);
        BIO_free(t->wbio);
        SSL_free(t->ssl);
        free(t);
        return NULL;
    }
    BIO_set_mem_eof_return(t->rbio, -1); /* empty read BIO = "want read", not EOF */
    SSL_set_bio(t->ssl, t->rbio, t->wbio);
    SSL_set_connect_state(t->ssl);
    if (server_name != NULL && server_name[0] != '\0') {
        int ip = is_ip_literal(server_name);
        if (!ip)
            SSL_set_tlsext_host_name(t->ssl, server_name);
        if (check_host) {
            X509_VERIFY_PARAM *param = SSL_get0_param(t->ssl);
            if (ip)
                X509_VERIFY_PARAM_set1_ip_asc(param, server_name);
            else
                SSL_set1_host(t->ssl, server_name);
        }
    }
    SSL_do_handshake(t->ssl); /* queues the ClientHello into wbio */
    return t;
}

void tls_membio_del(tls_membio *t)
{
    if (t == NULL)
        return;
    SSL_free(t->ssl);
    free(t);
}

int tls_membio_feed(tls_membio *t, const uint8_t *in, size_t len)
{
    while (len > 0) {
        int chunk = len > (1u << 30) ? (1 << 30) : (int)len;
        int n = BIO_write(t->rbio, in, chunk);
        if (n <= 0)
            return -1;
        in += n;
        len -= (size_t)n;
    }
    return 0;
}

static void set_error(tls_membio *t, const char *what)
{
    long vr = SSL_get_verify_result(t->ssl);
    unsigned long e = ERR_peek_last_error();
    if (vr != X509_V_OK)
        snprintf(t->err, sizeof(t->err), "%s: certificate verification failed: %s", what, X509_verify_cert_error_string(vr));
    else if (e != 0)
        snprintf(t->err, sizeof(t->err), "%s: %s", what, ERR_reason_error_string(e) ? ERR_reason_error_string(e) : "error");
    else
        snprintf(t->err, sizeof(t->err), "%s", what);
    ERR_clear_error();
}

int tls_membio_handshake(tls_membio *t)
{
    if (t->established)
        return 1;
    int r = SSL_do_handshake(t->ssl);
    if (r == 1) {
        t->established = 1;
        return 1;
    }
    int e = SSL_get_error(t->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
        return 0;
    set_error(t, "TLS handshake failed");
    return -1;
}

ssize_t tls_membio_read(tls_membio *t, uint8_t *buf, size_t cap)
{
    if (cap > (1u << 30))
        cap = 1u << 30;
    int n = SSL_read(t->ssl, buf, (int)cap);
    if (n > 0)
        return n;
    int e = SSL_get_error(t->ssl, n);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
        return 0;
    if (e == SSL_ERROR_ZERO_RETURN)
        return -2;
    set_error(t, "TLS read failed");
    return -1;
}

int tls_membio_write(tls_membio *t, const uint8_t *p, size_t len)
{
    while (len > 0) {
        int chunk = len > (1u << 30) ? (1 << 30) : (int)len;
        int n = SSL_write(t->ssl, p, chunk);
        if (n <= 0) {
            set_error(t, "TLS write failed");
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

size_t tls_membio_take(tls_membio *t, uint8_t *buf, size_t cap)
{
    if (cap > (1u << 30))
        cap = 1u << 30;
    int n = BIO_read(t->wbio, buf, (int)cap);
    return n > 0 ? (size_t)n : 0;
}

const char *tls_membio_error(const tls_membio *t)
{
    return t->err[0] ? t->err : "TLS error";
}
