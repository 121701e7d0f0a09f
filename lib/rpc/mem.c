/* The allocator nghttp2 sessions use (see internal.h): as malloc, except that a block of
 * RPC_MEM_MAP_MIN or more is a private mapping of its own. nghttp2 reserves a 16 KiB frame buffer
 * per session; a connection that sends only small frames (a hub's to its stores: window updates
 * and one request) writes its first page and nothing else, and a mapping's untouched pages take
 * no memory, where a heap block's are as good as used once the heap reuses them. A hub holding
 * a connection to each of thousands of stores saves about 12 KiB a connection. */
#include "rpc/internal.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define RPC_MEM_MAP_MIN (16u << 10)

/* Ahead of every block: its size and how it was made; 16 bytes keep the block aligned as
 * malloc's are. */
struct mem_head {
    size_t size;
    size_t mapped;
};

static void *mem_malloc(size_t size, void *user)
{
    struct mem_head *h;

    (void)user;
    if (size > SIZE_MAX - sizeof(*h))
        return NULL;
    if (size >= RPC_MEM_MAP_MIN) {
        void *p = mmap(NULL, sizeof(*h) + size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                       -1, 0);
        if (p == MAP_FAILED)
            return NULL;
        h = p;
        h->mapped = 1;
    } else {
        h = malloc(sizeof(*h) + size);
        if (!h)
            return NULL;
        h->mapped = 0;
    }
    h->size = size;
    return h + 1;
}

static void mem_free(void *ptr, void *user)
{
    struct mem_head *h;

    (void)user;
    if (!ptr)
        return;
    h = (struct mem_head *)ptr - 1;
    if (h->mapped)
        munmap(h, sizeof(*h) + h->size);
    else
        free(h);
}

static void *mem_calloc(size_t nmemb, size_t size, void *user)
{
    void *p;

    if (size && nmemb > SIZE_MAX / size)
        return NULL;
    p = mem_malloc(nmemb * size, user);
    if (p && !((struct mem_head *)p - 1)->mapped)
        memset(p, 0, nmemb * size); /* a fresh mapping is zero already */
    return p;
}

static void *mem_realloc(void *ptr, size_t size, void *user)
{
    struct mem_head *h;
    void *p;

    if (!ptr)
        return mem_malloc(size, user);
    h = (struct mem_head *)ptr - 1;
    if (!h->mapped && size < RPC_MEM_MAP_MIN) {
        struct mem_head *n = realloc(h, sizeof(*h) + size); /* on failure ptr stays as it was */
        if (!n)
            return NULL;
        n->size = size;
        return n + 1;
    }
    p = mem_malloc(size, user);
    if (!p)
        return NULL;
    memcpy(p, ptr, h->size < size ? h->size : size);
    mem_free(ptr, user);
    return p;
}

nghttp2_mem *rpc_mem__nghttp2(void)
{
    static nghttp2_mem mem = {NULL, mem_malloc, mem_free, mem_calloc, mem_realloc};

    return &mem;
}
