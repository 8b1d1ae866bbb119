/*
 * tunnelmux — protobuf base-128 varints: record lengths, tags, field values (frame_codec.h,
 * envelope.c, rx_message.c). Header-only: they run several times per frame on both paths, and
 * inline where they are used (as they did while they lived in the one frame_codec.c).
 */
#ifndef MUX_VARINT_H
#define MUX_VARINT_H

#include <stddef.h>
#include <stdint.h>

/* Writes |v| as a protobuf base-128 varint into |out| (room for 10 bytes). Returns bytes written. */
static inline size_t mux_varint_put(uint8_t *out, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        out[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    out[n++] = (uint8_t)v;
    return n;
}

/*
 * Reads a varint from |in|/|len| into |*v|. Returns the bytes read (1..10), 0 when the input ends
 * inside the varint, -1 when it is over-long (an 11th byte would be needed, or the 10th byte
 * carries bits beyond 64).
 */
static inline int mux_varint_get(const uint8_t *in, size_t len, uint64_t *v)
{
    if (len != 0 && in[0] < 0x80) { /* most varints of a record: lengths and ids below 128 */
        *v = in[0];
        return 1;
    }
    uint64_t r = 0;
    for (size_t i = 0; i < 10; i++) {
        if (i == len)
            return 0;
        uint8_t b = in[i];
        if (i == 9 && b > 1)
            return -1; /* continuation bit or bits past 2^64 */
        r |= (uint64_t)(b & 0x7f) << (7 * i);
        if ((b & 0x80) == 0) {
            *v = r;
            return (int)i + 1;
        }
    }
    return -1;
}

/* Bytes mux_varint_put would write for |v| (1..10). */
static inline size_t mux_varint_len(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

#endif
