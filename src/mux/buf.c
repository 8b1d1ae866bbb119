/*
 * tunnelmux — growable linear byte buffer (buf.h): bytes in [pos, len), compaction before growth,
 * geometric growth capped by a caller-given limit.
 */
#include <stdint.h>
#include <string.h>

#include "buf.h"
#include "mem.h"
#include "mux/err.h"

#define BUF_MIN_CAP 256

/* Sets |b| to the empty state without allocating. */
void mux_buf_init(mux_buf *b)
{
    b->base = NULL;
    b->pos = b->len = b->cap = 0;
}

/* Releases |b|'s memory through |mem| (the same allocator that grew it) and re-initialises it. */
void mux_buf_free(mux_buf *b, const mux_mem *mem)
{
    mux_mem_free(mem, b->base);
    mux_buf_init(b);
}

static void compact(mux_buf *b)
{
    if (b->pos == 0)
        return;
    size_t n = b->len - b->pos;
    if (n != 0)
        memmove(b->base, b->base + b->pos, n);
    b->pos = 0;
    b->len = n;
}

/*
 * Ensures cap - len >= |extra|. Moves unread bytes to the front first when that suffices, then
 * grows geometrically (x2) but never past |limit| total capacity (0 = unlimited). Returns 0,
 * MUX_ERR_MESSAGE_TOO_LARGE when size + extra > limit, or MUX_ERR_NOMEM (|b| unchanged in content).
 */
int mux_buf_reserve(mux_buf *b, size_t extra, size_t limit, const mux_mem *mem)
{
    if (b->cap - b->len >= extra)
        return 0;
    size_t size = b->len - b->pos;
    if (extra > SIZE_MAX - size)
        return MUX_ERR_MESSAGE_TOO_LARGE;
    size_t need = size + extra;
    if (limit != 0 && need > limit)
        return MUX_ERR_MESSAGE_TOO_LARGE;
    compact(b);
    if (b->cap >= need)
        return 0;
    size_t newcap = b->cap < BUF_MIN_CAP ? BUF_MIN_CAP : b->cap;
    while (newcap < need)
        newcap = newcap > SIZE_MAX / 2 ? need : newcap * 2;
    if (limit != 0 && newcap > limit)
        newcap = limit;
    uint8_t *p = mux_mem_realloc(mem, b->base, newcap);
    if (p == NULL)
        return MUX_ERR_NOMEM;
    b->base = p;
    b->cap = newcap;
    return 0;
}

/* Appends |n| bytes from |p| (not retained). Same returns as mux_buf_reserve. */
int mux_buf_append(mux_buf *b, const void *p, size_t n, size_t limit, const mux_mem *mem)
{
    if (n == 0)
        return 0;
    int rv = mux_buf_reserve(b, n, limit, mem);
    if (rv != 0)
        return rv;
    memcpy(b->base + b->len, p, n);
    b->len += n;
    return 0;
}

/*
 * When capacity exceeds |keep|: frees everything if the buffer is empty, else compacts and
 * shrinks the allocation to max(size, keep). A failed shrinking realloc is ignored.
 */
void mux_buf_shrink(mux_buf *b, size_t keep, const mux_mem *mem)
{
    if (b->cap <= keep)
        return;
    size_t size = b->len - b->pos;
    if (size == 0) {
        mux_buf_free(b, mem);
        return;
    }
    compact(b);
    size_t newcap = size > keep ? size : keep;
    if (newcap >= b->cap)
        return;
    uint8_t *p = mux_mem_realloc(mem, b->base, newcap);
    if (p != NULL) {
        b->base = p;
        b->cap = newcap;
    }
}
