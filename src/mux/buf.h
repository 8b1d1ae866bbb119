/*
 * tunnelmux — growable linear byte buffer: bytes live in [base+pos, base+len), capacity cap.
 * Ownership: the buffer owns |base|; mux_buf_free releases it with the same mux_mem.
 */
#ifndef MUX_BUF_H
#define MUX_BUF_H

#include <stddef.h>
#include <stdint.h>

#include "mux/mux.h"

typedef struct {
    uint8_t *base;
    size_t pos; /* first unread byte */
    size_t len; /* end of data */
    size_t cap; /* allocated bytes */
} mux_buf;

void mux_buf_init(mux_buf *b);
void mux_buf_free(mux_buf *b, const mux_mem *mem);
/* Makes room for |extra| more bytes after len (compacts or grows, never past |limit| total
 * capacity when limit != 0). Returns 0, MUX_ERR_NOMEM, or MUX_ERR_MESSAGE_TOO_LARGE (limit). */
int mux_buf_reserve(mux_buf *b, size_t extra, size_t limit, const mux_mem *mem);
/* Appends |n| bytes (reserve + memcpy). Same returns as mux_buf_reserve. */
int mux_buf_append(mux_buf *b, const void *p, size_t n, size_t limit, const mux_mem *mem);
static inline size_t mux_buf_size(const mux_buf *b)
{
    return b->len - b->pos;
}
/* Empties without freeing (pos = len = 0). */
static inline void mux_buf_reset(mux_buf *b)
{
    b->pos = b->len = 0;
}
/* Releases the memory when capacity exceeds |keep| (idle shrink). */
void mux_buf_shrink(mux_buf *b, size_t keep, const mux_mem *mem);

#endif
