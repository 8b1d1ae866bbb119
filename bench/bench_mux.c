/*
 * tunnelmux — mux throughput bench: two sessions in memory (WebSocket framing, envelope, frames,
 * flow control; the receiver consumes at once). For each direction (server->client request
 * bodies, client->server response bodies with masking), DATA payload size (1 KiB, 64 KiB) and
 * compression (off; on with text-like data), prints MiB/s and DATA frames/s on one core.
 *
 * The "transport" is tests/mux/peer.h's transmit(): it copies each batch's iovecs into one buffer
 * (standing in for the kernel) and feeds it to the receiver in one piece; that copy is timed
 * separately (peer_net.clock) and reported separately. Rates are per CPU second of this process
 * (the machine is shared). Usage: bench_mux [cpu-seconds-per-case]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mux/mux.h"
#include "mux/peer.h"

typedef struct {
    mux_session *s;
    uint64_t got;
} end;

static int on_hello(mux_session *s, const mux_hello_info *h, void *ud)
{
    return mux_session_accept(s, NULL);
}

static int on_head(mux_session *s, uint32_t id, const mux_head *head, void *sud, void *ud)
{
    if (head->status == 0) { /* client: answer at once */
        mux_head r;
        memset(&r, 0, sizeof(r));
        r.status = 200;
        mux_session_respond(s, id, &r);
    }
    return 0;
}

static int on_data(mux_session *s, uint32_t id, const uint8_t *data, size_t len, void *sud, void *ud)
{
    ((end *)ud)->got += len;
    mux_session_consume(s, id, len);
    return 0;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts); /* the machine is shared: CPU time */
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* One batch from |src| into |dst| (whole, 256 iovecs); returns bytes moved. */
static size_t move(peer_net *w, mux_session *src, mux_session *dst)
{
    ssize_t n = transmit(w, src, dst, PEER_WHOLE, 0);
    if (n < 0) {
        fprintf(stderr, "transmit failed: %s\n", mux_session_last_error_reason(dst));
        exit(1);
    }
    return (size_t)n;
}

/* Text-like data: words from a small vocabulary, PRNG-chosen (compresses ~3-4x, not trivially). */
static void make_text(uint8_t *p, size_t n)
{
    static const char *words[] = {"the",     "request", "header",  "value", "tunnel", "stream",  "window", "credit",
                                  "content", "json",    "id",      "name",  "user",   "status",  "ok",     "error",
                                  "data",    "time",    "2026",    "{",     "}",      ":",       ",",      "\"key\"",
                                  "alpha",   "bravo",   "charlie", "delta", "echo",   "foxtrot", "golf",   "hotel"};
    uint64_t x = 88172645463325252ull;
    size_t i = 0;
    while (i < n) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        const char *w = words[x % 32];
        size_t l = strlen(w);
        for (size_t k = 0; k < l && i < n; k++)
            p[i++] = (uint8_t)w[k];
        if (i < n)
            p[i++] = (x >> 40) % 9 == 0 ? '\n' : ' ';
        if (i < n && (x >> 20) % 5 == 0) { /* some numbers: less redundancy */
            int d = snprintf((char *)p + i, n - i, "%u ", (unsigned)(x >> 32) % 100000);
            i += d > 0 && (size_t)d < n - i ? (size_t)d : n - i;
        }
    }
}

static void run(int c2s, size_t payload, int zstd, double secs, const uint8_t *data, size_t datalen)
{
    mux_session_options so, co;
    mux_session_options_default(&so, MUX_ROLE_SERVER);
    mux_session_options_default(&co, MUX_ROLE_CLIENT);
    mux_session_options *o[2] = {&so, &co};
    for (int i = 0; i < 2; i++) {
        o[i]->enable_zstd = zstd;
        o[i]->chunk_size = (uint32_t)payload;
        o[i]->send_message_size = 1 << 20;
        o[i]->max_message_size = 16 << 20;
        o[i]->initial_stream_window = 16 << 20;
        o[i]->initial_conn_window = 64 << 20;
        o[i]->stream_send_buffer = 4 << 20;
        o[i]->zstd_level = 1;
    }
    co.client_id = "bench";
    mux_session_callbacks cb;
    memset(&cb, 0, sizeof(cb));
    cb.on_hello = on_hello;
    cb.on_head = on_head;
    cb.on_data = on_data;
    end srv = {0}, cli = {0};
    if (mux_session_new(&srv.s, &so, &cb, NULL, &srv, 0) != 0 || mux_session_new(&cli.s, &co, &cb, NULL, &cli, 0) != 0)
        abort();
    peer_net w;
    peer_net_init(&w, 1);
    w.iovcnt = 256;
    w.clock = now_s;
    for (int i = 0; i < 4; i++) {
        move(&w, cli.s, srv.s);
        move(&w, srv.s, cli.s);
    }
    mux_head h;
    memset(&h, 0, sizeof(h));
    h.method = (mux_iovec){(uint8_t *)"POST", 4};
    h.path = (mux_iovec){(uint8_t *)"/", 1};
    int32_t id = mux_session_open_stream(srv.s, &h, NULL);
    for (int i = 0; i < 2; i++) {
        move(&w, srv.s, cli.s);
        move(&w, cli.s, srv.s);
    }
    mux_session *tx = c2s ? cli.s : srv.s, *rx = c2s ? srv.s : cli.s;
    end *rxe = c2s ? &srv : &cli;
    size_t off = 0;
    uint64_t wire_bytes = 0;
    w.copy_s = 0;
    double t0 = now_s();
    double t1 = t0;
    uint64_t iters = 0;
    while (t1 - t0 < secs) {
        for (;;) {
            if (off + payload > datalen)
                off = 0;
            ssize_t n = mux_session_write(tx, (uint32_t)id, data + off, payload);
            if (n <= 0)
                break;
            off = (off + (size_t)n) % datalen;
        }
        wire_bytes += move(&w, tx, rx);
        move(&w, rx, tx); /* WINDOWs back */
        if ((++iters & 15) == 0)
            t1 = now_s();
    }
    t1 = now_s();
    mux_session_stats st;
    mux_session_get_stats(tx, &st);
    double el = t1 - t0;
    double mib = (double)rxe->got / (1 << 20);
    printf("| %-14s | %6zu KiB | %-4s | %9.0f | %11.0f | %5.2f | %8.0f |\n", c2s ? "client->server" : "server->client",
           payload / 1024, zstd ? "on" : "off", mib / (el - w.copy_s), (double)st.frames_out / (el - w.copy_s),
           (double)wire_bytes / (double)rxe->got, mib / el);
    mux_session_del(srv.s);
    mux_session_del(cli.s);
    peer_net_free(&w);
}

int main(int argc, char **argv)
{
    double secs = argc > 1 ? atof(argv[1]) : 1.0;
    if (secs <= 0 || secs > 30)
        secs = 1.0;
    size_t datalen = 8 << 20;
    uint8_t *data = malloc(datalen);
    if (data == NULL)
        return 1;
    make_text(data, datalen);
    printf("| direction      | payload    | zstd | MiB/s mux | frames/s | wire/payload | MiB/s incl. transport copy |\n");
    printf("|---|---|---|---|---|---|---|\n");
    for (int c2s = 0; c2s < 2; c2s++)
        for (int z = 0; z < 2; z++)
            for (int p = 0; p < 2; p++)
                run(c2s, p ? 64 * 1024 : 1024, z, secs, data, datalen);
    free(data);
    return 0;
}
