/*
 * tunnelmux — the control queue: control records (CLOSE, GOAWAY, WINDOW, PING/PONG, the
 * handshake) are encoded into s->ctrl when queued and go out first in the next batch
 * (PROTOCOL.md §6.4); our WebSocket close frame is wanted here too. Connection credit is returned
 * through it on receipt (PROTOCOL.md §6.2).
 */
#include <string.h>

#include "frame_codec.h"
#include "ctrl_queue.h"
#include "mux_internal.h"

/* Encodes |f| into the control queue. |plain|: must go in an uncompressed message. */
int mux_queue_frame(mux_session *s, const mux_frame *f, int plain)
{
    int rv = mux_frame_encode(f, &s->ctrl, s->mem);
    if (rv != 0)
        return perr(s, rv, "cannot encode a control frame");
    if (plain)
        s->ctrl_plain = mux_buf_size(&s->ctrl);
    return 0;
}

int mux_queue_simple(mux_session *s, mux_frame_type type, uint32_t id, unsigned code, const char *reason)
{
    mux_frame f;
    memset(&f, 0, sizeof(f));
    f.type = type;
    f.stream_id = id;
    f.last_stream_id = id;
    f.code = code;
    f.reason = iov_str(reason);
    return mux_queue_frame(s, &f, 0);
}

int mux_queue_window(mux_session *s, uint32_t id, uint32_t inc)
{
    mux_frame f;
    memset(&f, 0, sizeof(f));
    f.type = MUX_FRAME_WINDOW;
    f.stream_id = id;
    f.increment = inc;
    return mux_queue_frame(s, &f, 0);
}

int mux_queue_ping(mux_session *s, mux_frame_type type, uint64_t opaque)
{
    mux_frame f;
    memset(&f, 0, sizeof(f));
    f.type = type;
    f.opaque = opaque;
    return mux_queue_frame(s, &f, 0);
}

void mux_queue_ws_close(mux_session *s, uint16_t code)
{
    if (s->close_state == CLOSE_NONE) {
        s->close_state = CLOSE_QUEUED;
        s->close_code = code;
    }
}
