/*
 * tunnelmux server — a tunnel's registration (see tunnel_internal.h): the client's HELLO,
 * authentication with its throttle, the name's replicas and takeover (NAME_TAKEOVER_CHECK,
 * docs/OPERATIONS.md), then accept or refuse. Moved out of tunnel.c (issue 17: files under ~900
 * lines), code unchanged.
 */
#include "server/tunnel_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/sha.h>

#include "common/clock.h"
#include "common/log.h"
#include "server/metrics.h"
#include "server/route.h"

/* Refuses the HELLO and counts the refusal by reason (metrics). */
static void refuse(tunnel *t, unsigned code, const char *reason, uint32_t retry_after_ms)
{
    if (t->srv->metrics != NULL)
        metrics_on_refused(t->srv->metrics, mux_code_name(code));
    mux_session_refuse(t->sess, code, reason, retry_after_ms);
}

/* Client authentication (docs/SECURITY.md §2): throttle, token, name pattern. Refuses and returns
 * -1 on failure. The token itself is never logged. */
static int check_auth(tunnel *t, mux_session *s, const mux_hello_info *hello, const char *name)
{
    server *srv = t->srv;
    int64_t now = server_now(srv);
    int64_t wait = auth_throttle_check(srv->throttle, t->peer_ip, now);
    if (wait > 0) {
        LOG_WARN(LOG_EV_TUNNEL, "tunnel refused: name=%s peer=%s reason=RATE_LIMITED (too many failed logins, retry in %lld ms)",
                 name, t->peer, (long long)wait);
        refuse(t, MUX_CODE_RATE_LIMITED, "too many failed authentication attempts", (uint32_t)wait);
        return -1;
    }
    if (srv->tokens.n == 0)
        return 0; /* --insecure-no-auth */
    const char *tok = hello->auth_token != NULL ? hello->auth_token : "";
    int rv = auth_list_check(&srv->tokens, tok, strlen(tok), name);
    if (rv == AUTH_OK) {
        auth_throttle_success(srv->throttle, t->peer_ip);
        return 0;
    }
    wait = auth_throttle_fail(srv->throttle, t->peer_ip, now);
    const char *why = tok[0] == '\0' ? "missing token" : rv == AUTH_ERR_NAME ? "token not allowed this name" : "invalid token";
    LOG_WARN(LOG_EV_TUNNEL, "tunnel refused: name=%s peer=%s reason=AUTH_FAILED (%s)", name, t->peer, why);
    refuse(t, MUX_CODE_AUTH_FAILED, rv == AUTH_ERR_NAME ? "token not allowed for this name" : "authentication failed",
           (uint32_t)wait);
    return -1;
}

/*
 * A HELLO from |t| wants |name|, held by |holder| (docs/OPERATIONS.md "Name takeover"). A live holder
 * keeps its name (docs/SECURITY.md): the first such HELLO PINGs the holder; a later HELLO finds the
 * holder dead when that PING got no bytes back within NAME_TAKEOVER_CHECK. A holder that sent GOAWAY
 * (shutting down) gives the name up at once. Returns 1 when |t| may take the name (|why| says why),
 * else 0 with |*retry_after_ms| set for the REFUSE.
 */
static int may_take_over(tunnel *t, tunnel *holder, uint32_t *retry_after_ms, char *why, size_t whylen)
{
    server *srv = t->srv;
    int64_t now = server_now(srv), window = srv->opt->takeover_check_ms;
    *retry_after_ms = 0;
    if (holder->dying || holder->sess == NULL) {
        snprintf(why, whylen, "the holder's connection is closing");
        return 1;
    }
    if (holder->goaway_recv) {
        snprintf(why, whylen, "the holder sent GOAWAY (shutting down)");
        return 1;
    }
    if (window <= 0)
        return 0; /* NAME_TAKEOVER_CHECK=0: only the holder's own disconnection frees the name */
    if (holder->probe_ms == 0) {
        if (mux_session_ping(holder->sess, now) != 0) {
            snprintf(why, whylen, "the holder's session is closed (%s)", mux_session_last_error_reason(holder->sess));
            return 1;
        }
        holder->probe_ms = now;
        LOG_INFO(LOG_EV_TUNNEL, "tunnel liveness check: name=%s holder=%s wanted by peer=%s: PING sent, holder silent for %lld ms",
                 holder->name, holder->peer, t->peer, (long long)(now - holder->last_rx_ms));
        tunnel_flush(holder);
        *retry_after_ms = (uint32_t)window;
        return 0;
    }
    int64_t waited = now - holder->probe_ms;
    if (waited >= window) {
        snprintf(why, whylen, "the holder sent nothing for %lld ms, %lld ms after a liveness PING (NAME_TAKEOVER_CHECK=%lld ms)",
                 (long long)(now - holder->last_rx_ms), (long long)waited, (long long)window);
        return 1;
    }
    int64_t left = window - waited;
    *retry_after_ms = (uint32_t)(left < 100 ? 100 : left);
    return 0;
}

/* Gives |holder|'s name to a newer client: a holder that is shutting down (GOAWAY) finishes its
 * in-flight streams unnamed, any other is disconnected now (its requests fail as for a lost tunnel). */
static void hand_over(tunnel *holder, const char *new_peer)
{
    registry_remove(&holder->srv->reg, holder->name, holder);
    holder->handed_over = 1;
    char reason[sizeof(holder->close_reason)];
    snprintf(reason, sizeof(reason), "name taken over by %s", new_peer);
    if (holder->goaway_recv && !holder->dying && holder->sess != NULL) {
        snprintf(holder->close_reason, sizeof(holder->close_reason), "%s", reason);
        tunnel_flush(holder); /* closes it now if nothing is in flight */
        return;
    }
    tunnel__schedule_destroy(holder, reason);
}

/* What makes tunnels replicas of one name: the SHA-256 of the token they presented (the empty
 * string without one, --insecure-no-auth). The token itself is not kept. */
static void credential_digest(const char *token, uint8_t out[REGISTRY_CREDENTIAL_LEN])
{
    const char *tok = token != NULL ? token : "";
    SHA256((const unsigned char *)tok, strlen(tok), out);
}

int tunnel__on_hello(mux_session *s, const mux_hello_info *hello, void *user_data)
{
    tunnel *t = user_data;
    server *srv = t->srv;
    char name[ROUTE_MAX_NAME + 1];
    if (route_fold_client_id(hello->client_id, name, sizeof(name)) < 0) {
        LOG_WARN(LOG_EV_TUNNEL, "tunnel refused: peer=%s reason=INVALID_NAME (client id is not an RFC 1123 label)", t->peer);
        refuse(t, MUX_CODE_INVALID_NAME, "client id must be an RFC 1123 label", 0);
        return 0;
    }
    if (srv->shutting_down) {
        LOG_INFO(LOG_EV_TUNNEL, "tunnel refused: name=%s peer=%s reason=SHUTDOWN", name, t->peer);
        refuse(t, MUX_CODE_SHUTDOWN, "server is shutting down", 5000);
        return 0;
    }
    if (check_auth(t, s, hello, name) != 0)
        return 0;
    uint8_t cred[REGISTRY_CREDENTIAL_LEN];
    credential_digest(hello->auth_token, cred);
    size_t max_replicas = (size_t)srv->opt->max_replicas;
    int added = registry_add(&srv->reg, name, t, cred, (size_t)srv->opt->max_clients, max_replicas);
    if (added == REGISTRY_TAKEN || added == REGISTRY_REPLICAS_FULL) {
        /* TAKEN: tunnels with another credential hold the name; it changes hands only when every
         * one of them is found dead or leaving. REPLICAS_FULL: a dead or leaving replica makes room. */
        tunnel *holders[REGISTRY_MAX_REPLICAS], *freeable[REGISTRY_MAX_REPLICAS];
        void *const *vals;
        size_t n = registry_replicas(&srv->reg, name, &vals, NULL), nfree = 0;
        if (n > REGISTRY_MAX_REPLICAS)
            n = REGISTRY_MAX_REPLICAS;
        memcpy(holders, vals, n * sizeof(*holders)); /* hand_over changes the registry */
        uint32_t retry_after = 0;
        char why[200] = "";
        for (size_t i = 0; i < n; i++) {
            uint32_t ra = 0;
            char w[200];
            if (may_take_over(t, holders[i], &ra, w, sizeof(w))) {
                if (nfree == 0)
                    memcpy(why, w, sizeof(why));
                freeable[nfree++] = holders[i];
            } else if (ra > retry_after) {
                retry_after = ra;
            }
        }
        int take = added == REGISTRY_TAKEN ? nfree == n && n > 0 : nfree > 0;
        if (!take) {
            if (added == REGISTRY_TAKEN)
                LOG_WARN(LOG_EV_TUNNEL,
                         "tunnel refused: name=%s peer=%s reason=NAME_TAKEN (held by %s%s with another credential%s)", name,
                         t->peer, n > 0 ? holders[0]->peer : "-", n > 1 ? " and others" : "",
                         retry_after > 0 ? ", liveness check pending" : "");
            else
                LOG_WARN(LOG_EV_TUNNEL, "tunnel refused: name=%s peer=%s reason=NAME_TAKEN (MAX_REPLICAS=%zu tunnels hold it%s)",
                         name, t->peer, max_replicas, retry_after > 0 ? ", liveness check pending" : "");
            refuse(t, MUX_CODE_NAME_TAKEN,
                   added == REGISTRY_TAKEN ? "name is already connected" : "name has MAX_REPLICAS tunnels already", retry_after);
            return 0;
        }
        size_t ngive = added == REGISTRY_TAKEN ? nfree : 1;
        for (size_t i = 0; i < ngive; i++) {
            LOG_WARN(LOG_EV_TUNNEL, "tunnel takeover: name=%s from peer=%s to peer=%s: %s", name, freeable[i]->peer, t->peer,
                     i == 0 ? why : "the other holders too");
            hand_over(freeable[i], t->peer);
        }
        added = registry_add(&srv->reg, name, t, cred, (size_t)srv->opt->max_clients, max_replicas);
    }
    switch (added) {
    case REGISTRY_OK:
        break;
    case REGISTRY_TAKEN:
    case REGISTRY_REPLICAS_FULL:
        LOG_WARN(LOG_EV_TUNNEL, "tunnel refused: name=%s peer=%s reason=NAME_TAKEN", name, t->peer);
        refuse(t, MUX_CODE_NAME_TAKEN, "name is already connected", 0);
        return 0;
    case REGISTRY_FULL:
        LOG_WARN(LOG_EV_TUNNEL, "tunnel refused: name=%s peer=%s reason=TOO_MANY_CLIENTS (MAX_CLIENTS=%lld)", name, t->peer,
                 (long long)srv->opt->max_clients);
        refuse(t, MUX_CODE_TOO_MANY_CLIENTS, "too many clients", 0);
        return 0;
    default:
        refuse(t, MUX_CODE_INTERNAL_ERROR, "out of memory", 1000);
        return 0;
    }
    memcpy(t->name, name, strlen(name) + 1);
    t->registered = 1;
    {
        const server_options *o = srv->opt;
        double rps = (double)o->rate_limit_rps, bps = (double)o->rate_limit_bps;
        ratelimit_init(&t->rl_requests, rps, o->rate_limit_burst > 0 ? (double)o->rate_limit_burst : 2 * rps, server_now(srv));
        ratelimit_init(&t->rl_bytes, bps, o->rate_limit_bps_burst > 0 ? (double)o->rate_limit_bps_burst : 2 * bps, server_now(srv));
    }
    t->connected_unix_ms = clock_unix_ms();
    void *const *reps;
    size_t nreps = registry_replicas(&srv->reg, name, &reps, NULL);
    int reconnect = 0;
    if (srv->metrics != NULL && nreps > 1)
        metrics_on_replica_registered(srv->metrics); /* joins live replicas: not a reconnect of the name */
    else if (srv->metrics != NULL)
        reconnect = metrics_on_registered(srv->metrics, name);
    char url[512];
    int default_port =
        (strcmp(srv->scheme, "https") == 0 && srv->opt->port == 443) || (strcmp(srv->scheme, "http") == 0 && srv->opt->port == 80);
    if (default_port)
        snprintf(url, sizeof(url), "%s://%s.%s", srv->scheme, name, srv->domain);
    else
        snprintf(url, sizeof(url), "%s://%s.%s:%lld", srv->scheme, name, srv->domain, (long long)srv->opt->port);
    int rv = mux_session_accept(s, url);
    if (rv != 0) {
        registry_remove(&srv->reg, name, t);
        t->registered = 0;
        LOG_ERROR(LOG_EV_TUNNEL, "tunnel accept failed: name=%s: %s", name, mux_strerror(rv));
        return 0;
    }
    LOG_INFO(LOG_EV_TUNNEL, "tunnel registered: name=%s peer=%s url=%s software=%s replicas=%zu%s", name, t->peer, url,
             hello->software[0] ? hello->software : "-", nreps, reconnect ? " (reconnect)" : "");
    return 0;
}
