/*
 * tunnelmux — credit accounting (PROTOCOL.md §6): the receive windows we grant (returned only when
 * the application consumes, batched at a quarter window, optionally auto-tuned) and the send
 * credit the peer grants us.
 */
#include "session_internal.h"

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
 * 2 * |rtt_ms|, the window doubles (up to |max_window|) and the growth rides on this increment.
 */
uint32_t mux_rxwin_consume(mux_rxwin *w, size_t n, int64_t now_ms, int64_t rtt_ms, uint32_t max_window)
{
    int64_t avail = w->received - w->consumed;
    if ((int64_t)n > avail)
        n = (size_t)avail;
    w->consumed += (int64_t)n;
    w->epoch_consumed += (int64_t)n;
    if (w->epoch_consumed >= w->window) {
        if (rtt_ms > 0 && max_window > w->window && now_ms - w->epoch_ms < 2 * rtt_ms) {
            uint64_t nw = (uint64_t)w->window * 2;
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
