/*
 * tunnelmux server — the part of klib's khash that <h2o/http2_internal.h> (h2o 2.2.5) needs.
 *
 * libh2o-evloop-dev installs http2_internal.h, which includes "khash.h", but not khash.h itself.
 * h2_body.c reads h2o's HTTP/2 connection (docs/ARCHITECTURE.md §8) and needs the layout of
 * conn->streams and the inline lookup h2o_http2_conn_get_stream(). This file declares exactly what
 * h2o 2.2.5 was built with (deps/klib/khash.h 0.2.8: open addressing, quadratic probing, 2 flag
 * bits per bucket, the 64-bit integer hash) and defines the read-only lookup; nothing here
 * inserts or resizes (only h2o does).
 */
#ifndef TM_SERVER_COMPAT_KHASH_H
#define TM_SERVER_COMPAT_KHASH_H

#include <stdint.h>

typedef uint32_t khint32_t;
typedef uint64_t khint64_t;
typedef khint32_t khint_t;
typedef khint_t khiter_t;

#define tm_kh_isempty(flag, i) ((flag[(i) >> 4] >> (((i)&0xfU) << 1)) & 2)
#define tm_kh_isdel(flag, i) ((flag[(i) >> 4] >> (((i)&0xfU) << 1)) & 1)
#define tm_kh_iseither(flag, i) ((flag[(i) >> 4] >> (((i)&0xfU) << 1)) & 3)
#define tm_kh_int64_hash(key) (khint32_t)((key) >> 33 ^ (key) ^ (key) << 11)

#define KHASH_MAP_INIT_INT64(name, khval_t)                                                                                        \
    typedef struct kh_##name##_s {                                                                                                 \
        khint_t n_buckets, size, n_occupied, upper_bound;                                                                          \
        khint32_t *flags;                                                                                                          \
        khint64_t *keys;                                                                                                           \
        khval_t *vals;                                                                                                             \
    } kh_##name##_t;                                                                                                               \
    static inline khint_t kh_get_##name(const kh_##name##_t *h, khint64_t key)                                                     \
    {                                                                                                                              \
        if (h->n_buckets == 0)                                                                                                     \
            return 0;                                                                                                              \
        khint_t mask = h->n_buckets - 1, step = 0;                                                                                 \
        khint_t i = tm_kh_int64_hash(key) & mask, last = i;                                                                        \
        while (!tm_kh_isempty(h->flags, i) && (tm_kh_isdel(h->flags, i) || h->keys[i] != key)) {                                   \
            i = (i + (++step)) & mask;                                                                                             \
            if (i == last)                                                                                                         \
                return h->n_buckets;                                                                                               \
        }                                                                                                                          \
        return tm_kh_iseither(h->flags, i) ? h->n_buckets : i;                                                                     \
    }

#define khash_t(name) kh_##name##_t
#define kh_get(name, h, k) kh_get_##name(h, k)
#define kh_end(h) ((h)->n_buckets)
#define kh_val(h, x) ((h)->vals[x])

#endif
