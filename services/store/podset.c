/* Pod set blocks (see podset.h). */
#include "store/podset.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "pcapng/pcapng.h"
#include "util/error.h"

#define HEAD      20u /* since, total, first, count */
#define POD_FIXED 24u /* family, pad, three lengths, the address */

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static uint16_t get16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static uint64_t get64(const uint8_t *p)
{
    return (uint64_t)pcapng_le32(p) | (uint64_t)pcapng_le32(p + 4) << 32;
}

static int one_block(struct nr_buf *b, const struct store_pods *pods, size_t first, size_t count)
{
    size_t body = HEAD, total, start = b->len;
    uint8_t *p;
    int rc;

    for (size_t i = first; i < first + count; i++) {
        const struct store_pod *x = &pods->pods[i];
        body += POD_FIXED + strlen(x->name) + strlen(x->uid) + strlen(x->labels);
    }
    total = 12 + PCAPNG_PAD4(body);
    rc = nr_buf_reserve(b, total);
    if (rc != 0)
        return rc;
    p = b->data + start;
    memset(p, 0, total);
    pcapng_put32(p, STORE_PODSET_BLOCK);
    pcapng_put32(p + 4, (uint32_t)total);
    p += 8;
    pcapng_put32(p, (uint32_t)(uint64_t)pods->since_ns);
    pcapng_put32(p + 4, (uint32_t)((uint64_t)pods->since_ns >> 32));
    pcapng_put32(p + 8, (uint32_t)pods->n);
    pcapng_put32(p + 12, (uint32_t)first);
    pcapng_put32(p + 16, (uint32_t)count);
    p += HEAD;
    for (size_t i = first; i < first + count; i++) {
        const struct store_pod *x = &pods->pods[i];
        size_t nl = strlen(x->name), ul = strlen(x->uid), ll = strlen(x->labels);
        p[0] = x->family;
        put16(p + 2, (uint16_t)nl);
        put16(p + 4, (uint16_t)ul);
        put16(p + 6, (uint16_t)ll);
        memcpy(p + 8, x->ip, 16);
        memcpy(p + POD_FIXED, x->name, nl);
        memcpy(p + POD_FIXED + nl, x->uid, ul);
        memcpy(p + POD_FIXED + nl + ul, x->labels, ll);
        p += POD_FIXED + nl + ul + ll;
    }
    pcapng_put32(b->data + start + total - 4, (uint32_t)total);
    b->len = start + total;
    return 0;
}

int store_podset_append(struct nr_buf *b, const struct store_pods *pods)
{
    size_t done = 0;
    int rc = 0;

    do { /* an empty set is one block too: the history says when the last pod went */
        size_t k =
            pods->n - done < STORE_PODSET_PER_BLOCK ? pods->n - done : STORE_PODSET_PER_BLOCK;
        rc = one_block(b, pods, done, k);
        done += k;
    } while (rc == 0 && done < pods->n);
    return rc;
}

static bool printable(const uint8_t *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] < 0x20 || s[i] == 0x7f)
            return false;
    return true;
}

int store_podset_decode(const uint8_t *p, size_t block_len, struct store_podset_part *part,
                        struct store_pods *into)
{
    const uint8_t *body = p + 8, *end = p + block_len - 4;
    size_t off = HEAD;

    if (block_len < 12 + HEAD || pcapng_le32(p) != STORE_PODSET_BLOCK)
        return NR_EPARSE;
    part->since_ns = (int64_t)get64(body);
    part->total = pcapng_le32(body + 8);
    part->first = pcapng_le32(body + 12);
    part->count = pcapng_le32(body + 16);
    if (part->total > STORE_MAX_PODS || part->first > part->total ||
        part->count > part->total - part->first || part->count > STORE_PODSET_PER_BLOCK ||
        (into && into->n != part->total))
        return NR_EPARSE;
    for (uint32_t i = 0; i < part->count; i++) {
        const uint8_t *x = body + off;
        size_t nl, ul, ll;
        if ((size_t)(end - body) - off < POD_FIXED)
            return NR_EPARSE;
        nl = get16(x + 2);
        ul = get16(x + 4);
        ll = get16(x + 6);
        if ((x[0] != 4 && x[0] != 6) || nl == 0 || nl > 2 * STORE_MAX_NAME + 1 ||
            ul > STORE_MAX_UID || ll > STORE_MAX_LABELS ||
            (size_t)(end - body) - off - POD_FIXED < nl + ul + ll ||
            !printable(x + POD_FIXED, nl + ul + ll))
            return NR_EPARSE;
        if (into) {
            struct store_pod *d = &into->pods[part->first + i];
            char name[2 * STORE_MAX_NAME + 2], uid[STORE_MAX_UID + 1], labels[STORE_MAX_LABELS + 1];
            memcpy(name, x + POD_FIXED, nl);
            name[nl] = '\0';
            memcpy(uid, x + POD_FIXED + nl, ul);
            uid[ul] = '\0';
            memcpy(labels, x + POD_FIXED + nl + ul, ll);
            labels[ll] = '\0';
            free(d->name);
            d->name = NULL; /* a failed store_pod_set below leaves nothing to free twice */
            d->family = x[0];
            memcpy(d->ip, x + 8, 16);
            if (store_pod_set(d, NULL, name, uid, labels) != 0)
                return -ENOMEM;
        }
        off += POD_FIXED + nl + ul + ll;
    }
    return 0;
}
