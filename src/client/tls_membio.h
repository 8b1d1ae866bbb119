/*
 * tunnelmux client — OpenSSL client over memory BIOs, for TLS on a libwebsockets RAW connection
 * (RAW + LCCSCF_USE_SSL is broken in lws 4.1.6; docs/ARCHITECTURE.md §7). The socket side stays with lws:
 * ciphertext read from the socket goes in with tls_membio_feed(); ciphertext to send comes out
 * of tls_membio_take(). No I/O here.
 */
#ifndef TM_CLIENT_TLS_MEMBIO_H
#define TM_CLIENT_TLS_MEMBIO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <openssl/ssl.h>

typedef struct tls_membio tls_membio;

/*
 * Creates a client SSL_CTX. |verify| 1: verify the peer against the system CAs plus |ca_file|
 * (may be NULL). Returns the context (the caller frees it with SSL_CTX_free) or NULL with a
 * message in |err|.
 */
SSL_CTX *tls_membio_ctx_new(int verify, const char *ca_file, char *err, size_t errlen);

/*
 * Starts a client TLS connection on |ctx| (reference taken by OpenSSL). |server_name|: SNI (when
 * not an IP literal) and, if |check_host|, the name (or IP) the certificate must match; may be
 * NULL. Returns NULL on allocation failure. Queues the ClientHello (see tls_membio_take).
 */
tls_membio *tls_membio_new(SSL_CTX *ctx, const char *server_name, int check_host);
void tls_membio_del(tls_membio *t);

/* Hands |len| ciphertext bytes read from the socket to TLS. 0 or -1 (allocation failure). */
int tls_membio_feed(tls_membio *t, const uint8_t *in, size_t len);

/* Advances the handshake. 1: established, 0: in progress (feed more), -1: failed (see
 * tls_membio_error). Always check tls_membio_take afterwards. */
int tls_membio_handshake(tls_membio *t);

/* Reads decrypted bytes into |buf|. Returns n > 0, 0 when nothing is available now, -1 on a
 * TLS error, -2 when the peer closed the TLS session (close_notify). */
ssize_t tls_membio_read(tls_membio *t, uint8_t *buf, size_t cap);

/* Encrypts |len| bytes (all of them; memory BIOs never block). 0 or -1. */
int tls_membio_write(tls_membio *t, const uint8_t *p, size_t len);

/* Moves up to |cap| ciphertext bytes into |buf|; returns the count (0 = none). */
size_t tls_membio_take(tls_membio *t, uint8_t *buf, size_t cap);

/* Static-or-owned description of the last failure (verification result included). Never NULL. */
const char *tls_membio_error(const tls_membio *t);

#endif
