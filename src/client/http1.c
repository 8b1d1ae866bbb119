/*
 * tunnelmux client — HTTP/1.1 request serialisation and response head parsing (see http1.h).
 */
#include "http1.h"

#include "common/http_token.h"
#include "common/phr.h" /* picohttpparser, exported by libh2o-evloop */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

_Static_assert(sizeof(http1_chunked) == sizeof(struct phr_chunked_decoder), "http1_chunked mirrors phr_chunked_decoder");

/* Parses a content-length value: digits only (optional surrounding blanks), no overflow. */
static int parse_length(const char *v, size_t len, uint64_t *out)
{
    size_t i = 0, end = len;
    while (i < end && (v[i] == ' ' || v[i] == '\t'))
        i++;
    while (end > i && (v[end - 1] == ' ' || v[end - 1] == '\t'))
        end--;
    if (i == end || end - i > 19)
        return -1;
    uint64_t n = 0;
    for (; i < end; i++) {
        if (v[i] < '0' || v[i] > '9')
            return -1;
        n = n * 10 + (uint64_t)(v[i] - '0');
    }
    *out = n;
    return 0;
}

/* Request targets: origin-form starting with '/', or "*"; visible ASCII only (no SP, CTL). */
static int valid_path(const uint8_t *p, size_t len)
{
    if (len == 0)
        return 0;
    if (!(p[0] == '/' || (len == 1 && p[0] == '*')))
        return 0;
    for (size_t i = 0; i < len; i++)
        if (p[i] <= 0x20 || p[i] == 0x7f)
            return 0;
    return 1;
}

static int valid_authority(const uint8_t *p, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (p[i] <= 0x20 || p[i] == 0x7f)
            return 0;
    return 1;
}

/* ---------------------------------------------------------------- request */

typedef struct {
    char *p;
    size_t len, cap;
    int oom;
} sbuf;

static void sb_add(sbuf *b, const void *data, size_t len)
{
    if (b->oom)
        return;
    if (b->len + len + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 512;
        while (cap < b->len + len + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (p == NULL) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    if (len > 0) /* an empty header value may come with a NULL base (decoded from the wire) */
        memcpy(b->p + b->len, data, len);
    b->len += len;
    b->p[b->len] = '\0';
}

static void sb_str(sbuf *b, const char *s)
{
    sb_add(b, s, strlen(s));
}

#define sb_lit(b, lit) sb_add((b), "" lit, sizeof("" lit) - 1)

/* Sizes |b| for |cap| bytes up front (one allocation for the whole head). */
static void sb_init(sbuf *b, size_t cap)
{
    b->len = 0;
    b->oom = 0;
    b->cap = cap;
    b->p = malloc(cap);
    if (b->p == NULL) {
        b->cap = 0;
        b->oom = 1;
    }
}

int http1_build_request(const mux_head *head, http1_host_mode mode, const char *host_value, http1_request *out, const char **reason)
{
    const char *dummy;
    if (reason == NULL)
        reason = &dummy;
    memset(out, 0, sizeof(*out));
    if (!http_is_token((const char *)head->method.base, head->method.len)) {
        *reason = "invalid method";
        return MUX_ERR_PROTO;
    }
    if (!valid_path(head->path.base, head->path.len)) {
        *reason = "invalid request path";
        return MUX_ERR_PROTO;
    }
    if (!valid_authority(head->authority.base, head->authority.len)) {
        *reason = "invalid authority";
        return MUX_ERR_PROTO;
    }
    const char *host = NULL;
    size_t hostlen = 0;
    if (mode == HTTP1_HOST_PRESERVE && head->authority.len > 0) {
        host = (const char *)head->authority.base;
        hostlen = head->authority.len;
    } else if (host_value != NULL) {
        host = host_value;
        hostlen = strlen(host_value);
    }
    if (host == NULL || !http_is_clean_value(host, hostlen)) {
        *reason = "no usable host";
        return MUX_ERR_PROTO;
    }
    int upgrade = (head->flags & MUX_HEAD_UPGRADE) != 0;
    int end_stream = (head->flags & MUX_HEAD_END_STREAM) != 0;
    int have_cl = 0, have_upgrade = 0;
    uint64_t cl = 0;

    /* validate everything before writing anything */
    for (size_t i = 0; i < head->nheaders; i++) {
        const mux_header *h = &head->headers[i];
        const char *n = (const char *)h->name.base, *v = (const char *)h->value.base;
        if (!http_is_token(n, h->name.len)) {
            *reason = "invalid header name";
            return MUX_ERR_PROTO;
        }
        if (!http_is_clean_value(v, h->value.len)) {
            *reason = "invalid header value";
            return MUX_ERR_PROTO;
        }
        if (http_name_is(n, h->name.len, "content-length")) {
            uint64_t x;
            if (parse_length(v, h->value.len, &x) != 0 || (have_cl && x != cl)) {
                *reason = "invalid content-length";
                return MUX_ERR_PROTO;
            }
            have_cl = 1;
            cl = x;
        } else if (http_name_is(n, h->name.len, "upgrade")) {
            have_upgrade = 1;
        } else if (http_name_is(n, h->name.len, "sec-websocket-key") && h->value.len < sizeof(out->ws_key)) {
            if (h->value.len != 0) /* an empty value comes with a NULL base */
                memcpy(out->ws_key, v, h->value.len);
            out->ws_key[h->value.len] = '\0';
        }
    }
    if (upgrade && !have_upgrade) {
        *reason = "upgrade flag without upgrade header";
        return MUX_ERR_PROTO;
    }
    if (end_stream && have_cl && cl != 0) {
        *reason = "content-length with an empty body";
        return MUX_ERR_PROTO;
    }
    if (!upgrade)
        out->ws_key[0] = '\0';

    size_t need = head->method.len + head->path.len + hostlen + 160; /* + request line, Host, framing */
    for (size_t i = 0; i < head->nheaders; i++)
        need += head->headers[i].name.len + head->headers[i].value.len + 4;
    sbuf b;
    sb_init(&b, need);
    sb_add(&b, head->method.base, head->method.len);
    sb_lit(&b, " ");
    sb_add(&b, head->path.base, head->path.len);
    sb_lit(&b, " HTTP/1.1\r\nHost: ");
    sb_add(&b, host, hostlen);
    sb_lit(&b, "\r\n");
    for (size_t i = 0; i < head->nheaders; i++) {
        const mux_header *h = &head->headers[i];
        const char *n = (const char *)h->name.base;
        if (http_name_is(n, h->name.len, "host") || http_name_is(n, h->name.len, "content-length"))
            continue;
        if (http_is_hop_by_hop(n, h->name.len) && !(upgrade && http_name_is(n, h->name.len, "upgrade")))
            continue;
        sb_add(&b, h->name.base, h->name.len);
        sb_lit(&b, ": ");
        sb_add(&b, h->value.base, h->value.len);
        sb_lit(&b, "\r\n");
    }
    if (upgrade)
        sb_lit(&b, "Connection: Upgrade\r\n");
    if (have_cl) {
        char tmp[48];
        snprintf(tmp, sizeof(tmp), "Content-Length: %llu\r\n", (unsigned long long)cl);
        sb_str(&b, tmp);
        out->body = upgrade ? HTTP1_REQ_BODY_RAW : (cl > 0 ? HTTP1_REQ_BODY_LENGTH : HTTP1_REQ_BODY_NONE);
        out->content_length = cl;
    } else if (upgrade) {
        out->body = HTTP1_REQ_BODY_RAW;
    } else if (!end_stream) {
        sb_lit(&b, "Transfer-Encoding: chunked\r\n");
        out->body = HTTP1_REQ_BODY_CHUNKED;
    } else {
        out->body = HTTP1_REQ_BODY_NONE;
    }
    sb_lit(&b, "\r\n");
    if (b.oom) {
        free(b.p);
        *reason = "out of memory";
        return MUX_ERR_NOMEM;
    }
    out->buf = b.p;
    out->len = b.len;
    return 0;
}

size_t http1_chunk_header(char out[24], size_t len)
{
    int n = snprintf(out, 24, "%zx\r\n", len);
    return n > 0 ? (size_t)n : 0;
}

/* ---------------------------------------------------------------- response */

/* 1 when the last coding of a transfer-encoding value is "chunked". */
static int last_is_chunked(const char *v, size_t len)
{
    size_t e = len;
    while (e > 0 && (v[e - 1] == ' ' || v[e - 1] == '\t'))
        e--;
    size_t s = e;
    while (s > 0 && v[s - 1] != ',')
        s--;
    while (s < e && (v[s] == ' ' || v[s] == '\t'))
        s++;
    return e - s == 7 && strncasecmp(v + s, "chunked", 7) == 0;
}

int http1_parse_response(char *buf, size_t len, size_t last_len, int head_request, http1_response *out, const char **reason)
{
    const char *dummy;
    if (reason == NULL)
        reason = &dummy;
    struct phr_header hs[HTTP1_MAX_HEADERS];
    size_t nh = HTTP1_MAX_HEADERS;
    const char *msg = NULL;
    size_t msglen = 0;
    int minor = 0, status = 0;
    int r = phr_parse_response(buf, len, &minor, &status, &msg, &msglen, hs, &nh, last_len);
    if (r == -2) {
        *reason = "incomplete";
        return MUX_ERR_AGAIN;
    }
    if (r < 0) {
        /* picohttpparser fails the same way on a malformed line and on one header too many */
        *reason = nh == HTTP1_MAX_HEADERS ? "too many header fields in the response head" : "malformed response head";
        return MUX_ERR_PROTO;
    }
    memset(out, 0, sizeof(*out));
    if (status < 100 || status > 599) {
        *reason = "invalid status code";
        return MUX_ERR_PROTO;
    }
    if (!http_is_clean_value(msg, msglen)) {
        *reason = "invalid reason phrase";
        return MUX_ERR_PROTO;
    }
    out->minor_version = minor;
    out->status = status;
    out->reason.base = (uint8_t *)msg;
    out->reason.len = msglen;

    const char *conn = NULL;
    size_t connlen = 0;
    int have_cl = 0, have_te = 0, chunked = 0;
    uint64_t cl = 0;
    for (size_t i = 0; i < nh; i++) {
        if (hs[i].name == NULL) {
            *reason = "obsolete header line folding";
            return MUX_ERR_PROTO;
        }
        if (!http_is_token(hs[i].name, hs[i].name_len) || !http_is_clean_value(hs[i].value, hs[i].value_len)) {
            *reason = "invalid header";
            return MUX_ERR_PROTO;
        }
        char *n = (char *)hs[i].name; /* points into |buf|, which is ours */
        for (size_t k = 0; k < hs[i].name_len; k++)
            if (n[k] >= 'A' && n[k] <= 'Z')
                n[k] = (char)(n[k] - 'A' + 'a');
        if (http_name_is(n, hs[i].name_len, "content-length")) {
            uint64_t x;
            if (parse_length(hs[i].value, hs[i].value_len, &x) != 0 || (have_cl && x != cl)) {
                *reason = "invalid content-length";
                return MUX_ERR_PROTO;
            }
            have_cl = 1;
            cl = x;
        } else if (http_name_is(n, hs[i].name_len, "transfer-encoding")) {
            have_te = 1;
            chunked = last_is_chunked(hs[i].value, hs[i].value_len);
        } else if (http_name_is(n, hs[i].name_len, "connection")) {
            conn = hs[i].value; /* several Connection headers: the last one is honoured */
            connlen = hs[i].value_len;
        } else if (http_name_is(n, hs[i].name_len, "sec-websocket-accept")) {
            out->ws_accept.base = (uint8_t *)hs[i].value;
            out->ws_accept.len = hs[i].value_len;
        }
    }

    if (status == 101)
        out->body = HTTP1_RESP_BODY_RAW;
    else if (status < 200 || status == 204 || status == 304 || head_request)
        out->body = HTTP1_RESP_BODY_NONE;
    else if (have_te)
        out->body = chunked ? HTTP1_RESP_BODY_CHUNKED : HTTP1_RESP_BODY_CLOSE;
    else if (have_cl)
        out->body = cl > 0 ? HTTP1_RESP_BODY_LENGTH : HTTP1_RESP_BODY_NONE;
    else
        out->body = HTTP1_RESP_BODY_CLOSE;
    out->content_length = out->body == HTTP1_RESP_BODY_LENGTH ? cl : 0;
    if (conn != NULL && http_list_has(conn, connlen, "close", 5))
        out->keep_alive = 0;
    else if (minor >= 1)
        out->keep_alive = 1;
    else
        out->keep_alive = conn != NULL && http_list_has(conn, connlen, "keep-alive", 10);

    for (size_t i = 0; i < nh; i++) {
        const char *n = hs[i].name;
        size_t nl = hs[i].name_len;
        /* upgrade is hop-by-hop but belongs to a 101 and (RFC 9110 §15.5.22) to a 426 */
        int keep_upgrade = (status == 101 || status == 426) && http_name_is(n, nl, "upgrade");
        if (http_is_hop_by_hop(n, nl) && !keep_upgrade)
            continue;
        if (have_te && http_name_is(n, nl, "content-length"))
            continue; /* RFC 9112 §6.3: transfer-encoding overrides content-length */
        if (conn != NULL && !keep_upgrade && http_list_has(conn, connlen, n, nl))
            continue;
        mux_header *h = &out->headers[out->nheaders++];
        h->name.base = (uint8_t *)n;
        h->name.len = nl;
        h->value.base = (uint8_t *)hs[i].value;
        h->value.len = hs[i].value_len;
    }
    return r;
}

void http1_response_to_head(const http1_response *resp, mux_head *head)
{
    memset(head, 0, sizeof(*head));
    head->status = (unsigned)resp->status;
    head->reason = resp->reason;
    head->headers = resp->headers;
    head->nheaders = resp->nheaders;
    if (resp->body == HTTP1_RESP_BODY_NONE || (resp->status < 200 && resp->status != 101))
        head->flags |= MUX_HEAD_END_STREAM;
}

void http1_chunked_init(http1_chunked *d)
{
    memset(d, 0, sizeof(*d));
    d->consume_trailer = 1;
}

ssize_t http1_chunked_decode(http1_chunked *d, char *buf, size_t *len)
{
    ssize_t r = phr_decode_chunked((struct phr_chunked_decoder *)d, buf, len);
    if (r == -2)
        return MUX_ERR_AGAIN;
    if (r < 0)
        return MUX_ERR_PROTO;
    return r;
}
