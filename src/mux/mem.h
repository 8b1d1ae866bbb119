/* tunnelmux — allocator indirection (mux_mem). NULL mem = libc. */
#ifndef MUX_MEM_INTERNAL_H
#define MUX_MEM_INTERNAL_H

#include "mux/mux.h"

void *mux_mem_malloc(const mux_mem *mem, size_t size);
void *mux_mem_calloc(const mux_mem *mem, size_t nmemb, size_t size);
void *mux_mem_realloc(const mux_mem *mem, void *ptr, size_t size);
void mux_mem_free(const mux_mem *mem, void *ptr);
/* A ProtobufCAllocator that routes to |mem| (|pa| is filled; |mem| must outlive its use). */
struct ProtobufCAllocator;
void mux_mem_protobuf_allocator(const mux_mem *mem, struct ProtobufCAllocator *pa);

#endif
