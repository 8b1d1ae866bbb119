/*
 * tunnelmux — the receive side below the frame handlers: WebSocket pieces from the decoder become
 * messages (in place when a whole frame is in the input; an uncompressed message arriving in pieces
 * is processed record by record where the records lie; anything else reassembled whole), the
 * envelope header byte is checked, zstd undone, and each record decoded and handed to the frame
 * handlers (session.c). mux_session_recv, the entry point, is here; WebSocket control frames
 * (PING, PONG, CLOSE) are answered here, and after the session stopped, the lingering close looks
 * only for the peer's close frame.
 */
#include <string.h>

#include "ctrl_queue.h"
#include "mux_internal.h"

static int process_body(mux_session *s, const uint8_t *body, size_t len)
{
    size_t off = 0;
    while (off < len) {
        const char *why = NULL;
        ssize_t rl = mux_envelope_record(body + off, len - off, &why);
        if (rl < 0)
            return perr(s, (int)rl, why);
        mux_frame f;
        memset(&f, 0, sizeof(f));
        ssize_t n = mux_frame_decode(body + off, (size_t)rl, &f, s->opt.max_header_count, s->opt.max_header_bytes, s->mem, &why);
        int rv;
        if (n == MUX_ERR_HEADER_LIMIT) {
            s->stats.frames_in++;
            if (s->hs != HS_ESTABLISHED)
                rv = perr(s, MUX_ERR_HANDSHAKE, "head before the handshake");
            else if (f.stream_id == 0)
                rv = perr(s, MUX_ERR_FRAME_DECODE, "head over limits without a stream id");
            else
                rv = is_server(s) ? mux_on_response(s, &f, 1) : mux_on_request(s, &f, 1);
        } else if (n < 0) {
            rv = perr(s, (int)n, why != NULL ? why : "undecodable frame");
        } else if (n != rl) {
            rv = perr(s, MUX_ERR_FRAME_DECODE, "frame length mismatch");
        } else {
            rv = mux_on_frame(s, &f);
        }
        mux_frame_clear(&f, s->mem);
        if (rv != 0)
            return rv;
        if (s->dead || s->hs == HS_REFUSED)
            break;
        off += (size_t)rl;
    }
    return 0;
}

/* One complete WebSocket data message (|msg| may be modified). */
static int process_message(mux_session *s, uint8_t *msg, size_t len)
{
    s->stats.messages_in++;
    s->rx_hello_msg = 0;
    if (len == 0)
        return perr(s, MUX_ERR_PROTO, "empty message (no envelope header)");
    int compressed, reset;
    const char *why = NULL;
    int rv = mux_envelope_parse(msg[0], &compressed, &reset, &why);
    if (rv != 0)
        return perr(s, rv, why);
    if (!compressed)
        return process_body(s, msg + 1, len - 1);
    if (!compression_on(s))
        return perr(s, MUX_ERR_DECOMPRESS, "compressed message but compression was not negotiated");
    if (s->zrx == NULL && (rv = mux_zstd_rx_new(&s->zrx, RX_ZSTD_WINDOW_LOG_MAX, s->mem)) != 0)
        return perr(s, MUX_ERR_INTERNAL, "cannot create the decompressor");
    mux_buf_reset(&s->dbuf);
    rv = mux_zstd_rx_decompress(s->zrx, msg + 1, len - 1, reset, &s->dbuf, s->opt.max_message_size, s->mem);
    if (rv != 0) {
        if (rv == MUX_ERR_DECOMPRESS_LIMIT)
            return perr(s, rv, "message decompresses beyond max_message_size");
        if (rv == MUX_ERR_NOMEM)
            return perr(s, MUX_ERR_INTERNAL, "out of memory decompressing");
        if (mux_zstd_rx_window_too_large(s->zrx))
            return perr(s, rv, "zstd window too large: window log above 20 (PROTOCOL.md §3.2: set the window log explicitly)");
        return perr(s, rv, "corrupt compressed message");
    }
    rv = mux_buf_size(&s->dbuf) != 0 ? process_body(s, s->dbuf.base + s->dbuf.pos, mux_buf_size(&s->dbuf)) : 0;
    mux_buf_reset(&s->dbuf);
    /* the sender ended its frame (idle, PROTOCOL.md §3.2): the decompressor is gone, so is its buffer */
    mux_buf_shrink(&s->dbuf, mux_zstd_rx_live(s->zrx) ? 1u << 20 : 0, s->mem);
    return rv;
}

static int ws_send_control(mux_session *s, unsigned op, const uint8_t *p, size_t n)
{
    uint8_t key[4], hdr[MUX_WS_MAX_HEADER];
    int client = !is_server(s);
    if (client && mux_ws_keygen_next(&s->keygen, key) != 0)
        return perr(s, MUX_ERR_INTERNAL, "CSPRNG failure");
    size_t hl = mux_ws_frame_header(hdr, op, 1, n, client ? key : NULL);
    size_t at = s->wsctrl.len;
    if (mux_buf_append(&s->wsctrl, hdr, hl, 0, s->mem) != 0 || mux_buf_append(&s->wsctrl, p, n, 0, s->mem) != 0) {
        s->wsctrl.len = at;
        return 0; /* a lost PONG is harmless */
    }
    if (client)
        mux_ws_mask(s->wsctrl.base + at + hl, n, key, 0);
    return 0;
}

static int on_ws_control(mux_session *s, unsigned op)
{
    switch (op) {
    case MUX_WS_OP_PING:
        if (mux_buf_size(&s->wsctrl) < 64 * 1024)
            return ws_send_control(s, MUX_WS_OP_PONG, s->ctl, s->ctllen);
        return 0;
    case MUX_WS_OP_PONG:
        return 0;
    case MUX_WS_OP_CLOSE: {
        uint16_t code = 1000;
        if (s->ctllen >= 2)
            code = (uint16_t)(s->ctl[0] << 8 | s->ctl[1]);
        if (code == 1005 || code == 1006 || code == 1015 || code < 1000)
            code = 1000;
        mux_queue_ws_close(s, code);
        s->peer_closed = 1;
        s->reason = "the peer closed the WebSocket";
        return MUX_ERR_WS_CLOSED;
    }
    }
    return perr(s, MUX_ERR_WS_PROTOCOL, "unexpected control opcode");
}

/* Length of the record starting at |p| (|len| bytes there): > 0 once its length prefix is complete,
 * 0 while the prefix itself is cut, < 0 on an error. */
static ssize_t record_need(mux_session *s, const uint8_t *p, size_t len)
{
    uint64_t rlen;
    int n = mux_varint_get(p, len, &rlen);
    if (n == 0)
        return 0;
    if (n < 0)
        return perr(s, MUX_ERR_VARINT, "over-long record length varint");
    if (rlen == 0)
        return perr(s, MUX_ERR_FRAME_DECODE, "empty record");
    if (rlen > s->opt.max_message_size)
        return perr(s, MUX_ERR_FRAME_TOO_LARGE, "record runs past the end of the message");
    return (ssize_t)((uint64_t)n + rlen);
}

/*
 * The next |n| body bytes of an uncompressed message arriving in pieces (RXM_RECORDS). Every
 * record wholly inside them is processed where it lies, so DATA reaches on_data as a pointer into
 * the caller's input as it does for a message inside one input; only a record cut by the end of
 * the input is copied (into rxmsg) until its rest arrives. Records are processed in order, as
 * process_body does; a REFUSE or a fatal error ignores the rest of the message.
 */
static int stream_records(mux_session *s, const uint8_t *p, size_t n)
{
    while (n > 0 && s->rx_mode == RXM_RECORDS) {
        if (s->dead || s->hs == HS_REFUSED) {
            s->rx_mode = RXM_SKIP;
            break;
        }
        size_t have = mux_buf_size(&s->rxmsg);
        if (have > 0) { /* complete the record carried from the previous input */
            ssize_t need = record_need(s, s->rxmsg.base + s->rxmsg.pos, have);
            if (need < 0)
                return (int)need;
            size_t take = need == 0 ? 1 : (size_t)need - have; /* a cut prefix grows a byte at a time */
            if (take > n)
                take = n;
            if (mux_buf_append(&s->rxmsg, p, take, 0, s->mem) != 0)
                return perr(s, MUX_ERR_INTERNAL, "out of memory reassembling a record");
            p += take;
            n -= take;
            if (need > 0 && have + take == (size_t)need) {
                int rv = process_body(s, s->rxmsg.base + s->rxmsg.pos, (size_t)need);
                mux_buf_reset(&s->rxmsg);
                if (rv != 0)
                    return rv;
            }
            continue;
        }
        ssize_t need = record_need(s, p, n);
        if (need < 0)
            return (int)need;
        if (need == 0 || (size_t)need > n) { /* cut by the end of the input: carry it */
            if (mux_buf_append(&s->rxmsg, p, n, 0, s->mem) != 0)
                return perr(s, MUX_ERR_INTERNAL, "out of memory reassembling a record");
            break;
        }
        int rv = process_body(s, p, (size_t)need);
        if (rv != 0)
            return rv;
        p += need;
        n -= (size_t)need;
    }
    return 0;
}

/* The end of a message taken in pieces. */
static int end_pieced_message(mux_session *s)
{
    int rv = 0;
    size_t n = mux_buf_size(&s->rxmsg);
    s->rx_in_msg = 0;
    if (s->rx_mode == RXM_RECORDS) {
        if (n != 0 && !s->dead && s->hs != HS_REFUSED)
            rv = record_need(s, s->rxmsg.base + s->rxmsg.pos, n) == 0
                     ? perr(s, MUX_ERR_VARINT, "truncated record length varint")
                     : perr(s, MUX_ERR_FRAME_TOO_LARGE, "record runs past the end of the message");
    } else if (s->rx_mode != RXM_SKIP) {
        rv = process_message(s, n != 0 ? s->rxmsg.base + s->rxmsg.pos : NULL, n);
    }
    mux_buf_reset(&s->rxmsg);
    mux_buf_shrink(&s->rxmsg, 1u << 20, s->mem);
    return rv;
}

static int on_ws_piece(mux_session *s, const mux_ws_piece *pc)
{
    switch (pc->opcode) {
    case MUX_WS_OP_PING:
    case MUX_WS_OP_PONG:
    case MUX_WS_OP_CLOSE:
        if (pc->frame_start)
            s->ctllen = 0;
        if (pc->len > sizeof(s->ctl) - s->ctllen)
            return perr(s, MUX_ERR_WS_PROTOCOL, "control frame too long");
        if (pc->len != 0)
            memcpy(s->ctl + s->ctllen, pc->data, pc->len);
        s->ctllen += pc->len;
        return pc->frame_end ? on_ws_control(s, pc->opcode) : 0;
    case MUX_WS_OP_TEXT:
        return perr(s, MUX_ERR_WS_PROTOCOL, "text message on the tunnel");
    case MUX_WS_OP_BINARY:
    case MUX_WS_OP_CONT:
        if (pc->opcode == MUX_WS_OP_BINARY && pc->frame_start) {
            if (pc->frame_end && pc->fin && !s->rx_in_msg) {
                return process_message(s, pc->data, pc->len); /* zero-copy: whole message in the input */
            }
            mux_buf_reset(&s->rxmsg);
            s->rx_in_msg = 1;
            s->rx_mode = RXM_UNDECIDED;
            s->rx_msg_len = 0;
        } else if (!s->rx_in_msg) {
            return perr(s, MUX_ERR_WS_PROTOCOL, "continuation without a message");
        }
        if (pc->len != 0) {
            const uint8_t *d = pc->data;
            size_t n = pc->len;
            if (s->rx_msg_len + n > s->opt.max_message_size)
                return perr(s, MUX_ERR_MESSAGE_TOO_LARGE, "fragmented message over max_message_size");
            s->rx_msg_len += n;
            if (s->rx_mode == RXM_UNDECIDED) {
                int compressed = 1, reset;
                const char *why;
                if (mux_envelope_parse(d[0], &compressed, &reset, &why) == 0 && !compressed) {
                    s->rx_mode = RXM_RECORDS;
                    s->rx_hello_msg = 0;
                    s->stats.messages_in++;
                    d++;
                    n--;
                } else {
                    s->rx_mode = RXM_WHOLE;
                }
            }
            if (s->rx_mode == RXM_RECORDS) {
                int rv = stream_records(s, d, n);
                if (rv != 0)
                    return rv;
            } else if (s->rx_mode == RXM_WHOLE && mux_buf_append(&s->rxmsg, d, n, 0, s->mem) != 0) {
                return perr(s, MUX_ERR_INTERNAL, "out of memory reassembling a message");
            }
        }
        if (pc->frame_end && pc->fin)
            return end_pieced_message(s);
        return 0;
    }
    return perr(s, MUX_ERR_WS_PROTOCOL, "unknown opcode");
}

/*
 * Input after the session stopped processing (fatal error, or a REFUSE): the frames are dropped
 * unread; only the peer's WebSocket close is looked for, so the transport can close as soon as the
 * peer has acknowledged ours (lingering close, RFC 6455 §7.1.1, PROTOCOL.md §8). An oversized
 * frame is skipped; any other framing error leaves the transport to wait for EOF.
 */
static void linger_scan(mux_session *s, uint8_t *in, size_t len)
{
    size_t off = 0;
    while (off < len && !s->peer_closed && !s->linger_blind) {
        mux_ws_piece pc;
        int has = 0;
        ssize_t n = mux_ws_decoder_feed(&s->dec, in + off, len - off, &pc, &has, NULL);
        if (n < 0) {
            ssize_t hdr = n == MUX_ERR_MESSAGE_TOO_LARGE ? mux_ws_decoder_skip_oversized(&s->dec) : -1;
            if (hdr < 0)
                s->linger_blind = 1;
            else
                off += (size_t)hdr;
            continue;
        }
        off += (size_t)n;
        if (has && pc.opcode == MUX_WS_OP_CLOSE && pc.frame_end)
            s->peer_closed = 1;
        else if (!has && n == 0)
            break;
    }
}

const char *mux_rx_mode_to_str(mux_rx_mode mode)
{
    switch (mode) {
    case RXM_UNDECIDED:
        return "undecided";
    case RXM_RECORDS:
        return "records";
    case RXM_WHOLE:
        return "whole";
    case RXM_SKIP:
        return "skip";
    }
    return "unknown";
}

/* Feeds transport bytes; see mux.h. */
ssize_t mux_session_recv(mux_session *s, uint8_t *in, size_t len, int64_t now_ms)
{
    if (s == NULL || (in == NULL && len != 0))
        return MUX_ERR_INVALID_ARGUMENT;
    s->now = now_ms;
    if (s->dead) {
        linger_scan(s, in, len);
        return s->fatal_rv != 0 && s->fatal_rv != MUX_ERR_WS_CLOSED ? s->fatal_rv : (ssize_t)len;
    }
    if (len == 0)
        return 0;
    if (s->hs == HS_REFUSED) {
        linger_scan(s, in, len);
        return (ssize_t)len; /* REFUSE sent or received: the connection only closes now */
    }
    s->last_recv_ms = now_ms;
    s->stats.bytes_in += len;
    size_t off = 0;
    while (off < len && !s->dead) {
        mux_ws_piece pc;
        int has = 0;
        const char *why = NULL;
        ssize_t n = mux_ws_decoder_feed(&s->dec, in + off, len - off, &pc, &has, &why);
        if (n < 0) {
            s->reason = why != NULL ? why : mux_strerror((int)n);
            int rv = mux_die(s, (int)n, n != MUX_ERR_WS_PROTOCOL);
            ssize_t hdr = n == MUX_ERR_MESSAGE_TOO_LARGE ? mux_ws_decoder_skip_oversized(&s->dec) : -1;
            if (hdr < 0)
                s->linger_blind = 1;
            else
                linger_scan(s, in + off + (size_t)hdr, len - off - (size_t)hdr);
            return rv;
        }
        off += (size_t)n;
        if (has) {
            int rv = on_ws_piece(s, &pc);
            if (rv == MUX_ERR_WS_CLOSED) {
                unsigned code = s->goaway_recv ? s->goaway_recv_code : MUX_CODE_INTERNAL_ERROR;
                if (code == MUX_CODE_NO_ERROR)
                    code = MUX_CODE_INTERNAL_ERROR;
                s->dead = 1;
                s->fatal_rv = MUX_ERR_WS_CLOSED;
                mux_kill_streams(s, code, "the peer closed the connection");
                return (ssize_t)len;
            }
            if (rv == MUX_ERR_REFUSED) {
                s->dead = 1;
                s->fatal_rv = MUX_ERR_REFUSED;
                mux_queue_ws_close(s, 1000);
                linger_scan(s, in + off, len - off);
                return rv;
            }
            if (rv < 0) {
                if (rv == MUX_ERR_BAD_VERSION && s->hs == HS_REFUSED) {
                    mux_queue_ws_close(s, 1000); /* a refusal like any other (PROTOCOL.md §8) */
                    rv = mux_die(s, rv, 0);      /* REFUSE(UNSUPPORTED_VERSION) is queued instead of GOAWAY */
                } else
                    rv = mux_die(s, mux_is_fatal(rv) ? rv : MUX_ERR_INTERNAL, rv != MUX_ERR_WS_PROTOCOL);
                linger_scan(s, in + off, len - off); /* the framing is intact: look for the peer's close */
                return rv;
            }
        } else if (n == 0) {
            break; /* cannot happen with len > 0; guards against a spin */
        }
    }
    if (s->dead && off < len)
        linger_scan(s, in + off, len - off);
    if (!s->dead && mux_buf_size(&s->ctrl) > CTRL_BACKLOG_LIMIT) {
        s->reason = "control backlog: the peer keeps sending but does not read";
        return mux_die(s, MUX_ERR_PROTO, 1);
    }
    return (ssize_t)len;
}
