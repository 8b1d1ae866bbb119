/*
 * tunnelmux — RFC 6455 §5.3 payload masking (include/mux/ws.h): XOR with a 4-byte key whose phase
 * follows the byte's offset in the frame payload.
 *
 * Every byte a client sends through the tunnel and every byte the server receives passes through
 * here once, so it runs at the speed of the machine's widest vectors: 32 bytes per instruction
 * with AVX2 when the CPU has it (checked per call; a large payload amortises the check), else 8
 * bytes per instruction with plain 64-bit words. Both give the same bytes for every input
 * (tests/mux/test_ws.c compares them at every alignment, length and phase).
 */
#include <stdint.h>
#include <string.h>

#include "mux/ws.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define WS_MASK_HAVE_AVX2 1
#endif

/* Below this many bytes the vector path's setup is not worth it. */
#define WS_MASK_VECTOR_MIN 256

/* Byte-wise until |p| is 8-byte aligned, then 32 and 8 bytes at a time with memcpy loads/stores
 * (no aliasing or alignment assumptions), then the tail byte-wise. */
static void mask_words(uint8_t *p, size_t n, const uint8_t key[4], uint64_t offset)
{
    size_t phase = (size_t)(offset & 3);
    while (n > 0 && ((uintptr_t)p & 7) != 0) {
        *p++ ^= key[phase];
        phase = (phase + 1) & 3;
        n--;
    }
    if (n >= 8) {
        uint8_t pat[8];
        for (size_t i = 0; i < 8; i++)
            pat[i] = key[(phase + i) & 3];
        uint64_t k;
        memcpy(&k, pat, 8);
        while (n >= 32) {
            uint64_t w[4];
            memcpy(w, p, 32);
            w[0] ^= k;
            w[1] ^= k;
            w[2] ^= k;
            w[3] ^= k;
            memcpy(p, w, 32);
            p += 32;
            n -= 32;
        }
        while (n >= 8) {
            uint64_t w;
            memcpy(&w, p, 8);
            w ^= k;
            memcpy(p, &w, 8);
            p += 8;
            n -= 8;
        }
        /* phase is unchanged: multiples of 8 bytes keep it */
    }
    while (n > 0) {
        *p++ ^= key[phase];
        phase = (phase + 1) & 3;
        n--;
    }
}

#ifdef WS_MASK_HAVE_AVX2
/* 128 bytes per round in four unaligned 32-byte vectors; returns how many bytes it masked (a
 * multiple of 32, so the key phase of what follows is unchanged). */
__attribute__((target("avx2"))) static size_t mask_avx2(uint8_t *p, size_t n, const uint8_t key[4], uint64_t offset)
{
    uint8_t pat[32];
    for (size_t i = 0; i < sizeof(pat); i++)
        pat[i] = key[(offset + i) & 3];
    const __m256i k = _mm256_loadu_si256((const __m256i *)pat);
    size_t done = 0;
    for (; n - done >= 128; done += 128) {
        __m256i *v = (__m256i *)(p + done);
        __m256i a = _mm256_loadu_si256(v), b = _mm256_loadu_si256(v + 1);
        __m256i c = _mm256_loadu_si256(v + 2), d = _mm256_loadu_si256(v + 3);
        _mm256_storeu_si256(v, _mm256_xor_si256(a, k));
        _mm256_storeu_si256(v + 1, _mm256_xor_si256(b, k));
        _mm256_storeu_si256(v + 2, _mm256_xor_si256(c, k));
        _mm256_storeu_si256(v + 3, _mm256_xor_si256(d, k));
    }
    for (; n - done >= 32; done += 32) {
        __m256i *v = (__m256i *)(p + done);
        _mm256_storeu_si256(v, _mm256_xor_si256(_mm256_loadu_si256(v), k));
    }
    return done;
}
#endif

void mux_ws_mask(uint8_t *p, size_t n, const uint8_t key[4], uint64_t offset)
{
#ifdef WS_MASK_HAVE_AVX2
    if (n >= WS_MASK_VECTOR_MIN && __builtin_cpu_supports("avx2")) {
        size_t done = mask_avx2(p, n, key, offset);
        p += done;
        n -= done;
        offset += done;
    }
#endif
    mask_words(p, n, key, offset);
}

void mux_ws_mask_portable(uint8_t *p, size_t n, const uint8_t key[4], uint64_t offset)
{
    mask_words(p, n, key, offset);
}
