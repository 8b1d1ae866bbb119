/*
 * tunnelmux client — SERVER_URL parsing (ws[s]://HOST[:PORT][/PATH]).
 */
#include <stdio.h>
#include <string.h>

#include "url.h"

int client_parse_url(const char *url, client_url *out, const char **reason)
{
    memset(out, 0, sizeof(*out));
    for (const char *p = url; *p; p++)
        if ((unsigned char)*p <= 0x20 || *p == 0x7f) {
            *reason = "control character or space";
            return -1;
        }
    const char *p;
    if (strncmp(url, "ws://", 5) == 0) {
        p = url + 5;
    } else if (strncmp(url, "wss://", 6) == 0) {
        out->tls = 1;
        p = url + 6;
    } else {
        *reason = "scheme must be ws:// or wss://";
        return -1;
    }
    if (strpbrk(p, "?#") != NULL) {
        *reason = "query or fragment not allowed";
        return -1;
    }
    const char *slash = strchr(p, '/');
    size_t alen = slash ? (size_t)(slash - p) : strlen(p);
    if (memchr(p, '@', alen) != NULL) {
        *reason = "user info not allowed";
        return -1;
    }
    const char *hs = p, *he, *portp = NULL;
    if (alen > 0 && p[0] == '[') {
        const char *rb = memchr(p, ']', alen);
        if (rb == NULL) {
            *reason = "unterminated IPv6 literal";
            return -1;
        }
        hs = p + 1;
        he = rb;
        if (rb + 1 < p + alen) {
            if (rb[1] != ':') {
                *reason = "garbage after IPv6 literal";
                return -1;
            }
            portp = rb + 2;
        }
    } else {
        const char *colon = memchr(p, ':', alen);
        he = colon ? colon : p + alen;
        if (colon)
            portp = colon + 1;
    }
    size_t hlen = (size_t)(he - hs);
    if (hlen == 0 || hlen >= sizeof(out->host)) {
        *reason = "missing or too long host";
        return -1;
    }
    memcpy(out->host, hs, hlen);
    out->port = out->tls ? 443 : 80;
    if (portp != NULL) {
        const char *pe = p + alen;
        if (portp == pe || pe - portp > 5) {
            *reason = "invalid port";
            return -1;
        }
        int port = 0;
        for (const char *q = portp; q < pe; q++) {
            if (*q < '0' || *q > '9') {
                *reason = "invalid port";
                return -1;
            }
            port = port * 10 + (*q - '0');
        }
        if (port < 1 || port > 65535) {
            *reason = "port out of range";
            return -1;
        }
        out->port = port;
    }
    const char *path = slash && slash[1] != '\0' ? slash : "/_tunnel";
    if (strlen(path) >= sizeof(out->path)) {
        *reason = "path too long";
        return -1;
    }
    strcpy(out->path, path);
    int v6 = strchr(out->host, ':') != NULL;
    int defport = out->port == (out->tls ? 443 : 80);
    if (defport)
        snprintf(out->hostport, sizeof(out->hostport), v6 ? "[%s]" : "%s", out->host);
    else
        snprintf(out->hostport, sizeof(out->hostport), v6 ? "[%s]:%d" : "%s:%d", out->host, out->port);
    return 0;
}

int client_parse_url_list(const char *list, client_url *out, size_t cap, size_t *n, char *err, size_t errlen)
{
    *n = 0;
    const char *p = list;
    for (size_t index = 1;; index++) {
        const char *comma = strchr(p, ',');
        size_t len = comma != NULL ? (size_t)(comma - p) : strlen(p);
        while (len > 0 && (*p == ' ' || *p == '\t')) { /* "a, b" reads as "a,b" */
            p++;
            len--;
        }
        while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t'))
            len--;
        char one[1400];
        const char *reason = "";
        if (len == 0) {
            snprintf(err, errlen, "URL %zu of the list is empty (URLs are separated by single commas)", index);
            return -1;
        }
        if (len >= sizeof(one)) {
            snprintf(err, errlen, "URL %zu of the list is too long", index);
            return -1;
        }
        memcpy(one, p, len);
        one[len] = '\0';
        if (*n >= cap) {
            snprintf(err, errlen, "more than %zu URLs", cap);
            return -1;
        }
        if (client_parse_url(one, &out[*n], &reason) != 0) {
            snprintf(err, errlen, "URL %zu of the list (\"%.200s\"): %s; expected ws://HOST[:PORT][/PATH] or wss://...", index, one,
                     reason);
            return -1;
        }
        for (size_t k = 0; k < *n; k++) {
            if (out[k].tls == out[*n].tls && out[k].port == out[*n].port && strcmp(out[k].host, out[*n].host) == 0 &&
                strcmp(out[k].path, out[*n].path) == 0) {
                snprintf(err, errlen, "URL %zu of the list (\"%.200s\") repeats URL %zu", index, one, k + 1);
                return -1;
            }
        }
        (*n)++;
        if (comma == NULL)
            return 0;
        p = comma + 1;
    }
}
