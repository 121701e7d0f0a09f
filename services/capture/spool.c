/* The bounded spool of unacknowledged batches (see spool.h). */
#include "capture/spool.h"

#include <errno.h>
#include <stdlib.h>

#include "rpc/call.h"

void capture_spool_init(struct capture_spool *sp, size_t max)
{
    sp->head = sp->tail = sp->cursor = NULL;
    sp->bytes = 0;
    sp->entries = 0;
    sp->max = max;
}

static void entry_free(struct capture_spool *sp, struct capture_spool_entry *e)
{
    sp->bytes -= e->charge;
    sp->entries--;
    free(e->bytes);
    rpc_wbuf_unref(e->body);
    free(e);
}

void capture_spool_free(struct capture_spool *sp)
{
    while (sp->head) {
        struct capture_spool_entry *e = sp->head;
        sp->head = e->next;
        entry_free(sp, e);
    }
    sp->tail = sp->cursor = NULL;
}

int capture_spool_push(struct capture_spool *sp, uint8_t *bytes, size_t len, struct rpc_wbuf *body,
                       size_t body_cap, const struct capture_spool_entry *meta)
{
    struct capture_spool_entry *e;
    size_t charge = len + (body ? body_cap : 0);

    if (charge < len || charge > sp->max || sp->bytes > sp->max - charge)
        return -ENOSPC;
    e = calloc(1, sizeof(*e));
    if (!e)
        return -ENOMEM;
    *e = *meta;
    e->next = NULL;
    e->bytes = bytes;
    e->len = len;
    e->body = body;
    e->charge = charge;
    if (sp->tail)
        sp->tail->next = e;
    else
        sp->head = e;
    sp->tail = e;
    if (!sp->cursor)
        sp->cursor = e;
    sp->bytes += charge;
    sp->entries++;
    return 0;
}

size_t capture_spool_ack(struct capture_spool *sp, uint64_t seq)
{
    size_t n = 0;

    while (sp->head && sp->head->seq <= seq) {
        struct capture_spool_entry *e = sp->head;
        sp->head = e->next;
        if (sp->cursor == e)
            sp->cursor = e->next;
        if (sp->tail == e)
            sp->tail = NULL;
        entry_free(sp, e);
        n++;
    }
    return n;
}

bool capture_spool_drop(struct capture_spool *sp, uint64_t seq)
{
    struct capture_spool_entry *prev = NULL;

    for (struct capture_spool_entry *e = sp->head; e; prev = e, e = e->next) {
        if (e->seq != seq)
            continue;
        if (prev)
            prev->next = e->next;
        else
            sp->head = e->next;
        if (sp->tail == e)
            sp->tail = prev;
        if (sp->cursor == e)
            sp->cursor = e->next;
        entry_free(sp, e);
        return true;
    }
    return false;
}

struct capture_spool_entry *capture_spool_next(struct capture_spool *sp)
{
    struct capture_spool_entry *e = sp->cursor;

    if (e)
        sp->cursor = e->next;
    return e;
}

void capture_spool_rewind(struct capture_spool *sp)
{
    sp->cursor = sp->head;
}
