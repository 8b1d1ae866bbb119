/*
 * tunnelmux — libFuzzer target for the frame record decoder (src/mux/frame_decode.c, frame_codec.h).
 *
 * Decodes the input as a batch of records until its end or a fatal error, like the envelope does.
 * Every decoded frame is re-encoded and decoded again; the two decodings must agree field by field
 * (the encoder round-trips everything the decoder accepts). MUX_ERR_HEADER_LIMIT skips just the
 * record, as the session does. Every record is also decoded by the reference decoder (protobuf-c
 * for every frame type): where the OPEN fast path decides, both must give the same result, and
 * any frame both decode must be the same.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "frame_codec.h"
#include "../tests/mux/frames_same.h"

static void round_trip(const mux_frame *f)
{
    mux_buf b;
    mux_buf_init(&b);
    if (mux_frame_encode(f, &b, NULL) != 0)
        abort(); /* everything decoded must be encodable */
    if (mux_buf_size(&b) != mux_frame_encoded_size(f))
        abort();
    mux_frame g;
    ssize_t n = mux_frame_decode(b.base, b.len, &g, UINT32_MAX, UINT32_MAX, NULL, NULL);
    if (n != (ssize_t)b.len || !frames_same(f, &g))
        abort();
    mux_frame_clear(&g, NULL);
    mux_buf_free(&b, NULL);
}

/* The fast decoder against the reference one on the record at |in|. */
static void differential(const uint8_t *in, size_t len, const mux_frame *f, ssize_t n)
{
    mux_frame g;
    const char *reason = NULL;
    ssize_t m = mux_frame_decode_reference(in, len, &g, 100, 65536, NULL, &reason);
    if ((f->type == MUX_FRAME_OPEN || g.type == MUX_FRAME_OPEN) && (n != m || f->type != g.type || f->stream_id != g.stream_id))
        abort();
    if (n > 0 && m > 0 && (n != m || !frames_same(f, &g)))
        abort();
    mux_frame_clear(&g, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t off = 0;
    while (off < size) {
        mux_frame f;
        const char *reason = NULL;
        ssize_t n = mux_frame_decode(data + off, size - off, &f, 100, 65536, NULL, &reason);
        if (reason == NULL)
            abort();
        differential(data + off, size - off, &f, n);
        if (n == MUX_ERR_HEADER_LIMIT) {
            /* non-fatal: the record is well formed; skip it */
            uint64_t len;
            int vn = mux_varint_get(data + off, size - off, &len);
            if (f.type != MUX_FRAME_OPEN || f.stream_id == 0 || vn <= 0 || len > size - off - (size_t)vn)
                abort();
            mux_frame_clear(&f, NULL);
            off += (size_t)vn + (size_t)len;
            continue;
        }
        if (n <= 0) {
            mux_frame_clear(&f, NULL);
            break;
        }
        round_trip(&f);
        mux_frame_clear(&f, NULL);
        off += (size_t)n;
    }
    return 0;
}
