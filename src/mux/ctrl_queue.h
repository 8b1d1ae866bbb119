/*
 * tunnelmux — the session's control queue (ctrl_queue.c): frames other than DATA (WINDOW, PING/PONG,
 * CLOSE, GOAWAY, handshake) encoded into s->ctrl, sent ahead of stream data by the batch builder,
 * and the WebSocket close frame. Private to src/mux.
 */
#ifndef MUX_CTRL_QUEUE_H
#define MUX_CTRL_QUEUE_H

#include "mux_internal.h"

/* Encodes |f| (borrowed) into the control queue; |plain|: it must go in an uncompressed message
 * (handshake). 0 or the encoder's error (reason set). */
int mux_queue_frame(mux_session *s, const mux_frame *f, int plain);
/* Queues a CLOSE or GOAWAY (|id| is the stream id / last_stream_id) with |code| and |reason|. */
int mux_queue_simple(mux_session *s, mux_frame_type type, uint32_t id, unsigned code, const char *reason);
/* Queues WINDOW(|id|, |inc|); id 0 is the connection. */
int mux_queue_window(mux_session *s, uint32_t id, uint32_t inc);
/* Queues PING or PONG carrying |opaque|. */
int mux_queue_ping(mux_session *s, mux_frame_type type, uint64_t opaque);
/* Returns connection credit for |n| bytes received into a stream (or discarded): on receipt, so
 * streams whose readers are slow never hold the connection's credit (PROTOCOL.md §6.2). */
static inline void mux_conn_consume(mux_session *s, size_t n)
{
    if (n == 0)
        return;
    uint32_t inc = mux_rxwin_consume(&s->conn_rx, n, s->now, 0, 0);
    if (inc != 0)
        mux_queue_window(s, 0, inc); /* NOMEM: the credit is lost; the peer's connection window shrinks */
}
/* Queues our WebSocket close frame with |code| (the first code wins). */
void mux_queue_ws_close(mux_session *s, uint16_t code);

#endif
