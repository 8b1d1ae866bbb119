/*
 * tunnelmux client — the tunnel: one lws RAW client connection to the server carrying our own
 * WebSocket upgrade (mux_ws_client_request / mux_ws_parse_response) and then a CLIENT
 * mux_session. TLS (wss://) runs through tls_membio on the RAW connection. Reconnects after
 * RECONNECT_DELAY up to MAX_RETRIES.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "backoff.h"
#include "common/clock.h"
#include "common/config.h"
#include "common/log.h"
#include "common/sockopt.h"
#include "mux/ws.h"
#include "raw_conn.h"
#include "tls_membio.h"
#include "tunnel.h"
#include "upstream.h"

#define TUNNEL_HANDSHAKE_MAX 16384
#define TUNNEL_UPGRADE_TIMEOUT_MS 15000
#define TUNNEL_IOV 128
#define TUNNEL_IDLE_FLUSH_MS 1000         /* SIGTERM with no stream in flight: longest wait for the GOAWAY to leave */
#define TUNNEL_LINGER_S 2                 /* lingering close: longest wait for the server's close or EOF */
#define TUNNEL_LINGER_BYTES (1024 * 1024) /* lingering close: most input read and dropped */

typedef enum {
    T_CONNECTING = 0, /* TCP connect in progress */
    T_TLS,            /* TLS handshake in progress */
    T_SEND_UPGRADE,   /* connected: the upgrade request goes out on the next writable callback */
    T_UPGRADING,      /* upgrade sent, waiting for the 101 */
    T_OPEN,           /* mux_session running */
} tunnel_state;

struct tunnel {
    client *c;
    client_server *srv; /* the SERVER_URL element this tunnel goes to */
    struct lws *wsi;
    tls_membio *tls;
    tunnel_state state;
    char key[MUX_WS_KEY_LEN + 1];
    char hs[TUNNEL_HANDSHAKE_MAX];
    size_t hslen;
    mux_session *s;
    lws_sorted_usec_list_t sul;       /* session timer, or the upgrade deadline before T_OPEN */
    lws_sorted_usec_list_t stall_sul; /* WRITE_TIMEOUT: the socket took nothing for that long */
    int64_t stall_deadline; /* a write was left (partly) unsent: WRITE_TIMEOUT from then or the last progress; 0 = not choked */
    upstream_host host;     /* what its upstreams see (upstream.h): their list and the ops */
    uint8_t *stage;         /* wss: TLS records on their way to lws_write */
    size_t stage_cap;
    /* ws:// batches are written straight to the socket with writev(): the part of the last
     * mux_session_send() batch the kernel did not take yet (iov[pend_i..pend_n), the first one
     * advanced by pend_off) */
    mux_iovec pend[TUNNEL_IOV];
    int pend_n, pend_i;
    size_t pend_off;
    int want_flush; /* the session has something to send: flushed after this loop turn */
    int welcomed;
    int64_t retry_after_ms; /* from REFUSE */
    int close_now;          /* return -1 from the next callback */
    int write_stalled;      /* closed by the WRITE_TIMEOUT (the server stopped reading) */
    /* lingering close (PROTOCOL.md §8): our GOAWAY and close are out, the write side is shut, the
     * server's bytes are dropped until its close frame, EOF, TUNNEL_LINGER_BYTES or TUNNEL_LINGER_S */
    int lingering;
    uint64_t linger_bytes; /* bytes received since the session wanted to close */
};

mux_session *tunnel_session(const tunnel *t)
{
    return t->s;
}

/* ---------------------------------------------------------------- the host its upstreams see */

static tunnel *host_tunnel(void *user_data)
{
    return lws_container_of(user_data, tunnel, host);
}

static mux_session *host_session(const upstream_host *h)
{
    const tunnel *t = (const tunnel *)((const char *)h - offsetof(tunnel, host));
    return t->s;
}

static const upstream_host_ops host_ops = {
    .session = host_session,
    .kick_all = tunnel_kick_all,
    .want_flush = client_want_flush,
};

/* ---------------------------------------------------------------- writing */

/* Writes |len| bytes towards the server (through TLS when wss). 0 or -1. */
static int t_write(tunnel *t, const uint8_t *p, size_t len)
{
    if (t->tls == NULL)
        return lws_write(t->wsi, (unsigned char *)p, len, LWS_WRITE_RAW) < 0 ? -1 : 0;
    return raw_conn_tls_write(t->wsi, t->tls, p, len, t->stage, t->stage_cap);
}

/* Bytes wait for the socket: the rest of our pending batch (ws://), or lws's own buffer (wss://). */
static int choked(const tunnel *t)
{
    return t->tls != NULL ? t->wsi != NULL && lws_partial_buffered(t->wsi) : t->pend_n > 0;
}

/* Writes what is left of the pending batch straight to the socket. Returns 1 when it all went
 * out, 0 when the socket is full (a writable callback requested), -1 on error. */
static int write_pending(tunnel *t)
{
    int fd = lws_get_socket_fd(t->wsi);
    if (fd < 0)
        return -1;
    for (int guard = 0; guard < 64 && t->pend_i < t->pend_n; guard++) {
        struct iovec v[TUNNEL_IOV];
        int k = 0;
        for (int i = t->pend_i; i < t->pend_n && k < TUNNEL_IOV; i++, k++) {
            v[k].iov_base = (uint8_t *)t->pend[i].base + (i == t->pend_i ? t->pend_off : 0);
            v[k].iov_len = t->pend[i].len - (i == t->pend_i ? t->pend_off : 0);
        }
        ssize_t n = writev(fd, v, k);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            LOG_WARN(LOG_EV_TUNNEL, "tunnel: write to %s failed: %s", t->srv->url.hostport, strerror(errno));
            return -1;
        }
        size_t left = (size_t)n;
        while (t->pend_i < t->pend_n && left >= t->pend[t->pend_i].len - t->pend_off) {
            left -= t->pend[t->pend_i].len - t->pend_off;
            t->pend_i++;
            t->pend_off = 0;
        }
        t->pend_off += left;
    }
    if (t->pend_i < t->pend_n) {
        lws_callback_on_writable(t->wsi);
        return 0;
    }
    t->pend_n = t->pend_i = 0;
    t->pend_off = 0;
    return 1;
}

/* Moves what the session wants to send onto the socket while it takes it. 0 or -1. */
static int flush_session(tunnel *t)
{
    t->want_flush = 0;
    if (t->tls == NULL && t->pend_n > 0) {
        int r = write_pending(t);
        if (r <= 0)
            return r;
        mux_session_send_done(t->s, clock_mono_ms());
    }
    for (int rounds = 0; rounds < 64; rounds++) {
        if (t->tls != NULL && choked(t)) {
            lws_callback_on_writable(t->wsi); /* lws writes the rest and then calls back */
            return 0;
        }
        int64_t now = clock_mono_ms();
        ssize_t n = mux_session_send(t->s, t->pend, TUNNEL_IOV, now);
        if (n < 0) {
            LOG_WARN(LOG_EV_TUNNEL, "tunnel: send failed: %s", mux_session_last_error_reason(t->s));
            return -1;
        }
        if (n == 0)
            break;
        if (t->tls != NULL) {
            /* TLS records are made from whatever we hand over: encrypt iovec by iovec */
            for (ssize_t i = 0; i < n; i++)
                if (t->pend[i].len > 0 && tls_membio_write(t->tls, t->pend[i].base, t->pend[i].len) != 0)
                    return -1;
            if (t_write(t, NULL, 0) != 0)
                return -1;
        } else {
            t->pend_n = (int)n;
            t->pend_i = 0;
            t->pend_off = 0;
            int r = write_pending(t);
            if (r <= 0)
                return r; /* the batch stays pending: send_done once it is all out */
        }
        mux_session_send_done(t->s, clock_mono_ms());
    }
    if (mux_session_want_write(t->s))
        t->want_flush = 1; /* more than 64 rounds: the next loop turn goes on */
    return 0;
}

/* ---------------------------------------------------------------- timer */

static void stall_cb(lws_sorted_usec_list_t *sul)
{
    tunnel *t = lws_container_of(sul, tunnel, stall_sul);
    if (t->wsi == NULL || t->stall_deadline == 0)
        return;
    if (!choked(t)) {
        t->stall_deadline = 0;
        return;
    }
    int64_t left = t->stall_deadline - clock_mono_ms();
    if (left > 0) {
        lws_sul_schedule(t->c->lws, 0, &t->stall_sul, stall_cb, (lws_usec_t)left * 1000);
        return;
    }
    LOG_WARN(LOG_EV_TUNNEL, "tunnel: %s took no data for %lld s (WRITE_TIMEOUT), reconnecting", t->srv->url.hostport,
             (long long)(t->c->opt->write_timeout_ms / 1000));
    t->write_stalled = 1;
    lws_set_timeout(t->wsi, 1, LWS_TO_KILL_ASYNC);
}

/* WRITE_TIMEOUT bookkeeping after writing: what the socket did not take waits (in |pend|, or in
 * lws's buffer when wss) until a writable callback, so "choked for WRITE_TIMEOUT without a
 * writable callback" means the server stopped reading. |progress|: called from a writable
 * callback. */
static void track_write(tunnel *t, int progress)
{
    if (t->wsi == NULL)
        return;
    if (!raw_conn_stall_track(&t->stall_deadline, choked(t), progress, clock_mono_ms(), t->c->opt->write_timeout_ms))
        return;
    if (t->stall_deadline == 0) {
        lws_sul_cancel(&t->stall_sul);
        return;
    }
    lws_sul_schedule(t->c->lws, 0, &t->stall_sul, stall_cb, (lws_usec_t)t->c->opt->write_timeout_ms * 1000);
}

static void tunnel_timer_cb(lws_sorted_usec_list_t *sul)
{
    tunnel *t = lws_container_of(sul, tunnel, sul);
    if (t->state != T_OPEN) {
        LOG_WARN(LOG_EV_TUNNEL, "tunnel: no WebSocket upgrade from %s within %d s", t->srv->url.hostport,
                 TUNNEL_UPGRADE_TIMEOUT_MS / 1000);
        lws_set_timeout(t->wsi, 1, LWS_TO_KILL_ASYNC);
        return;
    }
    int r = mux_session_handle_timeout(t->s, clock_mono_ms());
    if (r < 0)
        LOG_WARN(LOG_EV_TUNNEL, "tunnel: %s (%s)", mux_strerror(r), mux_session_last_error_reason(t->s));
    tunnel_kick(t);
}

void tunnel_kick(tunnel *t)
{
    if (t == NULL || t->s == NULL || t->wsi == NULL)
        return;
    /* writes wait for the end of this loop turn (tunnel_after_service) so that everything the
     * turn produced leaves in one batch; a choked socket gets its writable callback instead */
    if (mux_session_want_write(t->s) || mux_session_want_close(t->s)) {
        t->want_flush = 1;
        client_want_flush(t->c);
    }
    int64_t next = mux_session_next_timeout(t->s);
    if (next < 0) {
        lws_sul_cancel(&t->sul);
        return;
    }
    int64_t delay = next - clock_mono_ms();
    if (delay < 0)
        delay = 0;
    lws_sul_schedule(t->c->lws, 0, &t->sul, tunnel_timer_cb, (lws_usec_t)delay * 1000);
}

/* ---------------------------------------------------------------- session callbacks */

static void on_welcome(mux_session *s, const mux_welcome_info *w, void *user_data)
{
    tunnel *t = host_tunnel(user_data);
    t->welcomed = 1;
    t->srv->attempts = 0;
    t->c->metrics.registrations++;
    t->c->metrics.registered_unix_ms = clock_unix_ms();
    LOG_INFO(LOG_EV_TUNNEL, "registered as %s at %s%s%s (zstd %s) (continue relay %s) [%zu of %zu tunnel(s) up]",
             t->c->opt->client_id, t->srv->url.hostport, w->public_url[0] ? ", public URL " : "", w->public_url,
             (w->capabilities & MUX_CAP_ZSTD) ? "on" : "off", (w->capabilities & MUX_CAP_CONTINUE_RELAY) ? "on" : "off",
             tunnel_count_up(t->c), t->c->nservers);
    LOG_DEBUG(LOG_EV_TUNNEL, "server keepalive: PING after %u ms of silence, drops us after %u ms%s", w->ping_interval_ms,
              w->ping_timeout_ms, w->ping_timeout_ms == 0 ? " (not announced)" : "");
}

static void on_refuse(mux_session *s, unsigned code, const char *reason, uint32_t retry_after_ms, void *user_data)
{
    tunnel *t = host_tunnel(user_data);
    t->retry_after_ms = retry_after_ms;
    t->c->metrics.refusals++;
    LOG_WARN(LOG_EV_TUNNEL, "refused by server: %s (%s) [%s]", reason[0] ? reason : "no reason", mux_code_name(code),
             t->srv->url.hostport);
}

static void on_goaway(mux_session *s, uint32_t last_stream_id, unsigned code, const char *reason, void *user_data)
{
    tunnel *t = host_tunnel(user_data);
    LOG_INFO(LOG_EV_TUNNEL, "server going away: %s (%s) [%s]", reason[0] ? reason : "no reason", mux_code_name(code),
             t->srv->url.hostport);
}

static int start_session(tunnel *t)
{
    client *c = t->c;
    mux_session_options o;
    mux_session_options_default(&o, MUX_ROLE_CLIENT);
    o.max_message_size = (uint32_t)c->opt->max_message_size;
    o.max_concurrent_streams = (uint32_t)c->opt->max_streams;
    o.initial_stream_window = (uint32_t)c->opt->stream_window;
    o.initial_conn_window = (uint32_t)c->opt->max_conn_window;
    o.max_stream_window = (uint32_t)c->opt->max_stream_window;
    if (o.max_stream_window > o.initial_conn_window)
        o.max_stream_window = o.initial_conn_window;
    if (o.initial_stream_window > o.initial_conn_window)
        o.initial_stream_window = o.initial_conn_window;
    o.client_id = c->opt->client_id;
    o.auth_token = c->opt->auth_token ? c->opt->auth_token : "";
    o.software = "tunnelmux-client/" TUNNELMUX_VERSION;
    o.ping_interval_ms = (uint32_t)c->opt->ping_interval_ms;
    o.ping_timeout_ms = (uint32_t)c->opt->ping_timeout_ms;
    o.enable_zstd = c->opt->compression;
    o.enable_continue_relay = c->opt->expect_timeout_ms > 0; /* PROTOCOL.md §9.3 */
    o.zstd_level = (int)c->opt->zstd_level;
    /* room for a whole local read (CLIENT_IO_BUF) whenever on_writable fires (at half); the
     * upstream stops reading while there is less (upstream.c, deliver), so no read waits copied
     * in the upstream's own buffer and a stream holds at most this */
    o.stream_send_buffer = 2 * CLIENT_IO_BUF;
    mux_session_callbacks cb = {
        .on_welcome = on_welcome,
        .on_refuse = on_refuse,
        .on_head = upstream_on_head,
        .on_data = upstream_on_data,
        .on_end = upstream_on_end,
        .on_stream_close = upstream_on_stream_close,
        .on_writable = upstream_on_writable,
        .on_goaway = on_goaway,
    };
    int r = mux_session_new(&t->s, &o, &cb, NULL, &t->host, clock_mono_ms());
    if (r != 0) {
        LOG_ERROR(LOG_EV_TUNNEL, "tunnel: cannot create session: %s", mux_strerror(r));
        return -1;
    }
    t->state = T_OPEN;
    lws_sul_cancel(&t->sul);
    return 0;
}

/* ---------------------------------------------------------------- reading */

/* The delta-seconds of a Retry-After header in the response head |hs| (|len| bytes), in ms; 0 when
 * absent or not a number (an HTTP-date is not used by tunnelmux servers). At most a day. */
static int64_t retry_after_ms(const char *hs, size_t len)
{
    static const char name[] = "\r\nretry-after:";
    size_t nl = sizeof(name) - 1;
    for (size_t i = 0; i + nl <= len; i++) {
        if (strncasecmp(hs + i, name, nl) != 0)
            continue;
        size_t k = i + nl;
        while (k < len && (hs[k] == ' ' || hs[k] == '\t'))
            k++;
        int64_t secs = 0;
        size_t digits = 0;
        for (; k < len && hs[k] >= '0' && hs[k] <= '9' && secs <= 86400; k++, digits++)
            secs = secs * 10 + (hs[k] - '0');
        return digits > 0 ? (secs > 86400 ? 86400 : secs) * 1000 : 0;
    }
    return 0;
}

/* Plaintext bytes from the server. 0 or -1 (close). */
static int on_plain(tunnel *t, uint8_t *p, size_t len)
{
    if (t->state == T_UPGRADING) {
        size_t room = sizeof(t->hs) - t->hslen;
        size_t n = len < room ? len : room;
        memcpy(t->hs + t->hslen, p, n);
        t->hslen += n;
        int status = 0;
        const char *reason = "";
        ssize_t r = mux_ws_parse_response(t->hs, t->hslen, t->key, &status, &reason);
        if (r == MUX_ERR_AGAIN && t->hslen < sizeof(t->hs))
            return 0;
        if (r < 0) {
            LOG_WARN(LOG_EV_TUNNEL, "tunnel: WebSocket upgrade refused by %s: HTTP %d (%s)", t->srv->url.hostport, status, reason);
            if (status == 429 || status == 503) /* throttled (PROTOCOL.md §4.2): wait at least as long as told */
                t->retry_after_ms = retry_after_ms(t->hs, t->hslen);
            return -1;
        }
        LOG_INFO(LOG_EV_TUNNEL, "connected to %s%s", t->srv->url.hostport, t->srv->url.path);
        if (start_session(t) != 0)
            return -1;
        /* bytes after the head: what was copied into hs beyond r, plus the rest of |p| */
        size_t extra_hs = t->hslen - (size_t)r;
        if (extra_hs > 0 && mux_session_recv(t->s, (uint8_t *)t->hs + r, extra_hs, clock_mono_ms()) < 0)
            goto fatal;
        if (n < len && mux_session_recv(t->s, p + n, len - n, clock_mono_ms()) < 0)
            goto fatal;
        tunnel_kick(t);
        return 0;
    }
    if (t->state != T_OPEN)
        return -1;
    if (mux_session_want_close(t->s)) {
        /* closing: the session only looks for the server's close frame (lingering close) */
        t->linger_bytes += len;
        mux_session_recv(t->s, p, len, clock_mono_ms());
        if (t->linger_bytes > TUNNEL_LINGER_BYTES || (mux_session_peer_closed(t->s) && t->lingering))
            return -1;
        tunnel_kick(t);
        return 0;
    }
    if (mux_session_recv(t->s, p, len, clock_mono_ms()) < 0)
        goto fatal;
    tunnel_kick(t);
    return 0;
fatal:
    LOG_WARN(LOG_EV_TUNNEL, "tunnel: protocol error: %s", mux_session_last_error_reason(t->s));
    tunnel_kick(t); /* flush the GOAWAY / close, then the writable callback closes */
    return 0;
}

/* raw_conn_tls_drain's consumer: on_plain() for each decrypted piece. */
static raw_conn_verdict on_plain_piece(void *arg, uint8_t *p, size_t len)
{
    return on_plain(arg, p, len) != 0 ? RAW_CONN_FAIL : RAW_CONN_GO_ON;
}

static int send_upgrade(tunnel *t)
{
    char extra[64] = "";
    char req[4096];
    if (mux_ws_make_key(t->key) != 0)
        return -1;
    snprintf(extra, sizeof(extra), "User-Agent: tunnelmux-client/%s\r\n", TUNNELMUX_VERSION);
    ssize_t n = mux_ws_client_request(req, sizeof(req), t->srv->url.hostport, t->srv->url.path, t->key, extra);
    if (n < 0) {
        LOG_ERROR(LOG_EV_TUNNEL, "tunnel: cannot build the upgrade request: %s", mux_strerror((int)n));
        return -1;
    }
    t->state = T_UPGRADING;
    return t_write(t, (const uint8_t *)req, (size_t)n);
}

/* TCP_NODELAY, and TCP_NOTSENT_LOWAT (|lowat| > 0): little unsent data below the scheduler, so
 * interactive DATA overtakes bulk (PROTOCOL.md §6.4). */
static void set_sockopts(struct lws *wsi, uint64_t lowat)
{
    int fd = lws_get_socket_fd(wsi);
    if (fd < 0)
        return;
    sockopt_set_nodelay(fd);
    sockopt_set_notsent_lowat(fd, lowat);
}

/* ---------------------------------------------------------------- lifecycle */

/* Adds the final counters of the session |s| (a tunnel being freed) to |m|. */
static void metrics_add_session(client_metrics *m, const mux_session *s)
{
    mux_session_stats st;
    mux_session_get_stats(s, &st);
    m->bytes_in += st.bytes_in;
    m->bytes_out += st.bytes_out;
    m->flow_blocked_ms += st.flow_blocked_ms;
    for (int k = 0; k < MUX_STALL_CAUSES; k++)
        m->stall_ms[k] += st.stall_ms[k];
}

static void tunnel_free(tunnel *t)
{
    lws_sul_cancel(&t->sul);
    lws_sul_cancel(&t->stall_sul);
    while (!client_link_empty(&t->host.streams))
        upstream_abandon(t->host.streams.next);
    if (t->s != NULL) {
        metrics_add_session(&t->c->metrics, t->s);
        mux_session_del(t->s);
    }
    tls_membio_del(t->tls);
    free(t->stage);
    free(t);
}

size_t tunnel_count_up(const client *c)
{
    size_t n = 0;
    for (size_t i = 0; i < c->nservers; i++) {
        const tunnel *t = c->servers[i].tun;
        if (t != NULL && t->s != NULL && t->welcomed && mux_session_is_established(t->s))
            n++;
    }
    return n;
}

const char *tunnel_state_name(const client_server *srv)
{
    const tunnel *t = srv->tun;
    if (t == NULL)
        return srv->gave_up ? "given_up" : "down";
    if (t->s != NULL && t->welcomed && mux_session_is_established(t->s))
        return "up";
    return "connecting";
}

void tunnel_kick_all(client *c)
{
    for (size_t i = 0; i < c->nservers; i++)
        if (c->servers[i].tun != NULL)
            tunnel_kick(c->servers[i].tun);
}

/* Stopping: 1 when no registered tunnel is left (the ones still connecting have nothing to drain;
 * the context teardown closes them). */
static int stop_quiet(const client *c)
{
    for (size_t i = 0; i < c->nservers; i++) {
        const tunnel *t = c->servers[i].tun;
        if (t != NULL && t->s != NULL && mux_session_is_established(t->s))
            return 0;
    }
    return 1;
}

void tunnel_retire(tunnel *t)
{
    if (t->s != NULL && mux_session_is_established(t->s)) {
        mux_session_goaway(t->s, MUX_CODE_SHUTDOWN, "server address left DNS");
        tunnel_kick(t);
    } else if (t->wsi != NULL) {
        lws_set_timeout(t->wsi, 1, LWS_TO_KILL_ASYNC);
    }
}

/* The connection is gone (or never came up). Frees |t| and decides what happens next. */
static void tunnel_gone(tunnel *t, const char *why)
{
    client *c = t->c;
    client_server *srv = t->srv;
    if (t->wsi != NULL)
        lws_set_wsi_user(t->wsi, NULL);
    t->wsi = NULL;
    if (srv->tun == t)
        srv->tun = NULL;
    if (t->welcomed)
        c->metrics.tunnels_lost++;
    if (!c->stopping) {
        if (t->welcomed)
            LOG_WARN(LOG_EV_TUNNEL, "tunnel lost: %s [%s; %zu of %zu tunnel(s) up]", why, srv->url.hostport, tunnel_count_up(c),
                     c->nservers);
        else
            LOG_WARN(LOG_EV_TUNNEL, "cannot register with %s: %s", srv->url.hostport, why);
    }
    int64_t retry_after = t->retry_after_ms;
    tunnel_free(t); /* |why| may point into the session: not used after this */
    if (c->stopping) {
        if (stop_quiet(c))
            c->done = 1;
        return;
    }
    if (srv->retiring) { /* its address left DNS: the slot is free again */
        LOG_INFO(LOG_EV_TUNNEL, "tunnel to %s (%s) closed: the address is no longer in DNS", srv->url.hostport, srv->addr);
        srv->in_use = 0;
        return;
    }
    tunnel_schedule_reconnect(srv, retry_after);
}

static void reconnect_cb(lws_sorted_usec_list_t *sul)
{
    client_server *srv = lws_container_of(sul, client_server, reconnect_sul);
    if (srv->c->stopping || srv->tun != NULL || !srv->in_use || srv->retiring)
        return;
    LOG_INFO(LOG_EV_TUNNEL, "reconnecting to %s (attempt %lld)", srv->url.hostport, (long long)srv->attempts + 1);
    tunnel_connect(srv);
}

static void stop_cb(lws_sorted_usec_list_t *sul)
{
    client *c = lws_container_of(sul, client, stop_sul);
    c->done = 1; /* the stop deadline passed */
}

void tunnel_schedule_reconnect(client_server *srv, int64_t delay_ms)
{
    client *c = srv->c;
    srv->attempts++;
    if (c->opt->max_retries >= 0 && srv->attempts > c->opt->max_retries) {
        srv->gave_up = 1;
        size_t left = 0;
        for (size_t i = 0; i < c->nservers; i++)
            left += c->servers[i].in_use && !c->servers[i].retiring && !c->servers[i].gave_up;
        LOG_ERROR(LOG_EV_TUNNEL, "giving up after %lld failed attempt(s) (MAX_RETRIES=%lld) with %s%s", (long long)srv->attempts,
                  (long long)c->opt->max_retries, srv->url.hostport, left > 0 ? "; other servers remain" : "");
        if (left == 0) {
            c->exit_code = 1;
            c->done = 1;
        }
        return;
    }
    backoff_policy p = {.delay_ms = c->opt->reconnect_delay_ms,
                        .backoff = c->opt->reconnect_backoff,
                        .max_delay_ms = c->opt->reconnect_max_delay_ms,
                        .jitter = c->opt->reconnect_jitter};
    delay_ms = backoff_delay(&p, srv->attempts, delay_ms, &c->rng);
    LOG_INFO(LOG_EV_TUNNEL, "retrying in %lld ms [%s]", (long long)delay_ms, srv->url.hostport);
    lws_sul_schedule(c->lws, 0, &srv->reconnect_sul, reconnect_cb, (lws_usec_t)delay_ms * 1000);
}

int tunnel_connect(client_server *srv)
{
    client *c = srv->c;
    tunnel *t = calloc(1, sizeof(*t));
    if (t == NULL) {
        tunnel_schedule_reconnect(srv, 0);
        return -1;
    }
    t->c = c;
    t->srv = srv;
    t->host.ops = &host_ops;
    t->host.c = c;
    client_link_init(&t->host.streams);
    c->metrics.connect_attempts++;
    srv->tun = t;
    struct lws_client_connect_info ci;
    memset(&ci, 0, sizeof(ci));
    ci.context = c->lws;
    ci.address = srv->addr[0] ? srv->addr : srv->url.host; /* TLS SNI and Host still name url.host */
    ci.port = srv->url.port;
    ci.path = srv->url.path;
    ci.host = srv->url.host;
    ci.method = "RAW";
    ci.local_protocol_name = "tm-tunnel";
    ci.userdata = t;
    struct lws *wsi = lws_client_connect_via_info(&ci);
    if (srv->tun != t)
        return -1; /* failed synchronously and already handled */
    if (wsi == NULL) {
        t->wsi = NULL;
        tunnel_gone(t, "connect failed");
        return -1;
    }
    t->wsi = wsi;
    lws_sul_schedule(c->lws, 0, &t->sul, tunnel_timer_cb, (lws_usec_t)TUNNEL_UPGRADE_TIMEOUT_MS * 1000);
    return 0;
}

void tunnel_shutdown(client *c)
{
    c->stopping = 1;
    c->stop_deadline_ms = clock_mono_ms() + c->opt->drain_timeout_ms;
    lws_sul_schedule(c->lws, 0, &c->stop_sul, stop_cb, (lws_usec_t)c->opt->drain_timeout_ms * 1000);
    uint32_t in_flight = 0;
    size_t registered = 0;
    for (size_t i = 0; i < c->nservers; i++) {
        client_server *srv = &c->servers[i];
        lws_sul_cancel(&srv->reconnect_sul);
        tunnel *t = srv->tun;
        if (t == NULL || t->s == NULL || !mux_session_is_established(t->s))
            continue; /* not registered: nothing in flight, nothing to say; the context teardown closes it */
        mux_session_stats st;
        mux_session_get_stats(t->s, &st);
        mux_session_goaway(t->s, MUX_CODE_SHUTDOWN, "client shutting down");
        in_flight += st.streams_active;
        registered++;
        tunnel_kick(t);
    }
    if (registered == 0) {
        /* (lws_set_timeout(LWS_TO_KILL_ASYNC) on a connection still waiting for its 101 was only
         * acted on at the drain deadline) */
        LOG_INFO(LOG_EV_TUNNEL, "not registered: nothing to drain");
        c->done = 1;
        return;
    }
    if (in_flight == 0) {
        /* nothing in flight: the GOAWAY goes out on the next writable callback and the session
         * wants to close right after it; a server that does not take it (full socket) gets
         * TUNNEL_IDLE_FLUSH_MS, not DRAIN_TIMEOUT */
        int64_t flush_ms = c->opt->drain_timeout_ms < TUNNEL_IDLE_FLUSH_MS ? c->opt->drain_timeout_ms : TUNNEL_IDLE_FLUSH_MS;
        LOG_INFO(LOG_EV_TUNNEL, "GOAWAY sent: no stream in flight, closing");
        c->stop_deadline_ms = clock_mono_ms() + flush_ms;
        lws_sul_schedule(c->lws, 0, &c->stop_sul, stop_cb, (lws_usec_t)flush_ms * 1000);
    } else {
        LOG_INFO(LOG_EV_TUNNEL, "GOAWAY sent: no new streams, draining %u in-flight stream(s) for up to %lld ms", in_flight,
                 (long long)c->opt->drain_timeout_ms);
    }
}

static void flush_sul_cb(lws_sorted_usec_list_t *sul)
{
    client *c = lws_container_of(sul, client, flush_sul);
    c->flush_armed = 0;
    tunnel_after_service(c);
}

void client_want_flush(client *c)
{
    if (c->flush_armed || c->lws == NULL)
        return;
    c->flush_armed = 1;
    lws_sul_schedule(c->lws, 0, &c->flush_sul, flush_sul_cb, 0);
}

/* One tunnel's part of tunnel_after_service(). */
static void flush_after_service(tunnel *t)
{
    if (t == NULL || t->wsi == NULL || t->s == NULL || t->state != T_OPEN || !t->want_flush)
        return;
    if (choked(t)) {
        t->want_flush = 0; /* the writable callback flushes */
        return;
    }
    if (flush_session(t) != 0) {
        lws_set_timeout(t->wsi, 1, LWS_TO_KILL_ASYNC);
        return;
    }
    track_write(t, 0);
    if (mux_session_want_close(t->s))
        lws_callback_on_writable(t->wsi);
    tunnel_kick(t); /* timers; want_flush again when more than 64 rounds were pending */
}

/* Called by the main loop after every lws_service() turn (and by flush_sul for work queued by
 * timers): writes the request bytes streams queued, then what the turn queued on the session (one
 * writev for all of it), and hands a session that wants to close to the writable callback, which
 * closes the connection once everything left. */
void tunnel_after_service(client *c)
{
    if (c->flush_armed) {
        c->flush_armed = 0;
        lws_sul_cancel(&c->flush_sul);
    }
    upstream_flush_queued(c);
    for (size_t i = 0; i < c->nservers; i++)
        flush_after_service(c->servers[i].tun);
}

/*
 * Everything is written and the session wants to close: lingering close (RFC 6455 §7.1.1,
 * PROTOCOL.md §8). Closing with the server's bytes unread would reset the connection and could
 * destroy our GOAWAY and close before the server reads them; so the write side is shut down and
 * the server's input dropped (on_plain) until its close frame, EOF (RAW_CLOSE), TUNNEL_LINGER_BYTES
 * or TUNNEL_LINGER_S. Returns -1 to close now (the server already closed), else 0.
 */
static int linger_start(tunnel *t)
{
    if (mux_session_peer_closed(t->s))
        return -1;
    if (t->lingering)
        return 0;
    t->lingering = 1;
    int fd = lws_get_socket_fd(t->wsi);
    if (t->tls == NULL && fd >= 0) /* wss: the FIN would cut the TLS stream; the close frame said it */
        shutdown(fd, SHUT_WR);
    lws_set_timeout(t->wsi, PENDING_TIMEOUT_USER_OK, TUNNEL_LINGER_S);
    return 0;
}

/* ---------------------------------------------------------------- lws callback */

int tunnel_lws_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
    tunnel *t = user;
    switch (reason) {
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
        if (t != NULL) {
            char why[640];
            snprintf(why, sizeof(why), "connection to %s failed: %s", t->srv->url.hostport, in ? (const char *)in : "error");
            t->wsi = wsi;
            tunnel_gone(t, why);
        }
        return 0;
    case LWS_CALLBACK_RAW_CONNECTED:
    case LWS_CALLBACK_RAW_ADOPT:
        if (t == NULL || t->state != T_CONNECTING)
            return 0;
        t->wsi = wsi;
        set_sockopts(wsi, t->c->opt->tunnel_notsent_lowat);
        if (t->srv->url.tls) {
            t->tls = tls_membio_new(t->c->tunnel_tls, t->srv->url.host, !t->c->opt->tls_insecure);
            t->stage = malloc(CLIENT_IO_BUF);
            if (t->tls == NULL || t->stage == NULL)
                return -1;
            t->stage_cap = CLIENT_IO_BUF;
            t->state = T_TLS;
            return t_write(t, NULL, 0);
        }
        t->state = T_SEND_UPGRADE;
        lws_callback_on_writable(wsi);
        return 0;
    case LWS_CALLBACK_RAW_RX:
        if (t == NULL)
            return -1;
        if (t->tls == NULL)
            return on_plain(t, in, len);
        if (tls_membio_feed(t->tls, in, len) != 0)
            return -1;
        if (t->state == T_TLS) {
            int r = tls_membio_handshake(t->tls);
            if (t_write(t, NULL, 0) != 0)
                return -1;
            if (r < 0) {
                LOG_WARN(LOG_EV_TUNNEL, "tunnel: %s (%s)", tls_membio_error(t->tls), t->srv->url.hostport);
                return -1;
            }
            if (r == 0)
                return 0;
            if (send_upgrade(t) != 0)
                return -1;
        }
        int drained = raw_conn_tls_drain(t->tls, t->c->scratch, CLIENT_SCRATCH, on_plain_piece, t);
        if (drained == RAW_CONN_ERR_TLS)
            LOG_WARN(LOG_EV_TUNNEL, "tunnel: %s", tls_membio_error(t->tls));
        if (drained < 0)
            return -1;
        return t_write(t, NULL, 0); /* TLS may have produced records (key updates) */
    case LWS_CALLBACK_RAW_WRITEABLE:
        if (t == NULL)
            return -1;
        if (t->state == T_SEND_UPGRADE)
            return send_upgrade(t);
        if (t->state != T_OPEN)
            return 0;
        if (flush_session(t) != 0)
            return -1;
        track_write(t, 1);
        if (mux_session_want_close(t->s) && !mux_session_want_write(t->s) && !choked(t))
            return linger_start(t);
        tunnel_kick(t);
        return 0;
    case LWS_CALLBACK_RAW_CLOSE:
        if (t != NULL)
            tunnel_gone(t, t->s && mux_session_last_error_reason(t->s)[0] ? mux_session_last_error_reason(t->s)
                           : t->write_stalled                             ? "server stopped reading (WRITE_TIMEOUT)"
                                                                          : "connection closed");
        return 0;
    case LWS_CALLBACK_WSI_DESTROY:
        if (t != NULL && t->wsi == wsi)
            tunnel_gone(t, "connection closed");
        return 0;
    default:
        return 0;
    }
}
