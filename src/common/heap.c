/* tunnelmux — heap settings for a proxy's allocation pattern (see heap.h). */
#include "common/heap.h"

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
