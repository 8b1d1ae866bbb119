/*
 * tunnelmux — libFuzzer target for the frame record decoder (src/mux/frame_codec.c).
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

static int iov_same(mux_iovec a, mux_iovec b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.base, b.base, a.len) == 0);
}

static int frames_same(const mux_frame *a, const mux_frame *b)
{
    if (a->type != b->type || a->stream_id != b->stream_id)
        return 0;
    switch (a->type) {
    case MUX_FRAME_HELLO:
        return a->hello.version == b->hello.version && strcmp(a->hello.client_id, b->hello.client_id) == 0 &&
               strcmp(a->hello.auth_token, b->hello.auth_token) == 0 && a->hello.capabilities == b->hello.capabilities &&
               strcmp(a->hello.software, b->hello.software) == 0 && a->initial_stream_window == b->initial_stream_window &&
               a->initial_conn_window == b->initial_conn_window && a->max_message_size == b->max_message_size;
    case MUX_FRAME_WELCOME:
        return a->welcome.version == b->welcome.version && a->welcome.capabilities == b->welcome.capabilities &&
               a->welcome.ping_interval_ms == b->welcome.ping_interval_ms &&
               strcmp(a->welcome.public_url, b->welcome.public_url) == 0 && a->initial_stream_window == b->initial_stream_window &&
               a->initial_conn_window == b->initial_conn_window && a->max_message_size == b->max_message_size;
    case MUX_FRAME_REFUSE:
        return a->code == b->code && iov_same(a->reason, b->reason) && a->retry_after_ms == b->retry_after_ms;
    case MUX_FRAME_OPEN: {
        const mux_head *x = &a->head, *y = &b->head;
        if (x->flags != y->flags || x->status != y->status || !iov_same(x->method, y->method) || !iov_same(x->scheme, y->scheme) ||
            !iov_same(x->authority, y->authority) || !iov_same(x->path, y->path) || !iov_same(x->remote_addr, y->remote_addr) ||
            !iov_same(x->reason, y->reason) || x->nheaders != y->nheaders)
            return 0;
        for (size_t i = 0; i < x->nheaders; i++)
            if (!iov_same(x->headers[i].name, y->headers[i].name) || !iov_same(x->headers[i].value, y->headers[i].value))
                return 0;
        return 1;
    }
    case MUX_FRAME_DATA:
        return a->fin == b->fin && a->payload_len == b->payload_len &&
               (a->payload_len == 0 || memcmp(a->payload, b->payload, a->payload_len) == 0);
    case MUX_FRAME_WINDOW:
        return a->increment == b->increment;
    case MUX_FRAME_CLOSE:
        return a->code == b->code && iov_same(a->reason, b->reason);
    case MUX_FRAME_PING:
    case MUX_FRAME_PONG:
        return a->opaque == b->opaque;
    case MUX_FRAME_GOAWAY:
        return a->last_stream_id == b->last_stream_id && a->code == b->code && iov_same(a->reason, b->reason);
    }
    return 0;
}

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
