/*
 * tunnelmux — credit accounting (PROTOCOL.md §6): the receive windows we grant (returned only when
 * the application consumes, batched at a quarter window, optionally auto-tuned) and the send
 * credit the peer grants us.
 */
#include "mux_internal.h"

#define MUX_MAX_CREDIT 0x7fffffffLL

/* Starts a receive window granting |window| bytes. */
void mux_rxwin_init(mux_rxwin *w, uint32_t window, int64_t now_ms)
{
    w->limit = window;
    w->received = 0;
    w->consumed = 0;
    w->window = window;
    w->epoch_ms = now_ms;
    w->epoch_consumed = 0;
    w->base = window;
    w->last_ms = now_ms;
    w->queue_ms = 0;
    w->queue_ok_ms = MUX_RXWIN_QUEUE_MS;
}

int64_t mux_rxwin_queue_allowance(int64_t min_rtt_ms)
{
    return min_rtt_ms / 4 > MUX_RXWIN_QUEUE_MS ? min_rtt_ms / 4 : MUX_RXWIN_QUEUE_MS;
}

/* How long a grown window may go unused before it shrinks back: MUX_RXWIN_IDLE_MS, or 8 RTTs
 * on a long path. */
static int64_t idle_limit(int64_t rtt_ms)
{
    return rtt_ms > 0 && 8 * rtt_ms > MUX_RXWIN_IDLE_MS ? 8 * rtt_ms : MUX_RXWIN_IDLE_MS;
}

/*
 * A grown window unused (nothing consumed) for idle_limit goes back to its initial size; returns
 * the bytes given back (0 when it did not shrink). Credit already announced stays valid (the peer
 * may still send it): the smaller window only makes the next announcements wait until the
 * consumption catches up.
 */
uint32_t mux_rxwin_idle(mux_rxwin *w, int64_t now_ms, int64_t rtt_ms)
{
    if (w->window <= w->base || now_ms - w->last_ms < idle_limit(rtt_ms))
        return 0;
    uint32_t freed = w->window - w->base;
    w->window = w->base;
    w->epoch_ms = now_ms;
    w->epoch_consumed = 0;
    return freed;
}

/* Accounts |len| received payload bytes; MUX_ERR_FLOW_CONTROL when that exceeds the grant. */
int mux_rxwin_recv(mux_rxwin *w, size_t len)
{
    if ((int64_t)len > w->limit - w->received)
        return MUX_ERR_FLOW_CONTROL;
    w->received += (int64_t)len;
    return 0;
}

/*
 * Accounts |n| consumed bytes (clamped to received - consumed) and decides whether to announce:
 * returns the increment (new limit - old limit) once the unannounced credit reaches a quarter of
 * the window, else 0. Auto-tuning (PROTOCOL.md §6.2): when a whole window was consumed within
 * 2 * |rtt_ms| — the delivery rate times 2 RTT (the bandwidth-delay product with headroom 2)
 * exceeds the window — the window grows to that (at least 4x; at most |max_window|) and the
 * growth rides on this increment, while the path's queueing delay (w->queue_ms) is at most
 * w->queue_ok_ms; above four times that the window shrinks by an eighth per window consumed. A
 * window grown and then unused for idle_limit shrinks back first (mux_rxwin_idle).
 */
uint32_t mux_rxwin_consume(mux_rxwin *w, size_t n, int64_t now_ms, int64_t rtt_ms, uint32_t max_window)
{
    int64_t avail = w->received - w->consumed;
    if ((int64_t)n > avail)
        n = (size_t)avail;
    mux_rxwin_idle(w, now_ms, rtt_ms); /* a stream busy again after a pause starts from the base */
    w->last_ms = now_ms;
    w->consumed += (int64_t)n;
    w->epoch_consumed += (int64_t)n;
    if (w->epoch_consumed >= w->window) {
        int64_t elapsed = now_ms - w->epoch_ms;
        if (w->queue_ms > 4 * w->queue_ok_ms && w->window > w->base) {
            /* a queue builds on the path: what this window adds in flight only waits there */
            uint32_t nw = w->window - w->window / 8;
            w->window = nw > w->base ? nw : w->base;
        } else if (rtt_ms > 0 && max_window > w->window && elapsed < 2 * rtt_ms && w->queue_ms <= w->queue_ok_ms) {
            /* while window-limited the measured rate is the window's own (a window per RTT), so
             * grow 4x a round trip (1 MiB reaches 16 MiB in two); straight to 2 x the measured
             * bandwidth-delay product when that is more */
            uint64_t nw = (uint64_t)w->window * 4;
            uint64_t bdp2 = (uint64_t)w->epoch_consumed * 2 * (uint64_t)rtt_ms / (uint64_t)(elapsed > 0 ? elapsed : 1);
            if (bdp2 > nw)
                nw = bdp2;
            w->window = nw > max_window ? max_window : (uint32_t)nw;
        }
        w->epoch_ms = now_ms;
        w->epoch_consumed = 0;
    }
    int64_t target = w->consumed + w->window;
    int64_t inc = target - w->limit;
    if (inc <= 0 || inc < (int64_t)(w->window / 4))
        return 0;
    if (inc > MUX_MAX_CREDIT) /* cannot happen with uint32 windows <= 2^31-1; stay safe */
        inc = MUX_MAX_CREDIT;
    w->limit += inc;
    return (uint32_t)inc;
}

/* Adds a received WINDOW |increment| to |*credit|. MUX_ERR_WINDOW_OVERFLOW for 0 or a credit
 * past 2^31-1. */
int mux_txcredit_add(int64_t *credit, uint32_t increment)
{
    if (increment == 0 || increment > MUX_MAX_CREDIT || *credit + (int64_t)increment > MUX_MAX_CREDIT)
        return MUX_ERR_WINDOW_OVERFLOW;
    *credit += increment;
    return 0;
}
