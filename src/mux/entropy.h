/*
 * tunnelmux mux — a cheap test of whether bytes are worth handing to zstd.
 *
 * Random, encrypted and already-compressed bodies (JPEG, video, zip, gzip'd responses) have a
 * nearly flat byte histogram; compressing them costs CPU and saves nothing. The session asks this
 * before it compresses a message led by DATA of a stream it knows nothing about yet (or one it is
 * re-probing), so such streams never go through zstd at all. Pure function, no allocation.
 */
#ifndef TUNNELMUX_MUX_ENTROPY_H
#define TUNNELMUX_MUX_ENTROPY_H

#include <stddef.h>
#include <stdint.h>

#define MUX_ENTROPY_MIN_SAMPLE 512 /* shorter inputs are never judged incompressible */
#define MUX_ENTROPY_SAMPLE 4096    /* bytes looked at: four 1 KiB slices spread over the input */

/*
 * 1 when the first |len| bytes at |p| look incompressible: the collision (Renyi order-2) entropy
 * of the byte histogram of a sample, estimated without small-sample bias, is above 7.5 bits per
 * byte (uniform random bytes score 8; English text ~4.5, JSON/HTML 5-6, x86 code ~6, base64 < 6)
 * AND at most 1 position in 16 of the sample repeats 4 bytes seen earlier in it (a flat histogram
 * that repeats, such as a table or a periodic pattern, still compresses).
 * 0 otherwise, and for fewer than MUX_ENTROPY_MIN_SAMPLE bytes.
 */
int mux_looks_incompressible(const uint8_t *p, size_t len);

#endif
