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
 *
 * Data integrity (the oracle): before the run the harness walks the input's frames itself and
 * records, per stream, the DATA payloads (padding removed) sent after the stream's first HEADERS,
 * up to its END_STREAM. Every byte the handler takes must be the next byte of that record (content
 * compared, so a frame delivered twice, skipped or reordered aborts), and a body reported done
 * must have delivered exactly the record. Bits 4-7 of byte 0 seed how much the handler takes per
 * write (random partial amounts, zero = "no credit now", as mux_session_write); the handler is
 * also pumped after every chunk (credit arriving later). Byte 1 > 0: chunk sizes vary in
 * [1, 2 * byte 1], so frames split at arbitrary read boundaries.
 */
#include <fcntl.h>
#include <stdio.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <h2o.h>
#include <h2o/http1.h>
#include <h2o/http2.h>
#include <h2o/http2_internal.h>

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
    int expect; /* the user waits for a 100 (proxy.c's continue relay): sent at the first pump */
} fuzz_req;

/* ---------------------------------------------------------------- the oracle */

#define MAX_ORACLE_STREAMS 256
#define MAX_ACTIVE 256

typedef struct {
    uint32_t id;
    int opened;      /* its first HEADERS frame was seen */
    uint8_t *sent;   /* DATA payloads after that HEADERS, padding removed */
    size_t sent_len; /* bytes in |sent| */
    size_t end_len;  /* |sent_len| at END_STREAM (DATA or trailers), SIZE_MAX before */
    size_t taken;    /* bytes the handler consumed so far */
} oracle_stream;

static oracle_stream oracle[MAX_ORACLE_STREAMS];
static size_t oracle_n;
static fuzz_req *active[MAX_ACTIVE]; /* handlers holding a body, pumped after every chunk */
static uint32_t rng;

static uint32_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 17;
    rng ^= rng << 5;
    return rng;
}

static oracle_stream *oracle_get(uint32_t id, int create)
{
    for (size_t i = 0; i < oracle_n; i++)
        if (oracle[i].id == id)
            return &oracle[i];
    if (!create || oracle_n == MAX_ORACLE_STREAMS)
        return NULL;
    oracle_stream *o = &oracle[oracle_n++];
    memset(o, 0, sizeof(*o));
    o->id = id;
    o->end_len = SIZE_MAX;
    return o;
}

static void oracle_reset(void)
{
    for (size_t i = 0; i < oracle_n; i++)
        free(oracle[i].sent);
    oracle_n = 0;
}

/* Walks the client's frames independently of h2o and the hook. Frames h2o would reject (too long,
 * bad padding) are skipped, never stop the walk: the record may only ever be longer than what the
 * server can deliver, so a delivered byte outside it is always a real error. */
static void oracle_build(const uint8_t *p, size_t size)
{
    size_t off = 0;
    while (off + 9 <= size) {
        size_t len = (size_t)p[off] << 16 | (size_t)p[off + 1] << 8 | p[off + 2];
        uint8_t type = p[off + 3], flags = p[off + 4];
        uint32_t id =
            ((uint32_t)p[off + 5] << 24 | (uint32_t)p[off + 6] << 16 | (uint32_t)p[off + 7] << 8 | p[off + 8]) & 0x7fffffff;
        const uint8_t *payload = p + off + 9;
        if (off + 9 + len > size)
            break; /* never complete: never parsed */
        off += 9 + len;
        if (len > 16384 || id == 0)
            continue;
        oracle_stream *o;
        if (type == H2O_HTTP2_FRAME_TYPE_HEADERS) {
            if ((o = oracle_get(id, 1)) == NULL)
                continue;
            if (!o->opened) {
                o->opened = 1;
                if (flags & H2O_HTTP2_FRAME_FLAG_END_STREAM)
                    o->end_len = 0; /* no body */
            } else if (o->end_len == SIZE_MAX) {
                o->end_len = o->sent_len; /* trailers (or a connection error): no DATA after them */
            }
        } else if (type == H2O_HTTP2_FRAME_TYPE_DATA) {
            if ((o = oracle_get(id, 0)) == NULL || !o->opened || o->end_len != SIZE_MAX)
                continue;
            const uint8_t *d = payload;
            size_t n = len;
            if (flags & H2O_HTTP2_FRAME_FLAG_PADDED) {
                if (len < 1 || (size_t)payload[0] + 1 > len)
                    continue;
                d = payload + 1;
                n = len - 1 - payload[0];
            }
            if (n > 0) {
                uint8_t *nb = realloc(o->sent, o->sent_len + n);
                if (nb == NULL)
                    abort();
                memcpy(nb + o->sent_len, d, n);
                o->sent = nb;
                o->sent_len += n;
            }
            if (flags & H2O_HTTP2_FRAME_FLAG_END_STREAM)
                o->end_len = o->sent_len;
        }
    }
}

static uint32_t stream_id_of(h2o_req_t *req)
{
    return H2O_STRUCT_FROM_MEMBER(h2o_http2_stream_t, req, req)->stream_id;
}

/* The handler takes |n| bytes at |p|: they must be the next bytes the client sent on the stream. */
static void oracle_take(fuzz_req *fr, const uint8_t *p, size_t n)
{
    uint32_t id = stream_id_of(fr->req);
    oracle_stream *o = oracle_get(id, 0);
    if (o == NULL || o->taken + n > o->sent_len || memcmp(p, o->sent + o->taken, n) != 0) {
        fprintf(stderr, "fuzz_h2_body: stream %u delivered %zu bytes at offset %zu that the client did not send there (sent %zu)\n",
                id, n, o != NULL ? o->taken : 0, o != NULL ? o->sent_len : 0);
        abort();
    }
    o->taken += n;
}

static void oracle_done(fuzz_req *fr)
{
    uint32_t id = stream_id_of(fr->req);
    oracle_stream *o = oracle_get(id, 0);
    if (o == NULL || o->end_len == SIZE_MAX || o->taken != o->end_len) {
        fprintf(stderr, "fuzz_h2_body: stream %u done after %zu bytes; the client sent %zu up to END_STREAM\n", id,
                o != NULL ? o->taken : 0, o != NULL && o->end_len != SIZE_MAX ? o->end_len : (size_t)0);
        abort();
    }
}

static void active_add(fuzz_req *fr)
{
    for (size_t i = 0; i < MAX_ACTIVE; i++)
        if (active[i] == NULL) {
            active[i] = fr;
            return;
        }
}

static void active_remove(fuzz_req *fr)
{
    for (size_t i = 0; i < MAX_ACTIVE; i++)
        if (active[i] == fr)
            active[i] = NULL;
}

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
    active_remove(fr);
    h2_body_free(fr->hb, fr->answered);
    fr->hb = NULL;
}

/* What proxy.c's pump does with mux_session_write: takes random amounts (0 = no credit now, wait
 * for the next pump) of what is buffered, checking each against the oracle. */
static void pump(fuzz_req *fr)
{
    const uint8_t *p;
    size_t n;
    if (fr->expect && fr->hb != NULL) { /* the local service asks for the body */
        fr->expect = 0;
        (void)h2_body_send_continue(fr->hb);
    }
    for (int i = 0; i < 64 && fr->hb != NULL && (n = h2_body_peek(fr->hb, &p)) > 0; i++) {
        uint32_t r = next_rand();
        size_t k = (r & 3) == 0 ? n : (size_t)(r >> 2) % (n + 1);
        if (k == 0)
            break;
        oracle_take(fr, p, k);
        h2_body_consume(fr->hb, k);
    }
    if (fr->hb != NULL && h2_body_done(fr->hb)) {
        oracle_done(fr);
        answer(fr);
    }
}

static void on_body(void *data, const char *err)
{
    fuzz_req *fr = data;
    if (err != NULL) {
        active_remove(fr);
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
    pump(fr);
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
    if ((next_rand() & 3) == 0) { /* Expect: 100-continue relayed: early answers leave the stream to the user */
        fr->expect = 1;
        h2_body_expect_continue(fr->hb);
    }
    if ((mode & 3) >= 2)
        answer(fr);
    if ((mode & 3) == 3) {
        h2_body_free(fr->hb, 1);
        fr->hb = NULL;
        return 0;
    }
    if ((mode & 3) != 1)
        active_add(fr);
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
    size_t chunk = data[1];
    rng = 0x9e3779b9u ^ ((uint32_t)(mode >> 4) << 8 | data[1]);
    data += 2;
    size -= 2;
    oracle_reset();
    memset(active, 0, sizeof(active));
    oracle_build(data, size);
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
    for (size_t off = 0, n; off < size && fd_open(fds[0]); off += n) {
        n = chunk == 0 ? size : 1 + next_rand() % (2 * chunk);
        if (n > size - off)
            n = size - off;
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
        for (size_t i = 0; i < MAX_ACTIVE; i++) /* credit arriving later */
            if (active[i] != NULL)
                pump(active[i]);
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
