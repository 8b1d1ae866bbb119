/*
 * tunnelmux — the public submit API of the session (include/mux/mux.h; nghttp2_submit.c style):
 * the application's requests — accept or refuse a HELLO, open a stream, respond, write, end,
 * reset, consume (return credit), GOAWAY, PING. Each checks its arguments and the stream's state,
 * queues frames or bytes, and leaves the sending to mux_session_send (tx_batch.c).
 */
#include <string.h>

#include "ctrl_queue.h"
#include "mux_internal.h"

/* ---------------------------------------------------------------- handshake */

/* SERVER: accepts the pending HELLO (queues WELCOME). */
int mux_session_accept(mux_session *s, const char *public_url)
{
    if (s == NULL)
        return MUX_ERR_INVALID_ARGUMENT;
    if (s->dead || s->hs != HS_HELLO_PENDING)
        return perr(s, MUX_ERR_INVALID_STATE, "no HELLO pending");
    mux_frame f;
    memset(&f, 0, sizeof(f));
    f.type = MUX_FRAME_WELCOME;
    f.welcome.version = MUX_PROTOCOL_VERSION;
    f.welcome.capabilities = s->caps;
    f.welcome.ping_interval_ms = s->opt.ping_interval_ms;
    f.welcome.ping_timeout_ms = s->opt.ping_timeout_ms;
    f.welcome.public_url = public_url != NULL ? public_url : "";
    f.initial_stream_window = s->opt.initial_stream_window;
    f.initial_conn_window = s->opt.initial_conn_window;
    f.max_message_size = s->opt.max_message_size;
    int rv = mux_queue_frame(s, &f, 1);
    if (rv != 0)
        return MUX_ERR_NOMEM;
    s->hs = HS_ESTABLISHED;
    return 0;
}

/* SERVER: refuses the pending HELLO; the session then wants to close. */
int mux_session_refuse(mux_session *s, unsigned code, const char *reason, uint32_t retry_after_ms)
{
    if (s == NULL)
        return MUX_ERR_INVALID_ARGUMENT;
    if (s->dead || s->hs != HS_HELLO_PENDING)
        return perr(s, MUX_ERR_INVALID_STATE, "no HELLO pending");
    mux_frame f;
    memset(&f, 0, sizeof(f));
    f.type = MUX_FRAME_REFUSE;
    f.code = code;
    f.reason = iov_str(reason);
    f.retry_after_ms = retry_after_ms;
    int rv = mux_queue_frame(s, &f, 1);
    if (rv != 0)
        return MUX_ERR_NOMEM;
    s->hs = HS_REFUSED;
    return 0;
}

/* ---------------------------------------------------------------- streams */

static int check_head(const mux_session *s, const mux_head *head)
{
    if (head->nheaders > s->opt.max_header_count || (head->nheaders != 0 && head->headers == NULL))
        return MUX_ERR_HEADER_LIMIT;
    size_t bytes = 0;
    for (size_t i = 0; i < head->nheaders; i++)
        bytes += head->headers[i].name.len + head->headers[i].value.len;
    return bytes > s->opt.max_header_bytes ? MUX_ERR_HEADER_LIMIT : 0;
}

/* SERVER: opens a stream with request |head|; returns its id or an error. */
int32_t mux_session_open_stream(mux_session *s, const mux_head *head, void *stream_user_data)
{
    if (s == NULL || head == NULL)
        return MUX_ERR_INVALID_ARGUMENT;
    if (!is_server(s) || s->hs != HS_ESTABLISHED || s->dead)
        return perr(s, MUX_ERR_INVALID_STATE, "session not established");
    if (s->goaway_sent || s->goaway_recv || s->close_state != CLOSE_NONE)
        return perr(s, MUX_ERR_GOAWAY, "session is going away");
    if (s->active + s->stubs >= s->opt.max_concurrent_streams)
        return perr(s, MUX_ERR_TOO_MANY_STREAMS, "concurrent stream limit");
    if (s->next_id > 0x7fffffffu)
        return perr(s, MUX_ERR_GOAWAY, "stream ids exhausted");
    if (check_head(s, head) != 0)
        return perr(s, MUX_ERR_HEADER_LIMIT, "request head over header limits");
    uint32_t id = s->next_id;
    mux_frame f;
    memset(&f, 0, sizeof(f));
    f.type = MUX_FRAME_OPEN;
    f.stream_id = id;
    f.head = *head;
    f.head.status = 0;
    size_t mark = s->ctrl.len;
    if (mux_frame_encode(&f, &s->ctrl, s->mem) != 0)
        return perr(s, MUX_ERR_NOMEM, "cannot encode the request head");
    mux_stream *st = mux_stream_new(s, id);
    if (st == NULL) {
        s->ctrl.len = mark;
        return perr(s, MUX_ERR_NOMEM, "cannot allocate a stream");
    }
    s->next_id += 2;
    s->highest_id = id;
    st->user_data = stream_user_data;
    if (head->flags & MUX_HEAD_UPGRADE)
        st->flags |= MUX_SF_UPGRADE_REQ;
    if (head->flags & MUX_HEAD_END_STREAM)
        mux_stream_local_end(s, st);
    return (int32_t)id;
}

/* CLIENT: sends the response head of stream |id|. */
int mux_session_respond(mux_session *s, uint32_t id, const mux_head *head)
{
    if (s == NULL || head == NULL)
        return MUX_ERR_INVALID_ARGUMENT;
    if (is_server(s) || s->dead)
        return perr(s, MUX_ERR_INVALID_STATE, "respond is for the client role");
    mux_stream *st = mux_stream_table_find(&s->streams, id);
    if (st == NULL || st->state == MUX_SS_CLOSING)
        return perr(s, MUX_ERR_STREAM_NOT_FOUND, "no such stream");
    if ((st->flags & MUX_SF_HEAD_FINAL) || st->state == MUX_SS_HALF_CLOSED_LOCAL)
        return perr(s, MUX_ERR_INVALID_STATE, "response head already sent");
    if (head->status < 100 || head->status > 599)
        return perr(s, MUX_ERR_INVALID_ARGUMENT, "status out of 100..599");
    if (head->status == 101 && !(st->flags & MUX_SF_UPGRADE_REQ))
        return perr(s, MUX_ERR_INVALID_STATE, "101 without an upgrade request");
    if (check_head(s, head) != 0)
        return perr(s, MUX_ERR_HEADER_LIMIT, "response head over header limits");
    int informational = head->status < 200 && head->status != 101;
    mux_frame f;
    memset(&f, 0, sizeof(f));
    f.type = MUX_FRAME_OPEN;
    f.stream_id = id;
    f.head = *head;
    f.head.method = f.head.scheme = f.head.authority = f.head.path = f.head.remote_addr = (mux_iovec){NULL, 0};
    if (informational)
        f.head.flags &= ~(uint32_t)MUX_HEAD_END_STREAM;
    f.head.flags &= MUX_HEAD_END_STREAM;
    if (mux_frame_encode(&f, &s->ctrl, s->mem) != 0)
        return perr(s, MUX_ERR_NOMEM, "cannot encode the response head");
    if (informational)
        return 0;
    st->flags |= MUX_SF_HEAD_FINAL;
    if (head->status == 101)
        st->flags |= MUX_SF_RAW;
    if (f.head.flags & MUX_HEAD_END_STREAM)
        mux_stream_local_end(s, st);
    else
        mux_schedule(s, st); /* data may have been waiting for the head */
    return 0;
}

static int writable_state(const mux_session *s, const mux_stream *st)
{
    if (st->state == MUX_SS_CLOSING || st->state == MUX_SS_HALF_CLOSED_LOCAL || (st->flags & MUX_SF_FIN_QUEUED))
        return MUX_ERR_INVALID_STATE;
    if (!is_server(s) && !(st->flags & MUX_SF_HEAD_FINAL))
        return MUX_ERR_INVALID_STATE;
    return 0;
}

/* Queues body bytes (copied); see mux.h. */
ssize_t mux_session_write(mux_session *s, uint32_t id, const uint8_t *data, size_t len)
{
    if (s == NULL || (data == NULL && len != 0))
        return MUX_ERR_INVALID_ARGUMENT;
    if (s->dead)
        return perr(s, MUX_ERR_INVALID_STATE, "session is closed");
    mux_stream *st = mux_stream_table_find(&s->streams, id);
    if (st == NULL || st->state == MUX_SS_CLOSING)
        return perr(s, MUX_ERR_STREAM_NOT_FOUND, "no such stream");
    if (writable_state(s, st) != 0)
        return perr(s, MUX_ERR_INVALID_STATE, "our direction has ended or no response head yet");
    if (len == 0)
        return 0;
    size_t room = st->txq.held < s->opt.stream_send_buffer ? s->opt.stream_send_buffer - st->txq.held : 0;
    if (room == 0) {
        st->flags |= MUX_SF_WANT_WRITABLE;
        return perr(s, MUX_ERR_AGAIN, "stream send buffer full");
    }
    size_t n = len < room ? len : room;
    ssize_t w = mux_txq_write(&st->txq, &s->pool, data, n, s->mem);
    if (w < 0)
        return perr(s, MUX_ERR_NOMEM, "cannot grow the send queue");
    if ((size_t)w < len)
        st->flags |= MUX_SF_WANT_WRITABLE;
    mux_schedule(s, st);
    return w;
}

/* Bytes write() would accept now. */
size_t mux_session_write_room(const mux_session *s, uint32_t id)
{
    if (s == NULL || s->dead)
        return 0;
    mux_stream *st = mux_stream_table_find(&s->streams, id);
    if (st == NULL || writable_state(s, st) != 0)
        return 0;
    return st->txq.held < s->opt.stream_send_buffer ? s->opt.stream_send_buffer - st->txq.held : 0;
}

/* Arms on_writable for |id|; see mux.h. */
int mux_session_want_writable(mux_session *s, uint32_t id)
{
    if (s == NULL)
        return MUX_ERR_INVALID_ARGUMENT;
    mux_stream *st = mux_stream_table_find(&s->streams, id);
    if (st == NULL || st->state == MUX_SS_CLOSING)
        return MUX_ERR_STREAM_NOT_FOUND;
    st->flags |= MUX_SF_WANT_WRITABLE;
    return 0;
}

/* Ends our direction after the queued bytes (DATA fin). */
int mux_session_end_stream(mux_session *s, uint32_t id)
{
    if (s == NULL)
        return MUX_ERR_INVALID_ARGUMENT;
    if (s->dead)
        return perr(s, MUX_ERR_INVALID_STATE, "session is closed");
    mux_stream *st = mux_stream_table_find(&s->streams, id);
    if (st == NULL || st->state == MUX_SS_CLOSING)
        return perr(s, MUX_ERR_STREAM_NOT_FOUND, "no such stream");
    if (writable_state(s, st) != 0)
        return perr(s, MUX_ERR_INVALID_STATE, "our direction has ended or no response head yet");
    st->flags |= MUX_SF_FIN_QUEUED;
    mux_schedule(s, st);
    return 0;
}

/* Aborts |id| both ways; on_stream_close fires before returning. */
int mux_session_reset_stream(mux_session *s, uint32_t id, unsigned code, const char *reason)
{
    if (s == NULL)
        return MUX_ERR_INVALID_ARGUMENT;
    if (s->dead)
        return perr(s, MUX_ERR_INVALID_STATE, "session is closed");
    mux_stream *st = mux_stream_table_find(&s->streams, id);
    if (st == NULL || st->state == MUX_SS_CLOSING)
        return perr(s, MUX_ERR_STREAM_NOT_FOUND, "no such stream");
    mux_stream_reset(s, st, code, reason != NULL ? reason : "");
    return 0;
}

/* Returns credit for |n| consumed bytes of |id|. */
int mux_session_consume(mux_session *s, uint32_t id, size_t n)
{
    if (s == NULL)
        return MUX_ERR_INVALID_ARGUMENT;
    if (s->dead || n == 0)
        return 0;
    mux_stream *st = mux_stream_table_find(&s->streams, id);
    if (st == NULL || st->state == MUX_SS_CLOSING)
        return 0; /* its connection credit was returned when it closed */
    size_t avail = (size_t)(st->rx.received - st->rx.consumed);
    if (n > avail)
        n = avail;
    /* auto-tuning may grow this window only within what the other streams' growth left of the
     * budget: the receiver holds at most streams x initial window + initial_conn_window */
    uint64_t room = s->opt.initial_conn_window > s->rx_grown ? s->opt.initial_conn_window - s->rx_grown : 0;
    uint64_t cap = (uint64_t)st->rx.window + room;
    if (cap > s->opt.max_stream_window)
        cap = s->opt.max_stream_window;
    st->rx.queue_ms = mux_rtt_smoothed(&s->rtt) - mux_rtt_min(&s->rtt); /* 0 before the first sample */
    st->rx.queue_ok_ms = mux_rxwin_queue_allowance(mux_rtt_min(&s->rtt));
    uint32_t inc = mux_rxwin_consume(&st->rx, n, s->now, mux_rtt_smoothed(&s->rtt), (uint32_t)cap);
    mux_recharge_growth(s, st);
    if (inc != 0 && st->state != MUX_SS_HALF_CLOSED_REMOTE) {
        int rv = mux_queue_window(s, id, inc);
        if (rv != 0)
            return rv;
    }
    return 0;
}

int mux_session_set_stream_user_data(mux_session *s, uint32_t id, void *stream_user_data)
{
    if (s == NULL)
        return MUX_ERR_INVALID_ARGUMENT;
    mux_stream *st = mux_stream_table_find(&s->streams, id);
    if (st == NULL || (st->flags & MUX_SF_NOTIFIED))
        return MUX_ERR_STREAM_NOT_FOUND;
    st->user_data = stream_user_data;
    return 0;
}

void *mux_session_get_stream_user_data(const mux_session *s, uint32_t id)
{
    if (s == NULL)
        return NULL;
    mux_stream *st = mux_stream_table_find(&s->streams, id);
    return st != NULL ? st->user_data : NULL;
}

/* ---------------------------------------------------------------- connection */

/* Queues GOAWAY: no new streams; want_close once the open ones finished. */
int mux_session_goaway(mux_session *s, unsigned code, const char *reason)
{
    if (s == NULL)
        return MUX_ERR_INVALID_ARGUMENT;
    if (s->dead || s->goaway_sent)
        return s->dead ? perr(s, MUX_ERR_INVALID_STATE, "session is closed") : 0;
    int rv = mux_queue_simple(s, MUX_FRAME_GOAWAY, s->highest_id, code, reason != NULL ? reason : "");
    if (rv != 0)
        return rv;
    s->goaway_sent = 1;
    s->goaway_sent_last = s->highest_id;
    return 0;
}

/* Queues a PING carrying |now_ms|. */
int mux_session_ping(mux_session *s, int64_t now_ms)
{
    if (s == NULL)
        return MUX_ERR_INVALID_ARGUMENT;
    if (s->dead || s->hs != HS_ESTABLISHED)
        return perr(s, MUX_ERR_INVALID_STATE, "not established");
    s->now = now_ms;
    int rv = mux_queue_ping(s, MUX_FRAME_PING, (uint64_t)now_ms);
    if (rv == 0) {
        s->ping_outstanding = 1;
        s->last_ping_ms = now_ms;
    }
    return rv;
}
