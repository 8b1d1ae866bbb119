/*
 * tunnelmux client — the keep-alive pool of idle local connections (like h2o's socketpool): most
 * recent first, at most |max| kept, handed out by kind (TLS or plain). Pure: the entries belong to
 * the caller (embedded in its idle-connection object, which holds the socket); the pool closes
 * nothing itself and calls |drop| for every entry it lets go (the oldest when full, one of the
 * other kind skipped by conn_pool_take, a trim, a clear). upstream_pool.c is its lws side.
 *
 * A zero-filled conn_pool is an empty pool: conn_pool_take, _remove, _trim and _clear accept it;
 * conn_pool_init must run before the first conn_pool_put.
 */
#ifndef TM_CLIENT_CONN_POOL_H
#define TM_CLIENT_CONN_POOL_H

#include "client_link.h"

/* One idle connection as the pool sees it. Embed it in the caller's object. */
typedef struct conn_pool_entry {
    client_link link; /* in the pool's |idle| list (next == NULL: not pooled) */
    int tls;          /* the connection's kind: 1 = TLS (an https local service), 0 = plain */
} conn_pool_entry;

typedef struct conn_pool {
    client_link idle; /* the entries, most recent first */
    int n;            /* entries in |idle| */
    int max;          /* most entries kept: putting one more drops the oldest first */
    /* Closes and frees |e|, which the pool let go (already unlinked). Never NULL once initialised. */
    void (*drop)(conn_pool_entry *e, void *arg);
    void *arg; /* passed to |drop| */
} conn_pool;

/* Makes |p| an empty pool of at most |max| (> 0) entries whose let-go entries go to |drop|. */
void conn_pool_init(conn_pool *p, int max, void (*drop)(conn_pool_entry *e, void *arg), void *arg);

/* Puts |e| (not pooled) first; when |max| entries are there already, drops the oldest first. */
void conn_pool_put(conn_pool *p, conn_pool_entry *e);

/* Takes the most recent entry of kind |tls| out of the pool and returns it, or NULL when none is
 * left. Entries of the other kind met on the way (more recent than the one returned) are dropped:
 * the local service's schema changed, they would never be used. */
conn_pool_entry *conn_pool_take(conn_pool *p, int tls);

/* Unlinks |e| (its connection closed by itself); no |drop| call. No-op when |e| is not pooled. */
void conn_pool_remove(conn_pool *p, conn_pool_entry *e);

/* Drops the oldest entries until at most |keep| remain (|keep| <= 0: all). */
void conn_pool_trim(conn_pool *p, int keep);

/* Drops every entry (shutdown). */
void conn_pool_clear(conn_pool *p);

#endif
