/* tunnelmux client — Expect: 100-continue relayed from the local service (see continue_relay.h). */
#include "continue_relay.h"

#include <string.h>

#include "common/http_token.h"

/* RFC 9110 §10.1.1: the only expectation defined; matched case-insensitively, as the server does. */
static int is_100_continue(const mux_iovec *v)
{
    static const char want[] = "100-continue";
    if (v->len != sizeof(want) - 1)
        return 0;
    for (size_t i = 0; i < v->len; i++) {
        char c = (char)v->base[i];
        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        if (c != want[i])
            return 0;
    }
    return 1;
}

int continue_relay_wanted(mux_session *s, const mux_head *head)
{
    if (s == NULL || (mux_session_capabilities(s) & MUX_CAP_CONTINUE_RELAY) == 0 || (head->flags & MUX_HEAD_END_STREAM))
        return 0;
    for (size_t i = 0; i < head->nheaders; i++) {
        const mux_header *h = &head->headers[i];
        if (http_name_is((const char *)h->name.base, h->name.len, "expect") && is_100_continue(&h->value))
            return 1;
    }
    return 0;
}

static void on_timer(lws_sorted_usec_list_t *sul)
{
    continue_relay *cr = lws_container_of(sul, continue_relay, sul);
    if (cr->state == CONTINUE_WAITING && cr->on_timeout != NULL)
        cr->on_timeout(cr);
}

void continue_relay_start(continue_relay *cr, struct lws_context *lws, int64_t timeout_ms, continue_relay_timeout_cb on_timeout)
{
    cr->state = CONTINUE_WAITING;
    cr->on_timeout = on_timeout;
    lws_sul_schedule(lws, 0, &cr->sul, on_timer, (lws_usec_t)timeout_ms * 1000);
}

int continue_relay_on_local_head(continue_relay *cr, unsigned status)
{
    switch (cr->state) {
    case CONTINUE_WAITING:
        if (status == 100) {
            cr->state = CONTINUE_RELAYED;
            continue_relay_stop(cr);
            return 1;
        }
        if (status >= 200 || status == 101) {
            cr->state = CONTINUE_ANSWERED; /* the final head goes first: the body is never asked for */
            continue_relay_stop(cr);
        }
        return 1;
    case CONTINUE_OFF:
    case CONTINUE_RELAYED:
    case CONTINUE_ANSWERED:
        return status != 100; /* 100: the server answered the user itself, or already has one */
    }
    return 1;
}

int continue_relay_synthesize(continue_relay *cr, mux_session *s, uint32_t id)
{
    if (cr->state != CONTINUE_WAITING)
        return 0;
    cr->state = CONTINUE_RELAYED;
    mux_head h;
    memset(&h, 0, sizeof(h));
    h.status = 100;
    h.reason = (mux_iovec){(uint8_t *)"Continue", 8};
    return mux_session_respond(s, id, &h);
}

void continue_relay_stop(continue_relay *cr)
{
    lws_sul_cancel(&cr->sul);
}
