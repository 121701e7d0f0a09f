/* Pod name sets (shared, reference-counted) and the capture streams' registry. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store.h"

struct store_pods *store_pods_new(size_t n)
{
    struct store_pods *p = calloc(1, sizeof(*p) + n * sizeof(p->pods[0]));

    if (p)
        p->refs = 1;
    return p;
}

int store_pod_set(struct store_pod *p, const char *name_space, const char *name, const char *uid,
                  const char *labels)
{
    size_t nl = (name_space ? strlen(name_space) + 1 : 0) + strlen(name);
    size_t ul = uid ? strlen(uid) : 0, ll = labels ? strlen(labels) : 0;
    char *b = malloc(nl + ul + ll + 3);

    if (!b)
        return -ENOMEM;
    snprintf(b, nl + 1, "%s%s%s", name_space ? name_space : "", name_space ? "/" : "", name);
    memcpy(b + nl + 1, uid ? uid : "", ul + 1);
    memcpy(b + nl + ul + 2, labels ? labels : "", ll + 1);
    p->name = b;
    p->uid = b + nl + 1;
    p->labels = b + nl + ul + 2;
    return 0;
}

void store_pods_ref(struct store_pods *p)
{
    p->refs++;
}

void store_pods_unref(struct store_pods *p)
{
    if (!p || --p->refs > 0)
        return;
    for (size_t i = 0; i < p->n; i++)
        free(p->pods[i].name);
    free(p);
}

struct store_stream *store_stream_find(struct store *s, const char *capture_id)
{
    for (struct store_stream *st = s->streams; st; st = st->next)
        if (strcmp(st->capture_id, capture_id) == 0)
            return st;
    return NULL;
}

void store_stream_dirname(const char *capture_id, char *buf, size_t len)
{
    uint32_t h = 2166136261u;
    size_t o = 0;

    for (const char *c = capture_id; *c; c++) {
        h ^= (uint8_t)*c;
        h *= 16777619u;
    }
    for (const char *c = capture_id; *c && o < 64 && o + 1 < len; c++) {
        char x = *c;
        bool safe = (x >= 'a' && x <= 'z') || (x >= 'A' && x <= 'Z') || (x >= '0' && x <= '9') ||
                    x == '.' || x == '_' || x == '-';
        /* Never a leading dot: no "." or "..", no hidden directory recovery would skip. */
        buf[o] = safe && !(o == 0 && x == '.') ? x : '_';
        o++;
    }
    snprintf(buf + o, len - o, "-%08x", h);
}

void store_stream_free(struct store_stream *st)
{
    if (!st)
        return;
    store_pods_unref(st->pods);
    while (st->n_unwritten)
        store_pods_unref(st->unwritten[--st->n_unwritten]);
    for (uint32_t i = 0; i < st->n_ifaces; i++)
        free(st->ifaces[i].desc);
    free(st);
}

int store_stream_add(struct store *s, const char *capture_id, struct store_stream **out)
{
    struct store_stream *st = calloc(1, sizeof(*st));
    char name[128];

    if (!st)
        return -ENOMEM;
    snprintf(st->capture_id, sizeof(st->capture_id), "%s", capture_id);
    store_stream_dirname(capture_id, name, sizeof(name));
    snprintf(st->dir, sizeof(st->dir), "%s/%s", s->cfg.data_dir, name);
    st->store = s;
    st->next = s->streams;
    s->streams = st;
    *out = st;
    return 0;
}
