/*
 * tunnelmux — tests of heap_release_idle (src/common/heap.c): a burst's freed memory goes back to
 * the OS once the burst is over, an idle or steady process never trims. Uses the real allocator
 * (each check test runs in its own forked process) and a fake clock; RSS is read from /proc.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check_main.h"
#include "common/heap.h"

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif

#define BLOCK (1024 * 1024)
#define NBLOCKS 160 /* 160 MiB burst in heap-sized blocks (below HEAP_MMAP_THRESHOLD_BYTES) */

static long rss_kib(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long size = 0, resident = 0;
    if (f == NULL)
        return -1;
    if (fscanf(f, "%ld %ld", &size, &resident) != 2)
        resident = -1;
    fclose(f);
    return resident * 4; /* 4 KiB pages */
}

START_TEST(test_burst_released)
{
#ifdef UNDER_ASAN
    return; /* ASan replaces malloc: glibc's heap is not the one in use */
#endif
    ck_assert_int_eq(heap_tune(), 0);
    heap_releaser h;
    memset(&h, 0, sizeof(h));
    int64_t now = 1000;
    ck_assert_int_eq(heap_release_idle(&h, now), 0); /* baseline */
    long before = rss_kib();
    char *b[NBLOCKS];
    for (int i = 0; i < NBLOCKS; i++) {
        b[i] = malloc(BLOCK);
        ck_assert_ptr_nonnull(b[i]);
        memset(b[i], i, BLOCK); /* resident */
    }
    now += HEAP_CHECK_MS;
    ck_assert_int_eq(heap_release_idle(&h, now), 0); /* growing: never during a ramp */
    long peak = rss_kib();
    ck_assert_int_gt(peak - before, NBLOCKS * 1024 * 9 / 10);
    /* the burst ends; the last block pins the top of the heap, so only a trim of the middle helps */
    for (int i = 0; i < NBLOCKS - 1; i++)
        free(b[i]);
    ck_assert_int_eq(heap_release_idle(&h, now + 1), 0);           /* at most one look per HEAP_CHECK_MS */
    ck_assert_int_gt(rss_kib() - before, NBLOCKS * 1024 * 8 / 10); /* glibc alone keeps it */
    /* not before the in-use bytes stayed down for HEAP_QUIET_CHECKS looks: a pause is not an end */
    for (int i = 1; i < HEAP_QUIET_CHECKS; i++) {
        now += HEAP_CHECK_MS;
        ck_assert_int_eq(heap_release_idle(&h, now), 0);
    }
    now += HEAP_CHECK_MS;
    ck_assert_int_eq(heap_release_idle(&h, now), 1);
    ck_assert_uint_ge(h.last_released, (size_t)(NBLOCKS - 2) * BLOCK);
    long after = rss_kib();
    ck_assert_msg(after - before < 16 * 1024, "RSS before %ld KiB, peak %ld, after release %ld", before, peak, after);
    /* idle afterwards: no more trims */
    for (int i = 0; i < 20; i++) {
        now += HEAP_CHECK_MS;
        ck_assert_int_eq(heap_release_idle(&h, now), 0);
    }
    free(b[NBLOCKS - 1]);
}
END_TEST

/* A steady load whose in-use bytes swing by less than HEAP_TRIM_BYTES is left alone. */
START_TEST(test_steady_load_not_trimmed)
{
#ifdef UNDER_ASAN
    return;
#endif
    ck_assert_int_eq(heap_tune(), 0);
    heap_releaser h;
    memset(&h, 0, sizeof(h));
    int64_t now = 1000;
    enum { N = 16 }; /* 16 MiB swing */
    char *b[N];
    for (int round = 0; round < 30; round++) {
        for (int i = 0; i < N; i++) {
            b[i] = malloc(BLOCK);
            ck_assert_ptr_nonnull(b[i]);
            memset(b[i], 1, BLOCK);
        }
        now += HEAP_CHECK_MS;
        ck_assert_int_eq(heap_release_idle(&h, now), 0);
        for (int i = 0; i < N; i++)
            free(b[i]);
        now += HEAP_CHECK_MS;
        ck_assert_int_eq(heap_release_idle(&h, now), 0);
    }
    ck_assert_uint_eq(h.releases, 0);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("heap");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_burst_released);
    tcase_add_test(tc, test_steady_load_not_trimmed);
    suite_add_tcase(s, tc);
    return s;
}

TM_CHECK_MAIN(make_suite)
