/*
 * tunnelmux — decoding frame records (frame_codec.h, docs/PROTOCOL.md §3–§4).
 *
 * DATA is hand-decoded (pointers into the input, no allocation); OPEN is hand-decoded when it has
 * the plain shape every encoder writes (pointers into the input, one allocation for the header
 * array). Everything else goes through protobuf-c, which also decides every OPEN the fast path
 * declines, so both give the same result; the reference entry point (protobuf-c only) lets tests
 * and fuzz_frame_decode check that.
 */
#include <stdint.h>
#include <string.h>

#include <protobuf-c/protobuf-c.h>

#include "frame_codec.h"
#include "frame_wire.h"
#include "mem.h"
#include "mux/err.h"
#include "tunnel.pb-c.h"

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
    /* both or neither (PROTOCOL.md §9.4): a lone one is kept, the other read as 0; response heads
     * only (a request head's are ignored, as the encoder never writes them there) */
    h->has_local_queue = (m->has_queue_wait_ms || m->has_queue_length) && m->has_status && m->status != 0;
    h->local_queue_wait_ms = m->has_queue_wait_ms ? m->queue_wait_ms : 0;
    h->local_queue_length = m->has_queue_length ? m->queue_length : 0;
    h->status = m->has_status ? m->status : 0;
    h->reason = iov_of(m->has_reason, m->reason);
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
    h->has_local_queue = (seen & (1u << OPEN_QUEUE_WAIT_MS | 1u << OPEN_QUEUE_LENGTH)) != 0 && h->status != 0;
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
