/*
 * tunnelmux client — the daemon's Prometheus endpoint (METRICS_ADDR / --metrics-addr): an lws HTTP
 * server vhost on the daemon's own lws context, answering GET /metrics (see metrics.h).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/log.h"
#include "metrics.h"
#include "tunnel.h"

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

/* Renders the exposition; see metrics.h. */
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
    /* every tunnel's session summed (one per SERVER_URL element); the RTT is the slowest one's */
    for (size_t i = 0; i < c->nservers; i++) {
        mux_session *s = c->servers[i].tun != NULL ? tunnel_session(c->servers[i].tun) : NULL;
        if (s == NULL)
            continue;
        mux_session_stats one;
        mux_session_get_stats(s, &one);
        st.bytes_in += one.bytes_in, st.bytes_out += one.bytes_out;
        st.streams_active += one.streams_active;
        st.zstd_contexts += one.zstd_contexts;
        st.flow_blocked_ms += one.flow_blocked_ms;
        if (mux_session_is_established(s) && one.last_rtt_ms > st.last_rtt_ms)
            st.last_rtt_ms = one.last_rtt_ms;
    }
    size_t nup = tunnel_count_up(c);
    int up = nup > 0;
    metric(buf, cap, &len, "tunnelmux_daemon_connected", "gauge", "1 while at least one tunnel is registered with a server.",
           (uint64_t)up);
    metric(buf, cap, &len, "tunnelmux_daemon_tunnels_up", "gauge", "Tunnels registered now (one per SERVER_URL element at most).",
           (uint64_t)nup);
    put(buf, cap, &len,
        "# HELP tunnelmux_daemon_tunnel_state State of the tunnel to each SERVER_URL element (1 for the current state).\n"
        "# TYPE tunnelmux_daemon_tunnel_state gauge\n");
    for (size_t i = 0; i < c->nservers; i++) {
        if (!c->servers[i].in_use)
            continue;
        static const char *const states[] = {"up", "connecting", "down", "given_up"};
        const char *now = tunnel_state_name(&c->servers[i]);
        char label[sizeof(c->servers[i].url.hostport)]; /* a label value: no quote or backslash */
        snprintf(label, sizeof(label), "%s", c->servers[i].url.hostport);
        for (char *p = label; *p; p++)
            if (*p == '"' || *p == '\\')
                *p = '_';
        for (size_t k = 0; k < sizeof(states) / sizeof(states[0]); k++)
            put(buf, cap, &len, "tunnelmux_daemon_tunnel_state{server=\"%d\",url=\"%s\",address=\"%s\",state=\"%s\"} %d\n",
                c->servers[i].index, label, c->servers[i].addr, states[k], strcmp(now, states[k]) == 0);
    }
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
    metric(buf, cap, &len, "tunnelmux_daemon_active_streams", "gauge", "Streams open on the current tunnels.", st.streams_active);
    metric(buf, cap, &len, "tunnelmux_daemon_zstd_contexts", "gauge",
           "zstd contexts allocated now on the current tunnels (0-2 each; released after 15-22 s without compressed traffic).",
           st.zstd_contexts);
    /* local connection budget (LOCAL_MAX_CONNECTIONS, LOCAL_QUEUE_MAX, LOCAL_CONNECT_TIMEOUT) */
    const conn_queue *q = &c->lq;
    metric(buf, cap, &len, "tunnelmux_daemon_local_connections_limit", "gauge",
           "LOCAL_MAX_CONNECTIONS: local connections in use at once (0 = no limit).", (uint64_t)q->max_active);
    put(buf, cap, &len,
        "# HELP tunnelmux_daemon_local_connections Connections to the local service: in use by a request (budget), idle in the "
        "keep-alive pool (budget), upgraded (WebSockets, outside the budget).\n"
        "# TYPE tunnelmux_daemon_local_connections gauge\n"
        "tunnelmux_daemon_local_connections{state=\"in_use\"} %lld\n"
        "tunnelmux_daemon_local_connections{state=\"idle\"} %d\n"
        "tunnelmux_daemon_local_connections{state=\"upgraded\"} %lld\n",
        (long long)q->active, c->pool.n, (long long)c->local_upgraded);
    metric(buf, cap, &len, "tunnelmux_daemon_local_connections_opening", "gauge",
           "New local connections not answered yet (LOCAL_MAX_CONNECTING bounds them).", (uint64_t)q->opening);
    metric(buf, cap, &len, "tunnelmux_daemon_local_connects_total", "counter",
           "Fresh connections opened to the local service (keep-alive reuse not counted).", m->local_connects);
    metric(buf, cap, &len, "tunnelmux_daemon_local_connect_timeouts_total", "counter",
           "Connect attempts to the local service ended by LOCAL_CONNECT_TIMEOUT.", m->local_connect_timeouts);
    metric(buf, cap, &len, "tunnelmux_daemon_local_queue_length", "gauge", "Requests waiting for a local connection now.",
           (uint64_t)q->queued);
    metric(buf, cap, &len, "tunnelmux_daemon_local_queue_peak", "gauge", "Longest queue of requests seen since start.",
           (uint64_t)q->peak_queued);
    put(buf, cap, &len,
        "# HELP tunnelmux_daemon_local_queue_oldest_seconds How long the oldest waiting request has waited.\n"
        "# TYPE tunnelmux_daemon_local_queue_oldest_seconds gauge\ntunnelmux_daemon_local_queue_oldest_seconds %.3f\n",
        (double)conn_queue_oldest_wait_ms(q, clock_mono_ms()) / 1000.0);
    metric(buf, cap, &len, "tunnelmux_daemon_local_queue_refused_total", "counter",
           "Requests refused because LOCAL_QUEUE_MAX requests were already waiting (the user got 503).", q->refused);
    put(buf, cap, &len,
        "# HELP tunnelmux_daemon_local_queue_wait_seconds Time requests waited for a local connection (0 when one was free; "
        "also waits that ended without one: cancelled or timed out).\n"
        "# TYPE tunnelmux_daemon_local_queue_wait_seconds histogram\n");
    uint64_t cum = 0;
    for (int b = 0; b < CONN_QUEUE_BUCKETS; b++) {
        cum += q->wait_buckets[b];
        put(buf, cap, &len, "tunnelmux_daemon_local_queue_wait_seconds_bucket{le=\"%g\"} %llu\n", conn_queue_bucket_le[b],
            (unsigned long long)cum);
    }
    cum += q->wait_buckets[CONN_QUEUE_BUCKETS];
    put(buf, cap, &len,
        "tunnelmux_daemon_local_queue_wait_seconds_bucket{le=\"+Inf\"} %llu\n"
        "tunnelmux_daemon_local_queue_wait_seconds_sum %.3f\n"
        "tunnelmux_daemon_local_queue_wait_seconds_count %llu\n",
        (unsigned long long)cum, (double)q->wait_ms_sum / 1000.0, (unsigned long long)q->waits);
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

/* Starts the metrics vhost; see metrics.h. */
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
