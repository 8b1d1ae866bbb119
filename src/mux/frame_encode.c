/*
 * tunnelmux — encoding frame records (frame_codec.h, docs/PROTOCOL.md §3–§4).
 *
 * A record is `varint length` + one serialized tunnelmux.Frame. DATA is hand-encoded (prefix only,
 * payload as its own iovec); OPEN is hand-encoded byte for byte as protobuf-c packs it (the
 * reference entry point packs it with protobuf-c, so tests can compare); everything else goes
 * through protobuf-c.
 */
#include <stdint.h>
#include <string.h>

#include <protobuf-c/protobuf-c.h>

#include "frame_codec.h"
#include "frame_wire.h"
#include "mem.h"
#include "mux/err.h"
#include "tunnel.pb-c.h"

/* ---------------------------------------------------------------- DATA prefix */

/*
 * Writes the DATA record prefix (see frame_codec.h). |payload_len| must stay below 2^42 so that the
 * prefix fits in MUX_DATA_PREFIX_MAX bytes (frames are far smaller: MAX_MESSAGE_SIZE bounds them).
 * |stream_id| 0 produces a record every decoder rejects; callers never pass it.
 */
size_t mux_frame_data_prefix(uint8_t *out, uint32_t stream_id, int fin, size_t payload_len)
{
    size_t data_len = 1 + mux_varint_len(stream_id) + (fin ? 2 : 0) + 1 + mux_varint_len(payload_len) + payload_len;
    size_t body_len = 1 + mux_varint_len(data_len) + data_len;
    size_t n = mux_varint_put(out, body_len);
    out[n++] = TAG_FRAME_DATA;
    n += mux_varint_put(out + n, data_len);
    out[n++] = TAG_DATA_STREAM_ID;
    n += mux_varint_put(out + n, stream_id);
    if (fin) {
        out[n++] = TAG_DATA_FIN;
        out[n++] = 1;
    }
    out[n++] = TAG_DATA_PAYLOAD;
    n += mux_varint_put(out + n, payload_len);
    return n;
}

/* ---------------------------------------------------------------- encoding */

/* Frame and sub-message filled on the stack from a mux_frame (no allocation except headers). */
typedef struct {
    Tunnelmux__Frame frame;
    union {
        Tunnelmux__Hello hello;
        Tunnelmux__Welcome welcome;
        Tunnelmux__Refuse refuse;
        Tunnelmux__Open open;
        Tunnelmux__Window window;
        Tunnelmux__Close close;
        Tunnelmux__Ping ping;
        Tunnelmux__Pong pong;
        Tunnelmux__GoAway goaway;
    } u;
} pb_frame;

static int iov_ok(const mux_iovec *v)
{
    return v->base != NULL || v->len == 0;
}

/* Optional bytes field: present only when non-empty (absent and empty decode alike). */
static void set_bytes(protobuf_c_boolean *has, ProtobufCBinaryData *dst, const mux_iovec *src)
{
    *has = src->len != 0;
    dst->data = src->base;
    dst->len = src->len;
}

static char *opt_string(const char *s)
{
    return s != NULL && s[0] != '\0' ? (char *)s : NULL;
}

static char *req_string(const char *s)
{
    return s != NULL ? (char *)s : (char *)empty_string;
}

/* An OPEN frame the encoders accept: a stream id, and no NULL base with a length. */
static int open_valid(const mux_frame *f)
{
    const mux_head *h = &f->head;
    if (f->stream_id == 0)
        return 0;
    if (!iov_ok(&h->method) || !iov_ok(&h->scheme) || !iov_ok(&h->authority) || !iov_ok(&h->path) || !iov_ok(&h->reason) ||
        !iov_ok(&h->remote_addr) || (h->nheaders != 0 && h->headers == NULL))
        return 0;
    for (size_t i = 0; i < h->nheaders; i++)
        if (!iov_ok(&h->headers[i].name) || !iov_ok(&h->headers[i].value))
            return 0;
    return 1;
}

/*
 * Fills |pb| from |f| for every type but DATA, without the OPEN headers (n_headers = 0).
 * Returns 0 or MUX_ERR_INVALID_ARGUMENT (unknown type, missing stream id, NULL base with length).
 */
static int fill_pb(pb_frame *pb, const mux_frame *f)
{
    tunnelmux__frame__init(&pb->frame);
    switch (f->type) {
    case MUX_FRAME_HELLO: {
        Tunnelmux__Hello *m = &pb->u.hello;
        tunnelmux__hello__init(m);
        m->version = f->hello.version;
        m->client_id = req_string(f->hello.client_id);
        m->auth_token = opt_string(f->hello.auth_token);
        m->has_capabilities = f->hello.capabilities != 0;
        m->capabilities = f->hello.capabilities;
        m->has_initial_stream_window = f->initial_stream_window != 0;
        m->initial_stream_window = f->initial_stream_window;
        m->has_initial_conn_window = f->initial_conn_window != 0;
        m->initial_conn_window = f->initial_conn_window;
        m->has_max_message_size = f->max_message_size != 0;
        m->max_message_size = f->max_message_size;
        m->software = opt_string(f->hello.software);
        pb->frame.kind_case = TUNNELMUX__FRAME__KIND_HELLO;
        pb->frame.hello = m;
        return 0;
    }
    case MUX_FRAME_WELCOME: {
        Tunnelmux__Welcome *m = &pb->u.welcome;
        tunnelmux__welcome__init(m);
        m->version = f->welcome.version;
        m->has_capabilities = f->welcome.capabilities != 0;
        m->capabilities = f->welcome.capabilities;
        m->has_initial_stream_window = f->initial_stream_window != 0;
        m->initial_stream_window = f->initial_stream_window;
        m->has_initial_conn_window = f->initial_conn_window != 0;
        m->initial_conn_window = f->initial_conn_window;
        m->has_max_message_size = f->max_message_size != 0;
        m->max_message_size = f->max_message_size;
        m->has_ping_interval_ms = f->welcome.ping_interval_ms != 0;
        m->ping_interval_ms = f->welcome.ping_interval_ms;
        m->has_ping_timeout_ms = f->welcome.ping_timeout_ms != 0;
        m->ping_timeout_ms = f->welcome.ping_timeout_ms;
        m->public_url = opt_string(f->welcome.public_url);
        pb->frame.kind_case = TUNNELMUX__FRAME__KIND_WELCOME;
        pb->frame.welcome = m;
        return 0;
    }
    case MUX_FRAME_REFUSE: {
        Tunnelmux__Refuse *m = &pb->u.refuse;
        tunnelmux__refuse__init(m);
        if (!iov_ok(&f->reason) || (f->reason.len != 0 && memchr(f->reason.base, 0, f->reason.len) != NULL))
            return MUX_ERR_INVALID_ARGUMENT; /* a string field: no NUL inside */
        m->code = f->code;
        m->has_retry_after_ms = f->retry_after_ms != 0;
        m->retry_after_ms = f->retry_after_ms;
        pb->frame.kind_case = TUNNELMUX__FRAME__KIND_REFUSE;
        pb->frame.refuse = m;
        return 0; /* reason is a string: set by the caller from a NUL-terminated copy */
    }
    case MUX_FRAME_OPEN: {
        Tunnelmux__Open *m = &pb->u.open;
        const mux_head *h = &f->head;
        if (!open_valid(f))
            return MUX_ERR_INVALID_ARGUMENT;
        tunnelmux__open__init(m);
        m->stream_id = f->stream_id;
        m->has_flags = h->flags != 0;
        m->flags = h->flags;
        set_bytes(&m->has_method, &m->method, &h->method);
        set_bytes(&m->has_scheme, &m->scheme, &h->scheme);
        set_bytes(&m->has_authority, &m->authority, &h->authority);
        set_bytes(&m->has_path, &m->path, &h->path);
        m->has_status = h->status != 0;
        m->status = h->status;
        set_bytes(&m->has_reason, &m->reason, &h->reason);
        set_bytes(&m->has_remote_addr, &m->remote_addr, &h->remote_addr);
        m->has_queue_wait_ms = m->has_queue_length = h->status != 0 && h->has_local_queue; /* response only */
        m->queue_wait_ms = h->local_queue_wait_ms;
        m->queue_length = h->local_queue_length;
        pb->frame.kind_case = TUNNELMUX__FRAME__KIND_OPEN;
        pb->frame.open = m;
        return 0;
    }
    case MUX_FRAME_WINDOW: {
        Tunnelmux__Window *m = &pb->u.window;
        tunnelmux__window__init(m);
        m->stream_id = f->stream_id;
        m->increment = f->increment;
        pb->frame.kind_case = TUNNELMUX__FRAME__KIND_WINDOW;
        pb->frame.window = m;
        return 0;
    }
    case MUX_FRAME_CLOSE: {
        Tunnelmux__Close *m = &pb->u.close;
        if (f->stream_id == 0 || !iov_ok(&f->reason))
            return MUX_ERR_INVALID_ARGUMENT;
        tunnelmux__close__init(m);
        m->stream_id = f->stream_id;
        m->has_code = f->code != 0;
        m->code = f->code;
        set_bytes(&m->has_reason, &m->reason, &f->reason);
        pb->frame.kind_case = TUNNELMUX__FRAME__KIND_CLOSE;
        pb->frame.close = m;
        return 0;
    }
    case MUX_FRAME_PING:
    case MUX_FRAME_PONG: {
        /* Ping and Pong have the same layout; each gets its own descriptor */
        if (f->type == MUX_FRAME_PING) {
            tunnelmux__ping__init(&pb->u.ping);
            pb->u.ping.has_opaque = f->opaque != 0;
            pb->u.ping.opaque = f->opaque;
            pb->frame.kind_case = TUNNELMUX__FRAME__KIND_PING;
            pb->frame.ping = &pb->u.ping;
        } else {
            tunnelmux__pong__init(&pb->u.pong);
            pb->u.pong.has_opaque = f->opaque != 0;
            pb->u.pong.opaque = f->opaque;
            pb->frame.kind_case = TUNNELMUX__FRAME__KIND_PONG;
            pb->frame.pong = &pb->u.pong;
        }
        return 0;
    }
    case MUX_FRAME_GOAWAY: {
        Tunnelmux__GoAway *m = &pb->u.goaway;
        if (!iov_ok(&f->reason))
            return MUX_ERR_INVALID_ARGUMENT;
        tunnelmux__go_away__init(m);
        m->has_last_stream_id = f->last_stream_id != 0;
        m->last_stream_id = f->last_stream_id;
        m->has_code = f->code != 0;
        m->code = f->code;
        set_bytes(&m->has_reason, &m->reason, &f->reason);
        pb->frame.kind_case = TUNNELMUX__FRAME__KIND_GOAWAY;
        pb->frame.goaway = m;
        return 0;
    }
    case MUX_FRAME_DATA:
        break;
    }
    return MUX_ERR_INVALID_ARGUMENT;
}

/* Serialized size of one Header sub-message (two required bytes fields, tags of one byte). */
static size_t header_size(const mux_header *h)
{
    return TAG_HEADER_FIELD_LEN + mux_varint_len(h->name.len) + h->name.len + TAG_HEADER_FIELD_LEN + mux_varint_len(h->value.len) +
           h->value.len;
}

/* Bytes the repeated Open.headers field adds to the Open message. */
static size_t headers_size(const mux_head *h)
{
    size_t n = 0;
    for (size_t i = 0; i < h->nheaders; i++) {
        size_t hs = header_size(&h->headers[i]);
        n += TAG_OPEN_HEADERS_LEN + mux_varint_len(hs) + hs;
    }
    return n;
}

/* Bytes of an optional bytes field (absent when empty, as set_bytes packs it). */
static size_t bytes_field_size(const mux_iovec *v)
{
    return v->len != 0 ? 1 + mux_varint_len(v->len) + v->len : 0;
}

/* Bytes of the Open message of |f|: the fields protobuf-c would pack, all with one-byte tags. */
static size_t open_size(const mux_frame *f)
{
    const mux_head *h = &f->head;
    size_t n = 1 + mux_varint_len(f->stream_id);
    if (h->flags != 0)
        n += 1 + mux_varint_len(h->flags);
    n += bytes_field_size(&h->method) + bytes_field_size(&h->scheme) + bytes_field_size(&h->authority) + bytes_field_size(&h->path);
    if (h->status != 0)
        n += 1 + mux_varint_len(h->status);
    n += bytes_field_size(&h->reason) + headers_size(h) + bytes_field_size(&h->remote_addr);
    if (h->status != 0 && h->has_local_queue) /* response only */
        n += 2 + mux_varint_len(h->local_queue_wait_ms) + mux_varint_len(h->local_queue_length);
    return n;
}

/* Frame body size of an OPEN: Frame{open = Open}: 1-byte tag, varint length, Open bytes. */
static size_t open_body_size(const mux_frame *f)
{
    size_t open_len = open_size(f);
    return 1 + mux_varint_len(open_len) + open_len;
}

static uint8_t *put_varint_field(uint8_t *p, uint8_t tag, uint64_t v)
{
    *p++ = tag;
    return p + mux_varint_put(p, v);
}

static uint8_t *put_bytes(uint8_t *p, uint8_t tag, const mux_iovec *v)
{
    *p++ = tag;
    p += mux_varint_put(p, v->len);
    if (v->len != 0)
        memcpy(p, v->base, v->len);
    return p + v->len;
}

static uint8_t *put_opt_bytes(uint8_t *p, uint8_t tag, const mux_iovec *v)
{
    return v->len != 0 ? put_bytes(p, tag, v) : p;
}

/* Appends the OPEN record of |f| (checked by open_valid) to |out|: fields in number order, as
 * protobuf-c packs them (test_open_matches_protobuf_c compares the bytes). */
static int encode_open(const mux_frame *f, mux_buf *out, const mux_mem *mem)
{
    const mux_head *h = &f->head;
    size_t open_len = open_size(f);
    size_t body = 1 + mux_varint_len(open_len) + open_len;
    int rv = mux_buf_reserve(out, mux_varint_len(body) + body, 0, mem);
    if (rv != 0)
        return rv;
    uint8_t *p = out->base + out->len;
    p += mux_varint_put(p, body);
    p = put_varint_field(p, TAG_FRAME_OPEN, open_len);
    p = put_varint_field(p, TAG(OPEN_STREAM_ID, WT_VARINT), f->stream_id);
    if (h->flags != 0)
        p = put_varint_field(p, TAG(OPEN_FLAGS, WT_VARINT), h->flags);
    p = put_opt_bytes(p, TAG(OPEN_METHOD, WT_LEN), &h->method);
    p = put_opt_bytes(p, TAG(OPEN_SCHEME, WT_LEN), &h->scheme);
    p = put_opt_bytes(p, TAG(OPEN_AUTHORITY, WT_LEN), &h->authority);
    p = put_opt_bytes(p, TAG(OPEN_PATH, WT_LEN), &h->path);
    if (h->status != 0)
        p = put_varint_field(p, TAG(OPEN_STATUS, WT_VARINT), h->status);
    p = put_opt_bytes(p, TAG(OPEN_REASON, WT_LEN), &h->reason);
    for (size_t i = 0; i < h->nheaders; i++) {
        p = put_varint_field(p, TAG(OPEN_HEADERS, WT_LEN), header_size(&h->headers[i]));
        p = put_bytes(p, TAG(1, WT_LEN), &h->headers[i].name);
        p = put_bytes(p, TAG(2, WT_LEN), &h->headers[i].value);
    }
    p = put_opt_bytes(p, TAG(OPEN_REMOTE_ADDR, WT_LEN), &h->remote_addr);
    if (h->status != 0 && h->has_local_queue) {
        p = put_varint_field(p, TAG(OPEN_QUEUE_WAIT_MS, WT_VARINT), h->local_queue_wait_ms);
        p = put_varint_field(p, TAG(OPEN_QUEUE_LENGTH, WT_VARINT), h->local_queue_length);
    }
    out->len = (size_t)(p - out->base);
    return 0;
}

static size_t data_record_size(const mux_frame *f)
{
    uint8_t prefix[MUX_DATA_PREFIX_MAX];
    return mux_frame_data_prefix(prefix, f->stream_id, f->fin, f->payload_len) + f->payload_len;
}

/* Record size of |f| (see frame_codec.h); 0 when |f| could not be encoded (invalid argument). */
size_t mux_frame_encoded_size(const mux_frame *f)
{
    if (f->type == MUX_FRAME_DATA)
        return f->stream_id != 0 && (f->payload != NULL || f->payload_len == 0) ? data_record_size(f) : 0;
    if (f->type == MUX_FRAME_OPEN) {
        if (!open_valid(f))
            return 0;
        size_t body = open_body_size(f);
        return mux_varint_len(body) + body;
    }
    pb_frame pb;
    if (fill_pb(&pb, f) != 0)
        return 0;
    if (f->type == MUX_FRAME_REFUSE && f->reason.len != 0) {
        /* Frame{refuse = Refuse}: Refuse.reason (2, LEN) is added here as it is packed from a copy */
        size_t refuse_len =
            protobuf_c_message_get_packed_size(&pb.u.refuse.base) + 1 + mux_varint_len(f->reason.len) + f->reason.len;
        size_t body = 1 + mux_varint_len(refuse_len) + refuse_len;
        return mux_varint_len(body) + body;
    }
    size_t body = protobuf_c_message_get_packed_size(&pb.frame.base);
    return mux_varint_len(body) + body;
}

/* Appends a DATA record: the fast-path prefix plus a copy of the payload. */
static int encode_data(const mux_frame *f, mux_buf *out, const mux_mem *mem)
{
    if (f->stream_id == 0 || (f->payload == NULL && f->payload_len != 0) || f->payload_len > UINT32_MAX)
        return MUX_ERR_INVALID_ARGUMENT;
    uint8_t prefix[MUX_DATA_PREFIX_MAX];
    size_t n = mux_frame_data_prefix(prefix, f->stream_id, f->fin, f->payload_len);
    int rv = mux_buf_reserve(out, n + f->payload_len, 0, mem);
    if (rv != 0)
        return rv;
    memcpy(out->base + out->len, prefix, n);
    if (f->payload_len != 0)
        memcpy(out->base + out->len + n, f->payload, f->payload_len);
    out->len += n + f->payload_len;
    return 0;
}

/* Packs |f| (any type but DATA) with protobuf-c. */
static int encode_pb(const mux_frame *f, mux_buf *out, const mux_mem *mem)
{
    int rv;
    pb_frame pb;
    if ((rv = fill_pb(&pb, f)) != 0)
        return rv;

    /* REFUSE.reason is a proto string: needs a NUL-terminated copy of the iovec */
    char reason_stack[256], *reason_heap = NULL;
    Tunnelmux__Header hdr_stack[ENCODE_STACK_HEADERS], *hdrs = hdr_stack;
    Tunnelmux__Header *hptr_stack[ENCODE_STACK_HEADERS], **hptrs = hptr_stack;
    if (f->type == MUX_FRAME_REFUSE && f->reason.len != 0) {
        char *r = reason_stack;
        if (f->reason.len >= sizeof(reason_stack)) {
            if ((r = reason_heap = mux_mem_malloc(mem, f->reason.len + 1)) == NULL)
                return MUX_ERR_NOMEM;
        }
        memcpy(r, f->reason.base, f->reason.len);
        r[f->reason.len] = '\0';
        pb.u.refuse.reason = r;
    }
    if (f->type == MUX_FRAME_OPEN && f->head.nheaders != 0) {
        size_t nh = f->head.nheaders;
        if (nh > ENCODE_STACK_HEADERS) {
            hdrs = mux_mem_calloc(mem, nh, sizeof(*hdrs));
            hptrs = mux_mem_calloc(mem, nh, sizeof(*hptrs));
            if (hdrs == NULL || hptrs == NULL) {
                rv = MUX_ERR_NOMEM;
                goto done;
            }
        }
        for (size_t i = 0; i < nh; i++) {
            tunnelmux__header__init(&hdrs[i]);
            hdrs[i].name.data = f->head.headers[i].name.base;
            hdrs[i].name.len = f->head.headers[i].name.len;
            hdrs[i].value.data = f->head.headers[i].value.base;
            hdrs[i].value.len = f->head.headers[i].value.len;
            hptrs[i] = &hdrs[i];
        }
        pb.u.open.n_headers = nh;
        pb.u.open.headers = hptrs;
    }

    size_t body = protobuf_c_message_get_packed_size(&pb.frame.base);
    size_t vlen = mux_varint_len(body);
    if ((rv = mux_buf_reserve(out, vlen + body, 0, mem)) != 0)
        goto done;
    mux_varint_put(out->base + out->len, body);
    if (protobuf_c_message_pack(&pb.frame.base, out->base + out->len + vlen) != body) {
        rv = MUX_ERR_INVALID_ARGUMENT; /* not reached: pack writes exactly get_packed_size bytes */
        goto done;
    }
    out->len += vlen + body;
    rv = 0;

done:
    if (hdrs != hdr_stack)
        mux_mem_free(mem, hdrs);
    if (hptrs != hptr_stack)
        mux_mem_free(mem, hptrs);
    mux_mem_free(mem, reason_heap);
    return rv;
}

/*
 * Appends the record for |f| to |out| (buffer owned by the caller, grown through |mem|). DATA is
 * the fast-path prefix plus a copy of the payload, OPEN hand-encoded, the rest packed by
 * protobuf-c. Returns 0, MUX_ERR_NOMEM (|out| unchanged in content), MUX_ERR_INVALID_ARGUMENT
 * (unknown type, stream_id 0 on OPEN/DATA/CLOSE, a NULL base with a length, a NUL byte inside a
 * REFUSE reason).
 */
int mux_frame_encode(const mux_frame *f, mux_buf *out, const mux_mem *mem)
{
    if (f->type == MUX_FRAME_DATA)
        return encode_data(f, out, mem);
    if (f->type == MUX_FRAME_OPEN)
        return open_valid(f) ? encode_open(f, out, mem) : MUX_ERR_INVALID_ARGUMENT;
    return encode_pb(f, out, mem);
}

/* mux_frame_encode with protobuf-c for OPEN too (DATA is the same hand-written prefix). */
int mux_frame_encode_reference(const mux_frame *f, mux_buf *out, const mux_mem *mem)
{
    return f->type == MUX_FRAME_DATA ? encode_data(f, out, mem) : encode_pb(f, out, mem);
}
