/*
 * tunnelmux client — what the tunnel (tunnel.c) and the local connections (upstream_*.c) share
 * about an lws RAW connection with optional TLS (docs/ARCHITECTURE.md §7: RAW + LCCSCF_USE_SSL is
 * broken in lws 4.1.6, so TLS runs in memory BIOs, tls_membio.h):
 *
 *   - the TLS write loop: plaintext in, records out through lws_write (lws keeps what the socket
 *     does not take, so callers write only when lws_send_pipe_choked() says there is room);
 *   - the TLS read loop: decrypted bytes handed to the caller piece by piece;
 *   - the write-stall bookkeeping behind WRITE_TIMEOUT ("the peer took nothing for that long").
 *
 * Nothing here owns the wsi, the tls_membio or the buffers: the caller passes and keeps them.
 */
#ifndef TM_CLIENT_RAW_CONN_H
#define TM_CLIENT_RAW_CONN_H

#include <stddef.h>
#include <stdint.h>

#include <libwebsockets.h>

#include "tls_membio.h"

/* Encrypts |len| plaintext bytes (none when |len| is 0: then it only moves records TLS produced
 * on its own, handshake or key updates) and writes every record ready to |wsi| with
 * lws_write(LWS_WRITE_RAW), staged through |stage| (|cap| bytes, caller-owned scratch).
 * Returns 0, or -1 when TLS or lws failed. */
int raw_conn_tls_write(struct lws *wsi, tls_membio *tls, const uint8_t *p, size_t len, uint8_t *stage, size_t cap);

/* What raw_conn_tls_drain's consumer answers for each piece of plaintext. */
typedef enum {
    RAW_CONN_GO_ON = 0, /* read the next piece */
    RAW_CONN_STOP = 1,  /* stop reading for now: the consumer paused or is gone; TLS keeps the rest */
    RAW_CONN_FAIL = -1, /* the consumer failed: stop, report RAW_CONN_ERR_CONSUMER */
} raw_conn_verdict;

/* raw_conn_tls_drain's results below 0. */
#define RAW_CONN_ERR_CONSUMER (-1) /* |on_plain| returned RAW_CONN_FAIL */
#define RAW_CONN_ERR_TLS (-2)      /* TLS failed (tls_membio_error() says why) */
#define RAW_CONN_ERR_CLOSED (-3)   /* the peer closed the TLS session (close_notify): handle as EOF */

/*
 * Decrypts what |tls| has and hands it to |on_plain(arg, p, n)| in pieces of up to |cap| bytes read
 * into |scratch| (caller-owned), until TLS has nothing more now, the consumer says stop, or 4096
 * pieces went by. Returns 0, or one of the RAW_CONN_ERR_* codes.
 */
int raw_conn_tls_drain(tls_membio *tls, uint8_t *scratch, size_t cap, raw_conn_verdict (*on_plain)(void *arg, uint8_t *p, size_t n),
                       void *arg);

/*
 * WRITE_TIMEOUT bookkeeping after a write attempt. |*deadline_ms| is 0 while nothing waits for the
 * socket, else the time by which the socket must have taken something. |pending|: bytes still
 * wait (in our buffer or lws's); |progress|: the socket took bytes since the last call (a writable
 * callback). Nothing waits: the deadline clears; bytes wait and it was clear, or there was
 * progress: it becomes |now_ms| + |timeout_ms|; else it stays. Returns 1 when |*deadline_ms|
 * changed (the caller re-arms or cancels its timer), 0 when not. Pure.
 */
int raw_conn_stall_track(int64_t *deadline_ms, int pending, int progress, int64_t now_ms, int64_t timeout_ms);

#endif
