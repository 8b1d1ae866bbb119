/*
 * tunnelmux — per-connection, per-direction streaming zstd (docs/PROTOCOL.md §3.2).
 * One long-lived stream each way, flushed at every message end (ZSTD_e_flush), window log capped.
 * Contexts are created lazily and released when idle: the sender ends its frame (ZSTD_e_end) in one
 * last message and frees its context, the receiver frees its own when it sees a frame end, and the
 * next compressed message starts a new frame with the envelope's RESET bit.
 */
#ifndef MUX_ZSTD_CODEC_H
#define MUX_ZSTD_CODEC_H

#include <stddef.h>

#include "buf.h"
#include "mux/mux.h"

typedef struct mux_zstd_tx mux_zstd_tx;
typedef struct mux_zstd_rx mux_zstd_rx;

/* Compressor. |level| 1..19, |window_log| 10..20. Returns 0 or MUX_ERR_NOMEM/INVALID_ARGUMENT. */
int mux_zstd_tx_new(mux_zstd_tx **out, int level, int window_log, const mux_mem *mem);
void mux_zstd_tx_del(mux_zstd_tx *z);
/*
 * Compresses the concatenation of |iov[0..n)| and flushes (ZSTD_e_flush), appending the output to
 * |out|. |*reset| is set to 1 when this output starts a new zstd frame (first use, or after
 * mux_zstd_tx_release) — the envelope RESET bit. Returns 0 or MUX_ERR_NOMEM/MUX_ERR_INTERNAL.
 */
int mux_zstd_tx_compress(mux_zstd_tx *z, const mux_iovec *iov, size_t n, mux_buf *out, int *reset, const mux_mem *mem);
/* Frees the zstd context (keeps the object); the next compress starts a new frame. */
void mux_zstd_tx_release(mux_zstd_tx *z);
/*
 * Ends the open frame (ZSTD_e_end, no input) appending its last bytes (~3) to |out|, then frees
 * the context: the message carrying those bytes decompresses to nothing and tells the receiver it
 * may free its own context (PROTOCOL.md §3.2). No-op without an open frame. Returns 0,
 * MUX_ERR_NOMEM or MUX_ERR_INTERNAL (context freed anyway, |out| unchanged).
 */
int mux_zstd_tx_end(mux_zstd_tx *z, mux_buf *out, const mux_mem *mem);
/* 1 while a zstd context is allocated (NULL allowed: 0). */
int mux_zstd_tx_live(const mux_zstd_tx *z);

/* Decompressor with window log capped at |window_log_max|. */
int mux_zstd_rx_new(mux_zstd_rx **out, int window_log_max, const mux_mem *mem);
void mux_zstd_rx_del(mux_zstd_rx *z);
/*
 * Decompresses one message body |in|/|len| (all of it must be consumed and the output flushed),
 * appending to |out| without letting |out| hold more than |max_out| bytes of this message.
 * |reset| = the envelope RESET bit: start a new frame first. Errors: MUX_ERR_DECOMPRESS (corrupt,
 * window too large, trailing garbage), MUX_ERR_DECOMPRESS_LIMIT (output would exceed |max_out|:
 * checked as output is produced, never allocating more than |max_out|), MUX_ERR_NOMEM.
 */
int mux_zstd_rx_decompress(mux_zstd_rx *z, const uint8_t *in, size_t len, int reset, mux_buf *out, size_t max_out,
                           const mux_mem *mem);
void mux_zstd_rx_release(mux_zstd_rx *z);
/* 1 when the last MUX_ERR_DECOMPRESS of |z| was a frame announcing a window larger than its
 * window_log_max (the sender did not cap its window log, PROTOCOL.md §3.2), else 0. */
int mux_zstd_rx_window_too_large(const mux_zstd_rx *z);
/* 1 while a zstd context is allocated (NULL allowed: 0). A message that completes the sender's
 * frame (ZSTD_decompressStream returned 0 at its end) frees it; the next message re-creates it. */
int mux_zstd_rx_live(const mux_zstd_rx *z);

#endif
