/*
 * tunnelmux — picohttpparser as exported by libh2o-evloop: the library has the symbols but installs
 * no header (docs/ARCHITECTURE.md §7). The one copy of its prototypes (issue 17 §4): the server
 * parses request heads the way h2o does (security.c, upload_head.c); the client parses local
 * responses and chunked bodies (client/http1.c). Declarations only: whoever includes this links
 * libh2o-evloop (tmcommon itself does not use it).
 */
#ifndef TM_COMMON_PHR_H
#define TM_COMMON_PHR_H

#include <stddef.h>
#include <sys/types.h>

struct phr_header {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
};

/* Returns the head's length, -1 when invalid, -2 when incomplete (picohttpparser.h). */
int phr_parse_request(const char *buf, size_t len, const char **method, size_t *method_len, const char **path, size_t *path_len,
                      int *minor_version, struct phr_header *headers, size_t *num_headers, size_t last_len);

/* Returns the head's length, -1 when invalid, -2 when incomplete (picohttpparser.h). */
int phr_parse_response(const char *buf, size_t len, int *minor_version, int *status, const char **msg, size_t *msg_len,
                       struct phr_header *headers, size_t *num_headers, size_t last_len);

/* In-place chunked decoder (picohttpparser.h): zero-initialise; consume_trailer = 1 to eat trailers.
 * Returns -2 (more input), -1 (malformed) or the bytes left after the body; *bufsz becomes the
 * decoded length. */
struct phr_chunked_decoder {
    size_t bytes_left_in_chunk;
    char consume_trailer;
    char _hex_count;
    char _state;
};
ssize_t phr_decode_chunked(struct phr_chunked_decoder *decoder, char *buf, size_t *bufsz);

#endif
