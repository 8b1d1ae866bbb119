/*
 * tunnelmux — per-connection, per-direction streaming zstd (zstd_codec.h, docs/PROTOCOL.md §3.2).
 *
 * The sender keeps one zstd frame open for the life of its context and ends every message with
 * ZSTD_e_flush, so each message decodes completely while the receiver keeps the window (history)
 * between messages. Contexts allocate through the session's mux_mem (ZSTD_customMem) so their
 * memory is accounted and injectable like everything else.
 */
#define ZSTD_STATIC_LINKING_ONLY /* ZSTD_customMem, ZSTD_createCCtx_advanced: exported by libzstd 1.5 */
#include <zstd.h>
#include <zstd_errors.h>

#include <stdint.h>
#include <string.h>

#include "mem.h"
#include "mux/err.h"
#include "zstd_codec.h"

/* First output step of the decompressor when |out| has no room (then doubling). */
#define RX_MIN_STEP (16 * 1024)
/* The compressor gets more output room when less than this is left. */
#define TX_MIN_ROOM 64
/* Bound on zstd calls without progress before the input is declared corrupt (defensive). */
#define MAX_STALLS 4

struct mux_zstd_tx {
    ZSTD_CCtx *cctx;    /* NULL until first use and after release */
    int level;          /* ZSTD_c_compressionLevel */
    int window_log;     /* ZSTD_c_windowLog */
    const mux_mem *mem; /* what the context allocates through; not owned */
};

struct mux_zstd_rx {
    ZSTD_DCtx *dctx;      /* NULL until first use, after release and after the sender ended its frame */
    int between_frames;   /* the sender's last frame ended cleanly: the next message starts a new one */
    int window_log_max;   /* ZSTD_d_windowLogMax */
    int window_too_large; /* the last failure was a frame whose window exceeds window_log_max */
    const mux_mem *mem;   /* not owned */
};

static void *zalloc(void *opaque, size_t size)
{
    return mux_mem_malloc((const mux_mem *)opaque, size);
}

static void zfree(void *opaque, void *ptr)
{
    mux_mem_free((const mux_mem *)opaque, ptr);
}

static ZSTD_customMem custom_mem(const mux_mem *mem)
{
    ZSTD_customMem cm = {zalloc, zfree, (void *)(uintptr_t)mem};
    return cm;
}

/* ---------------------------------------------------------------- compressor */

/*
 * Creates a compressor object (no zstd context yet: it is created on the first compress).
 * |level| 1..19, |window_log| 10..20; |mem| (NULL = libc) must outlive the object and is used
 * for the object and its zstd context. Returns 0 and sets |*out| (owned by the caller, free with
 * mux_zstd_tx_del), MUX_ERR_INVALID_ARGUMENT or MUX_ERR_NOMEM.
 */
int mux_zstd_tx_new(mux_zstd_tx **out, int level, int window_log, const mux_mem *mem)
{
    if (level < 1 || level > 19 || window_log < 10 || window_log > 20)
        return MUX_ERR_INVALID_ARGUMENT;
    mux_zstd_tx *z = mux_mem_calloc(mem, 1, sizeof(*z));
    if (z == NULL)
        return MUX_ERR_NOMEM;
    z->level = level;
    z->window_log = window_log;
    z->mem = mem;
    *out = z;
    return 0;
}

/* Frees |z| and its context (NULL is allowed). */
void mux_zstd_tx_del(mux_zstd_tx *z)
{
    if (z == NULL)
        return;
    mux_zstd_tx_release(z);
    mux_mem_free(z->mem, z);
}

/* Frees the zstd context of |z| (~1.6 MB at level 3); the next compress starts a new frame. */
void mux_zstd_tx_release(mux_zstd_tx *z)
{
    if (z->cctx != NULL) {
        ZSTD_freeCCtx(z->cctx);
        z->cctx = NULL;
    }
}

/* 1 while |z| holds a zstd context (a frame is open). */
int mux_zstd_tx_live(const mux_zstd_tx *z)
{
    return z != NULL && z->cctx != NULL;
}

static int tx_create(mux_zstd_tx *z)
{
    z->cctx = ZSTD_createCCtx_advanced(custom_mem(z->mem));
    if (z->cctx == NULL)
        return MUX_ERR_NOMEM;
    if (ZSTD_isError(ZSTD_CCtx_setParameter(z->cctx, ZSTD_c_compressionLevel, z->level)) ||
        ZSTD_isError(ZSTD_CCtx_setParameter(z->cctx, ZSTD_c_windowLog, z->window_log)) ||
        ZSTD_isError(ZSTD_CCtx_setParameter(z->cctx, ZSTD_c_checksumFlag, 0))) {
        mux_zstd_tx_release(z);
        return MUX_ERR_INTERNAL;
    }
    return 0;
}

/* Runs one ZSTD_compressStream2 step into |out|'s free space, growing it when full. */
static int tx_step(mux_zstd_tx *z, ZSTD_inBuffer *in, ZSTD_EndDirective mode, mux_buf *out, size_t *remaining, const mux_mem *mem)
{
    if (out->cap - out->len < TX_MIN_ROOM) {
        size_t want = ZSTD_compressBound(in->size - in->pos) + 64;
        int rv = mux_buf_reserve(out, want, 0, mem);
        if (rv != 0)
            return rv == MUX_ERR_MESSAGE_TOO_LARGE ? MUX_ERR_NOMEM : rv;
    }
    ZSTD_outBuffer ob = {out->base + out->len, out->cap - out->len, 0};
    size_t r = ZSTD_compressStream2(z->cctx, &ob, in, mode);
    if (ZSTD_isError(r))
        return ZSTD_getErrorCode(r) == ZSTD_error_memory_allocation ? MUX_ERR_NOMEM : MUX_ERR_INTERNAL;
    out->len += ob.pos;
    *remaining = r;
    return 0;
}

/*
 * Compresses iov[0..n) as one message and flushes it (see zstd_codec.h). |out| is owned by the
 * caller and grown through |mem|. On error the output of this call is removed from |out| and the
 * context is released, so the next call starts a new frame (*reset = 1) and the stream stays
 * consistent for the receiver. Returns 0, MUX_ERR_NOMEM or MUX_ERR_INTERNAL.
 */
int mux_zstd_tx_compress(mux_zstd_tx *z, const mux_iovec *iov, size_t n, mux_buf *out, int *reset, const mux_mem *mem)
{
    int rv;
    *reset = 0;
    if (z->cctx == NULL) {
        if ((rv = tx_create(z)) != 0)
            return rv;
        *reset = 1;
    }
    size_t keep = out->len - out->pos; /* restore point, stable across compaction */
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += iov[i].len;
    if ((rv = mux_buf_reserve(out, ZSTD_compressBound(total) + 64, 0, mem)) != 0) {
        rv = rv == MUX_ERR_MESSAGE_TOO_LARGE ? MUX_ERR_NOMEM : rv;
        goto fail;
    }

    size_t remaining;
    for (size_t i = 0; i < n; i++) {
        ZSTD_inBuffer in = {iov[i].base, iov[i].len, 0};
        while (in.pos < in.size) {
            if ((rv = tx_step(z, &in, ZSTD_e_continue, out, &remaining, mem)) != 0)
                goto fail;
        }
    }
    /* flush: each round either frees output room (grown in tx_step) or finishes */
    ZSTD_inBuffer none = {NULL, 0, 0};
    for (;;) {
        if ((rv = tx_step(z, &none, ZSTD_e_flush, out, &remaining, mem)) != 0)
            goto fail;
        if (remaining == 0)
            return 0;
    }

fail:
    out->len = out->pos + keep;
    mux_zstd_tx_release(z);
    return rv;
}

/*
 * Ends the open zstd frame (ZSTD_e_end with no input: the last, empty block, 3 bytes at level 3
 * without checksum), appends those bytes to |out| and frees the context (see zstd_codec.h).
 * Nothing is appended when no frame is open. Returns 0, MUX_ERR_NOMEM or MUX_ERR_INTERNAL; the
 * context is released in every case, |out| is left as it was on error.
 */
int mux_zstd_tx_end(mux_zstd_tx *z, mux_buf *out, const mux_mem *mem)
{
    if (z->cctx == NULL)
        return 0;
    size_t keep = out->len - out->pos;
    size_t remaining;
    int rv;
    ZSTD_inBuffer none = {NULL, 0, 0};
    do {
        if ((rv = tx_step(z, &none, ZSTD_e_end, out, &remaining, mem)) != 0) {
            out->len = out->pos + keep;
            break;
        }
    } while (remaining != 0);
    mux_zstd_tx_release(z);
    return rv;
}

/* ---------------------------------------------------------------- decompressor */

/*
 * Creates a decompressor object (zstd context created on first use). |window_log_max| 10..31 caps
 * the window a peer may make us allocate. |mem| (NULL = libc) must outlive the object. Returns 0
 * and sets |*out| (free with mux_zstd_rx_del), MUX_ERR_INVALID_ARGUMENT or MUX_ERR_NOMEM.
 */
int mux_zstd_rx_new(mux_zstd_rx **out, int window_log_max, const mux_mem *mem)
{
    if (window_log_max < 10 || window_log_max > 31)
        return MUX_ERR_INVALID_ARGUMENT;
    mux_zstd_rx *z = mux_mem_calloc(mem, 1, sizeof(*z));
    if (z == NULL)
        return MUX_ERR_NOMEM;
    z->window_log_max = window_log_max;
    z->mem = mem;
    *out = z;
    return 0;
}

/* Frees |z| and its context (NULL is allowed). */
void mux_zstd_rx_del(mux_zstd_rx *z)
{
    if (z == NULL)
        return;
    mux_zstd_rx_release(z);
    mux_mem_free(z->mem, z);
}

/*
 * Frees the zstd context of |z|. The sender's history is then lost: the next message must carry
 * the envelope RESET bit (start a new frame), otherwise it fails with MUX_ERR_DECOMPRESS. Only
 * safe when the peer is known to start a new frame next (the receiver cannot see the sender's
 * release before the RESET message arrives).
 */
void mux_zstd_rx_release(mux_zstd_rx *z)
{
    if (z->dctx != NULL) {
        ZSTD_freeDCtx(z->dctx);
        z->dctx = NULL;
    }
    z->between_frames = 0;
}

/* 1 while |z| holds a zstd context. */
int mux_zstd_rx_live(const mux_zstd_rx *z)
{
    return z != NULL && z->dctx != NULL;
}

/*
 * Decompresses one message body (see zstd_codec.h). Output is appended to |out| (owned by the
 * caller, grown through |mem| in doubling steps capped so that this message never takes more
 * than |max_out| bytes of it). A message of exactly |max_out| bytes is accepted. On error the
 * output of this call is removed from |out|. The first message after creation or release must
 * have |reset| set (MUX_ERR_DECOMPRESS otherwise), except after a message that ended the sender's
 * frame: that message frees the context (no history is needed) and the next one starts a new
 * frame whatever its |reset|. Returns 0, MUX_ERR_DECOMPRESS, MUX_ERR_DECOMPRESS_LIMIT,
 * MUX_ERR_NOMEM (context creation failed; nothing consumed) or MUX_ERR_INTERNAL (allocation failed
 * mid-message: the stream cannot continue).
 */
int mux_zstd_rx_decompress(mux_zstd_rx *z, const uint8_t *in, size_t len, int reset, mux_buf *out, size_t max_out,
                           const mux_mem *mem)
{
    if (z->dctx == NULL) {
        if (!reset && !z->between_frames)
            return MUX_ERR_DECOMPRESS; /* no history to continue from: the sender's stream started earlier */
        z->dctx = ZSTD_createDCtx_advanced(custom_mem(z->mem));
        if (z->dctx == NULL)
            return MUX_ERR_NOMEM;
        if (ZSTD_isError(ZSTD_DCtx_setParameter(z->dctx, ZSTD_d_windowLogMax, z->window_log_max))) {
            mux_zstd_rx_release(z);
            return MUX_ERR_INTERNAL;
        }
        z->between_frames = 0;
    } else if (reset) {
        ZSTD_DCtx_reset(z->dctx, ZSTD_reset_session_only);
    }
    if (len == 0)
        return 0;

    size_t keep = out->len - out->pos; /* restore point, stable across compaction */
    size_t produced = 0;
    int stalls = 0, rv;
    ZSTD_inBuffer ib = {in, len, 0};
    size_t hint = 1; /* last ZSTD_decompressStream result: 0 = a frame ended and was flushed */
    uint8_t probe;
    for (;;) {
        size_t room = out->cap - out->len;
        if (room > max_out - produced)
            room = max_out - produced;
        ZSTD_outBuffer ob;
        int probing = 0;
        if (room == 0 && produced < max_out) {
            /* grow: double what this message produced so far, within max_out */
            size_t step = produced > RX_MIN_STEP ? produced : RX_MIN_STEP;
            if (step < len && len <= max_out - produced)
                step = len;
            if (step > max_out - produced)
                step = max_out - produced;
            rv = mux_buf_reserve(out, step, out->len - out->pos + step, mem);
            if (rv != 0) {
                rv = MUX_ERR_INTERNAL;
                goto fail;
            }
            continue;
        }
        if (room == 0) {
            /* at the cap: a one-byte probe tells "done" from "more output would follow" */
            ob.dst = &probe;
            ob.size = 1;
            probing = 1;
        } else {
            ob.dst = out->base + out->len;
            ob.size = room;
        }
        ob.pos = 0;
        size_t in_before = ib.pos;
        size_t r = ZSTD_decompressStream(z->dctx, &ob, &ib);
        hint = r;
        if (ZSTD_isError(r)) {
            rv = ZSTD_getErrorCode(r) == ZSTD_error_memory_allocation ? MUX_ERR_INTERNAL : MUX_ERR_DECOMPRESS;
            z->window_too_large = ZSTD_getErrorCode(r) == ZSTD_error_frameParameter_windowTooLarge;
            goto fail;
        }
        if (probing) {
            if (ob.pos != 0) {
                rv = MUX_ERR_DECOMPRESS_LIMIT;
                goto fail;
            }
        } else {
            out->len += ob.pos;
            produced += ob.pos;
        }
        /* complete: all input consumed and the decoder had room left, so it flushed everything */
        if (ib.pos == ib.size && ob.pos < ob.size) {
            if (hint == 0) {
                /* the sender ended its frame at this message end (PROTOCOL.md §3.2): no history
                 * is needed any more, give the context back until the next message */
                mux_zstd_rx_release(z);
                z->between_frames = 1;
            }
            return 0;
        }
        if (ib.pos == in_before && ob.pos == 0) {
            if (++stalls > MAX_STALLS) {
                rv = MUX_ERR_DECOMPRESS;
                goto fail;
            }
        } else {
            stalls = 0;
        }
    }

fail:
    out->len = out->pos + keep;
    return rv;
}

int mux_zstd_rx_window_too_large(const mux_zstd_rx *z)
{
    return z != NULL && z->window_too_large;
}
