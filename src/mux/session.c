/*
 * tunnelmux — the mux session (include/mux/mux.h, docs/PROTOCOL.md).
 *
 * Receive path: WebSocket decoder (unmasking in place) -> message (in place when a whole frame is
 * in the input, else reassembled) -> envelope header -> optional zstd -> records -> one switch per
 * frame type, per-stream state machine (stream_*), flow control (flow.c).
 * Send path: control records are encoded into |ctrl| when queued; mux_session_send builds messages
 * from them and from DATA taken round-robin from the streams' chunk queues, as iovecs pointing
 * into a scratch buffer (WebSocket header, envelope byte, records, DATA prefixes) and into the
 * chunks (payload, zero-copy). The client masks those bytes in place.
 */
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "entropy.h"
#include "frame_codec.h"
#include "mem.h"
#include "rtt.h"
#include "session_internal.h"

enum {
    HS_WAIT_HELLO,    /* server: nothing received yet */
    HS_HELLO_PENDING, /* server: HELLO received, on_hello has not decided yet */
    HS_WAIT_WELCOME,  /* client: HELLO queued, waiting for WELCOME/REFUSE */
    HS_ESTABLISHED,   /* WELCOME sent (server) / received (client) */
    HS_REFUSED,       /* REFUSE sent (server) / received (client) */
};

enum { CLOSE_NONE, CLOSE_QUEUED, CLOSE_IN_BATCH, CLOSE_SENT };

/* A message arriving in pieces: before its first byte, an uncompressed one processed record by
 * record where the records lie in the input, anything else (compressed, or a bad header byte
 * that process_message will report) reassembled whole, or the rest ignored (REFUSE / death). */
enum { RXM_UNDECIDED, RXM_RECORDS, RXM_WHOLE, RXM_SKIP };

#define CTRL_FLOOD_LIMIT (1u << 20)    /* drop PONGs when this much control is unsent */
#define CTRL_BACKLOG_LIMIT (16u << 20) /* fail a peer that makes us queue more control than this */
#define RX_ZSTD_WINDOW_LOG_MAX 20      /* PROTOCOL.md §3.2: senders never exceed 20 */
/* An incompressible stream is re-tried after INCOMPRESSIBLE_PROBE messages, the wait doubling after
 * each failed re-try up to INCOMPRESSIBLE_PROBE << INCOMPRESSIBLE_PROBE_MAX_SHIFT (random or
 * already compressed bodies then cost ~0.1% of their bytes in probes). */
#define INCOMPRESSIBLE_PROBE 16
#define INCOMPRESSIBLE_PROBE_MAX_SHIFT 6
/* PROTOCOL.md §3.2: a message whose body (records before compression) is shorter goes plain.
 * Keepalive and credit (PING, PONG, WINDOW: 5-15 bytes a record) and CLOSE never touch zstd, so an
 * idle tunnel holds no context. Measured (level 3, window 17, warm window, PERFORMANCE.md): a 12-byte
 * body grows by 10%, a 96-byte one saves 75 bytes, a 192-byte head 127 bytes; a cold frame adds 9
 * bytes. The contexts that would cost: 1.6 MiB (compressor) + 0.6 MiB (decompressor) per tunnel. */
#define COMPRESS_MIN_BODY 256

typedef struct {
    uint8_t *ptr; /* NULL: |off| is an offset in the scratch buffer */
    size_t off;
    size_t len;
} plan_ent;

struct mux_session {
    mux_session_options opt;
    char *client_id, *auth_token, *software; /* copies of the option strings */
    mux_session_callbacks cb;
    const mux_mem *mem;
    void *ud;
    int64_t now;

    /* handshake */
    int hs;
    int rx_hello_msg; /* server: the message being processed carried the HELLO; the rest of it was
                         sent before WELCOME, so only PING, PONG, GOAWAY may follow (PROTOCOL.md §4.1) */
    uint32_t caps;
    uint32_t peer_stream_window, peer_conn_window, peer_max_message;

    /* receive */
    mux_ws_decoder dec;
    mux_buf rxmsg;     /* a message not wholly inside one recv() input: all of it (RXM_WHOLE) or the
                          one record cut by the end of the input (RXM_RECORDS) */
    int rx_in_msg;     /* a data message is arriving in pieces */
    int rx_mode;       /* RXM_*: how that message is taken */
    size_t rx_msg_len; /* its payload bytes so far */
    uint8_t ctl[MUX_WS_MAX_CONTROL_PAYLOAD];
    size_t ctllen;
    mux_buf dbuf; /* decompressed body */
    mux_zstd_tx *ztx;
    mux_zstd_rx *zrx;

    /* streams */
    mux_stream_table streams;
    uint32_t active;             /* streams not yet notified closed */
    uint32_t stubs;              /* CLOSING streams kept only to absorb the peer's late frames */
    uint32_t next_id;            /* server: next id to open */
    uint32_t highest_id;         /* highest stream id opened (by us on the server, by the peer on the client) */
    mux_slist sendq;             /* bulk streams with data and credit */
    mux_slist sendq_interactive; /* streams with data and credit that sent little lately: first */
    mux_slist blk_conn;          /* streams with data and stream credit, blocked on connection credit */
    int64_t conn_tx_credit;
    mux_rxwin conn_rx;
    uint64_t rx_grown; /* sum over streams of rx_charged (their auto-tuned growth, recharge_growth),
                          bounded by initial_conn_window (PROTOCOL.md §6.2) */

    /* send */
    mux_buf ctrl;      /* encoded control records waiting to be sent */
    size_t ctrl_plain; /* leading bytes of |ctrl| that must not be compressed (handshake) */
    mux_buf wsctrl;    /* complete WebSocket control frames (PONG) waiting */
    int close_state;
    uint16_t close_code;
    mux_buf scratch; /* headers and records of the outstanding batch */
    mux_buf zin;     /* plain records of a message to compress */
    plan_ent *plan;
    size_t nplan, plancap;
    int batch_out;
    uint32_t *touched; /* stream ids with DATA in the outstanding batch */
    size_t ntouched, touchedcap;
    uint32_t *wake; /* ids to fire on_writable for, in send_done */
    size_t nwakecap;
    int in_wake;
    mux_chunk *grave; /* chunks of freed streams still referenced by the batch */
    mux_chunk_pool pool;
    mux_ws_keygen keygen;

    /* lifecycle */
    int dead;         /* fatal error or WebSocket close: no more processing */
    int peer_closed;  /* nothing more is expected from the peer: its WebSocket close frame arrived, or
                         it was declared dead (handshake or keepalive timeout) */
    int linger_blind; /* after our failure the peer's framing cannot be followed: no close frame
                         will be recognised (the transport waits for EOF instead) */
    int fatal_rv;     /* the fatal error recv returns again */
    int goaway_sent, goaway_recv;
    uint32_t goaway_sent_last; /* last_stream_id of our GOAWAY: newer ids are ignored (PROTOCOL.md §4.8) */
    unsigned goaway_recv_code;
    uint32_t goaway_recv_last;

    /* timers */
    int64_t created_ms, last_recv_ms, last_ping_ms;
    int64_t last_compress_ms; /* the compressor is released after zstd_idle_jit ms without use */
    int64_t zstd_idle_jit;    /* opt.zstd_idle_ms stretched by a per-session random 0..50% so tunnels
                                 registered together do not free (or re-create) together */
    int zend_pending;         /* idle: the next batch ends the zstd frame and frees the compressor */
    int ping_outstanding;
    mux_rtt rtt;          /* from PONGs: keepalive PINGs when idle, probe PINGs while DATA flows */
    int64_t last_data_ms; /* DATA last sent or received: the tunnel is busy, PING to measure RTT */

    mux_stream_stall worst[MUX_WORST_FINISHED]; /* finished streams that stalled longest, worst first */
    size_t nworst;

    mux_session_stats stats;
    const char *reason;
    char reason_buf[160];
};

/* ================================================================ helpers */

static int perr(mux_session *s, int rv, const char *reason)
{
    s->reason = reason;
    return rv;
}

static int perrf(mux_session *s, int rv, const char *fmt, uint32_t a)
{
    snprintf(s->reason_buf, sizeof(s->reason_buf), fmt, a);
    s->reason = s->reason_buf;
    return rv;
}

static int is_server(const mux_session *s)
{
    return s->opt.role == MUX_ROLE_SERVER;
}

static int compression_on(const mux_session *s)
{
    return s->hs == HS_ESTABLISHED && (s->caps & MUX_CAP_ZSTD) != 0;
}

static size_t msg_limit(const mux_session *s)
{
    size_t l = s->opt.send_message_size;
    if (s->peer_max_message != 0 && l > s->peer_max_message)
        l = s->peer_max_message;
    if (l < 256)
        l = 256;
    return l;
}

static mux_iovec iov_str(const char *str)
{
    mux_iovec v = {(uint8_t *)(uintptr_t)str, str != NULL ? strlen(str) : 0};
    return v;
}

/* Encodes |f| into the control queue. |plain|: must go in an uncompressed message. */
static int queue_frame(mux_session *s, const mux_frame *f, int plain)
{
    int rv = mux_frame_encode(f, &s->ctrl, s->mem);
    if (rv != 0)
        return perr(s, rv, "cannot encode a control frame");
    if (plain)
        s->ctrl_plain = mux_buf_size(&s->ctrl);
    return 0;
}

static int queue_simple(mux_session *s, mux_frame_type type, uint32_t id, unsigned code, const char *reason)
{
    mux_frame f;
    memset(&f, 0, sizeof(f));
    f.type = type;
    f.stream_id = id;
    f.last_stream_id = id;
    f.code = code;
    f.reason = iov_str(reason);
    return queue_frame(s, &f, 0);
}

static int queue_window(mux_session *s, uint32_t id, uint32_t inc)
{
    mux_frame f;
    memset(&f, 0, sizeof(f));
    f.type = MUX_FRAME_WINDOW;
    f.stream_id = id;
    f.increment = inc;
    return queue_frame(s, &f, 0);
}

static int queue_ping(mux_session *s, mux_frame_type type, uint64_t opaque)
{
    mux_frame f;
    memset(&f, 0, sizeof(f));
    f.type = type;
    f.opaque = opaque;
    return queue_frame(s, &f, 0);
}

/* Returns connection credit for |n| bytes received into a stream (or discarded): on receipt, so
 * streams whose readers are slow never hold the connection's credit (PROTOCOL.md §6.2). */
static void conn_consume(mux_session *s, size_t n)
{
    if (n == 0)
        return;
    uint32_t inc = mux_rxwin_consume(&s->conn_rx, n, s->now, 0, 0);
    if (inc != 0)
        queue_window(s, 0, inc); /* NOMEM: the credit is lost; the peer's connection window shrinks */
}

/* ================================================================ scheduling */

/* The stall cause of a list (MUX_STALL_CAUSES: not stalled). */
static int list_stall_cause(int list)
{
    switch (list) {
    case MUX_LIST_SEND:
    case MUX_LIST_SEND_INTERACTIVE:
        return MUX_STALL_SOCKET;
    case MUX_LIST_BLK_CONN:
        return MUX_STALL_PEER;
    case MUX_LIST_BLK_STREAM:
        return MUX_STALL_CREDIT;
    default:
        return MUX_STALL_CAUSES;
    }
}

static void unschedule(mux_session *s, mux_stream *st)
{
    int cause = list_stall_cause(st->list);
    if (cause < MUX_STALL_CAUSES && s->now > st->blocked_since) {
        uint64_t ms = (uint64_t)(s->now - st->blocked_since);
        st->stall_ms[cause] += ms;
        s->stats.stall_ms[cause] += ms;
        if (cause != MUX_STALL_SOCKET)
            s->stats.flow_blocked_ms += ms;
    }
    switch (st->list) {
    case MUX_LIST_SEND:
        mux_slist_remove(&s->sendq, st);
        break;
    case MUX_LIST_SEND_INTERACTIVE:
        mux_slist_remove(&s->sendq_interactive, st);
        break;
    case MUX_LIST_BLK_CONN:
        mux_slist_remove(&s->blk_conn, st);
        break;
    default:
        break;
    }
    st->list = MUX_LIST_NONE;
}

/* Puts |st| in the list matching why it can or cannot send (haproxy H2_SF_BLK_* style). */
static void schedule(mux_session *s, mux_stream *st)
{
    int want = st->txq.queued > 0 || (st->flags & MUX_SF_FIN_QUEUED);
    int list = MUX_LIST_NONE;
    if (want && st->state != MUX_SS_CLOSING) {
        if (st->txq.queued == 0)
            list = MUX_LIST_SEND; /* a bare fin needs no credit */
        else if (st->tx_credit <= 0)
            list = MUX_LIST_BLK_STREAM;
        else if (s->conn_tx_credit <= 0)
            list = MUX_LIST_BLK_CONN;
        else
            list = MUX_LIST_SEND;
        if (list == MUX_LIST_SEND && st->burst_sent < MUX_INTERACTIVE_BYTES)
            list = MUX_LIST_SEND_INTERACTIVE;
    }
    if (list == st->list)
        return;
    unschedule(s, st);
    st->list = list;
    if (list == MUX_LIST_SEND)
        mux_slist_push(&s->sendq, st);
    else if (list == MUX_LIST_SEND_INTERACTIVE)
        mux_slist_push(&s->sendq_interactive, st);
    else if (list == MUX_LIST_BLK_CONN)
        mux_slist_push(&s->blk_conn, st);
    st->blocked_since = s->now;
}

/* Connection credit arrived: every stream blocked on it may send again. */
static void wake_conn_blocked(mux_session *s)
{
    while (s->blk_conn.head != NULL && s->conn_tx_credit > 0) {
        mux_stream *st = s->blk_conn.head;
        unschedule(s, st);
        schedule(s, st);
    }
}

/* ---------------------------------------------------------------- stall records */

static uint64_t stall_total(const mux_stream_stall *x)
{
    uint64_t t = 0;
    for (int c = 0; c < MUX_STALL_CAUSES; c++)
        t += x->stall_ms[c];
    return t;
}

/* Inserts |x| into |out| (|*n| entries, at most |cap|, worst first) if it is among the worst. */
static void worst_insert(mux_stream_stall *out, size_t *n, size_t cap, const mux_stream_stall *x)
{
    uint64_t t = stall_total(x);
    size_t i = *n;
    if (cap == 0 || (i == cap && stall_total(&out[cap - 1]) >= t))
        return;
    if (i == cap)
        i--;
    while (i > 0 && stall_total(&out[i - 1]) < t) {
        out[i] = out[i - 1];
        i--;
    }
    out[i] = *x;
    if (*n < cap)
        (*n)++;
}

/* Its stall record as of |now| (the current list's time included). */
static void stream_stall_of(const mux_stream *st, int64_t now, mux_stream_stall *x)
{
    memset(x, 0, sizeof(*x));
    x->id = st->id;
    x->open = 1;
    memcpy(x->stall_ms, st->stall_ms, sizeof(x->stall_ms));
    int cause = list_stall_cause(st->list);
    if (cause < MUX_STALL_CAUSES && now > st->blocked_since)
        x->stall_ms[cause] += (uint64_t)(now - st->blocked_since);
    x->bytes_sent = st->bytes_sent;
    x->age_ms = now - st->opened_ms;
}

/* ================================================================ stream lifecycle */

/* Re-computes what |st|'s window growth takes from the budget (rx_grown): what it may still be
 * made to hold — its window, or the credit already announced and not yet consumed if that is
 * more (announced credit cannot be taken back) — beyond the initial window. */
static void recharge_growth(mux_session *s, mux_stream *st)
{
    int64_t committed = st->rx.limit - st->rx.consumed;
    if (committed < (int64_t)st->rx.window)
        committed = st->rx.window;
    uint64_t charge = committed > (int64_t)st->rx.base ? (uint64_t)(committed - st->rx.base) : 0;
    s->rx_grown = s->rx_grown - st->rx_charged + charge;
    st->rx_charged = charge;
}

/* Gives back the auto-tuned growth of |st|'s receive window (it is closing). */
static void release_growth(mux_session *s, mux_stream *st)
{
    s->rx_grown -= st->rx_charged;
    st->rx_charged = 0;
    st->rx.window = st->rx.base;
}

static void drop_queue(mux_session *s, mux_stream *st)
{
    if (s->batch_out)
        mux_txq_bury(&st->txq, &s->grave);
    else {
        mux_chunks_free(st->txq.head, &s->pool, s->mem);
        st->txq.head = st->txq.tail = NULL;
        st->txq.queued = st->txq.held = 0;
    }
}

/* Forgets |st|. Fires on_stream_close (the last callback) unless it already fired. */
static void stream_free(mux_session *s, mux_stream *st, unsigned code, const char *reason, int by_peer)
{
    uint32_t id = st->id;
    void *sud = st->user_data;
    int notify = !(st->flags & MUX_SF_NOTIFIED);
    unschedule(s, st);
    if (notify) {
        mux_stream_stall x;
        stream_stall_of(st, s->now, &x);
        x.open = 0;
        worst_insert(s->worst, &s->nworst, MUX_WORST_FINISHED, &x);
    }
    mux_stream_table_remove(&s->streams, st);
    release_growth(s, st);
    drop_queue(s, st);
    if (notify) {
        s->active--;
        s->stats.streams_closed++;
    } else {
        s->stubs--;
    }
    mux_mem_free(s->mem, st);
    if (notify && s->cb.on_stream_close != NULL)
        s->cb.on_stream_close(s, id, code, reason != NULL ? reason : "", by_peer, sud, s->ud);
}

/*
 * Aborts |st| from our side: CLOSE(code) is queued, queued data dropped, on_stream_close fires
 * (by_peer 0). If the peer's direction is still open the stream stays as a CLOSING stub that
 * discards the peer's late DATA (PROTOCOL.md §5.3).
 */
static void stream_reset(mux_session *s, mux_stream *st, unsigned code, const char *reason)
{
    queue_simple(s, MUX_FRAME_CLOSE, st->id, code, reason);
    st->flags &= ~MUX_SF_FIN_QUEUED;
    unschedule(s, st);
    drop_queue(s, st);
    if (st->state == MUX_SS_HALF_CLOSED_REMOTE) {
        stream_free(s, st, code, reason, 0);
        return;
    }
    uint32_t id = st->id;
    void *sud = st->user_data;
    release_growth(s, st);
    st->rx.consumed = st->rx.received;
    st->state = MUX_SS_CLOSING;
    st->flags |= MUX_SF_NOTIFIED;
    st->user_data = NULL;
    s->active--;
    s->stubs++;
    s->stats.streams_closed++;
    if (s->cb.on_stream_close != NULL)
        s->cb.on_stream_close(s, id, code, reason != NULL ? reason : "", 0, sud, s->ud);
}

/* Our direction ended (DATA fin sent, or a head with END_STREAM queued). */
static void stream_local_end(mux_session *s, mux_stream *st)
{
    switch (st->state) {
    case MUX_SS_OPEN:
        st->state = MUX_SS_HALF_CLOSED_LOCAL;
        break;
    case MUX_SS_HALF_CLOSED_REMOTE:
        stream_free(s, st, MUX_CODE_NO_ERROR, "", 0);
        break;
    case MUX_SS_HALF_CLOSED_LOCAL:
    case MUX_SS_CLOSING:
        break;
    }
}

/* The peer's direction of |id| ended (DATA fin or head END_STREAM). Fires on_end. */
static void stream_remote_end(mux_session *s, uint32_t id)
{
    mux_stream *st = mux_stream_table_find(&s->streams, id);
    if (st == NULL)
        return;
    switch (st->state) {
    case MUX_SS_OPEN:
    case MUX_SS_HALF_CLOSED_LOCAL: {
        int was_local_done = st->state == MUX_SS_HALF_CLOSED_LOCAL;
        st->state = MUX_SS_HALF_CLOSED_REMOTE;
        if (s->cb.on_end != NULL && s->cb.on_end(s, id, st->user_data, s->ud) != 0) {
            st = mux_stream_table_find(&s->streams, id);
            if (st != NULL && st->state != MUX_SS_CLOSING)
                stream_reset(s, st, MUX_CODE_CANCEL, "on_end failed");
            return;
        }
        st = mux_stream_table_find(&s->streams, id);
        if (st != NULL && was_local_done && st->state == MUX_SS_HALF_CLOSED_REMOTE)
            stream_free(s, st, MUX_CODE_NO_ERROR, "", 0);
        break;
    }
    case MUX_SS_CLOSING:
        stream_free(s, st, MUX_CODE_CANCEL, "", 0);
        break;
    case MUX_SS_HALF_CLOSED_REMOTE:
        break;
    }
}

static mux_stream *stream_new(mux_session *s, uint32_t id)
{
    mux_stream *st = mux_mem_calloc(s->mem, 1, sizeof(*st));
    if (st == NULL)
        return NULL;
    st->id = id;
    st->state = MUX_SS_OPEN;
    st->tx_credit = s->peer_stream_window;
    mux_rxwin_init(&st->rx, s->opt.initial_stream_window, s->now);
    st->opened_ms = s->now;
    if (mux_stream_table_insert(&s->streams, st, s->mem) != 0) {
        mux_mem_free(s->mem, st);
        return NULL;
    }
    s->active++;
    s->stats.streams_opened++;
    return st;
}

/* A stub absorbing the peer's frames for a stream we refused (PROTOCOL.md §5.4). */
static int stream_stub(mux_session *s, uint32_t id)
{
    if (s->stubs > 4 * s->opt.max_concurrent_streams + 64)
        return perr(s, MUX_ERR_PROTO, "too many refused streams awaiting the peer's CLOSE");
    mux_stream *st = mux_mem_calloc(s->mem, 1, sizeof(*st));
    if (st == NULL)
        return perr(s, MUX_ERR_INTERNAL, "out of memory for a refused stream");
    st->id = id;
    st->state = MUX_SS_CLOSING;
    st->flags = MUX_SF_NOTIFIED;
    mux_rxwin_init(&st->rx, s->opt.initial_stream_window, s->now);
    if (mux_stream_table_insert(&s->streams, st, s->mem) != 0) {
        mux_mem_free(s->mem, st);
        return perr(s, MUX_ERR_INTERNAL, "out of memory for a refused stream");
    }
    s->stubs++;
    return 0;
}

/* The session ends: every stream gets on_stream_close (PROTOCOL.md §8). */
static void kill_streams(mux_session *s, unsigned code, const char *reason)
{
    mux_stream *st;
    while ((st = s->streams.all) != NULL)
        stream_free(s, st, code, reason, 1);
}

static void queue_ws_close(mux_session *s, uint16_t code)
{
    if (s->close_state == CLOSE_NONE) {
        s->close_state = CLOSE_QUEUED;
        s->close_code = code;
    }
}

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
static int die(mux_session *s, int rv, int goaway)
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
        queue_frame(s, &f, 1);
        s->goaway_sent = 1;
    }
    queue_ws_close(s, ws_close_code(rv));
    unsigned code = s->goaway_recv ? s->goaway_recv_code : MUX_CODE_INTERNAL_ERROR;
    if (code == MUX_CODE_NO_ERROR)
        code = MUX_CODE_INTERNAL_ERROR;
    kill_streams(s, code, s->reason);
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
        queue_frame(s, &r, 1);
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
static int on_request(mux_session *s, const mux_frame *f, int hdr_limit)
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
        int rv = queue_simple(s, MUX_FRAME_CLOSE, id, code, why);
        if (rv == 0 && (hdr_limit || !(f->head.flags & MUX_HEAD_END_STREAM)))
            rv = stream_stub(s, id);
        return rv;
    }
    mux_stream *st = stream_new(s, id);
    if (st == NULL) {
        int rv = queue_simple(s, MUX_FRAME_CLOSE, id, MUX_CODE_INTERNAL_ERROR, "out of memory");
        if (rv == 0 && !(f->head.flags & MUX_HEAD_END_STREAM))
            rv = stream_stub(s, id);
        return rv;
    }
    if (f->head.flags & MUX_HEAD_UPGRADE)
        st->flags |= MUX_SF_UPGRADE_REQ;
    int end = (f->head.flags & MUX_HEAD_END_STREAM) != 0;
    if (s->cb.on_head != NULL && s->cb.on_head(s, id, &f->head, NULL, s->ud) != 0) {
        st = mux_stream_table_find(&s->streams, id);
        if (st != NULL && st->state != MUX_SS_CLOSING) {
            if (end)
                st->state = MUX_SS_HALF_CLOSED_REMOTE;
            stream_reset(s, st, MUX_CODE_CANCEL, "on_head failed");
        }
        return 0;
    }
    if (end)
        stream_remote_end(s, id);
    return 0;
}

/* SERVER: the response head of one of our streams. */
static int on_response(mux_session *s, const mux_frame *f, int hdr_limit)
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
        stream_reset(s, st, MUX_CODE_HEADERS_TOO_LARGE, "response head over header limits");
        return 0;
    }
    unsigned status = f->head.status;
    if (status < 100 || status > 599) {
        stream_reset(s, st, MUX_CODE_PROTOCOL_ERROR, "invalid response status");
        return 0;
    }
    int informational = 0;
    if (status == 101) {
        if (!(st->flags & MUX_SF_UPGRADE_REQ)) {
            stream_reset(s, st, MUX_CODE_PROTOCOL_ERROR, "101 without an upgrade request");
            return 0;
        }
        st->flags |= MUX_SF_RAW | MUX_SF_HEAD_FINAL;
    } else if (status < 200) {
        informational = 1;
    } else {
        st->flags |= MUX_SF_HEAD_FINAL;
    }
    if (s->cb.on_head != NULL && s->cb.on_head(s, id, &f->head, st->user_data, s->ud) != 0) {
        st = mux_stream_table_find(&s->streams, id);
        if (st != NULL && st->state != MUX_SS_CLOSING)
            stream_reset(s, st, MUX_CODE_CANCEL, "on_head failed");
        return 0;
    }
    if (!informational && (f->head.flags & MUX_HEAD_END_STREAM))
        stream_remote_end(s, id);
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
        conn_consume(s, len); /* a stream we ignored after our GOAWAY */
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
        conn_consume(s, len);
        if (f->fin)
            stream_free(s, st, MUX_CODE_CANCEL, "", 0);
        return 0;
    }
    if (st->state == MUX_SS_HALF_CLOSED_REMOTE)
        return perrf(s, MUX_ERR_STREAM_CLOSED, "DATA after the end of stream %u", id);
    if (is_server(s) && !(st->flags & MUX_SF_HEAD_FINAL))
        return perrf(s, MUX_ERR_PROTO, "DATA before the response head on stream %u", id);
    if (mux_rxwin_recv(&st->rx, len) != 0)
        return perrf(s, MUX_ERR_FLOW_CONTROL, "DATA over the window of stream %u", id);
    conn_consume(s, len); /* the stream's window holds it now (PROTOCOL.md §6.2) */
    if (len != 0 && s->cb.on_data != NULL && s->cb.on_data(s, id, f->payload, len, st->user_data, s->ud) != 0) {
        st = mux_stream_table_find(&s->streams, id);
        if (st != NULL && st->state != MUX_SS_CLOSING) {
            if (f->fin && st->state == MUX_SS_HALF_CLOSED_LOCAL) {
                stream_free(s, st, MUX_CODE_CANCEL, "on_data failed", 0); /* both ends done: nothing to abort */
                return 0;
            }
            if (f->fin)
                st->state = MUX_SS_HALF_CLOSED_REMOTE;
            stream_reset(s, st, MUX_CODE_CANCEL, "on_data failed");
        }
        return 0;
    }
    if (f->fin)
        stream_remote_end(s, id);
    return 0;
}

static int on_window(mux_session *s, const mux_frame *f)
{
    if (f->stream_id == 0) {
        if (mux_txcredit_add(&s->conn_tx_credit, f->increment) != 0)
            return perr(s, MUX_ERR_WINDOW_OVERFLOW, f->increment == 0 ? "WINDOW increment 0" : "connection credit past 2^31-1");
        wake_conn_blocked(s);
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
        schedule(s, st);
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
        stream_free(s, st, f->code, "", 1);
        return 0;
    }
    char reason[128];
    size_t n = f->reason.len < sizeof(reason) - 1 ? f->reason.len : sizeof(reason) - 1;
    if (n != 0)
        memcpy(reason, f->reason.base, n);
    reason[n] = '\0';
    /* answer when our direction has not ended, so the sender can forget the stream */
    if (st->state == MUX_SS_OPEN || st->state == MUX_SS_HALF_CLOSED_REMOTE)
        queue_simple(s, MUX_FRAME_CLOSE, id, f->code, reason);
    stream_free(s, st, f->code, reason, 1);
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
                stream_free(s, st, MUX_CODE_REFUSED_STREAM, "not processed (GOAWAY)", 1);
                next = s->streams.all; /* callbacks may have changed the list: restart */
            }
            st = next;
        }
    }
    return 0;
}

/* Dispatches one decoded frame (one switch per frame type, role checks inside). */
static int on_frame(mux_session *s, const mux_frame *f)
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
        return is_server(s) ? on_response(s, f, 0) : on_request(s, f, 0);
    case MUX_FRAME_DATA:
        return on_data(s, f);
    case MUX_FRAME_WINDOW:
        return on_window(s, f);
    case MUX_FRAME_CLOSE:
        return on_close(s, f);
    case MUX_FRAME_PING:
        if (mux_buf_size(&s->ctrl) < CTRL_FLOOD_LIMIT)
            return queue_ping(s, MUX_FRAME_PONG, f->opaque);
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

/* ================================================================ receive: messages */

static int process_body(mux_session *s, const uint8_t *body, size_t len)
{
    size_t off = 0;
    while (off < len) {
        const char *why = NULL;
        ssize_t rl = mux_envelope_record(body + off, len - off, &why);
        if (rl < 0)
            return perr(s, (int)rl, why);
        mux_frame f;
        memset(&f, 0, sizeof(f));
        ssize_t n = mux_frame_decode(body + off, (size_t)rl, &f, s->opt.max_header_count, s->opt.max_header_bytes, s->mem, &why);
        int rv;
        if (n == MUX_ERR_HEADER_LIMIT) {
            s->stats.frames_in++;
            if (s->hs != HS_ESTABLISHED)
                rv = perr(s, MUX_ERR_HANDSHAKE, "head before the handshake");
            else if (f.stream_id == 0)
                rv = perr(s, MUX_ERR_FRAME_DECODE, "head over limits without a stream id");
            else
                rv = is_server(s) ? on_response(s, &f, 1) : on_request(s, &f, 1);
        } else if (n < 0) {
            rv = perr(s, (int)n, why != NULL ? why : "undecodable frame");
        } else if (n != rl) {
            rv = perr(s, MUX_ERR_FRAME_DECODE, "frame length mismatch");
        } else {
            rv = on_frame(s, &f);
        }
        mux_frame_clear(&f, s->mem);
        if (rv != 0)
            return rv;
        if (s->dead || s->hs == HS_REFUSED)
            break;
        off += (size_t)rl;
    }
    return 0;
}

/* One complete WebSocket data message (|msg| may be modified). */
static int process_message(mux_session *s, uint8_t *msg, size_t len)
{
    s->stats.messages_in++;
    s->rx_hello_msg = 0;
    if (len == 0)
        return perr(s, MUX_ERR_PROTO, "empty message (no envelope header)");
    int compressed, reset;
    const char *why = NULL;
    int rv = mux_envelope_parse(msg[0], &compressed, &reset, &why);
    if (rv != 0)
        return perr(s, rv, why);
    if (!compressed)
        return process_body(s, msg + 1, len - 1);
    if (!compression_on(s))
        return perr(s, MUX_ERR_DECOMPRESS, "compressed message but compression was not negotiated");
    if (s->zrx == NULL && (rv = mux_zstd_rx_new(&s->zrx, RX_ZSTD_WINDOW_LOG_MAX, s->mem)) != 0)
        return perr(s, MUX_ERR_INTERNAL, "cannot create the decompressor");
    mux_buf_reset(&s->dbuf);
    rv = mux_zstd_rx_decompress(s->zrx, msg + 1, len - 1, reset, &s->dbuf, s->opt.max_message_size, s->mem);
    if (rv != 0) {
        if (rv == MUX_ERR_DECOMPRESS_LIMIT)
            return perr(s, rv, "message decompresses beyond max_message_size");
        if (rv == MUX_ERR_NOMEM)
            return perr(s, MUX_ERR_INTERNAL, "out of memory decompressing");
        if (mux_zstd_rx_window_too_large(s->zrx))
            return perr(s, rv, "zstd window too large: window log above 20 (PROTOCOL.md §3.2: set the window log explicitly)");
        return perr(s, rv, "corrupt compressed message");
    }
    rv = mux_buf_size(&s->dbuf) != 0 ? process_body(s, s->dbuf.base + s->dbuf.pos, mux_buf_size(&s->dbuf)) : 0;
    mux_buf_reset(&s->dbuf);
    /* the sender ended its frame (idle, PROTOCOL.md §3.2): the decompressor is gone, so is its buffer */
    mux_buf_shrink(&s->dbuf, mux_zstd_rx_live(s->zrx) ? 1u << 20 : 0, s->mem);
    return rv;
}

static int ws_send_control(mux_session *s, unsigned op, const uint8_t *p, size_t n)
{
    uint8_t key[4], hdr[MUX_WS_MAX_HEADER];
    int client = !is_server(s);
    if (client && mux_ws_keygen_next(&s->keygen, key) != 0)
        return perr(s, MUX_ERR_INTERNAL, "CSPRNG failure");
    size_t hl = mux_ws_frame_header(hdr, op, 1, n, client ? key : NULL);
    size_t at = s->wsctrl.len;
    if (mux_buf_append(&s->wsctrl, hdr, hl, 0, s->mem) != 0 || mux_buf_append(&s->wsctrl, p, n, 0, s->mem) != 0) {
        s->wsctrl.len = at;
        return 0; /* a lost PONG is harmless */
    }
    if (client)
        mux_ws_mask(s->wsctrl.base + at + hl, n, key, 0);
    return 0;
}

static int on_ws_control(mux_session *s, unsigned op)
{
    switch (op) {
    case MUX_WS_OP_PING:
        if (mux_buf_size(&s->wsctrl) < 64 * 1024)
            return ws_send_control(s, MUX_WS_OP_PONG, s->ctl, s->ctllen);
        return 0;
    case MUX_WS_OP_PONG:
        return 0;
    case MUX_WS_OP_CLOSE: {
        uint16_t code = 1000;
        if (s->ctllen >= 2)
            code = (uint16_t)(s->ctl[0] << 8 | s->ctl[1]);
        if (code == 1005 || code == 1006 || code == 1015 || code < 1000)
            code = 1000;
        queue_ws_close(s, code);
        s->peer_closed = 1;
        s->reason = "the peer closed the WebSocket";
        return MUX_ERR_WS_CLOSED;
    }
    }
    return perr(s, MUX_ERR_WS_PROTOCOL, "unexpected control opcode");
}

/* Length of the record starting at |p| (|len| bytes there): > 0 once its length prefix is complete,
 * 0 while the prefix itself is cut, < 0 on an error. */
static ssize_t record_need(mux_session *s, const uint8_t *p, size_t len)
{
    uint64_t rlen;
    int n = mux_varint_get(p, len, &rlen);
    if (n == 0)
        return 0;
    if (n < 0)
        return perr(s, MUX_ERR_VARINT, "over-long record length varint");
    if (rlen == 0)
        return perr(s, MUX_ERR_FRAME_DECODE, "empty record");
    if (rlen > s->opt.max_message_size)
        return perr(s, MUX_ERR_FRAME_TOO_LARGE, "record runs past the end of the message");
    return (ssize_t)((uint64_t)n + rlen);
}

/*
 * The next |n| body bytes of an uncompressed message arriving in pieces (RXM_RECORDS). Every
 * record wholly inside them is processed where it lies, so DATA reaches on_data as a pointer into
 * the caller's input as it does for a message inside one input; only a record cut by the end of
 * the input is copied (into rxmsg) until its rest arrives. Records are processed in order, as
 * process_body does; a REFUSE or a fatal error ignores the rest of the message.
 */
static int stream_records(mux_session *s, const uint8_t *p, size_t n)
{
    while (n > 0 && s->rx_mode == RXM_RECORDS) {
        if (s->dead || s->hs == HS_REFUSED) {
            s->rx_mode = RXM_SKIP;
            break;
        }
        size_t have = mux_buf_size(&s->rxmsg);
        if (have > 0) { /* complete the record carried from the previous input */
            ssize_t need = record_need(s, s->rxmsg.base + s->rxmsg.pos, have);
            if (need < 0)
                return (int)need;
            size_t take = need == 0 ? 1 : (size_t)need - have; /* a cut prefix grows a byte at a time */
            if (take > n)
                take = n;
            if (mux_buf_append(&s->rxmsg, p, take, 0, s->mem) != 0)
                return perr(s, MUX_ERR_INTERNAL, "out of memory reassembling a record");
            p += take;
            n -= take;
            if (need > 0 && have + take == (size_t)need) {
                int rv = process_body(s, s->rxmsg.base + s->rxmsg.pos, (size_t)need);
                mux_buf_reset(&s->rxmsg);
                if (rv != 0)
                    return rv;
            }
            continue;
        }
        ssize_t need = record_need(s, p, n);
        if (need < 0)
            return (int)need;
        if (need == 0 || (size_t)need > n) { /* cut by the end of the input: carry it */
            if (mux_buf_append(&s->rxmsg, p, n, 0, s->mem) != 0)
                return perr(s, MUX_ERR_INTERNAL, "out of memory reassembling a record");
            break;
        }
        int rv = process_body(s, p, (size_t)need);
        if (rv != 0)
            return rv;
        p += need;
        n -= (size_t)need;
    }
    return 0;
}

/* The end of a message taken in pieces. */
static int end_pieced_message(mux_session *s)
{
    int rv = 0;
    size_t n = mux_buf_size(&s->rxmsg);
    s->rx_in_msg = 0;
    if (s->rx_mode == RXM_RECORDS) {
        if (n != 0 && !s->dead && s->hs != HS_REFUSED)
            rv = record_need(s, s->rxmsg.base + s->rxmsg.pos, n) == 0
                     ? perr(s, MUX_ERR_VARINT, "truncated record length varint")
                     : perr(s, MUX_ERR_FRAME_TOO_LARGE, "record runs past the end of the message");
    } else if (s->rx_mode != RXM_SKIP) {
        rv = process_message(s, n != 0 ? s->rxmsg.base + s->rxmsg.pos : NULL, n);
    }
    mux_buf_reset(&s->rxmsg);
    mux_buf_shrink(&s->rxmsg, 1u << 20, s->mem);
    return rv;
}

static int on_ws_piece(mux_session *s, const mux_ws_piece *pc)
{
    switch (pc->opcode) {
    case MUX_WS_OP_PING:
    case MUX_WS_OP_PONG:
    case MUX_WS_OP_CLOSE:
        if (pc->frame_start)
            s->ctllen = 0;
        if (pc->len > sizeof(s->ctl) - s->ctllen)
            return perr(s, MUX_ERR_WS_PROTOCOL, "control frame too long");
        if (pc->len != 0)
            memcpy(s->ctl + s->ctllen, pc->data, pc->len);
        s->ctllen += pc->len;
        return pc->frame_end ? on_ws_control(s, pc->opcode) : 0;
    case MUX_WS_OP_TEXT:
        return perr(s, MUX_ERR_WS_PROTOCOL, "text message on the tunnel");
    case MUX_WS_OP_BINARY:
    case MUX_WS_OP_CONT:
        if (pc->opcode == MUX_WS_OP_BINARY && pc->frame_start) {
            if (pc->frame_end && pc->fin && !s->rx_in_msg) {
                return process_message(s, pc->data, pc->len); /* zero-copy: whole message in the input */
            }
            mux_buf_reset(&s->rxmsg);
            s->rx_in_msg = 1;
            s->rx_mode = RXM_UNDECIDED;
            s->rx_msg_len = 0;
        } else if (!s->rx_in_msg) {
            return perr(s, MUX_ERR_WS_PROTOCOL, "continuation without a message");
        }
        if (pc->len != 0) {
            const uint8_t *d = pc->data;
            size_t n = pc->len;
            if (s->rx_msg_len + n > s->opt.max_message_size)
                return perr(s, MUX_ERR_MESSAGE_TOO_LARGE, "fragmented message over max_message_size");
            s->rx_msg_len += n;
            if (s->rx_mode == RXM_UNDECIDED) {
                int compressed = 1, reset;
                const char *why;
                if (mux_envelope_parse(d[0], &compressed, &reset, &why) == 0 && !compressed) {
                    s->rx_mode = RXM_RECORDS;
                    s->rx_hello_msg = 0;
                    s->stats.messages_in++;
                    d++;
                    n--;
                } else {
                    s->rx_mode = RXM_WHOLE;
                }
            }
            if (s->rx_mode == RXM_RECORDS) {
                int rv = stream_records(s, d, n);
                if (rv != 0)
                    return rv;
            } else if (s->rx_mode == RXM_WHOLE && mux_buf_append(&s->rxmsg, d, n, 0, s->mem) != 0) {
                return perr(s, MUX_ERR_INTERNAL, "out of memory reassembling a message");
            }
        }
        if (pc->frame_end && pc->fin)
            return end_pieced_message(s);
        return 0;
    }
    return perr(s, MUX_ERR_WS_PROTOCOL, "unknown opcode");
}

/*
 * Input after the session stopped processing (fatal error, or a REFUSE): the frames are dropped
 * unread; only the peer's WebSocket close is looked for, so the transport can close as soon as the
 * peer has acknowledged ours (lingering close, RFC 6455 §7.1.1, PROTOCOL.md §8). An oversized
 * frame is skipped; any other framing error leaves the transport to wait for EOF.
 */
static void linger_scan(mux_session *s, uint8_t *in, size_t len)
{
    size_t off = 0;
    while (off < len && !s->peer_closed && !s->linger_blind) {
        mux_ws_piece pc;
        int has = 0;
        ssize_t n = mux_ws_decoder_feed(&s->dec, in + off, len - off, &pc, &has, NULL);
        if (n < 0) {
            ssize_t hdr = n == MUX_ERR_MESSAGE_TOO_LARGE ? mux_ws_decoder_skip_oversized(&s->dec) : -1;
            if (hdr < 0)
                s->linger_blind = 1;
            else
                off += (size_t)hdr;
            continue;
        }
        off += (size_t)n;
        if (has && pc.opcode == MUX_WS_OP_CLOSE && pc.frame_end)
            s->peer_closed = 1;
        else if (!has && n == 0)
            break;
    }
}

/* Feeds transport bytes; see mux.h. */
ssize_t mux_session_recv(mux_session *s, uint8_t *in, size_t len, int64_t now_ms)
{
    if (s == NULL || (in == NULL && len != 0))
        return MUX_ERR_INVALID_ARGUMENT;
    s->now = now_ms;
    if (s->dead) {
        linger_scan(s, in, len);
        return s->fatal_rv != 0 && s->fatal_rv != MUX_ERR_WS_CLOSED ? s->fatal_rv : (ssize_t)len;
    }
    if (len == 0)
        return 0;
    if (s->hs == HS_REFUSED) {
        linger_scan(s, in, len);
        return (ssize_t)len; /* REFUSE sent or received: the connection only closes now */
    }
    s->last_recv_ms = now_ms;
    s->stats.bytes_in += len;
    size_t off = 0;
    while (off < len && !s->dead) {
        mux_ws_piece pc;
        int has = 0;
        const char *why = NULL;
        ssize_t n = mux_ws_decoder_feed(&s->dec, in + off, len - off, &pc, &has, &why);
        if (n < 0) {
            s->reason = why != NULL ? why : mux_strerror((int)n);
            int rv = die(s, (int)n, n != MUX_ERR_WS_PROTOCOL);
            ssize_t hdr = n == MUX_ERR_MESSAGE_TOO_LARGE ? mux_ws_decoder_skip_oversized(&s->dec) : -1;
            if (hdr < 0)
                s->linger_blind = 1;
            else
                linger_scan(s, in + off + (size_t)hdr, len - off - (size_t)hdr);
            return rv;
        }
        off += (size_t)n;
        if (has) {
            int rv = on_ws_piece(s, &pc);
            if (rv == MUX_ERR_WS_CLOSED) {
                unsigned code = s->goaway_recv ? s->goaway_recv_code : MUX_CODE_INTERNAL_ERROR;
                if (code == MUX_CODE_NO_ERROR)
                    code = MUX_CODE_INTERNAL_ERROR;
                s->dead = 1;
                s->fatal_rv = MUX_ERR_WS_CLOSED;
                kill_streams(s, code, "the peer closed the connection");
                return (ssize_t)len;
            }
            if (rv == MUX_ERR_REFUSED) {
                s->dead = 1;
                s->fatal_rv = MUX_ERR_REFUSED;
                queue_ws_close(s, 1000);
                linger_scan(s, in + off, len - off);
                return rv;
            }
            if (rv < 0) {
                if (rv == MUX_ERR_BAD_VERSION && s->hs == HS_REFUSED) {
                    queue_ws_close(s, 1000); /* a refusal like any other (PROTOCOL.md §8) */
                    rv = die(s, rv, 0);      /* REFUSE(UNSUPPORTED_VERSION) is queued instead of GOAWAY */
                } else
                    rv = die(s, mux_is_fatal(rv) ? rv : MUX_ERR_INTERNAL, rv != MUX_ERR_WS_PROTOCOL);
                linger_scan(s, in + off, len - off); /* the framing is intact: look for the peer's close */
                return rv;
            }
        } else if (n == 0) {
            break; /* cannot happen with len > 0; guards against a spin */
        }
    }
    if (s->dead && off < len)
        linger_scan(s, in + off, len - off);
    if (!s->dead && mux_buf_size(&s->ctrl) > CTRL_BACKLOG_LIMIT) {
        s->reason = "control backlog: the peer keeps sending but does not read";
        return die(s, MUX_ERR_PROTO, 1);
    }
    return (ssize_t)len;
}

/* ================================================================ send */

static int plan_push(mux_session *s, uint8_t *ptr, size_t off, size_t len)
{
    if (s->nplan == s->plancap) {
        size_t n = s->plancap == 0 ? 64 : s->plancap * 2;
        plan_ent *p = mux_mem_realloc(s->mem, s->plan, n * sizeof(*p));
        if (p == NULL)
            return MUX_ERR_NOMEM;
        s->plan = p;
        s->plancap = n;
    }
    s->plan[s->nplan].ptr = ptr;
    s->plan[s->nplan].off = off;
    s->plan[s->nplan].len = len;
    s->nplan++;
    return 0;
}

static int touch(mux_session *s, mux_stream *st)
{
    if (st->flags & MUX_SF_TOUCHED)
        return 0;
    if (s->ntouched == s->touchedcap) {
        size_t n = s->touchedcap == 0 ? 64 : s->touchedcap * 2;
        uint32_t *p = mux_mem_realloc(s->mem, s->touched, n * sizeof(*p));
        if (p == NULL)
            return MUX_ERR_NOMEM;
        s->touched = p;
        s->touchedcap = n;
    }
    s->touched[s->ntouched++] = st->id;
    st->flags |= MUX_SF_TOUCHED;
    return 0;
}

static int can_send_data(const mux_session *s)
{
    return !s->dead && s->hs == HS_ESTABLISHED && s->close_state == CLOSE_NONE &&
           (s->sendq_interactive.head != NULL || s->sendq.head != NULL);
}

/* The stream whose DATA goes next (PROTOCOL.md §6.4): interactive streams first, round-robin
 * among them, then bulk streams round-robin. */
static mux_stream *next_sender(const mux_session *s)
{
    return s->sendq_interactive.head != NULL ? s->sendq_interactive.head : s->sendq.head;
}

/* Closes the open scratch segment [*seg, scratch.len) into the plan. */
static int close_segment(mux_session *s, size_t *seg)
{
    int rv = 0;
    if (s->scratch.len > *seg)
        rv = plan_push(s, NULL, *seg, s->scratch.len - *seg);
    *seg = s->scratch.len;
    return rv;
}

/*
 * Builds one message into the plan: [ws header + envelope byte + control records + DATA prefixes]
 * in scratch, DATA payload pointing into the stream chunks (uncompressed), or the zstd output of
 * all of it (compressed). Uses at most |iov_room| plan entries. Returns 1 when a message was
 * built, 0 when there was nothing to send, or a negative fatal error. Adds its size to |*bytes|.
 */
/* Records whether |st|'s DATA compressed (|bad| 0) or not; a failed re-try doubles the wait
 * before the next one. */
static void note_compression(mux_stream *st, int bad)
{
    if (!bad)
        st->probe_shift = 0;
    else if (st->incompressible && st->probe_shift < INCOMPRESSIBLE_PROBE_MAX_SHIFT)
        st->probe_shift++;
    st->incompressible = (uint8_t)bad;
}

static int build_message(mux_session *s, size_t iov_room, size_t *bytes)
{
    int has_ctrl = mux_buf_size(&s->ctrl) > 0;
    if (!has_ctrl && !can_send_data(s))
        return 0;
    if (iov_room < 3)
        return 0;
    size_t limit = msg_limit(s);
    int compress = 0;
    if (s->ctrl_plain == 0 && compression_on(s) && s->opt.enable_zstd && !s->dead) {
        compress = 1;
        mux_stream *h = next_sender(s);
        if (h != NULL && can_send_data(s)) {
            /* a message led by DATA of a stream that did not compress lately goes plain, its
             * control records with it (they are small; compressing them would drag the DATA
             * through zstd) */
            if (h->incompressible && ++h->probe < (INCOMPRESSIBLE_PROBE << h->probe_shift)) {
                compress = 0;
            } else {
                /* a new stream, or a re-try: a flat byte histogram means zstd would only burn
                 * CPU (random, encrypted, already compressed); counts as a failed try */
                h->probe = 0;
                uint8_t *peek;
                size_t n = mux_txq_peek(&h->txq, &peek, SIZE_MAX);
                if (mux_looks_incompressible(peek, n)) {
                    compress = 0;
                    note_compression(h, 1);
                }
            }
        }
        if (compress)
            limit -= limit / 256 + 64; /* room for zstd's worst-case expansion */
    }
    size_t first = s->nplan;
    size_t start = s->scratch.len;
    if (mux_buf_reserve(&s->scratch, MUX_WS_MAX_HEADER + 1 + MUX_DATA_PREFIX_MAX, 0, s->mem) != 0)
        return perr(s, MUX_ERR_INTERNAL, "out of memory building a message");
    s->scratch.len += MUX_WS_MAX_HEADER + 1;    /* header (right-aligned later) + envelope byte */
    size_t seg = start + MUX_WS_MAX_HEADER - 0; /* first segment starts at the envelope byte (header added later) */
    mux_buf *out = compress ? &s->zin : &s->scratch;
    if (compress)
        mux_buf_reset(&s->zin);
    size_t body = 1;
    uint32_t msg_ids[16];
    size_t nmsg_ids = 0;

    /* control records first (PROTOCOL.md §6.4) */
    while (mux_buf_size(&s->ctrl) > 0) {
        const char *why;
        ssize_t rl = mux_envelope_record(s->ctrl.base + s->ctrl.pos, mux_buf_size(&s->ctrl), &why);
        if (rl < 0)
            return perr(s, MUX_ERR_INTERNAL, "corrupt control queue");
        if (body + (size_t)rl > limit && body > 1)
            break;
        if (mux_buf_append(out, s->ctrl.base + s->ctrl.pos, (size_t)rl, 0, s->mem) != 0)
            return perr(s, MUX_ERR_INTERNAL, "out of memory building a message");
        s->ctrl.pos += (size_t)rl;
        s->ctrl_plain = s->ctrl_plain > (size_t)rl ? s->ctrl_plain - (size_t)rl : 0;
        body += (size_t)rl;
        s->stats.frames_out++;
    }
    if (mux_buf_size(&s->ctrl) == 0) {
        mux_buf_reset(&s->ctrl);
        mux_buf_shrink(&s->ctrl, 64 * 1024, s->mem);
    }

    /* DATA round-robin within credit (PROTOCOL.md §6.4) */
    while (can_send_data(s) && mux_buf_size(&s->ctrl) == 0) {
        if (!compress && s->nplan - first + 3 > iov_room)
            break;
        if (body + MUX_DATA_PREFIX_MAX + 1 > limit)
            break;
        mux_stream *st = next_sender(s);
        size_t max = limit - body - MUX_DATA_PREFIX_MAX;
        if (max > s->opt.chunk_size)
            max = s->opt.chunk_size;
        if ((int64_t)max > st->tx_credit)
            max = st->tx_credit > 0 ? (size_t)st->tx_credit : 0;
        if ((int64_t)max > s->conn_tx_credit)
            max = s->conn_tx_credit > 0 ? (size_t)s->conn_tx_credit : 0;
        uint8_t *p = NULL;
        size_t n = st->txq.queued > 0 ? mux_txq_peek(&st->txq, &p, max) : 0;
        int fin = (st->flags & MUX_SF_FIN_QUEUED) && n == st->txq.queued;
        if (n == 0 && !fin) {
            unschedule(s, st);
            schedule(s, st);                                                          /* to a blocked list */
            if (st->list == MUX_LIST_SEND || st->list == MUX_LIST_SEND_INTERACTIVE) { /* cannot happen; avoid spinning */
                unschedule(s, st);
                break;
            }
            continue;
        }
        if (mux_buf_reserve(out, MUX_DATA_PREFIX_MAX + (compress ? n : 0), 0, s->mem) != 0 || touch(s, st) != 0)
            return perr(s, MUX_ERR_INTERNAL, "out of memory building a message");
        size_t pl = mux_frame_data_prefix(out->base + out->len, st->id, fin, n);
        out->len += pl;
        if (compress) {
            if (n != 0)
                memcpy(out->base + out->len, p, n);
            out->len += n;
            if (nmsg_ids < sizeof(msg_ids) / sizeof(msg_ids[0]))
                msg_ids[nmsg_ids++] = st->id;
        } else if (n != 0) {
            if (close_segment(s, &seg) != 0 || plan_push(s, p, 0, n) != 0)
                return perr(s, MUX_ERR_INTERNAL, "out of memory building a message");
        }
        mux_txq_take(&st->txq, n);
        /* a drained queue ends the burst: the stream's next write is interactive again */
        st->burst_sent = st->txq.queued == 0 ? 0 : st->burst_sent + n;
        st->bytes_sent += n;
        st->tx_credit -= (int64_t)n;
        s->conn_tx_credit -= (int64_t)n;
        s->stats.data_bytes_out += n;
        if (n != 0)
            s->last_data_ms = s->now;
        s->stats.frames_out++;
        body += pl + n;
        unschedule(s, st);
        if (fin) {
            st->flags &= ~MUX_SF_FIN_QUEUED;
            stream_local_end(s, st); /* may free |st| (its chunks go to the grave) */
        } else {
            schedule(s, st); /* back at the tail: round-robin */
        }
    }

    if (body == 1 && !has_ctrl) { /* nothing after all: roll back */
        s->scratch.len = start;
        s->nplan = first;
        return 0;
    }

    if (compress && body - 1 < COMPRESS_MIN_BODY) {
        /* small (control-only, a short head): plain, so it never touches the zstd contexts */
        if (mux_buf_append(&s->scratch, s->zin.base, s->zin.len, 0, s->mem) != 0)
            return perr(s, MUX_ERR_INTERNAL, "out of memory building a message");
        compress = 0;
        nmsg_ids = 0;
    }
    int reset = 0;
    size_t paylen;
    if (compress) {
        s->zend_pending = 0; /* busy again: the frame continues */
        if (s->ztx == NULL && mux_zstd_tx_new(&s->ztx, s->opt.zstd_level, s->opt.zstd_window_log, s->mem) != 0)
            return perr(s, MUX_ERR_INTERNAL, "cannot create the compressor");
        mux_iovec v = {s->zin.base, s->zin.len};
        size_t before = s->scratch.len;
        if (mux_zstd_tx_compress(s->ztx, &v, 1, &s->scratch, &reset, s->mem) != 0)
            return perr(s, MUX_ERR_INTERNAL, "compression failed");
        size_t clen = s->scratch.len - before;
        /* remember which streams do not compress (PROTOCOL.md §3.2: measure, skip) */
        int bad = clen * 10 > (body - 1) * 9;
        for (size_t i = 0; i < nmsg_ids; i++) {
            mux_stream *st = mux_stream_table_find(&s->streams, msg_ids[i]);
            if (st != NULL)
                note_compression(st, bad);
        }
        paylen = 1 + clen;
        mux_buf_shrink(&s->zin, 1u << 20, s->mem);
    } else {
        paylen = body;
    }
    if (close_segment(s, &seg) != 0)
        return perr(s, MUX_ERR_INTERNAL, "out of memory building a message");

    /* WebSocket header right-aligned before the envelope byte */
    uint8_t key[4], hdr[MUX_WS_MAX_HEADER];
    int client = !is_server(s);
    if (client && mux_ws_keygen_next(&s->keygen, key) != 0)
        return perr(s, MUX_ERR_INTERNAL, "CSPRNG failure");
    size_t hl = mux_ws_frame_header(hdr, MUX_WS_OP_BINARY, 1, paylen, client ? key : NULL);
    size_t hoff = start + MUX_WS_MAX_HEADER - hl;
    memcpy(s->scratch.base + hoff, hdr, hl);
    s->scratch.base[start + MUX_WS_MAX_HEADER] = mux_envelope_byte(compress, reset);
    s->plan[first].off = hoff;
    s->plan[first].len += hl;
    if (client) { /* mask in place: scratch bytes and the payload in the chunks (we own both) */
        uint64_t moff = 0;
        for (size_t i = first; i < s->nplan; i++) {
            plan_ent *e = &s->plan[i];
            uint8_t *b = e->ptr != NULL ? e->ptr : s->scratch.base + e->off;
            size_t l = e->len;
            if (i == first) {
                b += hl;
                l -= hl;
            }
            mux_ws_mask(b, l, key, moff);
            moff += l;
        }
    }
    if (compress)
        s->last_compress_ms = s->now;
    s->stats.messages_out++;
    *bytes += hl + paylen;
    return 1;
}

/*
 * PROTOCOL.md §3.2: ends the idle compressor's zstd frame in a message of its own (envelope C,
 * no R, ~3 bytes of zstd that decompress to nothing) and frees the context; the receiver frees its
 * decompressor when it sees the frame end. Returns 1 (message built), 0 (nothing to end) or < 0.
 */
static int build_frame_end(mux_session *s, size_t *bytes)
{
    s->zend_pending = 0;
    if (!mux_zstd_tx_live(s->ztx))
        return 0;
    size_t first = s->nplan;
    size_t start = s->scratch.len;
    if (mux_buf_reserve(&s->scratch, MUX_WS_MAX_HEADER + 1, 0, s->mem) != 0)
        return perr(s, MUX_ERR_INTERNAL, "out of memory building a message");
    s->scratch.len += MUX_WS_MAX_HEADER + 1;
    size_t before = s->scratch.len;
    if (mux_zstd_tx_end(s->ztx, &s->scratch, s->mem) != 0 || s->scratch.len == before) {
        /* the context is gone either way; the next compressed message carries R */
        s->scratch.len = start;
        return 0;
    }
    size_t paylen = 1 + (s->scratch.len - before);
    uint8_t key[4], hdr[MUX_WS_MAX_HEADER];
    int client = !is_server(s);
    if (client && mux_ws_keygen_next(&s->keygen, key) != 0)
        return perr(s, MUX_ERR_INTERNAL, "CSPRNG failure");
    size_t hl = mux_ws_frame_header(hdr, MUX_WS_OP_BINARY, 1, paylen, client ? key : NULL);
    size_t hoff = start + MUX_WS_MAX_HEADER - hl;
    memcpy(s->scratch.base + hoff, hdr, hl);
    s->scratch.base[start + MUX_WS_MAX_HEADER] = mux_envelope_byte(1, 0);
    if (client)
        mux_ws_mask(s->scratch.base + hoff + hl, paylen, key, 0);
    if (plan_push(s, NULL, hoff, hl + paylen) != 0) {
        s->nplan = first;
        return perr(s, MUX_ERR_INTERNAL, "out of memory building a message");
    }
    mux_buf_reset(&s->zin);
    mux_buf_shrink(&s->zin, 0, s->mem);
    s->stats.messages_out++;
    *bytes += hl + paylen;
    return 1;
}

/* Produces the next batch; see mux.h. */
ssize_t mux_session_send(mux_session *s, mux_iovec *iov, size_t iovcnt, int64_t now_ms)
{
    if (s == NULL || iov == NULL || iovcnt < 8)
        return MUX_ERR_INVALID_ARGUMENT;
    s->now = now_ms;
    if (s->batch_out || s->close_state >= CLOSE_IN_BATCH)
        return 0;
    if (!s->dead && (s->goaway_sent || s->goaway_recv) && s->active == 0 && s->hs == HS_ESTABLISHED)
        queue_ws_close(s, 1000); /* drained (PROTOCOL.md §8) */
    if (s->hs == HS_REFUSED && !s->dead && is_server(s))
        queue_ws_close(s, 1000);
    mux_buf_reset(&s->scratch);
    s->nplan = 0;
    s->batch_out = 1; /* from here on, chunks of streams freed while building go to the grave */
    size_t bytes = 0;
    size_t batch_limit = s->opt.send_batch_size; /* the first message is always built */
    if (mux_buf_size(&s->wsctrl) > 0) {
        if (mux_buf_append(&s->scratch, s->wsctrl.base + s->wsctrl.pos, mux_buf_size(&s->wsctrl), 0, s->mem) != 0 ||
            plan_push(s, NULL, 0, s->scratch.len) != 0) {
            s->batch_out = 0;
            return die(s, perr(s, MUX_ERR_INTERNAL, "out of memory"), 0);
        }
        bytes += s->scratch.len;
        mux_buf_reset(&s->wsctrl);
    }
    while (s->nplan + 4 <= iovcnt && bytes < batch_limit) {
        int rv = s->zend_pending && !s->dead ? build_frame_end(s, &bytes) : 0;
        if (rv >= 0)
            rv = build_message(s, iovcnt - s->nplan - 1, &bytes);
        if (rv < 0) {
            /* the batch may be half built: drop it and fail */
            s->nplan = 0;
            mux_buf_reset(&s->scratch);
            rv = die(s, rv, 0);
            s->batch_out = 0;
            mux_chunks_free(s->grave, &s->pool, s->mem);
            s->grave = NULL;
            return rv;
        }
        if (rv == 0)
            break;
    }
    if (s->close_state == CLOSE_QUEUED && mux_buf_size(&s->ctrl) == 0 && s->nplan + 1 <= iovcnt) {
        uint8_t payload[2] = {(uint8_t)(s->close_code >> 8), (uint8_t)s->close_code};
        uint8_t key[4], hdr[MUX_WS_MAX_HEADER];
        int client = !is_server(s);
        if (!client || mux_ws_keygen_next(&s->keygen, key) == 0) {
            size_t hl = mux_ws_frame_header(hdr, MUX_WS_OP_CLOSE, 1, 2, client ? key : NULL);
            if (client)
                mux_ws_mask(payload, 2, key, 0);
            size_t at = s->scratch.len;
            if (mux_buf_append(&s->scratch, hdr, hl, 0, s->mem) == 0 && mux_buf_append(&s->scratch, payload, 2, 0, s->mem) == 0 &&
                plan_push(s, NULL, at, hl + 2) == 0) {
                s->close_state = CLOSE_IN_BATCH;
                bytes += hl + 2;
            }
        }
    }
    if (s->nplan == 0) {
        s->batch_out = 0;
        mux_chunks_free(s->grave, &s->pool, s->mem);
        s->grave = NULL;
        return 0;
    }
    for (size_t i = 0; i < s->nplan; i++) {
        iov[i].base = s->plan[i].ptr != NULL ? s->plan[i].ptr : s->scratch.base + s->plan[i].off;
        iov[i].len = s->plan[i].len;
    }
    s->stats.bytes_out += bytes;
    return (ssize_t)s->nplan;
}

/* The outstanding batch was written: release chunks, fire on_writable. */
void mux_session_send_done(mux_session *s, int64_t now_ms)
{
    if (s == NULL || !s->batch_out)
        return;
    s->now = now_ms;
    s->batch_out = 0;
    if (s->close_state == CLOSE_IN_BATCH)
        s->close_state = CLOSE_SENT;
    mux_chunks_free(s->grave, &s->pool, s->mem);
    s->grave = NULL;
    if (s->nwakecap < s->ntouched) {
        uint32_t *p = mux_mem_realloc(s->mem, s->wake, s->ntouched * sizeof(*p));
        if (p != NULL) {
            s->wake = p;
            s->nwakecap = s->ntouched;
        }
    }
    int can_wake = !s->in_wake && s->cb.on_writable != NULL && s->nwakecap >= s->ntouched;
    size_t nwake = 0;
    for (size_t i = 0; i < s->ntouched; i++) {
        mux_stream *st = mux_stream_table_find(&s->streams, s->touched[i]);
        if (st == NULL)
            continue;
        st->flags &= ~MUX_SF_TOUCHED;
        mux_txq_release(&st->txq, &s->pool, s->mem);
        if (can_wake && (st->flags & MUX_SF_WANT_WRITABLE) && st->txq.held < s->opt.stream_send_buffer / 2) {
            st->flags &= ~MUX_SF_WANT_WRITABLE;
            s->wake[nwake++] = st->id;
        }
    }
    s->ntouched = 0;
    /* callbacks may build and even complete new batches: a nested send_done fires nothing */
    s->in_wake = 1;
    for (size_t i = 0; i < nwake && !s->dead; i++) {
        mux_stream *st = mux_stream_table_find(&s->streams, s->wake[i]);
        if (st != NULL)
            s->cb.on_writable(s, s->wake[i], st->user_data, s->ud);
    }
    s->in_wake = 0;
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
        if (queue_frame(s, &f, 1) != 0) {
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
    return can_send_data(s);
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

/* ================================================================ time */

/*
 * PROTOCOL.md §8: a busy tunnel measures its RTT with PINGs too (keepalive PINGs only go out when
 * nothing is received): while streams are open and DATA moved since the last PING, one PING every
 * mux_rtt_probe_interval (2 x smoothed RTT, 100 ms .. 1 s), the next one once its PONG came back
 * (or after 1 s if it was lost).
 */
static int probe_wanted(const mux_session *s)
{
    return s->active > 0 && s->last_data_ms >= 0 && s->last_data_ms >= s->last_ping_ms && s->goaway_recv == 0;
}

static int probe_due(const mux_session *s, int64_t now_ms)
{
    if (!probe_wanted(s))
        return 0;
    int64_t since = now_ms - s->last_ping_ms;
    return s->ping_outstanding ? since >= MUX_RTT_PROBE_MAX_MS : since >= mux_rtt_probe_interval(&s->rtt);
}

/* Earliest armed deadline, or -1. */
int64_t mux_session_next_timeout(const mux_session *s)
{
    if (s == NULL || s->dead || s->hs == HS_REFUSED)
        return -1;
    if (s->hs != HS_ESTABLISHED)
        return s->opt.handshake_timeout_ms != 0 ? s->created_ms + s->opt.handshake_timeout_ms : -1;
    int64_t t = -1;
    if (s->opt.ping_timeout_ms != 0)
        t = s->last_recv_ms + s->opt.ping_timeout_ms;
    if (s->opt.ping_interval_ms != 0) {
        int64_t base = s->last_recv_ms > s->last_ping_ms ? s->last_recv_ms : s->last_ping_ms;
        int64_t p = base + s->opt.ping_interval_ms;
        if (t < 0 || p < t)
            t = p;
    }
    if (probe_wanted(s)) {
        int64_t p = s->last_ping_ms + (s->ping_outstanding ? MUX_RTT_PROBE_MAX_MS : mux_rtt_probe_interval(&s->rtt));
        if (t < 0 || p < t)
            t = p;
    }
    if (s->zstd_idle_jit > 0 && mux_zstd_tx_live(s->ztx) && !s->zend_pending) {
        int64_t z = s->last_compress_ms + s->zstd_idle_jit;
        if (t < 0 || z < t)
            t = z;
    }
    return t;
}

/*
 * No stream left: the buffers sized by the last burst (batch scratch, message reassembly,
 * decompressed body, compressor input, spare send chunks) go back to the allocator so an idle
 * tunnel costs its session struct only. Runs on timer ticks (keepalive pace), never per message.
 */
static void trim_idle_buffers(mux_session *s)
{
    if (!s->batch_out) {
        mux_buf_reset(&s->scratch);
        mux_buf_shrink(&s->scratch, 0, s->mem);
        mux_mem_free(s->mem, s->plan);
        s->plan = NULL;
        s->plancap = 0;
        mux_chunk_pool_free(&s->pool, s->mem);
    }
    if (!s->rx_in_msg && mux_buf_size(&s->rxmsg) == 0)
        mux_buf_shrink(&s->rxmsg, 0, s->mem);
    if (mux_buf_size(&s->ctrl) == 0)
        mux_buf_shrink(&s->ctrl, 0, s->mem);
    mux_buf_reset(&s->dbuf);
    mux_buf_shrink(&s->dbuf, 0, s->mem);
    mux_buf_reset(&s->zin);
    mux_buf_shrink(&s->zin, 0, s->mem);
}

/* Grown receive windows of streams that stopped consuming go back to their initial size, so the
 * growth budget (initial_conn_window) serves the streams that are busy now (PROTOCOL.md §6.2) —
 * as fast as the credit they were already granted is used up (recharge_growth). */
static void shrink_idle_windows(mux_session *s, int64_t now_ms)
{
    if (s->rx_grown == 0)
        return;
    for (mux_stream *st = s->streams.all; st != NULL; st = st->anext)
        if (mux_rxwin_idle(&st->rx, now_ms, mux_rtt_smoothed(&s->rtt)) != 0)
            recharge_growth(s, st);
}

/* Runs due timers; see mux.h. */
int mux_session_handle_timeout(mux_session *s, int64_t now_ms)
{
    if (s == NULL)
        return MUX_ERR_INVALID_ARGUMENT;
    s->now = now_ms;
    if (s->dead || s->hs == HS_REFUSED)
        return 0;
    if (s->hs != HS_ESTABLISHED) {
        if (s->opt.handshake_timeout_ms != 0 && now_ms - s->created_ms >= s->opt.handshake_timeout_ms) {
            s->reason = "handshake timeout";
            s->peer_closed = 1; /* silent peer: nothing to drain (no lingering close) */
            return die(s, MUX_ERR_TIMEOUT, s->hs == HS_HELLO_PENDING);
        }
        return 0;
    }
    if (s->opt.ping_timeout_ms != 0 && now_ms - s->last_recv_ms >= s->opt.ping_timeout_ms) {
        s->reason = "keepalive timeout: the peer is silent";
        s->peer_closed = 1; /* silent peer: nothing to drain (no lingering close) */
        return die(s, MUX_ERR_TIMEOUT, 1);
    }
    if (s->opt.ping_interval_ms != 0 && now_ms - s->last_recv_ms >= s->opt.ping_interval_ms &&
        now_ms - s->last_ping_ms >= s->opt.ping_interval_ms)
        mux_session_ping(s, now_ms);
    else if (probe_due(s, now_ms))
        mux_session_ping(s, now_ms);
    /* DESIGN §3, PROTOCOL.md §3.2: an idle connection gives its compression context back (~1.6 MiB
     * at level 3): the next batch ends the zstd frame so the peer frees its decompressor too, and
     * the next compressed message starts a new frame with the RESET bit */
    if (s->zstd_idle_jit > 0 && mux_zstd_tx_live(s->ztx) && now_ms - s->last_compress_ms >= s->zstd_idle_jit)
        s->zend_pending = 1;
    shrink_idle_windows(s, now_ms);
    if (s->active == 0 && s->stubs == 0)
        trim_idle_buffers(s);
    return 0;
}

/* ================================================================ handshake */

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
    int rv = queue_frame(s, &f, 1);
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
    int rv = queue_frame(s, &f, 1);
    if (rv != 0)
        return MUX_ERR_NOMEM;
    s->hs = HS_REFUSED;
    return 0;
}

int mux_session_is_established(const mux_session *s)
{
    return s != NULL && s->hs == HS_ESTABLISHED;
}

uint32_t mux_session_capabilities(const mux_session *s)
{
    return s != NULL && s->hs == HS_ESTABLISHED ? s->caps : 0;
}

/* ================================================================ streams */

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
    mux_stream *st = stream_new(s, id);
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
        stream_local_end(s, st);
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
        stream_local_end(s, st);
    else
        schedule(s, st); /* data may have been waiting for the head */
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
    schedule(s, st);
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
    schedule(s, st);
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
    stream_reset(s, st, code, reason != NULL ? reason : "");
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
    recharge_growth(s, st);
    if (inc != 0 && st->state != MUX_SS_HALF_CLOSED_REMOTE) {
        int rv = queue_window(s, id, inc);
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

/* ================================================================ connection */

/* Queues GOAWAY: no new streams; want_close once the open ones finished. */
int mux_session_goaway(mux_session *s, unsigned code, const char *reason)
{
    if (s == NULL)
        return MUX_ERR_INVALID_ARGUMENT;
    if (s->dead || s->goaway_sent)
        return s->dead ? perr(s, MUX_ERR_INVALID_STATE, "session is closed") : 0;
    int rv = queue_simple(s, MUX_FRAME_GOAWAY, s->highest_id, code, reason != NULL ? reason : "");
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
    int rv = queue_ping(s, MUX_FRAME_PING, (uint64_t)now_ms);
    if (rv == 0) {
        s->ping_outstanding = 1;
        s->last_ping_ms = now_ms;
    }
    return rv;
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
        int cause = list_stall_cause(st->list);
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
        worst_insert(out, &got, n, &s->worst[i]);
    for (const mux_stream *st = s->streams.all; st != NULL; st = st->anext) {
        if (st->flags & MUX_SF_NOTIFIED)
            continue;
        mux_stream_stall x;
        stream_stall_of(st, now_ms > s->now ? now_ms : s->now, &x);
        worst_insert(out, &got, n, &x);
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
