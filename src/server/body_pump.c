/*
 * tunnelmux server — the request body pump (see proxy_stream.h): where a public request's body
 * meets the tunnel. h2o's in-memory (or spooled) entity, or a body streamed from the connection
 * (upload.c for HTTP/1.1, h2_body.c for HTTP/2), goes out with mux_session_write as credit allows.
 * Moved out of proxy.c (issue 17 §3); the upcoming HTTP/2 upload streaming lives here.
 */
#include "server/proxy_stream.h"

#include <sys/mman.h>
#include <unistd.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/log.h"
#include "server/metrics.h"
#include "server/access_log.h"

/* Restarts the response-head deadline. */
static void rearm_head_timeout(proxy_stream *ps)
{
    if (h2o_timeout_is_linked(&ps->head_timeout))
        h2o_timeout_unlink(&ps->head_timeout);
    h2o_timeout_link(ps->srv->ctx.loop, &ps->srv->read_timeout, &ps->head_timeout);
}

/*
 * Gives the pages of the request body that were already copied into the mux session back to the
 * kernel. h2o 2.2.5 holds the whole body before the handler runs; above 32 MiB it lives in an
 * mmapped, unlinked temp file (h2o_socket_buffer_mmap_settings), so its pages are file pages
 * charged to us until the request ends. MADV_REMOVE punches a hole in that file (RSS and page cache
 * both drop); where it is refused (private memory, or a file system without hole punching)
 * MADV_DONTNEED at least drops the pages from our RSS. Only whole pages inside [entity, entity +
 * |upto|) are touched: those bytes were copied by mux_session_write and are never read again (the
 * head of a pipelined h1 request after the body is on a later, partial page, left alone).
 */
static void release_body_pages(proxy_stream *ps, size_t upto, int final)
{
    if (upto < ps->released_off + (final ? 1 : BODY_RELEASE_STEP))
        return;
    long psz = sysconf(_SC_PAGESIZE);
    uintptr_t page = psz > 0 ? (uintptr_t)psz : 4096;
    uintptr_t base = (uintptr_t)ps->req->entity.base;
    uintptr_t from = (base + ps->released_off + page - 1) & ~(page - 1);
    uintptr_t to = (base + upto) & ~(page - 1);
    if (to > from) {
        if (madvise((void *)from, to - from, MADV_REMOVE) != 0)
            (void)madvise((void *)from, to - from, MADV_DONTNEED);
    }
    ps->released_off = upto;
}

static void body_write_failed(proxy_stream *ps, ssize_t w)
{
    LOG_WARN(LOG_EV_STREAM, "stream %u (%s): body write failed: %s", ps->id, ps->name, mux_strerror((int)w));
    proxy_link_reset(ps, MUX_CODE_INTERNAL_ERROR, "body write failed");
    if (!response_started(ps))
        response_fail_before_head(ps, MUX_CODE_INTERNAL_ERROR, "");
    else
        response_abort(ps);
}

/* body_pump_run for a streamed body: forwards what the connection delivered, pauses it when the
 * stream takes no more (credit), ends the stream after the last byte. */
static void pump_streamed_body(proxy_stream *ps, tunnel *t)
{
    size_t start = ps->body_off;
    const uint8_t *p;
    size_t n;
    while ((n = ps->ub != NULL ? upload_body_peek(ps->ub, &p) : h2_body_peek(ps->hb, &p)) > 0) {
        ssize_t w = mux_session_write(tunnel_session(t), ps->id, p, n < BODY_SLICE ? n : BODY_SLICE);
        if (w == MUX_ERR_AGAIN) {
            /* backpressure: h1 to the client's TCP window, h2 to its stream window; on_writable resumes */
            if (ps->ub != NULL)
                upload_body_want(ps->ub, 0);
            break;
        }
        if (w < 0) {
            body_write_failed(ps, w);
            return;
        }
        if (ps->ub != NULL) {
            if (ps->body_chunked)
                ratelimit_charge(tunnel_rate_bytes(t), (double)w, server_now(ps->srv));
            upload_body_consume(ps->ub, (size_t)w);
        } else {
            ratelimit_charge(tunnel_rate_bytes(t), (double)w, server_now(ps->srv));
            h2_body_consume(ps->hb, (size_t)w); /* the user's HTTP/2 window for these bytes */
        }
        ps->body_off += (size_t)w;
    }
    if (ps->ub != NULL ? upload_body_done(ps->ub) : h2_body_done(ps->hb)) {
        ps->body_done = 1; /* the body object lives on until on_dispose (h1: it drains what follows the body) */
        if (ps->hb != NULL)
            access_log_note_body(ps->req, h2_body_received(ps->hb));
        else if (ps->body_chunked || ps->expect_relay)
            access_log_note_body(ps->req, ps->body_off);
        mux_session_end_stream(tunnel_session(t), ps->id);
    } else if (n > 0) {
        /* paused above */
    } else if (ps->ub != NULL) {
        upload_body_want(ps->ub, 1);
    }
    if (!response_started(ps) && ps->body_off != start)
        rearm_head_timeout(ps); /* READ_TIMEOUT counts from the last body progress */
}

/* Writes request body bytes while the stream accepts them; ends the stream after the last. */
void body_pump_run(proxy_stream *ps)
{
    tunnel *t = ps->tunnel;
    if (t == NULL || ps->id == 0 || !ps->has_body || ps->body_done)
        return;
    if (ps->ub != NULL || ps->hb != NULL) {
        pump_streamed_body(ps, t);
        return;
    }
    const uint8_t *base = (const uint8_t *)ps->req->entity.base;
    size_t len = ps->req->entity.len;
    size_t start = ps->body_off;
    while (ps->body_off < len) {
        /* window-sized slices: never touch the whole (possibly mmapped) body at once */
        size_t n = len - ps->body_off < BODY_SLICE ? len - ps->body_off : BODY_SLICE;
        ssize_t w = mux_session_write(tunnel_session(t), ps->id, base + ps->body_off, n);
        if (w == MUX_ERR_AGAIN) {
            if (len >= BODY_RELEASE_STEP)
                release_body_pages(ps, ps->body_off, 0);
            if (ps->body_off != start && !response_started(ps))
                rearm_head_timeout(ps); /* READ_TIMEOUT counts from the last body progress */
            return;                     /* on_writable resumes */
        }
        if (w < 0) {
            body_write_failed(ps, w);
            return;
        }
        ps->body_off += (size_t)w;
    }
    ps->body_done = 1;
    if (len >= BODY_RELEASE_STEP)
        release_body_pages(ps, len, 1);
    mux_session_end_stream(tunnel_session(t), ps->id);
    if (!response_started(ps) && ps->body_off != start)
        rearm_head_timeout(ps);
}

/* The streamed request body delivered bytes, or stopped short (upload_body_cb). */
void body_pump_on_event(void *data, const char *err)
{
    proxy_stream *ps = data;
    if (err != NULL) {
        LOG_INFO(LOG_EV_STREAM, "stream %u (%s): %s", ps->id, ps->name, err);
        int status = ps->hb != NULL ? h2_body_error_status(ps->hb) : ps->ub != NULL ? upload_body_error_status(ps->ub) : 400;
        upload_body_free(ps->ub);
        ps->ub = NULL;
        tunnel *t = proxy_link_reset(ps, MUX_CODE_CANCEL, err);
        if (t != NULL)
            tunnel_flush(t);
        if (ps->stopped || response_final_sent(ps))
            return;
        if (!response_started(ps)) {
            response_set_state(ps, PROXY_RESP_FINAL_SENT);
            if (status == 413)
                response_send_text(ps->req, 413, "Payload Too Large", "tunnelmux: %s\n", err);
            else
                response_send_text(ps->req, 400, "Bad Request", "tunnelmux: %s\n", err);
        } else {
            response_abort(ps);
        }
        return;
    }
    tunnel *t = ps->tunnel;
    body_pump_run(ps);
    if (t != NULL)
        tunnel_flush(t);
}
