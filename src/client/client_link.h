/*
 * tunnelmux client — the intrusive doubly-linked list node the daemon's lists share: a tunnel's
 * upstreams (upstream.h), the keep-alive pool (conn_pool.h), the end-of-turn flush queue. A list
 * head is a client_link whose next/prev point at itself when empty; a node not on any list has
 * next == prev == NULL. Nodes are embedded in their owner; the list owns nothing.
 */
#ifndef TM_CLIENT_CLIENT_LINK_H
#define TM_CLIENT_CLIENT_LINK_H

#include <stddef.h>

/* Intrusive doubly-linked list node; an unlinked node has next == prev == NULL. */
typedef struct client_link {
    struct client_link *next, *prev;
} client_link;

/* Makes |head| an empty list. */
static inline void client_link_init(client_link *head)
{
    head->next = head->prev = head;
}

/* 1 when the list |head| has no node. */
static inline int client_link_empty(const client_link *head)
{
    return head->next == head;
}

/* Links |l| (not on a list) first in |head|. */
static inline void client_link_push_front(client_link *head, client_link *l)
{
    l->next = head->next;
    l->prev = head;
    head->next->prev = l;
    head->next = l;
}

/* Links |l| (not on a list) last in |head|. */
static inline void client_link_push_back(client_link *head, client_link *l)
{
    l->next = head;
    l->prev = head->prev;
    head->prev->next = l;
    head->prev = l;
}

/* Unlinks |l| from its list; no-op when it is on none. */
static inline void client_link_remove(client_link *l)
{
    if (l->next == NULL)
        return;
    l->prev->next = l->next;
    l->next->prev = l->prev;
    l->next = l->prev = NULL;
}

#endif
