/*
 * tunnelmux — heap settings for a proxy's allocation pattern, and giving memory back after a burst.
 *
 * Both daemons allocate and free buffers from 64 KiB to a few MiB at a high rate (message
 * batches; response bytes waiting for a slow public reader grow up to a stream window, 4 MiB).
 * glibc's defaults serve those with mmap()/munmap() or grow and trim the heap with brk() again and
 * again: every cycle costs system calls and page faults on fresh zeroed pages (measured: ~0.5 page
 * fault per proxied 1 KiB request on the server; 20 parallel 10 MiB downloads doubled the server's
 * system time with a 4 MiB threshold). heap_tune() keeps such buffers in the heap and stops
 * trimming the top below a bound, trading a little RSS for steady throughput.
 *
 * That alone never returns the middle of the heap: after 5,000 slow readers went away the server
 * kept 2.65 GiB of RSS for 3.8 MiB in use. heap_release_idle() closes the gap: called from a
 * periodic timer, it gives free pages back (malloc_trim, which madvises free chunks in every arena)
 * once the bytes in use fell by more than HEAP_TRIM_BYTES below their peak since the last release
 * and have not risen for HEAP_QUIET_CHECKS seconds (a burst ended, rather than paused between two
 * downloads: giving pages back costs the next burst page faults), at most once per
 * HEAP_RELEASE_INTERVAL_MS. An idle
 * process never trims, a steady load rarely (its in-use bytes do not swing by 32 MiB); a burst's
 * memory goes back within a few seconds of its end.
 */
#ifndef TUNNELMUX_COMMON_HEAP_H
#define TUNNELMUX_COMMON_HEAP_H

#include <stddef.h>
#include <stdint.h>

#define HEAP_MMAP_THRESHOLD_BYTES (16 * 1024 * 1024) /* larger blocks still get their own mapping */
#define HEAP_TRIM_BYTES (32 * 1024 * 1024)           /* free heap kept before returning it to the OS */
#define HEAP_CHECK_MS 1000                           /* heap_release_idle looks at the heap this often */
#define HEAP_RELEASE_INTERVAL_MS 5000                /* and releases at most this often */
#define HEAP_QUIET_CHECKS 3                          /* only after this many checks in a row without the in-use bytes rising */
#define HEAP_RISE_BYTES (1024 * 1024)                /* growth between two checks that counts as rising */

/* Applies the settings above (call once from main, before the first allocation that matters).
 * Returns 0, or -1 when the C library refused one of them (harmless: defaults stay). */
int heap_tune(void);

/* State of heap_release_idle (embed one per process, in main's context; zero-init). */
typedef struct {
    int64_t next_check_ms; /* next time the heap is looked at */
    int64_t last_release_ms;
    size_t peak_in_use;   /* highest bytes in use seen since the last release */
    size_t prev_in_use;   /* bytes in use at the previous check */
    int quiet;            /* checks in a row (capped) in which the bytes in use did not rise */
    uint64_t releases;    /* times memory was given back */
    size_t last_released; /* in-use peak minus in-use at the last release (bytes made free since) */
} heap_releaser;

/*
 * Gives freed heap memory back to the OS after a burst (see above). Cheap to call often: it looks at
 * the heap (mallinfo2) once per HEAP_CHECK_MS of |now_ms| (a monotonic clock). Returns 1 when it
 * released memory now (then |h->last_released| says how much had been freed since the peak), 0
 * otherwise, and always 0 where the C library offers no way to do it.
 */
int heap_release_idle(heap_releaser *h, int64_t now_ms);

/* heap_release_idle for a daemon's periodic timer (both mains call it, at least once per
 * HEAP_CHECK_MS): also writes the DEBUG line "heap: N MiB freed since the peak given back to the
 * OS" under the log event |ev_mask| when memory went back. Returns what heap_release_idle did. */
int heap_release_idle_logged(heap_releaser *h, int64_t now_ms, unsigned ev_mask);

#endif
