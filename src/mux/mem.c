/*
 * tunnelmux — allocator indirection (mem.h). A NULL mux_mem means the libc malloc family.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <protobuf-c/protobuf-c.h>

#include "mem.h"

/* Allocates |size| bytes through |mem| (NULL = malloc). Returns NULL on failure; caller owns it. */
void *mux_mem_malloc(const mux_mem *mem, size_t size)
{
    if (mem == NULL)
        return malloc(size);
    return mem->malloc(size, mem->user_data);
}

/* Zeroed array of |nmemb| × |size| through |mem| (NULL = calloc); NULL on failure or overflow.
 * A mux_mem without a calloc hook falls back to its malloc + memset. */
void *mux_mem_calloc(const mux_mem *mem, size_t nmemb, size_t size)
{
    if (mem == NULL)
        return calloc(nmemb, size);
    if (mem->calloc != NULL)
        return mem->calloc(nmemb, size, mem->user_data);
    if (size != 0 && nmemb > SIZE_MAX / size)
        return NULL;
    void *p = mem->malloc(nmemb * size, mem->user_data);
    if (p != NULL)
        memset(p, 0, nmemb * size);
    return p;
}

/* Resizes |ptr| (owned by the caller, from the same |mem|) to |size|. On failure returns NULL and
 * |ptr| stays valid and owned by the caller. */
void *mux_mem_realloc(const mux_mem *mem, void *ptr, size_t size)
{
    if (mem == NULL)
        return realloc(ptr, size);
    return mem->realloc(ptr, size, mem->user_data);
}

/* Frees |ptr| (NULL is allowed) that came from the same |mem|. */
void mux_mem_free(const mux_mem *mem, void *ptr)
{
    if (ptr == NULL)
        return;
    if (mem == NULL) {
        free(ptr);
        return;
    }
    mem->free(ptr, mem->user_data);
}

static void *pb_alloc(void *allocator_data, size_t size)
{
    return mux_mem_malloc((const mux_mem *)allocator_data, size);
}

static void pb_free(void *allocator_data, void *ptr)
{
    mux_mem_free((const mux_mem *)allocator_data, ptr);
}

/* Fills |pa| so protobuf-c allocates through |mem| (NULL = libc). |mem| is not copied: it must
 * outlive every use of |pa| and of the messages unpacked with it. */
void mux_mem_protobuf_allocator(const mux_mem *mem, struct ProtobufCAllocator *pa)
{
    pa->alloc = pb_alloc;
    pa->free = pb_free;
    pa->allocator_data = (void *)(uintptr_t)mem;
}
