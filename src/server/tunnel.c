/*
 * tunnelmux server — the /_tunnel endpoint (see tunnel.h; docs/ARCHITECTURE.md §7: raw upgrade,
 * [header, payload] iovec writes without copy, in-place unmasking on read).
 */
#include "common/sockopt.h"
#include "common/clock.h"
#include "server/tunnel_internal.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include <openssl/sha.h>

#include "common/http_token.h"
#include "common/log.h"
#include "common/net_addr.h"
#include "h2o/http1.h"
#include "mux/ws.h"
#include "server/metrics.h"
#include "server/route.h"

#define TICK_MS 100
/* one read() of a tunnel socket takes up to this (server.tunnel_input). h2o doubles a buffer a
 * read filled, copying it: 4 MiB is rarely filled by one wake-up's worth of a client's writes,
 * and only the pages a read touches cost memory */
#define TUNNEL_READ_BUF (4 * 1024 * 1024)
/* read buffers kept alive by responses that still send from them (rxslab.h), all tunnels
 * together; above this, payloads are copied. A fast download keeps one or two alive; slow readers
 * keep theirs until h2o wrote their bytes, so this bounds what they can pin (capacity, 8 buffers) */
#define RX_SLAB_BUDGET (32u * 1024 * 1024)

static void do_flush(tunnel *t);

/* ---------------------------------------------------------------- lifetime */

/* The tunnel stops serving (closing or lingering): its name is free again, it is counted and
 * logged as lost, and every public request still on it fails. Runs once. */
static void release(tunnel *t)
{
    server *srv = t->srv;
    if (t->released)
        return;
    t->released = 1;
    if (t->registered) {
        registry_remove(&srv->reg, t->name, t);
        if (srv->metrics != NULL && t->sess != NULL) {
            mux_session_stats st;
            mux_session_get_stats(t->sess, &st);
            metrics_on_tunnel_closed(srv->metrics, t->name, &st);
        }
        LOG_INFO(LOG_EV_TUNNEL, "tunnel lost: name=%s peer=%s reason=%s", t->name, t->peer,
                 t->close_reason[0] ? t->close_reason : "closed");
    } else {
        LOG_DEBUG(LOG_EV_TUNNEL, "tunnel connection closed: peer=%s reason=%s", t->peer,
                  t->close_reason[0] ? t->close_reason : "closed");
    }
    t->registered = 0;
    while (!h2o_linklist_is_empty(&t->streams)) {
        h2o_linklist_t *l = t->streams.next;
        h2o_linklist_unlink(l);
        t->ops->on_tunnel_lost(t->ops->from_link(l));
    }
}

static void destroy(tunnel *t)
{
    server *srv = t->srv;
    h2o_linklist_unlink(&t->link);
    srv->ntunnels--;
    if (h2o_timeout_is_linked(&t->write_timeout_entry))
        h2o_timeout_unlink(&t->write_timeout_entry);
    if (h2o_timeout_is_linked(&t->reap_entry))
        h2o_timeout_unlink(&t->reap_entry);
    if (h2o_timeout_is_linked(&t->flush_entry))
        h2o_timeout_unlink(&t->flush_entry);
    if (h2o_timeout_is_linked(&t->linger_entry))
        h2o_timeout_unlink(&t->linger_entry);
    release(t);
    if (t->sess != NULL)
        mux_session_del(t->sess);
    if (t->sock != NULL) {
        t->sock->data = NULL;
        h2o_socket_close(t->sock);
    }
    free(t);
}

static void on_reap(h2o_timeout_entry_t *e)
{
    destroy(H2O_STRUCT_FROM_MEMBER(tunnel, reap_entry, e));
}

/* Schedules destruction from the loop (never synchronously). */
void tunnel__schedule_destroy(tunnel *t, const char *reason)
{
    if (reason != NULL && t->close_reason[0] == '\0')
        snprintf(t->close_reason, sizeof(t->close_reason), "%s", reason);
    if (t->dying)
        return;
    t->dying = 1;
    if (t->sock != NULL)
        h2o_socket_read_stop(t->sock);
    h2o_timeout_link(t->srv->ctx.loop, &t->srv->ctx.zero_timeout, &t->reap_entry);
}

/* ---------------------------------------------------------------- socket I/O */

static void on_write_timeout(h2o_timeout_entry_t *e)
{
    tunnel *t = H2O_STRUCT_FROM_MEMBER(tunnel, write_timeout_entry, e);
    tunnel__schedule_destroy(t, "write timeout");
}

static void on_write(h2o_socket_t *sock, const char *err)
{
    tunnel *t = sock->data;
    if (t == NULL)
        return;
    t->writing = 0;
    if (h2o_timeout_is_linked(&t->write_timeout_entry))
        h2o_timeout_unlink(&t->write_timeout_entry);
    if (err != NULL) {
        tunnel__schedule_destroy(t, err);
        return;
    }
    t->busy++;
    mux_session_send_done(t->sess, server_now(t->srv));
    t->busy--;
    do_flush(t);
}

static void on_linger_timeout(h2o_timeout_entry_t *e)
{
    tunnel *t = H2O_STRUCT_FROM_MEMBER(tunnel, linger_entry, e);
    LOG_DEBUG(LOG_EV_TUNNEL, "tunnel %s (peer %s): no close from the peer within %d ms of ours", t->name[0] ? t->name : "-",
              t->peer, TUNNEL_LINGER_MS);
    tunnel__schedule_destroy(t, NULL);
}

/*
 * Everything the session produced was written and it wants to close: lingering close (RFC 6455
 * §7.1.1, PROTOCOL.md §8). Closing now with unread input would send a reset that can destroy our
 * GOAWAY and close frame before the peer reads them; instead the write side is shut down (FIN) and
 * the peer's input is read and dropped until its close frame, EOF, TUNNEL_LINGER_BYTES or
 * TUNNEL_LINGER_MS. The name is free and the requests failed at once (release).
 */
static void linger_start(tunnel *t)
{
    const char *why = mux_session_last_error_reason(t->sess);
    if (t->close_reason[0] == '\0')
        snprintf(t->close_reason, sizeof(t->close_reason), "%s", why[0] ? why : "session closed");
    if (t->lingering)
        return;
    if (mux_session_peer_closed(t->sess)) {
        tunnel__schedule_destroy(t, NULL); /* the peer acknowledged our close (or closed first) */
        return;
    }
    t->lingering = 1;
    release(t);
    if (t->sock->ssl == NULL) /* TLS: the FIN would cut the TLS stream; the close frame says it */
        shutdown(h2o_socket_get_fd(t->sock), SHUT_WR);
    h2o_timeout_link(t->srv->ctx.loop, &t->srv->linger_timeout, &t->linger_entry);
}

static void do_flush(tunnel *t)
{
    if (t->writing || t->sess == NULL || t->sock == NULL || t->dying)
        return;
    ssize_t n = mux_session_send(t->sess, t->iov, TUNNEL_IOVCNT, server_now(t->srv));
    if (n < 0) {
        char why[160];
        snprintf(why, sizeof(why), "send: %s", mux_session_last_error_reason(t->sess));
        tunnel__schedule_destroy(t, why);
        return;
    }
    if (n > 0) {
        t->writing = 1;
        h2o_timeout_link(t->srv->ctx.loop, &t->srv->write_timeout, &t->write_timeout_entry);
        /* mux_iovec and h2o_iovec_t share the {base, len} layout (mux.h) */
        h2o_socket_write(t->sock, (h2o_iovec_t *)t->iov, (size_t)n, on_write);
        return;
    }
    if (mux_session_want_close(t->sess))
        linger_start(t);
}

static void on_flush_entry(h2o_timeout_entry_t *e)
{
    do_flush(H2O_STRUCT_FROM_MEMBER(tunnel, flush_entry, e));
}

size_t tunnel_open_requests(const tunnel *t)
{
    size_t n = 0;
    for (const h2o_linklist_t *l = t->streams.next; l != &t->streams; l = l->next)
        n++;
    return n;
}

long tunnel_load(void *tunnel_value, void *unused)
{
    (void)unused;
    tunnel *t = tunnel_value;
    if (t->sess == NULL || t->dying || t->lingering || t->released || t->handed_over || t->goaway_recv)
        return -1;
    return (long)tunnel_open_requests(t);
}

rxslab *tunnel_rx_slab(tunnel *t, const uint8_t *data, size_t len)
{
    rxslab *slab = t->rx_slab;
    if (slab == NULL || rxslab_pool_full(slab->pool) || !rxslab_contains(slab, data, len))
        return NULL;
    return slab;
}

void tunnel_flush(tunnel *t)
{
    if (t->dying || t->writing || h2o_timeout_is_linked(&t->flush_entry))
        return; /* on_write flushes after the write in flight */
    h2o_timeout_link(t->srv->ctx.loop, &t->srv->ctx.zero_timeout, &t->flush_entry);
}

static void on_read(h2o_socket_t *sock, const char *err)
{
    tunnel *t = sock->data;
    if (t == NULL)
        return;
    if (err != NULL) {
        tunnel__schedule_destroy(t, err);
        return;
    }
    if (sock->input->size > 0) {
        t->last_rx_ms = server_now(t->srv); /* liveness (name takeover): any bytes answer a probe */
        t->probe_ms = 0;
    }
    if (sock->input->size > 0 && !t->dying && mux_session_want_close(t->sess)) {
        /* closing: the session only looks for the peer's close frame (lingering close) */
        t->linger_bytes += sock->input->size;
        t->busy++;
        mux_session_recv(t->sess, (uint8_t *)sock->input->bytes, sock->input->size, server_now(t->srv));
        t->busy--;
        h2o_buffer_consume(&sock->input, sock->input->size);
        if (t->lingering && mux_session_peer_closed(t->sess)) {
            tunnel__schedule_destroy(t, NULL);
            return;
        }
        if (t->linger_bytes > TUNNEL_LINGER_BYTES) {
            LOG_DEBUG(LOG_EV_TUNNEL, "tunnel %s (peer %s): peer kept sending after our close (%llu bytes)",
                      t->name[0] ? t->name : "-", t->peer, (unsigned long long)t->linger_bytes);
            tunnel__schedule_destroy(t, NULL);
            return;
        }
    } else if (sock->input->size > 0 && !t->dying) {
        /* the read buffer becomes a slab: responses may keep pointers into it (rxslab.h) */
        rxslab *slab = rxslab_adopt(&t->srv->rx_slabs, &sock->input);
        uint8_t *p = slab != NULL ? rxslab_bytes(slab) : (uint8_t *)sock->input->bytes;
        size_t n = slab != NULL ? slab->buf->size : sock->input->size;
        t->busy++;
        t->rx_slab = slab;
        ssize_t r = mux_session_recv(t->sess, p, n, server_now(t->srv));
        t->rx_slab = NULL;
        t->busy--;
        if (slab != NULL)
            rxslab_unref(slab);
        else
            h2o_buffer_consume(&sock->input, sock->input->size);
        if (r < 0) {
            snprintf(t->close_reason, sizeof(t->close_reason), "%s: %s", mux_strerror((int)r),
                     mux_session_last_error_reason(t->sess));
            if (mux_is_fatal((int)r)) /* reading goes on: lingering close (linger_start) */
                LOG_WARN(LOG_EV_TUNNEL, "tunnel %s (peer %s): %s", t->name[0] ? t->name : "-", t->peer, t->close_reason);
        }
    } else if (sock->input->size > 0) {
        h2o_buffer_consume(&sock->input, sock->input->size);
    }
    tunnel_flush(t);
}

/* ---------------------------------------------------------------- mux callbacks */

static int cb_on_head(mux_session *s, uint32_t id, const mux_head *head, void *sud, void *user_data)
{
    tunnel *t = user_data;
    if (sud != NULL)
        t->ops->on_head(sud, head);
    return 0;
}

static int cb_on_data(mux_session *s, uint32_t id, const uint8_t *data, size_t len, void *sud, void *user_data)
{
    tunnel *t = user_data;
    if (sud != NULL)
        t->ops->on_data(sud, data, len);
    else
        mux_session_consume(s, id, len);
    return 0;
}

static int cb_on_end(mux_session *s, uint32_t id, void *sud, void *user_data)
{
    tunnel *t = user_data;
    if (sud != NULL)
        t->ops->on_end(sud);
    return 0;
}

static void cb_on_stream_close(mux_session *s, uint32_t id, unsigned code, const char *reason, int by_peer, void *sud,
                               void *user_data)
{
    tunnel *t = user_data;
    if (sud != NULL) {
        h2o_linklist_t *l = t->ops->link(sud);
        if (h2o_linklist_is_linked(l))
            h2o_linklist_unlink(l);
        t->ops->on_close(sud, code, reason, by_peer);
    }
}

static void cb_on_writable(mux_session *s, uint32_t id, void *sud, void *user_data)
{
    tunnel *t = user_data;
    if (sud != NULL)
        t->ops->on_writable(sud);
}

static void cb_on_goaway(mux_session *s, uint32_t last_stream_id, unsigned code, const char *reason, void *user_data)
{
    tunnel *t = user_data;
    t->goaway_recv = 1;
    LOG_INFO(LOG_EV_TUNNEL, "tunnel %s sent GOAWAY: code=%s reason=%s", t->name[0] ? t->name : t->peer, mux_code_name(code),
             reason);
}

/* ---------------------------------------------------------------- upgrade */

/* |peer| = "ip:port" of the client daemon ("-" when unknown) and |ip| = its IP (the throttle key),
 * IPv4-mapped addresses shown as IPv4 (net_addr.h). */
static void format_peer(h2o_conn_t *conn, char *peer, size_t peercap, char *ip, size_t ipcap)
{
    struct sockaddr_storage ss;
    socklen_t len = conn->callbacks->get_peername(conn, (struct sockaddr *)&ss);
    if (net_addr_format((struct sockaddr *)&ss, len, NET_ADDR_UNMAP_V4, ip, ipcap, peer, peercap) != 0) {
        snprintf(peer, peercap, "-");
        snprintf(ip, ipcap, "-");
    }
}

static void on_upgrade_complete(void *user_data, h2o_socket_t *sock, size_t reqsize)
{
    tunnel *t = user_data;
    server *srv = t->srv;
    if (sock == NULL) {
        LOG_WARN(LOG_EV_TUNNEL, "tunnel upgrade failed: peer=%s", t->peer);
        free(t);
        return;
    }
    h2o_buffer_consume(&sock->input, reqsize);
    /* from now on every read lands in one TUNNEL_READ_BUF buffer (see server.tunnel_input) */
    h2o_buffer_set_prototype(&sock->input, &srv->tunnel_input);
    t->sock = sock;
    t->last_rx_ms = server_now(srv);
    sock->data = t;
    sockopt_set_nodelay(h2o_socket_get_fd(sock));
    /* PROTOCOL.md §6.4: little unsent data below the scheduler, so interactive DATA overtakes bulk */
    sockopt_set_notsent_lowat(h2o_socket_get_fd(sock), srv->opt->tunnel_notsent_lowat);

    mux_session_options opt;
    mux_session_options_default(&opt, MUX_ROLE_SERVER);
    opt.max_message_size = (uint32_t)srv->opt->max_message_size;
    opt.chunk_size = (uint32_t)srv->opt->chunk_size;
    opt.ping_interval_ms = (uint32_t)srv->opt->ping_interval_ms;
    opt.ping_timeout_ms = (uint32_t)srv->opt->ping_timeout_ms;
    opt.max_concurrent_streams = (uint32_t)srv->opt->max_streams_per_client;
    opt.max_header_count = (uint32_t)srv->opt->max_header_count;
    opt.max_header_bytes = (uint32_t)srv->opt->max_header_bytes;
    opt.initial_conn_window = (uint32_t)srv->opt->max_buffer_per_client;
    opt.initial_stream_window = (uint32_t)srv->opt->stream_window;
    opt.max_stream_window = (uint32_t)srv->opt->max_stream_window;
    if (opt.max_stream_window > opt.initial_conn_window)
        opt.max_stream_window = opt.initial_conn_window;
    if (opt.initial_stream_window > opt.initial_conn_window)
        opt.initial_stream_window = opt.initial_conn_window;
    opt.zstd_window_log = (int)srv->opt->zstd_window_log;
    opt.enable_zstd = srv->opt->compression;
    opt.zstd_level = (int)srv->opt->zstd_level;
    mux_session_callbacks cb = {
        .on_hello = tunnel__on_hello,
        .on_head = cb_on_head,
        .on_data = cb_on_data,
        .on_end = cb_on_end,
        .on_stream_close = cb_on_stream_close,
        .on_writable = cb_on_writable,
        .on_goaway = cb_on_goaway,
    };
    h2o_linklist_insert(&srv->tunnels, &t->link);
    srv->ntunnels++;
    int rv = mux_session_new(&t->sess, &opt, &cb, NULL, t, server_now(srv));
    if (rv != 0) {
        t->sess = NULL;
        LOG_ERROR(LOG_EV_TUNNEL, "tunnel session: %s", mux_strerror(rv));
        tunnel__schedule_destroy(t, "session creation failed");
        return;
    }
    LOG_DEBUG(LOG_EV_TUNNEL, "tunnel connection upgraded: peer=%s", t->peer);
    h2o_socket_read_start(sock, on_read);
    if (sock->input->size > 0)
        on_read(sock, NULL);
}

/* 1 when the comma-separated |list| contains |token| (case-insensitive, spaces trimmed). */
static int list_has_token(h2o_iovec_t list, const char *token)
{
    return http_list_has(list.base, list.len, token, strlen(token));
}

static h2o_iovec_t find_header(h2o_req_t *req, const char *name)
{
    ssize_t i = h2o_find_header_by_str(&req->headers, name, strlen(name), -1);
    return i == -1 ? h2o_iovec_init(NULL, 0) : req->headers.entries[i].value;
}

static int send_plain(h2o_req_t *req, int status, const char *reason, const char *msg)
{
    h2o_send_error_generic(req, status, reason, msg, H2O_SEND_ERROR_KEEP_HEADERS);
    return 0;
}

int tunnel_handle_request(server *srv, h2o_req_t *req)
{
    if (req->version >= 0x200)
        return send_plain(req, 400, "Bad Request", "tunnelmux: the tunnel endpoint needs an HTTP/1.1 WebSocket upgrade\n");
    if (srv->shutting_down)
        return send_plain(req, 503, "Service Unavailable", "tunnelmux: server is shutting down\n");
    h2o_iovec_t upgrade = find_header(req, "upgrade");
    if (upgrade.base == NULL)
        upgrade = req->upgrade;
    if (upgrade.base == NULL) {
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_UPGRADE, NULL, H2O_STRLIT("websocket"));
        return send_plain(req, 426, "Upgrade Required", "tunnelmux: the tunnel endpoint needs a WebSocket upgrade\n");
    }
    h2o_iovec_t connection = find_header(req, "connection");
    h2o_iovec_t version = find_header(req, "sec-websocket-version");
    h2o_iovec_t key = find_header(req, "sec-websocket-key");
    char accept[MUX_WS_ACCEPT_LEN + 1];
    if (!h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET")) || !list_has_token(upgrade, "websocket") ||
        connection.base == NULL || !list_has_token(connection, "upgrade") || version.base == NULL ||
        !h2o_memis(version.base, version.len, H2O_STRLIT("13")) || key.base == NULL ||
        mux_ws_accept_key(key.base, key.len, accept) != 0)
        return send_plain(req, 400, "Bad Request", "tunnelmux: invalid WebSocket upgrade for the tunnel endpoint\n");
    if (srv->ntunnels >= (size_t)srv->opt->max_clients * 2 + 16)
        return send_plain(req, 503, "Service Unavailable", "tunnelmux: too many tunnel connections\n");
    char peer[64], ip[48];
    format_peer(req->conn, peer, sizeof(peer), ip, sizeof(ip));
    int64_t wait = auth_throttle_check(srv->throttle, ip, server_now(srv));
    if (wait > 0) {
        char ra[24];
        int n = snprintf(ra, sizeof(ra), "%lld", (long long)((wait + 999) / 1000));
        char *v = h2o_mem_alloc_pool(&req->pool, (size_t)n);
        memcpy(v, ra, (size_t)n);
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL, v, (size_t)n);
        LOG_WARN(LOG_EV_TUNNEL,
                 "tunnel refused before upgrade: peer=%s reason=RATE_LIMITED (too many failed logins, retry in %lld ms)", peer,
                 (long long)wait);
        return send_plain(req, 429, "Too Many Requests", "tunnelmux: too many failed authentication attempts\n");
    }

    tunnel *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return send_plain(req, 503, "Service Unavailable", "tunnelmux: out of memory\n");
    t->srv = srv;
    t->ops = srv->tunnel_ops;
    h2o_linklist_init_anchor(&t->streams);
    t->write_timeout_entry.cb = on_write_timeout;
    t->reap_entry.cb = on_reap;
    t->flush_entry.cb = on_flush_entry;
    t->linger_entry.cb = on_linger_timeout;
    memcpy(t->peer, peer, sizeof(t->peer));
    memcpy(t->peer_ip, ip, sizeof(t->peer_ip));

    char *acc = h2o_mem_alloc_pool(&req->pool, MUX_WS_ACCEPT_LEN);
    memcpy(acc, accept, MUX_WS_ACCEPT_LEN);
    req->res.status = 101;
    req->res.reason = "Switching Protocols";
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_UPGRADE, NULL, H2O_STRLIT("websocket"));
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("sec-websocket-accept"), 0, NULL, acc, MUX_WS_ACCEPT_LEN);
    h2o_iovec_t proto = find_header(req, "sec-websocket-protocol");
    if (proto.base != NULL && list_has_token(proto, MUX_WS_SUBPROTOCOL))
        h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("sec-websocket-protocol"), 0, NULL,
                              H2O_STRLIT(MUX_WS_SUBPROTOCOL));
    h2o_http1_upgrade(req, NULL, 0, on_upgrade_complete, t);
    return 0;
}

/* ---------------------------------------------------------------- timers, shutdown */

static void on_tick(h2o_timeout_entry_t *e)
{
    server *srv = H2O_STRUCT_FROM_MEMBER(server, tick_entry, e);
    int64_t now = server_now(srv);
    for (h2o_linklist_t *l = srv->tunnels.next; l != &srv->tunnels; l = l->next) {
        tunnel *t = H2O_STRUCT_FROM_MEMBER(tunnel, link, l);
        if (t->sess == NULL || t->dying)
            continue;
        int64_t due = mux_session_next_timeout(t->sess);
        if (due >= 0 && due <= now) {
            t->busy++;
            int rv = mux_session_handle_timeout(t->sess, now);
            t->busy--;
            if (rv < 0)
                snprintf(t->close_reason, sizeof(t->close_reason), "%s: %s", mux_strerror(rv),
                         mux_session_last_error_reason(t->sess));
            if (rv == MUX_ERR_TIMEOUT && !t->registered) /* otherwise only a DEBUG line at destroy */
                LOG_INFO(LOG_EV_TUNNEL, "tunnel connection closed at the HELLO deadline: peer=%s (%s: no registration within 10 s)",
                         t->peer, mux_session_last_error_reason(t->sess));
        }
        do_flush(t);
    }
    h2o_timeout_link(srv->ctx.loop, &srv->tick_timeout, &srv->tick_entry);
}

void tunnel_init_server(server *srv, const tunnel_stream_ops *ops)
{
    srv->tunnel_ops = ops;
    h2o_linklist_init_anchor(&srv->tunnels);
    h2o_linklist_init_anchor(&srv->proxies);
    /* allocator.max = 0: a drained buffer goes back to malloc (which keeps it, heap.c) rather than
     * to a recycle list nobody frees at exit; no mmap_settings: tunnel input never spills to a file */
    srv->tunnel_input = (h2o_buffer_prototype_t){.allocator = {.max = 0}, ._initial_buf = {.capacity = TUNNEL_READ_BUF}};
    srv->rx_slabs = (rxslab_pool){.budget = RX_SLAB_BUDGET};
    h2o_timeout_init(srv->ctx.loop, &srv->write_timeout, (uint64_t)srv->opt->write_timeout_ms);
    h2o_timeout_init(srv->ctx.loop, &srv->tick_timeout, TICK_MS);
    h2o_timeout_init(srv->ctx.loop, &srv->linger_timeout, TUNNEL_LINGER_MS);
    srv->tick_entry.cb = on_tick;
    h2o_timeout_link(srv->ctx.loop, &srv->tick_timeout, &srv->tick_entry);
}

void tunnel_disconnect(tunnel *t, const char *reason)
{
    if (t->dying)
        return;
    LOG_INFO(LOG_EV_TUNNEL, "tunnel disconnect requested: name=%s peer=%s reason=%s", t->name[0] ? t->name : "-", t->peer, reason);
    if (t->sess != NULL && !t->busy) {
        mux_session_goaway(t->sess, MUX_CODE_NO_ERROR, reason);
        do_flush(t);
    }
    tunnel__schedule_destroy(t, reason);
}

uint64_t tunnel_gather_requests(server *srv, metrics_live *live, size_t nlive)
{
    return srv->tunnel_ops->gather(srv, live, nlive);
}

void tunnel_shutdown_all(server *srv)
{
    for (h2o_linklist_t *l = srv->tunnels.next; l != &srv->tunnels; l = l->next) {
        tunnel *t = H2O_STRUCT_FROM_MEMBER(tunnel, link, l);
        if (t->sess == NULL || t->dying || t->lingering)
            continue;
        mux_session_goaway(t->sess, MUX_CODE_SHUTDOWN, "server shutting down");
        snprintf(t->close_reason, sizeof(t->close_reason), "server shutdown");
        tunnel_flush(t);
    }
}

void tunnel_destroy_all(server *srv)
{
    while (!h2o_linklist_is_empty(&srv->tunnels)) {
        tunnel *t = H2O_STRUCT_FROM_MEMBER(tunnel, link, srv->tunnels.next);
        destroy(t);
    }
}

/* ---------------------------------------------------------------- accessors (tunnel.h) */

mux_session *tunnel_session(const tunnel *t)
{
    return t->sess;
}

int tunnel_in_mux_call(const tunnel *t)
{
    return t->busy > 0;
}

int tunnel_is_dying(const tunnel *t)
{
    return t->dying;
}

int tunnel_serves_name(const tunnel *t)
{
    return t->registered && t->sess != NULL && !t->dying && !t->handed_over;
}

const char *tunnel_name(const tunnel *t)
{
    return t->name;
}

const char *tunnel_peer(const tunnel *t)
{
    return t->peer;
}

int64_t tunnel_connected_unix_ms(const tunnel *t)
{
    return t->connected_unix_ms;
}

const char *tunnel_state_name(const tunnel *t)
{
    return t->goaway_recv ? "leaving" : t->dying ? "closing" : "serving";
}

ratelimit_bucket *tunnel_rate_requests(tunnel *t)
{
    return &t->rl_requests;
}

ratelimit_bucket *tunnel_rate_bytes(tunnel *t)
{
    return &t->rl_bytes;
}

void tunnel_add_stream(tunnel *t, h2o_linklist_t *node)
{
    h2o_linklist_insert(&t->streams, node);
}

tunnel *tunnel_next(server *srv, tunnel *prev)
{
    h2o_linklist_t *l = prev != NULL ? prev->link.next : srv->tunnels.next;
    return l != &srv->tunnels ? H2O_STRUCT_FROM_MEMBER(tunnel, link, l) : NULL;
}
