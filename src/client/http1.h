/*
 * tunnelmux client — HTTP/1.1 towards the local service, as pure functions (no I/O).
 *
 * Request: a mux_head received from the server is validated again (the server may be hostile) and
 * rebuilt into an HTTP/1.1 request head following the mapping conventions (docs/PROTOCOL.md §6):
 * request line, Host per HOST_HEADER, the head's headers in order minus hop-by-hop ones, exactly
 * one framing header. Response: picohttpparser (exported by libh2o-evloop) parses the local
 * service's head; it is turned into a mux_head with hop-by-hop headers removed and the body
 * framing decided. Chunked bodies are decoded in place.
 */
#ifndef TM_CLIENT_HTTP1_H
#define TM_CLIENT_HTTP1_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "mux/mux.h"

/* Header fields parsed in a local service's response head; more is refused with 502 ("too many
 * header fields"). Above the tunnel's own limit per head (100, PROTOCOL.md §10), which is checked
 * when the head is sent. */
#define HTTP1_MAX_HEADERS 128

/* How the Host header towards the local service is chosen (HOST_HEADER). */
typedef enum {
    HTTP1_HOST_PRESERVE = 0, /* the public authority from the head */
    HTTP1_HOST_VALUE = 1,    /* a fixed value (LOCAL_HOST:LOCAL_PORT for "rewrite", or a literal) */
} http1_host_mode;

/* Framing of the request body we send to the local service. */
typedef enum {
    HTTP1_REQ_BODY_NONE = 0,    /* END_STREAM in the head: no body */
    HTTP1_REQ_BODY_LENGTH = 1,  /* content-length from the head: bytes go out as they are */
    HTTP1_REQ_BODY_CHUNKED = 2, /* no length: we chunk-encode (http1_chunk_header / HTTP1_LAST_CHUNK) */
    HTTP1_REQ_BODY_RAW = 3,     /* upgrade request: bytes are passed through raw */
} http1_req_body;

/* Result of http1_build_request(). */
typedef struct {
    char *buf; /* malloc'ed request head; the caller frees it */
    size_t len;
    http1_req_body body;
    uint64_t content_length; /* with HTTP1_REQ_BODY_LENGTH */
    char ws_key[32];         /* Sec-WebSocket-Key of an upgrade request ("" if none) */
} http1_request;

/*
 * Validates request |head| and serialises it. |host_value| is used with HTTP1_HOST_VALUE (may be
 * NULL otherwise; also used when the head's authority is empty). Returns 0 and fills |*out| (the
 * caller frees out->buf), MUX_ERR_PROTO when the head is invalid (|*reason| set to a static
 * description: bad method, path, header name/value, conflicting content-length) or MUX_ERR_NOMEM.
 * Does not take ownership of |head|.
 */
int http1_build_request(const mux_head *head, http1_host_mode mode, const char *host_value, http1_request *out,
                        const char **reason);

/* Writes the chunk-size line for a chunk of |len| bytes ("1f4\r\n") into |out|; returns its length.
 * The chunk data is followed by "\r\n". */
size_t http1_chunk_header(char out[24], size_t len);
#define HTTP1_CHUNK_TRAILER "\r\n"
#define HTTP1_LAST_CHUNK "0\r\n\r\n"

/* Framing of the response body the local service sends. */
typedef enum {
    HTTP1_RESP_BODY_NONE = 0,    /* HEAD, 1xx, 204, 304, content-length 0 */
    HTTP1_RESP_BODY_LENGTH = 1,  /* content-length bytes */
    HTTP1_RESP_BODY_CHUNKED = 2, /* chunked, decode with http1_chunked_decode */
    HTTP1_RESP_BODY_CLOSE = 3,   /* read to close */
    HTTP1_RESP_BODY_RAW = 4,     /* 101: raw bytes both ways */
} http1_resp_body;

/* A parsed response head; pointers point into the buffer given to http1_parse_response(). */
typedef struct {
    int minor_version;
    int status;
    mux_iovec reason;
    mux_header headers[HTTP1_MAX_HEADERS]; /* forwarded headers: lower-case names, hop-by-hop removed */
    size_t nheaders;
    http1_resp_body body;
    uint64_t content_length; /* with HTTP1_RESP_BODY_LENGTH */
    mux_iovec ws_accept;     /* Sec-WebSocket-Accept value (101), empty if none */
    int keep_alive;          /* the connection may carry another request after this response (HTTP/1.1
                                without "Connection: close", or HTTP/1.0 with "Connection: keep-alive") */
} http1_response;

/*
 * Parses a response head from |buf| (|len| bytes, |last_len| of which were already seen by a
 * previous call that returned MUX_ERR_AGAIN, 0 the first time). Header names are lower-cased in
 * place in |buf|. |head_request| is 1 when the request method was HEAD.
 * Returns the head length (> 0; the body starts there) and fills |*out|, MUX_ERR_AGAIN when more
 * bytes are needed, or MUX_ERR_PROTO (|*reason| set) on a malformed head, too many headers, bad or
 * conflicting content-length. Does not take ownership of |buf|.
 */
int http1_parse_response(char *buf, size_t len, size_t last_len, int head_request, http1_response *out, const char **reason);

/*
 * Builds the mux_head to send to the server from |resp| (borrowing its pointers): status, reason,
 * headers, MUX_HEAD_END_STREAM when the body is HTTP1_RESP_BODY_NONE (or the status is 1xx).
 */
void http1_response_to_head(const http1_response *resp, mux_head *head);

/* Chunked transfer decoding state (picohttpparser's decoder, trailers consumed). Zero-init or
 * http1_chunked_init(). */
typedef struct {
    size_t bytes_left_in_chunk;
    char consume_trailer;
    char _hex_count;
    char _state;
} http1_chunked;

void http1_chunked_init(http1_chunked *d);

/*
 * Decodes chunked data in place: on return buf[0..*len) holds the decoded payload. Returns
 * MUX_ERR_AGAIN when the body continues, the number of undecoded bytes left after the last chunk
 * and trailers (>= 0) when the body is complete, or MUX_ERR_PROTO on malformed framing.
 */
ssize_t http1_chunked_decode(http1_chunked *d, char *buf, size_t *len);

#endif
