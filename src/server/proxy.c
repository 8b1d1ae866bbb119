/*
 * tunnelmux server — one public request as one mux stream (see proxy.h, PROTOCOL.md §6).
 *
 * Ownership: the proxy_stream lives in the request's pool (h2o_mem_alloc_shared with a dispose
 * callback, which fires even when the user vanishes — the generator's stop is not reliable,
 * docs/ARCHITECTURE.md §7). It is attached to the tunnel (t->streams, stream user data) until the mux stream
 * closes; every path that hands control to h2o detaches first, so no callback can reach freed
 * memory.
 *
 * Upgrades (PROTOCOL.md §5.2 raw mode, §9.6): an HTTP/1.1 request with Upgrade goes out with
 * MUX_HEAD_UPGRADE and without END_STREAM. On a 101 the stream moves to a heap proxy_stream
 * (upgrade_stream.c); any other final status ends our direction and is relayed like a normal
 * response.
 *
 * The other parts of a request live beside this file (proxy_stream.h): the response towards h2o
 * (response.c), the request body (body_pump.c), upgraded streams (upgrade_stream.c).
 */
#include "server/proxy_stream.h"

#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "common/log.h"
#include "common/net_addr.h"
#include "server/access_log.h"
#include "server/admission.h"
#include "server/h2_body.h"
#include "server/headers.h"
#include "server/metrics.h"
#include "server/route.h"
#include "server/security.h"
#include "server/upload.h"
#include "server/upload_head.h"

static h2o_linklist_t *proxy_link(proxy_stream *ps)
{
    return &ps->link;
}

static proxy_stream *proxy_from_link(h2o_linklist_t *link)
{
    return H2O_STRUCT_FROM_MEMBER(proxy_stream, link, link);
}

/* ---------------------------------------------------------------- helpers */

/* A request refused because its tunnel has MAX_STREAMS_PER_CLIENT streams open: counted in
 * /metrics each time, logged at most once per BUSY_WARN_INTERVAL_MS (a flood of them would
 * otherwise write one WARN line per request) with the number left unlogged since. */
static void warn_busy(server *srv, const char *name)
{
    if (srv->metrics != NULL)
        metrics_on_stream_refused(srv->metrics, name);
    int64_t now = (int64_t)h2o_now(srv->ctx.loop);
    if (srv->busy_warn_ms != 0 && now - srv->busy_warn_ms < BUSY_WARN_INTERVAL_MS) {
        srv->busy_warn_suppressed++;
        return;
    }
    LOG_WARN(LOG_EV_STREAM,
             "request for %s refused (503): MAX_STREAMS_PER_CLIENT=%lld streams already open; %llu more refusals "
             "not logged in the last %d s (tunnelmux_streams_refused_total counts them all)",
             name, (long long)srv->opt->max_streams_per_client, (unsigned long long)srv->busy_warn_suppressed,
             BUSY_WARN_INTERVAL_MS / 1000);
    srv->busy_warn_ms = now;
    srv->busy_warn_suppressed = 0;
}

/* Response bytes |ps| holds for its public reader: copies and tunnel-read slices waiting, and what
 * h2o (or the upgraded socket) has not written yet. */
static uint64_t held_bytes(const proxy_stream *ps)
{
    return resp_queue_held(&ps->q);
}

static uint32_t name_hash(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s != '\0'; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

/* Adds every public request in progress to |live| (matched by client name; see proxy.h). */
uint64_t proxy_gather(server *srv, metrics_live *live, size_t nlive)
{
    size_t cap = 16;
    while (cap < 2 * nlive)
        cap *= 2;
    size_t *slot = nlive > 0 ? malloc(cap * sizeof(*slot)) : NULL; /* index + 1 into |live|, 0 = empty */
    if (slot != NULL) {
        memset(slot, 0, cap * sizeof(*slot));
        for (size_t i = 0; i < nlive; i++) {
            size_t k = name_hash(live[i].name) & (cap - 1);
            while (slot[k] != 0)
                k = (k + 1) & (cap - 1);
            slot[k] = i + 1;
        }
    }
    uint64_t total = 0;
    for (h2o_linklist_t *l = srv->proxies.next; l != &srv->proxies; l = l->next) {
        const proxy_stream *ps = H2O_STRUCT_FROM_MEMBER(proxy_stream, all, l);
        uint64_t held = held_bytes(ps);
        total += held;
        if (slot == NULL)
            continue;
        for (size_t k = name_hash(ps->name) & (cap - 1); slot[k] != 0; k = (k + 1) & (cap - 1)) {
            metrics_live *m = &live[slot[k] - 1];
            if (strcmp(m->name, ps->name) == 0) {
                m->requests_active++;
                m->response_bytes_held += held;
                break;
            }
        }
    }
    free(slot);
    return total;
}

static void on_dispose(void *p)
{
    proxy_stream *ps = p;
    if (h2o_timeout_is_linked(&ps->send_entry))
        h2o_timeout_unlink(&ps->send_entry);
    if (h2o_timeout_is_linked(&ps->stall_entry))
        h2o_timeout_unlink(&ps->stall_entry);
    if (ps->srv->nrequests > 0)
        ps->srv->nrequests--;
    if (h2o_linklist_is_linked(&ps->all))
        h2o_linklist_unlink(&ps->all);
    if (!response_final_sent(ps))
        security_on_cancel(ps->srv, ps->conn, ps->conn_id); /* cancelled by the user before the response ended */
    if (ps->tunnel != NULL) {
        if (response_final_sent(ps) && ps->ended && !ps->aborted && (ps->end_sent || !ps->has_body || ps->body_done))
            proxy_link_detach(ps); /* the response was delivered whole and our end (DATA fin) is queued: the stream
                           closes normally once it is sent (PROTOCOL.md §9.2: no CANCEL) */
        else
            proxy_link_cancel(ps, "public client went away");
    }
    upload_body_free(ps->ub);
    ps->ub = NULL;
    h2_body_free(ps->hb, response_final_sent(ps) && !ps->aborted && !ps->stopped);
    ps->hb = NULL;
    if (h2o_timeout_is_linked(&ps->head_timeout))
        h2o_timeout_unlink(&ps->head_timeout);
    resp_queue_free(&ps->q);
}

static void on_head_timeout(h2o_timeout_entry_t *e)
{
    proxy_stream *ps = H2O_STRUCT_FROM_MEMBER(proxy_stream, head_timeout, e);
    LOG_INFO(LOG_EV_STREAM, "stream %u (%s): no response head within READ_TIMEOUT", ps->id, ps->name);
    tunnel *t = proxy_link_reset(ps, MUX_CODE_TIMEOUT, "no response head within READ_TIMEOUT");
    if (t != NULL)
        tunnel_flush(t);
    if (!response_started(ps))
        response_fail_before_head(ps, MUX_CODE_TIMEOUT, "");
}

/* The public peer of |conn|: |ip| (IPv4-mapped shown as IPv4) and |addr| "ip:port" (net_addr.h);
 * both "" when unknown. */
static void format_addr(h2o_conn_t *conn, char *ip, size_t ipcap, char *addr, size_t addrcap)
{
    struct sockaddr_storage ss;
    socklen_t len = conn->callbacks->get_peername(conn, (struct sockaddr *)&ss);
    net_addr_format((struct sockaddr *)&ss, len, NET_ADDR_UNMAP_V4, ip, ipcap, addr, addrcap);
}

void proxy_take_absolute_target(h2o_req_t *req)
{
    h2o_iovec_t t = req->input.path;
    size_t ao, al, ro;
    if (req->version >= 0x200 || !route_absolute_form(t.base, t.len, &ao, &al, &ro))
        return;
    if (al != 0) /* "http:///x": no authority to take; Host stays */
        req->input.authority = h2o_iovec_init(t.base + ao, al);
    h2o_iovec_t rest = h2o_iovec_init(t.base + ro, t.len - ro);
    if (rest.len == 0 || rest.base[0] != '/') {
        /* "http://h" -> "/", "http://h?x" -> "/?x" */
        char *buf = h2o_mem_alloc_pool(&req->pool, rest.len + 1);
        buf[0] = '/';
        if (rest.len != 0)
            memcpy(buf + 1, rest.base, rest.len);
        rest = h2o_iovec_init(buf, rest.len + 1);
    }
    req->input.path = rest;
    req->path_normalized = h2o_url_normalize_path(&req->pool, rest.base, rest.len, &req->query_at, &req->norm_indexes);
}

static void on_header_drop(void *ctx, const char *name, size_t len, const char *why)
{
    proxy_stream *ps = ctx;
    LOG_WARN(LOG_EV_HTTP, "request for %s: dropped header %.*s: %s", ps->name, (int)(len > 64 ? 64 : len), name, why);
}

/* An HTTP/2 request with `expect: 100-continue` (h2o 2.2.5 never answers it over HTTP/2). */
static int user_expects_continue(h2o_req_t *req)
{
    ssize_t i = h2o_find_header(&req->headers, H2O_TOKEN_EXPECT, -1);
    return i != -1 &&
           h2o_lcstris(req->headers.entries[i].value.base, req->headers.entries[i].value.len, H2O_STRLIT("100-continue"));
}

/* The local service asked for the body (a relayed 100 head): "100 Continue" to the user, once. */
static void relay_continue(proxy_stream *ps)
{
    if (!ps->expect_relay || ps->continue_sent || ps->body_done)
        return;
    ps->continue_sent = 1;
    int rv = ps->ub != NULL ? upload_body_continue(ps->ub) : ps->hb != NULL ? h2_body_send_continue(ps->hb) : 0;
    if (rv != 0)
        LOG_INFO(LOG_EV_STREAM, "stream %u (%s): cannot send 100 Continue to the user", ps->id, ps->name);
}

/*
 * Sends |ps|'s request head (rebuilt from ps->req) as a new stream on |t|: the first time from
 * proxy_handle_request, again for a safe retry. Returns the stream id (> 0), 0 when out of memory,
 * or a negative MUX_ERR_* from mux_session_open_stream. Sets has_body, upgrade_req, body_done.
 */
static int32_t open_stream_on(proxy_stream *ps, tunnel *t)
{
    h2o_req_t *req = ps->req;
    char ip[INET6_ADDRSTRLEN + 1], addr[INET6_ADDRSTRLEN + 16];
    format_addr(req->conn, ip, sizeof(ip), addr, sizeof(addr));
    mux_header *in = h2o_mem_alloc_pool(&req->pool, sizeof(*in) * (req->headers.size + 1));
    size_t nin = 0;
    for (size_t i = 0; i < req->headers.size; i++) {
        const h2o_iovec_t *hn = req->headers.entries[i].name;
        if (ps->h1_held &&
            ((hn->len == UPLOAD_HIDDEN_HEADER_LEN && strncasecmp(hn->base, UPLOAD_HIDDEN_HEADER, hn->len) == 0) ||
             (hn->len == UPLOAD_HIDDEN_TE_HEADER_LEN && strncasecmp(hn->base, UPLOAD_HIDDEN_TE_HEADER, hn->len) == 0)))
            continue; /* the renamed framing header: the real one is built from |held| (none: chunked) */
        in[nin].name = (mux_iovec){(uint8_t *)hn->base, hn->len};
        in[nin].value = (mux_iovec){(uint8_t *)req->headers.entries[i].value.base, req->headers.entries[i].value.len};
        nin++;
    }
    ps->has_body = req->entity.base != NULL || ps->h1_held || ps->h2_held;
    /* -1: a chunked HTTP/1.1 body, an HTTP/2 body without Content-Length (chunked to the local service) */
    int64_t body_len = ps->h1_held ? (ps->held >= 0 ? ps->held : -1) : ps->h2_held ? ps->h2_len : (int64_t)req->entity.len;
    /* an upgrade with a request body is forwarded as a plain request (the body went first) */
    ps->upgrade_req = req->version < 0x200 && req->upgrade.base != NULL && (!ps->has_body || body_len == 0);
    if (ps->upgrade_req)
        ps->has_body = 0;
    const char *scheme = req->scheme != NULL ? req->scheme->name.base : ps->srv->scheme;
    headers_request_info info = {.scheme = scheme,
                                 .authority = req->input.authority.base,
                                 .authority_len = req->input.authority.len,
                                 .client_ip = ip,
                                 .keep_upgrade = ps->upgrade_req,
                                 .upgrade = req->upgrade.base,
                                 .upgrade_len = req->upgrade.len,
                                 .content_length = ps->has_body ? body_len : -1,
                                 .expect_continue = ps->expect_relay,
                                 .drop_authorization = ps->drop_authorization};
    headers_list hl;
    if (headers_build_request(&hl, in, nin, &info, on_header_drop, ps) != 0)
        return 0; /* out of memory */
    h2o_iovec_t path = req->input.path;
    mux_head head = {.flags = ps->upgrade_req                    ? MUX_HEAD_UPGRADE
                              : (!ps->has_body || body_len == 0) ? MUX_HEAD_END_STREAM
                                                                 : 0,
                     .method = {(uint8_t *)req->method.base, req->method.len},
                     .scheme = {(uint8_t *)scheme, strlen(scheme)},
                     .authority = {(uint8_t *)req->input.authority.base, req->input.authority.len},
                     .path = {(uint8_t *)path.base, path.len},
                     .remote_addr = {(uint8_t *)addr, strlen(addr)},
                     .headers = hl.v,
                     .nheaders = hl.n};
    if (ps->has_body && body_len == 0)
        ps->body_done = 1;
    int32_t id = mux_session_open_stream(tunnel_session(t), &head, ps);
    headers_list_free(&hl);
    return id;
}

int proxy_handle_request(server *srv, h2o_req_t *req)
{
    /* first: a held-back HTTP/1.1 body (upload.h) makes the connection non-persistent whatever the answer */
    int64_t held = upload_take(srv, req);
    h2_body_hook_upgraded(srv, req); /* later streams of an h2c-upgraded connection stream their bodies */
    int64_t h2_len = -1;
    int h1_held = held >= 0 || held == UPLOAD_LENGTH_CHUNKED; /* the connection streams it (upload.h) */
    int h2_held = !h1_held && h2_body_held(req, &h2_len);     /* an HTTP/2 body the hook holds (h2_body.h) */
    char name[ROUTE_MAX_NAME + 1], host[ROUTE_MAX_HOST + 1], shost[128];
    response_safe_host(req, shost, sizeof(shost));
    admission_request ar = {.shutting_down = srv->shutting_down};
    admission_verdict v = admission_check_request(&ar);
    if (v == ADMIT_SHUTTING_DOWN) {
        response_send_text(req, admission_status(v), admission_reason(v), "tunnelmux: server is shutting down\n");
        return 0;
    }
    if (security_condemned(srv, req))
        return 0; /* answered 429: this connection exhausted its reset budget */
    if (security_reject_ambiguous(srv, req))
        return 0; /* answered 400: request smuggling attempt */
    int nl =
        route_lookup_name(req->input.authority.base, req->input.authority.len, srv->domain, name, sizeof(name), host, sizeof(host));
    ar.route_ok = nl >= 0;
    ar.is_connect = h2o_memis(req->method.base, req->method.len, H2O_STRLIT("CONNECT"));
    ar.http2 = req->version >= 0x200;
    ar.has_upgrade = ar.http2 && (req->upgrade.base != NULL || h2o_find_header(&req->headers, H2O_TOKEN_UPGRADE, -1) != -1);
    v = admission_check_request(&ar);
    switch (v) {
    case ADMIT_HOST_NOT_SERVED:
        response_send_text(req, admission_status(v), admission_reason(v),
                           "tunnelmux: host %s is not served here (expected NAME.%s)\n", shost, srv->domain);
        return 0;
    case ADMIT_CONNECT:
        response_send_text(
            req, admission_status(v), admission_reason(v),
            "tunnelmux: CONNECT is not supported (no RFC 8441 extended CONNECT; use an HTTP/1.1 Upgrade for WebSockets)\n");
        return 0;
    case ADMIT_H2_UPGRADE:
        /* RFC 9113 §8.2.2: no Upgrade in HTTP/2; h2o 2.2.5 has no RFC 8441 either */
        response_send_text(req, admission_status(v), admission_reason(v),
                           "tunnelmux: Upgrade (WebSocket) needs HTTP/1.1; HTTP/2 has no Upgrade and this server has no RFC 8441 "
                           "extended CONNECT\n");
        return 0;
    default:
        break;
    }
    int known = 0;
    tunnel *t = registry_pick(&srv->reg, name, tunnel_load, NULL, &known);
    v = admission_check_tunnel(t != NULL && tunnel_session(t) != NULL && !tunnel_is_dying(t), known);
    if (v == ADMIT_TUNNEL_NOT_CONNECTED) {
        response_send_text(req, admission_status(v), admission_reason(v), "tunnelmux: tunnel %s is not connected (host %s)\n", name,
                           shost);
        return 0;
    }
    if (v == ADMIT_NO_SUCH_TUNNEL) {
        response_send_text(req, admission_status(v), admission_reason(v), "tunnelmux: no tunnel named %s (host %s)\n", name, shost);
        return 0;
    }
    int drop_authorization = 0;
    if (security_admit(srv, t, req, name, &drop_authorization) != 0)
        return 0; /* answered (401, 429, 431) */

    proxy_stream *ps = h2o_mem_alloc_shared(&req->pool, sizeof(*ps), on_dispose);
    memset(ps, 0, sizeof(*ps));
    ps->gen.proceed = response_on_proceed;
    ps->gen.stop = response_on_stop;
    ps->srv = srv;
    srv->nrequests++; /* until on_dispose: the response has been fully handed to the public connection */
    h2o_linklist_insert(&srv->proxies, &ps->all);
    ps->req = req;
    ps->head_timeout.cb = on_head_timeout;
    ps->send_entry.cb = response_on_send_entry;
    ps->stall_entry.cb = response_on_stall_check;
    ps->conn = req->conn;
    ps->conn_id = req->conn->id;
    memcpy(ps->name, name, (size_t)nl + 1);

    ps->held = held;
    ps->h1_held = h1_held;
    ps->h2_held = h2_held;
    ps->h2_len = h2_len;
    ps->drop_authorization = drop_authorization;
    ps->expect_relay = (mux_session_capabilities(tunnel_session(t)) & MUX_CAP_CONTINUE_RELAY) != 0 &&
                       (h1_held ? upload_defer_continue(srv, req) : h2_held && user_expects_continue(req));
    int32_t id = open_stream_on(ps, t);
    v = admission_check_open(id);
    if (v == ADMIT_OUT_OF_MEMORY) {
        response_set_state(ps, PROXY_RESP_FINAL_SENT);
        response_send_text(req, admission_status(v), admission_reason(v), "tunnelmux: out of memory\n");
        return 0;
    }
    if (v != ADMIT_OK) {
        if (v == ADMIT_TUNNEL_BUSY)
            warn_busy(srv, name);
        else
            LOG_WARN(LOG_EV_STREAM, "request for %s: cannot open stream: %s", name, mux_strerror(id));
        response_set_state(ps, PROXY_RESP_FINAL_SENT);
        if (v == ADMIT_TUNNEL_BUSY) {
            /* overload, not failure: come back shortly (as for a full local queue) */
            h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL, H2O_STRLIT(PROXY_BUSY_RETRY_AFTER_S));
            response_send_text(req, admission_status(v), admission_reason(v),
                               "tunnelmux: tunnel %s is busy (too many concurrent requests)\n", name);
        } else if (v == ADMIT_HEADERS_TOO_LARGE)
            response_send_text(req, admission_status(v), admission_reason(v),
                               "tunnelmux: request headers too large for the tunnel\n");
        else
            response_send_text(req, admission_status(v), admission_reason(v), "tunnelmux: tunnel %s cannot take the request (%s)\n",
                               name, mux_strerror(id));
        return 0;
    }
    ps->id = (uint32_t)id;
    access_log_note_stream(req, ps->id); /* for the access log */
    ps->tunnel = t;
    tunnel_add_stream(t, &ps->link);
    if (h1_held) {
        if (held >= 0) {
            ratelimit_charge(tunnel_rate_bytes(t), (double)held, server_now(srv));
            if (!ps->expect_relay) /* else counted as it arrives: the local service may never ask for it */
                access_log_note_body(req, (uint64_t)held);
        }
        ps->body_chunked = held == UPLOAD_LENGTH_CHUNKED;
        ps->ub = upload_body_start(srv, req, body_pump_on_event, ps);
        if (ps->ub == NULL) {
            tunnel_flush(proxy_link_reset(ps, MUX_CODE_INTERNAL_ERROR, "cannot read the request body"));
            response_set_state(ps, PROXY_RESP_FINAL_SENT);
            if (held == UPLOAD_LENGTH_CHUNKED)
                response_send_text(req, 400, "Bad Request", "tunnelmux: malformed chunked request body\n");
            else
                response_send_text(req, 500, "Internal Server Error", "tunnelmux: cannot read the request body\n");
            return 0;
        }
    } else if (h2_held) {
        if (h2_len >= 0 && !ps->expect_relay)
            access_log_note_body(req, (uint64_t)h2_len);
        ps->hb = h2_body_start(req, body_pump_on_event, ps);
        if (ps->hb != NULL && ps->expect_relay)
            h2_body_expect_continue(ps->hb);
        if (ps->hb == NULL) {
            tunnel_flush(proxy_link_reset(ps, MUX_CODE_INTERNAL_ERROR, "cannot read the request body"));
            response_set_state(ps, PROXY_RESP_FINAL_SENT);
            response_send_text(req, 400, "Bad Request", "tunnelmux: the request body cannot be read (over a limit or reset)\n");
            return 0;
        }
    }
    h2o_timeout_link(srv->ctx.loop, &srv->read_timeout, &ps->head_timeout);
    if (log_enabled(LOG_LVL_DEBUG)) {
        char ip[INET6_ADDRSTRLEN + 1], addr[INET6_ADDRSTRLEN + 16];
        format_addr(req->conn, ip, sizeof(ip), addr, sizeof(addr));
        h2o_iovec_t path = req->input.path;
        LOG_DEBUG(LOG_EV_STREAM, "stream %u (%s): %.*s %.*s from %s", ps->id, name, (int)req->method.len, req->method.base,
                  (int)(path.len > 200 ? 200 : path.len), path.base, addr);
    }
    body_pump_run(ps);
    tunnel_flush(t);
    return 0;
}

/* ---------------------------------------------------------------- mux side */

static void proxy_on_head(proxy_stream *ps, const mux_head *head)
{
    h2o_req_t *req = ps->req;
    LOG_DEBUG(LOG_EV_STREAM, "stream %u (%s): response head %u flags %u", ps->id, ps->name, head->status, head->flags);
    if (ps->raw || response_started(ps) || ps->stopped)
        return;
    const char *bad = response_invalid_header(head);
    if (bad != NULL) { /* PROTOCOL.md §4.3, §9.4: a head we would have to alter fails its stream */
        LOG_INFO(LOG_EV_STREAM, "stream %u (%s): invalid response head from the client: %s", ps->id, ps->name, bad);
        tunnel *t = proxy_link_reset(ps, MUX_CODE_PROTOCOL_ERROR, bad);
        if (t != NULL)
            tunnel_flush(t);
        response_fail_before_head(ps, MUX_CODE_PROTOCOL_ERROR, "invalid response head from the client");
        return;
    }
    if (head->has_local_queue && (head->status >= 200 || head->status == 101)) /* the final head reports the wait */
        access_log_note_queue(req, head->local_queue_wait_ms, head->local_queue_length);
    if (head->status == 101 && ps->upgrade_req) {
        upgrade_stream_start(ps, head);
        return;
    }
    if (head->status < 200) {
        if (head->status == 101) { /* we never asked for an upgrade */
            tunnel *t = proxy_link_reset(ps, MUX_CODE_PROTOCOL_ERROR, "unexpected 101");
            (void)t;
            response_fail_before_head(ps, MUX_CODE_PROTOCOL_ERROR, "unexpected 101 Switching Protocols");
        }
        if (head->status == 100)
            relay_continue(ps); /* PROTOCOL.md §9.3: the user was waiting for it */
        return;                 /* other 1xx: h2o 2.2.5 cannot relay them; the final head follows */
    }
    if (h2o_timeout_is_linked(&ps->head_timeout))
        h2o_timeout_unlink(&ps->head_timeout);
    if (ps->upgrade_req && ps->tunnel != NULL && ps->id != 0) {
        /* upgrade refused: the request had no body; end our direction now (PROTOCOL.md §9.2) */
        mux_session_end_stream(tunnel_session(ps->tunnel), ps->id);
        ps->end_sent = 1;
        tunnel_flush(ps->tunnel);
    }
    response_set_head(req, head, "OK");
    response_set_state(ps, PROXY_RESP_STARTED);
    h2o_start_response(req, &ps->gen);
}

static void proxy_on_data(proxy_stream *ps, const uint8_t *data, size_t len)
{
    if (ps->raw) {
        upgrade_stream_on_data(ps, data, len);
        return;
    }
    if (ps->stopped || response_final_sent(ps) || ps->aborted || !response_started(ps)) {
        if (ps->tunnel != NULL && ps->id != 0)
            mux_session_consume(tunnel_session(ps->tunnel), ps->id, len);
        return;
    }
    if (ps->tunnel != NULL)
        ratelimit_charge(tunnel_rate_bytes(ps->tunnel), (double)len, server_now(ps->srv));
    if (response_take_slice(ps, data, len)) {
        response_schedule_send(ps);
        return;
    }
    if (resp_queue_append_copy(&ps->q, data, len) != 0) {
        proxy_link_reset(ps, MUX_CODE_INTERNAL_ERROR, "out of memory");
        response_abort(ps);
        return;
    }
    response_schedule_send(ps);
}

static void proxy_on_end(proxy_stream *ps)
{
    LOG_DEBUG(LOG_EV_STREAM, "stream %u (%s): response end", ps->id, ps->name);
    if (ps->raw) {
        upgrade_stream_on_end(ps);
        return;
    }
    ps->ended = 1;
    response_schedule_send(ps);
}

static void proxy_on_close(proxy_stream *ps, unsigned code, const char *reason, int by_peer)
{
    proxy_link_detach(ps);
    ps->id = 0;
    if (ps->raw) {
        LOG_DEBUG(LOG_EV_STREAM, "upgraded stream of %s closed: %s %s (by %s)", ps->name, mux_code_name(code), reason,
                  by_peer ? "client" : "server");
        upgrade_stream_on_close(ps, code);
        return;
    }
    if (code == MUX_CODE_NO_ERROR && ps->ended)
        return; /* normal end; buffered bytes still drain to h2o */
    if (by_peer && !response_started(ps) && !ps->stopped)
        LOG_INFO(LOG_EV_STREAM, "request for %s failed: the client sent CLOSE %s: %s", ps->name, mux_code_name(code), reason);
    else
        LOG_DEBUG(LOG_EV_STREAM, "stream of %s closed: %s %s (by %s, response %s)", ps->name, mux_code_name(code), reason,
                  by_peer ? "client" : "server", proxy_resp_state_to_str(ps->resp_state));
    if (!response_started(ps)) /* the client's reason is for our log only (PROTOCOL.md §9.5): it may name
                                  internal addresses; the public body names the code's cause */
        response_fail_before_head(ps, code, by_peer ? "" : reason);
    else
        response_abort(ps);
}

static void proxy_on_writable(proxy_stream *ps)
{
    if (ps->raw)
        upgrade_stream_pump_input(ps);
    else
        body_pump_run(ps);
}

/* 1 when the request may be sent twice (RFC 9110 §9.2.2): GET, HEAD, OPTIONS, or any method with
 * an Idempotency-Key header (draft-ietf-httpapi-idempotency-key-header). */
static int idempotent(h2o_req_t *req)
{
    h2o_iovec_t m = req->method;
    if (h2o_memis(m.base, m.len, H2O_STRLIT("GET")) || h2o_memis(m.base, m.len, H2O_STRLIT("HEAD")) ||
        h2o_memis(m.base, m.len, H2O_STRLIT("OPTIONS")))
        return 1;
    return h2o_find_header_by_str(&req->headers, H2O_STRLIT("idempotency-key"), -1) != -1;
}

/*
 * Safe retry (docs/SCALING.md): the tunnel of |ps| was lost before any response byte arrived. When
 * the request is idempotent, no body byte went into the lost tunnel (a body still in memory can be
 * sent again; a streamed one cannot), it is not an upgrade and was not retried already, it is sent
 * once more on another tunnel of the name. Returns 1 when it was.
 */
static int retry_elsewhere(proxy_stream *ps)
{
    server *srv = ps->srv;
    if (ps->retried || response_started(ps) || ps->stopped || ps->upgrade_req || ps->ub != NULL || ps->hb != NULL ||
        ps->body_off > 0 || !idempotent(ps->req))
        return 0;
    tunnel *t = registry_pick(&srv->reg, ps->name, tunnel_load, NULL, NULL); /* the lost one left the registry */
    if (t == NULL || tunnel_in_mux_call(t))
        return 0;
    ps->retried = 1;
    ps->body_done = 0;
    int32_t id = open_stream_on(ps, t);
    if (id <= 0) {
        LOG_INFO(LOG_EV_STREAM, "request for %s: safe retry on %s impossible: %s", ps->name, tunnel_peer(t),
                 id == 0 ? "out of memory" : mux_strerror(id));
        return 0;
    }
    ps->id = (uint32_t)id;
    ps->tunnel = t;
    tunnel_add_stream(t, &ps->link);
    access_log_note_stream(ps->req, ps->id);
    if (srv->metrics != NULL)
        metrics_on_retry(srv->metrics);
    LOG_INFO(LOG_EV_STREAM, "request for %s: tunnel lost before the response, retried on %s (stream %u): %.*s", ps->name,
             tunnel_peer(t), ps->id, (int)ps->req->method.len, ps->req->method.base);
    h2o_timeout_link(srv->ctx.loop, &srv->read_timeout, &ps->head_timeout);
    body_pump_run(ps);
    tunnel_flush(t);
    return 1;
}

static void proxy_on_tunnel_lost(proxy_stream *ps)
{
    ps->tunnel = NULL;
    ps->id = 0;
    if (ps->raw) {
        upgrade_stream_on_close(ps, MUX_CODE_CANCEL);
        return;
    }
    if (h2o_timeout_is_linked(&ps->head_timeout))
        h2o_timeout_unlink(&ps->head_timeout);
    if (retry_elsewhere(ps))
        return;
    if (!response_started(ps) && !ps->stopped) {
        char host[128];
        response_safe_host(ps->req, host, sizeof(host));
        response_set_state(ps, PROXY_RESP_FINAL_SENT);
        response_send_text(ps->req, 502, "Bad Gateway", "tunnelmux: tunnel %s was lost before the response (host %s)\n", ps->name,
                           host);
    } else {
        response_abort(ps);
    }
}

/* ---------------------------------------------------------------- the tunnel's view (tunnel.h) */

static void ops_on_head(void *stream, const mux_head *head)
{
    proxy_on_head(stream, head);
}

static void ops_on_data(void *stream, const uint8_t *data, size_t len)
{
    proxy_on_data(stream, data, len);
}

static void ops_on_end(void *stream)
{
    proxy_on_end(stream);
}

static void ops_on_close(void *stream, unsigned code, const char *reason, int by_peer)
{
    proxy_on_close(stream, code, reason, by_peer);
}

static void ops_on_writable(void *stream)
{
    proxy_on_writable(stream);
}

static void ops_on_tunnel_lost(void *stream)
{
    proxy_on_tunnel_lost(stream);
}

static h2o_linklist_t *ops_link(void *stream)
{
    return proxy_link(stream);
}

static void *ops_from_link(h2o_linklist_t *link)
{
    return proxy_from_link(link);
}

static const tunnel_stream_ops tunnel_ops = {.on_head = ops_on_head,
                                             .on_data = ops_on_data,
                                             .on_end = ops_on_end,
                                             .on_close = ops_on_close,
                                             .on_writable = ops_on_writable,
                                             .on_tunnel_lost = ops_on_tunnel_lost,
                                             .link = ops_link,
                                             .from_link = ops_from_link,
                                             .gather = proxy_gather};

const tunnel_stream_ops *proxy_tunnel_ops(void)
{
    return &tunnel_ops;
}
