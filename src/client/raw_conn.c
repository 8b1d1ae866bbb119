/*
 * tunnelmux client — an lws RAW connection with optional TLS: the write and read loops and the
 * write-stall bookkeeping the tunnel and the local connections share (see raw_conn.h).
 */
#include "raw_conn.h"

int raw_conn_tls_write(struct lws *wsi, tls_membio *tls, const uint8_t *p, size_t len, uint8_t *stage, size_t cap)
{
    if (len > 0 && tls_membio_write(tls, p, len) != 0)
        return -1;
    size_t n;
    while ((n = tls_membio_take(tls, stage, cap)) > 0)
        if (lws_write(wsi, stage, n, LWS_WRITE_RAW) < 0)
            return -1;
    return 0;
}

int raw_conn_tls_drain(tls_membio *tls, uint8_t *scratch, size_t cap, raw_conn_verdict (*on_plain)(void *arg, uint8_t *p, size_t n),
                       void *arg)
{
    for (int i = 0; i < 4096; i++) {
        ssize_t n = tls_membio_read(tls, scratch, cap);
        if (n == 0)
            return 0;
        if (n < 0)
            return n == -1 ? RAW_CONN_ERR_TLS : RAW_CONN_ERR_CLOSED;
        raw_conn_verdict v = on_plain(arg, scratch, (size_t)n);
        if (v == RAW_CONN_FAIL)
            return RAW_CONN_ERR_CONSUMER;
        if (v == RAW_CONN_STOP)
            return 0;
    }
    return 0;
}

int raw_conn_stall_track(int64_t *deadline_ms, int pending, int progress, int64_t now_ms, int64_t timeout_ms)
{
    if (!pending) {
        if (*deadline_ms == 0)
            return 0;
        *deadline_ms = 0;
        return 1;
    }
    if (*deadline_ms != 0 && !progress)
        return 0;
    *deadline_ms = now_ms + timeout_ms;
    return 1;
}
