/*
 * tunnelmux — the private header of the mux session's files (include/mux/mux.h is the public one):
 * the internal types (send queues, receive windows, streams, the session struct) and the functions
 * the files share: session.c (engine, frame handlers), stream.c (stream table, send queues, stream
 * lifecycle), sched.c (send lists), ctrl_queue.c (control records), submit.c (public submit API),
 * tx_batch.c (batch builder), rx_message.c (receive path), timers.c, flow.c (credit accounting)
 * and envelope.c (envelope header byte, record boundaries). Types and declarations only: it is
 * no file's own header, so including it ties a file to no other .c (no import circles).
 *
 * Ownership: the session owns its streams (allocated in stream.c, freed by mux_stream_free or
 * mux_session_del), their chunk queues and every buffer here; the scheduling lists and the stream
 * table's chains only link streams (they borrow them). Frames passed to the mux_on_* handlers are
 * borrowed for the call.
 */
#ifndef MUX_INTERNAL_H
#define MUX_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "buf.h"
#include "compress_policy.h"
#include "frame_codec.h"
#include "mux/mux.h"
#include "mux/ws.h"
#include "rtt.h"
#include "zstd_codec.h"

/* ---------------------------------------------------------------- send queue (stream.c) */

/* One fixed-size piece of a stream's send queue. Bytes [0,rd) were taken by send batches, [rd,wr)
 * are queued. Chunks never move, so DATA payload can be sent from them without copying. */
typedef struct mux_chunk {
    struct mux_chunk *next;
    uint32_t cap; /* bytes of data[] */
    uint32_t wr;  /* end of written bytes */
    uint32_t rd;  /* end of bytes taken by mux_session_send */
    uint8_t data[];
} mux_chunk;

/* A list of chunks with a session-wide pool of free ones. */
typedef struct {
    mux_chunk *head, *tail;
    size_t queued; /* written, not yet taken */
    size_t held;   /* written, not yet released (queued + taken in the outstanding batch) */
} mux_txq;

typedef struct {
    mux_chunk *free; /* spare chunks, all of |cap| bytes */
    size_t nfree, maxfree;
    uint32_t cap;
} mux_chunk_pool;

/* Appends up to |len| bytes (bounded by |room|); returns bytes appended or MUX_ERR_NOMEM. */
ssize_t mux_txq_write(mux_txq *q, mux_chunk_pool *pool, const uint8_t *p, size_t len, const mux_mem *mem);
/* Contiguous queued bytes at the read position (pointer into a chunk), at most |max|. */
size_t mux_txq_peek(const mux_txq *q, uint8_t **p, size_t max);
/* Marks |n| bytes (<= the last peek) as taken. */
void mux_txq_take(mux_txq *q, size_t n);
/* Releases fully taken chunks to |pool| (no batch may reference them any more). */
void mux_txq_release(mux_txq *q, mux_chunk_pool *pool, const mux_mem *mem);
/* Moves all chunks to |grave| (a singly linked list freed later) and empties |q|. */
void mux_txq_bury(mux_txq *q, mux_chunk **grave);
/* Frees a chunk list to the pool. */
void mux_chunks_free(mux_chunk *c, mux_chunk_pool *pool, const mux_mem *mem);
void mux_chunk_pool_free(mux_chunk_pool *pool, const mux_mem *mem);

/* ---------------------------------------------------------------- flow control (flow.c) */

/* Receive side of one window (stream or connection), quicly maxsender style. */
typedef struct {
    int64_t limit;    /* total payload bytes the peer may have sent (granted) */
    int64_t received; /* total payload bytes received */
    int64_t consumed; /* total payload bytes the application returned */
    uint32_t window;  /* current window size (grows with auto-tuning) */
    int64_t epoch_ms; /* auto-tuning: start of the current window's worth of consumption */
    int64_t epoch_consumed;
    uint32_t base;       /* the initial window: what an idle window shrinks back to */
    int64_t last_ms;     /* last consumption */
    int64_t queue_ms;    /* set by the caller before consuming: the path's queueing delay now (smoothed
                            minus minimum RTT), and ... */
    int64_t queue_ok_ms; /* ... how much of it the window may cause (mux_rxwin_queue_allowance) */
} mux_rxwin;

/* Queueing delay a grown window may cause on the path (PROTOCOL.md §6.2): windows grow only while
 * the smoothed RTT stays within max(MUX_RXWIN_QUEUE_MS, min RTT / 4) of the minimum, and shrink by
 * an eighth a window while it is more than four times that above (bytes in flight beyond bandwidth
 * x RTT only wait in a queue, where an interactive response waits behind them). The margins
 * tolerate the jitter of busy hosts, which delays PONGs without any queue on the path. */
#define MUX_RXWIN_QUEUE_MS 5

/* A grown window unused this long (or 8 RTTs, if longer) shrinks back to its initial size. */
#define MUX_RXWIN_IDLE_MS 1000

void mux_rxwin_init(mux_rxwin *w, uint32_t window, int64_t now_ms);
/* Accounts |len| received bytes. MUX_ERR_FLOW_CONTROL when the peer exceeded its credit. */
int mux_rxwin_recv(mux_rxwin *w, size_t len);
/*
 * Accounts |n| consumed bytes (clamped to what is unconsumed) and returns the increment to
 * announce now (0 = not yet: below a quarter of the window). With |rtt_ms| > 0 and
 * |max_window| > window, doubles the window when a whole window was consumed within 2 RTT.
 */
uint32_t mux_rxwin_consume(mux_rxwin *w, size_t n, int64_t now_ms, int64_t rtt_ms, uint32_t max_window);
/* How much queueing delay a path with minimum RTT |min_rtt_ms| may show while windows grow:
 * max(MUX_RXWIN_QUEUE_MS, min RTT / 4). */
int64_t mux_rxwin_queue_allowance(int64_t min_rtt_ms);
/* Shrinks a grown window unused for MUX_RXWIN_IDLE_MS (or 8 x |rtt_ms|) back to its initial size;
 * returns the bytes it gave back (0 = unchanged). */
uint32_t mux_rxwin_idle(mux_rxwin *w, int64_t now_ms, int64_t rtt_ms);
/* Adds a WINDOW increment to send credit. MUX_ERR_WINDOW_OVERFLOW for 0 or past 2^31-1. */
int mux_txcredit_add(int64_t *credit, uint32_t increment);

/* ---------------------------------------------------------------- envelope (envelope.c) */

#define MUX_ENV_VERSION 0x10
#define MUX_ENV_COMPRESSED 0x01
#define MUX_ENV_RESET 0x02

/* Checks an envelope header byte. Returns 0 (flags set), MUX_ERR_BAD_VERSION or MUX_ERR_PROTO. */
int mux_envelope_parse(uint8_t hdr, int *compressed, int *reset, const char **reason);
/* Builds the header byte. */
uint8_t mux_envelope_byte(int compressed, int reset);
/*
 * Finds the record starting at |p| (|len| bytes left in the body): returns its total size
 * (varint + frame) or MUX_ERR_VARINT / MUX_ERR_FRAME_TOO_LARGE (runs past the body).
 */
ssize_t mux_envelope_record(const uint8_t *p, size_t len, const char **reason);

/* ---------------------------------------------------------------- streams (stream.c) */

/* PROTOCOL.md §5.2. Every change goes through mux_stream_set_state() (stream.c), which checks the
 * transition against its table and keeps the session's counters (active, stubs, opened/closed). */
typedef enum {
    MUX_SS_IDLE,               /* allocated, not yet in the table: counted nowhere */
    MUX_SS_OPEN,               /* both directions open */
    MUX_SS_HALF_CLOSED_LOCAL,  /* our end was sent, the peer still sends */
    MUX_SS_HALF_CLOSED_REMOTE, /* the peer's end arrived, we still send */
    MUX_SS_CLOSING,            /* we sent CLOSE: discard DATA until the peer's fin/CLOSE (a stub, counted in stubs) */
    MUX_SS_CLOSED,             /* out of the table, being freed: counted nowhere */
} mux_stream_state;

/* Stream flag bits (mux_stream.flags). */
enum {
    MUX_SF_UPGRADE_REQ = 0x01,   /* request head had MUX_HEAD_UPGRADE */
    MUX_SF_RAW = 0x02,           /* 101 seen: raw bytes both ways */
    MUX_SF_HEAD_FINAL = 0x04,    /* final response head sent (client) / received (server) */
    MUX_SF_FIN_QUEUED = 0x08,    /* end_stream called: send DATA fin after the queue */
    MUX_SF_WANT_WRITABLE = 0x10, /* write() was refused/short: fire on_writable when room */
    MUX_SF_NOTIFIED = 0x20,      /* on_stream_close already fired (CLOSING stub) */
    MUX_SF_TOUCHED = 0x40,       /* referenced by the outstanding batch */
};

/* Which scheduling list a stream is in, i.e. why it is or is not sending (haproxy H2_SF_BLK_*
 * style: each "blocked because" value names the list it implies). Kept by sched.c. */
typedef enum {
    MUX_LIST_NONE = 0,         /* in no list: nothing to send, or CLOSING */
    MUX_LIST_SEND,             /* in sendq: bulk, has data and credit */
    MUX_LIST_SEND_INTERACTIVE, /* in sendq_interactive: has data and credit, and sent little since its
                                  queue was last empty: served before bulk (PROTOCOL.md §6.4) */
    MUX_LIST_BLK_CONN,         /* in blk_conn: has data and stream credit, blocked because the
                                  connection credit is used up (woken by WINDOW on stream 0) */
    MUX_LIST_BLK_STREAM        /* in no list: blocked because its own credit is used up (rescheduled
                                  by WINDOW on the stream) */
} mux_sched_list;

/* A stream is interactive while it sent less than this since its send queue was last empty
 * (heads, small bodies, WebSocket messages); past it, bulk (PROTOCOL.md §6.4). */
#define MUX_INTERACTIVE_BYTES (64 * 1024)

typedef struct mux_stream {
    uint32_t id;
    mux_stream_state state;
    unsigned flags; /* MUX_SF_* */
    void *user_data;
    struct mux_stream *hnext;            /* hash chain */
    struct mux_stream *aprev, *anext;    /* all streams */
    struct mux_stream *lprev, *lnext;    /* scheduling list */
    mux_sched_list list;                 /* which list, and why (sched.c) */
    int64_t blocked_since;               /* when it entered its current list (blocked or ready) */
    uint64_t stall_ms[MUX_STALL_CAUSES]; /* time with data to send, by cause (mux_stall_cause) */
    mux_txq txq;
    int64_t tx_credit;   /* credit granted by the peer minus payload sent */
    uint64_t burst_sent; /* DATA payload sent since the send queue was last empty (interactive vs bulk) */
    uint64_t bytes_sent; /* DATA payload sent */
    int64_t opened_ms;
    mux_rxwin rx;
    uint64_t rx_charged;         /* its share of the session's rx_grown (recharge_growth) */
    mux_compress_probe compress; /* whether its DATA compressed lately (compress_policy.h) */
} mux_stream;

typedef struct {
    mux_stream *head, *tail;
} mux_slist;

typedef struct {
    mux_stream **buckets;
    size_t nbuckets; /* power of two */
    size_t count;
    mux_stream *all; /* head of the all-streams list */
} mux_stream_table;

int mux_stream_table_init(mux_stream_table *t, const mux_mem *mem);
void mux_stream_table_free(mux_stream_table *t, const mux_mem *mem);
mux_stream *mux_stream_table_find(const mux_stream_table *t, uint32_t id);
/* Inserts |st| (id set). Returns 0 or MUX_ERR_NOMEM (grows the bucket array). */
int mux_stream_table_insert(mux_stream_table *t, mux_stream *st, const mux_mem *mem);
void mux_stream_table_remove(mux_stream_table *t, mux_stream *st);

/* ---------------------------------------------------------------- the session (session.c and its nouns) */

/* The session handshake (PROTOCOL.md §4.1-4.2). */
typedef enum {
    HS_WAIT_HELLO,    /* server: nothing received yet */
    HS_HELLO_PENDING, /* server: HELLO received, on_hello has not decided yet */
    HS_WAIT_WELCOME,  /* client: HELLO queued, waiting for WELCOME/REFUSE */
    HS_ESTABLISHED,   /* WELCOME sent (server) / received (client) */
    HS_REFUSED,       /* REFUSE sent (server) / received (client): the connection only closes now */
} mux_handshake_state;

/* Our WebSocket close frame (RFC 6455 §5.5.1). */
typedef enum {
    CLOSE_NONE,     /* not wanted yet */
    CLOSE_QUEUED,   /* wanted (close_code set): goes out after the pending control records */
    CLOSE_IN_BATCH, /* in the outstanding batch: nothing more is sent */
    CLOSE_SENT,     /* the batch with it was written */
} mux_ws_close_state;

/* A message arriving in pieces: before its first byte, an uncompressed one processed record by
 * record where the records lie in the input, anything else (compressed, or a bad header byte
 * that process_message will report) reassembled whole, or the rest ignored (REFUSE / death). */
typedef enum {
    RXM_UNDECIDED, /* its first payload byte (the envelope header) has not arrived */
    RXM_RECORDS,   /* uncompressed: records processed where they lie, a cut one carried in rxmsg */
    RXM_WHOLE,     /* compressed or a bad header byte: reassembled in rxmsg, processed at its end */
    RXM_SKIP,      /* REFUSE or a fatal error: the rest is ignored */
} mux_rx_mode;

#define CTRL_FLOOD_LIMIT (1u << 20)    /* drop PONGs when this much control is unsent */
#define CTRL_BACKLOG_LIMIT (16u << 20) /* fail a peer that makes us queue more control than this */
#define RX_ZSTD_WINDOW_LOG_MAX 20      /* PROTOCOL.md §3.2: senders never exceed 20 */

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
    mux_handshake_state hs;
    unsigned rx_hello_msg : 1; /* flag: the message being processed carried the HELLO (server); the
                                  rest of it was sent before WELCOME, so only PING, PONG, GOAWAY may
                                  follow (PROTOCOL.md §4.1) */
    uint32_t caps;
    uint32_t peer_stream_window, peer_conn_window, peer_max_message;

    /* receive */
    mux_ws_decoder dec;
    mux_buf rxmsg;          /* a message not wholly inside one recv() input: all of it (RXM_WHOLE) or the
                               one record cut by the end of the input (RXM_RECORDS) */
    unsigned rx_in_msg : 1; /* flag: a data message is arriving in pieces */
    mux_rx_mode rx_mode;    /* how that message is taken */
    size_t rx_msg_len;      /* its payload bytes so far */
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
    mux_ws_close_state close_state;
    uint16_t close_code; /* of our close frame, once CLOSE_QUEUED */
    mux_buf scratch;     /* headers and records of the outstanding batch */
    mux_buf zin;         /* plain records of a message to compress */
    plan_ent *plan;
    size_t nplan, plancap;
    unsigned batch_out : 1; /* flag: a batch was returned by send and not yet send_done: the chunks
                               and scratch it points into must stay (freed chunks go to |grave|) */
    uint32_t *touched;      /* stream ids with DATA in the outstanding batch */
    size_t ntouched, touchedcap;
    uint32_t *wake; /* ids to fire on_writable for, in send_done */
    size_t nwakecap;
    unsigned in_wake : 1; /* flag: send_done is firing on_writable (a nested send_done fires nothing) */
    mux_chunk *grave;     /* chunks of freed streams still referenced by the batch */
    mux_chunk_pool pool;
    mux_ws_keygen keygen;

    /* lifecycle */
    unsigned dead : 1;         /* flag: fatal error or WebSocket close: no more processing */
    unsigned peer_closed : 1;  /* flag: nothing more is expected from the peer: its WebSocket close
                                  frame arrived, or it was declared dead (handshake or keepalive timeout) */
    unsigned linger_blind : 1; /* flag: after our failure the peer's framing cannot be followed: no
                                  close frame will be recognised (the transport waits for EOF instead) */
    unsigned goaway_sent : 1;  /* flag: our GOAWAY is queued or sent: no new streams either way */
    unsigned goaway_recv : 1;  /* flag: the peer's GOAWAY arrived (goaway_recv_code, _last) */
    int fatal_rv;              /* the fatal error recv returns again */
    uint32_t goaway_sent_last; /* last_stream_id of our GOAWAY: newer ids are ignored (PROTOCOL.md §4.8) */
    unsigned goaway_recv_code;
    uint32_t goaway_recv_last;

    /* timers */
    int64_t created_ms, last_recv_ms, last_ping_ms;
    int64_t last_compress_ms;      /* the compressor is released after zstd_idle_jit ms without use */
    int64_t zstd_idle_jit;         /* opt.zstd_idle_ms stretched by a per-session random 0..50% so tunnels
                                      registered together do not free (or re-create) together */
    unsigned zend_pending : 1;     /* flag: idle: the next batch ends the zstd frame and frees the compressor */
    unsigned ping_outstanding : 1; /* flag: our PING's PONG has not come back (one RTT sample at a time) */
    mux_rtt rtt;                   /* from PONGs: keepalive PINGs when idle, probe PINGs while DATA flows */
    int64_t last_data_ms;          /* DATA last sent or received: the tunnel is busy, PING to measure RTT */

    mux_stream_stall worst[MUX_WORST_FINISHED]; /* finished streams that stalled longest, worst first */
    size_t nworst;

    mux_session_stats stats;
    const char *reason;
    char reason_buf[160];
};

/* ---------------------------------------------------------------- small helpers shared by the session files */

static inline int perr(mux_session *s, int rv, const char *reason)
{
    s->reason = reason;
    return rv;
}

static inline int perrf(mux_session *s, int rv, const char *fmt, uint32_t a)
{
    snprintf(s->reason_buf, sizeof(s->reason_buf), fmt, a);
    s->reason = s->reason_buf;
    return rv;
}

static inline int is_server(const mux_session *s)
{
    return s->opt.role == MUX_ROLE_SERVER;
}

static inline int compression_on(const mux_session *s)
{
    return s->hs == HS_ESTABLISHED && (s->caps & MUX_CAP_ZSTD) != 0;
}

static inline size_t msg_limit(const mux_session *s)
{
    size_t l = s->opt.send_message_size;
    if (s->peer_max_message != 0 && l > s->peer_max_message)
        l = s->peer_max_message;
    if (l < 256)
        l = 256;
    return l;
}

static inline mux_iovec iov_str(const char *str)
{
    mux_iovec v = {(uint8_t *)(uintptr_t)str, str != NULL ? strlen(str) : 0};
    return v;
}

/* ---------------------------------------------------------------- scheduler (sched.c) */

/* Appends |st| (in no list) at the tail of |l| / unlinks it. The lists borrow their streams. */
void mux_slist_push(mux_slist *l, mux_stream *st);
void mux_slist_remove(mux_slist *l, mux_stream *st);
/* The stall cause (mux_stall_cause) a stream in list |list| (MUX_LIST_*) accrues; MUX_STALL_CAUSES: none. */
int mux_list_stall_cause(mux_sched_list list);
/* The name of |list| for logs ("none", "send", "send_interactive", "blk_conn", "blk_stream"). */
const char *mux_sched_list_to_str(mux_sched_list list);
/* Takes |st| out of its list, adding the time spent there to its and the session's stall counters. */
void mux_unschedule(mux_session *s, mux_stream *st);
/* Puts |st| in the list matching why it can or cannot send (no-op when already there). */
void mux_schedule(mux_session *s, mux_stream *st);
/* Connection credit arrived: moves the streams blocked on it back to a ready list. */
void mux_wake_conn_blocked(mux_session *s);
/* Inserts |x| (copied) into |out| (|*n| entries, at most |cap|, worst first) if it is among the worst. */
void mux_worst_insert(mux_stream_stall *out, size_t *n, size_t cap, const mux_stream_stall *x);
/* Fills |x| with |st|'s stall record as of |now| (the current list's time included). */
void mux_stream_stall_of(const mux_stream *st, int64_t now, mux_stream_stall *x);
/* The stream whose DATA goes next (PROTOCOL.md §6.4): interactive streams first, round-robin
 * among them, then bulk streams round-robin; NULL when none is ready. It stays in its list.
 * (Inline, like the next two: they run per DATA frame.) */
static inline mux_stream *mux_next_sender(const mux_session *s)
{
    return s->sendq_interactive.head != NULL ? s->sendq_interactive.head : s->sendq.head;
}

/* 1 when DATA may go out now: established, not closing, and a stream in a ready list. */
static inline int mux_can_send_data(const mux_session *s)
{
    return !s->dead && s->hs == HS_ESTABLISHED && s->close_state == CLOSE_NONE &&
           (s->sendq_interactive.head != NULL || s->sendq.head != NULL);
}

/* The control queue (mux_queue_*, mux_conn_consume): ctrl_queue.h. */

/* ---------------------------------------------------------------- fatal errors (session.c) */

/* Fatal error |rv| (reason in s->reason): GOAWAY when |goaway|, WebSocket close, every stream
 * closed, no more processing. Returns |rv| (or the first fatal error). */
int mux_die(mux_session *s, int rv, int goaway);

/* ---------------------------------------------------------------- stream lifecycle (stream.c) */

/* Allocates stream |id| (OPEN, counted active) and inserts it; NULL when out of memory. */
mux_stream *mux_stream_new(mux_session *s, uint32_t id);
/* A CLOSING stub absorbing the peer's frames for a stream we refused (PROTOCOL.md §5.4). */
int mux_stream_stub(mux_session *s, uint32_t id);
/* Forgets |st| (freed here). Fires on_stream_close (the last callback) unless it already fired. */
void mux_stream_free(mux_session *s, mux_stream *st, unsigned code, const char *reason, int by_peer);
/* Aborts |st| from our side: CLOSE(code) queued, on_stream_close fires; a CLOSING stub may stay. */
void mux_stream_reset(mux_session *s, mux_stream *st, unsigned code, const char *reason);
/* Our direction of |st| ended (may free |st|). */
void mux_stream_local_end(mux_session *s, mux_stream *st);
/* The peer's direction of |id| ended: fires on_end (may free the stream). */
void mux_stream_remote_end(mux_session *s, uint32_t id);
/* The session ends: every stream gets on_stream_close (PROTOCOL.md §8). */
void mux_kill_streams(mux_session *s, unsigned code, const char *reason);
/* Moves |st| to |to|: asserts the transition is allowed (its predecessor is right) and keeps the
 * session's counters: OPEN/HALF_CLOSED_* count as active (entering: streams_opened; leaving:
 * streams_closed), CLOSING as a stub. */
void mux_stream_set_state(mux_session *s, mux_stream *st, mux_stream_state to);
/* The name of |state| for logs and test messages ("open", "half_closed_local", ...). */
const char *mux_stream_state_to_str(mux_stream_state state);
/*
 * A callback about stream |id| (on_head, on_data, on_end) returned non-zero: looks the stream up
 * again (the callback may have reset or closed it) and aborts it with CANCEL and |reason|, unless
 * it is gone or already CLOSING. |fin|: the frame also ended the peer's direction.
 */
void mux_stream_callback_failed(mux_session *s, uint32_t id, int fin, const char *reason);
/* Re-computes what |st|'s window growth takes from the session's budget (rx_grown). */
void mux_recharge_growth(mux_session *s, mux_stream *st);

/* ---------------------------------------------------------------- frame handlers (session.c) */

/* Names of the session-level states, for logs and test messages. */
const char *mux_handshake_state_to_str(mux_handshake_state hs);
const char *mux_ws_close_state_to_str(mux_ws_close_state cs);
const char *mux_rx_mode_to_str(mux_rx_mode mode);

/* Dispatches one decoded frame (|f| borrowed): one switch per frame type, role checks inside.
 * 0, or a negative error with the reason set (the caller makes it fatal). */
int mux_on_frame(mux_session *s, const mux_frame *f);
/* CLIENT: a request head opens f->stream_id. |hdr_limit|: the head was over our header limits
 * (only the id was decoded). */
int mux_on_request(mux_session *s, const mux_frame *f, int hdr_limit);
/* SERVER: the response head of one of our streams; |hdr_limit| as for mux_on_request. */
int mux_on_response(mux_session *s, const mux_frame *f, int hdr_limit);

#endif
