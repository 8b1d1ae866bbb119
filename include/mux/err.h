/*
 * tunnelmux — error codes of the mux library.
 *
 * Functions return 0 (or a byte/iovec count) on success and one of the negative MUX_ERR_* values
 * below on failure. Codes below MUX_ERR_FATAL mean the connection cannot continue: the session
 * has queued a GOAWAY with the matching wire code (when it still can) and mux_session_want_close()
 * turns true. mux_strerror() gives a stable one-line description; the session additionally keeps
 * a specific reason (mux_session_last_error_reason()).
 *
 * Wire codes (MUX_CODE_*) are what goes into CLOSE / GOAWAY / REFUSE frames: docs/PROTOCOL.md §7.
 */
#ifndef MUX_ERR_H
#define MUX_ERR_H

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    MUX_OK = 0,
    /* --- non-fatal: the call failed, the session is fine --- */
    MUX_ERR_INVALID_ARGUMENT = -501, /* bad parameter from the caller */
    MUX_ERR_AGAIN = -502,            /* would block: no room now, wait for on_writable / retry */
    MUX_ERR_NOMEM = -503,            /* allocation failed (the session stays usable) */
    MUX_ERR_STREAM_NOT_FOUND = -504, /* no such stream (already closed or never opened) */
    MUX_ERR_INVALID_STATE = -505,    /* the call is not allowed in this stream/session state */
    MUX_ERR_TOO_MANY_STREAMS = -506, /* concurrent stream limit reached */
    MUX_ERR_GOAWAY = -507,           /* the session is going away: no new streams */
    MUX_ERR_HEADER_LIMIT = -508,     /* a head exceeds header count/bytes limits */
    MUX_ERR_BAD_HANDSHAKE = -509,    /* WebSocket handshake invalid (handshake helpers) */
    MUX_ERR_BUFFER_TOO_SMALL = -510, /* output buffer too small (handshake helpers) */

    /* --- fatal: the connection must be closed --- */
    MUX_ERR_FATAL = -900,
    MUX_ERR_PROTO = -901,             /* generic protocol violation by the peer */
    MUX_ERR_WS_PROTOCOL = -902,       /* RFC 6455 violation (reserved bits, bad opcode, masking...) */
    MUX_ERR_WS_CLOSED = -903,         /* the peer sent a WebSocket close frame */
    MUX_ERR_BAD_VERSION = -904,       /* envelope or HELLO version not supported */
    MUX_ERR_FRAME_DECODE = -905,      /* a frame record is not valid protobuf / misses fields */
    MUX_ERR_VARINT = -906,            /* truncated or over-long varint */
    MUX_ERR_FRAME_TOO_LARGE = -907,   /* DATA payload over chunk size, or record over the message */
    MUX_ERR_MESSAGE_TOO_LARGE = -908, /* WebSocket message over max_message_size */
    MUX_ERR_UNKNOWN_STREAM = -909,    /* frame for a stream id that was never opened */
    MUX_ERR_STREAM_CLOSED = -910,     /* DATA/OPEN on a stream whose peer side already ended */
    MUX_ERR_DUPLICATE_OPEN = -911,    /* OPEN for a stream id already used */
    MUX_ERR_FLOW_CONTROL = -912,      /* peer sent more than its credit */
    MUX_ERR_WINDOW_OVERFLOW = -913,   /* WINDOW would push credit past 2^31-1, or increment 0 */
    MUX_ERR_DECOMPRESS = -914,        /* zstd stream corrupt or compression not negotiated */
    MUX_ERR_DECOMPRESS_LIMIT = -915,  /* decompressed message over the cap (a bomb) */
    MUX_ERR_HANDSHAKE = -916,         /* HELLO/WELCOME sequence violated */
    MUX_ERR_REFUSED = -917,           /* the server refused our HELLO (client role) */
    MUX_ERR_TIMEOUT = -918,           /* keepalive or idle timeout */
    MUX_ERR_PEER_GOAWAY_ERROR = -919, /* peer sent GOAWAY with an error code */
    MUX_ERR_INTERNAL = -920,          /* allocation failure where the state cannot be kept */
} mux_error;

/* Wire codes (uint32 on the wire). Stream/connection codes mirror HTTP/2's. */
enum {
    MUX_CODE_NO_ERROR = 0,
    MUX_CODE_PROTOCOL_ERROR = 1,
    MUX_CODE_INTERNAL_ERROR = 2,
    MUX_CODE_FLOW_CONTROL_ERROR = 3,
    MUX_CODE_STREAM_CLOSED = 4,
    MUX_CODE_FRAME_SIZE_ERROR = 5,
    MUX_CODE_REFUSED_STREAM = 6,
    MUX_CODE_CANCEL = 7,
    MUX_CODE_COMPRESSION_ERROR = 8,
    MUX_CODE_CONNECT_ERROR = 9,      /* the local service could not be reached */
    MUX_CODE_ENHANCE_YOUR_CALM = 10, /* a limit was exceeded */
    MUX_CODE_TIMEOUT = 11,
    MUX_CODE_UPSTREAM_ERROR = 12, /* the local service failed mid-response */
    MUX_CODE_SHUTDOWN = 13,       /* graceful shutdown */
    MUX_CODE_HEADERS_TOO_LARGE = 14,
    /* REFUSE codes */
    MUX_CODE_UNSUPPORTED_VERSION = 20,
    MUX_CODE_AUTH_FAILED = 21,
    MUX_CODE_NAME_TAKEN = 22,
    MUX_CODE_TOO_MANY_CLIENTS = 23,
    MUX_CODE_INVALID_NAME = 24,
    MUX_CODE_RATE_LIMITED = 25,
};

/* 1 when |rv| is a fatal (connection-level) error. */
static inline int mux_is_fatal(int rv)
{
    return rv <= MUX_ERR_FATAL;
}

/* Static description of a MUX_ERR_* value ("unknown error" for others). Never NULL. */
const char *mux_strerror(int rv);

/* Static name of a wire code ("PROTOCOL_ERROR", ...; "UNKNOWN" for others). Never NULL. */
const char *mux_code_name(unsigned code);

/* The wire code that a fatal MUX_ERR_* maps to in GOAWAY (PROTOCOL_ERROR for unknown ones). */
unsigned mux_error_to_code(int rv);

#ifdef __cplusplus
}
#endif
#endif
