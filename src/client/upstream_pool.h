/*
 * tunnelmux client — idle keep-alive local connections (upstream_pool.c): the lws side of
 * conn_pool.h. The pool is client.pool; the connections it holds are owned by it until taken.
 */
#ifndef TM_CLIENT_UPSTREAM_POOL_H
#define TM_CLIENT_UPSTREAM_POOL_H

#include <libwebsockets.h>

#include "client.h"
#include "tls_membio.h"

/* Idle keep-alive connections to the local service kept at most (the oldest is closed first). */
#define UPSTREAM_POOL_MAX 128
/* An idle keep-alive connection is closed after this many seconds. */
#define UPSTREAM_POOL_IDLE_S 30

/* Closes every idle keep-alive local connection and stops handing out queued slots (shutdown). */
void upstream_pool_clear(client *c);

/* An idle keep-alive connection. */
typedef struct upool_conn upool_conn;

/* The idle pooled connection |wsi| belongs to, or NULL when it is not one. */
upool_conn *pool_conn_of(struct lws *wsi);

/* Callbacks of an idle pooled connection |e|: any byte or EOF ends it. */
int pool_callback(upool_conn *e, enum lws_callback_reasons reason);

/* Takes the most recent idle connection of the right kind (TLS or not) out of the pool of |c|:
 * *wsi and *tls (NULL for plain) are set, and the connection is no longer idle (the caller sets
 * its user pointer). Returns 1, or 0 when there is none. */
int pool_take(client *c, int https, struct lws **wsi, tls_membio **tls);

/* Moves the connection |wsi| (with |tls|, NULL for plain) into the pool of |c|, which owns both
 * from then on; |paused|: its reading was paused (an idle connection must see EOF, so it resumes).
 * Returns 1 when it did, 0 when not (stopping, out of memory): the caller keeps them. */
int pool_put(client *c, struct lws *wsi, tls_membio *tls, int paused);

#endif
