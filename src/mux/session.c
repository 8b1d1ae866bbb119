/*
 * tunnelmux — the mux session engine (include/mux/mux.h, docs/PROTOCOL.md): the fatal-error path
 * (die), one handler per frame type with the role and handshake checks (the per-stream state machine they drive is in stream.c),
 * creation and deletion, and the read-only queries. Beside it: rx_message.c (mux_session_recv: WebSocket messages and records up to
 * the handlers here), submit.c (the application's API), tx_batch.c (mux_session_send), ctrl_queue.c (control records), sched.c
 * (send lists), timers.c (timeouts, keepalive), compress_policy.c, flow.c, envelope.c.
 */
#include <stdio.h>
#include <string.h>

#include "frame_codec.h"
#include "mem.h"
#include "rtt.h"
#include "ctrl_queue.h"
#include "mux_internal.h"

/* ================================================================ fatal errors */

static uint16_t ws_close_code(int rv)
{
    switch (rv) {
    case MUX_ERR_MESSAGE_TOO_LARGE:
    case MUX_ERR_DECOMPRESS_LIMIT:
        return 1009;
    case MUX_ERR_INTERNAL:
    case MUX_ERR_NOMEM:
        return 1011;
    case MUX_ERR_TIMEOUT:
    case MUX_ERR_REFUSED:
    case MUX_ERR_WS_CLOSED:
        return 1000;
    default:
        return 1002;
    }
}

/*
 * Fatal error |rv| (reason in s->reason): queue GOAWAY (when |goaway|) and a WebSocket close,
 * close every stream, stop processing. Returns |rv|.
 */
int mux_die(mux_session *s, int rv, int goaway)
{
    if (s->dead)
        return s->fatal_rv != 0 ? s->fatal_rv : rv;
    s->dead = 1;
    s->fatal_rv = rv;
    if (s->reason == NULL)
        s->reason = mux_strerror(rv);
    if (s->reason != s->reason_buf) {
        snprintf(s->reason_buf, sizeof(s->reason_buf), "%s", s->reason);
        s->reason = s->reason_buf;
    }
    if (goaway && !s->goaway_sent) {
        /* only the GOAWAY goes out now: drop other pending control */
        mux_buf_reset(&s->ctrl);
        s->ctrl_plain = 0;
        mux_frame f;
        memset(&f, 0, sizeof(f));
        f.type = MUX_FRAME_GOAWAY;
        f.last_stream_id = is_server(s) ? 0 : s->highest_id;
        f.code = mux_error_to_code(rv);
        f.reason = iov_str(s->reason);
        mux_queue_frame(s, &f, 1);
        s->goaway_sent = 1;
    }
    mux_queue_ws_close(s, ws_close_code(rv));
    unsigned code = s->goaway_recv ? s->goaway_recv_code : MUX_CODE_INTERNAL_ERROR;
    if (code == MUX_CODE_NO_ERROR)
        code = MUX_CODE_INTERNAL_ERROR;
    mux_kill_streams(s, code, s->reason);
    return rv;
}

/* ================================================================ receive: frames */

/* The capabilities this side offers (client, HELLO) or accepts (server): the agreed set is the
 * intersection (PROTOCOL.md §4.1). */
static uint32_t own_capabilities(const mux_session_options *opt)
{
    return (opt->enable_zstd ? MUX_CAP_ZSTD : 0) | (opt->enable_continue_relay ? MUX_CAP_CONTINUE_RELAY : 0);
}

static int on_hello(mux_session *s, const mux_frame *f)
{
    if (s->hs != HS_WAIT_HELLO)
        return perr(s, MUX_ERR_HANDSHAKE, "unexpected HELLO");
    if (f->hello.version != MUX_PROTOCOL_VERSION) {
        mux_frame r;
        memset(&r, 0, sizeof(r));
        r.type = MUX_FRAME_REFUSE;
        r.code = MUX_CODE_UNSUPPORTED_VERSION;
        r.reason = iov_str("unsupported protocol version");
        mux_queue_frame(s, &r, 1);
        s->hs = HS_REFUSED;
        return perrf(s, MUX_ERR_BAD_VERSION, "HELLO version %u not supported", f->hello.version);
    }
    s->hs = HS_HELLO_PENDING;
    s->rx_hello_msg = 1;
    s->caps = f->hello.capabilities & own_capabilities(&s->opt);
    s->peer_stream_window = f->initial_stream_window != 0 ? f->initial_stream_window : 256 * 1024;
    s->peer_conn_window = f->initial_conn_window != 0 ? f->initial_conn_window : 16 * 1024 * 1024;
    if (s->peer_stream_window > 0x7fffffffu || s->peer_conn_window > 0x7fffffffu)
        return perr(s, MUX_ERR_WINDOW_OVERFLOW, "HELLO window above 2^31-1");
    s->peer_max_message = f->max_message_size != 0 ? f->max_message_size : 10 * 1024 * 1024;
    s->conn_tx_credit = s->peer_conn_window;
    if (s->cb.on_hello != NULL && s->cb.on_hello(s, &f->hello, s->ud) != 0 && s->hs == HS_HELLO_PENDING)
        mux_session_refuse(s, MUX_CODE_INTERNAL_ERROR, "registration failed", 0);
    return 0;
}

static int on_welcome(mux_session *s, const mux_frame *f)
{
    if (s->hs != HS_WAIT_WELCOME)
        return perr(s, MUX_ERR_HANDSHAKE, "unexpected WELCOME");
    if (f->welcome.version != MUX_PROTOCOL_VERSION)
        return perrf(s, MUX_ERR_BAD_VERSION, "WELCOME version %u not supported", f->welcome.version);
    s->peer_stream_window = f->initial_stream_window != 0 ? f->initial_stream_window : 256 * 1024;
    s->peer_conn_window = f->initial_conn_window != 0 ? f->initial_conn_window : 16 * 1024 * 1024;
    if (s->peer_stream_window > 0x7fffffffu || s->peer_conn_window > 0x7fffffffu)
        return perr(s, MUX_ERR_WINDOW_OVERFLOW, "WELCOME window above 2^31-1");
    s->peer_max_message = f->max_message_size != 0 ? f->max_message_size : 10 * 1024 * 1024;
    s->conn_tx_credit = s->peer_conn_window;
    s->caps = f->welcome.capabilities & own_capabilities(&s->opt);
    s->hs = HS_ESTABLISHED;
    if (s->cb.on_welcome != NULL) {
        mux_welcome_info w = f->welcome;
        w.capabilities = s->caps;
        s->cb.on_welcome(s, &w, s->ud);
    }
    return 0;
}

static int on_refuse(mux_session *s, const mux_frame *f)
{
    if (s->hs != HS_WAIT_WELCOME)
        return perr(s, MUX_ERR_HANDSHAKE, "unexpected REFUSE");
    s->hs = HS_REFUSED;
    char reason[128];
    size_t n = f->reason.len < sizeof(reason) - 1 ? f->reason.len : sizeof(reason) - 1;
    if (n != 0)
        memcpy(reason, f->reason.base, n);
    reason[n] = '\0';
    if (s->cb.on_refuse != NULL)
        s->cb.on_refuse(s, f->code, reason, f->retry_after_ms, s->ud);
    snprintf(s->reason_buf, sizeof(s->reason_buf), "refused by the server: %s (%s)", mux_code_name(f->code), reason);
    s->reason = s->reason_buf;
    return MUX_ERR_REFUSED;
}

/* CLIENT: a request head opens stream f->stream_id (PROTOCOL.md §5.1). |hdr_limit|: the head was
 * over our header limits (frame_codec gave only the id). */
int mux_on_request(mux_session *s, const mux_frame *f, int hdr_limit)
{
    uint32_t id = f->stream_id;
    if ((id & 1) == 0)
        return perrf(s, MUX_ERR_PROTO, "even stream id %u", id);
    if (id <= s->highest_id) {
        if (mux_stream_table_find(&s->streams, id) != NULL)
            return perrf(s, MUX_ERR_DUPLICATE_OPEN, "second request head for stream %u", id);
        return perrf(s, MUX_ERR_DUPLICATE_OPEN, "request id %u not above the previous one", id);
    }
    s->highest_id = id;
    if (s->goaway_sent)
        return 0; /* above our GOAWAY: the server treats it as refused already, no answer */
    unsigned code = 0;
    const char *why = NULL;
    if (hdr_limit) {
        code = MUX_CODE_HEADERS_TOO_LARGE;
        why = "request head over header limits";
    } else if (s->active >= s->opt.max_concurrent_streams) {
        code = MUX_CODE_REFUSED_STREAM;
        why = "too many concurrent streams";
    }
    if (code != 0) {
        int rv = mux_queue_simple(s, MUX_FRAME_CLOSE, id, code, why);
        if (rv == 0 && (hdr_limit || !(f->head.flags & MUX_HEAD_END_STREAM)))
            rv = mux_stream_stub(s, id);
        return rv;
    }
    mux_stream *st = mux_stream_new(s, id);
    if (st == NULL) {
        int rv = mux_queue_simple(s, MUX_FRAME_CLOSE, id, MUX_CODE_INTERNAL_ERROR, "out of memory");
        if (rv == 0 && !(f->head.flags & MUX_HEAD_END_STREAM))
            rv = mux_stream_stub(s, id);
        return rv;
    }
    if (f->head.flags & MUX_HEAD_UPGRADE)
        st->flags |= MUX_SF_UPGRADE_REQ;
    int end = (f->head.flags & MUX_HEAD_END_STREAM) != 0;
    if (s->cb.on_head != NULL && s->cb.on_head(s, id, &f->head, NULL, s->ud) != 0) {
        mux_stream_callback_failed(s, id, end, "on_head failed");
        return 0;
    }
    if (end)
        mux_stream_remote_end(s, id);
    return 0;
}

/* SERVER: the response head of one of our streams. */
int mux_on_response(mux_session *s, const mux_frame *f, int hdr_limit)
{
    uint32_t id = f->stream_id;
    mux_stream *st = mux_stream_table_find(&s->streams, id);
    if (st == NULL) {
        if (id > s->highest_id)
            return perrf(s, MUX_ERR_UNKNOWN_STREAM, "response head for unknown stream %u", id);
        return perrf(s, MUX_ERR_DUPLICATE_OPEN, "response head for closed stream %u", id);
    }
    if (st->state == MUX_SS_CLOSING)
        return 0; /* we reset it: discard */
    if (st->state == MUX_SS_HALF_CLOSED_REMOTE)
        return perrf(s, MUX_ERR_STREAM_CLOSED, "response head after the end of stream %u", id);
    if (st->flags & MUX_SF_HEAD_FINAL)
        return perrf(s, MUX_ERR_DUPLICATE_OPEN, "second final response head on stream %u", id);
    if (hdr_limit) {
        mux_stream_reset(s, st, MUX_CODE_HEADERS_TOO_LARGE, "response head over header limits");
        return 0;
    }
    unsigned status = f->head.status;
    if (status < 100 || status > 599) {
        mux_stream_reset(s, st, MUX_CODE_PROTOCOL_ERROR, "invalid response status");
        return 0;
    }
    int informational = 0;
    if (status == 101) {
        if (!(st->flags & MUX_SF_UPGRADE_REQ)) {
            mux_stream_reset(s, st, MUX_CODE_PROTOCOL_ERROR, "101 without an upgrade request");
            return 0;
        }
        st->flags |= MUX_SF_RAW | MUX_SF_HEAD_FINAL;
    } else if (status < 200) {
        informational = 1;
    } else {
        st->flags |= MUX_SF_HEAD_FINAL;
    }
    int end = !informational && (f->head.flags & MUX_HEAD_END_STREAM) != 0;
    if (s->cb.on_head != NULL && s->cb.on_head(s, id, &f->head, st->user_data, s->ud) != 0) {
        /* the END_STREAM counts as on_request's does: a CLOSING stub would wait for a fin that came */
        mux_stream_callback_failed(s, id, end, "on_head failed");
        return 0;
    }
    if (end)
        mux_stream_remote_end(s, id);
    return 0;
}

static int on_data(mux_session *s, const mux_frame *f)
{
    uint32_t id = f->stream_id;
    size_t len = f->payload_len;
    mux_stream *st = mux_stream_table_find(&s->streams, id);
    if (st == NULL && s->goaway_sent && id > s->goaway_sent_last && id <= s->highest_id) {
        if (mux_rxwin_recv(&s->conn_rx, len) != 0)
            return perr(s, MUX_ERR_FLOW_CONTROL, "DATA over the connection window");
        mux_conn_consume(s, len); /* a stream we ignored after our GOAWAY */
        return 0;
    }
    if (st == NULL) {
        if (id > s->highest_id)
            return perrf(s, MUX_ERR_UNKNOWN_STREAM, "DATA for unknown stream %u", id);
        return perrf(s, MUX_ERR_STREAM_CLOSED, "DATA for closed stream %u", id);
    }
    if (mux_rxwin_recv(&s->conn_rx, len) != 0)
        return perr(s, MUX_ERR_FLOW_CONTROL, "DATA over the connection window");
    s->stats.data_bytes_in += len;
    if (len != 0)
        s->last_data_ms = s->now;
    if (st->state == MUX_SS_CLOSING) { /* PROTOCOL.md §5.3, §6.3: discard, credit back at once */
        mux_conn_consume(s, len);
        if (f->fin)
            mux_stream_free(s, st, MUX_CODE_CANCEL, "", 0);
        return 0;
    }
    if (st->state == MUX_SS_HALF_CLOSED_REMOTE)
        return perrf(s, MUX_ERR_STREAM_CLOSED, "DATA after the end of stream %u", id);
    if (is_server(s) && !(st->flags & MUX_SF_HEAD_FINAL))
        return perrf(s, MUX_ERR_PROTO, "DATA before the response head on stream %u", id);
    if (mux_rxwin_recv(&st->rx, len) != 0)
        return perrf(s, MUX_ERR_FLOW_CONTROL, "DATA over the window of stream %u", id);
    mux_conn_consume(s, len); /* the stream's window holds it now (PROTOCOL.md §6.2) */
    if (len != 0 && s->cb.on_data != NULL && s->cb.on_data(s, id, f->payload, len, st->user_data, s->ud) != 0) {
        mux_stream_callback_failed(s, id, f->fin, "on_data failed");
        return 0;
    }
    if (f->fin)
        mux_stream_remote_end(s, id);
    return 0;
}

static int on_window(mux_session *s, const mux_frame *f)
{
    if (f->stream_id == 0) {
        if (mux_txcredit_add(&s->conn_tx_credit, f->increment) != 0)
            return perr(s, MUX_ERR_WINDOW_OVERFLOW, f->increment == 0 ? "WINDOW increment 0" : "connection credit past 2^31-1");
        mux_wake_conn_blocked(s);
        return 0;
    }
    mux_stream *st = mux_stream_table_find(&s->streams, f->stream_id);
    if (st == NULL) {
        if (f->stream_id > s->highest_id)
            return perrf(s, MUX_ERR_UNKNOWN_STREAM, "WINDOW for unknown stream %u", f->stream_id);
        return 0; /* legal race with a close (PROTOCOL.md §5.3) */
    }
    if (mux_txcredit_add(&st->tx_credit, f->increment) != 0)
        return perrf(s, MUX_ERR_WINDOW_OVERFLOW,
                     f->increment == 0 ? "WINDOW increment 0 on stream %u" : "stream %u credit past 2^31-1", f->stream_id);
    if (st->list == MUX_LIST_BLK_STREAM)
        mux_schedule(s, st);
    return 0;
}

static int on_close(mux_session *s, const mux_frame *f)
{
    uint32_t id = f->stream_id;
    mux_stream *st = mux_stream_table_find(&s->streams, id);
    if (st == NULL && s->goaway_sent && id > s->goaway_sent_last && id <= s->highest_id)
        return 0; /* a stream we ignored after our GOAWAY */
    if (st == NULL) {
        if (id > s->highest_id)
            return perrf(s, MUX_ERR_UNKNOWN_STREAM, "CLOSE for unknown stream %u", id);
        /* Legal race (PROTOCOL.md §5.3): the peer may abort a stream after its own end went out and
         * before ours arrived; by then we had both ends and forgot the stream. */
        return 0;
    }
    if (st->state == MUX_SS_CLOSING) {
        mux_stream_free(s, st, f->code, "", 1);
        return 0;
    }
    char reason[128];
    size_t n = f->reason.len < sizeof(reason) - 1 ? f->reason.len : sizeof(reason) - 1;
    if (n != 0)
        memcpy(reason, f->reason.base, n);
    reason[n] = '\0';
    /* answer when our direction has not ended, so the sender can forget the stream */
    if (st->state == MUX_SS_OPEN || st->state == MUX_SS_HALF_CLOSED_REMOTE)
        mux_queue_simple(s, MUX_FRAME_CLOSE, id, f->code, reason);
    mux_stream_free(s, st, f->code, reason, 1);
    return 0;
}

static int on_goaway(mux_session *s, const mux_frame *f)
{
    s->goaway_recv = 1;
    s->goaway_recv_code = f->code;
    s->goaway_recv_last = f->last_stream_id;
    char reason[128];
    size_t n = f->reason.len < sizeof(reason) - 1 ? f->reason.len : sizeof(reason) - 1;
    if (n != 0)
        memcpy(reason, f->reason.base, n);
    reason[n] = '\0';
    if (s->cb.on_goaway != NULL)
        s->cb.on_goaway(s, f->last_stream_id, f->code, reason, s->ud);
    if (is_server(s)) {
        /* streams above last_stream_id were not processed: safe to retry */
        mux_stream *st = s->streams.all;
        while (st != NULL) {
            mux_stream *next = st->anext;
            if (st->id > f->last_stream_id) {
                mux_stream_free(s, st, MUX_CODE_REFUSED_STREAM, "not processed (GOAWAY)", 1);
                next = s->streams.all; /* callbacks may have changed the list: restart */
            }
            st = next;
        }
    }
    return 0;
}

/* Dispatches one decoded frame (one switch per frame type, role checks inside). */
int mux_on_frame(mux_session *s, const mux_frame *f)
{
    s->stats.frames_in++;
    if (s->hs != HS_ESTABLISHED) {
        /* PROTOCOL.md §4.1-4.2: the first frame is HELLO (server) or WELCOME/REFUSE (client) */
        if (is_server(s)) {
            if (s->hs == HS_WAIT_HELLO && f->type != MUX_FRAME_HELLO)
                return perr(s, MUX_ERR_HANDSHAKE, "first frame is not HELLO");
            if (s->hs == HS_HELLO_PENDING && f->type != MUX_FRAME_PING && f->type != MUX_FRAME_PONG && f->type != MUX_FRAME_GOAWAY)
                return perr(s, MUX_ERR_HANDSHAKE, "frame before WELCOME");
        } else if (s->hs == HS_WAIT_WELCOME && f->type != MUX_FRAME_WELCOME && f->type != MUX_FRAME_REFUSE) {
            return perr(s, MUX_ERR_HANDSHAKE, "first frame is not WELCOME or REFUSE");
        }
    } else if (s->rx_hello_msg && f->type != MUX_FRAME_PING && f->type != MUX_FRAME_PONG && f->type != MUX_FRAME_GOAWAY) {
        /* accepted at once, but the client wrote this before it could have seen the WELCOME */
        return perr(s, MUX_ERR_HANDSHAKE, "frame before WELCOME (in the HELLO's message)");
    }
    switch (f->type) {
    case MUX_FRAME_HELLO:
        if (!is_server(s))
            return perr(s, MUX_ERR_HANDSHAKE, "HELLO sent to a client");
        return on_hello(s, f);
    case MUX_FRAME_WELCOME:
        if (is_server(s))
            return perr(s, MUX_ERR_HANDSHAKE, "WELCOME sent to a server");
        return on_welcome(s, f);
    case MUX_FRAME_REFUSE:
        if (is_server(s))
            return perr(s, MUX_ERR_HANDSHAKE, "REFUSE sent to a server");
        return on_refuse(s, f);
    case MUX_FRAME_OPEN:
        return is_server(s) ? mux_on_response(s, f, 0) : mux_on_request(s, f, 0);
    case MUX_FRAME_DATA:
        return on_data(s, f);
    case MUX_FRAME_WINDOW:
        return on_window(s, f);
    case MUX_FRAME_CLOSE:
        return on_close(s, f);
    case MUX_FRAME_PING:
        if (mux_buf_size(&s->ctrl) < CTRL_FLOOD_LIMIT)
            return mux_queue_ping(s, MUX_FRAME_PONG, f->opaque);
        return 0;
    case MUX_FRAME_PONG:
        if (s->ping_outstanding && f->opaque <= (uint64_t)s->now && (int64_t)f->opaque >= s->created_ms) {
            s->ping_outstanding = 0;
            int64_t rtt = s->now - (int64_t)f->opaque;
            s->stats.last_rtt_ms = rtt;
            mux_rtt_sample(&s->rtt, rtt, s->now);
            if (s->cb.on_rtt != NULL)
                s->cb.on_rtt(s, rtt, s->ud);
        }
        return 0;
    case MUX_FRAME_GOAWAY:
        return on_goaway(s, f);
    }
    return perr(s, MUX_ERR_FRAME_DECODE, "unknown frame type");
}

/* ================================================================ lifecycle */

/* Fills |opt| with the defaults of mux.h for |role|. */
void mux_session_options_default(mux_session_options *opt, mux_role role)
{
    memset(opt, 0, sizeof(*opt));
    opt->role = role;
    opt->initial_stream_window = 1024 * 1024;
    opt->initial_conn_window = 16 * 1024 * 1024;
    opt->max_stream_window = 16 * 1024 * 1024;
    opt->max_message_size = 10 * 1024 * 1024;
    opt->send_message_size = 256 * 1024;
    opt->send_batch_size = 256 * 1024;
    opt->chunk_size = 8 * 1024;
    opt->stream_send_buffer = 256 * 1024;
    opt->max_concurrent_streams = 100;
    opt->max_header_count = 100;
    opt->max_header_bytes = 64 * 1024;
    opt->enable_zstd = 1;
    opt->enable_continue_relay = 1;
    opt->zstd_level = 3;
    opt->zstd_window_log = 17;
    opt->zstd_idle_ms = 15000;
    opt->ping_interval_ms = 15000;
    opt->ping_timeout_ms = 45000;
    opt->handshake_timeout_ms = 10000;
}

static char *dupstr(const mux_mem *mem, const char *str)
{
    if (str == NULL)
        str = "";
    size_t n = strlen(str) + 1;
    char *p = mux_mem_malloc(mem, n);
    if (p != NULL)
        memcpy(p, str, n);
    return p;
}

/* Creates a session; see mux.h. */
int mux_session_new(mux_session **out, const mux_session_options *opt, const mux_session_callbacks *callbacks, const mux_mem *mem,
                    void *user_data, int64_t now_ms)
{
    if (out == NULL || opt == NULL)
        return MUX_ERR_INVALID_ARGUMENT;
    *out = NULL;
    if ((opt->role != MUX_ROLE_SERVER && opt->role != MUX_ROLE_CLIENT) || opt->initial_stream_window == 0 ||
        opt->initial_stream_window > 0x7fffffffu || opt->initial_conn_window == 0 || opt->initial_conn_window > 0x7fffffffu ||
        opt->max_message_size < 1024 || opt->send_message_size == 0 || opt->chunk_size == 0 || opt->stream_send_buffer == 0 ||
        opt->max_concurrent_streams == 0 || opt->zstd_window_log < 10 || opt->zstd_window_log > 20)
        return MUX_ERR_INVALID_ARGUMENT;
    mux_session *s = mux_mem_calloc(mem, 1, sizeof(*s));
    if (s == NULL)
        return MUX_ERR_NOMEM;
    s->opt = *opt;
    if (s->opt.send_batch_size == 0)
        s->opt.send_batch_size = 1; /* one message a batch */
    if (s->opt.max_stream_window < s->opt.initial_stream_window)
        s->opt.max_stream_window = s->opt.initial_stream_window;
    if (s->opt.max_stream_window > 0x7fffffffu)
        s->opt.max_stream_window = 0x7fffffffu;
    if (callbacks != NULL)
        s->cb = *callbacks;
    s->mem = mem;
    s->ud = user_data;
    s->now = s->created_ms = s->last_recv_ms = s->last_ping_ms = now_ms;
    s->stats.last_rtt_ms = -1;
    mux_rtt_init(&s->rtt);
    s->last_data_ms = -1;
    s->next_id = 1;
    s->peer_max_message = 64 * 1024; /* until the peer announces its own */
    s->reason = "";
    mux_buf_init(&s->rxmsg);
    mux_buf_init(&s->dbuf);
    mux_buf_init(&s->ctrl);
    mux_buf_init(&s->wsctrl);
    mux_buf_init(&s->scratch);
    mux_buf_init(&s->zin);
    mux_ws_decoder_init(&s->dec, opt->role == MUX_ROLE_SERVER, opt->max_message_size);
    mux_ws_keygen_init(&s->keygen);
    if (opt->zstd_idle_ms != 0) {
        uint8_t r[4] = {0, 0, 0, 0};
        (void)mux_ws_keygen_next(&s->keygen, r); /* CSPRNG failure: no jitter, still correct */
        uint32_t u = (uint32_t)r[0] << 24 | (uint32_t)r[1] << 16 | (uint32_t)r[2] << 8 | r[3];
        s->zstd_idle_jit = (int64_t)opt->zstd_idle_ms + (int64_t)((uint64_t)u * (opt->zstd_idle_ms / 2) >> 32);
    }
    mux_rxwin_init(&s->conn_rx, opt->initial_conn_window, now_ms);
    s->pool.cap = opt->chunk_size > 32 * 1024 ? opt->chunk_size : 32 * 1024;
    s->pool.maxfree = 16;
    s->client_id = dupstr(mem, opt->client_id);
    s->auth_token = dupstr(mem, opt->auth_token);
    s->software = dupstr(mem, opt->software);
    s->opt.client_id = s->client_id;
    s->opt.auth_token = s->auth_token;
    s->opt.software = s->software;
    if (s->client_id == NULL || s->auth_token == NULL || s->software == NULL || mux_stream_table_init(&s->streams, mem) != 0) {
        mux_session_del(s);
        return MUX_ERR_NOMEM;
    }
    if (opt->role == MUX_ROLE_CLIENT) {
        s->hs = HS_WAIT_WELCOME;
        mux_frame f;
        memset(&f, 0, sizeof(f));
        f.type = MUX_FRAME_HELLO;
        f.hello.version = MUX_PROTOCOL_VERSION;
        f.hello.client_id = s->client_id;
        f.hello.auth_token = s->auth_token;
        f.hello.software = s->software;
        f.hello.capabilities = own_capabilities(opt);
        f.initial_stream_window = opt->initial_stream_window;
        f.initial_conn_window = opt->initial_conn_window;
        f.max_message_size = opt->max_message_size;
        if (mux_queue_frame(s, &f, 1) != 0) {
            mux_session_del(s);
            return MUX_ERR_NOMEM;
        }
    } else {
        s->hs = HS_WAIT_HELLO;
    }
    *out = s;
    return 0;
}

/* Frees everything; no callbacks. */
void mux_session_del(mux_session *s)
{
    if (s == NULL)
        return;
    mux_stream *st;
    while ((st = s->streams.all) != NULL) {
        mux_stream_table_remove(&s->streams, st);
        mux_chunks_free(st->txq.head, &s->pool, s->mem);
        mux_mem_free(s->mem, st);
    }
    mux_stream_table_free(&s->streams, s->mem);
    mux_chunks_free(s->grave, &s->pool, s->mem);
    mux_chunk_pool_free(&s->pool, s->mem);
    mux_buf_free(&s->rxmsg, s->mem);
    mux_buf_free(&s->dbuf, s->mem);
    mux_buf_free(&s->ctrl, s->mem);
    mux_buf_free(&s->wsctrl, s->mem);
    mux_buf_free(&s->scratch, s->mem);
    mux_buf_free(&s->zin, s->mem);
    if (s->ztx != NULL)
        mux_zstd_tx_del(s->ztx);
    if (s->zrx != NULL)
        mux_zstd_rx_del(s->zrx);
    mux_mem_free(s->mem, s->plan);
    mux_mem_free(s->mem, s->touched);
    mux_mem_free(s->mem, s->wake);
    mux_mem_free(s->mem, s->client_id);
    mux_mem_free(s->mem, s->auth_token);
    mux_mem_free(s->mem, s->software);
    mux_mem_free(s->mem, s);
}

/* 1 when mux_session_send would produce bytes. */
int mux_session_want_write(const mux_session *s)
{
    if (s == NULL || s->batch_out || s->close_state >= CLOSE_IN_BATCH)
        return 0;
    if (mux_buf_size(&s->ctrl) > 0 || mux_buf_size(&s->wsctrl) > 0 || s->close_state == CLOSE_QUEUED)
        return 1;
    if (s->zend_pending && !s->dead)
        return 1;
    if (!s->dead && (s->goaway_sent || s->goaway_recv) && s->active == 0 && s->hs == HS_ESTABLISHED)
        return 1; /* the drain-complete close */
    if (s->hs == HS_REFUSED && is_server(s))
        return 1;
    return mux_can_send_data(s);
}

/* 1 when the transport should be closed once send() is flushed. */
int mux_session_want_close(const mux_session *s)
{
    if (s == NULL)
        return 1;
    if (s->dead || s->hs == HS_REFUSED || s->close_state != CLOSE_NONE)
        return 1;
    return (s->goaway_sent || s->goaway_recv) && s->active == 0;
}

/* ================================================================ queries */

const char *mux_handshake_state_to_str(mux_handshake_state hs)
{
    switch (hs) {
    case HS_WAIT_HELLO:
        return "wait_hello";
    case HS_HELLO_PENDING:
        return "hello_pending";
    case HS_WAIT_WELCOME:
        return "wait_welcome";
    case HS_ESTABLISHED:
        return "established";
    case HS_REFUSED:
        return "refused";
    }
    return "unknown";
}

const char *mux_ws_close_state_to_str(mux_ws_close_state cs)
{
    switch (cs) {
    case CLOSE_NONE:
        return "none";
    case CLOSE_QUEUED:
        return "queued";
    case CLOSE_IN_BATCH:
        return "in_batch";
    case CLOSE_SENT:
        return "sent";
    }
    return "unknown";
}

int mux_session_is_established(const mux_session *s)
{
    return s != NULL && s->hs == HS_ESTABLISHED;
}

uint32_t mux_session_capabilities(const mux_session *s)
{
    return s != NULL && s->hs == HS_ESTABLISHED ? s->caps : 0;
}

void mux_session_get_stats(const mux_session *s, mux_session_stats *out)
{
    if (s == NULL || out == NULL)
        return;
    *out = s->stats;
    out->streams_active = s->active;
    out->min_rtt_ms = mux_rtt_min(&s->rtt);
    out->srtt_ms = mux_rtt_smoothed(&s->rtt);
    out->rttvar_ms = mux_rtt_variation(&s->rtt);
    out->zstd_contexts = (uint32_t)(mux_zstd_tx_live(s->ztx) + mux_zstd_rx_live(s->zrx));
    /* add the time of streams still stalled */
    for (const mux_stream *st = s->streams.all; st != NULL; st = st->anext) {
        int cause = mux_list_stall_cause(st->list);
        if (cause < MUX_STALL_CAUSES && s->now > st->blocked_since) {
            out->stall_ms[cause] += (uint64_t)(s->now - st->blocked_since);
            if (cause != MUX_STALL_SOCKET)
                out->flow_blocked_ms += (uint64_t)(s->now - st->blocked_since);
        }
    }
}

size_t mux_session_worst_streams(const mux_session *s, int64_t now_ms, mux_stream_stall *out, size_t n)
{
    if (s == NULL || out == NULL)
        return 0;
    size_t got = 0;
    for (size_t i = 0; i < s->nworst; i++)
        mux_worst_insert(out, &got, n, &s->worst[i]);
    for (const mux_stream *st = s->streams.all; st != NULL; st = st->anext) {
        if (st->flags & MUX_SF_NOTIFIED)
            continue;
        mux_stream_stall x;
        mux_stream_stall_of(st, now_ms > s->now ? now_ms : s->now, &x);
        mux_worst_insert(out, &got, n, &x);
    }
    return got;
}

int mux_session_peer_closed(const mux_session *s)
{
    return s != NULL && s->peer_closed;
}

const char *mux_session_last_error_reason(const mux_session *s)
{
    if (s == NULL || s->reason == NULL)
        return "";
    return s->reason;
}
