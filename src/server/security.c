/*
 * tunnelmux server — public-request checks (see security.h).
 */
#include "server/security.h"

#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include <openssl/crypto.h>

#include "common/log.h"
#include "common/net_addr.h"
#include "server/metrics.h"
#include "common/phr.h"
#include "server/ratelimit.h"
#include "server/route.h"

static void add_header(h2o_req_t *req, const h2o_token_t *token, const char *value)
{
    size_t n = strlen(value);
    char *v = h2o_mem_alloc_pool(&req->pool, n);
    memcpy(v, value, n);
    h2o_add_header(&req->pool, &req->res.headers, token, NULL, v, n);
}

void security_too_many(h2o_req_t *req, int64_t wait_ms, const char *msg)
{
    char ra[24];
    snprintf(ra, sizeof(ra), "%lld", (long long)((wait_ms + 999) / 1000));
    add_header(req, H2O_TOKEN_RETRY_AFTER, ra);
    h2o_send_error_generic(req, 429, "Too Many Requests", msg, H2O_SEND_ERROR_KEEP_HEADERS);
}

void security_peer_ip(h2o_req_t *req, char *out, size_t cap)
{
    struct sockaddr_storage ss;
    socklen_t len = req->conn->callbacks->get_peername(req->conn, (struct sockaddr *)&ss);
    if (net_addr_format((struct sockaddr *)&ss, len, 0, out, cap, NULL, 0) != 0) /* IPv4-mapped stays ::ffff:a.b.c.d */
        snprintf(out, cap, "-");
}

int64_t security_basic_wait(server *srv, const char *ip)
{
    int64_t wait = strcmp(ip, "-") != 0 ? auth_throttle_check(srv->basic_throttle, ip, server_now(srv)) : 0;
    if (wait > 0 && srv->metrics != NULL)
        metrics_on_auth_throttled(srv->metrics);
    return wait;
}

void security_basic_failed(server *srv, const char *ip, const char *what)
{
    if (strcmp(ip, "-") == 0)
        return;
    /* no auth_throttle_success on a right answer: credentials valid for one name must not clear the
     * count of guesses at another; a quiet minute does (AUTH_FAIL_WINDOW_MS) */
    int64_t wait = auth_throttle_fail(srv->basic_throttle, ip, server_now(srv));
    if (wait > 0)
        LOG_WARN(LOG_EV_HTTP, "%s: repeated wrong basic-auth credentials from %s: it must wait %lld ms (429 meanwhile)", what, ip,
                 (long long)wait);
}

int security_condemned(server *srv, h2o_req_t *req)
{
    if (!guard_is_condemned(srv->guard, req->conn->id))
        return 0;
    req->http1_is_persistent = 0;
    security_too_many(req, srv->opt->h2_reset_window_ms, "tunnelmux: too many cancelled requests on this connection\n");
    return 1;
}

#define RAW_MAX_HEADERS 128

int security_reject_ambiguous(server *srv, h2o_req_t *req)
{
    if (req->version >= 0x200)
        return 0; /* HTTP/2 framing is unambiguous; h2o rejects connection-specific headers there */
    /* h2o removes Content-Length / Transfer-Encoding from req->headers and keeps the request head
     * at the start of the socket's input until the request ends: re-parse the raw head. */
    h2o_socket_t *sock = req->conn->callbacks->get_socket != NULL ? req->conn->callbacks->get_socket(req->conn) : NULL;
    if (sock == NULL || sock->input == NULL || sock->input->size == 0)
        return 0;
    struct phr_header hs[RAW_MAX_HEADERS];
    size_t nh = RAW_MAX_HEADERS, ml, pl;
    const char *m, *p;
    int minor;
    int r = phr_parse_request(sock->input->bytes, sock->input->size, &m, &ml, &p, &pl, &minor, hs, &nh, 0);
    if (r <= 0)
        return 0; /* not the head we expected (should not happen): h2o's own parse stands */
    const char *why = NULL;
    int have_te = 0, ncl = 0;
    const char *cl = NULL;
    size_t cllen = 0;
    for (size_t i = 0; i < nh && why == NULL; i++) {
        if (hs[i].name == NULL || hs[i].name_len == 0) {
            why = "obsolete line folding or empty header name";
        } else if (hs[i].name_len == 17 && strncasecmp(hs[i].name, "transfer-encoding", 17) == 0) {
            have_te = 1;
        } else if (hs[i].name_len == 14 && strncasecmp(hs[i].name, "content-length", 14) == 0) {
            if (ncl++ > 0 && !(cllen == hs[i].value_len && memcmp(cl, hs[i].value, cllen) == 0))
                why = "several different Content-Length values";
            cl = hs[i].value;
            cllen = hs[i].value_len;
        }
    }
    if (why == NULL && have_te && ncl > 0)
        why = "both Transfer-Encoding and Content-Length";
    if (why == NULL)
        return 0;
    char host[64];
    size_t n = req->input.authority.len < sizeof(host) - 1 ? req->input.authority.len : sizeof(host) - 1;
    for (size_t i = 0; i < n; i++) {
        char c = req->input.authority.base[i];
        host[i] = (c < 0x20 || c == 0x7f) ? '?' : c;
    }
    host[n] = '\0';
    LOG_INFO(LOG_EV_HTTP, "request for %s refused: 400 (ambiguous HTTP/1.1 framing: %s); connection closed", host, why);
    req->http1_is_persistent = 0; /* never parse what follows: it may be a smuggled request */
    h2o_send_error_generic(req, 400, "Bad Request", "tunnelmux: ambiguous request framing\n", H2O_SEND_ERROR_KEEP_HEADERS);
    return 1;
}

/* 1 when |req| carries credentials accepted for |name|. */
static int basic_ok(server *srv, h2o_req_t *req, const char *name)
{
    ssize_t i = -1;
    int ok = 0;
    char cred[1024];
    while ((i = h2o_find_header(&req->headers, H2O_TOKEN_AUTHORIZATION, i)) != -1) {
        h2o_iovec_t v = req->headers.entries[i].value;
        int n = auth_parse_basic(v.base, v.len, cred, sizeof(cred));
        if (n > 0 && auth_list_check(&srv->basic, cred, (size_t)n, name) == AUTH_OK)
            ok = 1;
        OPENSSL_cleanse(cred, sizeof(cred));
        if (ok)
            break;
    }
    return ok;
}

int security_admit(server *srv, tunnel *t, h2o_req_t *req, const char *name, int *drop_authorization)
{
    const server_options *o = srv->opt;
    *drop_authorization = 0;
    /* header limits first: nothing else reads a huge head */
    size_t bytes = 0;
    for (size_t i = 0; i < req->headers.size; i++)
        bytes += req->headers.entries[i].name->len + req->headers.entries[i].value.len;
    if (req->headers.size > (size_t)o->max_header_count || bytes > o->max_header_bytes) {
        LOG_INFO(LOG_EV_HTTP, "request for %s refused: 431 (%zu headers, %zu bytes; MAX_HEADER_COUNT=%lld MAX_HEADER_BYTES=%llu)",
                 name, req->headers.size, bytes, (long long)o->max_header_count, (unsigned long long)o->max_header_bytes);
        h2o_send_error_generic(req, 431, "Request Header Fields Too Large", "tunnelmux: request header fields too large\n",
                               H2O_SEND_ERROR_KEEP_HEADERS);
        return 1;
    }
    if (srv->basic.n > 0 && auth_list_covers(&srv->basic, name)) {
        char ip[NI_MAXHOST];
        security_peer_ip(req, ip, sizeof(ip));
        int64_t wait = security_basic_wait(srv, ip);
        if (wait > 0) {
            LOG_INFO(LOG_EV_HTTP, "request for %s refused: 429 (too many wrong basic-auth credentials from %s, retry in %lld ms)",
                     name, ip, (long long)wait);
            security_too_many(req, wait, "tunnelmux: too many failed authentication attempts\n");
            return 1;
        }
        if (!basic_ok(srv, req, name)) {
            int presented = h2o_find_header(&req->headers, H2O_TOKEN_AUTHORIZATION, -1) != -1;
            if (presented) {
                char what[ROUTE_MAX_NAME + 16];
                snprintf(what, sizeof(what), "name %s", name);
                security_basic_failed(srv, ip, what);
            }
            char realm[400];
            snprintf(realm, sizeof(realm), "Basic realm=\"%s.%s\", charset=\"UTF-8\"", name, srv->domain);
            add_header(req, H2O_TOKEN_WWW_AUTHENTICATE, realm);
            LOG_INFO(LOG_EV_HTTP, "request for %s refused: 401 (basic auth %s)", name, presented ? "wrong" : "missing");
            h2o_send_error_generic(req, 401, "Unauthorized", "tunnelmux: authentication required\n", H2O_SEND_ERROR_KEEP_HEADERS);
            return 1;
        }
        *drop_authorization = 1;
    }
    int64_t now = server_now(srv);
    int64_t wait = ratelimit_debt_wait(tunnel_rate_bytes(t), now);
    if (wait > 0) {
        LOG_DEBUG(LOG_EV_HTTP, "request for %s refused: 429 (RATE_LIMIT_BPS, retry in %lld ms)", name, (long long)wait);
        if (srv->metrics != NULL)
            metrics_on_rate_limited(srv->metrics, name);
        security_too_many(req, wait, "tunnelmux: rate limit exceeded (bytes per second)\n");
        return 1;
    }
    wait = ratelimit_take(tunnel_rate_requests(t), 1, now);
    if (wait > 0) {
        LOG_DEBUG(LOG_EV_HTTP, "request for %s refused: 429 (RATE_LIMIT_RPS, retry in %lld ms)", name, (long long)wait);
        if (srv->metrics != NULL)
            metrics_on_rate_limited(srv->metrics, name);
        security_too_many(req, wait, "tunnelmux: rate limit exceeded (requests per second)\n");
        return 1;
    }
    if (req->entity.base != NULL)
        ratelimit_charge(tunnel_rate_bytes(t), (double)req->entity.len, now);
    return 0;
}

void security_on_cancel(server *srv, h2o_conn_t *conn, uint64_t conn_id)
{
    if (conn == NULL || !guard_on_cancel(srv->guard, conn_id, server_now(srv)))
        return;
    LOG_WARN(LOG_EV_HTTP, "public connection %llu closed: over H2_RESET_BUDGET (%lld cancelled requests per %lld ms; Rapid Reset)",
             (unsigned long long)conn_id, (long long)srv->opt->h2_reset_budget, (long long)srv->opt->h2_reset_window_ms);
    h2o_socket_t *sock = conn->callbacks->get_socket != NULL ? conn->callbacks->get_socket(conn) : NULL;
    if (sock != NULL)
        shutdown(h2o_socket_get_fd(sock), SHUT_RDWR); /* never h2o_socket_close from here (docs/ARCHITECTURE.md §7) */
}
