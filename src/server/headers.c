/*
 * tunnelmux server — request/response header transforms (see headers.h, docs/PROTOCOL.md §6).
 */
#include "server/headers.h"

#include "common/http_token.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define FORWARD_PREFIX "forward-"
#define FORWARD_PREFIX_LEN (sizeof(FORWARD_PREFIX) - 1)
#define MAX_CONN_TOKENS 32

int64_t headers_parse_content_length(const char *value, size_t len)
{
    size_t i = 0;
    while (i < len && (value[i] == ' ' || value[i] == '\t'))
        i++;
    while (len > i && (value[len - 1] == ' ' || value[len - 1] == '\t'))
        len--;
    if (i == len)
        return -1;
    int64_t v = 0;
    for (; i < len; i++) {
        if (value[i] < '0' || value[i] > '9')
            return -1;
        if (v > (INT64_MAX - (value[i] - '0')) / 10)
            return -1;
        v = v * 10 + (value[i] - '0');
    }
    return v;
}

int headers_response_keep(const char *name, size_t name_len, const char *value, size_t value_len, unsigned status)
{
    if (!http_is_token(name, name_len) || !http_is_clean_value(value, value_len))
        return 0;
    if (http_name_is(name, name_len, "content-length"))
        return 0;
    if (http_name_is(name, name_len, "upgrade"))
        return status == 101 || status == 426; /* RFC 9110 §15.5.22: a 426 MUST carry Upgrade */
    return !http_is_hop_by_hop(name, name_len);
}

/* A forward-X target that must never be produced (PROTOCOL.md §6). */
static int forward_target_refused(const char *x, size_t len)
{
    static const char *const refused[] = {"host",    "content-length", "transfer-encoding", "connection", "upgrade", "te",
                                          "trailer", "expect",         "keep-alive"};
    if (len == 0 || http_is_hop_by_hop(x, len))
        return 1;
    if (len >= 6 && strncasecmp(x, "proxy-", 6) == 0)
        return 1;
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        if (http_name_eq(x, len, refused[i], strlen(refused[i])))
            return 1;
    }
    return 0;
}

typedef struct {
    const char *p;
    size_t len;
} span;

/* Splits the values of every `connection` header into trimmed tokens (at most MAX_CONN_TOKENS). */
static size_t collect_connection_tokens(const mux_header *in, size_t nin, span *tok)
{
    size_t n = 0;
    for (size_t i = 0; i < nin; i++) {
        if (!http_name_is((const char *)in[i].name.base, in[i].name.len, "connection"))
            continue;
        size_t pos = 0, elen;
        const char *e;
        while (n < MAX_CONN_TOKENS && http_list_next((const char *)in[i].value.base, in[i].value.len, &pos, &e, &elen)) {
            if (elen > 0)
                tok[n++] = (span){e, elen};
        }
    }
    return n;
}

static int named_in_connection(const span *tok, size_t ntok, const char *name, size_t len)
{
    for (size_t i = 0; i < ntok; i++) {
        if (tok[i].len == len && strncasecmp(tok[i].p, name, len) == 0)
            return 1;
    }
    return 0;
}

/* Bump allocator over the single arena; sizes are computed up front so it cannot overflow. */
typedef struct {
    char *p, *end;
} arena;

static char *arena_put(arena *a, const void *src, size_t len)
{
    char *dst = a->p;
    if ((size_t)(a->end - a->p) < len)
        return NULL; /* cannot happen: the arena is sized for the worst case */
    if (len > 0)
        memcpy(dst, src, len);
    a->p += len;
    return dst;
}

static void push(headers_list *out, const char *name, size_t nlen, const char *value, size_t vlen)
{
    out->v[out->n].name = (mux_iovec){(uint8_t *)name, nlen};
    out->v[out->n].value = (mux_iovec){(uint8_t *)value, vlen};
    out->n++;
}

/* Appends a header whose name and value are literals or arena strings already. */
static void push_copy(headers_list *out, arena *a, const char *name, const char *value, size_t vlen)
{
    size_t nlen = strlen(name);
    char *n = arena_put(a, name, nlen);
    char *v = arena_put(a, value, vlen);
    if (n != NULL && v != NULL)
        push(out, n, nlen, v, vlen);
}

/* 1 when a valid forward-X header among |in| will produce a header named |name| (PROTOCOL.md
 * §9.2: forward-X replaces the user's own X, so the local service sees one X, the forwarded one). */
static int forwarded_target(const mux_header *in, size_t nin, const span *tok, size_t ntok, const char *name, size_t nlen)
{
    for (size_t i = 0; i < nin; i++) {
        const char *n = (const char *)in[i].name.base;
        size_t len = in[i].name.len;
        if (len <= FORWARD_PREFIX_LEN || strncasecmp(n, FORWARD_PREFIX, FORWARD_PREFIX_LEN) != 0)
            continue;
        const char *x = n + FORWARD_PREFIX_LEN;
        size_t xl = len - FORWARD_PREFIX_LEN;
        if (!http_name_eq(x, xl, name, nlen) || forward_target_refused(x, xl) || named_in_connection(tok, ntok, x, xl) ||
            !http_is_token(x, xl) || !http_is_clean_value((const char *)in[i].value.base, in[i].value.len))
            continue;
        return 1;
    }
    return 0;
}

/* 1 when every byte of |s| is an RFC 9110 tchar (so it needs no quoting in Forwarded). */
static int is_token(const char *s, size_t len)
{
    return http_is_token(s, len);
}

int headers_build_request(headers_list *out, const mux_header *in, size_t nin, const headers_request_info *info,
                          headers_drop_cb on_drop, void *drop_ctx)
{
    memset(out, 0, sizeof(*out));
    span tok[MAX_CONN_TOKENS];
    size_t ntok = collect_connection_tokens(in, nin, tok);
    const char *scheme = info->scheme != NULL ? info->scheme : "http";
    const char *ip = info->client_ip != NULL ? info->client_ip : "";
    size_t scheme_len = strlen(scheme), ip_len = strlen(ip), auth_len = info->authority_len;
    const char *authority = info->authority != NULL ? info->authority : "";

    /* worst case: every input header copied, + the extras with their existing values merged */
    size_t strbytes = 0;
    for (size_t i = 0; i < nin; i++)
        strbytes += in[i].name.len + in[i].value.len + 4;
    strbytes += 2 * (ip_len + 8) + 2 * (scheme_len + 8) + 3 * auth_len + info->upgrade_len + 256 + 32 /* expect */;
    size_t nslots = nin + 8;
    size_t total = nslots * sizeof(mux_header) + nin * sizeof(span) * 2 + strbytes;
    void *mem = malloc(total);
    if (mem == NULL)
        return MUX_ERR_NOMEM;
    out->_mem = mem;
    out->v = mem;
    span *xff = (span *)((char *)mem + nslots * sizeof(mux_header));
    span *fwd = xff + nin;
    size_t nxff = 0, nfwd = 0;
    arena a = {(char *)(fwd + nin), (char *)mem + total};
    int saw_upgrade = 0;

    for (size_t i = 0; i < nin; i++) {
        const char *rname = (const char *)in[i].name.base, *value = (const char *)in[i].value.base;
        size_t nlen = in[i].name.len, vlen = in[i].value.len;
        char *lname = a.p;
        if (arena_put(&a, rname, nlen) == NULL)
            continue;
        for (size_t k = 0; k < nlen; k++) {
            if (lname[k] >= 'A' && lname[k] <= 'Z')
                lname[k] = (char)(lname[k] - 'A' + 'a');
        }
        const char *name = lname;
        if (info->drop_authorization && http_name_is(name, nlen, "authorization"))
            continue; /* consumed by the server's basic auth */
        if (nlen >= FORWARD_PREFIX_LEN && memcmp(name, FORWARD_PREFIX, FORWARD_PREFIX_LEN) == 0) {
            const char *x = name + FORWARD_PREFIX_LEN;
            size_t xl = nlen - FORWARD_PREFIX_LEN;
            if (forward_target_refused(x, xl) || named_in_connection(tok, ntok, x, xl)) {
                if (on_drop != NULL)
                    on_drop(drop_ctx, rname, nlen, "forward- target refused");
                continue;
            }
            if (!http_is_clean_value(value, vlen)) {
                if (on_drop != NULL)
                    on_drop(drop_ctx, rname, nlen, "value contains CR, LF or NUL");
                continue;
            }
            name = x;
            nlen = xl;
        }
        if (!http_is_token(name, nlen)) {
            if (on_drop != NULL)
                on_drop(drop_ctx, rname, in[i].name.len, "invalid header name");
            continue;
        }
        if (!http_is_clean_value(value, vlen)) {
            if (on_drop != NULL)
                on_drop(drop_ctx, rname, in[i].name.len, "value contains CR, LF or NUL");
            continue;
        }
        if (http_name_is(name, nlen, "host") || http_name_is(name, nlen, "content-length") || http_name_is(name, nlen, "expect"))
            continue; /* authority carries host; we set content-length and expect (info) */
        if (name == lname && forwarded_target(in, nin, tok, ntok, name, nlen))
            continue; /* the user's own X gives way to its forward-X */
        if (http_name_is(name, nlen, "upgrade")) {
            if (!info->keep_upgrade || saw_upgrade)
                continue;
            saw_upgrade = 1;
        } else if (http_is_hop_by_hop(name, nlen) || named_in_connection(tok, ntok, name, nlen)) {
            continue;
        }
        if (http_name_is(name, nlen, "x-forwarded-for")) {
            xff[nxff++] = (span){value, vlen};
            continue;
        }
        if (http_name_is(name, nlen, "forwarded")) {
            fwd[nfwd++] = (span){value, vlen};
            continue;
        }
        if (http_name_is(name, nlen, "x-forwarded-proto") || http_name_is(name, nlen, "x-forwarded-host"))
            continue; /* replaced by ours below */
        char *v = arena_put(&a, value, vlen);
        if (v != NULL)
            push(out, name, nlen, v, vlen);
    }

    char num[32];
    if (info->content_length >= 0) {
        int n = snprintf(num, sizeof(num), "%lld", (long long)info->content_length);
        push_copy(out, &a, "content-length", num, (size_t)n);
    }
    if (info->expect_continue)
        push_copy(out, &a, "expect", "100-continue", 12);
    if (info->keep_upgrade && !saw_upgrade && info->upgrade != NULL && info->upgrade_len > 0 &&
        http_is_clean_value(info->upgrade, info->upgrade_len))
        push_copy(out, &a, "upgrade", info->upgrade, info->upgrade_len);

    /* x-forwarded-for: existing values joined, then the user's ip */
    {
        char *start = a.p;
        for (size_t i = 0; i < nxff; i++) {
            arena_put(&a, xff[i].p, xff[i].len);
            arena_put(&a, ", ", 2);
        }
        arena_put(&a, ip, ip_len);
        size_t vlen = (size_t)(a.p - start);
        char *n = arena_put(&a, "x-forwarded-for", 15);
        push(out, n, 15, start, vlen);
    }
    push_copy(out, &a, "x-forwarded-proto", scheme, scheme_len);
    push_copy(out, &a, "x-forwarded-host", authority, auth_len);
    /* forwarded (RFC 7239): for=IP or for="[v6]"; host quoted unless it is a token */
    {
        char *start = a.p;
        for (size_t i = 0; i < nfwd; i++) {
            arena_put(&a, fwd[i].p, fwd[i].len);
            arena_put(&a, ", ", 2);
        }
        int v6 = memchr(ip, ':', ip_len) != NULL;
        arena_put(&a, v6 ? "for=\"[" : "for=", v6 ? 6 : 4);
        arena_put(&a, ip, ip_len);
        if (v6)
            arena_put(&a, "]\"", 2);
        arena_put(&a, ";proto=", 7);
        arena_put(&a, scheme, scheme_len);
        arena_put(&a, ";host=", 6);
        if (is_token(authority, auth_len)) {
            arena_put(&a, authority, auth_len);
        } else {
            arena_put(&a, "\"", 1);
            for (size_t i = 0; i < auth_len; i++) {
                if (authority[i] == '"' || authority[i] == '\\')
                    arena_put(&a, "\\", 1);
                arena_put(&a, authority + i, 1);
            }
            arena_put(&a, "\"", 1);
        }
        size_t vlen = (size_t)(a.p - start);
        char *n = arena_put(&a, "forwarded", 9);
        push(out, n, 9, start, vlen);
    }
    return 0;
}

void headers_list_free(headers_list *l)
{
    if (l == NULL)
        return;
    free(l->_mem);
    l->_mem = NULL;
    l->v = NULL;
    l->n = 0;
}
