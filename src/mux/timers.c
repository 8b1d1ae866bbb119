/*
 * tunnelmux — the session's clock-driven work (include/mux/mux.h: next_timeout, handle_timeout):
 * handshake and keepalive timeouts, keepalive PINGs, RTT probe PINGs while busy, the idle release
 * of the zstd compressor, and giving idle memory back (grown windows, batch buffers). Time is
 * always passed in.
 */
#include "mem.h"
#include "mux_internal.h"

/*
 * PROTOCOL.md §8: a busy tunnel measures its RTT with PINGs too (keepalive PINGs only go out when
 * nothing is received): while streams are open and DATA moved since the last PING, one PING every
 * mux_rtt_probe_interval (2 x smoothed RTT, 100 ms .. 1 s), the next one once its PONG came back
 * (or after 1 s if it was lost).
 */
static int probe_wanted(const mux_session *s)
{
    return s->active > 0 && s->last_data_ms >= 0 && s->last_data_ms >= s->last_ping_ms && s->goaway_recv == 0;
}

static int probe_due(const mux_session *s, int64_t now_ms)
{
    if (!probe_wanted(s))
        return 0;
    int64_t since = now_ms - s->last_ping_ms;
    return s->ping_outstanding ? since >= MUX_RTT_PROBE_MAX_MS : since >= mux_rtt_probe_interval(&s->rtt);
}

/* Earliest armed deadline, or -1. */
int64_t mux_session_next_timeout(const mux_session *s)
{
    if (s == NULL || s->dead || s->hs == HS_REFUSED)
        return -1;
    if (s->hs != HS_ESTABLISHED)
        return s->opt.handshake_timeout_ms != 0 ? s->created_ms + s->opt.handshake_timeout_ms : -1;
    int64_t t = -1;
    if (s->opt.ping_timeout_ms != 0)
        t = s->last_recv_ms + s->opt.ping_timeout_ms;
    if (s->opt.ping_interval_ms != 0) {
        int64_t base = s->last_recv_ms > s->last_ping_ms ? s->last_recv_ms : s->last_ping_ms;
        int64_t p = base + s->opt.ping_interval_ms;
        if (t < 0 || p < t)
            t = p;
    }
    if (probe_wanted(s)) {
        int64_t p = s->last_ping_ms + (s->ping_outstanding ? MUX_RTT_PROBE_MAX_MS : mux_rtt_probe_interval(&s->rtt));
        if (t < 0 || p < t)
            t = p;
    }
    if (s->zstd_idle_jit > 0 && mux_zstd_tx_live(s->ztx) && !s->zend_pending) {
        int64_t z = s->last_compress_ms + s->zstd_idle_jit;
        if (t < 0 || z < t)
            t = z;
    }
    return t;
}

/*
 * No stream left: the buffers sized by the last burst (batch scratch, message reassembly,
 * decompressed body, compressor input, spare send chunks) go back to the allocator so an idle
 * tunnel costs its session struct only. Runs on timer ticks (keepalive pace), never per message.
 */
static void trim_idle_buffers(mux_session *s)
{
    if (!s->batch_out) {
        mux_buf_reset(&s->scratch);
        mux_buf_shrink(&s->scratch, 0, s->mem);
        mux_mem_free(s->mem, s->plan);
        s->plan = NULL;
        s->plancap = 0;
        mux_chunk_pool_free(&s->pool, s->mem);
    }
    if (!s->rx_in_msg && mux_buf_size(&s->rxmsg) == 0)
        mux_buf_shrink(&s->rxmsg, 0, s->mem);
    if (mux_buf_size(&s->ctrl) == 0)
        mux_buf_shrink(&s->ctrl, 0, s->mem);
    mux_buf_reset(&s->dbuf);
    mux_buf_shrink(&s->dbuf, 0, s->mem);
    mux_buf_reset(&s->zin);
    mux_buf_shrink(&s->zin, 0, s->mem);
}

/* Grown receive windows of streams that stopped consuming go back to their initial size, so the
 * growth budget (initial_conn_window) serves the streams that are busy now (PROTOCOL.md §6.2) —
 * as fast as the credit they were already granted is used up (recharge_growth). */
static void shrink_idle_windows(mux_session *s, int64_t now_ms)
{
    if (s->rx_grown == 0)
        return;
    for (mux_stream *st = s->streams.all; st != NULL; st = st->anext)
        if (mux_rxwin_idle(&st->rx, now_ms, mux_rtt_smoothed(&s->rtt)) != 0)
            mux_recharge_growth(s, st);
}

/* Runs due timers; see mux.h. */
int mux_session_handle_timeout(mux_session *s, int64_t now_ms)
{
    if (s == NULL)
        return MUX_ERR_INVALID_ARGUMENT;
    s->now = now_ms;
    if (s->dead || s->hs == HS_REFUSED)
        return 0;
    if (s->hs != HS_ESTABLISHED) {
        if (s->opt.handshake_timeout_ms != 0 && now_ms - s->created_ms >= s->opt.handshake_timeout_ms) {
            s->reason = "handshake timeout";
            s->peer_closed = 1; /* silent peer: nothing to drain (no lingering close) */
            return mux_die(s, MUX_ERR_TIMEOUT, s->hs == HS_HELLO_PENDING);
        }
        return 0;
    }
    if (s->opt.ping_timeout_ms != 0 && now_ms - s->last_recv_ms >= s->opt.ping_timeout_ms) {
        s->reason = "keepalive timeout: the peer is silent";
        s->peer_closed = 1; /* silent peer: nothing to drain (no lingering close) */
        return mux_die(s, MUX_ERR_TIMEOUT, 1);
    }
    if (s->opt.ping_interval_ms != 0 && now_ms - s->last_recv_ms >= s->opt.ping_interval_ms &&
        now_ms - s->last_ping_ms >= s->opt.ping_interval_ms)
        mux_session_ping(s, now_ms);
    else if (probe_due(s, now_ms))
        mux_session_ping(s, now_ms);
    /* PROTOCOL.md §3.2: an idle connection gives its compression context back (~1.6 MiB
     * at level 3): the next batch ends the zstd frame so the peer frees its decompressor too, and
     * the next compressed message starts a new frame with the RESET bit */
    if (s->zstd_idle_jit > 0 && mux_zstd_tx_live(s->ztx) && now_ms - s->last_compress_ms >= s->zstd_idle_jit)
        s->zend_pending = 1;
    shrink_idle_windows(s, now_ms);
    if (s->active == 0 && s->stubs == 0)
        trim_idle_buffers(s);
    return 0;
}
