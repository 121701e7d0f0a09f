/* Pod targeting: the selector, the targeted pods kept from list + watch, and the sorted set
 * of their addresses that the capture turns into a filter and sends to the store. */
#include "kube/target.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kube/regex_guard.h"
#include "util/error.h"

static void free_list(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

/* Splits a comma-separated list of namespace names. */
static int split_names(const char *csv, char ***out, size_t *n, char *err, size_t errlen)
{
    char **v = NULL;
    size_t count = 0;
    const char *p = csv;
    int rc = 0;

    *out = NULL;
    *n = 0;
    if (csv == NULL)
        return 0;
    while (*p != '\0') {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        const char *s = p;
        char **nv;

        p += len + (end != NULL);
        while (len > 0 && (*s == ' ' || *s == '\t')) {
            s++;
            len--;
        }
        while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t'))
            len--;
        if (len == 0)
            continue;
        for (size_t i = 0; i < len; i++) {
            if (len > KUBE_NAMESPACE_MAX ||
                !((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-')) {
                if (err != NULL && errlen > 0)
                    snprintf(err, errlen, "invalid namespace \"%.*s\": not a DNS label",
                             (int)(len > 64 ? 64 : len), s);
                rc = -EINVAL;
                goto fail;
            }
        }
        nv = realloc(v, (count + 1) * sizeof(*v));
        if (nv == NULL) {
            rc = -ENOMEM;
            goto fail;
        }
        v = nv;
        v[count] = strndup(s, len);
        if (v[count] == NULL) {
            rc = -ENOMEM;
            goto fail;
        }
        count++;
    }
    *out = v;
    *n = count;
    return 0;
fail:
    free_list(v, count);
    return rc;
}

int kube_selector_init(struct kube_selector *s, const char *pod_regex, const char *namespaces,
                       const char *excluded, char *err, size_t errlen)
{
    int rc;

    memset(s, 0, sizeof(*s));
    if (pod_regex != NULL && pod_regex[0] != '\0') {
        char why[256];
        if (kube_regex_check(pod_regex, why, sizeof(why)) != 0) {
            if (err != NULL && errlen > 0)
                snprintf(err, errlen, "--pod-regex \"%.100s%s\" %s", pod_regex,
                         strlen(pod_regex) > 100 ? "..." : "", why);
            return -EINVAL;
        }
        rc = regcomp(&s->re, pod_regex, REG_EXTENDED | REG_NOSUB);
        if (rc != 0) {
            char msg[128];

            regerror(rc, &s->re, msg, sizeof(msg));
            if (err != NULL && errlen > 0)
                snprintf(err, errlen, "invalid --pod-regex \"%.100s\": %s", pod_regex, msg);
            return rc == REG_ESPACE ? -ENOMEM : -EINVAL;
        }
        s->have_re = true;
    }
    rc = split_names(namespaces, &s->namespaces, &s->n_namespaces, err, errlen);
    if (rc == 0)
        rc = split_names(excluded, &s->excluded, &s->n_excluded, err, errlen);
    if (rc != 0)
        kube_selector_free(s);
    return rc;
}

void kube_selector_free(struct kube_selector *s)
{
    if (s->have_re)
        regfree(&s->re);
    free_list(s->namespaces, s->n_namespaces);
    free_list(s->excluded, s->n_excluded);
    memset(s, 0, sizeof(*s));
}

static bool in_list(char *const *v, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(v[i], name) == 0)
            return true;
    return false;
}

bool kube_selector_match(const struct kube_selector *s, const struct kube_pod *pod)
{
    if (pod->host_network || pod->finished || pod->n_ips == 0)
        return false;
    if (s->n_namespaces > 0 && !in_list(s->namespaces, s->n_namespaces, pod->namespace))
        return false;
    if (in_list(s->excluded, s->n_excluded, pod->namespace))
        return false;
    return !s->have_re || regexec(&s->re, pod->name, 0, NULL, 0) == 0;
}

void kube_target_init(struct kube_target *t, const struct kube_selector *sel)
{
    memset(t, 0, sizeof(*t));
    t->sel = sel;
}

void kube_target_free(struct kube_target *t)
{
    free(t->pods);
    free(t->set.entries);
    memset(t, 0, sizeof(*t));
}

void kube_target_clear(struct kube_target *t)
{
    t->n_pods = 0;
}

static size_t find_pod(const struct kube_target *t, const struct kube_pod *pod)
{
    for (size_t i = 0; i < t->n_pods; i++)
        if (strcmp(t->pods[i].name, pod->name) == 0 &&
            strcmp(t->pods[i].namespace, pod->namespace) == 0)
            return i;
    return t->n_pods;
}

int kube_target_apply(struct kube_target *t, enum kube_event_type type, const struct kube_pod *pod)
{
    size_t i;
    bool keep;

    if (type != KUBE_EVENT_ADDED && type != KUBE_EVENT_MODIFIED && type != KUBE_EVENT_DELETED)
        return 0;
    i = find_pod(t, pod);
    keep = type != KUBE_EVENT_DELETED && kube_selector_match(t->sel, pod);
    if (!keep) {
        if (i < t->n_pods)
            t->pods[i] = t->pods[--t->n_pods];
        return 0;
    }
    if (i == t->n_pods) {
        if (t->n_pods >= KUBE_TARGET_PODS_MAX)
            return NR_EOVERSIZE;
        if (t->n_pods == t->cap_pods) {
            size_t cap = t->cap_pods ? t->cap_pods * 2 : 16;
            struct kube_pod *p = realloc(t->pods, cap * sizeof(*p));

            if (p == NULL)
                return -ENOMEM;
            t->pods = p;
            t->cap_pods = cap;
        }
        t->n_pods++;
    }
    t->pods[i] = *pod;
    return 0;
}

static int entry_compare(const void *pa, const void *pb)
{
    const struct kube_target_entry *a = pa, *b = pb;
    int c = kube_ip_compare(&a->ip, &b->ip);

    if (c == 0)
        c = strcmp(a->namespace, b->namespace);
    if (c == 0)
        c = strcmp(a->name, b->name);
    if (c == 0)
        c = strcmp(a->uid, b->uid);
    if (c == 0)
        c = strcmp(a->labels, b->labels);
    return c;
}

static bool entry_equal(const struct kube_target_entry *a, const struct kube_target_entry *b)
{
    return entry_compare(a, b) == 0;
}

int kube_target_commit(struct kube_target *t)
{
    struct kube_target_entry *v;
    size_t n = 0, total = 0;
    bool changed;

    for (size_t i = 0; i < t->n_pods; i++)
        total += t->pods[i].n_ips;
    v = malloc((total ? total : 1) * sizeof(*v));
    if (v == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < t->n_pods; i++) {
        const struct kube_pod *p = &t->pods[i];

        for (size_t k = 0; k < p->n_ips; k++) {
            struct kube_target_entry *e = &v[n++];

            memset(e, 0, sizeof(*e));
            e->ip = p->ips[k];
            memcpy(e->namespace, p->namespace, sizeof(e->namespace));
            memcpy(e->name, p->name, sizeof(e->name));
            memcpy(e->uid, p->uid, sizeof(e->uid));
            memcpy(e->labels, p->labels, sizeof(e->labels));
        }
    }
    qsort(v, n, sizeof(*v), entry_compare);
    changed = !t->committed || n != t->set.n;
    for (size_t i = 0; !changed && i < n; i++)
        changed = !entry_equal(&v[i], &t->set.entries[i]);
    free(t->set.entries);
    t->set.entries = v;
    t->set.n = n;
    t->committed = true;
    return changed ? 1 : 0;
}
