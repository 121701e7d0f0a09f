/* Bounded growable buffers (see buf.h). */
#include "util/buf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void nr_buf_init(struct nr_buf *b, size_t max)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max;
}

void nr_buf_free(struct nr_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

int nr_buf_reserve(struct nr_buf *b, size_t more)
{
    if (more > b->max || b->len > b->max - more)
        return -EOVERFLOW;
    size_t need = b->len + more;
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    if (cap > b->max)
        cap = b->max;
    uint8_t *p = realloc(b->data, cap);
    if (!p)
        return -ENOMEM;
    b->data = p;
    b->cap = cap;
    return 0;
}

int nr_buf_append(struct nr_buf *b, const void *p, size_t n)
{
    int rc = nr_buf_reserve(b, n);
    if (rc == 0 && n) {
        memcpy(b->data + b->len, p, n);
        b->len += n;
    }
    return rc;
}

void nr_buf_consume(struct nr_buf *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
}

void nr_buf_reset(struct nr_buf *b, size_t keep)
{
    b->len = 0;
    if (b->cap > keep)
        nr_buf_free(b);
}
