/* The nodes' clocks from matched sightings (see clock.h). Pairs of nodes that exchanged packets
 * are few next to all pairs of a large cluster: they are kept in a hash table, not a matrix. */
#include "hub/clock.h"

#include <stdlib.h>
#include <string.h>

#define PAIRS_MIN 64
#define PAIRS_MAX (1u << 20) /* ordered pairs remembered; samples of further ones are dropped */

struct pair {
    uint32_t from, to; /* from + 1: 0 is a free slot */
    int64_t min_delay; /* the smallest received - sent */
    uint64_t count;
};

struct hub_clock {
    size_t n;
    struct pair *t;
    size_t slots, used;
};

struct hub_clock *hub_clock_new(size_t n)
{
    struct hub_clock *c = calloc(1, sizeof(*c));

    if (!c || n == 0 || n > UINT32_MAX - 1)
        goto fail;
    c->n = n;
    c->slots = PAIRS_MIN;
    c->t = calloc(c->slots, sizeof(*c->t));
    if (!c->t)
        goto fail;
    return c;
fail:
    hub_clock_free(c);
    return NULL;
}

void hub_clock_free(struct hub_clock *c)
{
    if (!c)
        return;
    free(c->t);
    free(c);
}

static size_t slot_of(const struct hub_clock *c, size_t from, size_t to)
{
    uint64_t h = ((uint64_t)from << 32 | to) * 0x9e3779b97f4a7c15ull;

    return (size_t)(h >> 20) & (c->slots - 1);
}

static struct pair *find(const struct hub_clock *c, size_t from, size_t to)
{
    for (size_t k = slot_of(c, from, to);; k = (k + 1) & (c->slots - 1)) {
        struct pair *p = &c->t[k];
        if (!p->from || (p->from == from + 1 && p->to == to))
            return p;
    }
}

static int grow(struct hub_clock *c)
{
    struct hub_clock bigger = {.n = c->n, .slots = c->slots * 2};

    bigger.t = calloc(bigger.slots, sizeof(*bigger.t));
    if (!bigger.t)
        return -1;
    for (size_t i = 0; i < c->slots; i++)
        if (c->t[i].from)
            *find(&bigger, c->t[i].from - 1, c->t[i].to) = c->t[i];
    free(c->t);
    c->t = bigger.t;
    c->slots = bigger.slots;
    return 0;
}

void hub_clock_sample(struct hub_clock *c, size_t from, size_t to, int64_t sent_ns,
                      int64_t received_ns)
{
    struct pair *p;

    if (!c || from >= c->n || to >= c->n || from == to)
        return;
    p = find(c, from, to);
    if (!p->from) {
        if (c->used >= PAIRS_MAX)
            return;
        if ((c->used + 1) * 2 > c->slots) {
            if (grow(c) != 0)
                return;
            p = find(c, from, to);
        }
        *p = (struct pair){.from = (uint32_t)from + 1, .to = (uint32_t)to, .min_delay = INT64_MAX};
        c->used++;
    }
    if (received_ns - sent_ns < p->min_delay)
        p->min_delay = received_ns - sent_ns;
    p->count++;
}

static int by_from(const void *x, const void *y)
{
    const struct pair *a = x, *b = y;

    return a->from < b->from ? -1 : a->from > b->from;
}

void hub_clock_solve(const struct hub_clock *c, size_t ref, struct hub_clock_offset *out)
{
    size_t *queue = NULL, *first = NULL, head = 0, tail = 0, m = 0;
    struct pair *edges = NULL;

    for (size_t i = 0; c && i < c->n; i++)
        out[i] = (struct hub_clock_offset){0};
    if (!c || ref >= c->n)
        return;
    out[ref].known = true;
    queue = malloc(c->n * sizeof(*queue));
    first = calloc(c->n + 2, sizeof(*first));
    edges = malloc((c->used + 1) * sizeof(*edges));
    if (!queue || !first || !edges)
        goto out;
    for (size_t i = 0; i < c->slots; i++)
        if (c->t[i].from)
            edges[m++] = c->t[i];
    qsort(edges, m, sizeof(*edges), by_from);
    for (size_t i = 0; i < m; i++) /* edges of node a: [first[a], first[a + 1]) */
        first[edges[i].from]++;
    for (size_t a = 1; a <= c->n + 1; a++)
        first[a] += first[a - 1];
    queue[tail++] = ref;
    /* Breadth first: each node through the first known node it exchanged packets with both
     * ways, so the chains are as short as they can be. */
    while (head < tail) {
        size_t a = queue[head++];
        for (size_t i = first[a]; i < first[a + 1]; i++) {
            size_t b = edges[i].to;
            const struct pair *back = find(c, b, a);
            int64_t ab = edges[i].min_delay, ba;
            if (out[b].known || !back->from)
                continue;
            ba = back->min_delay;
            out[b].known = true;
            out[b].offset_ns = out[a].offset_ns + (ab - ba) / 2;
            /* A negative sum (clocks that moved during the window) bounds nothing better
             * than zero. */
            out[b].uncertainty_ns = out[a].uncertainty_ns + (ab + ba > 0 ? (ab + ba) / 2 : 0);
            out[b].samples = edges[i].count + back->count;
            queue[tail++] = b;
        }
    }
out:
    free(queue);
    free(first);
    free(edges);
}
