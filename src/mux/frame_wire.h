/*
 * tunnelmux — protobuf wire-format details shared by the hand-written frame paths
 * (frame_encode.c, frame_decode.c): wire types, the tags of the DATA and OPEN fast paths, the
 * limits protobuf-c applies that the fast paths must match. Private; definitions only.
 */
#ifndef MUX_FRAME_WIRE_H
#define MUX_FRAME_WIRE_H

#include <stdint.h>

/* wire types (protobuf encoding) */
enum { WT_VARINT = 0, WT_I64 = 1, WT_LEN = 2, WT_SGROUP = 3, WT_EGROUP = 4, WT_I32 = 5 };

/* tags of the DATA fast path: Frame.data (5, LEN), Data.stream_id (1, VARINT), Data.fin (2, VARINT),
 * Data.payload (3, LEN) */
#define TAG_FRAME_DATA 0x2A
#define TAG_DATA_STREAM_ID 0x08
#define TAG_DATA_FIN 0x10
#define TAG_DATA_PAYLOAD 0x1A
/* Frame.open (4, LEN); Open fields: stream_id (1), flags (2), status (7) VARINT; method (3),
 * scheme (4), authority (5), path (6), reason (8), headers (9), remote_addr (10) LEN; queue_wait_ms (11),
 * queue_length (12) VARINT */
#define TAG_FRAME_OPEN 0x22
#define OPEN_STREAM_ID 1
#define OPEN_FLAGS 2
#define OPEN_METHOD 3
#define OPEN_SCHEME 4
#define OPEN_AUTHORITY 5
#define OPEN_PATH 6
#define OPEN_STATUS 7
#define OPEN_REASON 8
#define OPEN_HEADERS 9
#define OPEN_REMOTE_ADDR 10
#define OPEN_QUEUE_WAIT_MS 11
#define OPEN_QUEUE_LENGTH 12
#define OPEN_LAST_FIELD OPEN_QUEUE_LENGTH
#define TAG(field, wt) ((uint8_t)((field) << 3 | (wt)))
/* protobuf-c reads a tag or a length prefix of at most 5 bytes (a longer, over-long encoding is an
 * error there): the OPEN fast path leaves such input to it */
#define PB_TAG_MAX 5
#define PB_LEN_PREFIX_MAX 5
/* OPEN heads with up to this many headers are decoded in one pass (kept on the stack meanwhile) */
#define OPEN_FAST_HEADERS 48
/* Open.headers (9, LEN), Header.name (1, LEN), Header.value (2, LEN) */
#define TAG_OPEN_HEADERS_LEN 1
#define TAG_HEADER_FIELD_LEN 1

/* Headers packed from a stack array up to this count; more are allocated through mux_mem. */
#define ENCODE_STACK_HEADERS 16

static const char empty_string[] = "";

#endif
