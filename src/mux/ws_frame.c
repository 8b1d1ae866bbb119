/*
 * tunnelmux — RFC 6455 frame encoding, masking and decoding (include/mux/ws.h, PROTOCOL.md §2.2).
 *
 * The decoder is a sans-I/O state machine fed arbitrary slices of the byte stream. Header bytes
 * are collected into d->_hdr (at most 14), so a header may straddle any number of calls; payload
 * is never copied: it is unmasked in place and handed back as a pointer into the caller's input.
 */
#include <string.h>

#include <openssl/rand.h>

#include "mux/err.h"
#include "mux/ws.h"

/* Decoder states (mux_ws_decoder._state). */
enum {
    WS_ST_HEAD = 0, /* collecting the 2 fixed header bytes (FIN/RSV/opcode, MASK/len7) */
    WS_ST_HEAD_EXT, /* collecting the extended length (0, 2 or 8 bytes) and the mask key (0 or 4) */
    WS_ST_PAYLOAD,  /* header complete: handing out payload pieces until _remain == 0 */
    WS_ST_FAILED,   /* a protocol error was returned; every later feed fails */
};

/* ---------------------------------------------------------------- encoding */

/* See ws.h. Writes FIN/opcode, the minimal length encoding (RFC 6455 §5.2) and the optional key. */
size_t mux_ws_frame_header(uint8_t *out, unsigned opcode, int fin, uint64_t len, const uint8_t *mask_key)
{
    size_t n = 2;
    out[0] = (uint8_t)((fin ? 0x80u : 0u) | (opcode & 0x0Fu));
    out[1] = mask_key != NULL ? 0x80 : 0x00;
    if (len < 126) {
        out[1] |= (uint8_t)len;
    } else if (len <= 0xFFFF) {
        out[1] |= 126;
        out[2] = (uint8_t)(len >> 8);
        out[3] = (uint8_t)len;
        n = 4;
    } else {
        out[1] |= 127;
        for (int i = 0; i < 8; i++)
            out[2 + i] = (uint8_t)(len >> (56 - 8 * i));
        n = 10;
    }
    if (mask_key != NULL) {
        memcpy(out + n, mask_key, 4);
        n += 4;
    }
    return n;
}

/* Marks the pool empty so the first mux_ws_keygen_next() refills it from the CSPRNG. */
void mux_ws_keygen_init(mux_ws_keygen *g)
{
    g->_pos = sizeof(g->_pool);
}

/* See ws.h. Refills the 4 KiB pool with RAND_bytes when fewer than 4 bytes are left. */
int mux_ws_keygen_next(mux_ws_keygen *g, uint8_t key[4])
{
    if (g->_pos > sizeof(g->_pool) || sizeof(g->_pool) - g->_pos < 4) {
        if (RAND_bytes(g->_pool, (int)sizeof(g->_pool)) != 1) {
            g->_pos = sizeof(g->_pool);
            return MUX_ERR_INTERNAL;
        }
        g->_pos = 0;
    }
    memcpy(key, g->_pool + g->_pos, 4);
    memset(g->_pool + g->_pos, 0, 4); /* a used key never lingers in the pool */
    g->_pos += 4;
    return 0;
}

/* ---------------------------------------------------------------- decoding */

/* Sets the decoder's configuration and its state to "expecting a frame header". */
void mux_ws_decoder_init(mux_ws_decoder *d, int require_masked, uint64_t max_frame_len)
{
    memset(d, 0, sizeof(*d));
    d->require_masked = require_masked ? 1 : 0;
    d->max_frame_len = max_frame_len;
    d->_state = WS_ST_HEAD;
    d->_hdrneed = 2;
}

static ssize_t fail(mux_ws_decoder *d, int rv, const char *why, const char **reason)
{
    d->_state = WS_ST_FAILED;
    d->_fail_rv = rv;
    if (reason != NULL)
        *reason = why;
    return rv;
}

/* Validates the two fixed header bytes (RFC 6455 §5.2, §5.4, §5.5; PROTOCOL.md §2.2) and sets
 * _hdrneed to the full header length. Returns 0 or MUX_ERR_WS_PROTOCOL with |*why|. */
static int parse_fixed(mux_ws_decoder *d, const char **why)
{
    uint8_t b0 = d->_hdr[0], b1 = d->_hdr[1];
    unsigned opcode = b0 & 0x0Fu, len7 = b1 & 0x7Fu;
    d->_fin = (b0 & 0x80) != 0;
    d->_masked = (b1 & 0x80) != 0;
    d->_opcode = opcode;
    if (b0 & 0x70) {
        *why = "reserved bits (RSV1-3) set";
        return MUX_ERR_WS_PROTOCOL;
    }
    switch (opcode) {
    case MUX_WS_OP_CONT:
        if (!d->_in_fragmented_msg) {
            *why = "continuation frame outside a fragmented message";
            return MUX_ERR_WS_PROTOCOL;
        }
        break;
    case MUX_WS_OP_TEXT:
    case MUX_WS_OP_BINARY:
        if (d->_in_fragmented_msg) {
            *why = "new data frame inside a fragmented message";
            return MUX_ERR_WS_PROTOCOL;
        }
        break;
    case MUX_WS_OP_CLOSE:
    case MUX_WS_OP_PING:
    case MUX_WS_OP_PONG:
        if (!d->_fin) {
            *why = "fragmented control frame";
            return MUX_ERR_WS_PROTOCOL;
        }
        if (len7 > MUX_WS_MAX_CONTROL_PAYLOAD) {
            *why = "control frame payload over 125 bytes";
            return MUX_ERR_WS_PROTOCOL;
        }
        break;
    default:
        *why = "unknown opcode";
        return MUX_ERR_WS_PROTOCOL;
    }
    if (d->require_masked && !d->_masked) {
        *why = "unmasked frame from client";
        return MUX_ERR_WS_PROTOCOL;
    }
    if (!d->require_masked && d->_masked) {
        *why = "masked frame from server";
        return MUX_ERR_WS_PROTOCOL;
    }
    d->_hdrneed = 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + (d->_masked ? 4 : 0);
    return 0;
}

/* Decodes the length and key of a complete header, checks minimal encoding and the size limit
 * (before any payload is read), and updates the fragmentation state. Returns 0 or an error. */
static int parse_rest(mux_ws_decoder *d, const char **why)
{
    unsigned len7 = d->_hdr[1] & 0x7Fu;
    uint64_t len = len7;
    size_t n = 2;
    if (len7 == 126) {
        len = ((uint64_t)d->_hdr[2] << 8) | d->_hdr[3];
        n = 4;
        if (len < 126) {
            *why = "non-minimal 16-bit length";
            return MUX_ERR_WS_PROTOCOL;
        }
    } else if (len7 == 127) {
        len = 0;
        for (int i = 0; i < 8; i++)
            len = (len << 8) | d->_hdr[2 + i];
        n = 10;
        if (len >> 63) {
            *why = "64-bit length with the most significant bit set";
            return MUX_ERR_WS_PROTOCOL;
        }
        if (len <= 0xFFFF) {
            *why = "non-minimal 64-bit length";
            return MUX_ERR_WS_PROTOCOL;
        }
    }
    if (d->_masked)
        memcpy(d->_key, d->_hdr + n, 4);
    d->_frame_len = d->_remain = len; /* kept on the error below: mux_ws_decoder_skip_oversized() */
    d->_offset = 0;
    if (len > d->max_frame_len) {
        *why = "frame larger than the maximum message size";
        return MUX_ERR_MESSAGE_TOO_LARGE;
    }
    if (d->_opcode == MUX_WS_OP_TEXT || d->_opcode == MUX_WS_OP_BINARY || d->_opcode == MUX_WS_OP_CONT)
        d->_in_fragmented_msg = !d->_fin;
    return 0;
}

/* Fills |piece| with |n| payload bytes at |p| (already unmasked) and advances the frame. */
static void emit(mux_ws_decoder *d, uint8_t *p, size_t n, mux_ws_piece *piece)
{
    piece->opcode = d->_opcode;
    piece->fin = d->_fin;
    piece->frame_len = d->_frame_len;
    piece->data = n != 0 ? p : NULL;
    piece->len = n;
    piece->frame_start = d->_offset == 0;
    d->_offset += n;
    d->_remain -= n;
    piece->frame_end = d->_remain == 0;
    if (d->_remain == 0) {
        d->_state = WS_ST_HEAD;
        d->_hdrlen = 0;
        d->_hdrneed = 2;
    }
}

/* See ws.h. One switch over the states; loops until a piece is produced or input runs out. */
ssize_t mux_ws_decoder_feed(mux_ws_decoder *d, uint8_t *in, size_t len, mux_ws_piece *piece, int *has_piece, const char **reason)
{
    size_t used = 0;
    *has_piece = 0;
    for (;;) {
        switch (d->_state) {
        case WS_ST_HEAD:
        case WS_ST_HEAD_EXT: {
            size_t take = d->_hdrneed - d->_hdrlen;
            if (take > len - used)
                take = len - used;
            if (take > 0) {
                memcpy(d->_hdr + d->_hdrlen, in + used, take);
                d->_hdrlen += take;
                used += take;
            }
            if (d->_hdrlen < d->_hdrneed)
                return (ssize_t)used; /* all input consumed, header still incomplete */
            const char *why = NULL;
            int rv;
            if (d->_state == WS_ST_HEAD) {
                if ((rv = parse_fixed(d, &why)) != 0)
                    return fail(d, rv, why, reason);
                d->_state = WS_ST_HEAD_EXT;
                if (d->_hdrlen < d->_hdrneed)
                    break; /* extended length / key still to come */
            }
            if ((rv = parse_rest(d, &why)) != 0) {
                d->_oversized_hdr = rv == MUX_ERR_MESSAGE_TOO_LARGE ? used : 0;
                return fail(d, rv, why, reason);
            }
            d->_state = WS_ST_PAYLOAD;
            if (d->_frame_len == 0) {
                emit(d, NULL, 0, piece);
                *has_piece = 1;
                return (ssize_t)used;
            }
            break;
        }
        case WS_ST_PAYLOAD: {
            size_t avail = len - used;
            if (avail == 0)
                return (ssize_t)used;
            size_t n = d->_remain < avail ? (size_t)d->_remain : avail;
            uint8_t *p = in + used;
            if (d->_masked)
                mux_ws_mask(p, n, d->_key, d->_offset);
            emit(d, p, n, piece);
            *has_piece = 1;
            return (ssize_t)(used + n);
        }
        case WS_ST_FAILED:
        default:
            return fail(d, MUX_ERR_WS_PROTOCOL, "decoder fed after an error", reason);
        }
    }
}

/* See ws.h. The header of the oversized frame was parsed whole (parse_rest keeps its length and
 * key): continue as if it had been accepted, so its payload is handed out (and dropped by the
 * caller) and the frames after it are decoded again. */
ssize_t mux_ws_decoder_skip_oversized(mux_ws_decoder *d)
{
    if (d->_state != WS_ST_FAILED || d->_fail_rv != MUX_ERR_MESSAGE_TOO_LARGE)
        return MUX_ERR_INVALID_STATE;
    d->_state = WS_ST_PAYLOAD;
    d->_fail_rv = 0;
    if (d->_opcode == MUX_WS_OP_TEXT || d->_opcode == MUX_WS_OP_BINARY || d->_opcode == MUX_WS_OP_CONT)
        d->_in_fragmented_msg = !d->_fin; /* as parse_rest does for an accepted frame */
    if (d->_remain == 0) {                /* cannot happen (0 is never too large); keeps emit's invariant */
        d->_state = WS_ST_HEAD;
        d->_hdrlen = 0;
        d->_hdrneed = 2;
    }
    return (ssize_t)d->_oversized_hdr;
}
