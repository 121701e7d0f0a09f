/* Pod targeting: the selector, the targeted pods kept from list + watch, and the sorted set
 * of their addresses that the capture turns into a filter and sends to the store. */
#include "kube/target.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "util/error.h"

struct kube_regex {
    pcre2_code *code;
    pcre2_match_data *md;      /* every match's: the interpreter keeps its frames in it */
    pcre2_match_context *mctx; /* the match and heap limits */
};

static void regex_free(struct kube_regex *re)
{
    if (re == NULL)
        return;
    pcre2_match_context_free(re->mctx);
    pcre2_match_data_free(re->md);
    pcre2_code_free(re->code);
    free(re);
}

/* Skips a character class from its '[' and returns what follows its ']' (PCRE2's rules: a ']'
 * first is a character, a backslash escapes, [:name:] is a POSIX class). One pass. */
static const char *skip_class(const char *p)
{
    bool posix = false;

    p++;
    if (*p == '^')
        p++;
    if (*p == ']')
        p++;
    while (*p != '\0') {
        if (p[0] == '\\' && p[1] != '\0') {
            p += 2;
        } else if (p[0] == '[' && p[1] == ':') {
            posix = true;
            p += 2;
        } else if (posix && p[0] == ':' && p[1] == ']') {
            posix = false;
            p += 2;
        } else if (p[0] == ']') {
            return p + 1;
        } else {
            p++;
        }
    }
    return p;
}

/* The offset of GNU's \< or \> outside classes and \Q...\E, or -1: glibc read them as word
 * boundaries, PCRE2 reads them as '<' and '>', which no pod name holds, so such a regex
 * would silently record nothing. */
static long gnu_word_boundary(const char *re)
{
    const char *p = re;

    while (*p != '\0') {
        if (p[0] == '\\' && p[1] == 'Q') {
            const char *end = strstr(p + 2, "\\E");
            p = end ? end + 2 : p + strlen(p);
        } else if (p[0] == '\\') {
            if (p[1] == '<' || p[1] == '>')
                return (long)(p - re);
            p += p[1] != '\0' ? 2 : 1;
        } else if (p[0] == '[') {
            p = skip_class(p);
        } else {
            p++;
        }
    }
    return -1;
}

/* Compiles a pod-name regex with the bounds of target.h; err as kube_regex_check. */
static int regex_compile(const char *pattern, struct kube_regex **out, char *err, size_t errlen)
{
    pcre2_compile_context *cc = NULL;
    struct kube_regex *re = NULL;
    long gnu = gnu_word_boundary(pattern);
    PCRE2_SIZE off = 0;
    int code = 0, rc = 0;

    *out = NULL;
    if (gnu >= 0) {
        rc = nr_errf(-EINVAL, err, errlen,
                     "\\%c at offset %ld is GNU's word boundary, which PCRE2 reads as the "
                     "character %c: use \\b",
                     pattern[gnu + 1], gnu, pattern[gnu + 1]);
        goto out;
    }
    cc = pcre2_compile_context_create(NULL);
    re = calloc(1, sizeof(*re));
    if (cc == NULL || re == NULL || pcre2_set_max_pattern_length(cc, KUBE_REGEX_MAX) != 0 ||
        pcre2_set_parens_nest_limit(cc, KUBE_REGEX_NEST_MAX) != 0) {
        rc = -ENOMEM;
        goto out;
    }
    /* Names are ASCII: no (*UTF), so a match never depends on UTF-8 checks. */
    re->code =
        pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, PCRE2_NEVER_UTF, &code, &off, cc);
    if (re->code == NULL) {
        PCRE2_UCHAR msg[160];

        if (code == PCRE2_ERROR_PATTERN_STRING_TOO_LONG) {
            rc = nr_errf(-EINVAL, err, errlen, "%zu bytes, at most %d", strlen(pattern),
                         KUBE_REGEX_MAX);
        } else if (code == PCRE2_ERROR_HEAP_FAILED) {
            rc = -ENOMEM;
        } else {
            if (pcre2_get_error_message(code, msg, sizeof(msg)) < 0)
                snprintf((char *)msg, sizeof(msg), "PCRE2 error %d", code);
            rc = nr_errf(-EINVAL, err, errlen, "%s at offset %zu", (const char *)msg, (size_t)off);
        }
        goto out;
    }
    re->md = pcre2_match_data_create(1, NULL);
    re->mctx = pcre2_match_context_create(NULL);
    if (re->md == NULL || re->mctx == NULL ||
        pcre2_set_match_limit(re->mctx, KUBE_REGEX_MATCH_LIMIT) != 0 ||
        pcre2_set_heap_limit(re->mctx, KUBE_REGEX_HEAP_KIB) != 0) {
        rc = -ENOMEM;
        goto out;
    }
    *out = re;
    re = NULL;
out:
    regex_free(re);
    pcre2_compile_context_free(cc);
    return rc;
}

int kube_regex_check(const char *pattern, char *err, size_t errlen)
{
    struct kube_regex *re;
    int rc = regex_compile(pattern, &re, err, errlen);

    regex_free(re);
    return rc;
}

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

        rc = regex_compile(pod_regex, &s->re, why, sizeof(why));
        if (rc == -EINVAL)
            nr_errf(rc, err, errlen, "invalid --pod-regex \"%.100s%s\": %s", pod_regex,
                    strlen(pod_regex) > 100 ? "..." : "", why);
        if (rc != 0)
            return rc;
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
    regex_free(s->re);
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

bool kube_selector_match(const struct kube_selector *s, const struct kube_pod *pod, bool *limited)
{
    int rc;

    if (pod->host_network || pod->finished || pod->n_ips == 0)
        return false;
    if (s->n_namespaces > 0 && !in_list(s->namespaces, s->n_namespaces, pod->namespace))
        return false;
    if (in_list(s->excluded, s->n_excluded, pod->namespace))
        return false;
    if (s->re == NULL)
        return true;
    rc = pcre2_match(s->re->code, (PCRE2_SPTR)pod->name, strlen(pod->name), 0, 0, s->re->md,
                     s->re->mctx);
    if (rc == PCRE2_ERROR_NOMATCH)
        return false;
    /* A limit (match, heap, or a lower depth or match limit the pattern sets), or out of
     * memory: the pod counts as matching rather than escape the recording (target.h). */
    if (rc < 0 && limited != NULL)
        *limited = true;
    return true;
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

/* Whether the last committed set holds the pod (after a relist, a pod already reported). */
static bool committed(const struct kube_target *t, const struct kube_pod *pod)
{
    for (size_t i = 0; i < t->set.n; i++) {
        const struct kube_target_entry *e = &t->set.entries[i];

        if (strcmp(e->name, pod->name) == 0 && strcmp(e->namespace, pod->namespace) == 0 &&
            strcmp(e->uid, pod->uid) == 0)
            return true;
    }
    return false;
}

int kube_target_apply(struct kube_target *t, enum kube_event_type type, const struct kube_pod *pod)
{
    size_t i;
    bool keep, limited = false;
    int rc = 0;

    if (type != KUBE_EVENT_ADDED && type != KUBE_EVENT_MODIFIED && type != KUBE_EVENT_DELETED)
        return 0;
    i = find_pod(t, pod);
    keep = type != KUBE_EVENT_DELETED && kube_selector_match(t->sel, pod, &limited);
    if (!keep) {
        if (i < t->n_pods)
            t->pods[i] = t->pods[--t->n_pods];
        return 0;
    }
    if (limited && i == t->n_pods && !committed(t, pod))
        rc = KUBE_TARGET_LIMITED;
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
    return rc;
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
