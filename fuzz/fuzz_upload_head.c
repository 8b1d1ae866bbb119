/*
 * tunnelmux — libFuzzer target for the streamed-upload head check (src/server/upload_head.c):
 * the bytes a public HTTP/1.1 client sends first, looked at before h2o parses them.
 *
 * Input layout: byte 0 picks max_head (small or large), the rest is the connection's input.
 * Invariants (a violation traps): an eligible head lies inside the input, its Content-Length
 * name is inside the head and reads "content-length" (any case), the length is within the limits;
 * every shorter prefix of an eligible head is PARTIAL (never eligible with another length).
 */
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "server/upload_head.h"

#define CHECK(cond)                                                                                                                \
    do {                                                                                                                           \
        if (!(cond))                                                                                                               \
            __builtin_trap();                                                                                                      \
    } while (0)

#define MIN_BODY 16
#define MAX_BODY 1000000

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t max_head = (data[0] & 1) ? 64 : 65536;
    const char *buf = (const char *)data + 1;
    size_t len = size - 1;
    upload_head h;
    memset(&h, 0, sizeof(h));
    int r = upload_head_parse(buf, len, max_head, MIN_BODY, MAX_BODY, &h);
    CHECK(r == UPLOAD_HEAD_ELIGIBLE || r == UPLOAD_HEAD_NO || r == UPLOAD_HEAD_PARTIAL);
    if (r != UPLOAD_HEAD_ELIGIBLE)
        return 0;
    CHECK(h.head_len > 0 && h.head_len <= len && h.head_len <= max_head);
    if (h.chunked) { /* Transfer-Encoding: chunked, the header to hide */
        CHECK(h.cl_name_off + UPLOAD_HIDDEN_TE_HEADER_LEN <= h.head_len);
        CHECK(strncasecmp(buf + h.cl_name_off, "transfer-encoding", 17) == 0);
        CHECK(h.content_length == 0);
    } else {
        CHECK(h.cl_name_off + UPLOAD_HIDDEN_HEADER_LEN <= h.head_len);
        CHECK(strncasecmp(buf + h.cl_name_off, "content-length", 14) == 0);
        CHECK(h.content_length >= MIN_BODY && h.content_length <= MAX_BODY);
    }
    for (size_t cut = 0; cut < h.head_len; cut += 1 + cut / 8) {
        upload_head p;
        CHECK(upload_head_parse(buf, cut, max_head, MIN_BODY, MAX_BODY, &p) == UPLOAD_HEAD_PARTIAL);
    }
    return 0;
}
