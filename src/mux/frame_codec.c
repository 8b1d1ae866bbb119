/*
 * tunnelmux — frame records (frame_codec.h, docs/PROTOCOL.md §3–§4).
 *
 * A record is `varint length` + one serialized tunnelmux.Frame. The two frames every request
 * carries take hand-written paths: DATA is hand-encoded (prefix only, payload as its own iovec) and
 * hand-decoded (pointers into the input, no allocation); OPEN is hand-encoded (byte for byte what
 * protobuf-c packs) and hand-decoded when it has the plain shape every encoder writes (pointers into
 * the input, one allocation for the header array). Everything else goes through protobuf-c, which
 * also decides every OPEN the fast path declines, so both give the same result; the reference
 * entry points (protobuf-c only) let tests and fuzz_frame_decode check that.
 */
#include <stdint.h>
#include <string.h>

#include <protobuf-c/protobuf-c.h>

#include "frame_codec.h"
#include "mem.h"
#include "mux/err.h"
#include "tunnel.pb-c.h"

/* wire types (protobuf encoding) */
enum { WT_VARINT = 0, WT_I64 = 1, WT_LEN = 2, WT_SGROUP = 3, WT_EGROUP = 4, WT_I32 = 5 };

/* tags of the DATA fast path: Frame.data (5, LEN), Data.stream_id (1, VARINT), Data.fin (2, VARINT),
 * Data.payload (3, LEN) */
#define TAG_FRAME_DATA 0x2A
#define TAG_DATA_STREAM_ID 0x08
#define TAG_DATA_FIN 0x10
#define TAG_DATA_PAYLOAD 0x1A
/* Frame.open (4, LEN); Open fields: stream_id (1), flags (2), status (7) VARINT; method (3),
 * scheme (4), authority (5), path (6), reason (8), headers (9), remote_addr (10) LEN; queue_wait_ms (11),
 * queue_length (12) VARINT */
#define TAG_FRAME_OPEN 0x22
#define OPEN_STREAM_ID 1
#define OPEN_FLAGS 2
#define OPEN_METHOD 3
#define OPEN_SCHEME 4
#define OPEN_AUTHORITY 5
#define OPEN_PATH 6
#define OPEN_STATUS 7
#define OPEN_REASON 8
#define OPEN_HEADERS 9
#define OPEN_REMOTE_ADDR 10
#define OPEN_QUEUE_WAIT_MS 11
#define OPEN_QUEUE_LENGTH 12
#define OPEN_LAST_FIELD OPEN_QUEUE_LENGTH
#define TAG(field, wt) ((uint8_t)((field) << 3 | (wt)))
/* protobuf-c reads a tag or a length prefix of at most 5 bytes (a longer, over-long encoding is an
 * error there): the OPEN fast path leaves such input to it */
#define PB_TAG_MAX 5
#define PB_LEN_PREFIX_MAX 5
/* OPEN heads with up to this many headers are decoded in one pass (kept on the stack meanwhile) */
#define OPEN_FAST_HEADERS 48
/* Open.headers (9, LEN), Header.name (1, LEN), Header.value (2, LEN) */
#define TAG_OPEN_HEADERS_LEN 1
#define TAG_HEADER_FIELD_LEN 1

/* Headers packed from a stack array up to this count; more are allocated through mux_mem. */
#define ENCODE_STACK_HEADERS 16

static const char empty_string[] = "";

/* ---------------------------------------------------------------- varints */

/* Writes |v| as a protobuf base-128 varint into |out| (room for 10 bytes). Returns bytes written. */
size_t mux_varint_put(uint8_t *out, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        out[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    out[n++] = (uint8_t)v;
    return n;
}

/*
 * Reads a varint from |in|/|len| into |*v|. Returns the bytes read (1..10), 0 when the input ends
 * inside the varint, -1 when it is over-long (an 11th byte would be needed, or the 10th byte
 * carries bits beyond 64).
 */
int mux_varint_get(const uint8_t *in, size_t len, uint64_t *v)
{
    if (len != 0 && in[0] < 0x80) { /* most varints of a record: lengths and ids below 128 */
        *v = in[0];
        return 1;
    }
    uint64_t r = 0;
    for (size_t i = 0; i < 10; i++) {
        if (i == len)
            return 0;
        uint8_t b = in[i];
        if (i == 9 && b > 1)
            return -1; /* continuation bit or bits past 2^64 */
        r |= (uint64_t)(b & 0x7f) << (7 * i);
        if ((b & 0x80) == 0) {
            *v = r;
            return (int)i + 1;
        }
    }
    return -1;
}

/* Bytes mux_varint_put would write for |v| (1..10). */
size_t mux_varint_len(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

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

/* ---------------------------------------------------------------- decoding */

/* protobuf-c allocator that records allocation failures, so NOMEM is told apart from bad input. */
typedef struct {
    const mux_mem *mem;
    int failed;
} pb_alloc_ctx;

static void *pb_alloc(void *data, size_t size)
{
    pb_alloc_ctx *c = data;
    void *p = mux_mem_malloc(c->mem, size);
    if (p == NULL)
        c->failed = 1;
    return p;
}

static void pb_free(void *data, void *ptr)
{
    pb_alloc_ctx *c = data;
    mux_mem_free(c->mem, ptr);
}

static void set_allocator(ProtobufCAllocator *pa, pb_alloc_ctx *c, const mux_mem *mem)
{
    c->mem = mem;
    c->failed = 0;
    pa->alloc = pb_alloc;
    pa->free = pb_free;
    pa->allocator_data = c;
}

/* Reads one tag; returns bytes read, or a negative MUX_ERR_FRAME_DECODE. */
static int read_tag(const uint8_t *p, size_t len, uint32_t *field, int *wt)
{
    uint64_t tag;
    int n = mux_varint_get(p, len, &tag);
    if (n <= 0 || tag > UINT32_MAX || (tag >> 3) == 0)
        return MUX_ERR_FRAME_DECODE;
    *field = (uint32_t)(tag >> 3);
    *wt = (int)(tag & 7);
    return n;
}

/*
 * Skips the value of a field of wire type |wt| at |p|. Returns bytes skipped or
 * MUX_ERR_FRAME_DECODE (groups, invalid wire types, truncation).
 */
static ssize_t skip_value(const uint8_t *p, size_t len, int wt)
{
    uint64_t v;
    int n;
    switch (wt) {
    case WT_VARINT:
        n = mux_varint_get(p, len, &v);
        return n > 0 ? n : MUX_ERR_FRAME_DECODE;
    case WT_I64:
        return len >= 8 ? 8 : MUX_ERR_FRAME_DECODE;
    case WT_I32:
        return len >= 4 ? 4 : MUX_ERR_FRAME_DECODE;
    case WT_LEN:
        n = mux_varint_get(p, len, &v);
        if (n <= 0 || v > len - (size_t)n)
            return MUX_ERR_FRAME_DECODE;
        return (ssize_t)(n + v);
    default:
        return MUX_ERR_FRAME_DECODE;
    }
}

/*
 * Fast path: parses the Data message |p|/|len| into |out| (payload points into |p|). Fields in any
 * order, last occurrence wins (protobuf semantics), unknown fields skipped.
 */
static int decode_data(const uint8_t *p, size_t len, mux_frame *out, const char **reason)
{
    int have_id = 0;
    size_t off = 0;
    while (off < len) {
        uint32_t field;
        int wt;
        int n = read_tag(p + off, len - off, &field, &wt);
        if (n < 0) {
            *reason = "DATA: bad field tag";
            return MUX_ERR_FRAME_DECODE;
        }
        off += (size_t)n;
        uint64_t v;
        if (field >= 1 && field <= 3) {
            int want = field == 3 ? WT_LEN : WT_VARINT;
            if (wt != want) {
                *reason = "DATA: field with the wrong wire type";
                return MUX_ERR_FRAME_DECODE;
            }
            n = mux_varint_get(p + off, len - off, &v);
            if (n <= 0) {
                *reason = "DATA: bad varint";
                return MUX_ERR_FRAME_DECODE;
            }
            off += (size_t)n;
            if (field == 1) {
                out->stream_id = (uint32_t)v; /* uint32: low 32 bits, as protobuf-c does */
                have_id = 1;
            } else if (field == 2) {
                out->fin = v != 0;
            } else {
                if (v > len - off) {
                    *reason = "DATA: payload runs past the frame";
                    return MUX_ERR_FRAME_DECODE;
                }
                out->payload = p + off;
                out->payload_len = (size_t)v;
                off += (size_t)v;
            }
        } else {
            ssize_t s = skip_value(p + off, len - off, wt);
            if (s < 0) {
                *reason = "DATA: bad unknown field";
                return MUX_ERR_FRAME_DECODE;
            }
            off += (size_t)s;
        }
    }
    if (!have_id) {
        *reason = "DATA: missing stream_id";
        return MUX_ERR_FRAME_DECODE;
    }
    if (out->stream_id == 0) {
        *reason = "DATA: stream_id 0";
        return MUX_ERR_FRAME_DECODE;
    }
    return 0;
}

static mux_iovec iov_of(protobuf_c_boolean has, ProtobufCBinaryData b)
{
    mux_iovec v = {NULL, 0};
    if (has) {
        v.base = b.data;
        v.len = b.len;
    }
    return v;
}

static const char *str_or_empty(const char *s)
{
    return s != NULL ? s : empty_string;
}

/* Maps an unpacked Open into out->head (headers into out->_hdrs), enforcing the head limits. */
static int map_open(const Tunnelmux__Open *m, mux_frame *out, uint32_t max_header_count, uint32_t max_header_bytes,
                    const mux_mem *mem, const char **reason)
{
    out->stream_id = m->stream_id;
    if (m->stream_id == 0) {
        *reason = "OPEN: stream_id 0";
        return MUX_ERR_FRAME_DECODE;
    }
    if (m->n_headers > max_header_count) {
        *reason = "OPEN: too many headers";
        return MUX_ERR_HEADER_LIMIT;
    }
    uint64_t bytes = 0;
    for (size_t i = 0; i < m->n_headers; i++)
        bytes += (uint64_t)m->headers[i]->name.len + m->headers[i]->value.len;
    if (bytes > max_header_bytes) {
        *reason = "OPEN: header bytes over the limit";
        return MUX_ERR_HEADER_LIMIT;
    }
    mux_head *h = &out->head;
    h->flags = m->has_flags ? m->flags : 0;
    h->method = iov_of(m->has_method, m->method);
    h->scheme = iov_of(m->has_scheme, m->scheme);
    h->authority = iov_of(m->has_authority, m->authority);
    h->path = iov_of(m->has_path, m->path);
    h->remote_addr = iov_of(m->has_remote_addr, m->remote_addr);
    h->status = m->has_status ? m->status : 0;
    h->reason = iov_of(m->has_reason, m->reason);
    /* both or neither (PROTOCOL.md §9.4): a lone one is kept, the other read as 0 */
    h->has_local_queue = m->has_queue_wait_ms || m->has_queue_length;
    h->local_queue_wait_ms = m->has_queue_wait_ms ? m->queue_wait_ms : 0;
    h->local_queue_length = m->has_queue_length ? m->queue_length : 0;
    if (m->n_headers != 0) {
        out->_hdrs = mux_mem_calloc(mem, m->n_headers, sizeof(mux_header));
        if (out->_hdrs == NULL) {
            *reason = "out of memory";
            return MUX_ERR_NOMEM;
        }
        for (size_t i = 0; i < m->n_headers; i++) {
            out->_hdrs[i].name = iov_of(1, m->headers[i]->name);
            out->_hdrs[i].value = iov_of(1, m->headers[i]->value);
        }
    }
    h->headers = out->_hdrs;
    h->nheaders = m->n_headers;
    return 0;
}

/* Maps the unpacked |m| into |out| (pointers borrow from |m|). */
static int map_frame(const Tunnelmux__Frame *m, mux_frame *out, uint32_t max_header_count, uint32_t max_header_bytes,
                     const mux_mem *mem, const char **reason)
{
    switch (m->kind_case) {
    case TUNNELMUX__FRAME__KIND_HELLO: {
        const Tunnelmux__Hello *x = m->hello;
        out->type = MUX_FRAME_HELLO;
        out->hello.version = x->version;
        out->hello.client_id = str_or_empty(x->client_id);
        out->hello.auth_token = str_or_empty(x->auth_token);
        out->hello.capabilities = x->has_capabilities ? x->capabilities : 0;
        out->hello.software = str_or_empty(x->software);
        out->initial_stream_window = x->has_initial_stream_window ? x->initial_stream_window : 0;
        out->initial_conn_window = x->has_initial_conn_window ? x->initial_conn_window : 0;
        out->max_message_size = x->has_max_message_size ? x->max_message_size : 0;
        return 0;
    }
    case TUNNELMUX__FRAME__KIND_WELCOME: {
        const Tunnelmux__Welcome *x = m->welcome;
        out->type = MUX_FRAME_WELCOME;
        out->welcome.version = x->version;
        out->welcome.capabilities = x->has_capabilities ? x->capabilities : 0;
        out->welcome.ping_interval_ms = x->has_ping_interval_ms ? x->ping_interval_ms : 0;
        out->welcome.ping_timeout_ms = x->has_ping_timeout_ms ? x->ping_timeout_ms : 0;
        out->welcome.public_url = str_or_empty(x->public_url);
        out->initial_stream_window = x->has_initial_stream_window ? x->initial_stream_window : 0;
        out->initial_conn_window = x->has_initial_conn_window ? x->initial_conn_window : 0;
        out->max_message_size = x->has_max_message_size ? x->max_message_size : 0;
        return 0;
    }
    case TUNNELMUX__FRAME__KIND_REFUSE: {
        const Tunnelmux__Refuse *x = m->refuse;
        const char *r = str_or_empty(x->reason);
        out->type = MUX_FRAME_REFUSE;
        out->code = x->code;
        out->reason.base = (uint8_t *)(uintptr_t)r; /* NUL-terminated: usable as a C string */
        out->reason.len = strlen(r);
        out->retry_after_ms = x->has_retry_after_ms ? x->retry_after_ms : 0;
        return 0;
    }
    case TUNNELMUX__FRAME__KIND_OPEN:
        out->type = MUX_FRAME_OPEN;
        return map_open(m->open, out, max_header_count, max_header_bytes, mem, reason);
    case TUNNELMUX__FRAME__KIND_DATA: {
        const Tunnelmux__Data *x = m->data;
        out->type = MUX_FRAME_DATA;
        out->stream_id = x->stream_id;
        out->fin = x->has_fin && x->fin;
        if (x->has_payload) {
            out->payload = x->payload.data;
            out->payload_len = x->payload.len;
        }
        if (x->stream_id == 0) {
            *reason = "DATA: stream_id 0";
            return MUX_ERR_FRAME_DECODE;
        }
        return 0;
    }
    case TUNNELMUX__FRAME__KIND_WINDOW:
        out->type = MUX_FRAME_WINDOW;
        out->stream_id = m->window->stream_id;
        out->increment = m->window->increment;
        return 0;
    case TUNNELMUX__FRAME__KIND_CLOSE: {
        const Tunnelmux__Close *x = m->close;
        out->type = MUX_FRAME_CLOSE;
        out->stream_id = x->stream_id;
        out->code = x->has_code ? x->code : 0;
        out->reason = iov_of(x->has_reason, x->reason);
        if (x->stream_id == 0) {
            *reason = "CLOSE: stream_id 0";
            return MUX_ERR_FRAME_DECODE;
        }
        return 0;
    }
    case TUNNELMUX__FRAME__KIND_PING:
        out->type = MUX_FRAME_PING;
        out->opaque = m->ping->has_opaque ? m->ping->opaque : 0;
        return 0;
    case TUNNELMUX__FRAME__KIND_PONG:
        out->type = MUX_FRAME_PONG;
        out->opaque = m->pong->has_opaque ? m->pong->opaque : 0;
        return 0;
    case TUNNELMUX__FRAME__KIND_GOAWAY: {
        const Tunnelmux__GoAway *x = m->goaway;
        out->type = MUX_FRAME_GOAWAY;
        out->last_stream_id = x->has_last_stream_id ? x->last_stream_id : 0;
        out->code = x->has_code ? x->code : 0;
        out->reason = iov_of(x->has_reason, x->reason);
        return 0;
    }
    default:
        *reason = "frame without a known kind";
        return MUX_ERR_FRAME_DECODE;
    }
}

/* Reads a LEN field's length at |p| and checks it fits in |len|; returns the varint's byte count or
 * 0 (truncated, longer than the 5 bytes protobuf-c takes for a length, runs past |len|). */
static int len_field(const uint8_t *p, size_t len, mux_iovec *v)
{
    uint64_t l;
    int n = mux_varint_get(p, len, &l);
    if (n <= 0 || n > PB_LEN_PREFIX_MAX || l > len - (size_t)n)
        return 0;
    v->base = l != 0 ? (uint8_t *)(uintptr_t)(p + n) : NULL; /* protobuf-c: empty bytes are NULL */
    v->len = (size_t)l;
    return n;
}

/* A Header sub-message in its plain shape: name (1) and value (2), each once, in any order. */
static int plain_header(const uint8_t *p, size_t len, mux_header *h)
{
    unsigned seen = 0;
    size_t off = 0;
    while (off < len) {
        uint32_t field;
        int wt;
        int n = read_tag(p + off, len - off, &field, &wt);
        if (n < 0 || n > PB_TAG_MAX || (field != 1 && field != 2) || wt != WT_LEN || (seen & field) != 0)
            return 0;
        off += (size_t)n;
        mux_iovec *v = field == 1 ? &h->name : &h->value;
        if ((n = len_field(p + off, len - off, v)) == 0)
            return 0;
        off += (size_t)n + v->len;
        seen |= field;
    }
    return seen == 3;
}

/*
 * OPEN fast path for the Open message |p|/|len|: fields read where they lie (pointers into |p|).
 * Takes only the plain shape every encoder writes: known fields with their wire types, each at
 * most once (headers repeated), uint32 values that fit, the stream id present, headers of name +
 * value. Returns 0 for anything else (protobuf-c then decides, so both paths agree on every
 * input), 1 when decoded, or the errors of map_open (the same checks in the same order).
 */
static int decode_open(const uint8_t *p, size_t len, mux_frame *out, uint32_t max_header_count, uint32_t max_header_bytes,
                       const mux_mem *mem, const char **reason)
{
    uint64_t ints[OPEN_LAST_FIELD + 1] = {0};
    mux_iovec bytes[OPEN_LAST_FIELD + 1];
    memset(bytes, 0, sizeof(bytes));
    unsigned seen = 0;
    size_t nheaders = 0;
    uint64_t header_bytes = 0;
    mux_header first[OPEN_FAST_HEADERS]; /* the headers of the first pass, when they all fit */
    size_t off = 0;
    while (off < len) {
        uint32_t field;
        int wt;
        int n = read_tag(p + off, len - off, &field, &wt);
        if (n < 0 || n > PB_TAG_MAX || field > OPEN_LAST_FIELD)
            return 0;
        off += (size_t)n;
        if (field == OPEN_STREAM_ID || field == OPEN_FLAGS || field == OPEN_STATUS || field == OPEN_QUEUE_WAIT_MS ||
            field == OPEN_QUEUE_LENGTH) {
            if (wt != WT_VARINT || (seen & (1u << field)) != 0 || (n = mux_varint_get(p + off, len - off, &ints[field])) <= 0 ||
                ints[field] > UINT32_MAX)
                return 0;
            off += (size_t)n;
        } else {
            mux_iovec v;
            if (wt != WT_LEN || (n = len_field(p + off, len - off, &v)) == 0)
                return 0;
            off += (size_t)n + v.len;
            if (field == OPEN_HEADERS) {
                mux_header h;
                if (!plain_header(v.base, v.len, &h))
                    return 0;
                if (nheaders < OPEN_FAST_HEADERS)
                    first[nheaders] = h;
                nheaders++;
                header_bytes += (uint64_t)h.name.len + h.value.len;
                continue;
            }
            if ((seen & (1u << field)) != 0)
                return 0;
            bytes[field] = v;
        }
        seen |= 1u << field;
    }
    if ((seen & (1u << OPEN_STREAM_ID)) == 0)
        return 0;

    out->type = MUX_FRAME_OPEN;
    out->stream_id = (uint32_t)ints[OPEN_STREAM_ID];
    if (out->stream_id == 0) {
        *reason = "OPEN: stream_id 0";
        return MUX_ERR_FRAME_DECODE;
    }
    if (nheaders > max_header_count) {
        *reason = "OPEN: too many headers";
        return MUX_ERR_HEADER_LIMIT;
    }
    if (header_bytes > max_header_bytes) {
        *reason = "OPEN: header bytes over the limit";
        return MUX_ERR_HEADER_LIMIT;
    }
    mux_head *h = &out->head;
    h->flags = (uint32_t)ints[OPEN_FLAGS];
    h->method = bytes[OPEN_METHOD];
    h->scheme = bytes[OPEN_SCHEME];
    h->authority = bytes[OPEN_AUTHORITY];
    h->path = bytes[OPEN_PATH];
    h->status = (unsigned)ints[OPEN_STATUS];
    h->reason = bytes[OPEN_REASON];
    h->remote_addr = bytes[OPEN_REMOTE_ADDR];
    h->has_local_queue = (seen & (1u << OPEN_QUEUE_WAIT_MS | 1u << OPEN_QUEUE_LENGTH)) != 0;
    h->local_queue_wait_ms = (uint32_t)ints[OPEN_QUEUE_WAIT_MS];
    h->local_queue_length = (uint32_t)ints[OPEN_QUEUE_LENGTH];
    if (nheaders != 0) {
        out->_hdrs = mux_mem_calloc(mem, nheaders, sizeof(mux_header));
        if (out->_hdrs == NULL) {
            *reason = "out of memory";
            return MUX_ERR_NOMEM;
        }
        size_t i = 0;
        if (nheaders <= OPEN_FAST_HEADERS) {
            memcpy(out->_hdrs, first, nheaders * sizeof(mux_header));
            off = len; /* no second pass */
        } else {
            off = 0; /* a second pass: the shape is known good, only the headers are taken */
        }
        while (off < len) {
            uint32_t field = 0;
            int wt = WT_VARINT;
            mux_iovec v = {NULL, 0};
            off += (size_t)read_tag(p + off, len - off, &field, &wt);
            if (wt == WT_VARINT) {
                uint64_t ignored;
                off += (size_t)mux_varint_get(p + off, len - off, &ignored);
                continue;
            }
            off += (size_t)len_field(p + off, len - off, &v);
            off += v.len;
            if (field == OPEN_HEADERS)
                plain_header(v.base, v.len, &out->_hdrs[i++]);
        }
    }
    h->headers = out->_hdrs;
    h->nheaders = nheaders;
    return 1;
}

/* Releases what a failed decode allocated, keeping out->type and out->stream_id; returns |rv|. */
static int fail_keeping_id(mux_frame *out, const mux_mem *mem, int rv)
{
    mux_frame_type type = out->type;
    uint32_t sid = out->stream_id;
    mux_frame_clear(out, mem);
    out->type = type;
    out->stream_id = sid;
    return rv;
}

/*
 * Decodes one record (see frame_codec.h); |fast| takes the DATA and OPEN fast paths, otherwise
 * protobuf-c decodes everything. |out| is overwritten (not cleared first: pass a frame that was
 * cleared or never used). On error everything allocated is released again; only out->type and
 * out->stream_id may be set (always for MUX_ERR_HEADER_LIMIT), so mux_frame_clear is optional
 * then. On MUX_ERR_HEADER_LIMIT the record itself is well formed: it spans mux_varint_get's byte
 * count plus the length it read.
 */
static ssize_t decode_record(const uint8_t *in, size_t len, mux_frame *out, uint32_t max_header_count, uint32_t max_header_bytes,
                             const mux_mem *mem, const char **reason, int fast)
{
    const char *dummy;
    if (reason == NULL)
        reason = &dummy;
    *reason = "";
    memset(out, 0, sizeof(*out));

    uint64_t body_len;
    int n = mux_varint_get(in, len, &body_len);
    if (n == 0) {
        *reason = "record length: truncated varint";
        return MUX_ERR_VARINT;
    }
    if (n < 0) {
        *reason = "record length: over-long varint";
        return MUX_ERR_VARINT;
    }
    if (body_len > len - (size_t)n) {
        *reason = "record runs past the end of the message";
        return MUX_ERR_FRAME_TOO_LARGE;
    }
    const uint8_t *body = in + n;
    ssize_t total = (ssize_t)((size_t)n + body_len);

    /* fast paths: the record is exactly one Frame.data or Frame.open field */
    uint32_t field = 0;
    int wt = WT_VARINT;
    int tn = fast ? read_tag(body, (size_t)body_len, &field, &wt) : -1;
    uint64_t dlen;
    int dn = tn > 0 && wt == WT_LEN ? mux_varint_get(body + tn, (size_t)body_len - (size_t)tn, &dlen) : 0;
    if (dn > 0 && dlen == body_len - (size_t)tn - (size_t)dn) {
        const uint8_t *msg = body + tn + dn;
        int rv = 0;
        if (field == MUX_FRAME_DATA) {
            out->type = MUX_FRAME_DATA;
            rv = decode_data(msg, (size_t)dlen, out, reason);
            if (rv == 0)
                return total;
        } else if (field == MUX_FRAME_OPEN && tn <= PB_TAG_MAX && dn <= PB_LEN_PREFIX_MAX) {
            rv = decode_open(msg, (size_t)dlen, out, max_header_count, max_header_bytes, mem, reason);
            if (rv == 1)
                return total;
        }
        if (rv < 0)
            return fail_keeping_id(out, mem, rv);
    }

    /* everything else: protobuf-c */
    ProtobufCAllocator pa;
    pb_alloc_ctx ac;
    set_allocator(&pa, &ac, mem);
    Tunnelmux__Frame *m = tunnelmux__frame__unpack(&pa, (size_t)body_len, body);
    if (m == NULL) {
        if (ac.failed) {
            *reason = "out of memory";
            return MUX_ERR_NOMEM;
        }
        *reason = "invalid protobuf or missing required field";
        return MUX_ERR_FRAME_DECODE;
    }
    out->_pb = m;
    int rv = map_frame(m, out, max_header_count, max_header_bytes, mem, reason);
    if (rv != 0)
        return fail_keeping_id(out, mem, rv);
    return total;
}

ssize_t mux_frame_decode(const uint8_t *in, size_t len, mux_frame *out, uint32_t max_header_count, uint32_t max_header_bytes,
                         const mux_mem *mem, const char **reason)
{
    return decode_record(in, len, out, max_header_count, max_header_bytes, mem, reason, 1);
}

ssize_t mux_frame_decode_reference(const uint8_t *in, size_t len, mux_frame *out, uint32_t max_header_count,
                                   uint32_t max_header_bytes, const mux_mem *mem, const char **reason)
{
    return decode_record(in, len, out, max_header_count, max_header_bytes, mem, reason, 0);
}

/* Frees the unpacked message and the header array of |f| (allocated through |mem| by
 * mux_frame_decode) and zeroes |f|. */
void mux_frame_clear(mux_frame *f, const mux_mem *mem)
{
    if (f->_pb != NULL) {
        ProtobufCAllocator pa;
        pb_alloc_ctx ac;
        set_allocator(&pa, &ac, mem);
        protobuf_c_message_free_unpacked((ProtobufCMessage *)f->_pb, &pa);
    }
    mux_mem_free(mem, f->_hdrs);
    memset(f, 0, sizeof(*f));
}
