/*
 * tunnelmux server — counters and the Prometheus text exposition (see metrics.h).
 */
#include "common/clock.h"
#include "server/metrics.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const double metrics_buckets[METRICS_NBUCKETS] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};

static const char *const class_names[METRICS_NCLASSES] = {"other", "1xx", "2xx", "3xx", "4xx", "5xx"};

/* Allocates zeroed metrics; see metrics.h. */
metrics *metrics_new(void)
{
    metrics *m = calloc(1, sizeof(*m));
    if (m != NULL)
        m->started_unix_ms = clock_unix_ms();
    return m;
}

/* Frees |m| and its client entries; see metrics.h. */
void metrics_free(metrics *m)
{
    if (m == NULL)
        return;
    for (size_t i = 0; i < m->nclients; i++)
        free(m->clients[i]);
    free(m->clients);
    free(m);
}

static size_t hash_name(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s != '\0'; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h % (sizeof(((metrics *)0)->buckets) / sizeof(((metrics *)0)->buckets[0]));
}

/* Looks |name| up without creating; see metrics.h. */
metrics_client *metrics_client_find(const metrics *m, const char *name)
{
    for (metrics_client *c = m->buckets[hash_name(name)]; c != NULL; c = c->next) {
        if (strcmp(c->name, name) == 0)
            return c;
    }
    return NULL;
}

/* Looks |name| up, creating its entry; see metrics.h. */
metrics_client *metrics_client_get(metrics *m, const char *name)
{
    metrics_client *c = metrics_client_find(m, name);
    if (c != NULL)
        return c;
    if (m->nclients >= METRICS_MAX_CLIENTS || strlen(name) >= sizeof(c->name))
        return NULL;
    if (m->nclients == m->capclients) {
        size_t cap = m->capclients ? m->capclients * 2 : 16;
        metrics_client **v = realloc(m->clients, cap * sizeof(*v));
        if (v == NULL)
            return NULL;
        m->clients = v;
        m->capclients = cap;
    }
    if ((c = calloc(1, sizeof(*c))) == NULL)
        return NULL;
    snprintf(c->name, sizeof(c->name), "%s", name);
    c->queue_length_last = -1;
    size_t b = hash_name(name);
    c->next = m->buckets[b];
    m->buckets[b] = c;
    m->clients[m->nclients++] = c;
    return c;
}

/* Counts a registration; returns 1 for a reconnect (see metrics.h). */
int metrics_on_registered(metrics *m, const char *name)
{
    m->tunnels_accepted++;
    metrics_client *c = metrics_client_get(m, name);
    if (c == NULL)
        return 0;
    int again = c->connects > 0;
    c->connects++;
    if (again)
        m->reconnects++;
    return again;
}

void metrics_on_replica_registered(metrics *m)
{
    m->tunnels_accepted++;
}

/* Keeps the final session counters of |name|'s closed tunnel (see metrics.h). */
void metrics_on_tunnel_closed(metrics *m, const char *name, const mux_session_stats *final)
{
    metrics_client *c = metrics_client_find(m, name);
    if (c == NULL || final == NULL)
        return;
    c->tun_bytes_in += final->bytes_in;
    c->tun_bytes_out += final->bytes_out;
    c->tun_streams += final->streams_opened;
    c->tun_flow_blocked_ms += final->flow_blocked_ms;
    for (int k = 0; k < MUX_STALL_CAUSES; k++)
        c->tun_stall_ms[k] += final->stall_ms[k];
}

/* Counts a refused HELLO by reason (see metrics.h). */
void metrics_on_refused(metrics *m, const char *reason)
{
    if (reason == NULL || reason[0] == '\0')
        reason = "OTHER";
    for (size_t i = 0; i < m->nrefusals; i++) {
        if (strcmp(m->refusals[i].reason, reason) == 0) {
            m->refusals[i].count++;
            return;
        }
    }
    int other = strcmp(reason, "OTHER") == 0;
    /* the last slot is kept for OTHER, which also takes reasons that do not fit */
    if ((!other && m->nrefusals >= METRICS_MAX_REASONS - 1) || strlen(reason) >= sizeof(m->refusals[0].reason)) {
        metrics_on_refused(m, "OTHER");
        return;
    }
    snprintf(m->refusals[m->nrefusals].reason, sizeof(m->refusals[0].reason), "%s", reason);
    m->refusals[m->nrefusals++].count = 1;
}

/* Counts a rate-limit hit (see metrics.h). */
void metrics_on_reader_stalled(metrics *m)
{
    m->stalled_readers++;
}

void metrics_on_auth_throttled(metrics *m)
{
    m->auth_throttled++;
}

void metrics_on_rate_limited(metrics *m, const char *name)
{
    m->rate_limited++;
    metrics_client *c = name != NULL ? metrics_client_find(m, name) : NULL;
    if (c != NULL)
        c->rate_limited++;
}

/* Counts a request refused over the stream limit (see metrics.h). */
void metrics_on_retry(metrics *m)
{
    m->retries++;
}

void metrics_on_stream_refused(metrics *m, const char *name)
{
    m->streams_refused++;
    metrics_client *c = name != NULL ? metrics_client_find(m, name) : NULL;
    if (c != NULL)
        c->streams_refused++;
}

/* Status class index of |status| (see metrics.h). */
int metrics_status_class(int status)
{
    if (status >= 100 && status <= 599)
        return status / 100;
    return 0;
}

static void add_request(metrics_requests *r, const metrics_request_info *info)
{
    r->requests[metrics_status_class(info->status)]++;
    r->req_bytes_in += info->bytes_in;
    r->req_bytes_out += info->bytes_out;
    double s = info->seconds < 0 ? 0 : info->seconds;
    size_t b = 0;
    while (b < METRICS_NBUCKETS && s > metrics_buckets[b])
        b++;
    r->hist[b]++;
    r->duration_sum += s;
}

/* Copies at most cap-1 bytes of |s| (NULL = "") into |out| (per request: no printf). */
static void copy_str(char *out, size_t cap, const char *s)
{
    size_t n = s != NULL ? strnlen(s, cap - 1) : 0;
    if (n > 0)
        memcpy(out, s, n);
    out[n] = '\0';
}

/* Accounts a finished public request (see metrics.h). */
void metrics_on_request(metrics *m, const metrics_request_info *info, int64_t now_unix_ms)
{
    add_request(&m->total, info);
    metrics_client *c = info->client != NULL ? metrics_client_find(m, info->client) : NULL;
    if (c != NULL)
        add_request(&c->req, info);
    else
        m->unrouted++;
    if (c != NULL && info->queue_wait_ms >= 0) {
        c->queue_reports++;
        c->queue_waited += info->queue_wait_ms > 0;
        c->queue_wait_ms_sum += (uint64_t)info->queue_wait_ms;
        if ((uint64_t)info->queue_wait_ms > c->queue_wait_ms_max)
            c->queue_wait_ms_max = (uint64_t)info->queue_wait_ms;
        c->queue_length_last = info->queue_length;
    }
    metrics_recent *r = &m->recent[m->recent_next];
    m->recent_next = (m->recent_next + 1) % METRICS_RECENT;
    if (m->recent_count < METRICS_RECENT)
        m->recent_count++;
    r->at_unix_ms = now_unix_ms;
    copy_str(r->client, sizeof(r->client), info->client);
    copy_str(r->method, sizeof(r->method), info->method);
    copy_str(r->path, sizeof(r->path), info->path);
    r->status = info->status;
    r->seconds = info->seconds;
    r->bytes_in = info->bytes_in;
    r->bytes_out = info->bytes_out;
    r->queue_wait_ms = info->queue_wait_ms;
}

static uint64_t total_requests(const metrics_requests *r)
{
    uint64_t n = 0;
    for (int i = 0; i < METRICS_NCLASSES; i++)
        n += r->requests[i];
    return n;
}

static const metrics_live *find_live(const metrics_live *live, size_t nlive, const char *name)
{
    for (size_t i = 0; i < nlive; i++) {
        if (strcmp(live[i].name, name) == 0)
            return &live[i];
    }
    return NULL;
}

/* Recomputes rates (see metrics.h). */
void metrics_sample(metrics *m, const metrics_live *live, size_t nlive, int64_t now_ms)
{
    for (size_t i = 0; i < m->nclients; i++) {
        metrics_client *c = m->clients[i];
        const metrics_live *l = find_live(live, nlive, c->name);
        uint64_t reqs = total_requests(&c->req);
        uint64_t bin = c->tun_bytes_in + (l != NULL ? l->stats.bytes_in : 0);
        uint64_t bout = c->tun_bytes_out + (l != NULL ? l->stats.bytes_out : 0);
        if (c->sample_at_ms > 0 && now_ms > c->sample_at_ms) {
            double dt = (double)(now_ms - c->sample_at_ms) / 1000.0;
            c->rate_requests = (double)(reqs - c->sample_requests) / dt;
            c->rate_bytes_in = bin >= c->sample_bytes_in ? (double)(bin - c->sample_bytes_in) / dt : 0;
            c->rate_bytes_out = bout >= c->sample_bytes_out ? (double)(bout - c->sample_bytes_out) / dt : 0;
        }
        c->sample_requests = reqs;
        c->sample_bytes_in = bin;
        c->sample_bytes_out = bout;
        c->sample_at_ms = now_ms;
    }
}

/* ---------------------------------------------------------------- text output */

typedef struct {
    char *p;
    size_t len, cap;
    int oom;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...)
{
    if (b->oom)
        return;
    for (int attempt = 0; attempt < 2; attempt++) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->oom = 1;
            return;
        }
        if ((size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap * 2;
        while (cap - b->len <= (size_t)n)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (p == NULL) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
}

/* Prometheus label values: backslash, double quote and newline escaped. Client names are DNS
 * labels and reasons are code names, but escape anyway. */
static void sb_label(sbuf *b, const char *s)
{
    for (; *s != '\0'; s++) {
        if (*s == '\\')
            sb_printf(b, "\\\\");
        else if (*s == '"')
            sb_printf(b, "\\\"");
        else if (*s == '\n')
            sb_printf(b, "\\n");
        else
            sb_printf(b, "%c", *s);
    }
}

static void help(sbuf *b, const char *name, const char *type, const char *text)
{
    sb_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, text, name, type);
}

/* One sample line: NAME{client="X"[,extra]} VALUE (client NULL = no client label). */
static void sample_u64(sbuf *b, const char *name, const char *client, const char *extra, uint64_t v)
{
    sb_printf(b, "%s", name);
    if (client != NULL || extra != NULL) {
        sb_printf(b, "{");
        if (client != NULL) {
            sb_printf(b, "client=\"");
            sb_label(b, client);
            sb_printf(b, "\"%s", extra != NULL ? "," : "");
        }
        if (extra != NULL)
            sb_printf(b, "%s", extra);
        sb_printf(b, "}");
    }
    sb_printf(b, " %llu\n", (unsigned long long)v);
}

static void histogram(sbuf *b, const char *name, const char *client, const metrics_requests *r)
{
    uint64_t cum = 0;
    char le[64];
    for (int i = 0; i <= METRICS_NBUCKETS; i++) {
        cum += r->hist[i];
        if (i < METRICS_NBUCKETS)
            snprintf(le, sizeof(le), "le=\"%g\"", metrics_buckets[i]);
        else
            snprintf(le, sizeof(le), "le=\"+Inf\"");
        char n[96];
        snprintf(n, sizeof(n), "%s_bucket", name);
        sample_u64(b, n, client, le, cum);
    }
    sb_printf(b, "%s_sum", name);
    if (client != NULL) {
        sb_printf(b, "{client=\"");
        sb_label(b, client);
        sb_printf(b, "\"}");
    }
    sb_printf(b, " %.6f\n", r->duration_sum);
    char n[96];
    snprintf(n, sizeof(n), "%s_count", name);
    sample_u64(b, n, client, NULL, cum);
}

/* Renders the exposition (see metrics.h). */
int metrics_render_prometheus(const metrics *m, const metrics_live *live, size_t nlive, const metrics_memory *mem, char **out,
                              size_t *outlen)
{
    sbuf b = {.p = malloc(16384), .cap = 16384};
    if (b.p == NULL)
        return -1;
    b.p[0] = '\0';
    char extra[64];

    help(&b, "tunnelmux_connected_clients", "gauge", "Client daemons registered now.");
    sample_u64(&b, "tunnelmux_connected_clients", NULL, NULL, nlive);
    help(&b, "tunnelmux_tunnels_accepted_total", "counter", "Client registrations accepted.");
    sample_u64(&b, "tunnelmux_tunnels_accepted_total", NULL, NULL, m->tunnels_accepted);
    help(&b, "tunnelmux_reconnects_total", "counter", "Registrations of a client name that had registered before.");
    sample_u64(&b, "tunnelmux_reconnects_total", NULL, NULL, m->reconnects);
    help(&b, "tunnelmux_refusals_total", "counter", "Client registrations refused, by reason.");
    for (size_t i = 0; i < m->nrefusals; i++) {
        sb_printf(&b, "tunnelmux_refusals_total{reason=\"");
        sb_label(&b, m->refusals[i].reason);
        sb_printf(&b, "\"} %llu\n", (unsigned long long)m->refusals[i].count);
    }
    help(&b, "tunnelmux_rate_limit_hits_total", "counter", "Public requests refused by a rate limit.");
    sample_u64(&b, "tunnelmux_rate_limit_hits_total", NULL, NULL, m->rate_limited);
    help(&b, "tunnelmux_public_write_stalls_total", "counter",
         "Public readers cut (connection reset) for taking no bytes of a response for WRITE_TIMEOUT.");
    sample_u64(&b, "tunnelmux_public_write_stalls_total", NULL, NULL, m->stalled_readers);
    help(&b, "tunnelmux_basic_auth_throttled_total", "counter",
         "Requests answered 429 because their address sent wrong basic-auth credentials (public names and admin).");
    sample_u64(&b, "tunnelmux_basic_auth_throttled_total", NULL, NULL, m->auth_throttled);

    help(&b, "tunnelmux_requests_retried_total", "counter",
         "Requests whose tunnel was lost before any response byte, sent again on another tunnel of the name (safe retry: "
         "GET, HEAD, OPTIONS or Idempotency-Key, no body byte sent).");
    sample_u64(&b, "tunnelmux_requests_retried_total", NULL, NULL, m->retries);
    help(&b, "tunnelmux_streams_refused_total", "counter",
         "Public requests refused (503) because their tunnel had MAX_STREAMS_PER_CLIENT streams open.");
    sample_u64(&b, "tunnelmux_streams_refused_total", NULL, NULL, m->streams_refused);
    uint64_t zctx = 0;
    for (size_t i = 0; i < nlive; i++)
        zctx += live[i].stats.zstd_contexts;
    help(&b, "tunnelmux_zstd_contexts", "gauge",
         "zstd compression and decompression contexts allocated now, all registered tunnels (~1.6 MiB and ~0.6 MiB each; "
         "released after 15-22 s without compressed traffic).");
    sample_u64(&b, "tunnelmux_zstd_contexts", NULL, NULL, zctx);
    if (mem != NULL) {
        help(&b, "tunnelmux_response_bytes_held", "gauge",
             "Response bytes received from tunnels and not yet written to their public readers (what slow readers pin).");
        sample_u64(&b, "tunnelmux_response_bytes_held", NULL, NULL, mem->response_bytes_held);
        help(&b, "tunnelmux_tunnel_connections", "gauge", "Tunnel WebSocket connections open (registered or not).");
        sample_u64(&b, "tunnelmux_tunnel_connections", NULL, NULL, mem->tunnels);
    }

    help(&b, "tunnelmux_requests_total", "counter", "Public requests finished, by status class (all clients and unrouted).");
    for (int k = 0; k < METRICS_NCLASSES; k++) {
        snprintf(extra, sizeof(extra), "code=\"%s\"", class_names[k]);
        sample_u64(&b, "tunnelmux_requests_total", NULL, extra, m->total.requests[k]);
    }
    help(&b, "tunnelmux_unrouted_requests_total", "counter", "Public requests that reached no client (unknown or offline name).");
    sample_u64(&b, "tunnelmux_unrouted_requests_total", NULL, NULL, m->unrouted);
    help(&b, "tunnelmux_request_bytes_total", "counter", "Public body bytes (in: request bodies, out: response bodies).");
    sample_u64(&b, "tunnelmux_request_bytes_total", NULL, "direction=\"in\"", m->total.req_bytes_in);
    sample_u64(&b, "tunnelmux_request_bytes_total", NULL, "direction=\"out\"", m->total.req_bytes_out);
    help(&b, "tunnelmux_request_duration_seconds", "histogram", "Public request duration, begin to response end.");
    histogram(&b, "tunnelmux_request_duration_seconds", NULL, &m->total);

    help(&b, "tunnelmux_client_connected", "gauge", "1 while the client is registered.");
    for (size_t i = 0; i < m->nclients; i++)
        sample_u64(&b, "tunnelmux_client_connected", m->clients[i]->name, NULL,
                   find_live(live, nlive, m->clients[i]->name) != NULL);
    help(&b, "tunnelmux_client_requests_total", "counter", "Public requests finished per client, by status class.");
    for (size_t i = 0; i < m->nclients; i++) {
        for (int k = 0; k < METRICS_NCLASSES; k++) {
            snprintf(extra, sizeof(extra), "code=\"%s\"", class_names[k]);
            sample_u64(&b, "tunnelmux_client_requests_total", m->clients[i]->name, extra, m->clients[i]->req.requests[k]);
        }
    }
    help(&b, "tunnelmux_client_request_bytes_total", "counter", "Public body bytes per client (in: requests, out: responses).");
    for (size_t i = 0; i < m->nclients; i++) {
        sample_u64(&b, "tunnelmux_client_request_bytes_total", m->clients[i]->name, "direction=\"in\"",
                   m->clients[i]->req.req_bytes_in);
        sample_u64(&b, "tunnelmux_client_request_bytes_total", m->clients[i]->name, "direction=\"out\"",
                   m->clients[i]->req.req_bytes_out);
    }
    help(&b, "tunnelmux_client_request_duration_seconds", "histogram", "Public request duration per client.");
    for (size_t i = 0; i < m->nclients; i++)
        histogram(&b, "tunnelmux_client_request_duration_seconds", m->clients[i]->name, &m->clients[i]->req);

    help(&b, "tunnelmux_client_tunnel_bytes_total", "counter",
         "Tunnel WebSocket bytes per client (in: from the client, out: to the client), all sessions.");
    for (size_t i = 0; i < m->nclients; i++) {
        const metrics_client *c = m->clients[i];
        const metrics_live *l = find_live(live, nlive, c->name);
        sample_u64(&b, "tunnelmux_client_tunnel_bytes_total", c->name, "direction=\"in\"",
                   c->tun_bytes_in + (l ? l->stats.bytes_in : 0));
        sample_u64(&b, "tunnelmux_client_tunnel_bytes_total", c->name, "direction=\"out\"",
                   c->tun_bytes_out + (l ? l->stats.bytes_out : 0));
    }
    help(&b, "tunnelmux_client_streams_total", "counter", "Mux streams opened per client, all sessions.");
    for (size_t i = 0; i < m->nclients; i++) {
        const metrics_live *l = find_live(live, nlive, m->clients[i]->name);
        sample_u64(&b, "tunnelmux_client_streams_total", m->clients[i]->name, NULL,
                   m->clients[i]->tun_streams + (l ? l->stats.streams_opened : 0));
    }
    help(&b, "tunnelmux_client_active_streams", "gauge",
         "Public requests in progress per connected client: mux streams open and responses still buffered for their reader.");
    for (size_t i = 0; i < nlive; i++)
        sample_u64(&b, "tunnelmux_client_active_streams", live[i].name, NULL,
                   live[i].requests_active > live[i].stats.streams_active ? live[i].requests_active : live[i].stats.streams_active);
    help(&b, "tunnelmux_client_replicas", "gauge",
         "Tunnels registered for the client name (replicas: daemons presenting the same token).");
    for (size_t i = 0; i < nlive; i++)
        sample_u64(&b, "tunnelmux_client_replicas", live[i].name, NULL, live[i].replicas);
    help(&b, "tunnelmux_client_response_bytes_held", "gauge",
         "Response bytes of the client received by the server and not yet written to their public readers.");
    for (size_t i = 0; i < nlive; i++)
        sample_u64(&b, "tunnelmux_client_response_bytes_held", live[i].name, NULL, live[i].response_bytes_held);
    help(&b, "tunnelmux_client_zstd_contexts", "gauge", "zstd contexts allocated now for the client's tunnel (0-2).");
    for (size_t i = 0; i < nlive; i++)
        sample_u64(&b, "tunnelmux_client_zstd_contexts", live[i].name, NULL, live[i].stats.zstd_contexts);
    help(&b, "tunnelmux_client_flow_blocked_seconds_total", "counter",
         "Time streams spent with data to send and no flow-control credit, per client.");
    for (size_t i = 0; i < m->nclients; i++) {
        const metrics_client *c = m->clients[i];
        const metrics_live *l = find_live(live, nlive, c->name);
        uint64_t ms = c->tun_flow_blocked_ms + (l ? l->stats.flow_blocked_ms : 0);
        sb_printf(&b, "tunnelmux_client_flow_blocked_seconds_total{client=\"");
        sb_label(&b, c->name);
        sb_printf(&b, "\"} %.3f\n", (double)ms / 1000.0);
    }
    help(&b, "tunnelmux_client_stream_stall_seconds_total", "counter",
         "Time the server's streams of the client had data for the tunnel and did not send it, by cause: credit (the "
         "local service reads slowly), peer (the tunnel's connection window), socket (waiting for the tunnel socket).");
    static const char *const causes[MUX_STALL_CAUSES] = {"credit", "peer", "socket"};
    for (size_t i = 0; i < m->nclients; i++) {
        const metrics_client *c = m->clients[i];
        const metrics_live *l = find_live(live, nlive, c->name);
        for (int k = 0; k < MUX_STALL_CAUSES; k++) {
            uint64_t ms = c->tun_stall_ms[k] + (l ? l->stats.stall_ms[k] : 0);
            sb_printf(&b, "tunnelmux_client_stream_stall_seconds_total{client=\"");
            sb_label(&b, c->name);
            sb_printf(&b, "\",cause=\"%s\"} %.3f\n", causes[k], (double)ms / 1000.0);
        }
    }
    help(&b, "tunnelmux_client_rtt_seconds", "gauge", "Last tunnel round-trip time measured with PING/PONG.");
    for (size_t i = 0; i < nlive; i++) {
        if (live[i].stats.last_rtt_ms < 0)
            continue;
        sb_printf(&b, "tunnelmux_client_rtt_seconds{client=\"");
        sb_label(&b, live[i].name);
        sb_printf(&b, "\"} %.3f\n", (double)live[i].stats.last_rtt_ms / 1000.0);
    }
    help(&b, "tunnelmux_client_rtt_min_seconds", "gauge",
         "Smallest tunnel round-trip time of the last 5-10 s (PING/PONG, probed every 0.1-1 s while DATA flows).");
    for (size_t i = 0; i < nlive; i++) {
        if (live[i].stats.min_rtt_ms < 0)
            continue;
        sb_printf(&b, "tunnelmux_client_rtt_min_seconds{client=\"");
        sb_label(&b, live[i].name);
        sb_printf(&b, "\"} %.3f\n", (double)live[i].stats.min_rtt_ms / 1000.0);
    }
    help(&b, "tunnelmux_client_rtt_smoothed_seconds", "gauge", "Smoothed tunnel round-trip time (RFC 6298 SRTT).");
    for (size_t i = 0; i < nlive; i++) {
        if (live[i].stats.srtt_ms < 0)
            continue;
        sb_printf(&b, "tunnelmux_client_rtt_smoothed_seconds{client=\"");
        sb_label(&b, live[i].name);
        sb_printf(&b, "\"} %.3f\n", (double)live[i].stats.srtt_ms / 1000.0);
    }
    help(&b, "tunnelmux_client_connected_since_seconds", "gauge", "Unix time the client's current tunnel registered.");
    for (size_t i = 0; i < nlive; i++) {
        sb_printf(&b, "tunnelmux_client_connected_since_seconds{client=\"");
        sb_label(&b, live[i].name);
        sb_printf(&b, "\"} %.3f\n", (double)live[i].connected_since_unix_ms / 1000.0);
    }
    help(&b, "tunnelmux_client_reconnects_total", "counter", "Registrations of the client after its first.");
    for (size_t i = 0; i < m->nclients; i++)
        sample_u64(&b, "tunnelmux_client_reconnects_total", m->clients[i]->name, NULL,
                   m->clients[i]->connects > 0 ? m->clients[i]->connects - 1 : 0);
    help(&b, "tunnelmux_client_streams_refused_total", "counter",
         "Public requests for the client refused (503) with MAX_STREAMS_PER_CLIENT streams open.");
    for (size_t i = 0; i < m->nclients; i++)
        sample_u64(&b, "tunnelmux_client_streams_refused_total", m->clients[i]->name, NULL, m->clients[i]->streams_refused);
    help(&b, "tunnelmux_client_local_queue_wait_seconds_total", "counter",
         "Time public requests waited in the client's queue for a local connection (LOCAL_MAX_CONNECTIONS), as the client "
         "reported it in response heads.");
    for (size_t i = 0; i < m->nclients; i++) {
        sb_printf(&b, "tunnelmux_client_local_queue_wait_seconds_total{client=\"");
        sb_label(&b, m->clients[i]->name);
        sb_printf(&b, "\"} %.3f\n", (double)m->clients[i]->queue_wait_ms_sum / 1000.0);
    }
    help(&b, "tunnelmux_client_local_queue_reports_total", "counter",
         "Responses whose head reported the local queue wait (clients from protocol revision 2026-12 on).");
    for (size_t i = 0; i < m->nclients; i++)
        sample_u64(&b, "tunnelmux_client_local_queue_reports_total", m->clients[i]->name, NULL, m->clients[i]->queue_reports);
    help(&b, "tunnelmux_client_local_queue_waited_total", "counter",
         "Of those responses, the ones whose request waited for a local connection (a wait over 0 ms).");
    for (size_t i = 0; i < m->nclients; i++)
        sample_u64(&b, "tunnelmux_client_local_queue_waited_total", m->clients[i]->name, NULL, m->clients[i]->queue_waited);
    help(&b, "tunnelmux_client_local_queue_length", "gauge",
         "Requests waiting in the client's queue for a local connection, as of its last response head.");
    for (size_t i = 0; i < m->nclients; i++)
        if (m->clients[i]->queue_length_last >= 0)
            sample_u64(&b, "tunnelmux_client_local_queue_length", m->clients[i]->name, NULL,
                       (uint64_t)m->clients[i]->queue_length_last);
    help(&b, "tunnelmux_client_rate_limit_hits_total", "counter", "Public requests for the client refused by a rate limit.");
    for (size_t i = 0; i < m->nclients; i++)
        sample_u64(&b, "tunnelmux_client_rate_limit_hits_total", m->clients[i]->name, NULL, m->clients[i]->rate_limited);
    help(&b, "tunnelmux_start_time_seconds", "gauge", "Unix time the server started.");
    sb_printf(&b, "tunnelmux_start_time_seconds %.3f\n", (double)m->started_unix_ms / 1000.0);

    if (b.oom) {
        free(b.p);
        return -1;
    }
    *out = b.p;
    *outlen = b.len;
    return 0;
}
