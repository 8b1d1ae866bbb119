/*
 * tunnelmux — field-by-field comparison of decoded frames, shared by tests/mux/test_frame_codec_open.c
 * and fuzz/fuzz_frame_decode.c (the fast decoders against protobuf-c, encode/decode round trips).
 */
#ifndef TUNNELMUX_TESTS_FRAMES_SAME_H
#define TUNNELMUX_TESTS_FRAMES_SAME_H

#include <string.h>

#include "frame_codec.h"

static inline int iov_same(mux_iovec a, mux_iovec b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.base, b.base, a.len) == 0);
}

static inline int heads_same(const mux_head *x, const mux_head *y)
{
    if (x->flags != y->flags || x->status != y->status || !iov_same(x->method, y->method) || !iov_same(x->scheme, y->scheme) ||
        !iov_same(x->authority, y->authority) || !iov_same(x->path, y->path) || !iov_same(x->remote_addr, y->remote_addr) ||
        !iov_same(x->reason, y->reason) || x->nheaders != y->nheaders || x->has_local_queue != y->has_local_queue)
        return 0;
    if (x->has_local_queue && (x->local_queue_wait_ms != y->local_queue_wait_ms || x->local_queue_length != y->local_queue_length))
        return 0;
    for (size_t i = 0; i < x->nheaders; i++)
        if (!iov_same(x->headers[i].name, y->headers[i].name) || !iov_same(x->headers[i].value, y->headers[i].value))
            return 0;
    return 1;
}

static inline int frames_same(const mux_frame *a, const mux_frame *b)
{
    if (a->type != b->type || a->stream_id != b->stream_id)
        return 0;
    switch (a->type) {
    case MUX_FRAME_HELLO:
        return a->hello.version == b->hello.version && strcmp(a->hello.client_id, b->hello.client_id) == 0 &&
               strcmp(a->hello.auth_token, b->hello.auth_token) == 0 && a->hello.capabilities == b->hello.capabilities &&
               strcmp(a->hello.software, b->hello.software) == 0 && a->initial_stream_window == b->initial_stream_window &&
               a->initial_conn_window == b->initial_conn_window && a->max_message_size == b->max_message_size;
    case MUX_FRAME_WELCOME:
        return a->welcome.version == b->welcome.version && a->welcome.capabilities == b->welcome.capabilities &&
               a->welcome.ping_interval_ms == b->welcome.ping_interval_ms &&
               strcmp(a->welcome.public_url, b->welcome.public_url) == 0 && a->initial_stream_window == b->initial_stream_window &&
               a->initial_conn_window == b->initial_conn_window && a->max_message_size == b->max_message_size;
    case MUX_FRAME_REFUSE:
        return a->code == b->code && iov_same(a->reason, b->reason) && a->retry_after_ms == b->retry_after_ms;
    case MUX_FRAME_OPEN:
        return heads_same(&a->head, &b->head);
    case MUX_FRAME_DATA:
        return a->fin == b->fin && a->payload_len == b->payload_len &&
               (a->payload_len == 0 || memcmp(a->payload, b->payload, a->payload_len) == 0);
    case MUX_FRAME_WINDOW:
        return a->increment == b->increment;
    case MUX_FRAME_CLOSE:
        return a->code == b->code && iov_same(a->reason, b->reason);
    case MUX_FRAME_PING:
    case MUX_FRAME_PONG:
        return a->opaque == b->opaque;
    case MUX_FRAME_GOAWAY:
        return a->last_stream_id == b->last_stream_id && a->code == b->code && iov_same(a->reason, b->reason);
    }
    return 0;
}

#endif
