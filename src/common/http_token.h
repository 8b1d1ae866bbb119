/*
 * tunnelmux — HTTP field syntax shared by the server and the client: tokens (RFC 9110 §5.6.2),
 * values without CR, LF or NUL (§5.5), case-insensitive names, hop-by-hop fields (§7.6.1).
 * Every proxied request runs these over each of its headers, so they are table- and length-driven
 * (no strlen, no strchr per byte). Pure functions; no state.
 */
#ifndef TUNNELMUX_COMMON_HTTP_TOKEN_H
#define TUNNELMUX_COMMON_HTTP_TOKEN_H

#include <stddef.h>

/* 1 when |s|/|len| is a non-empty token (tchar: ALPHA DIGIT !#$%&'*+-.^_`|~). */
int http_is_token(const char *s, size_t len);

/* 1 when |s|/|len| holds no CR, LF or NUL (may be empty; |s| may be NULL when |len| is 0). */
int http_is_clean_value(const char *s, size_t len);

/* 1 when |name|/|len| equals the lower-case |lit|/|litlen| ignoring ASCII case. */
int http_name_eq(const char *name, size_t len, const char *lit, size_t litlen);

/* http_name_eq against a string literal (a non-literal does not compile: `"" lit`). */
#define http_name_is(name, len, lit) http_name_eq((name), (len), "" lit, sizeof("" lit) - 1)

/* 1 for the hop-by-hop fields a proxy never forwards: connection, keep-alive, proxy-connection,
 * te, trailer, transfer-encoding, upgrade, http2-settings (any case). */
int http_is_hop_by_hop(const char *name, size_t len);

/*
 * Walks the comma-separated elements of a field value (RFC 9110 §5.6.1): from byte |*pos| (start
 * at 0) of |list|/|len|, sets |*elem|/|*elem_len| to the next element with spaces and tabs trimmed
 * (possibly empty: "a,,b" has three), advances |*pos| past its comma and returns 1; returns 0 at
 * the end. A trailing comma ends the list ("a," has one element). |*elem| points into |list|.
 */
int http_list_next(const char *list, size_t len, size_t *pos, const char **elem, size_t *elem_len);

/* 1 when the comma-separated |list|/|len| has the element |token|/|toklen| (ASCII case-insensitive). */
int http_list_has(const char *list, size_t len, const char *token, size_t toklen);

#endif
