/*
 * tunnelmux client — `Expect: 100-continue` decided by the local service (docs/PROTOCOL.md §9.3,
 * capability bit 1 "continue relay").
 *
 * When the server agreed to the capability and a request head carries `expect: 100-continue`, the
 * server has not asked the public user for the body: it waits for this client to say so with a
 * 100 head (an informational OPEN, PROTOCOL.md §4.3). The request goes to the local service with its
 * Expect header; the local service's own `100 Continue` is relayed, its final head (a 401, a 413)
 * goes to the user before any body byte was sent, and a local service that answers neither within
 * EXPECT_CONTINUE_TIMEOUT (HTTP/1.0-style servers never send 100) gets the body anyway: the client
 * then sends a 100 head of its own, as curl does towards servers.
 *
 * Ownership: a continue_relay is embedded in its upstream, which stops it before it is freed.
 */
#ifndef TM_CLIENT_CONTINUE_RELAY_H
#define TM_CLIENT_CONTINUE_RELAY_H

#include <stdint.h>

#include <libwebsockets.h>

#include "mux/mux.h"

typedef enum {
    CONTINUE_OFF = 0,  /* no Expect, or no capability: a local 100 is dropped (the server answered the user) */
    CONTINUE_WAITING,  /* Expect went to the local service: its 100 or final head is awaited, the timer runs */
    CONTINUE_RELAYED,  /* a 100 head went to the server (the local one, or ours at the timeout) */
    CONTINUE_ANSWERED, /* the final head came first: the user is never asked for the body */
} continue_state;

typedef struct continue_relay continue_relay;

/* Called when EXPECT_CONTINUE_TIMEOUT passed in CONTINUE_WAITING: the owner sends the 100 head
 * (continue_relay_synthesize) from its own context. */
typedef void (*continue_relay_timeout_cb)(continue_relay *cr);

struct continue_relay {
    continue_state state;
    lws_sorted_usec_list_t sul; /* the EXPECT_CONTINUE_TIMEOUT timer */
    continue_relay_timeout_cb on_timeout;
};

/* 1 when |head| (a request head from the server) carries `expect: 100-continue` and the session
 * agreed to MUX_CAP_CONTINUE_RELAY; 0 otherwise. */
int continue_relay_wanted(mux_session *s, const mux_head *head);

/* Enters CONTINUE_WAITING and arms the timer (|timeout_ms| > 0) on |lws|'s loop. */
void continue_relay_start(continue_relay *cr, struct lws_context *lws, int64_t timeout_ms, continue_relay_timeout_cb on_timeout);

/* A response head with |status| arrived from the local service. Returns 1 when it goes to the
 * server, 0 when it is dropped (a 100 nobody waits for, or a second one). A final head stops the
 * timer. */
int continue_relay_on_local_head(continue_relay *cr, unsigned status);

/* The timer fired: sends `100 Continue` (synthesized) on stream |id| of |s| unless the state moved
 * on. Returns 0, or a negative MUX_ERR_* from mux_session_respond. */
int continue_relay_synthesize(continue_relay *cr, mux_session *s, uint32_t id);

/* Stops the timer (the stream ends). Safe on a relay that never started. */
void continue_relay_stop(continue_relay *cr);

#endif
