/*
 * tunnelmux client — idle keep-alive local connections: the lws side of conn_pool.c (like h2o's
 * socketpool). An idle connection is an lws RAW wsi whose user pointer is NULL and whose opaque
 * user data is its upool_conn. Anything it receives while idle (bytes, EOF) closes it; lws closes
 * it after UPSTREAM_POOL_IDLE_S. It is handed out most-recent first to a stream of the same schema.
 * See upstream_stream.h for who calls whom.
 */
#include <stdlib.h>

#include "conn_pool.h"
#include "upstream_pool.h"

struct upool_conn {
    conn_pool_entry entry; /* first member: in c->pool */
    client *c;
    struct lws *wsi;
    tls_membio *tls;
};

/* Frees |e| (out of the pool); asks lws to close its connection when |close_wsi|. */
static void pool_free(upool_conn *e, int close_wsi)
{
    if (e->wsi != NULL) {
        lws_set_opaque_user_data(e->wsi, NULL);
        if (close_wsi)
            lws_set_timeout(e->wsi, 1, LWS_TO_KILL_ASYNC);
    }
    tls_membio_del(e->tls);
    free(e);
}

/* conn_pool's |drop|: an idle connection the pool let go (the oldest, one of the other schema,
 * over the budget, shutdown) is closed. */
static void pool_drop_entry(conn_pool_entry *entry, void *arg)
{
    (void)arg;
    pool_free((upool_conn *)entry, 1);
}

static void pool_init(client *c)
{
    if (c->pool.idle.next == NULL)
        conn_pool_init(&c->pool, UPSTREAM_POOL_MAX, pool_drop_entry, NULL);
}

/* Takes |e| out of the pool and frees it; asks lws to close its connection when |close_wsi|. */
static void pool_drop(upool_conn *e, int close_wsi)
{
    conn_pool_remove(&e->c->pool, &e->entry);
    pool_free(e, close_wsi);
}

void upstream_pool_clear(client *c)
{
    c->lq_closed = 1;
    lws_sul_cancel(&c->lq_sul);
    conn_pool_clear(&c->pool);
}

upool_conn *pool_conn_of(struct lws *wsi)
{
    upool_conn *e = lws_get_opaque_user_data(wsi);
    return e != NULL && e->wsi == wsi ? e : NULL;
}

/* Takes an idle connection of the right kind; see upstream_pool.h. */
int pool_take(client *c, int https, struct lws **wsi, tls_membio **tls)
{
    upool_conn *e = (upool_conn *)conn_pool_take(&c->pool, https);
    if (e == NULL)
        return 0;
    *wsi = e->wsi;
    *tls = e->tls;
    free(e);
    lws_set_opaque_user_data(*wsi, NULL);
    return 1;
}

/* Moves a connection into the pool; see upstream_pool.h. */
int pool_put(client *c, struct lws *wsi, tls_membio *tls, int paused)
{
    if (c->stopping || c->lws == NULL)
        return 0;
    pool_init(c);
    upool_conn *e = calloc(1, sizeof(*e));
    if (e == NULL)
        return 0;
    e->c = c;
    e->wsi = wsi;
    e->tls = tls;
    lws_set_wsi_user(e->wsi, NULL);
    lws_set_opaque_user_data(e->wsi, e);
    lws_set_timeout(e->wsi, PENDING_TIMEOUT_USER_OK, UPSTREAM_POOL_IDLE_S);
    if (paused)
        lws_rx_flow_control(e->wsi, 1); /* an idle connection must see EOF */
    e->entry.tls = e->tls != NULL;
    conn_pool_put(&c->pool, &e->entry); /* the oldest goes first when UPSTREAM_POOL_MAX are idle */
    return 1;
}

/* Callbacks of an idle pooled connection |e|: any byte or EOF ends it. */
int pool_callback(upool_conn *e, enum lws_callback_reasons reason)
{
    switch (reason) {
    case LWS_CALLBACK_RAW_RX:
        pool_drop(e, 0);
        return -1; /* an idle connection has nothing to say: lws closes it */
    case LWS_CALLBACK_RAW_CLOSE:
    case LWS_CALLBACK_WSI_DESTROY:
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
        pool_drop(e, 0);
        return 0;
    default:
        return 0;
    }
}
