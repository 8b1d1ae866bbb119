/*
 * tunnelmux — libFuzzer target for the RFC 6455 frame decoder (src/mux/ws_frame.c) and the
 * handshake response parser (src/mux/ws_handshake.c).
 *
 * Input layout: byte 0 = flags (bit 0: max_frame_len small (4096) or large; bit 7: also parse the
 * input as a handshake response), bytes 1..4 = chunk sizes (0 = rest of the input, else 1..255),
 * cycled to split the remaining bytes into feed calls. The payload is decoded in both roles
 * (require_masked 0 and 1) and the piece invariants are checked; a violation traps.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mux/err.h"
#include "mux/ws.h"

#define CHECK(cond)                                                                                                                \
    do {                                                                                                                           \
        if (!(cond))                                                                                                               \
            __builtin_trap();                                                                                                      \
    } while (0)

static void run_decoder(int require_masked, uint64_t max, const uint8_t *chunks, uint8_t *in, size_t len)
{
    mux_ws_decoder d;
    mux_ws_decoder_init(&d, require_masked, max);
    size_t pos = 0, ci = 0;
    int open = 0;           /* a frame is in progress */
    uint64_t frame_len = 0; /* its announced length */
    uint64_t got = 0;       /* payload bytes seen so far */
    unsigned opcode = 0;
    int in_fragmented = 0; /* a TEXT/BINARY without FIN was seen and not finished */
    while (pos < len) {
        size_t chunk = chunks[ci++ & 3];
        if (chunk == 0 || chunk > len - pos)
            chunk = len - pos;
        size_t off = 0;
        while (off < chunk) {
            mux_ws_piece piece;
            int has = 0;
            const char *why = NULL;
            uint8_t *p = in + pos + off;
            size_t avail = chunk - off;
            ssize_t c = mux_ws_decoder_feed(&d, p, avail, &piece, &has, &why);
            if (c < 0) {
                CHECK(c == MUX_ERR_WS_PROTOCOL || c == MUX_ERR_MESSAGE_TOO_LARGE);
                CHECK(why != NULL && has == 0);
                /* stays failed */
                CHECK(mux_ws_decoder_feed(&d, p, avail, &piece, &has, &why) < 0 && has == 0);
                return;
            }
            CHECK(c > 0 && (size_t)c <= avail);
            if (has) {
                CHECK(piece.len <= (size_t)c);
                if (piece.len > 0)
                    CHECK(piece.data == p + (size_t)c - piece.len);
                else
                    CHECK(piece.data == NULL);
                CHECK(piece.frame_len <= max);
                if (piece.frame_start) {
                    CHECK(!open);
                    open = 1;
                    frame_len = piece.frame_len;
                    got = 0;
                    opcode = piece.opcode;
                    if (opcode >= 8) {
                        CHECK(opcode <= MUX_WS_OP_PONG && piece.fin && frame_len <= MUX_WS_MAX_CONTROL_PAYLOAD);
                    } else if (opcode == MUX_WS_OP_CONT) {
                        CHECK(in_fragmented);
                        in_fragmented = !piece.fin;
                    } else {
                        CHECK((opcode == MUX_WS_OP_TEXT || opcode == MUX_WS_OP_BINARY) && !in_fragmented);
                        in_fragmented = !piece.fin;
                    }
                }
                CHECK(open && piece.opcode == opcode && piece.frame_len == frame_len);
                got += piece.len;
                CHECK(got <= frame_len);
                CHECK(piece.frame_end == (got == frame_len));
                if (piece.frame_end)
                    open = 0;
            }
            off += (size_t)c;
        }
        pos += chunk;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 5)
        return 0;
    uint8_t flags = data[0];
    const uint8_t *chunks = data + 1;
    const uint8_t *payload = data + 5;
    size_t len = size - 5;
    uint64_t max = (flags & 1) ? 4096 : (UINT64_MAX >> 1);
    uint8_t *in = malloc(len ? len : 1);
    if (in == NULL)
        return 0;
    for (int role = 0; role < 2; role++) {
        if (len)
            memcpy(in, payload, len);
        run_decoder(role, max, chunks, in, len);
    }
    if (flags & 0x80) {
        int status = -1;
        const char *reason = NULL;
        ssize_t r = mux_ws_parse_response((const char *)payload, len, "dGhlIHNhbXBsZSBub25jZQ==", &status, &reason);
        CHECK(r == MUX_ERR_AGAIN || r == MUX_ERR_BAD_HANDSHAKE || (r > 0 && (size_t)r <= len && status == 101));
        CHECK(r > 0 || reason != NULL);
        CHECK(status >= 0 && status <= 999);
    }
    free(in);
    return 0;
}
