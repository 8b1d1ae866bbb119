/*
 * tunnelmux client — the local connection budget and its FIFO of waiting streams (see
 * conn_queue.h).
 */
#include <stddef.h>

#include "conn_queue.h"

const double conn_queue_bucket_le[CONN_QUEUE_BUCKETS] = {0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10, 60};

void conn_queue_init(conn_queue *q, int64_t max_active, int64_t max_queued, int64_t max_opening)
{
    *q = (conn_queue){0};
    q->max_active = max_active > 0 ? max_active : 0;
    q->max_queued = max_queued > 0 ? max_queued : 0;
    q->max_opening = max_opening > 0 ? max_opening : 0;
    q->list.next = q->list.prev = &q->list;
}

static int slot_free(const conn_queue *q)
{
    return q->max_active == 0 || q->active < q->max_active;
}

/* A stream may start now: a slot is free and it reuses an idle connection or may open one. */
static int may_start(const conn_queue *q, int idle)
{
    return slot_free(q) && (idle || q->max_opening == 0 || q->opening < q->max_opening);
}

void conn_queue_open_begin(conn_queue *q)
{
    q->opening++;
}

void conn_queue_open_end(conn_queue *q)
{
    if (q->opening > 0)
        q->opening--;
}

static void record_wait(conn_queue *q, int64_t wait_ms)
{
    if (wait_ms < 0)
        wait_ms = 0;
    q->waits++;
    q->wait_ms_sum += (uint64_t)wait_ms;
    int b = 0;
    while (b < CONN_QUEUE_BUCKETS && (double)wait_ms / 1000.0 > conn_queue_bucket_le[b])
        b++;
    q->wait_buckets[b]++;
}

conn_queue_result conn_queue_acquire(conn_queue *q, conn_waiter *w, int idle, int64_t now_ms)
{
    if (q->queued == 0 && may_start(q, idle)) {
        q->active++;
        q->admitted++;
        record_wait(q, 0);
        return CONN_QUEUE_GRANTED;
    }
    if (q->queued >= q->max_queued) {
        q->refused++;
        q->burst_refused++;
        return CONN_QUEUE_FULL;
    }
    w->since_ms = now_ms;
    w->next = &q->list;
    w->prev = q->list.prev;
    q->list.prev->next = w;
    q->list.prev = w;
    q->queued++;
    if (q->queued > q->peak_queued)
        q->peak_queued = q->queued;
    return CONN_QUEUE_WAITING;
}

void conn_queue_release(conn_queue *q)
{
    if (q->active > 0)
        q->active--;
}

static void unlink_waiter(conn_queue *q, conn_waiter *w)
{
    w->prev->next = w->next;
    w->next->prev = w->prev;
    w->next = w->prev = NULL;
    q->queued--;
}

conn_waiter *conn_queue_next(conn_queue *q, int idle, int64_t now_ms, int64_t *wait_ms)
{
    if (q->queued == 0 || !may_start(q, idle))
        return NULL;
    conn_waiter *w = q->list.next;
    unlink_waiter(q, w);
    q->active++;
    q->admitted++;
    q->waited++;
    int64_t waited = now_ms - w->since_ms;
    record_wait(q, waited);
    if (wait_ms != NULL)
        *wait_ms = waited < 0 ? 0 : waited;
    return w;
}

int conn_queue_cancel(conn_queue *q, conn_waiter *w, int64_t now_ms)
{
    if (w->next == NULL)
        return 0;
    unlink_waiter(q, w);
    q->cancelled++;
    record_wait(q, now_ms - w->since_ms);
    return 1;
}

int conn_queue_is_waiting(const conn_waiter *w)
{
    return w->next != NULL;
}

uint64_t conn_queue_burst_over(conn_queue *q)
{
    if (q->queued > 0 || !slot_free(q) || q->burst_refused == 0)
        return 0;
    uint64_t n = q->burst_refused;
    q->burst_refused = 0;
    return n;
}

int64_t conn_queue_oldest_wait_ms(const conn_queue *q, int64_t now_ms)
{
    if (q->queued == 0)
        return 0;
    int64_t d = now_ms - q->list.next->since_ms;
    return d > 0 ? d : 0;
}
