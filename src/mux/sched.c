/*
 * tunnelmux — the send scheduler: which list a stream is in and why (haproxy H2_SF_BLK_* style:
 * ready interactive, ready bulk, blocked on connection credit, blocked on stream credit), the order
 * DATA is taken in (interactive streams first, round robin within each list, PROTOCOL.md §6.4),
 * and the stall accounting that the lists imply (time with data to send, by cause).
 * Pure data structures on the session's lists; time comes from s->now.
 */
#include <string.h>

#include "mux_internal.h"

/* ---------------------------------------------------------------- lists */

/* Appends |st| at the tail of |l| (it must be in no list). */
void mux_slist_push(mux_slist *l, mux_stream *st)
{
    st->lnext = NULL;
    st->lprev = l->tail;
    if (l->tail != NULL)
        l->tail->lnext = st;
    else
        l->head = st;
    l->tail = st;
}

/* Unlinks |st| from |l|. */
void mux_slist_remove(mux_slist *l, mux_stream *st)
{
    if (st->lprev != NULL)
        st->lprev->lnext = st->lnext;
    else
        l->head = st->lnext;
    if (st->lnext != NULL)
        st->lnext->lprev = st->lprev;
    else
        l->tail = st->lprev;
    st->lprev = st->lnext = NULL;
}

/* ---------------------------------------------------------------- which list, and why */

/* The stall cause of a list (MUX_STALL_CAUSES: not stalled). */
int mux_list_stall_cause(mux_sched_list list)
{
    switch (list) {
    case MUX_LIST_SEND:
    case MUX_LIST_SEND_INTERACTIVE:
        return MUX_STALL_SOCKET;
    case MUX_LIST_BLK_CONN:
        return MUX_STALL_PEER;
    case MUX_LIST_BLK_STREAM:
        return MUX_STALL_CREDIT;
    default:
        return MUX_STALL_CAUSES;
    }
}

void mux_unschedule(mux_session *s, mux_stream *st)
{
    int cause = mux_list_stall_cause(st->list);
    if (cause < MUX_STALL_CAUSES && s->now > st->blocked_since) {
        uint64_t ms = (uint64_t)(s->now - st->blocked_since);
        st->stall_ms[cause] += ms;
        s->stats.stall_ms[cause] += ms;
        if (cause != MUX_STALL_SOCKET)
            s->stats.flow_blocked_ms += ms;
    }
    switch (st->list) {
    case MUX_LIST_SEND:
        mux_slist_remove(&s->sendq, st);
        break;
    case MUX_LIST_SEND_INTERACTIVE:
        mux_slist_remove(&s->sendq_interactive, st);
        break;
    case MUX_LIST_BLK_CONN:
        mux_slist_remove(&s->blk_conn, st);
        break;
    default:
        break;
    }
    st->list = MUX_LIST_NONE;
}

/* Puts |st| in the list matching why it can or cannot send (haproxy H2_SF_BLK_* style). */
void mux_schedule(mux_session *s, mux_stream *st)
{
    int want = st->txq.queued > 0 || (st->flags & MUX_SF_FIN_QUEUED);
    mux_sched_list list = MUX_LIST_NONE;
    if (want && st->state != MUX_SS_CLOSING) {
        if (st->txq.queued == 0)
            list = MUX_LIST_SEND; /* a bare fin needs no credit */
        else if (st->tx_credit <= 0)
            list = MUX_LIST_BLK_STREAM;
        else if (s->conn_tx_credit <= 0)
            list = MUX_LIST_BLK_CONN;
        else
            list = MUX_LIST_SEND;
        if (list == MUX_LIST_SEND && st->burst_sent < MUX_INTERACTIVE_BYTES)
            list = MUX_LIST_SEND_INTERACTIVE;
    }
    if (list == st->list)
        return;
    mux_unschedule(s, st);
    st->list = list;
    if (list == MUX_LIST_SEND)
        mux_slist_push(&s->sendq, st);
    else if (list == MUX_LIST_SEND_INTERACTIVE)
        mux_slist_push(&s->sendq_interactive, st);
    else if (list == MUX_LIST_BLK_CONN)
        mux_slist_push(&s->blk_conn, st);
    st->blocked_since = s->now;
}

/* Connection credit arrived: every stream blocked on it may send again. */
void mux_wake_conn_blocked(mux_session *s)
{
    while (s->blk_conn.head != NULL && s->conn_tx_credit > 0) {
        mux_stream *st = s->blk_conn.head;
        mux_unschedule(s, st);
        mux_schedule(s, st);
    }
}

/* ---------------------------------------------------------------- stall records */

static uint64_t stall_total(const mux_stream_stall *x)
{
    uint64_t t = 0;
    for (int c = 0; c < MUX_STALL_CAUSES; c++)
        t += x->stall_ms[c];
    return t;
}

/* Inserts |x| into |out| (|*n| entries, at most |cap|, worst first) if it is among the worst. */
void mux_worst_insert(mux_stream_stall *out, size_t *n, size_t cap, const mux_stream_stall *x)
{
    uint64_t t = stall_total(x);
    size_t i = *n;
    if (cap == 0 || (i == cap && stall_total(&out[cap - 1]) >= t))
        return;
    if (i == cap)
        i--;
    while (i > 0 && stall_total(&out[i - 1]) < t) {
        out[i] = out[i - 1];
        i--;
    }
    out[i] = *x;
    if (*n < cap)
        (*n)++;
}

/* Its stall record as of |now| (the current list's time included). */
void mux_stream_stall_of(const mux_stream *st, int64_t now, mux_stream_stall *x)
{
    memset(x, 0, sizeof(*x));
    x->id = st->id;
    x->open = 1;
    memcpy(x->stall_ms, st->stall_ms, sizeof(x->stall_ms));
    int cause = mux_list_stall_cause(st->list);
    if (cause < MUX_STALL_CAUSES && now > st->blocked_since)
        x->stall_ms[cause] += (uint64_t)(now - st->blocked_since);
    x->bytes_sent = st->bytes_sent;
    x->age_ms = now - st->opened_ms;
}

const char *mux_sched_list_to_str(mux_sched_list list)
{
    switch (list) {
    case MUX_LIST_NONE:
        return "none";
    case MUX_LIST_SEND:
        return "send";
    case MUX_LIST_SEND_INTERACTIVE:
        return "send_interactive";
    case MUX_LIST_BLK_CONN:
        return "blk_conn";
    case MUX_LIST_BLK_STREAM:
        return "blk_stream";
    }
    return "unknown";
}
