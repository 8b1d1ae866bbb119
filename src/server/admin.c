/*
 * tunnelmux server — admin listener, JSON API and dashboard assets (see admin.h; the access log is
 * access_log.c).
 *
 * JSON is built with jansson (never hand-formatted); strings that are not valid UTF-8 (request
 * paths are attacker-controlled bytes) are sanitised first because jansson refuses them.
 */
#include "common/clock.h"
#include "server/admin.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/sha.h>

#include "common/config.h"
#include "common/log.h"
#include "server/dashboard.h"
#include "server/metrics.h"
#include "server/registry.h"
#include "server/route.h"
#include "server/security.h"
#include "server/tunnel.h"

#define SAMPLE_MS 1000 /* rate sampling period */

typedef struct {
    h2o_handler_t super;
    struct admin *a;
} admin_handler;

struct admin {
    server *srv;
    h2o_globalconf_t config;
    h2o_context_t ctx;
    h2o_accept_ctx_t accept_ctx;
    h2o_socket_t *listener;
    h2o_timeout_t sample_timeout;
    h2o_timeout_entry_t sample_entry;
    int auth;                                     /* basic auth required */
    unsigned char expected[SHA256_DIGEST_LENGTH]; /* SHA-256 of base64("user:password") */
};

/* ---------------------------------------------------------------- live tunnel state */

/* Adds the counters of |b| (another replica of the same name) into |a|. */
static void merge_stats(mux_session_stats *a, const mux_session_stats *b)
{
    a->bytes_in += b->bytes_in, a->bytes_out += b->bytes_out;
    a->messages_in += b->messages_in, a->messages_out += b->messages_out;
    a->frames_in += b->frames_in, a->frames_out += b->frames_out;
    a->data_bytes_in += b->data_bytes_in, a->data_bytes_out += b->data_bytes_out;
    a->streams_opened += b->streams_opened, a->streams_closed += b->streams_closed;
    a->streams_active += b->streams_active;
    a->flow_blocked_ms += b->flow_blocked_ms;
    if (b->last_rtt_ms > a->last_rtt_ms)
        a->last_rtt_ms = b->last_rtt_ms; /* the slowest replica */
    a->zstd_contexts += b->zstd_contexts;
}

/* Fills a malloc'ed array with one entry per registered name (its replicas' tunnels summed) and its
 * public requests in progress; returns the count (0 with *out NULL-safe). |held| (may be NULL):
 * response bytes held for all readers. */
static size_t gather_live(server *srv, metrics_live **out, uint64_t *held)
{
    size_t n = 0, cap = srv->ntunnels > 0 ? srv->ntunnels : 1;
    metrics_live *v = calloc(cap, sizeof(*v));
    *out = v;
    if (v == NULL)
        return 0;
    for (tunnel *t = tunnel_next(srv, NULL); t != NULL && n < cap; t = tunnel_next(srv, t)) {
        if (!tunnel_serves_name(t)) /* handed over: draining, unnamed */
            continue;
        void *const *reps;
        size_t nreps = registry_replicas(&srv->reg, tunnel_name(t), &reps, NULL);
        if (nreps == 0 || reps[0] != t)
            continue; /* the name's first replica gathers them all */
        v[n].name = tunnel_name(t);
        v[n].peer = tunnel_peer(t);
        v[n].connected_since_unix_ms = tunnel_connected_unix_ms(t);
        mux_session_get_stats(tunnel_session(t), &v[n].stats);
        v[n].nworst = mux_session_worst_streams(tunnel_session(t), server_now(srv), v[n].worst, METRICS_WORST_STREAMS);
        v[n].replicas = 1;
        for (size_t k = 1; k < nreps; k++) {
            tunnel *r = reps[k];
            if (tunnel_session(r) == NULL || tunnel_is_dying(r))
                continue;
            mux_session_stats st;
            mux_session_get_stats(tunnel_session(r), &st);
            merge_stats(&v[n].stats, &st);
            v[n].replicas++;
        }
        n++;
    }
    uint64_t h = tunnel_gather_requests(srv, v, n);
    if (held != NULL)
        *held = h;
    return n;
}

static void on_sample(h2o_timeout_entry_t *e)
{
    struct admin *a = H2O_STRUCT_FROM_MEMBER(struct admin, sample_entry, e);
    metrics_live *live;
    size_t n = gather_live(a->srv, &live, NULL);
    metrics_sample(a->srv->metrics, live, n, (int64_t)h2o_now(a->ctx.loop));
    free(live);
    h2o_timeout_link(a->ctx.loop, &a->sample_timeout, &a->sample_entry);
}

/* ---------------------------------------------------------------- JSON */

/* A JSON string of |s|; bytes that do not form valid UTF-8 become '?'. Never NULL unless OOM. */
static json_t *jstr(const char *s)
{
    json_t *j = json_string(s != NULL ? s : "");
    if (j != NULL)
        return j;
    size_t n = strlen(s);
    char *copy = malloc(n + 1);
    if (copy == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++)
        copy[i] = ((unsigned char)s[i] >= 0x80 || s[i] == 0) ? '?' : s[i];
    copy[n] = '\0';
    j = json_string(copy);
    free(copy);
    return j;
}

static json_t *jint(uint64_t v)
{
    return json_integer(v > (uint64_t)INT64_MAX ? INT64_MAX : (json_int_t)v);
}

static void iso_time(int64_t ms, char *out, size_t cap)
{
    time_t sec = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&sec, &tm);
    size_t n = strftime(out, cap, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, cap - n, ".%03dZ", (int)(ms % 1000));
}

static json_t *by_class(const metrics_requests *r)
{
    static const char *const names[METRICS_NCLASSES] = {"other", "1xx", "2xx", "3xx", "4xx", "5xx"};
    json_t *o = json_object();
    for (int k = 0; k < METRICS_NCLASSES; k++)
        json_object_set_new(o, names[k], jint(r->requests[k]));
    return o;
}

static uint64_t sum_requests(const metrics_requests *r)
{
    uint64_t n = 0;
    for (int k = 0; k < METRICS_NCLASSES; k++)
        n += r->requests[k];
    return n;
}

/* The body of GET /api/clients (caller frees with free()). */
static char *render_clients_json(server *srv)
{
    metrics *m = srv->metrics;
    metrics_live *live;
    size_t nlive = gather_live(srv, &live, NULL);
    int64_t now = clock_unix_ms();
    char when[48];
    json_t *root = json_object();
    json_t *s = json_object();
    json_object_set_new(s, "version", json_string(TUNNELMUX_VERSION));
    json_object_set_new(s, "domain", jstr(srv->domain));
    json_object_set_new(s, "started_unix_ms", json_integer(m->started_unix_ms));
    json_object_set_new(s, "uptime_s", json_integer((now - m->started_unix_ms) / 1000));
    json_object_set_new(s, "connected_clients", jint(nlive));
    json_object_set_new(s, "tunnels_accepted", jint(m->tunnels_accepted));
    json_object_set_new(s, "reconnects", jint(m->reconnects));
    json_object_set_new(s, "rate_limit_hits", jint(m->rate_limited));
    json_object_set_new(s, "requests_total", jint(sum_requests(&m->total)));
    json_object_set_new(s, "requests_by_class", by_class(&m->total));
    json_object_set_new(s, "unrouted_requests", jint(m->unrouted));
    json_object_set_new(s, "bytes_in", jint(m->total.req_bytes_in));
    json_object_set_new(s, "bytes_out", jint(m->total.req_bytes_out));
    json_t *ref = json_object();
    for (size_t i = 0; i < m->nrefusals; i++)
        json_object_set_new(ref, m->refusals[i].reason, jint(m->refusals[i].count));
    json_object_set_new(s, "refusals", ref);
    json_object_set_new(root, "server", s);

    json_t *arr = json_array();
    for (size_t i = 0; i < nlive; i++) {
        const metrics_live *l = &live[i];
        const metrics_client *c = metrics_client_find(m, l->name);
        json_t *o = json_object();
        json_object_set_new(o, "name", jstr(l->name));
        json_object_set_new(o, "address", jstr(l->peer));
        json_object_set_new(o, "replicas", jint(l->replicas));
        json_t *tuns = json_array();
        void *const *reps;
        size_t nreps = registry_replicas(&srv->reg, l->name, &reps, NULL);
        for (size_t k = 0; k < nreps; k++) {
            const tunnel *t = reps[k];
            json_t *to = json_object();
            json_object_set_new(to, "address", jstr(tunnel_peer(t)));
            json_object_set_new(to, "connected_since_unix_ms", json_integer(tunnel_connected_unix_ms(t)));
            json_object_set_new(to, "open_requests", jint(tunnel_open_requests(t)));
            json_object_set_new(to, "state", json_string(tunnel_state_name(t)));
            json_array_append_new(tuns, to);
        }
        json_object_set_new(o, "tunnels", tuns);
        iso_time(l->connected_since_unix_ms, when, sizeof(when));
        json_object_set_new(o, "connected_since", json_string(when));
        json_object_set_new(o, "connected_since_unix_ms", json_integer(l->connected_since_unix_ms));
        json_object_set_new(o, "streams_active",
                            jint(l->requests_active > l->stats.streams_active ? l->requests_active : l->stats.streams_active));
        json_object_set_new(o, "response_bytes_held", jint(l->response_bytes_held));
        json_object_set_new(o, "zstd_contexts", jint(l->stats.zstd_contexts));
        json_object_set_new(o, "streams_total", jint((c ? c->tun_streams : 0) + l->stats.streams_opened));
        json_object_set_new(o, "rtt_ms", l->stats.last_rtt_ms >= 0 ? json_integer(l->stats.last_rtt_ms) : json_null());
        json_object_set_new(o, "rtt_min_ms", l->stats.min_rtt_ms >= 0 ? json_integer(l->stats.min_rtt_ms) : json_null());
        json_object_set_new(o, "rtt_smoothed_ms", l->stats.srtt_ms >= 0 ? json_integer(l->stats.srtt_ms) : json_null());
        json_object_set_new(o, "flow_blocked_ms", jint((c ? c->tun_flow_blocked_ms : 0) + l->stats.flow_blocked_ms));
        json_t *stall = json_object();
        static const char *const causes[MUX_STALL_CAUSES] = {"credit", "peer", "socket"};
        for (int k = 0; k < MUX_STALL_CAUSES; k++)
            json_object_set_new(stall, causes[k], jint((c ? c->tun_stall_ms[k] : 0) + l->stats.stall_ms[k]));
        json_object_set_new(o, "stall_ms", stall);
        json_t *worst = json_array();
        for (size_t k = 0; k < l->nworst; k++) {
            const mux_stream_stall *w = &l->worst[k];
            json_t *e = json_object();
            json_object_set_new(e, "stream_id", jint(w->id));
            json_object_set_new(e, "open", json_boolean(w->open));
            json_object_set_new(e, "credit_ms", jint(w->stall_ms[MUX_STALL_CREDIT]));
            json_object_set_new(e, "peer_ms", jint(w->stall_ms[MUX_STALL_PEER]));
            json_object_set_new(e, "socket_ms", jint(w->stall_ms[MUX_STALL_SOCKET]));
            json_object_set_new(e, "bytes_sent", jint(w->bytes_sent));
            json_object_set_new(e, "age_ms", jint(w->age_ms > 0 ? (uint64_t)w->age_ms : 0));
            json_array_append_new(worst, e);
        }
        json_object_set_new(o, "worst_streams", worst);
        json_object_set_new(o, "tunnel_bytes_in", jint((c ? c->tun_bytes_in : 0) + l->stats.bytes_in));
        json_object_set_new(o, "tunnel_bytes_out", jint((c ? c->tun_bytes_out : 0) + l->stats.bytes_out));
        if (c != NULL) {
            json_object_set_new(o, "requests_total", jint(sum_requests(&c->req)));
            json_object_set_new(o, "requests_by_class", by_class(&c->req));
            json_object_set_new(o, "bytes_in", jint(c->req.req_bytes_in));
            json_object_set_new(o, "bytes_out", jint(c->req.req_bytes_out));
            json_object_set_new(o, "reconnects", jint(c->connects > 0 ? c->connects - 1 : 0));
            json_object_set_new(o, "rate_limit_hits", jint(c->rate_limited));
            json_t *q = json_object(); /* the client's local connection queue (its response heads report it) */
            json_object_set_new(q, "length", c->queue_length_last >= 0 ? json_integer(c->queue_length_last) : json_null());
            json_object_set_new(q, "reports", jint(c->queue_reports));
            json_object_set_new(q, "waited", jint(c->queue_waited));
            json_object_set_new(q, "wait_ms_avg",
                                c->queue_reports > 0 ? json_real((double)c->queue_wait_ms_sum / (double)c->queue_reports)
                                                     : json_null());
            json_object_set_new(q, "wait_ms_max", jint(c->queue_wait_ms_max));
            json_object_set_new(o, "local_queue", q);
            json_t *r = json_object();
            json_object_set_new(r, "requests_per_s", json_real(c->rate_requests));
            json_object_set_new(r, "bytes_in_per_s", json_real(c->rate_bytes_in));
            json_object_set_new(r, "bytes_out_per_s", json_real(c->rate_bytes_out));
            json_object_set_new(o, "rates", r);
        }
        json_array_append_new(arr, o);
    }
    json_object_set_new(root, "clients", arr);

    json_t *rec = json_array();
    for (size_t k = 0; k < m->recent_count; k++) { /* newest first */
        const metrics_recent *r = &m->recent[(m->recent_next + METRICS_RECENT - 1 - k) % METRICS_RECENT];
        json_t *o = json_object();
        json_object_set_new(o, "at_unix_ms", json_integer(r->at_unix_ms));
        json_object_set_new(o, "client", jstr(r->client));
        json_object_set_new(o, "method", jstr(r->method));
        json_object_set_new(o, "path", jstr(r->path));
        json_object_set_new(o, "status", json_integer(r->status));
        json_object_set_new(o, "duration_ms", json_real(r->seconds * 1000.0));
        json_object_set_new(o, "bytes_in", jint(r->bytes_in));
        json_object_set_new(o, "bytes_out", jint(r->bytes_out));
        json_object_set_new(o, "queue_wait_ms", r->queue_wait_ms >= 0 ? json_integer(r->queue_wait_ms) : json_null());
        json_array_append_new(rec, o);
    }
    json_object_set_new(root, "recent", rec);
    free(live);
    char *out = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    return out;
}

/* ---------------------------------------------------------------- HTTP */

static void add_common_headers(h2o_req_t *req, const char *ctype)
{
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, ctype, strlen(ctype));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("no-store"));
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("x-content-type-options"), 0, NULL, H2O_STRLIT("nosniff"));
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("x-frame-options"), 0, NULL, H2O_STRLIT("DENY"));
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("content-security-policy"), 0, NULL,
                          H2O_STRLIT("default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"));
}

/* Sends |body| (copied by h2o) with |status|. */
static int respond(h2o_req_t *req, int status, const char *reason, const char *ctype, const char *body, size_t len)
{
    req->res.status = status;
    req->res.reason = reason;
    add_common_headers(req, ctype);
    h2o_send_inline(req, body, len);
    return 0;
}

static int respond_json_error(h2o_req_t *req, int status, const char *reason, const char *msg)
{
    json_t *o = json_object();
    json_object_set_new(o, "error", jstr(msg));
    char *body = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (body == NULL)
        return respond(req, 500, "Internal Server Error", "text/plain; charset=utf-8", H2O_STRLIT("out of memory\n"));
    respond(req, status, reason, "application/json", body, strlen(body));
    free(body);
    return 0;
}

static int authorized(struct admin *a, h2o_req_t *req)
{
    if (!a->auth)
        return 1;
    ssize_t i = h2o_find_header(&req->headers, H2O_TOKEN_AUTHORIZATION, -1);
    if (i == -1)
        return 0;
    h2o_iovec_t v = req->headers.entries[i].value;
    if (v.len < 6 || strncasecmp(v.base, "basic ", 6) != 0)
        return 0;
    const char *p = v.base + 6, *end = v.base + v.len;
    while (p < end && *p == ' ')
        p++;
    while (end > p && end[-1] == ' ')
        end--;
    unsigned char d[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)p, (size_t)(end - p), d); /* equal-length digests: constant-time compare */
    return CRYPTO_memcmp(d, a->expected, sizeof(d)) == 0;
}

static int serve_asset(h2o_req_t *req, const unsigned char *data, size_t len, const char *ctype)
{
    return respond(req, 200, "OK", ctype, (const char *)data, len);
}

static int handle_metrics(struct admin *a, h2o_req_t *req)
{
    metrics_live *live;
    metrics_memory mem = {.tunnels = a->srv->ntunnels};
    size_t n = gather_live(a->srv, &live, &mem.response_bytes_held);
    char *body = NULL;
    size_t len = 0;
    int rv = metrics_render_prometheus(a->srv->metrics, live, n, &mem, &body, &len);
    free(live);
    if (rv != 0)
        return respond(req, 500, "Internal Server Error", "text/plain; charset=utf-8", H2O_STRLIT("out of memory\n"));
    respond(req, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", body, len);
    free(body);
    return 0;
}

static int handle_disconnect(struct admin *a, h2o_req_t *req, const char *name, size_t nlen)
{
    char n[64];
    if (!h2o_memis(req->method.base, req->method.len, H2O_STRLIT("POST")))
        return respond_json_error(req, 405, "Method Not Allowed", "use POST");
    ssize_t i = h2o_find_header_by_str(&req->headers, H2O_STRLIT("x-tm-admin"), -1);
    if (i == -1 || !h2o_memis(req->headers.entries[i].value.base, req->headers.entries[i].value.len, H2O_STRLIT("1")))
        return respond_json_error(req, 403, "Forbidden", "missing header X-TM-Admin: 1");
    if (nlen == 0 || nlen >= sizeof(n) || !cfg_is_dns_label(name, nlen))
        return respond_json_error(req, 400, "Bad Request", "not a client name");
    memcpy(n, name, nlen);
    n[nlen] = '\0';
    for (size_t k = 0; k < nlen; k++)
        n[k] = (n[k] >= 'A' && n[k] <= 'Z') ? (char)(n[k] - 'A' + 'a') : n[k];
    void *const *vals;
    tunnel *reps[REGISTRY_MAX_REPLICAS];
    size_t nreps = registry_replicas(&a->srv->reg, n, &vals, NULL), live = 0;
    for (size_t k = 0; k < nreps && k < REGISTRY_MAX_REPLICAS; k++) /* copied: disconnecting changes the registry */
        if (!tunnel_is_dying(vals[k]))
            reps[live++] = vals[k];
    if (live == 0)
        return respond_json_error(req, 404, "Not Found", "no such client connected");
    char ip[NI_MAXHOST];
    security_peer_ip(req, ip, sizeof(ip));
    LOG_INFO(LOG_EV_CONF, "admin: disconnect of %s requested from %s (%zu tunnel(s))", n, ip, live);
    for (size_t k = 0; k < live; k++) /* every replica of the name */
        tunnel_disconnect(reps[k], "disconnected by an administrator");
    json_t *o = json_object();
    json_object_set_new(o, "disconnected", jstr(n));
    char *body = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (body == NULL)
        return respond(req, 500, "Internal Server Error", "text/plain; charset=utf-8", H2O_STRLIT("out of memory\n"));
    respond(req, 200, "OK", "application/json", body, strlen(body));
    free(body);
    return 0;
}

/* GET /healthz (docs/SCALING.md): 200 "ok" while serving, 503 "starting" for HEALTH_GRACE after
 * start (the daemons are reconnecting: their names would be 404 here), 503 "draining" from the
 * start of a SIGTERM drain, so a load balancer stops sending public traffic before anything closes. It needs
 * no credentials even with ADMIN_USER (health checkers rarely carry them) and reveals nothing but
 * that one state: no counts, no names, no version. */
static int handle_healthz(struct admin *a, h2o_req_t *req)
{
    int get = h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET")) ||
              h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD"));
    if (!get)
        return respond(req, 405, "Method Not Allowed", "text/plain; charset=utf-8", H2O_STRLIT("use GET\n"));
    a->srv->healthz_polled_ms = server_now(a->srv);
    if (a->srv->shutting_down) {
        a->srv->healthz_drained = 1;
        return respond(req, 503, "Service Unavailable", "text/plain; charset=utf-8", H2O_STRLIT("draining\n"));
    }
    if (clock_unix_ms() - a->srv->metrics->started_unix_ms < a->srv->opt->health_grace_ms)
        return respond(req, 503, "Service Unavailable", "text/plain; charset=utf-8", H2O_STRLIT("starting\n"));
    return respond(req, 200, "OK", "text/plain; charset=utf-8", H2O_STRLIT("ok\n"));
}

static int on_admin_req(h2o_handler_t *self, h2o_req_t *req)
{
    struct admin *a = ((admin_handler *)self)->a;
    if (h2o_memis(req->path_normalized.base, req->path_normalized.len, H2O_STRLIT("/healthz")))
        return handle_healthz(a, req);
    if (a->auth) {
        char ip[NI_MAXHOST];
        security_peer_ip(req, ip, sizeof(ip));
        int64_t wait = security_basic_wait(a->srv, ip);
        if (wait > 0) {
            LOG_INFO(LOG_EV_CONF, "admin: 429 to %s (too many wrong credentials, retry in %lld ms)", ip, (long long)wait);
            security_too_many(req, wait, "tunnelmux admin: too many failed authentication attempts\n");
            return 0;
        }
    }
    if (!authorized(a, req)) {
        char ip[NI_MAXHOST];
        security_peer_ip(req, ip, sizeof(ip));
        int presented = h2o_find_header(&req->headers, H2O_TOKEN_AUTHORIZATION, -1) != -1;
        LOG_WARN(LOG_EV_CONF, "admin: %s credentials from %s", presented ? "wrong" : "missing", ip);
        if (presented)
            security_basic_failed(a->srv, ip, "admin");
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_WWW_AUTHENTICATE, NULL,
                       H2O_STRLIT("Basic realm=\"tunnelmux admin\", charset=\"UTF-8\""));
        return respond(req, 401, "Unauthorized", "text/plain; charset=utf-8",
                       H2O_STRLIT("tunnelmux admin: authentication required\n"));
    }
    h2o_iovec_t p = req->path_normalized;
    int get = h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET")) ||
              h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD"));
    static const char prefix[] = "/api/clients/", suffix[] = "/disconnect";
    size_t pl = sizeof(prefix) - 1, sl = sizeof(suffix) - 1;
    if (p.len > pl + sl && memcmp(p.base, prefix, pl) == 0 && memcmp(p.base + p.len - sl, suffix, sl) == 0)
        return handle_disconnect(a, req, p.base + pl, p.len - pl - sl);
    if (!get)
        return respond_json_error(req, 405, "Method Not Allowed", "method not allowed");
    if (h2o_memis(p.base, p.len, H2O_STRLIT("/")) || h2o_memis(p.base, p.len, H2O_STRLIT("/index.html")))
        return serve_asset(req, dashboard_index_html, dashboard_index_html_len, "text/html; charset=utf-8");
    if (h2o_memis(p.base, p.len, H2O_STRLIT("/app.js")))
        return serve_asset(req, dashboard_app_js, dashboard_app_js_len, "text/javascript; charset=utf-8");
    if (h2o_memis(p.base, p.len, H2O_STRLIT("/style.css")))
        return serve_asset(req, dashboard_style_css, dashboard_style_css_len, "text/css; charset=utf-8");
    if (h2o_memis(p.base, p.len, H2O_STRLIT("/metrics")))
        return handle_metrics(a, req);
    if (h2o_memis(p.base, p.len, H2O_STRLIT("/api/clients"))) {
        char *body = render_clients_json(a->srv);
        if (body == NULL)
            return respond(req, 500, "Internal Server Error", "text/plain; charset=utf-8", H2O_STRLIT("out of memory\n"));
        respond(req, 200, "OK", "application/json", body, strlen(body));
        free(body);
        return 0;
    }
    return respond_json_error(req, 404, "Not Found", "no such admin resource");
}

/* ---------------------------------------------------------------- listener */

static void on_admin_accept(h2o_socket_t *listener, const char *err)
{
    struct admin *a = listener->data;
    if (err != NULL)
        return;
    for (int i = 0; i < 16; i++) {
        h2o_socket_t *sock = h2o_evloop_socket_accept(listener);
        if (sock == NULL)
            return;
        h2o_accept(&a->accept_ctx, sock);
    }
}

static int is_loopback(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
    if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a6 = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        return IN6_IS_ADDR_LOOPBACK(a6) || (IN6_IS_ADDR_V4MAPPED(a6) && a6->s6_addr[12] == 127);
    }
    return 0;
}

/* Parses "IP:PORT" / "[IPv6]:PORT" into |ss|. Returns 0 or -1 with |err| set. */
static int parse_addr(const char *addr, struct sockaddr_storage *ss, socklen_t *sslen, char *err, size_t errlen)
{
    char host[128];
    const char *colon = strrchr(addr, ':');
    const char *hs = addr, *he = colon;
    if (colon == NULL || colon[1] == '\0')
        goto bad;
    if (addr[0] == '[') {
        const char *rb = strchr(addr, ']');
        if (rb == NULL || rb + 1 != colon)
            goto bad;
        hs = addr + 1;
        he = rb;
    } else if (memchr(addr, ':', (size_t)(colon - addr)) != NULL) {
        goto bad; /* bare IPv6 needs brackets */
    }
    if (he <= hs || (size_t)(he - hs) >= sizeof(host))
        goto bad;
    memcpy(host, hs, (size_t)(he - hs));
    host[he - hs] = '\0';
    char *endp;
    errno = 0;
    long port = strtol(colon + 1, &endp, 10);
    if (*endp != '\0' || errno != 0 || port < 0 || port > 65535)
        goto bad;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    if (getaddrinfo(host, colon + 1, &hints, &res) != 0 || res == NULL || res->ai_addrlen > sizeof(*ss)) {
        if (res != NULL)
            freeaddrinfo(res);
        goto bad;
    }
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *sslen = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
bad:
    snprintf(err, errlen, "ADMIN_ADDR: %s is not IP:PORT (e.g. 127.0.0.1:9090 or [::1]:9090; \"off\" disables it)", addr);
    return -1;
}

static void format_bound(const struct sockaddr *sa, char *out, size_t cap)
{
    char host[INET6_ADDRSTRLEN];
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof(host));
        snprintf(out, cap, "[%s]:%u", host, (unsigned)ntohs(s6->sin6_port));
    } else {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &s4->sin_addr, host, sizeof(host));
        snprintf(out, cap, "%s:%u", host, (unsigned)ntohs(s4->sin_port));
    }
}

/* Checks the options and starts the admin listener; see admin.h. */
int admin_start(server *srv, char *bound, size_t boundlen, char *err, size_t errlen)
{
    const server_options *o = srv->opt;
    const char *addr = o->admin_addr != NULL ? o->admin_addr : "";
    const char *user = o->admin_user != NULL ? o->admin_user : "";
    const char *pass = o->admin_password != NULL ? o->admin_password : "";
    snprintf(bound, boundlen, "off");
    if (addr[0] == '\0' || strcmp(addr, "off") == 0)
        return 0;
    if ((user[0] != '\0') != (pass[0] != '\0')) {
        snprintf(err, errlen, "%s: must be set together with %s", user[0] ? "ADMIN_PASSWORD" : "ADMIN_USER",
                 user[0] ? "ADMIN_USER" : "ADMIN_PASSWORD");
        return -1;
    }
    if (strchr(user, ':') != NULL) {
        snprintf(err, errlen, "ADMIN_USER: must not contain ':' (HTTP basic auth)");
        return -1;
    }
    if (o->admin_tls && srv->ssl_ctx == NULL) {
        snprintf(err, errlen, "ADMIN_TLS: needs TLS_CERT and TLS_KEY (the admin listener uses the public certificate)");
        return -1;
    }
    struct sockaddr_storage ss;
    socklen_t sslen = 0;
    if (parse_addr(addr, &ss, &sslen, err, errlen) != 0)
        return -1;
    int auth = user[0] != '\0';
    if (!auth && !is_loopback((struct sockaddr *)&ss)) {
        snprintf(err, errlen,
                 "ADMIN_ADDR: %s is not a loopback address; set ADMIN_USER and ADMIN_PASSWORD to expose the admin listener, "
                 "or bind it to 127.0.0.1 / [::1]",
                 addr);
        return -1;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "ADMIN_ADDR: socket: %s", strerror(errno));
        return -1;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (ss.ss_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&ss, sslen) != 0 || listen(fd, 64) != 0) {
        snprintf(err, errlen, "ADMIN_ADDR: cannot listen on %s: %s", addr, strerror(errno));
        close(fd);
        return -1;
    }
    sslen = sizeof(ss);
    getsockname(fd, (struct sockaddr *)&ss, &sslen);
    format_bound((struct sockaddr *)&ss, bound, boundlen);

    struct admin *a = calloc(1, sizeof(*a));
    if (a == NULL) {
        close(fd);
        snprintf(err, errlen, "ADMIN_ADDR: out of memory");
        return -1;
    }
    a->srv = srv;
    a->auth = auth;
    if (auth) {
        size_t ul = strlen(user), pl = strlen(pass);
        unsigned char *plain = malloc(ul + 1 + pl);
        unsigned char *b64 = malloc(4 * ((ul + 1 + pl + 2) / 3) + 1);
        if (plain == NULL || b64 == NULL) {
            free(plain);
            free(b64);
            free(a);
            close(fd);
            snprintf(err, errlen, "ADMIN_ADDR: out of memory");
            return -1;
        }
        memcpy(plain, user, ul);
        plain[ul] = ':';
        memcpy(plain + ul + 1, pass, pl);
        int n = EVP_EncodeBlock(b64, plain, (int)(ul + 1 + pl));
        SHA256(b64, (size_t)n, a->expected);
        OPENSSL_cleanse(plain, ul + 1 + pl);
        OPENSSL_cleanse(b64, (size_t)n);
        free(plain);
        free(b64);
    }
    h2o_config_init(&a->config);
    h2o_hostconf_t *host = h2o_config_register_host(&a->config, h2o_iovec_init(H2O_STRLIT("admin")), 65535);
    h2o_pathconf_t *path = h2o_config_register_path(host, "/", 0);
    admin_handler *h = (admin_handler *)h2o_create_handler(path, sizeof(*h));
    h->super.on_req = on_admin_req;
    h->a = a;
    h2o_context_init(&a->ctx, srv->ctx.loop, &a->config);
    a->accept_ctx.ctx = &a->ctx;
    a->accept_ctx.ssl_ctx = o->admin_tls ? srv->ssl_ctx : NULL; /* shared with the public listener */
    a->accept_ctx.hosts = a->config.hosts;
    a->listener = h2o_evloop_socket_create(srv->ctx.loop, fd, H2O_SOCKET_FLAG_DONT_READ);
    a->listener->data = a;
    h2o_socket_read_start(a->listener, on_admin_accept);
    h2o_timeout_init(srv->ctx.loop, &a->sample_timeout, SAMPLE_MS);
    a->sample_entry.cb = on_sample;
    h2o_timeout_link(srv->ctx.loop, &a->sample_timeout, &a->sample_entry);
    srv->admin = a;
    return 0;
}

/* Stops accepting; see admin.h. */
void admin_stop(server *srv)
{
    struct admin *a = srv->admin;
    if (a == NULL)
        return;
    if (a->listener != NULL) {
        h2o_socket_read_stop(a->listener);
        h2o_socket_close(a->listener);
        a->listener = NULL;
    }
    if (h2o_timeout_is_linked(&a->sample_entry))
        h2o_timeout_unlink(&a->sample_entry);
}

/* Frees the admin state; see admin.h. */
void admin_free(server *srv)
{
    if (srv->admin == NULL)
        return;
    admin_stop(srv);
    struct admin *a = srv->admin;
    srv->admin = NULL;
    if (!server_context_quiet(&a->ctx) || !h2o_linklist_is_empty(&a->sample_timeout._entries))
        return; /* connections still open point at the context: left to the exit */
    h2o_timeout_dispose(a->ctx.loop, &a->sample_timeout);
    h2o_context_dispose(&a->ctx);
    h2o_config_dispose(&a->config);
    free(a);
}

/* The admin h2o context; see admin.h. */
h2o_context_t *admin_context(server *srv)
{
    return srv->admin != NULL ? &srv->admin->ctx : NULL;
}
