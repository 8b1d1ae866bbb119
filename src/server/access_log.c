/*
 * tunnelmux server — the access log (see access_log.h). Moved out of admin.c (issue 17): the proxy
 * feeds a per-request access_log_entry instead of tagging req->env with decimal strings, so the
 * proxy no longer depends on the admin listener.
 */
#include "server/access_log.h"

#include <stdio.h>
#include <string.h>
#include <sys/time.h>

#include "common/log.h"
#include "server/metrics.h"
#include "server/registry.h"
#include "server/route.h"
#include "server/security.h"

typedef struct {
    h2o_logger_t super;
    server *srv;
} access_logger;

void access_log_entry_init(access_log_entry *e)
{
    memset(e, 0, sizeof(*e));
    e->body_bytes = -1;
    e->queue_wait_ms = -1;
    e->queue_length = -1;
    e->proto = access_log_proto_name(0x101);
    e->method = e->path = e->remote = "";
}

const char *access_log_proto_name(int version)
{
    return version >= 0x200 ? "HTTP/2" : version == 0x100 ? "HTTP/1.0" : "HTTP/1.1";
}

uint64_t access_log_bytes_in(const access_log_entry *e, uint64_t entity_len)
{
    return e != NULL && e->body_bytes >= 0 ? (uint64_t)e->body_bytes : entity_len;
}

void access_log_format(const access_log_entry *e, access_log_text *out)
{
    snprintf(out->status, sizeof(out->status), "%d", e->status);
    snprintf(out->bytes_in, sizeof(out->bytes_in), "%llu", (unsigned long long)e->bytes_in);
    snprintf(out->bytes_out, sizeof(out->bytes_out), "%llu", (unsigned long long)e->bytes_out);
    snprintf(out->duration_ms, sizeof(out->duration_ms), "%.3f", e->duration_ms);
    snprintf(out->stream, sizeof(out->stream), "%u", e->stream_id);
    out->has_queue_wait = e->queue_wait_ms >= 0;
    if (out->has_queue_wait)
        snprintf(out->queue_wait_ms, sizeof(out->queue_wait_ms), "%lld", (long long)e->queue_wait_ms);
    else
        out->queue_wait_ms[0] = '\0';
}

access_log_entry *access_log_find(h2o_req_t *req)
{
    size_t klen = sizeof(ACCESS_LOG_ENV_KEY) - 1;
    for (size_t i = 0; i + 1 < req->env.size; i += 2) {
        if (h2o_memis(req->env.entries[i].base, req->env.entries[i].len, ACCESS_LOG_ENV_KEY, klen) &&
            req->env.entries[i + 1].len == sizeof(access_log_entry))
            return (access_log_entry *)req->env.entries[i + 1].base;
    }
    return NULL;
}

access_log_entry *access_log_entry_of(h2o_req_t *req)
{
    access_log_entry *e = access_log_find(req);
    if (e != NULL)
        return e;
    e = h2o_mem_alloc_pool(&req->pool, sizeof(*e));
    access_log_entry_init(e);
    h2o_vector_reserve(&req->pool, &req->env, req->env.size + 2);
    req->env.entries[req->env.size++] = h2o_iovec_init(ACCESS_LOG_ENV_KEY, sizeof(ACCESS_LOG_ENV_KEY) - 1);
    req->env.entries[req->env.size++] = h2o_iovec_init(e, sizeof(*e));
    return e;
}

void access_log_note_stream(h2o_req_t *req, uint32_t id)
{
    access_log_entry *e = access_log_entry_of(req);
    if (e->stream_id == 0)
        e->stream_id = id;
}

void access_log_note_body(h2o_req_t *req, uint64_t len)
{
    access_log_entry *e = access_log_entry_of(req);
    if (e->body_bytes < 0)
        e->body_bytes = (int64_t)len;
}

void access_log_note_queue(h2o_req_t *req, uint32_t wait_ms, uint32_t length)
{
    access_log_entry *e = access_log_entry_of(req);
    e->queue_wait_ms = wait_ms;
    e->queue_length = length;
}

/* Copies |v| into |out| (NUL-terminated, truncated). */
static void copy_iov(h2o_iovec_t v, char *out, size_t cap)
{
    size_t n = v.len < cap - 1 ? v.len : cap - 1;
    if (n > 0)
        memcpy(out, v.base, n);
    out[n] = '\0';
}

static void on_log_access(h2o_logger_t *self, h2o_req_t *req)
{
    server *srv = ((access_logger *)self)->srv;
    if (h2o_memis(req->path_normalized.base, req->path_normalized.len, H2O_STRLIT("/_tunnel")))
        return;
    char name[ROUTE_MAX_NAME + 1];
    int known = 0;
    int nl = req->input.authority.base != NULL
                 ? route_lookup_name(req->input.authority.base, req->input.authority.len, srv->domain, name, sizeof(name), NULL, 0)
                 : -1;
    if (nl > 0 && registry_find(&srv->reg, name, &known) != NULL)
        known = 1;
    const access_log_entry *tag = access_log_find(req);
    access_log_entry e;
    access_log_entry_init(&e);
    if (tag != NULL) {
        e.stream_id = tag->stream_id;
        e.body_bytes = tag->body_bytes;
        e.queue_wait_ms = tag->queue_wait_ms;
        e.queue_length = tag->queue_length;
    }
    char method[ACCESS_LOG_METHOD_MAX], path[ACCESS_LOG_PATH_MAX], remote[ACCESS_LOG_REMOTE_MAX];
    copy_iov(req->method, method, sizeof(method));
    copy_iov(req->input.path, path, sizeof(path));
    e.method = method;
    e.path = path;
    struct timeval now;
    gettimeofday(&now, NULL);
    double secs = (double)(now.tv_sec - req->timestamps.request_begin_at.tv_sec) +
                  (double)(now.tv_usec - req->timestamps.request_begin_at.tv_usec) / 1e6;
    if (req->timestamps.request_begin_at.tv_sec == 0 || secs < 0)
        secs = 0;
    e.bytes_in = access_log_bytes_in(&e, req->entity.base != NULL ? (uint64_t)req->entity.len : 0);
    e.client = nl > 0 && known ? name : NULL; /* unknown names stay out of the per-client series */
    e.status = req->res.status;
    e.bytes_out = req->bytes_sent;
    e.duration_ms = secs * 1000.0;
    e.proto = access_log_proto_name(req->version);
    metrics_request_info info = {.client = e.client,
                                 .method = e.method,
                                 .path = e.path,
                                 .status = e.status,
                                 .bytes_in = e.bytes_in,
                                 .bytes_out = e.bytes_out,
                                 .seconds = secs,
                                 .stream_id = e.stream_id,
                                 .queue_wait_ms = e.queue_wait_ms,
                                 .queue_length = e.queue_length};
    if (srv->metrics != NULL)
        metrics_on_request(srv->metrics, &info, (int64_t)now.tv_sec * 1000 + now.tv_usec / 1000);
    if (!log_enabled(LOG_LVL_INFO))
        return;
    security_peer_ip(req, remote, sizeof(remote)); /* only for the log line: inet_ntop costs ~5 % of a small request */
    e.remote = remote;
    access_log_text txt;
    access_log_format(&e, &txt);
    const char *client = e.client != NULL ? e.client : "-";
    if (txt.has_queue_wait)
        mux_log_kv(LOG_LVL_INFO, LOG_EV_ACCESS, "access", "client", client, "remote", e.remote, "proto", e.proto, "method",
                   e.method, "path", e.path, "status", txt.status, "bytes_in", txt.bytes_in, "bytes_out", txt.bytes_out,
                   "duration_ms", txt.duration_ms, "stream", txt.stream, "queue_wait_ms", txt.queue_wait_ms, NULL);
    else
        mux_log_kv(LOG_LVL_INFO, LOG_EV_ACCESS, "access", "client", client, "remote", e.remote, "proto", e.proto, "method",
                   e.method, "path", e.path, "status", txt.status, "bytes_in", txt.bytes_in, "bytes_out", txt.bytes_out,
                   "duration_ms", txt.duration_ms, "stream", txt.stream, NULL);
}

void access_log_register(server *srv, h2o_pathconf_t *pathconf)
{
    access_logger *l = (access_logger *)h2o_create_logger(pathconf, sizeof(*l));
    l->super.log_access = on_log_access;
    l->srv = srv;
}
