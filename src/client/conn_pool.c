/*
 * tunnelmux client — the keep-alive pool of idle local connections (see conn_pool.h).
 */
#include "conn_pool.h"

void conn_pool_init(conn_pool *p, int max, void (*drop)(conn_pool_entry *e, void *arg), void *arg)
{
    client_link_init(&p->idle);
    p->n = 0;
    p->max = max;
    p->drop = drop;
    p->arg = arg;
}

/* Unlinks |e| and hands it to |drop|. */
static void drop_entry(conn_pool *p, conn_pool_entry *e)
{
    conn_pool_remove(p, e);
    p->drop(e, p->arg);
}

void conn_pool_put(conn_pool *p, conn_pool_entry *e)
{
    if (p->n >= p->max && p->n > 0)
        drop_entry(p, (conn_pool_entry *)p->idle.prev); /* the oldest */
    client_link_push_front(&p->idle, &e->link);
    p->n++;
}

conn_pool_entry *conn_pool_take(conn_pool *p, int tls)
{
    while (p->n > 0) {
        conn_pool_entry *e = (conn_pool_entry *)p->idle.next;
        conn_pool_remove(p, e);
        if ((e->tls != 0) == (tls != 0))
            return e;
        p->drop(e, p->arg);
    }
    return NULL;
}

void conn_pool_remove(conn_pool *p, conn_pool_entry *e)
{
    if (e->link.next == NULL)
        return;
    client_link_remove(&e->link);
    p->n--;
}

void conn_pool_trim(conn_pool *p, int keep)
{
    if (keep < 0)
        keep = 0;
    while (p->n > keep)
        drop_entry(p, (conn_pool_entry *)p->idle.prev);
}

void conn_pool_clear(conn_pool *p)
{
    conn_pool_trim(p, 0);
}
