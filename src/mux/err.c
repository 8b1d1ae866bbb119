/*
 * tunnelmux — error code descriptions and the MUX_ERR_* → wire code mapping (include/mux/err.h).
 */
#include "mux/err.h"

/* Stable one-line description of |rv|; "unknown error" for values not in mux_error. */
const char *mux_strerror(int rv)
{
    switch (rv) {
    case MUX_OK:
        return "success";
    case MUX_ERR_INVALID_ARGUMENT:
        return "invalid argument";
    case MUX_ERR_AGAIN:
        return "would block, try again";
    case MUX_ERR_NOMEM:
        return "out of memory";
    case MUX_ERR_STREAM_NOT_FOUND:
        return "stream not found";
    case MUX_ERR_INVALID_STATE:
        return "invalid state for this call";
    case MUX_ERR_TOO_MANY_STREAMS:
        return "too many concurrent streams";
    case MUX_ERR_GOAWAY:
        return "session is going away";
    case MUX_ERR_HEADER_LIMIT:
        return "header limit exceeded";
    case MUX_ERR_BAD_HANDSHAKE:
        return "invalid WebSocket handshake";
    case MUX_ERR_BUFFER_TOO_SMALL:
        return "buffer too small";
    case MUX_ERR_FATAL:
        return "fatal error";
    case MUX_ERR_PROTO:
        return "protocol violation";
    case MUX_ERR_WS_PROTOCOL:
        return "WebSocket protocol violation";
    case MUX_ERR_WS_CLOSED:
        return "WebSocket closed by peer";
    case MUX_ERR_BAD_VERSION:
        return "unsupported protocol version";
    case MUX_ERR_FRAME_DECODE:
        return "malformed frame";
    case MUX_ERR_VARINT:
        return "truncated or over-long varint";
    case MUX_ERR_FRAME_TOO_LARGE:
        return "frame too large";
    case MUX_ERR_MESSAGE_TOO_LARGE:
        return "message too large";
    case MUX_ERR_UNKNOWN_STREAM:
        return "frame for unknown stream";
    case MUX_ERR_STREAM_CLOSED:
        return "frame on closed stream";
    case MUX_ERR_DUPLICATE_OPEN:
        return "duplicate OPEN for stream";
    case MUX_ERR_FLOW_CONTROL:
        return "flow control violation";
    case MUX_ERR_WINDOW_OVERFLOW:
        return "flow control window overflow";
    case MUX_ERR_DECOMPRESS:
        return "decompression failed";
    case MUX_ERR_DECOMPRESS_LIMIT:
        return "decompressed message too large";
    case MUX_ERR_HANDSHAKE:
        return "tunnel handshake violation";
    case MUX_ERR_REFUSED:
        return "refused by server";
    case MUX_ERR_TIMEOUT:
        return "timeout";
    case MUX_ERR_PEER_GOAWAY_ERROR:
        return "peer sent GOAWAY with an error";
    case MUX_ERR_INTERNAL:
        return "internal error";
    default:
        return "unknown error";
    }
}

/* Static name of wire code |code| (docs/PROTOCOL.md §7); "UNKNOWN" for unassigned values. */
const char *mux_code_name(unsigned code)
{
    switch (code) {
    case MUX_CODE_NO_ERROR:
        return "NO_ERROR";
    case MUX_CODE_PROTOCOL_ERROR:
        return "PROTOCOL_ERROR";
    case MUX_CODE_INTERNAL_ERROR:
        return "INTERNAL_ERROR";
    case MUX_CODE_FLOW_CONTROL_ERROR:
        return "FLOW_CONTROL_ERROR";
    case MUX_CODE_STREAM_CLOSED:
        return "STREAM_CLOSED";
    case MUX_CODE_FRAME_SIZE_ERROR:
        return "FRAME_SIZE_ERROR";
    case MUX_CODE_REFUSED_STREAM:
        return "REFUSED_STREAM";
    case MUX_CODE_CANCEL:
        return "CANCEL";
    case MUX_CODE_COMPRESSION_ERROR:
        return "COMPRESSION_ERROR";
    case MUX_CODE_CONNECT_ERROR:
        return "CONNECT_ERROR";
    case MUX_CODE_ENHANCE_YOUR_CALM:
        return "ENHANCE_YOUR_CALM";
    case MUX_CODE_TIMEOUT:
        return "TIMEOUT";
    case MUX_CODE_UPSTREAM_ERROR:
        return "UPSTREAM_ERROR";
    case MUX_CODE_SHUTDOWN:
        return "SHUTDOWN";
    case MUX_CODE_HEADERS_TOO_LARGE:
        return "HEADERS_TOO_LARGE";
    case MUX_CODE_UNSUPPORTED_VERSION:
        return "UNSUPPORTED_VERSION";
    case MUX_CODE_AUTH_FAILED:
        return "AUTH_FAILED";
    case MUX_CODE_NAME_TAKEN:
        return "NAME_TAKEN";
    case MUX_CODE_TOO_MANY_CLIENTS:
        return "TOO_MANY_CLIENTS";
    case MUX_CODE_INVALID_NAME:
        return "INVALID_NAME";
    case MUX_CODE_RATE_LIMITED:
        return "RATE_LIMITED";
    default:
        return "UNKNOWN";
    }
}

/*
 * The wire code sent in GOAWAY for error |rv|. MUX_OK and errors that do not blame the peer
 * (WS_CLOSED, REFUSED, PEER_GOAWAY_ERROR) map to NO_ERROR; anything unknown to PROTOCOL_ERROR.
 */
unsigned mux_error_to_code(int rv)
{
    switch (rv) {
    case MUX_OK:
    case MUX_ERR_WS_CLOSED:
    case MUX_ERR_REFUSED:
    case MUX_ERR_PEER_GOAWAY_ERROR:
        return MUX_CODE_NO_ERROR;
    case MUX_ERR_NOMEM:
    case MUX_ERR_INTERNAL:
        return MUX_CODE_INTERNAL_ERROR;
    case MUX_ERR_HEADER_LIMIT:
        return MUX_CODE_HEADERS_TOO_LARGE;
    case MUX_ERR_TOO_MANY_STREAMS:
        return MUX_CODE_REFUSED_STREAM;
    case MUX_ERR_BAD_VERSION:
        return MUX_CODE_UNSUPPORTED_VERSION;
    case MUX_ERR_FRAME_TOO_LARGE:
    case MUX_ERR_MESSAGE_TOO_LARGE:
        return MUX_CODE_FRAME_SIZE_ERROR;
    case MUX_ERR_STREAM_CLOSED:
        return MUX_CODE_STREAM_CLOSED;
    case MUX_ERR_FLOW_CONTROL:
    case MUX_ERR_WINDOW_OVERFLOW:
        return MUX_CODE_FLOW_CONTROL_ERROR;
    case MUX_ERR_DECOMPRESS:
    case MUX_ERR_DECOMPRESS_LIMIT:
        return MUX_CODE_COMPRESSION_ERROR;
    case MUX_ERR_TIMEOUT:
        return MUX_CODE_TIMEOUT;
    case MUX_ERR_PROTO:
    case MUX_ERR_WS_PROTOCOL:
    case MUX_ERR_FRAME_DECODE:
    case MUX_ERR_VARINT:
    case MUX_ERR_UNKNOWN_STREAM:
    case MUX_ERR_DUPLICATE_OPEN:
    case MUX_ERR_HANDSHAKE:
    default:
        return MUX_CODE_PROTOCOL_ERROR;
    }
}
