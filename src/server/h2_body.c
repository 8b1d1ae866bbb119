/* tunnelmux server — streamed HTTP/2 request bodies (see h2_body.h, docs/ARCHITECTURE.md §8). */
#include "server/h2_body.h"

#include <stdlib.h>
#include <string.h>

#include <h2o/http1.h>
#include <h2o/http2.h>
#include <h2o/http2_internal.h>

#include "common/log.h"

#define H2O_STREAM_WINDOW ((ssize_t)H2O_HTTP2_SETTINGS_HOST.initial_window_size) /* 16 MiB, h2o's SETTINGS (§8.1) */
#define CONN_BUDGET ((size_t)16 * 1024 * 1024) /* records' bytes beyond which the connection window shrinks (§8.3) */
#define MAX_TRAILERS (64 * 1024)               /* a trailer header block the hook collects */
#define MAX_TOMBSTONES 64                      /* reset streams remembered to drop DATA in flight */
#define PREFACE "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#define PREFACE_LEN 24

typedef ssize_t (*h2o_reader)(h2o_http2_conn_t *conn, const uint8_t *src, size_t len, const char **err_desc);

typedef enum {
    H2B_RECEIVING,  /* the user sends the body; DATA goes to the buffer and the consumer */
    H2B_ENDED,      /* the user ended the body (END_STREAM); the consumer drains the buffer */
    H2B_DISCARDING, /* reset, refused or over the limit: DATA still arriving is counted and dropped */
} h2b_state;

typedef struct h2_body_conn h2_body_conn;

struct h2_body {
    h2_body_conn *hc; /* NULL once the connection is gone (only a consumer's handle can outlive it) */
    h2o_linklist_t link;
    uint32_t id;
    h2b_state state;
    int user_done;              /* END_STREAM or RST_STREAM from the user: no more frames on this stream */
    int request_gone;           /* h2o disposed of the request */
    h2o_http2_stream_t *stream; /* h2o's stream while the request lives */
    int taken, was_taken;       /* a consumer holds it / ever did */
    int answer_complete;        /* the request was answered in full (RST_STREAM(NO_ERROR) if the user still sends) */
    int rst_sent;               /* a RST_STREAM went to the user (by the hook or h2o) */
    int continue_awaited;       /* the user waits for a 100 (Expect: 100-continue) it was not sent */
    int error_status;           /* for the consumer's answer after an error */
    int busy;                   /* inside a callback: deletion waits */
    int delete_pending;
    int notify_pending; /* bytes arrived since the consumer was last called (batched per loop turn) */
    ssize_t window;     /* the user's send window on this stream, as the user sees it */
    size_t owed;        /* consumed bytes and padding not returned yet */
    uint8_t *buf;       /* [off, len) received, not consumed */
    size_t off, len, cap;
    uint64_t received;
    h2_body_cb cb;
    void *data;
};

struct h2_body_conn {
    server *srv;
    h2o_http2_conn_t *conn;
    h2o_socket_t *sock;
    h2o_reader inner;       /* h2o's reader now (expect_preface, expect_default, continuation) */
    h2o_reader h2o_preface; /* h2o's first reader, when hooked before the preface */
    h2o_reader h2o_default; /* h2o's frame reader, known once the preface was read */
    void (*prev_on_close)(void *);
    void *prev_on_close_data;
    h2o_linklist_t streams; /* h2_body records, oldest first */
    size_t ntombstones;
    size_t buffered; /* bytes in every record's buffer */
    ssize_t window;  /* INITIAL_WINDOW_SIZE of our SETTINGS */
    unsigned acks;   /* SETTINGS ACKs received */
    unsigned acks_before_ours;
    int ours_acked;
    h2o_timeout_entry_t notify_entry; /* zero-delay: calls the consumers of what this loop turn's reads delivered */
    uint32_t trailer_id;              /* collecting a trailer block's CONTINUATION frames for this stream */
    uint8_t *trailer_buf;
    size_t trailer_len;
};

static ssize_t hook_read(h2o_http2_conn_t *conn, const uint8_t *src, size_t len, const char **err_desc);
static void hc_on_close(void *data);

/* ---------------------------------------------------------------- frames queued in h2o's write buffer */

static int can_write(h2_body_conn *hc)
{
    return hc->conn != NULL && hc->conn->state < H2O_HTTP2_CONN_STATE_IS_CLOSING;
}

static void send_window_update(h2_body_conn *hc, uint32_t id, size_t delta)
{
    if (!can_write(hc) || delta == 0)
        return;
    h2o_http2_encode_window_update_frame(&hc->conn->_write.buf, id, (int32_t)delta);
    h2o_http2_conn_request_write(hc->conn);
}

static void send_rst(h2_body *b, int code)
{
    h2_body_conn *hc = b->hc;
    b->rst_sent = 1;
    if (hc == NULL || !can_write(hc))
        return;
    h2o_http2__encode_rst_stream_frame(&hc->conn->_write.buf, b->id, code);
    h2o_http2_conn_request_write(hc->conn);
}

static void send_settings(h2_body_conn *hc)
{
    /* acks_before_ours: h2o's own SETTINGS (one after the preface; one more in a 101 to h2c) */
    if (hc->window >= H2O_STREAM_WINDOW || !can_write(hc)) {
        hc->ours_acked = 1;
        return;
    }
    h2o_iovec_t v = h2o_buffer_reserve(&hc->conn->_write.buf, H2O_HTTP2_FRAME_HEADER_SIZE + 6);
    uint8_t *p = h2o_http2_encode_frame_header((uint8_t *)v.base, 6, H2O_HTTP2_FRAME_TYPE_SETTINGS, 0, 0);
    *p++ = 0;
    *p++ = 4; /* SETTINGS_INITIAL_WINDOW_SIZE */
    p = h2o_http2_encode32u(p, (uint32_t)hc->window);
    hc->conn->_write.buf->size += H2O_HTTP2_FRAME_HEADER_SIZE + 6;
    h2o_http2_conn_request_write(hc->conn);
}

/* The connection window follows h2o's half-window rule on h2o's own account, minus what the records
 * hold beyond CONN_BUDGET (§8.3). */
static void update_conn_window(h2_body_conn *hc)
{
    if (!can_write(hc))
        return;
    ssize_t target = H2O_STREAM_WINDOW;
    if (hc->buffered > CONN_BUDGET)
        target -= (ssize_t)(hc->buffered - CONN_BUDGET) < target ? (ssize_t)(hc->buffered - CONN_BUDGET) : target;
    ssize_t avail = h2o_http2_window_get_window(&hc->conn->_input_window);
    if (avail * 2 < target) {
        send_window_update(hc, 0, (size_t)(target - avail));
        h2o_http2_window_update(&hc->conn->_input_window, target - avail);
    }
}

/* Returns owed stream credit once half a window is owed, or when the buffer ran empty while the
 * user's window is below half (it may be waiting for it). */
static void update_stream_window(h2_body *b)
{
    h2_body_conn *hc = b->hc;
    if (hc == NULL || b->state != H2B_RECEIVING || b->owed == 0)
        return;
    if (b->owed >= (size_t)hc->window / 2 || (b->off == b->len && b->window < hc->window / 2)) {
        send_window_update(hc, b->id, b->owed);
        b->window += (ssize_t)b->owed;
        b->owed = 0;
    }
}

/* ---------------------------------------------------------------- records */

static h2_body *find(h2_body_conn *hc, uint32_t id)
{
    for (h2o_linklist_t *n = hc->streams.next; n != &hc->streams; n = n->next) {
        h2_body *b = H2O_STRUCT_FROM_MEMBER(h2_body, link, n);
        if (b->id == id)
            return b;
    }
    return NULL;
}

static void drop_buffer(h2_body *b)
{
    if (b->hc != NULL)
        b->hc->buffered -= b->len - b->off;
    free(b->buf);
    b->buf = NULL;
    b->off = b->len = b->cap = 0;
}

static void rec_delete(h2_body *b)
{
    if (b->busy > 0) {
        b->delete_pending = 1;
        return;
    }
    drop_buffer(b);
    if (b->hc != NULL) {
        if (b->state == H2B_DISCARDING && b->hc->ntombstones > 0)
            b->hc->ntombstones--;
        h2o_linklist_unlink(&b->link);
    }
    free(b);
}

static void prune_tombstones(h2_body_conn *hc)
{
    for (h2o_linklist_t *n = hc->streams.next; n != &hc->streams && hc->ntombstones > MAX_TOMBSTONES;) {
        h2_body *b = H2O_STRUCT_FROM_MEMBER(h2_body, link, n);
        n = n->next;
        if (b->state == H2B_DISCARDING && b->request_gone && !b->taken && b->id != hc->trailer_id && b->busy == 0)
            rec_delete(b);
    }
}

static void to_discarding(h2_body *b)
{
    if (b->state == H2B_DISCARDING)
        return;
    b->state = H2B_DISCARDING;
    drop_buffer(b);
    if (b->hc != NULL) {
        b->hc->ntombstones++;
        prune_tombstones(b->hc);
    }
}

/* Once neither h2o nor a consumer needs the record: ask a user still sending to stop (when the answer
 * was complete), then keep a tombstone or delete. */
static void maybe_finish(h2_body *b)
{
    if (!b->request_gone || b->taken)
        return;
    /* a user still waiting for its 100 sends nothing and ends the stream itself on the final answer
     * (a RST_STREAM in the same read as the response makes curl 7.88 drop the response: "Empty reply") */
    if (!b->user_done && !b->rst_sent && b->answer_complete && !(b->continue_awaited && b->received == 0))
        send_rst(b, -H2O_HTTP2_ERROR_NONE); /* RFC 9113 §8.1: stop sending, without error */
    if (b->user_done || b->hc == NULL)
        rec_delete(b);
    else
        to_discarding(b);
}

static void notify(h2_body *b, const char *err)
{
    if (!b->taken || b->cb == NULL)
        return;
    b->busy++;
    b->cb(b->data, err);
    b->busy--;
    if (b->busy == 0 && b->delete_pending)
        rec_delete(b);
}

static void on_notify_entry(h2o_timeout_entry_t *e)
{
    h2_body_conn *hc = H2O_STRUCT_FROM_MEMBER(h2_body_conn, notify_entry, e);
    for (h2o_linklist_t *n = hc->streams.next; n != &hc->streams;) {
        h2_body *b = H2O_STRUCT_FROM_MEMBER(h2_body, link, n);
        b->busy++; /* keeps |b| (and so |n|) while its consumer runs */
        if (b->notify_pending) {
            b->notify_pending = 0;
            notify(b, NULL);
        }
        n = n->next;
        b->busy--;
        if (b->busy == 0 && b->delete_pending)
            rec_delete(b);
    }
}

static void notify_later(h2_body *b)
{
    b->notify_pending = 1;
    if (b->hc != NULL && !h2o_timeout_is_linked(&b->hc->notify_entry))
        h2o_timeout_link(b->hc->srv->ctx.loop, &b->hc->srv->ctx.zero_timeout, &b->hc->notify_entry);
}

static void on_request_dispose(void *p)
{
    h2_body *b = *(h2_body **)p;
    if (!b->was_taken && b->stream != NULL)
        b->answer_complete = b->stream->req.res.status != 0;
    b->stream = NULL;
    b->request_gone = 1;
    maybe_finish(b);
}

/* A stream error on a record (h2o's rule: RST_STREAM, then h2o's stream is reset, which disposes of
 * the request and so of the consumer). */
static void stream_error(h2_body *b, int h2_error, const char *why)
{
    LOG_INFO(LOG_EV_HTTP, "HTTP/2 stream %u: %s: RST_STREAM", b->id, why);
    send_rst(b, -h2_error);
    to_discarding(b);
    if (b->stream != NULL && b->hc != NULL) {
        b->busy++;
        h2o_http2_stream_reset(b->hc->conn, b->stream);
        b->busy--;
        if (b->busy == 0 && b->delete_pending)
            rec_delete(b);
    }
}

/* ---------------------------------------------------------------- the reader in front of h2o's */

static ssize_t call_h2o(h2_body_conn *hc, const uint8_t *src, size_t len, const char **err_desc)
{
    h2o_http2_conn_t *conn = hc->conn;
    conn->_read_expect = hc->inner;
    ssize_t r = hc->inner(conn, src, len, err_desc);
    hc->inner = conn->_read_expect;
    conn->_read_expect = hook_read;
    return r;
}

/* Ties |b| to h2o's stream |s|: a destructor in the request's pool tells |b| when h2o is done with it. */
static void attach(h2_body *b, h2o_http2_stream_t *s)
{
    if (b->stream != NULL || b->request_gone)
        return;
    h2_body **ref = h2o_mem_alloc_shared(&s->req.pool, sizeof(*ref), on_request_dispose);
    *ref = b;
    b->stream = s;
}

static int64_t expected_length(h2_body *b)
{
    if (b->stream == NULL || b->stream->_expected_content_length == SIZE_MAX)
        return -1;
    return (int64_t)b->stream->_expected_content_length;
}

static int append(h2_body *b, const uint8_t *p, size_t n)
{
    if (n == 0)
        return 0;
    if (b->off > 0 && b->off == b->len)
        b->off = b->len = 0;
    if (b->len + n > b->cap) {
        if (b->off > 0) {
            memmove(b->buf, b->buf + b->off, b->len - b->off);
            b->len -= b->off;
            b->off = 0;
        }
        if (b->len + n > b->cap) {
            size_t cap = b->cap ? b->cap : 64 * 1024;
            while (cap < b->len + n)
                cap *= 2;
            uint8_t *nb = realloc(b->buf, cap);
            if (nb == NULL)
                return -1;
            b->buf = nb;
            b->cap = cap;
        }
    }
    memcpy(b->buf + b->len, p, n);
    b->len += n;
    b->hc->buffered += n;
    return 0;
}

/* The user ended the body (END_STREAM on DATA or trailers). */
static void on_user_end(h2_body *b)
{
    b->user_done = 1;
    if (b->state != H2B_RECEIVING) {
        maybe_finish(b);
        return;
    }
    int64_t cl = expected_length(b);
    if (cl >= 0 && (uint64_t)cl != b->received) {
        stream_error(b, H2O_HTTP2_ERROR_PROTOCOL, "request body shorter than its Content-Length");
        return;
    }
    b->state = H2B_ENDED;
    b->busy++;
    notify(b, NULL);
    b->busy--;
    if (b->busy == 0 && b->delete_pending)
        rec_delete(b);
    else
        maybe_finish(b);
}

static int on_data(h2_body_conn *hc, h2_body *b, const h2o_http2_frame_t *f, const char **err_desc)
{
    h2o_http2_data_payload_t pl;
    int e = h2o_http2_decode_data_payload(&pl, f, err_desc);
    if (e != 0)
        return e;
    h2o_http2_conn_t *conn = hc->conn;
    if ((ssize_t)f->length > h2o_http2_window_get_window(&conn->_input_window)) {
        *err_desc = "DATA beyond the connection flow-control window";
        LOG_INFO(LOG_EV_HTTP, "HTTP/2 connection: %s: GOAWAY(FLOW_CONTROL_ERROR)", *err_desc);
        return H2O_HTTP2_ERROR_FLOW_CONTROL;
    }
    h2o_http2_window_consume_window(&conn->_input_window, f->length);
    b->busy++;
    switch (b->state) {
    case H2B_RECEIVING: {
        if ((ssize_t)f->length > b->window) {
            b->busy--;
            *err_desc = "DATA beyond the stream flow-control window";
            LOG_INFO(LOG_EV_HTTP, "HTTP/2 stream %u: %s: GOAWAY(FLOW_CONTROL_ERROR)", b->id, *err_desc);
            return H2O_HTTP2_ERROR_FLOW_CONTROL;
        }
        b->window -= (ssize_t)f->length;
        b->owed += f->length - pl.length; /* padding: nobody consumes it */
        uint64_t max = hc->srv->opt->max_request_body;
        int64_t cl = expected_length(b);
        if (cl >= 0 && b->received + pl.length > (uint64_t)cl) {
            stream_error(b, H2O_HTTP2_ERROR_PROTOCOL, "request body longer than its Content-Length");
            break;
        }
        if (max > 0 && b->received + pl.length > max) {
            LOG_INFO(LOG_EV_HTTP, "HTTP/2 stream %u: request body over MAX_REQUEST_BODY (%llu bytes)", b->id,
                     (unsigned long long)max);
            b->error_status = 413;
            to_discarding(b);
            notify(b, "request body larger than MAX_REQUEST_BODY");
            break;
        }
        if (append(b, pl.data, pl.length) != 0) {
            stream_error(b, H2O_HTTP2_ERROR_INTERNAL, "out of memory for the request body");
            break;
        }
        b->received += pl.length;
        if (f->flags & H2O_HTTP2_FRAME_FLAG_END_STREAM)
            on_user_end(b);
        else if (pl.length > 0)
            notify_later(b); /* one call per loop turn, not per 16 KiB frame: one tunnel write for all */
        update_stream_window(b);
        break;
    }
    case H2B_ENDED:
        if (!b->rst_sent) { /* RFC 9113 §5.1: DATA after END_STREAM */
            send_rst(b, -H2O_HTTP2_ERROR_STREAM_CLOSED);
        }
        break;
    case H2B_DISCARDING:
        if (f->flags & H2O_HTTP2_FRAME_FLAG_END_STREAM)
            on_user_end(b);
        break;
    }
    b->busy--;
    if (b->busy == 0 && b->delete_pending)
        rec_delete(b);
    update_conn_window(hc);
    return 0;
}

/* Decodes a trailer block with h2o's HPACK table (keeping it exactly in step with the user's
 * encoder) into a scratch request, and drops the fields (the tunnel has no request trailers). */
static int decode_trailers(h2_body_conn *hc, const uint8_t *src, size_t len, const char **err_desc)
{
    /* only the pool and the header list are touched (h2o_dispose_request would run a request's whole
     * teardown on it) */
    h2o_req_t *req = calloc(1, sizeof(*req));
    if (req == NULL) {
        *err_desc = "out of memory";
        return H2O_HTTP2_ERROR_INTERNAL;
    }
    h2o_mem_init_pool(&req->pool);
    size_t cl = SIZE_MAX;
    int r = h2o_hpack_parse_headers(req, &hc->conn->_input_header_table, src, len, NULL, &cl, NULL, err_desc);
    h2o_mem_clear_pool(&req->pool);
    free(req);
    return r == H2O_HTTP2_ERROR_INVALID_HEADER_CHAR ? 0 : r; /* the table is updated either way */
}

static int end_trailers(h2_body_conn *hc, uint32_t id, const uint8_t *block, size_t len, const char **err_desc)
{
    int e = decode_trailers(hc, block, len, err_desc);
    if (e != 0)
        return e;
    h2_body *b = find(hc, id);
    if (b != NULL)
        on_user_end(b);
    return 0;
}

static int on_trailers(h2_body_conn *hc, h2_body *b, const h2o_http2_frame_t *f, const char **err_desc)
{
    h2o_http2_headers_payload_t pl;
    if ((f->flags & H2O_HTTP2_FRAME_FLAG_END_STREAM) == 0) {
        *err_desc = "trailing HEADERS frame MUST have END_STREAM flag set";
        return H2O_HTTP2_ERROR_PROTOCOL;
    }
    int e = h2o_http2_decode_headers_payload(&pl, f, err_desc);
    if (e != 0)
        return e;
    if (f->flags & H2O_HTTP2_FRAME_FLAG_END_HEADERS)
        return end_trailers(hc, b->id, pl.headers, pl.headers_len, err_desc);
    if (pl.headers_len > MAX_TRAILERS || (hc->trailer_buf = malloc(MAX_TRAILERS)) == NULL) {
        *err_desc = "request trailers too large";
        return H2O_HTTP2_ERROR_ENHANCE_YOUR_CALM;
    }
    memcpy(hc->trailer_buf, pl.headers, pl.headers_len);
    hc->trailer_len = pl.headers_len;
    hc->trailer_id = b->id;
    return 0;
}

static ssize_t read_trailer_continuation(h2_body_conn *hc, const uint8_t *src, size_t len, const char **err_desc)
{
    h2o_http2_frame_t f;
    ssize_t r = h2o_http2_decode_frame(&f, src, len, &H2O_HTTP2_SETTINGS_HOST, err_desc);
    if (r < 0)
        return r;
    if (f.type != H2O_HTTP2_FRAME_TYPE_CONTINUATION || f.stream_id != hc->trailer_id) {
        *err_desc = "expected CONTINUATION frame";
        return H2O_HTTP2_ERROR_PROTOCOL;
    }
    if (hc->trailer_len + f.length > MAX_TRAILERS) {
        *err_desc = "request trailers too large";
        return H2O_HTTP2_ERROR_ENHANCE_YOUR_CALM;
    }
    memcpy(hc->trailer_buf + hc->trailer_len, f.payload, f.length);
    hc->trailer_len += f.length;
    if ((f.flags & H2O_HTTP2_FRAME_FLAG_END_HEADERS) == 0)
        return r;
    uint32_t id = hc->trailer_id;
    uint8_t *block = hc->trailer_buf;
    hc->trailer_id = 0;
    hc->trailer_buf = NULL;
    int e = end_trailers(hc, id, block, hc->trailer_len, err_desc);
    free(block);
    hc->trailer_len = 0;
    return e != 0 ? e : r;
}

/* A HEADERS frame h2o would take as a new request with a body (handle_headers_frame's rules). */
static int opens_request_with_body(h2_body_conn *hc, const h2o_http2_frame_t *f)
{
    h2o_http2_conn_t *conn = hc->conn;
    if ((f->flags & H2O_HTTP2_FRAME_FLAG_END_STREAM) != 0 || (f->stream_id & 1) == 0 ||
        conn->state >= H2O_HTTP2_CONN_STATE_HALF_CLOSED)
        return 0;
    if (f->stream_id > conn->pull_stream_ids.max_open)
        return 1;
    h2o_http2_stream_t *s = h2o_http2_conn_get_stream(conn, f->stream_id);
    return s != NULL && s->state == H2O_HTTP2_STREAM_STATE_IDLE; /* opened by PRIORITY */
}

static ssize_t on_request_headers(h2_body_conn *hc, const uint8_t *src, size_t len, const h2o_http2_frame_t *f,
                                  const char **err_desc)
{
    h2_body *b = calloc(1, sizeof(*b));
    if (b == NULL)
        return call_h2o(hc, src, len, err_desc); /* h2o buffers this one */
    b->hc = hc;
    b->id = f->stream_id;
    b->state = H2B_RECEIVING;
    b->window = hc->ours_acked ? hc->window : H2O_STREAM_WINDOW;
    h2o_linklist_insert(&hc->streams, &b->link);
    ((uint8_t *)src)[4] |= H2O_HTTP2_FRAME_FLAG_END_STREAM; /* h2o runs the request at END_HEADERS (§8.2) */
    b->busy++;
    ssize_t r = call_h2o(hc, src, len, err_desc);
    b->busy--;
    if (r < 0) { /* a connection error: everything goes with the connection */
        if (b->delete_pending)
            rec_delete(b);
        return r;
    }
    h2o_http2_stream_t *s = h2o_http2_conn_get_stream(hc->conn, b->id);
    if (s != NULL && !b->request_gone && s->state != H2O_HTTP2_STREAM_STATE_END_STREAM) {
        attach(b, s); /* unless the handler did (held_record) */
    } else if (!b->request_gone && b->stream == NULL) {
        b->request_gone = 1; /* refused or reset by h2o, which sent its RST_STREAM */
        b->rst_sent = 1;
    }
    if (b->delete_pending)
        rec_delete(b);
    else
        maybe_finish(b);
    return r;
}

static void on_settings_ack(h2_body_conn *hc)
{
    hc->acks++;
    if (hc->ours_acked || hc->acks <= hc->acks_before_ours)
        return;
    hc->ours_acked = 1; /* the user now uses our INITIAL_WINDOW_SIZE (RFC 9113 §6.9.2) */
    ssize_t delta = hc->window - H2O_STREAM_WINDOW;
    for (h2o_linklist_t *n = hc->streams.next; n != &hc->streams; n = n->next) {
        h2_body *b = H2O_STRUCT_FROM_MEMBER(h2_body, link, n);
        b->window += delta;
    }
}

static ssize_t hook_read(h2o_http2_conn_t *conn, const uint8_t *src, size_t len, const char **err_desc)
{
    h2_body_conn *hc = conn->sock->on_close.data;
    if (hc->trailer_id != 0)
        return read_trailer_continuation(hc, src, len, err_desc);
    if (hc->h2o_default == NULL) {
        ssize_t r = call_h2o(hc, src, len, err_desc);
        if (r >= 0 && hc->inner != hc->h2o_preface) {
            hc->h2o_default = hc->inner;
            send_settings(hc);
        }
        return r;
    }
    if (hc->inner != hc->h2o_default)
        return call_h2o(hc, src, len, err_desc); /* h2o's CONTINUATION reader of a request head */
    h2o_http2_frame_t f;
    ssize_t r = h2o_http2_decode_frame(&f, src, len, &H2O_HTTP2_SETTINGS_HOST, err_desc);
    if (r < 0)
        return r;
    h2_body *b;
    int e;
    switch (f.type) {
    case H2O_HTTP2_FRAME_TYPE_DATA:
        if ((b = find(hc, f.stream_id)) != NULL)
            return (e = on_data(hc, b, &f, err_desc)) != 0 ? e : r;
        break;
    case H2O_HTTP2_FRAME_TYPE_HEADERS:
        if ((b = find(hc, f.stream_id)) != NULL && !b->user_done)
            return (e = on_trailers(hc, b, &f, err_desc)) != 0 ? e : r;
        if (b == NULL && opens_request_with_body(hc, &f))
            return on_request_headers(hc, src, len, &f, err_desc);
        break;
    case H2O_HTTP2_FRAME_TYPE_RST_STREAM:
        if ((b = find(hc, f.stream_id)) != NULL) {
            b->busy++;
            ssize_t rr = call_h2o(hc, src, len, err_desc); /* h2o resets its stream: the consumer lets go */
            b->busy--;
            b->user_done = 1;
            b->rst_sent = 1; /* nothing more to say on a reset stream */
            if (b->taken) {
                b->busy++;
                notify(b, "the user reset the stream");
                b->busy--;
            }
            if (b->delete_pending)
                rec_delete(b);
            else
                maybe_finish(b);
            return rr;
        }
        break;
    case H2O_HTTP2_FRAME_TYPE_SETTINGS:
        if ((f.flags & H2O_HTTP2_FRAME_FLAG_ACK) != 0 && f.length == 0 && f.stream_id == 0)
            on_settings_ack(hc);
        break;
    default:
        break;
    }
    return call_h2o(hc, src, len, err_desc);
}

/* ---------------------------------------------------------------- hooking a connection */

static void hc_on_close(void *data)
{
    h2_body_conn *hc = data;
    if (h2o_timeout_is_linked(&hc->notify_entry))
        h2o_timeout_unlink(&hc->notify_entry);
    while (!h2o_linklist_is_empty(&hc->streams)) {
        h2_body *b = H2O_STRUCT_FROM_MEMBER(h2_body, link, hc->streams.next);
        drop_buffer(b);
        h2o_linklist_unlink(&b->link);
        b->hc = NULL;
        b->stream = NULL;
        if (!b->taken && b->busy == 0)
            free(b); /* a consumer's handle would be freed by h2_body_free */
    }
    free(hc->trailer_buf);
    void (*prev)(void *) = hc->prev_on_close;
    void *prev_data = hc->prev_on_close_data;
    free(hc);
    if (prev != NULL)
        prev(prev_data);
}

/* Puts the hook in front of |conn|'s reader; |preface_read|: h2o already read the client's preface;
 * |h2o_settings|: SETTINGS frames h2o sends before ours. */
static h2_body_conn *hook(server *srv, h2o_http2_conn_t *conn, int preface_read, unsigned h2o_settings)
{
    h2_body_conn *hc = calloc(1, sizeof(*hc));
    if (hc == NULL)
        return NULL;
    hc->srv = srv;
    hc->conn = conn;
    hc->sock = conn->sock;
    hc->window = (ssize_t)srv->opt->stream_window;
    if (hc->window > H2O_STREAM_WINDOW)
        hc->window = H2O_STREAM_WINDOW;
    h2o_linklist_init_anchor(&hc->streams);
    hc->notify_entry.cb = on_notify_entry;
    hc->acks_before_ours = h2o_settings;
    hc->prev_on_close = conn->sock->on_close.cb;
    hc->prev_on_close_data = conn->sock->on_close.data;
    conn->sock->on_close.cb = hc_on_close;
    conn->sock->on_close.data = hc;
    hc->inner = conn->_read_expect;
    conn->_read_expect = hook_read;
    if (preface_read) {
        hc->h2o_default = hc->inner;
        send_settings(hc);
    } else {
        hc->h2o_preface = hc->inner;
    }
    return hc;
}

/* h2o_http2_accept with the input moved aside (h2o would parse it at once), hook, then h2o reads it (h2_body.h). */
void h2_body_accept_h2(server *srv, h2o_socket_t *sock, struct timeval connected_at)
{
    h2o_buffer_t *input = sock->input;
    h2o_buffer_init(&sock->input, &h2o_socket_buffer_prototype);
    h2o_http2_accept(&srv->accept_ctx, sock, connected_at);
    h2o_http2_conn_t *conn = sock->data;
    if (hook(srv, conn, 0, 1) == NULL)
        LOG_WARN(LOG_EV_HTTP, "HTTP/2 connection: out of memory for the body hook; request bodies are buffered");
    h2o_buffer_dispose(&sock->input);
    sock->input = input;
    if (sock->input->size != 0)
        sock->_cb.read(sock, NULL);
}

void h2_body_accept_prior_knowledge(server *srv, h2o_socket_t *sock, h2o_socket_cb h1_read)
{
    size_t rest_len = sock->input->size - PREFACE_LEN;
    uint8_t *rest = NULL;
    if (rest_len > 0 && (rest = malloc(rest_len)) == NULL) {
        h1_read(sock, NULL); /* h2o switches and parses everything: bodies buffered */
        return;
    }
    if (rest_len > 0)
        memcpy(rest, sock->input->bytes + PREFACE_LEN, rest_len);
    sock->input->size = PREFACE_LEN;
    h1_read(sock, NULL); /* h2o's HTTP/1 reader sees "PRI * HTTP/2" and calls h2o_http2_accept */
    h2o_http2_conn_t *conn = sock->data;
    int switched =
        sock->_cb.read != h1_read && conn != NULL && sock->input->size == 0 && conn->sock == sock && conn->super.ctx == &srv->ctx;
    if (!switched) {
        free(rest); /* h2o answered the preface as HTTP/1 (400): nothing after it is read */
        return;
    }
    if (hook(srv, conn, 1, 1) == NULL)
        LOG_WARN(LOG_EV_HTTP, "HTTP/2 connection: out of memory for the body hook; request bodies are buffered");
    if (rest_len > 0) {
        h2o_iovec_t v = h2o_buffer_reserve(&sock->input, rest_len);
        memcpy(v.base, rest, rest_len);
        sock->input->size += rest_len;
        free(rest);
        sock->_cb.read(sock, NULL);
    }
}

void h2_body_hook_upgraded(server *srv, h2o_req_t *req)
{
    if (req->version < 0x200 || req->conn->callbacks->get_socket == NULL)
        return;
    h2o_socket_t *sock = req->conn->callbacks->get_socket(req->conn);
    if (sock == NULL || sock->on_close.cb == hc_on_close || sock->ssl != NULL)
        return;
    h2o_http2_conn_t *conn = (h2o_http2_conn_t *)req->conn;
    h2o_http2_stream_t *s = H2O_STRUCT_FROM_MEMBER(h2o_http2_stream_t, req, req);
    /* on_upgrade_complete keeps the HTTP/1 request's input and runs stream 1 before reading the
     * preface: the one moment the reader can still be hooked */
    if (s->stream_id != 1 || conn->_http1_req_input == NULL || conn->sock != sock || conn->_read_expect == hook_read)
        return;
    if (hook(srv, conn, 0, 2) == NULL)
        LOG_WARN(LOG_EV_HTTP, "HTTP/2 connection: out of memory for the body hook; request bodies are buffered");
}

int h2_body_is_preface(const char *p, size_t len)
{
    size_t n = len < PREFACE_LEN ? len : PREFACE_LEN;
    if (memcmp(p, PREFACE, n) != 0)
        return 0;
    return len >= PREFACE_LEN ? 1 : -1;
}

/* ---------------------------------------------------------------- the consumer's side */

static h2_body *held_record(h2o_req_t *req)
{
    if (req->version < 0x200 || req->conn->callbacks->get_socket == NULL)
        return NULL;
    h2o_socket_t *sock = req->conn->callbacks->get_socket(req->conn);
    if (sock == NULL || sock->on_close.cb != hc_on_close)
        return NULL;
    h2_body_conn *hc = sock->on_close.data;
    if ((h2o_conn_t *)hc->conn != req->conn)
        return NULL;
    h2o_http2_stream_t *s = H2O_STRUCT_FROM_MEMBER(h2o_http2_stream_t, req, req);
    h2_body *b = find(hc, s->stream_id);
    if (b == NULL || b->request_gone || b->taken || b->was_taken)
        return NULL;
    attach(b, s); /* the handler runs inside h2o's reader, before on_request_headers could */
    return b->stream == s ? b : NULL;
}

int h2_body_held(h2o_req_t *req, int64_t *content_length)
{
    h2_body *b = held_record(req);
    if (b == NULL)
        return 0;
    *content_length = expected_length(b);
    return 1;
}

h2_body *h2_body_start(h2o_req_t *req, h2_body_cb cb, void *data)
{
    h2_body *b = held_record(req);
    if (b == NULL || cb == NULL || b->state == H2B_DISCARDING)
        return NULL;
    int64_t cl = expected_length(b);
    if (cl >= 0 && b->received > (uint64_t)cl)
        return NULL;
    b->taken = b->was_taken = 1;
    b->cb = cb;
    b->data = data;
    return b;
}

size_t h2_body_peek(h2_body *hb, const uint8_t **p)
{
    if (hb->hc == NULL || hb->off == hb->len)
        return 0;
    *p = hb->buf + hb->off;
    return hb->len - hb->off;
}

void h2_body_consume(h2_body *hb, size_t n)
{
    if (n == 0 || hb->hc == NULL)
        return;
    hb->off += n;
    hb->hc->buffered -= n;
    hb->owed += n;
    update_stream_window(hb);
    update_conn_window(hb->hc);
}

int h2_body_done(const h2_body *hb)
{
    return hb->state == H2B_ENDED && hb->off == hb->len;
}

uint64_t h2_body_received(const h2_body *hb)
{
    return hb->received;
}

int h2_body_error_status(const h2_body *hb)
{
    return hb->error_status != 0 ? hb->error_status : 400;
}

void h2_body_expect_continue(h2_body *hb)
{
    hb->continue_awaited = 1;
}

int h2_body_send_continue(h2_body *hb)
{
    h2_body_conn *hc = hb->hc;
    hb->continue_awaited = 0;
    if (hc == NULL || !can_write(hc) || hb->state == H2B_DISCARDING || hb->rst_sent || hb->request_gone)
        return -1;
    /* queued in h2o's write buffer, whole, like every frame of the hook */
    h2o_iovec_t v = h2o_buffer_reserve(&hc->conn->_write.buf, H2_BODY_CONTINUE_FRAME_LEN);
    hc->conn->_write.buf->size += h2_body_continue_frame((uint8_t *)v.base, hb->id);
    h2o_http2_conn_request_write(hc->conn);
    return 0;
}

size_t h2_body_continue_frame(uint8_t *out, uint32_t stream_id)
{
    /* RFC 9113 §8.1: an informational response is a HEADERS frame without END_STREAM before the final
     * one. Its block is one HPACK literal without indexing (RFC 7541 §6.2.2) with name index 8
     * (:status) and the value "100": nothing enters a dynamic table, so h2o's encoder state stays as
     * the peer's decoder has it. */
    static const uint8_t block[] = {0x08, 0x03, '1', '0', '0'};
    uint8_t *p = h2o_http2_encode_frame_header(out, sizeof(block), H2O_HTTP2_FRAME_TYPE_HEADERS, H2O_HTTP2_FRAME_FLAG_END_HEADERS,
                                               (int32_t)stream_id);
    memcpy(p, block, sizeof(block));
    return H2_BODY_CONTINUE_FRAME_LEN;
}

void h2_body_free(h2_body *hb, int response_complete)
{
    if (hb == NULL)
        return;
    hb->taken = 0;
    hb->cb = NULL;
    hb->answer_complete = response_complete;
    if (hb->hc == NULL) {
        if (hb->busy == 0)
            free(hb);
        return;
    }
    if (hb->state == H2B_RECEIVING)
        to_discarding(hb); /* nobody consumes any more: dropped, credit withheld, RST_STREAM at the end */
    else
        drop_buffer(hb);
    maybe_finish(hb);
}
