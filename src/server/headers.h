/*
 * tunnelmux server — request/response header transforms (pure, no I/O).
 *
 * Builds the header list of a request head sent through the tunnel (docs/PROTOCOL.md §6):
 * names lower-cased, order and duplicates kept, hop-by-hop headers and host removed,
 * `forward-X: v` turned into `X: v` (with a refusal list), then x-forwarded-for,
 * x-forwarded-proto, x-forwarded-host and forwarded appended. Also filters response headers.
 */
#ifndef TM_SERVER_HEADERS_H
#define TM_SERVER_HEADERS_H

#include <stddef.h>
#include <stdint.h>

#include "mux/mux.h"

/* What the server knows about the public request besides its headers. Strings are borrowed. */
typedef struct {
    const char *scheme;    /* "http" or "https" */
    const char *authority; /* public Host / :authority as received (with port) */
    size_t authority_len;
    const char *client_ip; /* textual IP of the public user, no brackets ("::1", "10.0.0.1") */
    int keep_upgrade;      /* 1: HTTP/1.1 Upgrade request: keep `upgrade` (the only hop-by-hop kept) */
    const char *upgrade;   /* the Upgrade token to add when keep_upgrade and no upgrade header is present */
    size_t upgrade_len;
    int64_t content_length; /* >= 0: append `content-length` with this value; -1: none */
    int expect_continue;    /* 1: append `expect: 100-continue` (the local service decides, PROTOCOL.md §9.3); the
                               user's own Expect headers are never forwarded */
    int drop_authorization; /* 1: the public `authorization` was consumed by basic auth: not forwarded
                               (a `forward-authorization` still becomes `authorization`) */
} headers_request_info;

/* Reports a header dropped for a reason worth a warning (refused forward-X, bad value). */
typedef void (*headers_drop_cb)(void *ctx, const char *name, size_t name_len, const char *why);

/* An owned header list: |v| and every string it points to live in one allocation. */
typedef struct {
    mux_header *v;
    size_t n;
    void *_mem; /* the single allocation (headers + strings) */
} headers_list;

/*
 * Builds the request header list from |in| (|nin| headers as received, names in any case; borrowed)
 * and |info|. |on_drop| (may be NULL) is called for refused forward-X headers and values with
 * CR, LF or NUL. On success fills |*out| (free with headers_list_free) and returns 0; returns
 * MUX_ERR_NOMEM when allocation fails, leaving |*out| empty.
 */
int headers_build_request(headers_list *out, const mux_header *in, size_t nin, const headers_request_info *info,
                          headers_drop_cb on_drop, void *drop_ctx);

/* Frees what headers_build_request allocated; |l| may be empty. */
void headers_list_free(headers_list *l);

/*
 * 1 when a response header from the tunnel should be passed to the public user: a valid
 * name/value, not hop-by-hop (upgrade is kept when |status| is 101 or 426), not content-length (the
 * caller maps that to the response length).
 */
int headers_response_keep(const char *name, size_t name_len, const char *value, size_t value_len, unsigned status);

/*
 * Parses a content-length value (decimal digits only, optional surrounding spaces). Returns the
 * value or -1 when malformed or over INT64_MAX.
 */
int64_t headers_parse_content_length(const char *value, size_t len);

#endif
