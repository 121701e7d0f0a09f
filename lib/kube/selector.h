/* Kubernetes label selectors as kubectl's -l takes them: requirements separated by commas, all
 * of which must hold — `key`, `!key`, `key=value` (or `==`), `key!=value`, `key in (a,b)`,
 * `key notin (a,b)`. As in Kubernetes, `!=` and `notin` also hold for a pod without the key.
 * Labels are matched in the "k=v,k=v" form lib/kube/pod.h keeps. Pure: unit-tested and fuzzed
 * (fuzz_kube_selector). */
#ifndef NR_KUBE_SELECTOR_H
#define NR_KUBE_SELECTOR_H

#include <stdbool.h>
#include <stddef.h>

#define KUBE_SELECTOR_MAX_TEXT 4096 /* bytes of selector text */
#define KUBE_SELECTOR_MAX_REQS 32
#define KUBE_SELECTOR_MAX_VALS 16 /* values of one in / notin */

enum kube_sel_op { KUBE_SEL_EXISTS, KUBE_SEL_NOT_EXISTS, KUBE_SEL_IN, KUBE_SEL_NOT_IN };

struct kube_label_selector {
    size_t n;
    struct kube_sel_req {
        enum kube_sel_op op; /* = and == are IN with one value, != is NOT_IN with one */
        char key[320];
        size_t n_vals;
        char vals[KUBE_SELECTOR_MAX_VALS][64];
    } reqs[KUBE_SELECTOR_MAX_REQS];
};

/* Parses text (NUL-terminated). "" selects everything. Returns 0, or NR_EPARSE with a one-line
 * reason in err ("label selector: \"a in (b\": no closing parenthesis"). */
int kube_label_selector_parse(const char *text, struct kube_label_selector *sel, char *err,
                              size_t errlen);

/* Whether labels ("k=v,k=v", as kube_pod keeps them; NULL or "" for none) satisfy sel. */
bool kube_label_selector_match(const struct kube_label_selector *sel, const char *labels);

#endif
