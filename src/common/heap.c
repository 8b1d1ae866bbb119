/* tunnelmux — heap settings for a proxy's allocation pattern (see heap.h). */
#include "common/heap.h"
#include "common/log.h"

#include <malloc.h>

int heap_tune(void)
{
#ifdef M_MMAP_THRESHOLD
    int a = mallopt(M_MMAP_THRESHOLD, HEAP_MMAP_THRESHOLD_BYTES);
    int b = mallopt(M_TRIM_THRESHOLD, HEAP_TRIM_BYTES);
    return a == 1 && b == 1 ? 0 : -1;
#else
    return 0;
#endif
}

#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
#define HAVE_MALLINFO2 1
#endif

/* Releases after a burst; see heap.h. */
int heap_release_idle(heap_releaser *h, int64_t now_ms)
{
#ifdef HAVE_MALLINFO2
    if (now_ms < h->next_check_ms)
        return 0;
    h->next_check_ms = now_ms + HEAP_CHECK_MS;
    struct mallinfo2 mi = mallinfo2();
    size_t in_use = mi.uordblks; /* bytes in heap chunks (arenas); mmapped blocks return on free */
    if (in_use > h->peak_in_use)
        h->peak_in_use = in_use;
    /* quiet: in use has not risen (by more than HEAP_RISE_BYTES: an idle process still allocates a
     * little) for HEAP_QUIET_CHECKS checks in a row: a burst is over, not paused */
    if (in_use <= h->prev_in_use + HEAP_RISE_BYTES) {
        if (h->quiet < HEAP_QUIET_CHECKS)
            h->quiet++;
    } else {
        h->quiet = 0;
    }
    h->prev_in_use = in_use;
    if (h->quiet < HEAP_QUIET_CHECKS || h->peak_in_use - in_use <= HEAP_TRIM_BYTES || mi.fordblks <= HEAP_TRIM_BYTES ||
        (h->releases != 0 && now_ms - h->last_release_ms < HEAP_RELEASE_INTERVAL_MS))
        return 0;
    h->last_released = h->peak_in_use - in_use;
    malloc_trim(0);
    h->releases++;
    h->last_release_ms = now_ms;
    h->peak_in_use = in_use;
    return 1;
#else
    (void)h;
    (void)now_ms;
    return 0;
#endif
}

int heap_release_idle_logged(heap_releaser *h, int64_t now_ms, unsigned ev_mask)
{
    int released = heap_release_idle(h, now_ms);
    if (released)
        LOG_DEBUG(ev_mask, "heap: %zu MiB freed since the peak given back to the OS", h->last_released >> 20);
    return released;
}
