/*
 * tunnelmux server — shared tunnel read buffers (see rxslab.h).
 */
#include "server/rxslab.h"

#include <stdlib.h>

rxslab *rxslab_adopt(rxslab_pool *pool, h2o_buffer_t **input)
{
    rxslab *s = malloc(sizeof(*s));
    if (s == NULL)
        return NULL;
    s->pool = pool;
    s->buf = *input;
    s->refs = 1;
    /* the socket's next read starts a fresh buffer of the same prototype */
    h2o_buffer_init(input, s->buf->_prototype);
    pool->live += s->buf->capacity;
    pool->adopted++;
    return s;
}

void rxslab_ref(rxslab *s)
{
    s->refs++;
}

void rxslab_unref(rxslab *s)
{
    if (s == NULL || --s->refs > 0)
        return;
    rxslab_pool *pool = s->pool;
    pool->live -= s->buf->capacity;
    pool->freed++;
    h2o_buffer_dispose(&s->buf);
    free(s);
}
