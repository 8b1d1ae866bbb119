/*
 * tunnelmux server — a proxy_stream's link to its tunnel and mux stream (see proxy_stream.h):
 * detaching it (no more callbacks reach it) and resetting the stream. Every file of the proxy
 * cuts the link through these. Moved out of proxy.c (issue 17), code unchanged.
 */
#include "server/proxy_stream.h"

/* Detaches |ps| from its tunnel and mux stream (no more callbacks). Returns the tunnel or NULL. */
tunnel *proxy_link_detach(proxy_stream *ps)
{
    tunnel *t = ps->tunnel;
    if (t != NULL) {
        if (h2o_linklist_is_linked(&ps->link))
            h2o_linklist_unlink(&ps->link);
        if (ps->id != 0 && tunnel_session(t) != NULL)
            mux_session_set_stream_user_data(tunnel_session(t), ps->id, NULL);
    }
    ps->tunnel = NULL;
    if (h2o_timeout_is_linked(&ps->head_timeout))
        h2o_timeout_unlink(&ps->head_timeout);
    return t;
}

/* Detaches and resets the mux stream with |code|. Does not flush the tunnel; returns it. */
tunnel *proxy_link_reset(proxy_stream *ps, unsigned code, const char *reason)
{
    uint32_t id = ps->id;
    tunnel *t = proxy_link_detach(ps);
    if (t != NULL && id != 0 && tunnel_session(t) != NULL)
        mux_session_reset_stream(tunnel_session(t), id, code, reason);
    ps->id = 0;
    return t;
}

/* ---------------------------------------------------------------- lifetime */

/* Resets with CANCEL and flushes the tunnel. */
void proxy_link_cancel(proxy_stream *ps, const char *why)
{
    tunnel *t = proxy_link_reset(ps, MUX_CODE_CANCEL, why);
    if (t != NULL)
        tunnel_flush(t);
}
