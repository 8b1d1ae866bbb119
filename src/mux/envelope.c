/*
 * tunnelmux — the envelope (PROTOCOL.md §3.1): one header byte (version nibble, RESET, COMPRESSED)
 * then records `varint length + Frame` ending exactly at the end of the body.
 */
#include "frame_codec.h"
#include "mux_internal.h"

/* Validates header byte |hdr|. Returns 0 and the flags, MUX_ERR_BAD_VERSION (version nibble not
 * 1) or MUX_ERR_PROTO (reserved bits 2-3, or RESET without COMPRESSED); |*reason| static. */
int mux_envelope_parse(uint8_t hdr, int *compressed, int *reset, const char **reason)
{
    if ((hdr & 0xf0) != MUX_ENV_VERSION) {
        *reason = "envelope version is not 1";
        return MUX_ERR_BAD_VERSION;
    }
    if ((hdr & 0x0c) != 0) {
        *reason = "envelope reserved bits set";
        return MUX_ERR_PROTO;
    }
    *compressed = (hdr & MUX_ENV_COMPRESSED) != 0;
    *reset = (hdr & MUX_ENV_RESET) != 0;
    if (*reset && !*compressed) {
        *reason = "envelope RESET bit without COMPRESSED";
        return MUX_ERR_PROTO;
    }
    return 0;
}

/* The header byte for a message with the given flags. */
uint8_t mux_envelope_byte(int compressed, int reset)
{
    return (uint8_t)(MUX_ENV_VERSION | (compressed ? MUX_ENV_COMPRESSED : 0) | (reset ? MUX_ENV_RESET : 0));
}

/* Size of the record at |p| (|len| bytes remain in the body), or MUX_ERR_VARINT /
 * MUX_ERR_FRAME_TOO_LARGE with a static |*reason|. */
ssize_t mux_envelope_record(const uint8_t *p, size_t len, const char **reason)
{
    uint64_t rlen;
    int n = mux_varint_get(p, len, &rlen);
    if (n == 0) {
        *reason = "truncated record length varint";
        return MUX_ERR_VARINT;
    }
    if (n < 0) {
        *reason = "over-long record length varint";
        return MUX_ERR_VARINT;
    }
    if (rlen > len - (size_t)n) {
        *reason = "record runs past the end of the message";
        return MUX_ERR_FRAME_TOO_LARGE;
    }
    if (rlen == 0) {
        *reason = "empty record";
        return MUX_ERR_FRAME_DECODE;
    }
    return (ssize_t)(n + rlen);
}
