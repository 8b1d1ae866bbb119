/* Unit tests for the `:status 100` HEADERS frame of src/server/h2_body.c (PROTOCOL.md §9.3,
 * docs/ARCHITECTURE.md §8): exact bytes, and read back as one whole HEADERS frame without END_STREAM
 * whose block is a literal that touches no dynamic table (python3-h2 decodes it end to end in
 * tests/e2e/test_expect_continue.sh). */
#include <string.h>

#include "check_main.h"
#include "server/h2_body.h"

START_TEST(test_bytes)
{
    uint8_t f[H2_BODY_CONTINUE_FRAME_LEN + 1];
    memset(f, 0xee, sizeof(f));
    ck_assert_uint_eq(h2_body_continue_frame(f, 1), H2_BODY_CONTINUE_FRAME_LEN);
    static const uint8_t want[] = {0x00, 0x00, 0x05,       /* length 5 */
                                   0x01,                   /* HEADERS */
                                   0x04,                   /* END_HEADERS, no END_STREAM */
                                   0x00, 0x00, 0x00, 0x01, /* stream 1 */
                                   0x08, 0x03, '1',  '0',  '0'};
    ck_assert_int_eq(memcmp(f, want, sizeof(want)), 0);
    ck_assert_uint_eq(f[H2_BODY_CONTINUE_FRAME_LEN], 0xee); /* nothing written past the frame */

    h2_body_continue_frame(f, 0x7fffffff); /* the largest stream id */
    ck_assert_int_eq(memcmp(f + 5, "\x7f\xff\xff\xff", 4), 0);
}
END_TEST

/* Read back as a peer would (RFC 9113 §4.1, §6.2; RFC 7541 §6.2.2). */
START_TEST(test_decodes)
{
    uint8_t f[H2_BODY_CONTINUE_FRAME_LEN];
    h2_body_continue_frame(f, 7);
    uint32_t len = (uint32_t)f[0] << 16 | (uint32_t)f[1] << 8 | f[2];
    ck_assert_uint_eq(len + 9, H2_BODY_CONTINUE_FRAME_LEN); /* one whole frame */
    ck_assert_uint_eq(f[3], 0x1);                           /* HEADERS */
    ck_assert_uint_eq(f[4] & 0x1, 0);                       /* no END_STREAM: a final head follows */
    ck_assert_uint_eq(f[4] & 0x4, 0x4);                     /* END_HEADERS: no CONTINUATION */
    ck_assert_uint_eq(f[4] & 0x28, 0);                      /* neither PADDED nor PRIORITY */
    uint32_t id = ((uint32_t)f[5] << 24 | (uint32_t)f[6] << 16 | (uint32_t)f[7] << 8 | f[8]) & 0x7fffffffu;
    ck_assert_uint_eq(id, 7);
    const uint8_t *b = f + 9;
    ck_assert_uint_eq(b[0] & 0xf0, 0x00); /* literal without indexing: no dynamic table entry */
    ck_assert_uint_eq(b[0] & 0x0f, 8);    /* static index 8: ":status" (":status: 200" there; the name only) */
    ck_assert_uint_eq(b[1] & 0x80, 0);    /* no Huffman */
    ck_assert_uint_eq(b[1] & 0x7f, 3);
    ck_assert_int_eq(memcmp(b + 2, "100", 3), 0);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("server_h2_continue");
    TCase *tc = tcase_create("h2_continue");
    tcase_add_test(tc, test_bytes);
    tcase_add_test(tc, test_decodes);
    suite_add_tcase(s, tc);
    return s;
}

TM_CHECK_MAIN(make_suite)
