/*
 * tunnelmux — frame records: encoding and decoding of one `varint length + Frame` record of the
 * envelope (docs/PROTOCOL.md §3–§4). Pure functions over buffers.
 *
 * DATA has a fast path both ways: the encoder writes only the prefix (record length, Frame.data
 * tag and length, stream_id, fin, payload tag and length) so the payload can follow as its own
 * iovec; the decoder reads DATA with a hand-written wire reader that points into the input. All
 * other frames go through protobuf-c (tunnel.pb-c.h). Implemented by frame_encode.c, frame_decode.c
 * (wire details they share: frame_wire.h; varints: varint.h).
 */
#ifndef MUX_FRAME_CODEC_H
#define MUX_FRAME_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "varint.h"
#include "mux/mux.h"

typedef enum {
    MUX_FRAME_HELLO = 1,
    MUX_FRAME_WELCOME = 2,
    MUX_FRAME_REFUSE = 3,
    MUX_FRAME_OPEN = 4,
    MUX_FRAME_DATA = 5,
    MUX_FRAME_WINDOW = 6,
    MUX_FRAME_CLOSE = 7,
    MUX_FRAME_PING = 8,
    MUX_FRAME_PONG = 9,
    MUX_FRAME_GOAWAY = 10,
} mux_frame_type;

/*
 * A decoded frame. Pointers borrow from the input record or from |_pb| (the unpacked protobuf-c
 * message); valid until mux_frame_clear() and while the input is. Fields not used by |type| are zero.
 */
typedef struct {
    mux_frame_type type;
    uint32_t stream_id; /* OPEN DATA WINDOW CLOSE */
    /* DATA */
    const uint8_t *payload;
    size_t payload_len;
    int fin;
    /* WINDOW */
    uint32_t increment;
    /* CLOSE GOAWAY REFUSE: code + reason; GOAWAY: last_stream_id; REFUSE: retry_after_ms */
    unsigned code;
    mux_iovec reason;
    uint32_t last_stream_id;
    uint32_t retry_after_ms;
    /* PING PONG */
    uint64_t opaque;
    /* OPEN: head.headers points to an array owned by the frame */
    mux_head head;
    /* HELLO / WELCOME (strings NUL-terminated, "" when absent) */
    mux_hello_info hello;
    mux_welcome_info welcome;
    /* parameters announced in HELLO / WELCOME (0 when absent) */
    uint32_t initial_stream_window, initial_conn_window, max_message_size;
    /* private */
    void *_pb;         /* Tunnelmux__Frame * to free, or NULL */
    mux_header *_hdrs; /* head.headers storage */
} mux_frame;

/* Bytes that the DATA prefix can take at most. */
#define MUX_DATA_PREFIX_MAX 32

/*
 * Writes the prefix of a DATA record for |payload_len| bytes on |stream_id| into |out|
 * (MUX_DATA_PREFIX_MAX bytes): varint(record length), then the Frame bytes up to and including
 * the payload's tag and length. The record is the prefix followed by exactly |payload_len| bytes.
 * Returns the prefix length.
 */
size_t mux_frame_data_prefix(uint8_t *out, uint32_t stream_id, int fin, size_t payload_len);

/*
 * Appends a whole record (varint length + Frame) for a non-DATA frame described by |f| to |out|
 * (also accepts DATA, copying the payload). Only the fields of f->type are read. Returns 0,
 * MUX_ERR_NOMEM, MUX_ERR_INVALID_ARGUMENT.
 */
int mux_frame_encode(const mux_frame *f, mux_buf *out, const mux_mem *mem);

/* Size in bytes of the record mux_frame_encode would append (for batching decisions). */
size_t mux_frame_encoded_size(const mux_frame *f);

/*
 * Decodes one record from |in|/|len| (the start of a record: varint length then Frame).
 * On success returns the number of bytes the record took (varint + body) and fills |out|
 * (call mux_frame_clear afterwards). Errors: MUX_ERR_VARINT (truncated/over-long varint),
 * MUX_ERR_FRAME_TOO_LARGE (length runs past |len|), MUX_ERR_FRAME_DECODE (invalid protobuf,
 * missing required field, no/unknown oneof case, stream_id 0 where one is required),
 * MUX_ERR_NOMEM. |*reason| gets a static description on error (may be NULL).
 * |max_header_count| / |max_header_bytes| bound OPEN heads (MUX_ERR_HEADER_LIMIT, non-fatal:
 * the caller resets only that stream; out->stream_id is still set).
 */
ssize_t mux_frame_decode(const uint8_t *in, size_t len, mux_frame *out, uint32_t max_header_count, uint32_t max_header_bytes,
                         const mux_mem *mem, const char **reason);

/*
 * Reference codec for tests and fuzz targets: the contracts of mux_frame_encode and
 * mux_frame_decode with protobuf-c doing all the work (no OPEN fast paths; decoding takes DATA
 * through protobuf-c too, encoding DATA is the same prefix). The fast paths must agree with it.
 */
int mux_frame_encode_reference(const mux_frame *f, mux_buf *out, const mux_mem *mem);
ssize_t mux_frame_decode_reference(const uint8_t *in, size_t len, mux_frame *out, uint32_t max_header_count,
                                   uint32_t max_header_bytes, const mux_mem *mem, const char **reason);

/* Releases what mux_frame_decode allocated; |f| may be reused. Safe on a zeroed frame. */
void mux_frame_clear(mux_frame *f, const mux_mem *mem);

/* Varint helpers (protobuf base-128): mux_varint_put, mux_varint_get, mux_varint_len in varint.h. */

#endif
