/*
 * tunnelmux client — the daemon's Prometheus endpoint (METRICS_ADDR / --metrics-addr): an lws HTTP
 * server vhost on the daemon's own lws context, answering GET /metrics (see client.h).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "common/log.h"

#define METRICS_BUF_MAX (64 * 1024)

/* Per-HTTP-connection state: the rendered body (after LWS_PRE bytes) and how much was written. */
typedef struct {
    unsigned char *buf; /* LWS_PRE + len bytes */
    size_t len, off;
} metrics_pss;

static void put(char *buf, size_t cap, size_t *len, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void put(char *buf, size_t cap, size_t *len, const char *fmt, ...)
{
    if (*len >= cap)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf + *len, cap - *len, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    *len = (size_t)n < cap - *len ? *len + (size_t)n : cap;
}

static void metric(char *buf, size_t cap, size_t *len, const char *name, const char *type, const char *help, uint64_t v)
{
    put(buf, cap, len, "# HELP %s %s\n# TYPE %s %s\n%s %llu\n", name, help, name, type, name, (unsigned long long)v);
}

/* Renders the exposition; see client.h. */
int client_metrics_render(const client *c, char **out, size_t *outlen)
{
    static const char *const classes[6] = {"other", "1xx", "2xx", "3xx", "4xx", "5xx"};
    const client_metrics *m = &c->metrics;
    char *buf = malloc(METRICS_BUF_MAX);
    if (buf == NULL)
        return -1;
    size_t len = 0, cap = METRICS_BUF_MAX;
    mux_session_stats st;
    memset(&st, 0, sizeof(st));
    st.last_rtt_ms = -1;
    mux_session *s = c->tun != NULL ? tunnel_session(c->tun) : NULL;
    int up = s != NULL && mux_session_is_established(s);
    if (s != NULL)
        mux_session_get_stats(s, &st);
    metric(buf, cap, &len, "tunnelmux_daemon_connected", "gauge", "1 while the tunnel is registered with the server.",
           (uint64_t)up);
    metric(buf, cap, &len, "tunnelmux_daemon_connect_attempts_total", "counter", "Tunnel connections started.",
           m->connect_attempts);
    metric(buf, cap, &len, "tunnelmux_daemon_registrations_total", "counter", "Registrations accepted by the server.",
           m->registrations);
    metric(buf, cap, &len, "tunnelmux_daemon_reconnects_total", "counter", "Registrations after the first.",
           m->registrations > 0 ? m->registrations - 1 : 0);
    metric(buf, cap, &len, "tunnelmux_daemon_refusals_total", "counter", "Registrations refused by the server.", m->refusals);
    metric(buf, cap, &len, "tunnelmux_daemon_tunnels_lost_total", "counter", "Registered tunnels that went away.", m->tunnels_lost);
    metric(buf, cap, &len, "tunnelmux_daemon_requests_total", "counter", "Public requests received through the tunnel.",
           m->requests);
    put(buf, cap, &len,
        "# HELP tunnelmux_daemon_responses_total Response heads relayed from the local service, by status class.\n"
        "# TYPE tunnelmux_daemon_responses_total counter\n");
    for (int k = 0; k < 6; k++)
        put(buf, cap, &len, "tunnelmux_daemon_responses_total{code=\"%s\"} %llu\n", classes[k],
            (unsigned long long)m->responses[k]);
    metric(buf, cap, &len, "tunnelmux_daemon_stream_resets_total", "counter",
           "Streams this daemon aborted (local service unreachable or failed).", m->stream_resets);
    metric(buf, cap, &len, "tunnelmux_daemon_active_streams", "gauge", "Streams open on the current tunnel.", st.streams_active);
    metric(buf, cap, &len, "tunnelmux_daemon_zstd_contexts", "gauge",
           "zstd contexts allocated now on the current tunnel (0-2; released after 15-22 s without compressed traffic).",
           st.zstd_contexts);
    put(buf, cap, &len,
        "# HELP tunnelmux_daemon_tunnel_bytes_total Tunnel WebSocket bytes (in: from the server), all sessions.\n"
        "# TYPE tunnelmux_daemon_tunnel_bytes_total counter\n"
        "tunnelmux_daemon_tunnel_bytes_total{direction=\"in\"} %llu\n"
        "tunnelmux_daemon_tunnel_bytes_total{direction=\"out\"} %llu\n",
        (unsigned long long)(m->bytes_in + st.bytes_in), (unsigned long long)(m->bytes_out + st.bytes_out));
    put(buf, cap, &len,
        "# HELP tunnelmux_daemon_flow_blocked_seconds_total Time streams waited for flow-control credit.\n"
        "# TYPE tunnelmux_daemon_flow_blocked_seconds_total counter\n"
        "tunnelmux_daemon_flow_blocked_seconds_total %.3f\n",
        (double)(m->flow_blocked_ms + st.flow_blocked_ms) / 1000.0);
    put(buf, cap, &len,
        "# HELP tunnelmux_daemon_stream_stall_seconds_total Time streams had response data for the tunnel and did not "
        "send it, by cause: credit (the public reader is slow), peer (the connection window), socket (the tunnel "
        "socket).\n"
        "# TYPE tunnelmux_daemon_stream_stall_seconds_total counter\n"
        "tunnelmux_daemon_stream_stall_seconds_total{cause=\"credit\"} %.3f\n"
        "tunnelmux_daemon_stream_stall_seconds_total{cause=\"peer\"} %.3f\n"
        "tunnelmux_daemon_stream_stall_seconds_total{cause=\"socket\"} %.3f\n",
        (double)(m->stall_ms[MUX_STALL_CREDIT] + st.stall_ms[MUX_STALL_CREDIT]) / 1000.0,
        (double)(m->stall_ms[MUX_STALL_PEER] + st.stall_ms[MUX_STALL_PEER]) / 1000.0,
        (double)(m->stall_ms[MUX_STALL_SOCKET] + st.stall_ms[MUX_STALL_SOCKET]) / 1000.0);
    if (up && st.last_rtt_ms >= 0)
        put(buf, cap, &len,
            "# HELP tunnelmux_daemon_rtt_seconds Last tunnel round-trip time (PING/PONG).\n"
            "# TYPE tunnelmux_daemon_rtt_seconds gauge\ntunnelmux_daemon_rtt_seconds %.3f\n",
            (double)st.last_rtt_ms / 1000.0);
    if (up && st.srtt_ms >= 0)
        put(buf, cap, &len,
            "# HELP tunnelmux_daemon_rtt_min_seconds Smallest tunnel round-trip time of the last 5-10 s.\n"
            "# TYPE tunnelmux_daemon_rtt_min_seconds gauge\ntunnelmux_daemon_rtt_min_seconds %.3f\n"
            "# HELP tunnelmux_daemon_rtt_smoothed_seconds Smoothed tunnel round-trip time (RFC 6298 SRTT).\n"
            "# TYPE tunnelmux_daemon_rtt_smoothed_seconds gauge\ntunnelmux_daemon_rtt_smoothed_seconds %.3f\n",
            (double)st.min_rtt_ms / 1000.0, (double)st.srtt_ms / 1000.0);
    if (len >= cap) {
        free(buf);
        return -1;
    }
    *out = buf;
    *outlen = len;
    return 0;
}

/* Adds a finished session's counters; see client.h. */
void client_metrics_session_done(client *c, const mux_session *s)
{
    mux_session_stats st;
    mux_session_get_stats(s, &st);
    c->metrics.bytes_in += st.bytes_in;
    c->metrics.bytes_out += st.bytes_out;
    c->metrics.flow_blocked_ms += st.flow_blocked_ms;
    for (int k = 0; k < MUX_STALL_CAUSES; k++)
        c->metrics.stall_ms[k] += st.stall_ms[k];
}

static int simple_response(struct lws *wsi, unsigned status, const char *body)
{
    unsigned char hdr[LWS_PRE + 512], *p = hdr + LWS_PRE, *end = hdr + sizeof(hdr);
    size_t blen = strlen(body);
    if (lws_add_http_common_headers(wsi, status, "text/plain; charset=utf-8", (lws_filepos_t)blen, &p, end) ||
        lws_finalize_write_http_header(wsi, hdr + LWS_PRE, &p, end))
        return -1;
    unsigned char b[LWS_PRE + 128];
    if (blen > sizeof(b) - LWS_PRE)
        blen = sizeof(b) - LWS_PRE;
    memcpy(b + LWS_PRE, body, blen);
    if (lws_write(wsi, b + LWS_PRE, blen, LWS_WRITE_HTTP_FINAL) < 0)
        return -1;
    return lws_http_transaction_completed(wsi) ? -1 : 0;
}

static int metrics_http_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
    metrics_pss *pss = user;
    switch (reason) {
    case LWS_CALLBACK_HTTP: {
        const char *uri = in != NULL ? in : "";
        if (strcmp(uri, "/metrics") != 0)
            return simple_response(wsi, HTTP_STATUS_NOT_FOUND, "not found: try /metrics\n");
        client *c = lws_context_user(lws_get_context(wsi));
        char *body;
        size_t blen;
        if (client_metrics_render(c, &body, &blen) != 0)
            return simple_response(wsi, HTTP_STATUS_INTERNAL_SERVER_ERROR, "out of memory\n");
        free(pss->buf);
        pss->buf = malloc(LWS_PRE + blen);
        if (pss->buf == NULL) {
            free(body);
            return simple_response(wsi, HTTP_STATUS_INTERNAL_SERVER_ERROR, "out of memory\n");
        }
        memcpy(pss->buf + LWS_PRE, body, blen);
        free(body);
        pss->len = blen;
        pss->off = 0;
        unsigned char hdr[LWS_PRE + 512], *p = hdr + LWS_PRE, *end = hdr + sizeof(hdr);
        if (lws_add_http_common_headers(wsi, HTTP_STATUS_OK, "text/plain; version=0.0.4; charset=utf-8", (lws_filepos_t)blen, &p,
                                        end) ||
            lws_finalize_write_http_header(wsi, hdr + LWS_PRE, &p, end))
            return -1;
        lws_callback_on_writable(wsi);
        return 0;
    }
    case LWS_CALLBACK_HTTP_WRITEABLE: {
        if (pss == NULL || pss->buf == NULL)
            return -1;
        size_t n = pss->len - pss->off;
        if (n > 16384)
            n = 16384;
        int last = pss->off + n == pss->len;
        /* lws_write may use the LWS_PRE bytes before the pointer: those of buf belong to us (written data) */
        if (lws_write(wsi, pss->buf + LWS_PRE + pss->off, n, last ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP) < 0)
            return -1;
        pss->off += n;
        if (!last) {
            lws_callback_on_writable(wsi);
            return 0;
        }
        free(pss->buf);
        pss->buf = NULL;
        return lws_http_transaction_completed(wsi) ? -1 : 0;
    }
    case LWS_CALLBACK_CLOSED_HTTP:
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
        if (pss != NULL) {
            free(pss->buf);
            pss->buf = NULL;
        }
        return 0;
    default:
        return lws_callback_http_dummy(wsi, reason, user, in, len);
    }
}

static const struct lws_protocols metrics_protocols[] = {
    {"http", metrics_http_cb, sizeof(metrics_pss), 0, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

/* Starts the metrics vhost; see client.h. */
int client_metrics_start(client *c, char *err, size_t errlen)
{
    const char *addr = c->opt->metrics_addr != NULL ? c->opt->metrics_addr : "";
    if (addr[0] == '\0' || strcmp(addr, "off") == 0)
        return 0;
    char host[64];
    const char *colon = strrchr(addr, ':');
    const char *hs = addr, *he = colon;
    if (addr[0] == '[') {
        hs = addr + 1;
        he = colon != NULL && colon > addr && colon[-1] == ']' ? colon - 1 : NULL;
    }
    char *endp = NULL;
    long port = colon != NULL ? strtol(colon + 1, &endp, 10) : -1;
    if (colon == NULL || he == NULL || he <= hs || (size_t)(he - hs) >= sizeof(host) || endp == colon + 1 || *endp != '\0' ||
        port < 1 || port > 65535) {
        snprintf(err, errlen, "METRICS_ADDR: %s is not IP:PORT (e.g. 127.0.0.1:9091)", addr);
        return -1;
    }
    memcpy(host, hs, (size_t)(he - hs));
    host[he - hs] = '\0';
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof(info));
    info.port = (int)port;
    info.iface = host;
    info.protocols = metrics_protocols;
    info.vhost_name = "metrics";
    info.pt_serv_buf_size = 16384;
    c->metrics_vhost = lws_create_vhost(c->lws, &info);
    if (c->metrics_vhost == NULL) {
        snprintf(err, errlen, "METRICS_ADDR: cannot listen on %s", addr);
        return -1;
    }
    LOG_INFO(LOG_EV_CONF, "metrics listener: %s (GET /metrics)", addr);
    return 0;
}
