/*
 * tunnelmux server — host canonicalisation and tunnel-name extraction (see route.h).
 */
#include "server/route.h"

#include <string.h>

static char lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static int is_alnum(char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

int route_is_label(const char *s, size_t len)
{
    if (len == 0 || len > ROUTE_MAX_NAME)
        return 0;
    if (s[0] == '-' || s[len - 1] == '-')
        return 0;
    for (size_t i = 0; i < len; i++) {
        if (!is_alnum(s[i]) && s[i] != '-')
            return 0;
    }
    return 1;
}

/* Checks ":digits" (1..5 digits, value <= 65535) covering all of [p, end). */
static int valid_port(const char *p, const char *end)
{
    if (p >= end || *p != ':')
        return 0;
    p++;
    size_t n = (size_t)(end - p);
    if (n == 0 || n > 5)
        return 0;
    unsigned v = 0;
    for (; p < end; p++) {
        if (!is_digit(*p))
            return 0;
        v = v * 10 + (unsigned)(*p - '0');
    }
    return v <= 65535;
}

int route_absolute_form(const char *target, size_t len, size_t *auth_off, size_t *auth_len, size_t *rest_off)
{
    /* scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) (RFC 3986 §3.1) */
    if (target == NULL || len == 0 || !is_alnum(target[0]) || is_digit(target[0]))
        return 0;
    size_t i = 1;
    while (i < len && (is_alnum(target[i]) || target[i] == '+' || target[i] == '-' || target[i] == '.'))
        i++;
    if (len - i < 3 || memcmp(target + i, "://", 3) != 0)
        return 0;
    size_t a = i + 3, e = a;
    while (e < len && target[e] != '/' && target[e] != '?' && target[e] != '#')
        e++;
    *auth_off = a;
    *auth_len = e - a;
    *rest_off = e;
    return 1;
}

int route_canonical_host(const char *authority, size_t len, char *out, size_t cap)
{
    if (authority == NULL || len == 0 || cap == 0)
        return ROUTE_ERR_BAD_HOST;
    const char *p = authority, *end = authority + len, *host_end;
    if (*p == '[') {
        /* IP literal: keep the brackets, it will never match DOMAIN but names the host in errors */
        const char *close = memchr(p, ']', len);
        if (close == NULL)
            return ROUTE_ERR_BAD_HOST;
        host_end = close + 1;
        for (const char *q = p + 1; q < close; q++) {
            if (!(is_alnum(*q) || *q == ':' || *q == '.'))
                return ROUTE_ERR_BAD_HOST;
        }
        if (host_end != end && !valid_port(host_end, end))
            return ROUTE_ERR_BAD_HOST;
    } else {
        const char *colon = memchr(p, ':', len);
        host_end = colon != NULL ? colon : end;
        if (colon != NULL && !valid_port(colon, end))
            return ROUTE_ERR_BAD_HOST;
        for (const char *q = p; q < host_end; q++) {
            if (!(is_alnum(*q) || *q == '-' || *q == '.' || *q == '_'))
                return ROUTE_ERR_BAD_HOST;
        }
    }
    size_t n = (size_t)(host_end - p);
    if (n > 1 && p[n - 1] == '.' && *p != '[')
        n--;
    if (n == 0 || n > ROUTE_MAX_HOST || n + 1 > cap)
        return ROUTE_ERR_BAD_HOST;
    for (size_t i = 0; i < n; i++)
        out[i] = lower(p[i]);
    out[n] = '\0';
    return (int)n;
}

int route_canonical_domain(const char *domain, char *out, size_t cap)
{
    if (domain == NULL)
        return ROUTE_ERR_BAD_HOST;
    size_t n = strlen(domain);
    if (n > 0 && domain[n - 1] == '.')
        n--;
    if (n == 0 || n > ROUTE_MAX_HOST || n + 1 > cap)
        return ROUTE_ERR_BAD_HOST;
    for (size_t i = 0; i < n; i++)
        out[i] = lower(domain[i]);
    out[n] = '\0';
    return (int)n;
}

int route_extract_name(const char *host, const char *domain, char *name, size_t cap)
{
    size_t hl = strlen(host), dl = strlen(domain);
    if (dl == 0 || hl < dl + 2)
        return ROUTE_ERR_NOT_DOMAIN;
    if (memcmp(host + hl - dl, domain, dl) != 0 || host[hl - dl - 1] != '.')
        return ROUTE_ERR_NOT_DOMAIN;
    size_t nl = hl - dl - 1;
    if (!route_is_label(host, nl) || nl + 1 > cap)
        return ROUTE_ERR_BAD_NAME;
    memcpy(name, host, nl);
    name[nl] = '\0';
    return (int)nl;
}

int route_lookup_name(const char *authority, size_t len, const char *domain, char *name, size_t name_cap, char *host_out,
                      size_t host_cap)
{
    char host[ROUTE_MAX_HOST + 1];
    int hl = route_canonical_host(authority, len, host, sizeof(host));
    if (host_out != NULL && host_cap > 0) {
        if (hl > 0 && (size_t)hl + 1 <= host_cap)
            memcpy(host_out, host, (size_t)hl + 1);
        else
            host_out[0] = '\0';
    }
    if (hl < 0)
        return hl;
    return route_extract_name(host, domain, name, name_cap);
}

int route_fold_client_id(const char *id, char *out, size_t cap)
{
    if (id == NULL)
        return ROUTE_ERR_BAD_NAME;
    size_t n = strlen(id);
    if (!route_is_label(id, n) || n + 1 > cap)
        return ROUTE_ERR_BAD_NAME;
    for (size_t i = 0; i < n; i++)
        out[i] = lower(id[i]);
    out[n] = '\0';
    return (int)n;
}
