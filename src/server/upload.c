/* tunnelmux server — streamed HTTP/1.1 request bodies (see upload.h). */
#include "server/upload.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/log.h"
#include "common/phr.h"
#include "server/route.h"
#include "server/tunnel.h"
#include "server/h2_body.h"
#include "server/upload_head.h"

/* Per accepted plain-HTTP socket: what puts the hook back after each request. */
typedef struct upload_conn {
    server *srv;
    h2o_socket_t *sock;
    h2o_timeout_entry_t rehook; /* zero-delay: re-hooks once h2o restarted reading for the next request */
    int refs;                   /* the socket, each request that will ask for a re-hook, a hook call in progress */
    int closed;                 /* the socket is gone */
    /* TLS: the body is read through h2o's own socket (no second descriptor can share its TLS state) */
    struct upload_body *tls_reader; /* the body being read, or NULL */
    h2o_buffer_t *saved_input;      /* h2o's input with the request head, set aside until the request ends */
} upload_conn;

/* The head h2o is parsing right now, between the hook and the handler (both in one call). */
struct upload_pending {
    upload_conn *uc;
    h2o_socket_t *sock;
    h2o_req_t *req;   /* set by upload_take() */
    uint64_t len;     /* the body's length (UINT64_MAX: chunked) */
    int chunked;      /* Transfer-Encoding: chunked */
    const char *body; /* body bytes h2o read together with the head (in its input buffer) */
    size_t body_len;
    int expect_continue; /* the user waits for "100 Continue" before it sends the body */
    int defer_continue;  /* ... which the local service decides (upload_defer_continue), not the body's start */
    int seen;            /* the handler called upload_take() */
    int taken;           /* a reader was started for it */
};

struct upload_body {
    server *srv;
    h2o_socket_t *sock; /* ours, on a dup of the connection's descriptor; NULL once closed. Readiness
                         * only (h2o_socket_dont_read): we recv() into |buf| ourselves, one bounded
                         * read per wake-up, because h2o's own reader slurps a socket to EAGAIN
                         * into a buffer that doubles (tens of MiB after a pause) */
    const uint8_t *pre; /* body bytes that were in h2o's buffer (valid while the request lives) */
    size_t pre_len;
    uint8_t *buf; /* UPLOAD_READ_BUF bytes; [buf_off, buf_len) not consumed yet */
    size_t buf_off, buf_len;
    uint64_t left;      /* body bytes not consumed yet (chunked: UINT64_MAX until the last chunk was decoded) */
    int tls;            /* |sock| is the TLS connection itself (h2o's): never closed here, bytes come in sock->input */
    int chunked;        /* decode chunked framing in place as bytes arrive */
    int chunk_end;      /* chunked: the last chunk was decoded (|left| is exact from then on) */
    int malformed;      /* chunked: the bytes h2o had read already break the framing */
    uint64_t decoded;   /* chunked: payload bytes decoded so far (MAX_REQUEST_BODY) */
    uint64_t discarded; /* discard mode: bytes read and dropped */
    int error_status;   /* the HTTP status fitting the last error (413 over MAX_REQUEST_BODY) */
    struct phr_chunked_decoder dec;
    uint8_t *pre_copy; /* chunked: the bytes h2o had read, copied and decoded */
    int want;          /* the consumer takes more */
    int reading;       /* h2o_socket_read_start is in effect */
    int in_cb, free_pending;
    upload_body_cb cb; /* NULL: discard mode (an answered request's body) */
    void *data;
    h2o_timeout_entry_t deadline; /* discard mode: READ_TIMEOUT without progress */
    h2o_timeout_entry_t pull;     /* TLS: zero-delay, hands over bytes h2o's reader left in sock->input */
    int continue_owed;            /* the user waits for "100 Continue" and was not sent it (upload_body_continue) */
};

/* ---------------------------------------------------------------- per-connection hook */

static void hook_on_read(h2o_socket_t *sock, const char *err);
static void discard_start(server *srv, h2o_socket_t *sock, const struct upload_pending *p);

static void uc_release(upload_conn *uc)
{
    if (--uc->refs == 0)
        free(uc);
}

static void uc_on_close(void *data)
{
    upload_conn *uc = data;
    uc->closed = 1;
    if (uc->tls_reader != NULL) { /* cannot happen: h2o disposes of the request (and the reader) first */
        uc->tls_reader->sock = NULL;
        uc->tls_reader = NULL;
    }
    if (h2o_timeout_is_linked(&uc->rehook))
        h2o_timeout_unlink(&uc->rehook);
    uc_release(uc);
}

/* h2o reads the next request with its own reader again: put the hook in front of it, but only
 * while nothing of that request was read. A pipelined request already in the buffer may be past
 * its head in h2o (reading its body by length): renaming that head now would claim a body h2o is
 * reading itself. Such a request keeps h2o's path; the hook comes back after it. */
static void hook_if_reading(upload_conn *uc)
{
    if (!uc->closed && uc->srv->upload_h1_read != NULL && uc->sock->_cb.read == uc->srv->upload_h1_read &&
        uc->sock->input->size == 0)
        uc->sock->_cb.read = hook_on_read;
}

static void on_rehook(h2o_timeout_entry_t *e)
{
    hook_if_reading(H2O_STRUCT_FROM_MEMBER(upload_conn, rehook, e));
}

/* Request pool destructor: h2o restarts its reader right after disposing of the request. */
static void on_request_dispose(void *p)
{
    upload_conn *uc = *(upload_conn **)p;
    if (uc->saved_input != NULL) /* the request's strings pointed into it */
        h2o_buffer_dispose(&uc->saved_input);
    if (!uc->closed && !h2o_timeout_is_linked(&uc->rehook))
        h2o_timeout_link(uc->srv->ctx.loop, &uc->srv->ctx.zero_timeout, &uc->rehook);
    uc_release(uc);
}

void upload_on_accept(server *srv, h2o_socket_t *sock)
{
    if (sock->on_close.cb != NULL || sock->_cb.read == NULL)
        return;
    if (srv->upload_h1_read == NULL)
        srv->upload_h1_read = sock->_cb.read; /* h2o_accept on a plain socket starts the HTTP/1 reader */
    if (sock->_cb.read != srv->upload_h1_read)
        return;
    upload_conn *uc = calloc(1, sizeof(*uc));
    if (uc == NULL)
        return; /* h2o's buffered path */
    uc->srv = srv;
    uc->sock = sock;
    uc->refs = 1;
    uc->rehook.cb = on_rehook;
    sock->on_close.cb = uc_on_close;
    sock->on_close.data = uc;
    sock->_cb.read = hook_on_read;
}

/*
 * TLS keeps h2o's path for a request whose answer would come before its body is read: over TLS the
 * body cannot be read away after that answer (no second descriptor), and h2o closing the connection
 * with the body still arriving resets it under the client. So: "100 Continue" (our write would go
 * under h2o's), and a Host whose name has no connected tunnel (404, 502; h2o reads the body, then
 * the answer goes out). Answers given later (401, 429, the local service's) close the connection
 * after them as on HTTP/1.1 everywhere.
 */
static int eligible_tls_skip(server *srv, const h2o_buffer_t *in)
{
    upload_head h;
    if (upload_head_parse(in->bytes, in->size, H2O_MAX_REQLEN, 0, 0, &h) != UPLOAD_HEAD_ELIGIBLE)
        return 0;
    if (h.expect_continue || h.host_len == 0)
        return 1;
    char name[ROUTE_MAX_NAME + 1];
    if (route_lookup_name(in->bytes + h.host_off, h.host_len, srv->domain, name, sizeof(name), NULL, 0) < 0)
        return 1;
    int known = 0;
    tunnel *t = registry_find(&srv->reg, name, &known);
    return t == NULL || tunnel_session(t) == NULL || tunnel_is_dying(t);
}

/* GET and HEAD (nearly every small request) are not parsed twice: a body on them, rare as it is,
 * keeps h2o's path. */
static int bodiless_method(const h2o_buffer_t *in)
{
    return (in->size >= 4 && memcmp(in->bytes, "GET ", 4) == 0) || (in->size >= 5 && memcmp(in->bytes, "HEAD ", 5) == 0);
}

static void hook_on_read(h2o_socket_t *sock, const char *err)
{
    upload_conn *uc = sock->on_close.data;
    server *srv = uc->srv;
    struct upload_pending p;
    int eligible = 0;
    upload_head h;
    if (err == NULL && sock->ssl == NULL && sock->input->size > 0 && srv->upload_pending == NULL &&
        (eligible = h2_body_is_preface(sock->input->bytes, sock->input->size)) != 0) {
        /* HTTP/2 with prior knowledge: the rest is h2_body.c's (it chains our on_close) */
        if (eligible > 0) {
            uc->refs++;
            sock->_cb.read = srv->upload_h1_read;
            h2_body_accept_prior_knowledge(srv, sock, srv->upload_h1_read);
            uc_release(uc);
        }
        return; /* a partial preface: wait for the rest */
    }
    eligible = 0;
    if (err == NULL && srv->upload_pending == NULL && !(sock->ssl != NULL && eligible_tls_skip(srv, sock->input)) &&
        sock->input->size > 0 && !bodiless_method(sock->input) &&
        upload_head_parse(sock->input->bytes, sock->input->size, H2O_MAX_REQLEN, 1, srv->opt->max_request_body, &h) ==
            UPLOAD_HEAD_ELIGIBLE &&
        (h.chunked || h.content_length >= UPLOAD_MIN_BODY || h.expect_continue)) {
        /* (a small body with Expect: 100-continue too: the local service may answer before it is sent) */
        /* h2o must not see this body: same-length rename, before h2o parses the head */
        if (h.chunked)
            memcpy(sock->input->bytes + h.cl_name_off, UPLOAD_HIDDEN_TE_HEADER, UPLOAD_HIDDEN_TE_HEADER_LEN);
        else
            memcpy(sock->input->bytes + h.cl_name_off, UPLOAD_HIDDEN_HEADER, UPLOAD_HIDDEN_HEADER_LEN);
        size_t after = sock->input->size - h.head_len;
        uint64_t len = h.chunked ? UINT64_MAX : h.content_length;
        p = (struct upload_pending){.uc = uc,
                                    .sock = sock,
                                    .len = len,
                                    .chunked = h.chunked,
                                    .body = sock->input->bytes + h.head_len,
                                    .body_len = after < len ? after : (size_t)len,
                                    .expect_continue = h.expect_continue && after == 0};
        srv->upload_pending = &p;
        eligible = 1;
    }
    uc->refs++; /* h2o may close the socket inside its reader */
    srv->upload_h1_read(sock, err);
    if (eligible) {
        srv->upload_pending = NULL;
        if (!p.seen) {
            /* h2o answered without our handler: the body must never be parsed as a request */
            if (!uc->closed) {
                LOG_WARN(LOG_EV_HTTP, "held-back request body not claimed by the handler: connection closed");
                shutdown(h2o_socket_get_fd(sock), SHUT_RDWR);
            }
        } else if (!p.taken && !uc->closed) {
            discard_start(srv, sock, &p);
        }
    }
    uc_release(uc);
}

int64_t upload_take(server *srv, h2o_req_t *req)
{
    if (req->version >= 0x200 || req->conn->callbacks->get_socket == NULL)
        return -1;
    h2o_socket_t *sock = req->conn->callbacks->get_socket(req->conn);
    if (sock == NULL || sock->on_close.cb != uc_on_close)
        return -1;
    upload_conn *uc = sock->on_close.data;
    upload_conn **holder = h2o_mem_alloc_shared(&req->pool, sizeof(*holder), on_request_dispose);
    *holder = uc;
    uc->refs++;
    struct upload_pending *p = srv->upload_pending;
    if (p == NULL || p->seen || p->sock != sock)
        return -1;
    p->seen = 1;
    p->req = req;
    req->http1_is_persistent = 0; /* whatever happens next, nothing after this head is parsed */
    return p->chunked ? UPLOAD_LENGTH_CHUNKED : (int64_t)p->len;
}

/* ---------------------------------------------------------------- body reader */

static void body_on_read(h2o_socket_t *sock, const char *err);

static upload_body *body_init(upload_body *ub, const struct upload_pending *p);
static void do_free(upload_body *ub);
static void release(upload_body *ub);

/* Decodes |*n| chunked bytes at |buf| in place (*n becomes the payload's length). At the last chunk,
 * |left| becomes what is still to consume (this payload plus what was decoded before and is not
 * consumed). Returns 0, -1 when the framing is malformed, -2 past MAX_REQUEST_BODY (when set). */
static int decode_chunked(upload_body *ub, uint8_t *buf, size_t *n)
{
    size_t in = *n;
    ssize_t r = phr_decode_chunked(&ub->dec, (char *)buf, n);
    if (r == -1)
        return -1;
    (void)in;
    ub->decoded += *n;
    if (r >= 0) { /* the last chunk and the trailers: what follows is not ours */
        ub->chunk_end = 1;
        ub->left = (buf == ub->pre_copy ? 0 : ub->pre_len) + *n;
    }
    uint64_t max = ub->srv->opt->max_request_body;
    if (max > 0 && ub->decoded > max) {
        ub->error_status = 413;
        return -2;
    }
    return 0;
}

static upload_body *body_new_tls(server *srv, h2o_socket_t *conn_sock, const struct upload_pending *p);

static upload_body *body_new(server *srv, h2o_socket_t *conn_sock, const struct upload_pending *p)
{
    if (conn_sock->ssl != NULL)
        return body_new_tls(srv, conn_sock, p);
    int fd = fcntl(h2o_socket_get_fd(conn_sock), F_DUPFD_CLOEXEC, 0);
    if (fd < 0) {
        LOG_WARN(LOG_EV_HTTP, "request body: cannot duplicate the connection's descriptor: %s", strerror(errno));
        return NULL;
    }
    upload_body *ub = calloc(1, sizeof(*ub));
    if (ub == NULL) {
        close(fd);
        return NULL;
    }
    ub->buf = malloc(UPLOAD_READ_BUF);
    if (ub->buf == NULL) {
        free(ub);
        close(fd);
        return NULL;
    }
    ub->srv = srv;
    ub->sock = h2o_evloop_socket_create(srv->ctx.loop, fd, 0);
    h2o_socket_dont_read(ub->sock, 1);
    ub->sock->data = ub;
    return body_init(ub, p);
}

/* The connection's own socket: h2o's input buffer (the request's strings point into it) is set
 * aside until the request ends, and h2o's TLS reader fills a fresh one that this reader drains. */
static upload_body *body_new_tls(server *srv, h2o_socket_t *conn_sock, const struct upload_pending *p)
{
    upload_conn *uc = conn_sock->on_close.data;
    if (uc->tls_reader != NULL || uc->saved_input != NULL)
        return NULL;
    upload_body *ub = calloc(1, sizeof(*ub));
    if (ub == NULL || (ub->buf = malloc(UPLOAD_READ_BUF)) == NULL) {
        free(ub);
        return NULL;
    }
    ub->srv = srv;
    ub->sock = conn_sock;
    ub->tls = 1;
    uc->saved_input = conn_sock->input;
    h2o_buffer_init(&conn_sock->input, &h2o_socket_buffer_prototype);
    uc->tls_reader = ub;
    return body_init(ub, p);
}

/* What both readers share: the bytes h2o had read, the length, chunked decoding. */
static upload_body *body_init(upload_body *ub, const struct upload_pending *p)
{
    ub->pre = (const uint8_t *)p->body;
    ub->pre_len = p->body_len;
    ub->left = p->len;
    ub->want = 1;
    if (p->chunked) {
        ub->chunked = 1;
        ub->dec.consume_trailer = 1;
        if (p->body_len > 0 && (ub->pre_copy = malloc(p->body_len)) == NULL) {
            do_free(ub);
            return NULL;
        }
        if (p->body_len > 0)
            memcpy(ub->pre_copy, p->body, p->body_len);
        ub->pre = ub->pre_copy;
        if (decode_chunked(ub, ub->pre_copy, &ub->pre_len) != 0) {
            LOG_INFO(LOG_EV_HTTP, "request body: malformed chunked framing");
            ub->malformed = 1;
        }
    }
    return ub;
}

/* Closes our descriptor. With |drain|, first reads away (up to 1 MiB) what the client sent after
 * the body: closing a socket with unread bytes sends a reset, which can destroy the response the
 * client has not read yet (a request pipelined behind an upload, say). */
static void close_sock(upload_body *ub, int drain)
{
    if (ub->sock == NULL)
        return;
    if (ub->tls) { /* h2o's socket: stop reading, leave it to h2o */
        upload_conn *uc = ub->sock->on_close.data;
        if (ub->reading)
            h2o_socket_read_stop(ub->sock);
        if (uc != NULL && uc->tls_reader == ub)
            uc->tls_reader = NULL;
        ub->sock = NULL;
        ub->reading = 0;
        return;
    }
    for (int i = 0; drain && i < 4; i++) {
        ssize_t n = recv(h2o_socket_get_fd(ub->sock), ub->buf, UPLOAD_READ_BUF, MSG_DONTWAIT);
        if (n <= 0 && !(n < 0 && errno == EINTR))
            break;
    }
    ub->sock->data = NULL;
    h2o_socket_close(ub->sock); /* our descriptor only: the connection stays h2o's */
    ub->sock = NULL;
    ub->reading = 0;
}

static void do_free(upload_body *ub)
{
    close_sock(ub, 1);
    if (h2o_timeout_is_linked(&ub->pull))
        h2o_timeout_unlink(&ub->pull);
    if (h2o_timeout_is_linked(&ub->deadline))
        h2o_timeout_unlink(&ub->deadline);
    free(ub->buf);
    free(ub->pre_copy);
    free(ub);
}

/* Reads while the consumer wants bytes, none are buffered and some are still to come. */
static void tls_on_read(h2o_socket_t *sock, const char *err);

static void update_reading(upload_body *ub)
{
    if (ub->sock == NULL)
        return;
    int buffered = ub->pre_len > 0 || ub->buf_off < ub->buf_len;
    int should = ub->left > 0 && (ub->cb == NULL || (ub->want && !buffered));
    if (should && ub->tls && ub->sock->input->size > 0 && !h2o_timeout_is_linked(&ub->pull))
        h2o_timeout_link(ub->srv->ctx.loop, &ub->srv->ctx.zero_timeout, &ub->pull); /* no read event will bring them */
    if (should && !ub->reading) {
        ub->reading = 1;
        h2o_socket_read_start(ub->sock, ub->tls ? tls_on_read : body_on_read);
    } else if (!should && ub->reading) {
        ub->reading = 0;
        h2o_socket_read_stop(ub->sock);
    }
}

static void fail(upload_body *ub, const char *why)
{
    /* over MAX_REQUEST_BODY the client is still sending a valid body: keep the connection to read
     * it away (discard mode) once the consumer answered 413 and let go; otherwise it is broken */
    int keep = ub->error_status == 413;
    if (!keep)
        close_sock(ub, 0);
    if (ub->cb == NULL) {
        do_free(ub);
        return;
    }
    ub->in_cb = 1;
    ub->cb(ub->data, why);
    ub->in_cb = 0;
    if (ub->free_pending) {
        if (keep)
            release(ub);
        else
            do_free(ub);
    }
}

/* One recv() of at most UPLOAD_READ_BUF bytes and of what is left of the body. Returns the byte
 * count, 0 when nothing is there yet, -1 at EOF or on an error. */
static ssize_t read_some(upload_body *ub)
{
    size_t want = ub->chunked || ub->left >= UPLOAD_READ_BUF ? UPLOAD_READ_BUF : (size_t)ub->left;
    ssize_t n;
    while ((n = recv(h2o_socket_get_fd(ub->sock), ub->buf, want, 0)) < 0 && errno == EINTR)
        ;
    if (n < 0)
        return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
    return n == 0 ? -1 : n;
}

static void body_on_read(h2o_socket_t *sock, const char *err)
{
    upload_body *ub = sock->data;
    if (ub == NULL)
        return;
    if (err != NULL) {
        fail(ub, "the client closed the connection before the end of the request body");
        return;
    }
    if (ub->cb == NULL) { /* discard: a few reads per wake-up, never more than the body or UPLOAD_DISCARD_MAX */
        for (int i = 0; i < 8 && ub->left > 0; i++) {
            ssize_t n = read_some(ub);
            if (n < 0 || (ub->discarded += (uint64_t)(n > 0 ? n : 0)) > UPLOAD_DISCARD_MAX) {
                do_free(ub);
                return;
            }
            if (n == 0)
                break;
            if (ub->chunked) {
                size_t dn = (size_t)n;
                if (decode_chunked(ub, ub->buf, &dn) == -1) { /* past MAX_REQUEST_BODY is what we discard */
                    do_free(ub);
                    return;
                }
                if (ub->chunk_end)
                    ub->left = 0; /* the last chunk went by: nothing more to discard */
            } else {
                ub->left -= (size_t)n;
            }
        }
        if (ub->left == 0) {
            do_free(ub);
            return;
        }
        h2o_timeout_unlink(&ub->deadline);
        h2o_timeout_link(ub->srv->ctx.loop, &ub->srv->read_timeout, &ub->deadline);
        return;
    }
    if (ub->buf_off < ub->buf_len)
        return; /* not consumed yet (cannot happen while reading) */
    ssize_t n = read_some(ub);
    if (n == 0)
        return;
    if (n < 0) {
        fail(ub, "the client closed the connection before the end of the request body");
        return;
    }
    ub->buf_off = 0;
    ub->buf_len = (size_t)n;
    ub->continue_owed = 0; /* the user sends without waiting for the 100 (its own timeout): none is due */
    if (ub->chunked) {
        int dr = decode_chunked(ub, ub->buf, &ub->buf_len);
        if (dr != 0) {
            fail(ub, dr == -2 ? "request body larger than MAX_REQUEST_BODY" : "malformed chunked request body");
            return;
        }
        if (ub->buf_len == 0 && ub->left > 0) {
            update_reading(ub); /* only framing so far */
            return;
        }
    }
    ub->in_cb = 1;
    ub->cb(ub->data, NULL); /* usually consumes it all: reading goes on without an epoll_ctl */
    ub->in_cb = 0;
    if (ub->free_pending)
        release(ub);
    else
        update_reading(ub);
}

/* TLS: moves what h2o decrypted into |buf| (at most UPLOAD_READ_BUF, and not past a known length)
 * and hands it over, while the consumer takes everything and more is there. */
static void tls_pull(upload_body *ub)
{
    for (int i = 0;
         i < 64 && ub->sock != NULL && ub->left > 0 && ub->buf_off == ub->buf_len && ub->pre_len == 0 && ub->sock->input->size > 0;
         i++) {
        h2o_buffer_t *in = ub->sock->input;
        size_t n = in->size < UPLOAD_READ_BUF ? in->size : UPLOAD_READ_BUF;
        if (!ub->chunked && ub->left < n)
            n = (size_t)ub->left;
        memcpy(ub->buf, in->bytes, n);
        h2o_buffer_consume(&ub->sock->input, n);
        ub->buf_off = 0;
        ub->buf_len = n;
        int dr = ub->chunked ? decode_chunked(ub, ub->buf, &ub->buf_len) : 0;
        if (dr != 0) {
            fail(ub, dr == -2 ? "request body larger than MAX_REQUEST_BODY" : "malformed chunked request body");
            return;
        }
        if (ub->buf_len == 0 && ub->left > 0)
            continue; /* only framing so far (at the last chunk the consumer must hear of the end) */
        ub->in_cb = 1;
        ub->cb(ub->data, NULL);
        ub->in_cb = 0;
        if (ub->free_pending) {
            release(ub);
            return;
        }
    }
    update_reading(ub);
}

static void tls_on_read(h2o_socket_t *sock, const char *err)
{
    upload_conn *uc = sock->on_close.data;
    upload_body *ub = uc != NULL ? uc->tls_reader : NULL;
    if (ub == NULL) {
        h2o_socket_read_stop(sock);
        return;
    }
    if (err != NULL) {
        fail(ub, "the client closed the connection before the end of the request body");
        return;
    }
    if (ub->cb != NULL)
        tls_pull(ub);
}

static void on_pull(h2o_timeout_entry_t *e)
{
    upload_body *ub = H2O_STRUCT_FROM_MEMBER(upload_body, pull, e);
    if (ub->cb != NULL)
        tls_pull(ub);
}

upload_body *upload_body_start(server *srv, h2o_req_t *req, upload_body_cb cb, void *data)
{
    struct upload_pending *p = srv->upload_pending;
    if (p == NULL || !p->seen || p->taken || p->req != req || cb == NULL)
        return NULL;
    upload_body *ub = body_new(srv, p->sock, p);
    if (ub == NULL)
        return NULL;
    if (ub->malformed) {
        do_free(ub);
        return NULL;
    }
    ub->continue_owed = p->expect_continue;
    if (p->expect_continue && !p->defer_continue && upload_body_continue(ub) != 0) {
        do_free(ub);
        return NULL;
    }
    p->taken = 1;
    ub->cb = cb;
    ub->data = data;
    ub->pull.cb = on_pull;
    update_reading(ub);
    return ub;
}

int upload_defer_continue(server *srv, h2o_req_t *req)
{
    struct upload_pending *p = srv->upload_pending;
    if (p == NULL || !p->seen || p->taken || p->req != req || !p->expect_continue || p->sock->ssl != NULL)
        return 0;
    p->defer_continue = 1;
    return 1;
}

int upload_body_continue(upload_body *ub)
{
    if (!ub->continue_owed)
        return 0;
    ub->continue_owed = 0;
    if (ub->sock == NULL || ub->tls)
        return -1;
    /* the user waits for this before sending the body (h2o answers it on its own path). Nothing of
     * the response was written yet (it follows the final head), so 25 bytes go straight into the
     * socket buffer, through our descriptor of the same socket. */
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    if (send(h2o_socket_get_fd(ub->sock), cont, sizeof(cont) - 1, MSG_NOSIGNAL | MSG_DONTWAIT) != (ssize_t)sizeof(cont) - 1) {
        LOG_INFO(LOG_EV_HTTP, "request body: cannot answer 100-continue: %s", strerror(errno));
        return -1;
    }
    return 0;
}

size_t upload_body_peek(upload_body *ub, const uint8_t **p)
{
    if (ub->left == 0)
        return 0;
    if (ub->pre_len > 0) {
        *p = ub->pre;
        return ub->pre_len < ub->left ? ub->pre_len : (size_t)ub->left;
    }
    if (ub->buf_off == ub->buf_len)
        return 0;
    *p = ub->buf + ub->buf_off;
    return ub->buf_len - ub->buf_off; /* read_some never reads past the body */
}

void upload_body_consume(upload_body *ub, size_t n)
{
    if (n == 0)
        return;
    if (!ub->chunked || ub->chunk_end)
        ub->left -= n;
    if (ub->pre_len > 0) {
        ub->pre += n;
        ub->pre_len -= n;
        if (ub->left == 0)
            ub->pre_len = 0;
    } else {
        ub->buf_off += n;
    }
    update_reading(ub); /* stops at the end of the body: what follows is drained when |ub| is freed,
                         * the connection closes after the response */
}

int upload_body_error_status(const upload_body *ub)
{
    return ub->error_status != 0 ? ub->error_status : 400;
}

int upload_body_done(const upload_body *ub)
{
    return ub->left == 0;
}

void upload_body_want(upload_body *ub, int want)
{
    ub->want = want;
    update_reading(ub);
}

static void on_discard_deadline(h2o_timeout_entry_t *e);

/* The consumer let go before the end of the body (it answered early, or the body broke a limit):
 * on a plain connection the rest is read and dropped (discard mode, bounded by READ_TIMEOUT without
 * progress and UPLOAD_DISCARD_MAX), so closing the connection after the answer does not reset it
 * under the client; otherwise the reader is freed. */
static void release(upload_body *ub)
{
    /* a user still waiting for "100 Continue" (the local service answered first) was never asked for
     * the body: nothing to read away; the connection closes after the answer (what it sent
     * regardless is drained, up to 1 MiB, by close_sock) */
    if (ub->tls || ub->sock == NULL || ub->left == 0 || ub->malformed || ub->continue_owed) {
        do_free(ub);
        return;
    }
    ub->cb = NULL;
    ub->data = NULL;
    ub->pre_len = 0;
    ub->buf_off = ub->buf_len = 0;
    ub->deadline.cb = on_discard_deadline;
    if (h2o_timeout_is_linked(&ub->deadline))
        h2o_timeout_unlink(&ub->deadline);
    h2o_timeout_link(ub->srv->ctx.loop, &ub->srv->read_timeout, &ub->deadline);
    update_reading(ub);
}

void upload_body_free(upload_body *ub)
{
    if (ub == NULL)
        return;
    if (ub->in_cb) {
        ub->free_pending = 1; /* released when the callback returns */
        return;
    }
    release(ub);
}

/* ---------------------------------------------------------------- discarding an answered body */

static void on_discard_deadline(h2o_timeout_entry_t *e)
{
    upload_body *ub = H2O_STRUCT_FROM_MEMBER(upload_body, deadline, e);
    LOG_INFO(LOG_EV_HTTP, "request body of an answered request: nothing for READ_TIMEOUT, %llu bytes left unread",
             (unsigned long long)ub->left);
    do_free(ub);
}

static void discard_start(server *srv, h2o_socket_t *sock, const struct upload_pending *p)
{
    if (p->body_len >= p->len)
        return; /* h2o already read it all */
    if (sock->ssl != NULL)
        return; /* TLS: h2o closes the connection after the answer (the body is not read) */
    if (p->expect_continue)
        return; /* the user waits for "100 Continue" and got the answer instead: it sends no body */
    upload_body *ub = body_new(srv, sock, p);
    if (ub == NULL) {
        shutdown(h2o_socket_get_fd(sock), SHUT_RD);
        return;
    }
    if (ub->chunked && (ub->chunk_end || ub->malformed)) {
        do_free(ub); /* the whole chunked body was in h2o's buffer (or broken: the connection closes) */
        return;
    }
    if (!ub->chunked)
        ub->left -= ub->pre_len;
    ub->pre_len = 0;
    ub->pre = NULL;
    ub->deadline.cb = on_discard_deadline;
    h2o_timeout_link(srv->ctx.loop, &srv->read_timeout, &ub->deadline);
    update_reading(ub);
}
