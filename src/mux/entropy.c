/* tunnelmux mux — byte-histogram test for incompressible data (see entropy.h). */
#include "entropy.h"

#include <string.h>

#define SLICES 4
#define MATCH_HASH_BITS 10

/* Copies the sample into |s| (at most MUX_ENTROPY_SAMPLE bytes): all of |p| when short enough,
 * else four slices spread over it, so a header followed by a compressed payload (or the reverse)
 * is judged by both. Returns its length. */
static size_t take_sample(const uint8_t *p, size_t len, uint8_t *s)
{
    if (len <= MUX_ENTROPY_SAMPLE) {
        memcpy(s, p, len);
        return len;
    }
    size_t slice = MUX_ENTROPY_SAMPLE / SLICES, step = (len - slice) / (SLICES - 1);
    for (size_t k = 0; k < SLICES; k++)
        memcpy(s + k * slice, p + k * step, slice);
    return slice * SLICES;
}

/* Positions whose 4 bytes occurred earlier in the sample (a one-entry-per-bucket match finder,
 * like a fast LZ compressor's): repetition that a histogram cannot see. */
static size_t repeats(const uint8_t *s, size_t n)
{
    uint16_t last[1u << MATCH_HASH_BITS];
    memset(last, 0xff, sizeof(last));
    size_t hits = 0;
    for (size_t i = 0; i + 4 <= n; i++) {
        uint32_t v;
        memcpy(&v, s + i, 4);
        uint32_t h = (v * 2654435761u) >> (32 - MATCH_HASH_BITS);
        if (last[h] != 0xffff && memcmp(s + last[h], s + i, 4) == 0)
            hits++;
        last[h] = (uint16_t)i;
    }
    return hits;
}

int mux_looks_incompressible(const uint8_t *p, size_t len)
{
    if (p == NULL || len < MUX_ENTROPY_MIN_SAMPLE)
        return 0;
    uint8_t s[MUX_ENTROPY_SAMPLE];
    size_t n = take_sample(p, len, s);
    uint32_t count[256];
    memset(count, 0, sizeof(count));
    for (size_t i = 0; i < n; i++)
        count[s[i]]++;
    /* collision probability, unbiased for a finite sample: sum c(c-1) / n(n-1); uniform bytes give
     * 1/256 at any sample size. H2 = -log2(that) > 7.5  <=>  sum c(c-1) * 181.02 < n(n-1) */
    uint64_t pairs = 0;
    for (int i = 0; i < 256; i++)
        pairs += (uint64_t)count[i] * (count[i] > 0 ? count[i] - 1 : 0);
    if (pairs * 181 >= (uint64_t)n * (n - 1))
        return 0;
    /* a flat histogram can still repeat (a table, a pattern): more than 1 position in 16 that
     * repeats earlier bytes means an LZ compressor finds matches */
    return repeats(s, n) * 16 <= n;
}
