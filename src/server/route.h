/*
 * tunnelmux server — host canonicalisation and tunnel-name extraction (pure, no I/O).
 *
 * Routing rule (docs/PROTOCOL.md §6): the host is the Host header / :authority with the port
 * stripped, lower-cased, a trailing dot removed; it must be `NAME.DOMAIN` with NAME a single
 * RFC 1123 label; everything else is answered 404 by the caller.
 */
#ifndef TM_SERVER_ROUTE_H
#define TM_SERVER_ROUTE_H

#include <stddef.h>

#define ROUTE_MAX_HOST 255 /* longest canonical host we accept (DNS limit) */
#define ROUTE_MAX_NAME 63  /* longest label */

enum {
    ROUTE_ERR_BAD_HOST = -1,   /* empty, too long, or malformed authority */
    ROUTE_ERR_NOT_DOMAIN = -2, /* the host is not under DOMAIN (or is DOMAIN itself) */
    ROUTE_ERR_BAD_NAME = -3,   /* the part before DOMAIN is not a single RFC 1123 label */
};

/*
 * Canonicalises an authority (|len| bytes, not NUL-terminated; "host", "host:port", "[v6]" or
 * "[v6]:port"): strips the port, lower-cases, removes one trailing dot. Writes the result,
 * NUL-terminated, into |out| (|cap| bytes, at least ROUTE_MAX_HOST + 1 recommended).
 * Returns the length written (> 0) or ROUTE_ERR_BAD_HOST (empty host, bad port, characters
 * outside [A-Za-z0-9.-_] for a name, too long for |out|). Does not take ownership of anything.
 */
int route_canonical_host(const char *authority, size_t len, char *out, size_t cap);

/*
 * Canonicalises DOMAIN for comparison (lower-case, trailing dot removed) into |out|.
 * Returns the length or ROUTE_ERR_BAD_HOST when |domain| is empty or too long.
 */
int route_canonical_domain(const char *domain, char *out, size_t cap);

/*
 * Given a canonical |host| (from route_canonical_host) and a canonical |domain|, writes the tunnel
 * NAME (NUL-terminated) into |name| (|cap| >= ROUTE_MAX_NAME + 1). Returns the name length, or
 * ROUTE_ERR_NOT_DOMAIN / ROUTE_ERR_BAD_NAME.
 */
int route_extract_name(const char *host, const char *domain, char *name, size_t cap);

/*
 * Convenience: authority -> NAME in one step (|host_out| receives the canonical host, for error
 * messages; may be NULL). Returns the name length or a negative ROUTE_ERR_*.
 */
int route_lookup_name(const char *authority, size_t len, const char *domain, char *name, size_t name_cap, char *host_out,
                      size_t host_cap);

/*
 * Splits an HTTP/1.1 absolute-form request-target (RFC 9112 §3.2.2: "scheme://authority[/path][?query]")
 * into the span of its authority (|*auth_off|, |*auth_len|) and the offset where the rest begins
 * (|*rest_off|: '/', '?', '#' or |len|). Returns 1 for an absolute-form target (its authority
 * may be empty: "http:///x"), 0 for anything else (origin-form "/...", "*", or no "://" after a
 * valid scheme), leaving the outputs untouched. The authority is returned as it is: the caller
 * validates it.
 */
int route_absolute_form(const char *target, size_t len, size_t *auth_off, size_t *auth_len, size_t *rest_off);

/* 1 when |s| (|len| bytes) is an RFC 1123 label: 1..63 of [A-Za-z0-9-], not starting/ending '-'. */
int route_is_label(const char *s, size_t len);

/*
 * Case-folds a client id into |out| (|cap| >= ROUTE_MAX_NAME + 1) after checking it is a label.
 * Returns the length or ROUTE_ERR_BAD_NAME.
 */
int route_fold_client_id(const char *id, char *out, size_t cap);

#endif
