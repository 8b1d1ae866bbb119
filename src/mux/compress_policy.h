/*
 * tunnelmux — when a message is worth compressing (PROTOCOL.md §3.2), as a pure policy: inputs in,
 * decision out. Each stream carries a mux_compress_probe; the batch builder (tx_batch.c) asks
 * before compressing a message led by the stream's DATA and reports afterwards whether it paid.
 * No session, no allocation, no I/O. Not a public header.
 */
#ifndef MUX_COMPRESS_POLICY_H
#define MUX_COMPRESS_POLICY_H

#include <stddef.h>
#include <stdint.h>

/* An incompressible stream is re-tried after MUX_INCOMPRESSIBLE_PROBE messages, the wait doubling
 * after each failed re-try up to MUX_INCOMPRESSIBLE_PROBE << MUX_INCOMPRESSIBLE_PROBE_MAX_SHIFT
 * (random or already compressed bodies then cost ~0.1% of their bytes in probes). */
#define MUX_INCOMPRESSIBLE_PROBE 16
#define MUX_INCOMPRESSIBLE_PROBE_MAX_SHIFT 6
/* PROTOCOL.md §3.2: a message whose body (records before compression) is shorter goes plain.
 * Keepalive and credit (PING, PONG, WINDOW: 5-15 bytes a record) and CLOSE never touch zstd, so an
 * idle tunnel holds no context. Measured (level 3, window 17, warm window, PERFORMANCE.md): a 12-byte
 * body grows by 10%, a 96-byte one saves 75 bytes, a 192-byte head 127 bytes; a cold frame adds 9
 * bytes. The contexts that would cost: 1.6 MiB (compressor) + 0.6 MiB (decompressor) per tunnel. */
#define MUX_COMPRESS_MIN_BODY 256

/* One stream's compression history (embedded in mux_stream, zeroed = a new stream). */
typedef struct {
    uint8_t incompressible; /* >0: recent messages with its DATA did not compress */
    uint8_t probe_shift;    /* failed re-probes in a row: the next one waits MUX_INCOMPRESSIBLE_PROBE << this */
    uint16_t probe;         /* counts skipped compressions, to re-probe */
} mux_compress_probe;

/* What to do with a message led by a stream's DATA, before looking at the bytes. */
typedef enum {
    MUX_COMPRESS_SKIP, /* it did not compress lately and no re-try is due: send plain, do not look */
    MUX_COMPRESS_LOOK, /* a new stream or a re-try: look at the bytes (mux_compress_after_look) */
} mux_compress_verdict;

/* Counts one message towards the next re-try; SKIP or LOOK. */
mux_compress_verdict mux_compress_before(mux_compress_probe *p);
/* After LOOK: |flat| is the entropy test's verdict on the stream's next bytes (a flat histogram
 * means zstd would only burn CPU: random, encrypted, already compressed). Returns 1 (compress) or
 * 0 (plain; counted as a failed try). */
int mux_compress_after_look(mux_compress_probe *p, int flat);
/* Records whether a message with the stream's DATA compressed (|bad| 0) or not; a failed re-try
 * doubles the wait before the next one, a success resets it. */
void mux_compress_note(mux_compress_probe *p, int bad);
/* 1 when |clen| compressed bytes for |plain| plain ones did not pay (saved less than 10%). */
int mux_compress_did_not_pay(size_t clen, size_t plain);
/* 1 when a message body of |plain| bytes (records, before compression) goes plain anyway. */
int mux_compress_too_small(size_t plain);
/* A message limit of |limit| bytes less the room zstd's worst-case expansion needs. */
size_t mux_compress_limit(size_t limit);

#endif
