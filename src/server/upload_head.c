/* tunnelmux server — which HTTP/1.1 request heads may have their body streamed (upload_head.h). */
#include "server/upload_head.h"

#include <string.h>
#include <strings.h>

#include "server/headers.h"
#include "common/phr.h"

#define MAX_HEADERS 100 /* h2o's H2O_MAX_HEADERS: more and h2o answers 400 itself */

static int name_is(const struct phr_header *h, const char *lower)
{
    size_t n = strlen(lower);
    return h->name_len == n && strncasecmp(h->name, lower, n) == 0;
}

/* The value, without surrounding spaces/tabs, equals |lower| case-insensitively. */
static int value_is(const struct phr_header *h, const char *lower)
{
    const char *v = h->value;
    size_t n = h->value_len, want = strlen(lower);
    while (n > 0 && (v[0] == ' ' || v[0] == '\t'))
        v++, n--;
    while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
        n--;
    return n == want && strncasecmp(v, lower, n) == 0;
}

int upload_head_parse(const char *buf, size_t len, size_t max_head, uint64_t min_body, uint64_t max_body, upload_head *out)
{
    const char *method, *path;
    size_t method_len, path_len, nh = MAX_HEADERS;
    int minor = -1;
    struct phr_header h[MAX_HEADERS];
    size_t in = len < max_head ? len : max_head;
    int r = phr_parse_request(buf, in, &method, &method_len, &path, &path_len, &minor, h, &nh, 0);
    if (r == -2)
        return in < len ? UPLOAD_HEAD_NO : UPLOAD_HEAD_PARTIAL; /* over max_head: h2o answers that */
    if (r < 0 || minor != 1)
        return UPLOAD_HEAD_NO;
    if (method_len == 7 && memcmp(method, "CONNECT", 7) == 0)
        return UPLOAD_HEAD_NO;
    int ncl = 0, nexpect = 0, nte = 0, te_chunked = 0;
    size_t host_off = 0, host_len = 0;
    int64_t cl = -1;
    size_t cl_off = 0, te_off = 0;
    for (size_t i = 0; i < nh; i++) {
        if (h[i].name == NULL || h[i].name_len == 0)
            return UPLOAD_HEAD_NO; /* obs-fold or an empty name */
        if (name_is(&h[i], "content-length")) {
            if (++ncl > 1)
                return UPLOAD_HEAD_NO;
            cl = headers_parse_content_length(h[i].value, h[i].value_len);
            cl_off = (size_t)(h[i].name - buf);
        } else if (name_is(&h[i], "expect")) {
            if (nexpect++ > 0 || !value_is(&h[i], "100-continue"))
                return UPLOAD_HEAD_NO;
        } else if (name_is(&h[i], "host")) {
            host_off = (size_t)(h[i].value - buf);
            host_len = h[i].value_len;
        } else if (name_is(&h[i], "transfer-encoding")) {
            if (++nte > 1)
                return UPLOAD_HEAD_NO;
            te_chunked = value_is(&h[i], "chunked");
            te_off = (size_t)(h[i].name - buf);
        } else if (name_is(&h[i], "upgrade") || name_is(&h[i], UPLOAD_HIDDEN_HEADER) || name_is(&h[i], UPLOAD_HIDDEN_TE_HEADER)) {
            return UPLOAD_HEAD_NO;
        }
    }
    out->head_len = (size_t)r;
    out->expect_continue = nexpect > 0;
    out->host_off = host_off;
    out->host_len = host_len;
    if (nte == 1 && te_chunked && ncl == 0) {
        out->content_length = 0;
        out->cl_name_off = te_off;
        out->chunked = 1;
        return UPLOAD_HEAD_ELIGIBLE;
    }
    if (nte != 0 || ncl != 1 || cl < 0 || (uint64_t)cl < min_body || (max_body > 0 && (uint64_t)cl > max_body))
        return UPLOAD_HEAD_NO;
    out->content_length = (uint64_t)cl;
    out->cl_name_off = cl_off;
    out->chunked = 0;
    return UPLOAD_HEAD_ELIGIBLE;
}
