/*
 * tunnelmux — RFC 6455 WebSocket framing and handshake helpers (sans-I/O).
 *
 * The tunnel's WebSocket framing is ours (docs/PROTOCOL.md §2; docs/ARCHITECTURE.md §7 has the
 * measurements): headers are built into small caller buffers so a message goes out as
 * [header, payload] iovecs without copying, payload is unmasked in place 8 bytes at a time, and
 * every length is checked before it is used. Nothing here allocates or does I/O.
 */
#ifndef MUX_WS_H
#define MUX_WS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

enum {
    MUX_WS_OP_CONT = 0x0,
    MUX_WS_OP_TEXT = 0x1,
    MUX_WS_OP_BINARY = 0x2,
    MUX_WS_OP_CLOSE = 0x8,
    MUX_WS_OP_PING = 0x9,
    MUX_WS_OP_PONG = 0xA,
};

#define MUX_WS_MAX_HEADER 14 /* 2 + 8 (64-bit length) + 4 (mask key) */
#define MUX_WS_MAX_CONTROL_PAYLOAD 125

/* ---------------------------------------------------------------- encoding */

/*
 * Writes a frame header for a payload of |len| bytes into |out| (at least MUX_WS_MAX_HEADER bytes).
 * |mask_key| is NULL for an unmasked (server) frame, else 4 bytes that the caller also passes to
 * mux_ws_mask() for the payload. Returns the header length (2..14). Does not take ownership.
 */
size_t mux_ws_frame_header(uint8_t *out, unsigned opcode, int fin, uint64_t len, const uint8_t *mask_key);

/*
 * XORs |n| bytes at |p| in place with |key|, as if |p| started at byte |offset| of the frame's
 * payload (so a payload can be (un)masked in pieces). AVX2 when the CPU has it, else 64 bits at a
 * time (src/mux/ws_mask.c).
 */
void mux_ws_mask(uint8_t *p, size_t n, const uint8_t key[4], uint64_t offset);

/* The same without vector instructions: the reference the tests compare mux_ws_mask() with. */
void mux_ws_mask_portable(uint8_t *p, size_t n, const uint8_t key[4], uint64_t offset);

/* A pool of CSPRNG bytes for mask keys (RAND_bytes refilled 4 KiB at a time). Embed and zero-init. */
typedef struct {
    uint8_t _pool[4096];
    size_t _pos; /* next unused byte; == sizeof(_pool) means empty (0-initialised: call _init) */
} mux_ws_keygen;

void mux_ws_keygen_init(mux_ws_keygen *g);
/* Fills |key| with 4 fresh random bytes. Returns 0, or MUX_ERR_INTERNAL when the CSPRNG fails. */
int mux_ws_keygen_next(mux_ws_keygen *g, uint8_t key[4]);

/* ---------------------------------------------------------------- decoding */

/* One call's worth of decoder output. Pointers point into the caller's input buffer. */
typedef struct {
    unsigned opcode;    /* opcode of the current frame (CONT for continuation frames) */
    int fin;            /* FIN bit of the current frame */
    uint64_t frame_len; /* whole payload length of the current frame */
    uint8_t *data;      /* next payload piece, already unmasked in place; NULL when len == 0 */
    size_t len;         /* length of that piece */
    int frame_start;    /* 1 on the first piece of a frame (always produced, even for len 0) */
    int frame_end;      /* 1 when this piece completes the frame */
} mux_ws_piece;

typedef struct {
    /* configuration: set before the first feed */
    int require_masked;     /* 1: frames must be masked (we are the server); 0: must be unmasked */
    uint64_t max_frame_len; /* frames announcing more payload are rejected before any is read */
    /* private state */
    int _state;
    uint8_t _hdr[MUX_WS_MAX_HEADER];
    size_t _hdrlen, _hdrneed;
    uint64_t _remain, _offset, _frame_len;
    uint8_t _key[4];
    unsigned _opcode;
    int _fin, _masked, _in_fragmented_msg;
    int _fail_rv;          /* the error that put the decoder in its failed state */
    size_t _oversized_hdr; /* MESSAGE_TOO_LARGE: bytes of the failing feed's input that were header */
} mux_ws_decoder;

/* Initialises |d| (zeroes the private state and sets the configuration). */
void mux_ws_decoder_init(mux_ws_decoder *d, int require_masked, uint64_t max_frame_len);

/*
 * Consumes bytes from |in| (at most |len|) and produces at most one piece into |*piece|, setting
 * |*has_piece| to 1 when it did. Unmasks payload in place (|in| is modified). Accepts input split
 * at any byte. Returns the number of bytes consumed (may be 0 only when |len| is 0 or a piece was
 * produced), or a negative error: MUX_ERR_WS_PROTOCOL (reserved bits, unknown opcode, bad masking,
 * fragmented/oversized control frame, non-minimal or 64-bit-MSB length, continuation out of
 * sequence), MUX_ERR_MESSAGE_TOO_LARGE (frame_len over max_frame_len). After an error the decoder
 * must not be fed again. |*reason| (may be NULL) receives a static description.
 */
ssize_t mux_ws_decoder_feed(mux_ws_decoder *d, uint8_t *in, size_t len, mux_ws_piece *piece, int *has_piece, const char **reason);

/*
 * After mux_ws_decoder_feed() failed with MUX_ERR_MESSAGE_TOO_LARGE, lets the decoder go on: the
 * oversized frame's payload is then handed out as pieces (for the caller to drop) and later frames
 * are decoded again. Used to find the peer's close frame while draining a connection we failed
 * (RFC 6455 §7.1.1, PROTOCOL.md §8). Returns how many bytes of the failing feed's input were
 * consumed (the frame header): feed again from there. MUX_ERR_INVALID_STATE after any other error.
 */
ssize_t mux_ws_decoder_skip_oversized(mux_ws_decoder *d);

/* ---------------------------------------------------------------- handshake helpers */

#define MUX_WS_KEY_LEN 24    /* base64 of 16 bytes */
#define MUX_WS_ACCEPT_LEN 28 /* base64 of a SHA-1 */

/* Writes a fresh random Sec-WebSocket-Key (24 chars + NUL) into |out|. 0 or MUX_ERR_INTERNAL. */
int mux_ws_make_key(char out[MUX_WS_KEY_LEN + 1]);

/* Computes Sec-WebSocket-Accept for |key| (|key_len| bytes) into |out| (28 chars + NUL). 0 or
 * MUX_ERR_BAD_HANDSHAKE when the key is not 24 base64 chars decoding to 16 bytes. */
int mux_ws_accept_key(const char *key, size_t key_len, char out[MUX_WS_ACCEPT_LEN + 1]);

/* 1 when |accept| (|accept_len| bytes) is the right Sec-WebSocket-Accept for |key|, else 0. */
int mux_ws_check_accept(const char *key, size_t key_len, const char *accept, size_t accept_len);

/*
 * Writes a client upgrade request for the tunnel into |buf|:
 *   GET |path| HTTP/1.1, Host, Upgrade: websocket, Connection: Upgrade, Sec-WebSocket-Key,
 *   Sec-WebSocket-Version: 13, Sec-WebSocket-Protocol: tunnelmux.v1, then |extra_headers|
 *   (already "Name: value\r\n"-formatted, may be NULL), then the blank line.
 * Returns the length written, or MUX_ERR_BUFFER_TOO_SMALL / MUX_ERR_INVALID_ARGUMENT (CR/LF in
 * host or path).
 */
ssize_t mux_ws_client_request(char *buf, size_t cap, const char *host, const char *path, const char *key,
                              const char *extra_headers);

/*
 * Parses the server's answer to mux_ws_client_request(). Returns the length of the response head
 * (bytes after it already belong to the WebSocket stream) when it is a valid 101 with Upgrade:
 * websocket, Connection: upgrade and the right Sec-WebSocket-Accept for |key|; MUX_ERR_AGAIN when
 * the head is not complete yet (and |len| < 16 KiB); MUX_ERR_BAD_HANDSHAKE otherwise, with
 * |*status| set to the HTTP status seen (0 if none) and |*reason| to a static description.
 */
ssize_t mux_ws_parse_response(const char *buf, size_t len, const char *key, int *status, const char **reason);

#define MUX_WS_SUBPROTOCOL "tunnelmux.v1"

#ifdef __cplusplus
}
#endif
#endif
