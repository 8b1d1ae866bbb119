/*
 * tunnelmux server — which HTTP/1.1 request heads may have their body streamed (upload.c).
 *
 * Pure functions over the bytes at the start of a connection's input, before h2o parses them. The
 * head is parsed with the same picohttpparser h2o uses (exported by libh2o-evloop), so both agree
 * on where the head ends and which headers it has.
 */
#ifndef TM_SERVER_UPLOAD_HEAD_H
#define TM_SERVER_UPLOAD_HEAD_H

#include <stddef.h>
#include <stdint.h>

/* The name a streamed request's Content-Length header gets in h2o's input buffer: same length as
 * "content-length", so the head is rewritten in place and h2o sees a request without a body. */
#define UPLOAD_HIDDEN_HEADER "x-tm-hidden-cl"
#define UPLOAD_HIDDEN_HEADER_LEN 14
/* The same for a chunked request's Transfer-Encoding header (same length as "transfer-encoding"). */
#define UPLOAD_HIDDEN_TE_HEADER "x-tm-hidden-te-ch"
#define UPLOAD_HIDDEN_TE_HEADER_LEN 17

typedef struct upload_head {
    uint64_t content_length; /* the body's length (0 when chunked) */
    size_t head_len;         /* bytes of the head, through the empty line */
    size_t cl_name_off;      /* offset of the framing header's name (Content-Length, or Transfer-Encoding when chunked) */
    int chunked;             /* Transfer-Encoding: chunked, length unknown */
    size_t host_off;         /* the (last) Host header's value: offset and length (0: none) */
    size_t host_len;
    int expect_continue; /* the head has Expect: 100-continue (we answer it when the body is taken) */
} upload_head;

enum {
    UPLOAD_HEAD_ELIGIBLE = 1, /* complete, and its body may be streamed */
    UPLOAD_HEAD_NO = 0,       /* complete (or invalid): h2o's own path */
    UPLOAD_HEAD_PARTIAL = -2, /* the head has not all arrived yet */
};

/*
 * Looks at the request head at the start of |buf| (|len| bytes; not modified). Eligible means:
 * a well-formed HTTP/1.1 request head of at most |max_head| bytes and 100 header fields, no
 * obs-fold, method other than CONNECT, no Upgrade header, no Expect header other than one
 * "100-continue", and either exactly one Content-Length whose value is digits (optional whitespace
 * around, headers_parse_content_length), min_body <= value <= max_body (0 = no maximum), and no
 * Transfer-Encoding; or exactly one Transfer-Encoding whose value is "chunked" and no Content-Length. Anything ambiguous is left to
 * h2o (and security_reject_ambiguous). Fills |out| when eligible. Returns one of UPLOAD_HEAD_*.
 */
int upload_head_parse(const char *buf, size_t len, size_t max_head, uint64_t min_body, uint64_t max_body, upload_head *out);

#endif
