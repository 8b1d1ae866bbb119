/*
 * tunnelmux client — SERVER_URL parsing (url.c): ws[s]://HOST[:PORT][/PATH], one URL or a
 * comma-separated list of them. Pure; fills caller-owned structs.
 */
#ifndef TM_CLIENT_URL_H
#define TM_CLIENT_URL_H

#include <stddef.h>

/* A parsed SERVER_URL. */
typedef struct {
    int tls;        /* wss:// */
    char host[256]; /* without brackets for IPv6 */
    int port;
    char path[1024];    /* default /_tunnel */
    char hostport[300]; /* Host header value */
} client_url;

/*
 * Parses ws[s]://HOST[:PORT][/PATH] into |out|. Returns 0 or -1 (|*reason| set to a static
 * description) when the scheme is not ws/wss, the host is empty or too long, the port invalid,
 * or the URL has a query, fragment, user info or control characters.
 */
int client_parse_url(const char *url, client_url *out, const char **reason);

/* Most URLs in SERVER_URL. */
#define CLIENT_MAX_SERVERS 16

/*
 * Parses SERVER_URL, a comma-separated list of URLs (spaces around an element ignored; one URL is
 * a list of one), into |out| (|cap| entries) and |*n|. Returns 0, or -1 with a one-line reason in
 * |err| naming the element by position: an empty element, a malformed URL (client_parse_url), a
 * repeated URL, a mix of ws:// and wss://, or more than |cap| URLs.
 */
int client_parse_url_list(const char *list, client_url *out, size_t cap, size_t *n, char *err, size_t errlen);

#endif
