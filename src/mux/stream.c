/*
 * tunnelmux — stream table (chained hash on the stream id + a list of all streams) and the
 * per-stream chunked send queue (the scheduling lists are in sched.c); then the stream lifecycle:
 * creation, the state machine (PROTOCOL.md §5.2), reset, and freeing with its last callback.
 */
#include <assert.h>
#include <string.h>

#include "mem.h"
#include "frame_codec.h"
#include "ctrl_queue.h"
#include "mux_internal.h"

/* ---------------------------------------------------------------- table */

static size_t hash_id(uint32_t id, size_t n)
{
    return (size_t)((id * 2654435761u) >> 3) & (n - 1);
}

/* Initialises an empty table with 64 buckets. Returns 0 or MUX_ERR_NOMEM. */
int mux_stream_table_init(mux_stream_table *t, const mux_mem *mem)
{
    memset(t, 0, sizeof(*t));
    t->nbuckets = 64;
    t->buckets = mux_mem_calloc(mem, t->nbuckets, sizeof(*t->buckets));
    return t->buckets == NULL ? MUX_ERR_NOMEM : 0;
}

/* Frees the bucket array (not the streams: the session frees those). */
void mux_stream_table_free(mux_stream_table *t, const mux_mem *mem)
{
    mux_mem_free(mem, t->buckets);
    t->buckets = NULL;
    t->nbuckets = t->count = 0;
    t->all = NULL;
}

/* Returns the stream with |id| or NULL. */
mux_stream *mux_stream_table_find(const mux_stream_table *t, uint32_t id)
{
    if (t->buckets == NULL)
        return NULL;
    for (mux_stream *st = t->buckets[hash_id(id, t->nbuckets)]; st != NULL; st = st->hnext)
        if (st->id == id)
            return st;
    return NULL;
}

static int grow(mux_stream_table *t, const mux_mem *mem)
{
    size_t n = t->nbuckets * 2;
    mux_stream **b = mux_mem_calloc(mem, n, sizeof(*b));
    if (b == NULL)
        return MUX_ERR_NOMEM;
    for (size_t i = 0; i < t->nbuckets; i++) {
        mux_stream *st = t->buckets[i];
        while (st != NULL) {
            mux_stream *next = st->hnext;
            size_t h = hash_id(st->id, n);
            st->hnext = b[h];
            b[h] = st;
            st = next;
        }
    }
    mux_mem_free(mem, t->buckets);
    t->buckets = b;
    t->nbuckets = n;
    return 0;
}

/* Inserts |st| (borrowed; the caller frees it after removing it). Returns 0 or MUX_ERR_NOMEM. */
int mux_stream_table_insert(mux_stream_table *t, mux_stream *st, const mux_mem *mem)
{
    if (t->count + 1 > t->nbuckets && grow(t, mem) != 0 && t->buckets == NULL)
        return MUX_ERR_NOMEM; /* a failed grow keeps the old (longer chains) table */
    size_t h = hash_id(st->id, t->nbuckets);
    st->hnext = t->buckets[h];
    t->buckets[h] = st;
    st->aprev = NULL;
    st->anext = t->all;
    if (t->all != NULL)
        t->all->aprev = st;
    t->all = st;
    t->count++;
    return 0;
}

/* Unlinks |st| from the hash and the all-streams list. */
void mux_stream_table_remove(mux_stream_table *t, mux_stream *st)
{
    mux_stream **pp = &t->buckets[hash_id(st->id, t->nbuckets)];
    while (*pp != NULL && *pp != st)
        pp = &(*pp)->hnext;
    if (*pp == st)
        *pp = st->hnext;
    if (st->aprev != NULL)
        st->aprev->anext = st->anext;
    else
        t->all = st->anext;
    if (st->anext != NULL)
        st->anext->aprev = st->aprev;
    st->aprev = st->anext = st->hnext = NULL;
    t->count--;
}

/* ---------------------------------------------------------------- send queue */

static mux_chunk *chunk_get(mux_chunk_pool *pool, const mux_mem *mem)
{
    mux_chunk *c = pool->free;
    if (c != NULL) {
        pool->free = c->next;
        pool->nfree--;
    } else {
        c = mux_mem_malloc(mem, sizeof(*c) + pool->cap);
        if (c == NULL)
            return NULL;
        c->cap = pool->cap;
    }
    c->next = NULL;
    c->rd = c->wr = 0;
    return c;
}

static void chunk_put(mux_chunk *c, mux_chunk_pool *pool, const mux_mem *mem)
{
    if (pool->nfree < pool->maxfree && c->cap == pool->cap) {
        c->next = pool->free;
        pool->free = c;
        pool->nfree++;
    } else {
        mux_mem_free(mem, c);
    }
}

/* Copies up to |len| bytes of |p| (borrowed) into the queue. Returns the count or MUX_ERR_NOMEM
 * when nothing could be stored. */
ssize_t mux_txq_write(mux_txq *q, mux_chunk_pool *pool, const uint8_t *p, size_t len, const mux_mem *mem)
{
    size_t done = 0;
    while (done < len) {
        mux_chunk *c = q->tail;
        if (c == NULL || c->wr == c->cap) {
            mux_chunk *n = chunk_get(pool, mem);
            if (n == NULL)
                break;
            if (c != NULL)
                c->next = n;
            else
                q->head = n;
            q->tail = c = n;
        }
        size_t n = c->cap - c->wr;
        if (n > len - done)
            n = len - done;
        memcpy(c->data + c->wr, p + done, n);
        c->wr += (uint32_t)n;
        done += n;
    }
    q->queued += done;
    q->held += done;
    if (done == 0 && len != 0)
        return MUX_ERR_NOMEM;
    return (ssize_t)done;
}

static mux_chunk *read_chunk(const mux_txq *q)
{
    mux_chunk *c = q->head;
    while (c != NULL && c->rd == c->wr && c->next != NULL)
        c = c->next;
    return c;
}

/* Points |*p| at the next contiguous queued bytes (inside a chunk); returns how many (<= max). */
size_t mux_txq_peek(const mux_txq *q, uint8_t **p, size_t max)
{
    mux_chunk *c = read_chunk(q);
    if (c == NULL || c->rd == c->wr) {
        *p = NULL;
        return 0;
    }
    size_t n = c->wr - c->rd;
    *p = c->data + c->rd;
    return n < max ? n : max;
}

/* Marks |n| bytes at the read position as taken (n <= what the last peek returned). */
void mux_txq_take(mux_txq *q, size_t n)
{
    mux_chunk *c = read_chunk(q);
    if (c == NULL)
        return;
    c->rd += (uint32_t)n;
    q->queued -= n;
}

/* Frees chunks whose bytes were all taken; the tail chunk is rewound when fully taken. Taken
 * bytes stop counting as held (at most one partly taken chunk stays allocated). */
void mux_txq_release(mux_txq *q, mux_chunk_pool *pool, const mux_mem *mem)
{
    q->held = q->queued;
    while (q->head != NULL && q->head->rd == q->head->wr) {
        mux_chunk *c = q->head;
        if (c->next == NULL) {
            c->rd = c->wr = 0; /* keep the tail for the next writes */
            break;
        }
        q->head = c->next;
        chunk_put(c, pool, mem);
    }
}

/* Hands every chunk of |q| to the |*grave| list (bytes may still be referenced by a batch). */
void mux_txq_bury(mux_txq *q, mux_chunk **grave)
{
    if (q->head != NULL) {
        q->tail->next = *grave;
        *grave = q->head;
    }
    q->head = q->tail = NULL;
    q->queued = q->held = 0;
}

/* Returns a whole chunk list to the pool (or frees it). */
void mux_chunks_free(mux_chunk *c, mux_chunk_pool *pool, const mux_mem *mem)
{
    while (c != NULL) {
        mux_chunk *next = c->next;
        chunk_put(c, pool, mem);
        c = next;
    }
}

/* Frees the spare chunks. */
void mux_chunk_pool_free(mux_chunk_pool *pool, const mux_mem *mem)
{
    while (pool->free != NULL) {
        mux_chunk *c = pool->free;
        pool->free = c->next;
        mux_mem_free(mem, c);
    }
    pool->nfree = 0;
}

/* ---------------------------------------------------------------- lifecycle */

#define SS_BIT(state) (1u << (state))

/* The transitions mux_stream_set_state allows, by predecessor (PROTOCOL.md §5.2). */
static const unsigned allowed_next[MUX_SS_CLOSED + 1] = {
    [MUX_SS_IDLE] = SS_BIT(MUX_SS_OPEN) | SS_BIT(MUX_SS_CLOSING), /* opened, or a stub for a refused one */
    [MUX_SS_OPEN] =
        SS_BIT(MUX_SS_HALF_CLOSED_LOCAL) | SS_BIT(MUX_SS_HALF_CLOSED_REMOTE) | SS_BIT(MUX_SS_CLOSING) | SS_BIT(MUX_SS_CLOSED),
    /* -> HALF_CLOSED_REMOTE: the peer's end arrived after ours (freed once on_end returned) */
    [MUX_SS_HALF_CLOSED_LOCAL] = SS_BIT(MUX_SS_HALF_CLOSED_REMOTE) | SS_BIT(MUX_SS_CLOSING) | SS_BIT(MUX_SS_CLOSED),
    [MUX_SS_HALF_CLOSED_REMOTE] = SS_BIT(MUX_SS_CLOSED), /* a reset frees it: nothing more will come */
    [MUX_SS_CLOSING] = SS_BIT(MUX_SS_CLOSED),
    [MUX_SS_CLOSED] = 0,
};

static int counts_active(mux_stream_state state)
{
    return state == MUX_SS_OPEN || state == MUX_SS_HALF_CLOSED_LOCAL || state == MUX_SS_HALF_CLOSED_REMOTE;
}

void mux_stream_set_state(mux_session *s, mux_stream *st, mux_stream_state to)
{
    mux_stream_state from = st->state;
    int allowed = from <= MUX_SS_CLOSED && to <= MUX_SS_CLOSED && (allowed_next[from] & SS_BIT(to)) != 0;
    assert(allowed);
    (void)allowed;
    st->state = to;
    if (!counts_active(from) && counts_active(to)) {
        s->active++;
        s->stats.streams_opened++;
    } else if (counts_active(from) && !counts_active(to)) {
        s->active--;
        s->stats.streams_closed++;
    }
    if (to == MUX_SS_CLOSING)
        s->stubs++;
    else if (from == MUX_SS_CLOSING)
        s->stubs--;
}

const char *mux_stream_state_to_str(mux_stream_state state)
{
    switch (state) {
    case MUX_SS_IDLE:
        return "idle";
    case MUX_SS_OPEN:
        return "open";
    case MUX_SS_HALF_CLOSED_LOCAL:
        return "half_closed_local";
    case MUX_SS_HALF_CLOSED_REMOTE:
        return "half_closed_remote";
    case MUX_SS_CLOSING:
        return "closing";
    case MUX_SS_CLOSED:
        return "closed";
    }
    return "unknown";
}

/* Re-computes what |st|'s window growth takes from the budget (rx_grown): what it may still be
 * made to hold — its window, or the credit already announced and not yet consumed if that is
 * more (announced credit cannot be taken back) — beyond the initial window. */
void mux_recharge_growth(mux_session *s, mux_stream *st)
{
    int64_t committed = st->rx.limit - st->rx.consumed;
    if (committed < (int64_t)st->rx.window)
        committed = st->rx.window;
    uint64_t charge = committed > (int64_t)st->rx.base ? (uint64_t)(committed - st->rx.base) : 0;
    s->rx_grown = s->rx_grown - st->rx_charged + charge;
    st->rx_charged = charge;
}

/* Gives back the auto-tuned growth of |st|'s receive window (it is closing). */
static void release_growth(mux_session *s, mux_stream *st)
{
    s->rx_grown -= st->rx_charged;
    st->rx_charged = 0;
    st->rx.window = st->rx.base;
}

static void drop_queue(mux_session *s, mux_stream *st)
{
    if (s->batch_out)
        mux_txq_bury(&st->txq, &s->grave);
    else {
        mux_chunks_free(st->txq.head, &s->pool, s->mem);
        st->txq.head = st->txq.tail = NULL;
        st->txq.queued = st->txq.held = 0;
    }
}

/* Forgets |st|. Fires on_stream_close (the last callback) unless it already fired. */
void mux_stream_free(mux_session *s, mux_stream *st, unsigned code, const char *reason, int by_peer)
{
    uint32_t id = st->id;
    void *sud = st->user_data;
    int notify = !(st->flags & MUX_SF_NOTIFIED);
    mux_unschedule(s, st);
    if (notify) {
        mux_stream_stall x;
        mux_stream_stall_of(st, s->now, &x);
        x.open = 0;
        mux_worst_insert(s->worst, &s->nworst, MUX_WORST_FINISHED, &x);
    }
    mux_stream_table_remove(&s->streams, st);
    release_growth(s, st);
    drop_queue(s, st);
    mux_stream_set_state(s, st, MUX_SS_CLOSED);
    mux_mem_free(s->mem, st);
    if (notify && s->cb.on_stream_close != NULL)
        s->cb.on_stream_close(s, id, code, reason != NULL ? reason : "", by_peer, sud, s->ud);
}

/*
 * Aborts |st| from our side: CLOSE(code) is queued, queued data dropped, on_stream_close fires
 * (by_peer 0). If the peer's direction is still open the stream stays as a CLOSING stub that
 * discards the peer's late DATA (PROTOCOL.md §5.3).
 */
void mux_stream_reset(mux_session *s, mux_stream *st, unsigned code, const char *reason)
{
    mux_queue_simple(s, MUX_FRAME_CLOSE, st->id, code, reason);
    st->flags &= ~MUX_SF_FIN_QUEUED;
    mux_unschedule(s, st);
    drop_queue(s, st);
    if (st->state == MUX_SS_HALF_CLOSED_REMOTE) {
        mux_stream_free(s, st, code, reason, 0);
        return;
    }
    uint32_t id = st->id;
    void *sud = st->user_data;
    release_growth(s, st);
    st->rx.consumed = st->rx.received;
    mux_stream_set_state(s, st, MUX_SS_CLOSING);
    st->flags |= MUX_SF_NOTIFIED;
    st->user_data = NULL;
    if (s->cb.on_stream_close != NULL)
        s->cb.on_stream_close(s, id, code, reason != NULL ? reason : "", 0, sud, s->ud);
}

/* Our direction ended (DATA fin sent, or a head with END_STREAM queued). */
void mux_stream_local_end(mux_session *s, mux_stream *st)
{
    switch (st->state) {
    case MUX_SS_OPEN:
        mux_stream_set_state(s, st, MUX_SS_HALF_CLOSED_LOCAL);
        break;
    case MUX_SS_HALF_CLOSED_REMOTE:
        mux_stream_free(s, st, MUX_CODE_NO_ERROR, "", 0);
        break;
    case MUX_SS_HALF_CLOSED_LOCAL:
    case MUX_SS_CLOSING:
        break;
    case MUX_SS_IDLE:
    case MUX_SS_CLOSED:
        assert(!"a stream in the table is never idle or closed");
        break;
    }
}

/* The peer's direction of |id| ended (DATA fin or head END_STREAM). Fires on_end. */
void mux_stream_remote_end(mux_session *s, uint32_t id)
{
    mux_stream *st = mux_stream_table_find(&s->streams, id);
    if (st == NULL)
        return;
    switch (st->state) {
    case MUX_SS_OPEN:
    case MUX_SS_HALF_CLOSED_LOCAL: {
        int was_local_done = st->state == MUX_SS_HALF_CLOSED_LOCAL;
        mux_stream_set_state(s, st, MUX_SS_HALF_CLOSED_REMOTE);
        if (s->cb.on_end != NULL && s->cb.on_end(s, id, st->user_data, s->ud) != 0) {
            mux_stream_callback_failed(s, id, 0, "on_end failed");
            return;
        }
        st = mux_stream_table_find(&s->streams, id);
        if (st != NULL && was_local_done && st->state == MUX_SS_HALF_CLOSED_REMOTE)
            mux_stream_free(s, st, MUX_CODE_NO_ERROR, "", 0);
        break;
    }
    case MUX_SS_CLOSING:
        mux_stream_free(s, st, MUX_CODE_CANCEL, "", 0);
        break;
    case MUX_SS_HALF_CLOSED_REMOTE:
        break;
    case MUX_SS_IDLE:
    case MUX_SS_CLOSED:
        assert(!"a stream in the table is never idle or closed");
        break;
    }
}

void mux_stream_callback_failed(mux_session *s, uint32_t id, int fin, const char *reason)
{
    mux_stream *st = mux_stream_table_find(&s->streams, id);
    if (st == NULL || st->state == MUX_SS_CLOSING)
        return;
    if (fin && st->state == MUX_SS_HALF_CLOSED_LOCAL) {
        mux_stream_free(s, st, MUX_CODE_CANCEL, reason, 0); /* both ends done: nothing to abort */
        return;
    }
    if (fin && st->state == MUX_SS_OPEN) /* so the reset frees it rather than wait for this fin */
        mux_stream_set_state(s, st, MUX_SS_HALF_CLOSED_REMOTE);
    mux_stream_reset(s, st, MUX_CODE_CANCEL, reason);
}

mux_stream *mux_stream_new(mux_session *s, uint32_t id)
{
    mux_stream *st = mux_mem_calloc(s->mem, 1, sizeof(*st));
    if (st == NULL)
        return NULL;
    st->id = id; /* calloc: state MUX_SS_IDLE */
    st->tx_credit = s->peer_stream_window;
    mux_rxwin_init(&st->rx, s->opt.initial_stream_window, s->now);
    st->opened_ms = s->now;
    if (mux_stream_table_insert(&s->streams, st, s->mem) != 0) {
        mux_mem_free(s->mem, st);
        return NULL;
    }
    mux_stream_set_state(s, st, MUX_SS_OPEN);
    return st;
}

/* A stub absorbing the peer's frames for a stream we refused (PROTOCOL.md §5.4). */
int mux_stream_stub(mux_session *s, uint32_t id)
{
    if (s->stubs > 4 * s->opt.max_concurrent_streams + 64)
        return perr(s, MUX_ERR_PROTO, "too many refused streams awaiting the peer's CLOSE");
    mux_stream *st = mux_mem_calloc(s->mem, 1, sizeof(*st));
    if (st == NULL)
        return perr(s, MUX_ERR_INTERNAL, "out of memory for a refused stream");
    st->id = id; /* calloc: state MUX_SS_IDLE */
    st->flags = MUX_SF_NOTIFIED;
    mux_rxwin_init(&st->rx, s->opt.initial_stream_window, s->now);
    if (mux_stream_table_insert(&s->streams, st, s->mem) != 0) {
        mux_mem_free(s->mem, st);
        return perr(s, MUX_ERR_INTERNAL, "out of memory for a refused stream");
    }
    mux_stream_set_state(s, st, MUX_SS_CLOSING);
    return 0;
}

/* The session ends: every stream gets on_stream_close (PROTOCOL.md §8). */
void mux_kill_streams(mux_session *s, unsigned code, const char *reason)
{
    mux_stream *st;
    while ((st = s->streams.all) != NULL)
        mux_stream_free(s, st, code, reason, 1);
}
