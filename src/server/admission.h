/*
 * tunnelmux server — admission of a public request, as pure decisions: which requests the proxy
 * refuses before a stream opens (in the order proxy_handle_request asks), and which answer a
 * refused open gets. The h2o side (security.c: Rapid-Reset budget, smuggling, basic auth, rate
 * limits; registry_pick) stays with its callers; this file only decides. No allocation, no state.
 */
#ifndef TM_SERVER_ADMISSION_H
#define TM_SERVER_ADMISSION_H

#include <stdint.h>

/* Why a request is refused (or not). */
typedef enum admission_verdict {
    ADMIT_OK = 0,               /* go on: open a stream */
    ADMIT_SHUTTING_DOWN,        /* the server is draining for shutdown: 503 */
    ADMIT_HOST_NOT_SERVED,      /* the Host is not NAME.DOMAIN: 404 */
    ADMIT_CONNECT,              /* CONNECT (no RFC 8441 extended CONNECT): 501 */
    ADMIT_H2_UPGRADE,           /* an Upgrade on HTTP/2 (RFC 9113 §8.2.2): 400 */
    ADMIT_TUNNEL_NOT_CONNECTED, /* the name was registered before but has no usable tunnel now: 502 */
    ADMIT_NO_SUCH_TUNNEL,       /* the name was never registered: 404 */
    ADMIT_OUT_OF_MEMORY,        /* the stream's head could not be built: 503 */
    ADMIT_TUNNEL_BUSY,          /* MAX_STREAMS_PER_CLIENT streams already open: 503 */
    ADMIT_HEADERS_TOO_LARGE,    /* the head exceeds the tunnel's header limits: 431 */
    ADMIT_TUNNEL_REFUSED,       /* the session refused the stream for another reason: 502 */
} admission_verdict;

/* What the request looks like, for admission_check_request. */
typedef struct admission_request {
    int shutting_down; /* srv->shutting_down */
    int route_ok;      /* route_lookup_name found a NAME in the Host */
    int is_connect;    /* the method is CONNECT */
    int http2;         /* HTTP/2 (version >= 0x200) */
    int has_upgrade;   /* an Upgrade header (or h2o's req->upgrade) */
} admission_request;

/* The request checks before a tunnel is picked: shutdown, Host, CONNECT, Upgrade on HTTP/2, in
 * that order (the first that fails wins). The caller runs security_condemned and
 * security_reject_ambiguous between ADMIT_SHUTTING_DOWN and the rest. */
admission_verdict admission_check_request(const admission_request *r);

/* After registry_pick: |usable| = a tunnel with a session that is not closing; |known| = the name
 * was registered before. */
admission_verdict admission_check_tunnel(int usable, int known);

/* The answer to mux_session_open_stream's result |id| (0: out of memory, < 0: MUX_ERR_*, > 0: ok). */
admission_verdict admission_check_open(int32_t id);

/* The HTTP status of |v| (0 for ADMIT_OK) and its reason phrase ("" for ADMIT_OK). */
int admission_status(admission_verdict v);
const char *admission_reason(admission_verdict v);

/* A name for logs ("ok", "shutting_down", ...). */
const char *admission_verdict_to_str(admission_verdict v);

#endif
