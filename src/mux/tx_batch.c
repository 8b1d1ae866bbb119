/*
 * tunnelmux — the send side of the session: mux_session_send builds a batch of WebSocket messages
 * from the control queue and from DATA taken from the scheduler's lists (sched.c), as a plan of
 * iovecs pointing into a scratch buffer (WebSocket header, envelope byte, records, DATA prefixes)
 * and into the streams' chunks (payload, zero-copy); compressed when compress_policy.h says so;
 * the client masks those bytes in place. mux_session_send_done releases the chunks and fires
 * on_writable.
 */
#include <stdint.h>
#include <string.h>

#include "entropy.h"
#include "mem.h"
#include "ctrl_queue.h"
#include "mux_internal.h"

static int plan_push(mux_session *s, uint8_t *ptr, size_t off, size_t len)
{
    if (s->nplan == s->plancap) {
        size_t n = s->plancap == 0 ? 64 : s->plancap * 2;
        plan_ent *p = mux_mem_realloc(s->mem, s->plan, n * sizeof(*p));
        if (p == NULL)
            return MUX_ERR_NOMEM;
        s->plan = p;
        s->plancap = n;
    }
    s->plan[s->nplan].ptr = ptr;
    s->plan[s->nplan].off = off;
    s->plan[s->nplan].len = len;
    s->nplan++;
    return 0;
}

static int touch(mux_session *s, mux_stream *st)
{
    if (st->flags & MUX_SF_TOUCHED)
        return 0;
    if (s->ntouched == s->touchedcap) {
        size_t n = s->touchedcap == 0 ? 64 : s->touchedcap * 2;
        uint32_t *p = mux_mem_realloc(s->mem, s->touched, n * sizeof(*p));
        if (p == NULL)
            return MUX_ERR_NOMEM;
        s->touched = p;
        s->touchedcap = n;
    }
    s->touched[s->ntouched++] = st->id;
    st->flags |= MUX_SF_TOUCHED;
    return 0;
}

/* Closes the open scratch segment [*seg, scratch.len) into the plan. */
static int close_segment(mux_session *s, size_t *seg)
{
    int rv = 0;
    if (s->scratch.len > *seg)
        rv = plan_push(s, NULL, *seg, s->scratch.len - *seg);
    *seg = s->scratch.len;
    return rv;
}

/*
 * Builds one message into the plan: [ws header + envelope byte + control records + DATA prefixes]
 * in scratch, DATA payload pointing into the stream chunks (uncompressed), or the zstd output of
 * all of it (compressed). Uses at most |iov_room| plan entries. Returns 1 when a message was
 * built, 0 when there was nothing to send, or a negative fatal error. Adds its size to |*bytes|.
 */
static int build_message(mux_session *s, size_t iov_room, size_t *bytes)
{
    int has_ctrl = mux_buf_size(&s->ctrl) > 0;
    if (!has_ctrl && !mux_can_send_data(s))
        return 0;
    if (iov_room < 3)
        return 0;
    size_t limit = msg_limit(s);
    int compress = 0;
    if (s->ctrl_plain == 0 && compression_on(s) && s->opt.enable_zstd && !s->dead) {
        compress = 1;
        mux_stream *h = mux_next_sender(s);
        if (h != NULL && mux_can_send_data(s)) {
            /* a message led by DATA of a stream that did not compress lately goes plain, its
             * control records with it (they are small; compressing them would drag the DATA
             * through zstd) */
            if (mux_compress_before(&h->compress) == MUX_COMPRESS_SKIP) {
                compress = 0;
            } else {
                /* a new stream, or a re-try: a flat byte histogram means zstd would only burn
                 * CPU (random, encrypted, already compressed); counts as a failed try */
                uint8_t *peek;
                size_t n = mux_txq_peek(&h->txq, &peek, SIZE_MAX);
                compress = mux_compress_after_look(&h->compress, mux_looks_incompressible(peek, n));
            }
        }
        if (compress)
            limit = mux_compress_limit(limit); /* room for zstd's worst-case expansion */
    }
    size_t first = s->nplan;
    size_t start = s->scratch.len;
    if (mux_buf_reserve(&s->scratch, MUX_WS_MAX_HEADER + 1 + MUX_DATA_PREFIX_MAX, 0, s->mem) != 0)
        return perr(s, MUX_ERR_INTERNAL, "out of memory building a message");
    s->scratch.len += MUX_WS_MAX_HEADER + 1;    /* header (right-aligned later) + envelope byte */
    size_t seg = start + MUX_WS_MAX_HEADER - 0; /* first segment starts at the envelope byte (header added later) */
    mux_buf *out = compress ? &s->zin : &s->scratch;
    if (compress)
        mux_buf_reset(&s->zin);
    size_t body = 1;
    uint32_t msg_ids[16];
    size_t nmsg_ids = 0;

    /* control records first (PROTOCOL.md §6.4) */
    while (mux_buf_size(&s->ctrl) > 0) {
        const char *why;
        ssize_t rl = mux_envelope_record(s->ctrl.base + s->ctrl.pos, mux_buf_size(&s->ctrl), &why);
        if (rl < 0)
            return perr(s, MUX_ERR_INTERNAL, "corrupt control queue");
        if (body + (size_t)rl > limit && body > 1)
            break;
        if (mux_buf_append(out, s->ctrl.base + s->ctrl.pos, (size_t)rl, 0, s->mem) != 0)
            return perr(s, MUX_ERR_INTERNAL, "out of memory building a message");
        s->ctrl.pos += (size_t)rl;
        s->ctrl_plain = s->ctrl_plain > (size_t)rl ? s->ctrl_plain - (size_t)rl : 0;
        body += (size_t)rl;
        s->stats.frames_out++;
    }
    if (mux_buf_size(&s->ctrl) == 0) {
        mux_buf_reset(&s->ctrl);
        mux_buf_shrink(&s->ctrl, 64 * 1024, s->mem);
    }

    /* DATA round-robin within credit (PROTOCOL.md §6.4) */
    while (mux_can_send_data(s) && mux_buf_size(&s->ctrl) == 0) {
        if (!compress && s->nplan - first + 3 > iov_room)
            break;
        if (body + MUX_DATA_PREFIX_MAX + 1 > limit)
            break;
        mux_stream *st = mux_next_sender(s);
        size_t max = limit - body - MUX_DATA_PREFIX_MAX;
        if (max > s->opt.chunk_size)
            max = s->opt.chunk_size;
        if ((int64_t)max > st->tx_credit)
            max = st->tx_credit > 0 ? (size_t)st->tx_credit : 0;
        if ((int64_t)max > s->conn_tx_credit)
            max = s->conn_tx_credit > 0 ? (size_t)s->conn_tx_credit : 0;
        uint8_t *p = NULL;
        size_t n = st->txq.queued > 0 ? mux_txq_peek(&st->txq, &p, max) : 0;
        int fin = (st->flags & MUX_SF_FIN_QUEUED) && n == st->txq.queued;
        if (n == 0 && !fin) {
            mux_unschedule(s, st);
            mux_schedule(s, st);                                                      /* to a blocked list */
            if (st->list == MUX_LIST_SEND || st->list == MUX_LIST_SEND_INTERACTIVE) { /* cannot happen; avoid spinning */
                mux_unschedule(s, st);
                break;
            }
            continue;
        }
        if (mux_buf_reserve(out, MUX_DATA_PREFIX_MAX + (compress ? n : 0), 0, s->mem) != 0 || touch(s, st) != 0)
            return perr(s, MUX_ERR_INTERNAL, "out of memory building a message");
        size_t pl = mux_frame_data_prefix(out->base + out->len, st->id, fin, n);
        out->len += pl;
        if (compress) {
            if (n != 0)
                memcpy(out->base + out->len, p, n);
            out->len += n;
            if (nmsg_ids < sizeof(msg_ids) / sizeof(msg_ids[0]))
                msg_ids[nmsg_ids++] = st->id;
        } else if (n != 0) {
            if (close_segment(s, &seg) != 0 || plan_push(s, p, 0, n) != 0)
                return perr(s, MUX_ERR_INTERNAL, "out of memory building a message");
        }
        mux_txq_take(&st->txq, n);
        /* a drained queue ends the burst: the stream's next write is interactive again */
        st->burst_sent = st->txq.queued == 0 ? 0 : st->burst_sent + n;
        st->bytes_sent += n;
        st->tx_credit -= (int64_t)n;
        s->conn_tx_credit -= (int64_t)n;
        s->stats.data_bytes_out += n;
        if (n != 0)
            s->last_data_ms = s->now;
        s->stats.frames_out++;
        body += pl + n;
        mux_unschedule(s, st);
        if (fin) {
            st->flags &= ~MUX_SF_FIN_QUEUED;
            mux_stream_local_end(s, st); /* may free |st| (its chunks go to the grave) */
        } else {
            mux_schedule(s, st); /* back at the tail: round-robin */
        }
    }

    if (body == 1 && !has_ctrl) { /* nothing after all: roll back */
        s->scratch.len = start;
        s->nplan = first;
        return 0;
    }

    if (compress && mux_compress_too_small(body - 1)) {
        /* small (control-only, a short head): plain, so it never touches the zstd contexts */
        if (mux_buf_append(&s->scratch, s->zin.base, s->zin.len, 0, s->mem) != 0)
            return perr(s, MUX_ERR_INTERNAL, "out of memory building a message");
        compress = 0;
        nmsg_ids = 0;
    }
    int reset = 0;
    size_t paylen;
    if (compress) {
        s->zend_pending = 0; /* busy again: the frame continues */
        if (s->ztx == NULL && mux_zstd_tx_new(&s->ztx, s->opt.zstd_level, s->opt.zstd_window_log, s->mem) != 0)
            return perr(s, MUX_ERR_INTERNAL, "cannot create the compressor");
        mux_iovec v = {s->zin.base, s->zin.len};
        size_t before = s->scratch.len;
        if (mux_zstd_tx_compress(s->ztx, &v, 1, &s->scratch, &reset, s->mem) != 0)
            return perr(s, MUX_ERR_INTERNAL, "compression failed");
        size_t clen = s->scratch.len - before;
        /* remember which streams do not compress (PROTOCOL.md §3.2: measure, skip) */
        int bad = mux_compress_did_not_pay(clen, body - 1);
        for (size_t i = 0; i < nmsg_ids; i++) {
            mux_stream *st = mux_stream_table_find(&s->streams, msg_ids[i]);
            if (st != NULL)
                mux_compress_note(&st->compress, bad);
        }
        paylen = 1 + clen;
        mux_buf_shrink(&s->zin, 1u << 20, s->mem);
    } else {
        paylen = body;
    }
    if (close_segment(s, &seg) != 0)
        return perr(s, MUX_ERR_INTERNAL, "out of memory building a message");

    /* WebSocket header right-aligned before the envelope byte */
    uint8_t key[4], hdr[MUX_WS_MAX_HEADER];
    int client = !is_server(s);
    if (client && mux_ws_keygen_next(&s->keygen, key) != 0)
        return perr(s, MUX_ERR_INTERNAL, "CSPRNG failure");
    size_t hl = mux_ws_frame_header(hdr, MUX_WS_OP_BINARY, 1, paylen, client ? key : NULL);
    size_t hoff = start + MUX_WS_MAX_HEADER - hl;
    memcpy(s->scratch.base + hoff, hdr, hl);
    s->scratch.base[start + MUX_WS_MAX_HEADER] = mux_envelope_byte(compress, reset);
    s->plan[first].off = hoff;
    s->plan[first].len += hl;
    if (client) { /* mask in place: scratch bytes and the payload in the chunks (we own both) */
        uint64_t moff = 0;
        for (size_t i = first; i < s->nplan; i++) {
            plan_ent *e = &s->plan[i];
            uint8_t *b = e->ptr != NULL ? e->ptr : s->scratch.base + e->off;
            size_t l = e->len;
            if (i == first) {
                b += hl;
                l -= hl;
            }
            mux_ws_mask(b, l, key, moff);
            moff += l;
        }
    }
    if (compress)
        s->last_compress_ms = s->now;
    s->stats.messages_out++;
    *bytes += hl + paylen;
    return 1;
}

/*
 * PROTOCOL.md §3.2: ends the idle compressor's zstd frame in a message of its own (envelope C,
 * no R, ~3 bytes of zstd that decompress to nothing) and frees the context; the receiver frees its
 * decompressor when it sees the frame end. Returns 1 (message built), 0 (nothing to end) or < 0.
 */
static int build_frame_end(mux_session *s, size_t *bytes)
{
    s->zend_pending = 0;
    if (!mux_zstd_tx_live(s->ztx))
        return 0;
    size_t first = s->nplan;
    size_t start = s->scratch.len;
    if (mux_buf_reserve(&s->scratch, MUX_WS_MAX_HEADER + 1, 0, s->mem) != 0)
        return perr(s, MUX_ERR_INTERNAL, "out of memory building a message");
    s->scratch.len += MUX_WS_MAX_HEADER + 1;
    size_t before = s->scratch.len;
    if (mux_zstd_tx_end(s->ztx, &s->scratch, s->mem) != 0 || s->scratch.len == before) {
        /* the context is gone either way; the next compressed message carries R */
        s->scratch.len = start;
        return 0;
    }
    size_t paylen = 1 + (s->scratch.len - before);
    uint8_t key[4], hdr[MUX_WS_MAX_HEADER];
    int client = !is_server(s);
    if (client && mux_ws_keygen_next(&s->keygen, key) != 0)
        return perr(s, MUX_ERR_INTERNAL, "CSPRNG failure");
    size_t hl = mux_ws_frame_header(hdr, MUX_WS_OP_BINARY, 1, paylen, client ? key : NULL);
    size_t hoff = start + MUX_WS_MAX_HEADER - hl;
    memcpy(s->scratch.base + hoff, hdr, hl);
    s->scratch.base[start + MUX_WS_MAX_HEADER] = mux_envelope_byte(1, 0);
    if (client)
        mux_ws_mask(s->scratch.base + hoff + hl, paylen, key, 0);
    if (plan_push(s, NULL, hoff, hl + paylen) != 0) {
        s->nplan = first;
        return perr(s, MUX_ERR_INTERNAL, "out of memory building a message");
    }
    mux_buf_reset(&s->zin);
    mux_buf_shrink(&s->zin, 0, s->mem);
    s->stats.messages_out++;
    *bytes += hl + paylen;
    return 1;
}

/* Produces the next batch; see mux.h. */
ssize_t mux_session_send(mux_session *s, mux_iovec *iov, size_t iovcnt, int64_t now_ms)
{
    if (s == NULL || iov == NULL || iovcnt < 8)
        return MUX_ERR_INVALID_ARGUMENT;
    s->now = now_ms;
    if (s->batch_out || s->close_state >= CLOSE_IN_BATCH)
        return 0;
    if (!s->dead && (s->goaway_sent || s->goaway_recv) && s->active == 0 && s->hs == HS_ESTABLISHED)
        mux_queue_ws_close(s, 1000); /* drained (PROTOCOL.md §8) */
    if (s->hs == HS_REFUSED && !s->dead && is_server(s))
        mux_queue_ws_close(s, 1000);
    mux_buf_reset(&s->scratch);
    s->nplan = 0;
    s->batch_out = 1; /* from here on, chunks of streams freed while building go to the grave */
    size_t bytes = 0;
    size_t batch_limit = s->opt.send_batch_size; /* the first message is always built */
    if (mux_buf_size(&s->wsctrl) > 0) {
        if (mux_buf_append(&s->scratch, s->wsctrl.base + s->wsctrl.pos, mux_buf_size(&s->wsctrl), 0, s->mem) != 0 ||
            plan_push(s, NULL, 0, s->scratch.len) != 0) {
            s->batch_out = 0;
            return mux_die(s, perr(s, MUX_ERR_INTERNAL, "out of memory"), 0);
        }
        bytes += s->scratch.len;
        mux_buf_reset(&s->wsctrl);
    }
    while (s->nplan + 4 <= iovcnt && bytes < batch_limit) {
        int rv = s->zend_pending && !s->dead ? build_frame_end(s, &bytes) : 0;
        if (rv >= 0)
            rv = build_message(s, iovcnt - s->nplan - 1, &bytes);
        if (rv < 0) {
            /* the batch may be half built: drop it and fail */
            s->nplan = 0;
            mux_buf_reset(&s->scratch);
            rv = mux_die(s, rv, 0);
            s->batch_out = 0;
            mux_chunks_free(s->grave, &s->pool, s->mem);
            s->grave = NULL;
            return rv;
        }
        if (rv == 0)
            break;
    }
    if (s->close_state == CLOSE_QUEUED && mux_buf_size(&s->ctrl) == 0 && s->nplan + 1 <= iovcnt) {
        uint8_t payload[2] = {(uint8_t)(s->close_code >> 8), (uint8_t)s->close_code};
        uint8_t key[4], hdr[MUX_WS_MAX_HEADER];
        int client = !is_server(s);
        if (!client || mux_ws_keygen_next(&s->keygen, key) == 0) {
            size_t hl = mux_ws_frame_header(hdr, MUX_WS_OP_CLOSE, 1, 2, client ? key : NULL);
            if (client)
                mux_ws_mask(payload, 2, key, 0);
            size_t at = s->scratch.len;
            if (mux_buf_append(&s->scratch, hdr, hl, 0, s->mem) == 0 && mux_buf_append(&s->scratch, payload, 2, 0, s->mem) == 0 &&
                plan_push(s, NULL, at, hl + 2) == 0) {
                s->close_state = CLOSE_IN_BATCH;
                bytes += hl + 2;
            }
        }
    }
    if (s->nplan == 0) {
        s->batch_out = 0;
        mux_chunks_free(s->grave, &s->pool, s->mem);
        s->grave = NULL;
        return 0;
    }
    for (size_t i = 0; i < s->nplan; i++) {
        iov[i].base = s->plan[i].ptr != NULL ? s->plan[i].ptr : s->scratch.base + s->plan[i].off;
        iov[i].len = s->plan[i].len;
    }
    s->stats.bytes_out += bytes;
    return (ssize_t)s->nplan;
}

/* The outstanding batch was written: release chunks, fire on_writable. */
void mux_session_send_done(mux_session *s, int64_t now_ms)
{
    if (s == NULL || !s->batch_out)
        return;
    s->now = now_ms;
    s->batch_out = 0;
    if (s->close_state == CLOSE_IN_BATCH)
        s->close_state = CLOSE_SENT;
    mux_chunks_free(s->grave, &s->pool, s->mem);
    s->grave = NULL;
    if (s->nwakecap < s->ntouched) {
        uint32_t *p = mux_mem_realloc(s->mem, s->wake, s->ntouched * sizeof(*p));
        if (p != NULL) {
            s->wake = p;
            s->nwakecap = s->ntouched;
        }
    }
    int can_wake = !s->in_wake && s->cb.on_writable != NULL && s->nwakecap >= s->ntouched;
    size_t nwake = 0;
    for (size_t i = 0; i < s->ntouched; i++) {
        mux_stream *st = mux_stream_table_find(&s->streams, s->touched[i]);
        if (st == NULL)
            continue;
        st->flags &= ~MUX_SF_TOUCHED;
        mux_txq_release(&st->txq, &s->pool, s->mem);
        if (can_wake && (st->flags & MUX_SF_WANT_WRITABLE) && st->txq.held < s->opt.stream_send_buffer / 2) {
            st->flags &= ~MUX_SF_WANT_WRITABLE;
            s->wake[nwake++] = st->id;
        }
    }
    s->ntouched = 0;
    /* callbacks may build and even complete new batches: a nested send_done fires nothing */
    s->in_wake = 1;
    for (size_t i = 0; i < nwake && !s->dead; i++) {
        mux_stream *st = mux_stream_table_find(&s->streams, s->wake[i]);
        if (st != NULL)
            s->cb.on_writable(s, s->wake[i], st->user_data, s->ud);
    }
    s->in_wake = 0;
}
