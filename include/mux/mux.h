/*
 * tunnelmux — the sans-I/O tunnel session (docs/PROTOCOL.md).
 *
 * A mux_session is one end of one tunnel WebSocket, after the HTTP upgrade. It owns the
 * WebSocket framing, the envelope (batch of frames per message, optional zstd), the stream table,
 * the per-stream state machines, credit-based flow control, the send scheduler and the keepalive
 * timers. It does no I/O and reads no clock: the caller feeds it the bytes read from the socket
 * (mux_session_recv), writes out what it produces (mux_session_send / mux_session_send_done), and
 * passes the current time in milliseconds from any monotonic clock.
 *
 * Roles: the SERVER session accepts a HELLO, opens streams (odd ids 1, 3, 5, ...) carrying public
 * requests, and receives response heads. The CLIENT session sends HELLO at creation, receives
 * OPENs (requests) and answers each with mux_session_respond().
 *
 * Threading: none. A session is used from one thread. Callbacks run inside recv/send/
 * handle_timeout and inside the submit calls only where stated; a callback may call any
 * mux_session_* function on the same session except mux_session_del.
 */
#ifndef MUX_MUX_H
#define MUX_MUX_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "mux/err.h"

#ifdef __cplusplus
extern "C" {
#endif

#define MUX_PROTOCOL_VERSION 1
#define MUX_CAP_ZSTD 0x1u
#define MUX_CAP_CONTINUE_RELAY 0x2u /* Expect: 100-continue is decided by the local service (PROTOCOL.md §9.3) */

/* Compatible with struct iovec and h2o_iovec_t in layout ({base, len}). */
typedef struct {
    uint8_t *base;
    size_t len;
} mux_iovec;

/* Allocator (nghttp2_mem style) so tests can inject failures. NULL = malloc family. */
typedef struct {
    void *user_data;
    void *(*malloc)(size_t size, void *user_data);
    void (*free)(void *ptr, void *user_data);
    void *(*calloc)(size_t nmemb, size_t size, void *user_data);
    void *(*realloc)(void *ptr, size_t size, void *user_data);
} mux_mem;

typedef enum { MUX_ROLE_SERVER = 0, MUX_ROLE_CLIENT = 1 } mux_role;

/* Flags of a head (OPEN frame). */
enum {
    MUX_HEAD_END_STREAM = 0x1, /* no DATA follows in this direction */
    MUX_HEAD_UPGRADE = 0x2,    /* request: the user asked for an Upgrade (WebSocket pass-through) */
};

typedef struct {
    mux_iovec name;
    mux_iovec value;
} mux_header;

/*
 * A request head (server -> client) or response head (client -> server). All pointers are
 * borrowed: in callbacks they are valid only during the callback; when submitting, the session
 * copies what it needs before returning.
 */
typedef struct {
    uint32_t flags; /* MUX_HEAD_* */
    /* request */
    mux_iovec method, scheme, authority, path;
    mux_iovec remote_addr; /* "ip:port" of the public user, may be empty */
    /* response */
    unsigned status; /* 100..599 in a response head; 0 in a request head */
    mux_iovec reason;
    /* response, optional (PROTOCOL.md §9.4): the client's local connection queue for this stream */
    int has_local_queue;          /* 1: the two fields below are sent / were received */
    uint32_t local_queue_wait_ms; /* ms the stream waited for a connection to the local service */
    uint32_t local_queue_length;  /* streams still waiting for one when this head was sent */
    const mux_header *headers;
    size_t nheaders;
} mux_head;

/* HELLO as received by the server (strings NUL-terminated, valid during the callback). */
typedef struct {
    uint32_t version;
    const char *client_id;
    const char *auth_token; /* "" when absent */
    uint32_t capabilities;
    const char *software; /* "" when absent */
} mux_hello_info;

/* WELCOME as received by the client. */
typedef struct {
    uint32_t version;
    uint32_t capabilities; /* agreed */
    uint32_t ping_interval_ms;
    uint32_t ping_timeout_ms; /* 0 when not announced (servers before protocol revision 2026-12) */
    const char *public_url;   /* "" when absent */
} mux_welcome_info;

typedef struct mux_session mux_session;

/*
 * Event callbacks; any may be NULL. |stream_user_data| is what was attached to the stream with
 * mux_session_open_stream() / mux_session_set_stream_user_data() (NULL otherwise).
 * A callback returning non-zero where it returns int resets the stream with CANCEL (or, for
 * on_hello, refuses with INTERNAL_ERROR); it never aborts the connection.
 */
typedef struct {
    /* SERVER: a HELLO arrived. Decide synchronously or later with mux_session_accept() or
     * mux_session_refuse(). Until then no stream can be opened. */
    int (*on_hello)(mux_session *s, const mux_hello_info *hello, void *user_data);
    /* CLIENT: the server accepted us; streams may arrive from now on. */
    void (*on_welcome)(mux_session *s, const mux_welcome_info *welcome, void *user_data);
    /* CLIENT: the server refused us (the session then wants to close). */
    void (*on_refuse)(mux_session *s, unsigned code, const char *reason, uint32_t retry_after_ms, void *user_data);

    /* CLIENT: a new stream with its request head. SERVER: the response head of stream |id|.
     * A response head with status 101 switches the stream to raw mode: DATA carries the upgraded
     * connection's bytes both ways. A 1xx other than 101 is informational; a final head follows. */
    int (*on_head)(mux_session *s, uint32_t id, const mux_head *head, void *stream_user_data, void *user_data);
    /* Body bytes of stream |id| (|data| valid during the callback only; copy or consume it now).
     * The bytes count against the receive windows until mux_session_consume() returns them. */
    int (*on_data)(mux_session *s, uint32_t id, const uint8_t *data, size_t len, void *stream_user_data, void *user_data);
    /* The peer finished its direction of stream |id| (DATA fin or head with END_STREAM). */
    int (*on_end)(mux_session *s, uint32_t id, void *stream_user_data, void *user_data);
    /* The stream is gone: both directions ended (code NO_ERROR) or it was reset by either side, or
     * the session died. The last callback for |id|; free |stream_user_data| here. |reason| may be
     * "" but never NULL. |by_peer| is 1 when the peer sent the CLOSE. */
    void (*on_stream_close)(mux_session *s, uint32_t id, unsigned code, const char *reason, int by_peer, void *stream_user_data,
                            void *user_data);
    /* mux_session_write() on |id| would accept bytes again (the send buffer fell below half). */
    void (*on_writable)(mux_session *s, uint32_t id, void *stream_user_data, void *user_data);
    /* The peer sent GOAWAY: no new streams above |last_stream_id| will be processed. */
    void (*on_goaway)(mux_session *s, uint32_t last_stream_id, unsigned code, const char *reason, void *user_data);
    /* A PONG answered our PING; |rtt_ms| measured with the times passed in. */
    void (*on_rtt)(mux_session *s, int64_t rtt_ms, void *user_data);
} mux_session_callbacks;

/* Session options (nghttp2_option style). Start from mux_session_options_default(). */
typedef struct {
    mux_role role;
    uint32_t initial_stream_window;  /* credit we grant per stream (default 1 MiB; the wire default is 256 KiB).
                                        Streams x this is what unread streams can make us hold. */
    uint32_t initial_conn_window;    /* credit we grant per connection (default 16 MiB), returned on
                                        receipt; also what auto-tuning may add to the stream windows
                                        of all streams together */
    uint32_t max_stream_window;      /* auto-tuning cap per stream (default 16 MiB; = initial disables) */
    uint32_t max_message_size;       /* largest WebSocket message accepted, after decompression too
                                        (MAX_MESSAGE_SIZE, default 10 MiB) */
    uint32_t send_message_size;      /* target size of the messages we build (default 256 KiB, capped
                                        by the peer's max_message_size) */
    uint32_t send_batch_size;        /* mux_session_send() stops adding messages once a batch holds
                                        this much (default 256 KiB, at least one message): what waits
                                        below the scheduler while a batch is written, so a new
                                        interactive response can overtake queued bulk (PROTOCOL.md §6.4) */
    uint32_t chunk_size;             /* largest DATA payload we send (CHUNK_SIZE, default 8 KiB).
                                        Receivers accept any DATA record that fits in a message
                                        (PROTOCOL.md §5), so peers need not agree on it. */
    uint32_t stream_send_buffer;     /* bytes mux_session_write() buffers per stream (default 256 KiB) */
    uint32_t max_concurrent_streams; /* default 100 */
    uint32_t max_header_count;       /* per head (default 100) */
    uint32_t max_header_bytes;       /* sum of name+value lengths per head (default 64 KiB) */
    int enable_zstd;                 /* offer/accept compression (default 1) */
    int enable_continue_relay;       /* offer/accept MUX_CAP_CONTINUE_RELAY (default 1) */
    int zstd_level;                  /* default 3 */
    int zstd_window_log;             /* window log of what we compress (default 17, max 20); we accept up to 20 */
    uint32_t zstd_idle_ms;           /* end the zstd frame and free the compression context after this
                                        long without compressing (default 15000, stretched per session
                                        by up to half again at random; 0 = keep it while connected) */
    uint32_t ping_interval_ms;       /* send PING when nothing was received for this long (default 15000; 0 = off) */
    uint32_t ping_timeout_ms;        /* declare the peer dead after this much silence (default 45000; 0 = off) */
    uint32_t handshake_timeout_ms;   /* HELLO/WELCOME must complete within this (default 10000) */
    /* CLIENT only: what goes into HELLO (copied at creation). */
    const char *client_id;
    const char *auth_token;
    const char *software;
} mux_session_options;

void mux_session_options_default(mux_session_options *opt, mux_role role);

/*
 * Creates a session. |callbacks| and |opt| are copied (strings in |opt| too); |mem| may be NULL
 * and must outlive the session; |user_data| is passed to every callback. A CLIENT session queues
 * its HELLO immediately. |now_ms| starts the handshake and keepalive clocks.
 * Returns 0 and sets |*out|, or MUX_ERR_NOMEM / MUX_ERR_INVALID_ARGUMENT.
 */
int mux_session_new(mux_session **out, const mux_session_options *opt, const mux_session_callbacks *callbacks, const mux_mem *mem,
                    void *user_data, int64_t now_ms);

/* Frees the session and everything it owns. Calls no callbacks (on_stream_close is not called
 * for streams still open: the caller owns their user data and knows which are open). */
void mux_session_del(mux_session *s);

/* ---------------------------------------------------------------- bytes in */

/*
 * Feeds |len| bytes read from the transport. The session may modify |in| (unmasking in place) and
 * does not keep a pointer to it after returning (partial messages are copied internally). Events
 * fire from inside. Returns |len| (all consumed) or a negative error; on a fatal error the session
 * has queued a WebSocket close (and a GOAWAY when the tunnel protocol was reached) and
 * mux_session_want_close() is true — flush mux_session_send() and close the transport.
 */
ssize_t mux_session_recv(mux_session *s, uint8_t *in, size_t len, int64_t now_ms);

/* ---------------------------------------------------------------- bytes out */

/*
 * Produces the next bytes to write to the transport as up to |iovcnt| iovecs (at least 8 needed;
 * 64+ recommended). Returns the number of iovecs filled (0 = nothing to send now) or a negative
 * fatal error. The memory is owned by the session and stays valid and unchanged until
 * mux_session_send_done(); until then further calls return 0. Write them all, in order, then call
 * mux_session_send_done(). Control frames go first; DATA is taken from streams round-robin
 * within their credit, streams that sent little since their queue was last empty before bulk
 * ones; frames are batched into messages of up to send_message_size, messages into a batch of
 * about send_batch_size.
 */
ssize_t mux_session_send(mux_session *s, mux_iovec *iov, size_t iovcnt, int64_t now_ms);

/* The bytes of the last mux_session_send() were written; their buffers may be reused. May fire
 * on_writable. */
void mux_session_send_done(mux_session *s, int64_t now_ms);

/* 1 when mux_session_send() would produce something (there is data with credit, or control). */
int mux_session_want_write(const mux_session *s);

/* 1 when the session is finished: after a fatal error, a REFUSE, a WebSocket close, or a GOAWAY
 * with no streams left. Flush what mux_session_send() still gives, then close the transport. */
int mux_session_want_close(const mux_session *s);

/* ---------------------------------------------------------------- time */

/* Absolute time (ms, the caller's clock) of the next timer, or -1 when none is armed. */
int64_t mux_session_next_timeout(const mux_session *s);

/* Runs due timers: queues PINGs, detects a silent peer (returns MUX_ERR_TIMEOUT, fatal) and an
 * unfinished handshake. Returns 0 or a fatal error. */
int mux_session_handle_timeout(mux_session *s, int64_t now_ms);

/* ---------------------------------------------------------------- handshake */

/* SERVER: accept the pending HELLO; queues WELCOME. |public_url| may be NULL. */
int mux_session_accept(mux_session *s, const char *public_url);

/* SERVER: refuse the pending HELLO with a REFUSE code (MUX_CODE_*), then want_close. */
int mux_session_refuse(mux_session *s, unsigned code, const char *reason, uint32_t retry_after_ms);

/* 1 once WELCOME was sent (server) or received (client). */
int mux_session_is_established(const mux_session *s);

/* The negotiated capabilities (MUX_CAP_*), valid once established. */
uint32_t mux_session_capabilities(const mux_session *s);

/* ---------------------------------------------------------------- streams */

/*
 * SERVER: opens a stream carrying request |head| (copied). |stream_user_data| is attached to it.
 * Returns the new stream id (> 0) or MUX_ERR_TOO_MANY_STREAMS / MUX_ERR_GOAWAY /
 * MUX_ERR_INVALID_STATE (not established) / MUX_ERR_HEADER_LIMIT / MUX_ERR_NOMEM.
 * With MUX_HEAD_END_STREAM in head->flags no body follows.
 */
int32_t mux_session_open_stream(mux_session *s, const mux_head *head, void *stream_user_data);

/* CLIENT: sends the response head for stream |id| (copied). status 101 switches to raw mode. */
int mux_session_respond(mux_session *s, uint32_t id, const mux_head *head);

/*
 * Queues up to |len| body bytes of |data| (copied; the caller keeps ownership) on stream |id|.
 * Returns the number of bytes accepted (0 < n <= len), or MUX_ERR_AGAIN when the stream's send
 * buffer is full (on_writable fires later), MUX_ERR_STREAM_NOT_FOUND, MUX_ERR_INVALID_STATE (our
 * direction already ended, or no head sent yet on a client stream).
 */
ssize_t mux_session_write(mux_session *s, uint32_t id, const uint8_t *data, size_t len);

/* Bytes mux_session_write() would accept now on |id| (0 if none or unknown). */
size_t mux_session_write_room(const mux_session *s, uint32_t id);

/* Asks for on_writable on |id| once its send buffer falls below half, as after a write that was
 * not wholly accepted: for a writer that stops reading its source before the buffer is full (so
 * that its next read fits). The wake comes when queued bytes of |id| are sent, so call it only
 * while |id| has bytes queued (room < stream_send_buffer). 0 or MUX_ERR_STREAM_NOT_FOUND. */
int mux_session_want_writable(mux_session *s, uint32_t id);

/* Ends our direction of |id| after what is already queued (DATA fin). */
int mux_session_end_stream(mux_session *s, uint32_t id);

/* Aborts |id| both ways with CLOSE(|code|, |reason|). on_stream_close fires (by_peer 0) before
 * this returns. Queued unsent data is dropped. */
int mux_session_reset_stream(mux_session *s, uint32_t id, unsigned code, const char *reason);

/* Returns credit: |n| bytes of |id| delivered by on_data have left the application's hands.
 * Queues WINDOW frames (stream and connection) when enough credit accumulated. Unknown ids are
 * ignored (returns 0) so late calls after a close are harmless. */
int mux_session_consume(mux_session *s, uint32_t id, size_t n);

/* Attach/read user data of a stream (CLIENT attaches to the streams it receives). */
int mux_session_set_stream_user_data(mux_session *s, uint32_t id, void *stream_user_data);
void *mux_session_get_stream_user_data(const mux_session *s, uint32_t id);

/* ---------------------------------------------------------------- connection */

/* Queues a GOAWAY: no new streams after those already open; want_close turns true once the
 * open streams have finished. code MUX_CODE_NO_ERROR or MUX_CODE_SHUTDOWN for graceful. */
int mux_session_goaway(mux_session *s, unsigned code, const char *reason);

/* Queues a PING now (keepalive does this by itself). */
int mux_session_ping(mux_session *s, int64_t now_ms);

/* Why a stream with data to send did not send (per-stream stall accounting). */
typedef enum {
    MUX_STALL_CREDIT = 0, /* no stream credit: the peer's reader of this stream is slow */
    MUX_STALL_PEER,       /* stream credit, but no connection credit: the peer as a whole */
    MUX_STALL_SOCKET,     /* credit, waiting to be taken into a batch: the transport (batches
                             ahead, a socket that does not take them, other streams first) */
    MUX_STALL_CAUSES
} mux_stall_cause;

/* Stall times of one stream (mux_session_worst_streams). */
typedef struct {
    uint32_t id;
    int open; /* 1: still open; 0: finished (among the worst finished lately) */
    uint64_t stall_ms[MUX_STALL_CAUSES];
    uint64_t bytes_sent; /* DATA payload sent */
    int64_t age_ms;      /* open: since it opened; finished: how long it lived */
} mux_stream_stall;

/* Counters for logs and metrics. */
typedef struct {
    uint64_t bytes_in, bytes_out; /* transport bytes */
    uint64_t messages_in, messages_out;
    uint64_t frames_in, frames_out;
    uint64_t data_bytes_in, data_bytes_out; /* DATA payload */
    uint64_t streams_opened, streams_closed;
    uint32_t streams_active;
    uint64_t flow_blocked_ms;            /* sum of time streams spent with data and no credit
                                            (stall_ms[MUX_STALL_CREDIT] + stall_ms[MUX_STALL_PEER]) */
    uint64_t stall_ms[MUX_STALL_CAUSES]; /* sum over streams, open ones included, by cause */
    int64_t last_rtt_ms;                 /* -1 until the first PONG */
    int64_t min_rtt_ms;                  /* smallest RTT of the last 5..10 s; -1 until the first PONG */
    int64_t srtt_ms;                     /* smoothed RTT (RFC 6298); -1 until the first PONG */
    int64_t rttvar_ms;                   /* its variation (RFC 6298 RTTVAR); -1 until the first PONG */
    uint32_t zstd_contexts;              /* zstd contexts allocated now: 0, 1 (compressor or decompressor) or 2 */
} mux_session_stats;

void mux_session_get_stats(const mux_session *s, mux_session_stats *out);

/*
 * Fills up to |n| entries of |out| with the streams that stalled longest (sum of causes, open
 * streams' current stall counted up to |now_ms|), worst first: the open streams and the worst
 * MUX_WORST_FINISHED that finished on this session. Returns the number filled.
 */
#define MUX_WORST_FINISHED 8
size_t mux_session_worst_streams(const mux_session *s, int64_t now_ms, mux_stream_stall *out, size_t n);

/*
 * 1 once nothing more is expected from the peer: its WebSocket close frame has arrived, or it was
 * declared dead (handshake or keepalive timeout: a silent peer has nothing to drain); else 0.
 * A session that wants to close keeps
 * taking input (mux_session_recv drops it unread) only to notice this: after writing everything
 * mux_session_send produced, the transport shuts down its write side and reads until this turns
 * 1, EOF, or its own byte and time bounds (lingering close, PROTOCOL.md §8), so a peer that was
 * still sending reads our GOAWAY and close code instead of a connection reset.
 */
int mux_session_peer_closed(const mux_session *s);

/* Reason string of the last error this session returned or detected (static or owned by the
 * session; valid until the next call). "" if none. */
const char *mux_session_last_error_reason(const mux_session *s);

#ifdef __cplusplus
}
#endif
#endif
