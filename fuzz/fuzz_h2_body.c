/*
 * libFuzzer target: the streamed HTTP/2 request-body hook (src/server/h2_body.c) in front of h2o
 * 2.2.5's real HTTP/2 server, on one end of a socketpair.
 *
 * Input: byte 0 = flags (bits 0-1: how the handler treats a held body — 0 consume as it arrives,
 * 1 never consume, 2 answer at once and keep consuming, 3 answer at once and free the body handle;
 * bit 2: STREAM_WINDOW 64 KiB instead of 1 MiB; bit 3: MAX_REQUEST_BODY 100000 instead of none),
 * byte 1 = chunk size of the feed (0 = everything at once), then HTTP/2 frames sent after the client
 * preface (the harness adds the preface). Every chunk is appended to the socket's input and the
 * socket's read callback runs, as h2o's loop would; the loop then runs without waiting (writes go
 * to the other end, which is drained and discarded); at the end the peer closes and the connection
 * must go away. ASan/UBSan report any memory error; the hook's invariants (h2o's stream states,
 * windows) are h2o's own assertions.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <h2o.h>
#include <h2o/http1.h>

#include "server/h2_body.h"
#include "server/server.h"
#include "server/upload.h"

static server srv;
static server_options opt;
static int mode;

typedef struct {
    h2_body *hb;
    h2o_req_t *req;
    int answered;
} fuzz_req;

static void answer(fuzz_req *fr)
{
    if (fr->answered)
        return;
    fr->answered = 1;
    fr->req->res.status = 200;
    fr->req->res.reason = "OK";
    h2o_send_inline(fr->req, H2O_STRLIT("ok\n"));
}

static void on_dispose(void *p)
{
    fuzz_req *fr = p;
    h2_body_free(fr->hb, fr->answered);
    fr->hb = NULL;
}

static void on_body(void *data, const char *err)
{
    fuzz_req *fr = data;
    if (err != NULL) {
        h2_body_free(fr->hb, 0);
        fr->hb = NULL;
        if (!fr->answered) {
            fr->answered = 1;
            h2o_send_error_generic(fr->req, 400, "Bad Request", err, 0);
        }
        return;
    }
    if ((mode & 3) == 1)
        return;
    const uint8_t *p;
    size_t n;
    while ((n = h2_body_peek(fr->hb, &p)) > 0) {
        volatile uint8_t sink = p[0] ^ p[n - 1]; /* the bytes must be readable */
        (void)sink;
        h2_body_consume(fr->hb, n > 5000 ? n / 2 : n);
    }
    if (h2_body_done(fr->hb))
        answer(fr);
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    (void)self;
    fuzz_req *fr = h2o_mem_alloc_shared(&req->pool, sizeof(*fr), on_dispose);
    memset(fr, 0, sizeof(*fr));
    fr->req = req;
    int64_t cl;
    if (!h2_body_held(req, &cl)) {
        answer(fr);
        return 0;
    }
    fr->hb = h2_body_start(req, on_body, fr);
    if (fr->hb == NULL) {
        answer(fr);
        return 0;
    }
    if ((mode & 3) >= 2)
        answer(fr);
    if ((mode & 3) == 3) {
        h2_body_free(fr->hb, 1);
        fr->hb = NULL;
        return 0;
    }
    on_body(fr, NULL); /* what arrived before the handler ran */
    return 0;
}

/* h2o closes the descriptor when it disposes of the socket (the next socketpair may reuse the
 * number only after this input) */
static int fd_open(int fd)
{
    return fcntl(fd, F_GETFD) != -1;
}

static void init_once(void)
{
    static int done;
    if (done)
        return;
    done = 1;
    signal(SIGPIPE, SIG_IGN); /* h2o writes to a peer that may be gone */
    opt.stream_window = 1 << 20;
    opt.read_timeout_ms = 1000;
    srv.opt = &opt;
    h2o_config_init(&srv.config);
    h2o_hostconf_t *host = h2o_config_register_host(&srv.config, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *path = h2o_config_register_path(host, "/", 0);
    h2o_handler_t *h = h2o_create_handler(path, sizeof(*h));
    h->on_req = on_req;
    h2o_context_init(&srv.ctx, h2o_evloop_create(), &srv.config);
    srv.accept_ctx.ctx = &srv.ctx;
    srv.accept_ctx.hosts = srv.config.hosts;
}

static void drain(int fd)
{
    char buf[65536];
    while (read(fd, buf, sizeof(buf)) > 0)
        ;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    init_once();
    if (size < 2)
        return 0;
    mode = data[0];
    size_t chunk = data[1] ? data[1] : size;
    data += 2;
    size -= 2;
    opt.stream_window = (mode & 4) ? 65536 : 1 << 20;
    opt.max_request_body = (mode & 8) ? 100000 : 0;

    int fds[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, fds) != 0)
        return 0;
    fcntl(fds[1], F_SETFL, O_NONBLOCK);
    h2o_socket_t *sock = h2o_evloop_socket_create(srv.ctx.loop, fds[0], 0);
    h2o_http1_accept(&srv.accept_ctx, sock, *h2o_get_timestamp(&srv.ctx, NULL, NULL));
    upload_on_accept(&srv, sock); /* the plain listener's hook: a preface goes to h2_body */

    /* the preface, then the frames in chunks */
    h2o_iovec_t v = h2o_buffer_reserve(&sock->input, sizeof(preface) - 1);
    memcpy(v.base, preface, sizeof(preface) - 1);
    sock->input->size += sizeof(preface) - 1;
    sock->_cb.read(sock, NULL);
    for (size_t off = 0; off < size && fd_open(fds[0]); off += chunk) {
        size_t n = size - off < chunk ? size - off : chunk;
        v = h2o_buffer_reserve(&sock->input, n);
        memcpy(v.base, data + off, n);
        sock->input->size += n;
        if (sock->_cb.read == NULL)
            break; /* h2o stopped reading (closing) */
        sock->_cb.read(sock, NULL);
        if (!fd_open(fds[0]))
            break;
        h2o_evloop_run(srv.ctx.loop, 0);
        drain(fds[1]);
    }
    /* the peer goes away: h2o closes the connection, the hook frees its state */
    shutdown(fds[1], SHUT_RDWR);
    for (int i = 0; i < 50 && fd_open(fds[0]); i++) {
        h2o_evloop_run(srv.ctx.loop, 1);
        drain(fds[1]);
    }
    if (fd_open(fds[0]))
        abort(); /* the connection must close when its peer is gone */
    close(fds[1]);
    return 0;
}
