/* Label selectors (see selector.h). */
#include "kube/selector.h"

#include <stdio.h>
#include <string.h>

#include "util/error.h"

static bool name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '.' || c == '/';
}

static const char *skip_ws(const char *p)
{
    while (*p == ' ' || *p == '\t')
        p++;
    return p;
}

/* A key or value at *p into out (cap bytes, values without '/'); advances *p. The length, or
 * -1 when it is too long. */
static int word(const char **p, char *out, size_t cap, bool slash)
{
    size_t n = 0;
    const char *s = *p;

    while (name_char(*s) && (slash || *s != '/')) {
        if (n + 1 >= cap)
            return -1;
        out[n++] = *s++;
    }
    out[n] = '\0';
    *p = s;
    return (int)n;
}

static int parse(const char *text, struct kube_label_selector *sel, char *err, size_t errlen);

int kube_label_selector_parse(const char *text, struct kube_label_selector *sel, char *err,
                              size_t errlen)
{
    int rc = parse(text, sel, err, errlen);

    /* The reason quotes what was typed: a line break in it must not break the one line. */
    for (size_t i = 0; rc != 0 && err && i < errlen && err[i]; i++)
        if ((unsigned char)err[i] < 0x20 || err[i] == 0x7f)
            err[i] = '?';
    return rc;
}

static int parse(const char *text, struct kube_label_selector *sel, char *err, size_t errlen)
{
    const char *p = text;

    memset(sel, 0, sizeof(*sel));
    if (strlen(text) > KUBE_SELECTOR_MAX_TEXT)
        return nr_errf(NR_EPARSE, err, errlen, "label selector: longer than %d bytes",
                       KUBE_SELECTOR_MAX_TEXT);
    p = skip_ws(p);
    while (*p) {
        struct kube_sel_req *r;
        bool neg = false;
        int n;

        if (sel->n == KUBE_SELECTOR_MAX_REQS)
            return nr_errf(NR_EPARSE, err, errlen, "label selector: more than %d requirements",
                           KUBE_SELECTOR_MAX_REQS);
        r = &sel->reqs[sel->n++];
        if (*p == '!') {
            neg = true;
            p = skip_ws(p + 1);
        }
        n = word(&p, r->key, sizeof(r->key), true);
        if (n <= 0)
            return nr_errf(NR_EPARSE, err, errlen,
                           "label selector \"%.200s\": a label key "
                           "expected at \"%.40s\"",
                           text, p);
        p = skip_ws(p);
        if (neg) {
            r->op = KUBE_SEL_NOT_EXISTS;
        } else if (*p == ',' || *p == '\0') {
            r->op = KUBE_SEL_EXISTS;
        } else if (*p == '=' || (*p == '!' && p[1] == '=')) {
            r->op = *p == '!' ? KUBE_SEL_NOT_IN : KUBE_SEL_IN;
            p += *p == '!' || p[1] == '=' ? 2 : 1;
            p = skip_ws(p);
            if (word(&p, r->vals[0], sizeof(r->vals[0]), false) < 0)
                return nr_errf(NR_EPARSE, err, errlen,
                               "label selector: a value longer than 63 "
                               "bytes");
            r->n_vals = 1;
        } else if ((strncmp(p, "in", 2) == 0 && !name_char(p[2])) ||
                   (strncmp(p, "notin", 5) == 0 && !name_char(p[5]))) {
            r->op = p[0] == 'i' ? KUBE_SEL_IN : KUBE_SEL_NOT_IN;
            p = skip_ws(p + (p[0] == 'i' ? 2 : 5));
            if (*p != '(')
                return nr_errf(NR_EPARSE, err, errlen,
                               "label selector \"%.200s\": \"(\" "
                               "expected after in/notin",
                               text);
            p = skip_ws(p + 1);
            for (;;) {
                if (r->n_vals == KUBE_SELECTOR_MAX_VALS)
                    return nr_errf(NR_EPARSE, err, errlen,
                                   "label selector: more than %d values "
                                   "in one set",
                                   KUBE_SELECTOR_MAX_VALS);
                if (word(&p, r->vals[r->n_vals], sizeof(r->vals[0]), false) < 0)
                    return nr_errf(NR_EPARSE, err, errlen,
                                   "label selector: a value longer than "
                                   "63 bytes");
                r->n_vals++;
                p = skip_ws(p);
                if (*p == ')')
                    break;
                if (*p != ',')
                    return nr_errf(NR_EPARSE, err, errlen,
                                   "label selector \"%.200s\": no "
                                   "closing parenthesis",
                                   text);
                p = skip_ws(p + 1);
            }
            p = skip_ws(p + 1);
        } else {
            return nr_errf(NR_EPARSE, err, errlen,
                           "label selector \"%.200s\": =, ==, !=, in or "
                           "notin expected at \"%.40s\"",
                           text, p);
        }
        p = skip_ws(p);
        if (*p == ',') {
            p = skip_ws(p + 1);
            if (!*p)
                return nr_errf(NR_EPARSE, err, errlen,
                               "label selector \"%.200s\": ends with a "
                               "comma",
                               text);
        } else if (*p) {
            return nr_errf(NR_EPARSE, err, errlen,
                           "label selector \"%.200s\": \",\" expected "
                           "at \"%.40s\"",
                           text, p);
        }
    }
    return 0;
}

/* The value of key in labels ("k=v,k=v"): true and value (cap bytes), or false. */
static bool label_value(const char *labels, const char *key, char *value, size_t cap)
{
    size_t klen = strlen(key);

    for (const char *p = labels; p && *p;) {
        const char *end = strchr(p, ','), *eq = strchr(p, '=');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (eq && (size_t)(eq - p) == klen && eq < p + len && strncmp(p, key, klen) == 0) {
            size_t vlen = len - klen - 1;
            snprintf(value, cap, "%.*s", (int)vlen, eq + 1);
            return true;
        }
        p = end ? end + 1 : p + len;
    }
    return false;
}

bool kube_label_selector_match(const struct kube_label_selector *sel, const char *labels)
{
    for (size_t i = 0; i < sel->n; i++) {
        const struct kube_sel_req *r = &sel->reqs[i];
        char v[128];
        bool has = label_value(labels, r->key, v, sizeof(v)), in = false;

        for (size_t k = 0; has && k < r->n_vals; k++)
            in = in || strcmp(v, r->vals[k]) == 0;
        switch (r->op) {
        case KUBE_SEL_EXISTS:
            if (!has)
                return false;
            break;
        case KUBE_SEL_NOT_EXISTS:
            if (has)
                return false;
            break;
        case KUBE_SEL_IN:
            if (!in)
                return false;
            break;
        case KUBE_SEL_NOT_IN:
            if (in)
                return false;
            break;
        }
    }
    return true;
}
