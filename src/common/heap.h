/*
 * tunnelmux — heap settings for a proxy's allocation pattern.
 *
 * Both daemons allocate and free buffers from 64 KiB to a few MiB at a high rate (message
 * batches; response bytes waiting for a slow public reader grow up to a stream window, 4 MiB).
 * glibc's defaults serve those with mmap()/munmap() or grow and trim the heap with brk() again and
 * again: every cycle costs system calls and page faults on fresh zeroed pages (measured: ~0.5 page
 * fault per proxied 1 KiB request on the server; 20 parallel 10 MiB downloads doubled the server's
 * system time with a 4 MiB threshold). heap_tune() keeps such buffers in the heap and stops
 * trimming below a bound, trading a little idle RSS (at most HEAP_TRIM_BYTES kept free) for steady
 * throughput.
 */
#ifndef TUNNELMUX_COMMON_HEAP_H
#define TUNNELMUX_COMMON_HEAP_H

#define HEAP_MMAP_THRESHOLD_BYTES (16 * 1024 * 1024) /* larger blocks still get their own mapping */
#define HEAP_TRIM_BYTES (32 * 1024 * 1024)           /* free heap kept before returning it to the OS */

/* Applies the settings above (call once from main, before the first allocation that matters).
 * Returns 0, or -1 when the C library refused one of them (harmless: defaults stay). */
int heap_tune(void);

#endif
