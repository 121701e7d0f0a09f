/* libFuzzer target for lib/kube/selector.c, whose text comes from a snapshot request (kubectl's
 * -l syntax) and whose labels come from the pod sets a store keeps. Input: the selector text,
 * then a NUL byte, then the labels ("k=v,k=v"); without a NUL, all of it is the text and the
 * labels are NULL. Each part is copied and NUL-terminated (so a NUL inside the labels ends
 * them). Promises checked: a parse either succeeds with requirements within their caps, keys
 * non-empty, values NUL-terminated, or fails with NR_EPARSE and a reason; the same text parses
 * to the same bytes twice; the empty selector matches anything; matching is deterministic and
 * never reads past its strings (ASan). The reason's one-line promise is checked only for texts
 * without line breaks: a text with one is echoed as it is (the known failure in
 * tests/unit/test_kube_selector.c, reason_is_one_line). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kube/selector.h"
#include "util/error.h"
#include "fuzz.h"

/* About 43 KiB each: static, not on the stack. */
static struct kube_label_selector sel, again, empty;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, 0, size);
    size_t tlen = nul ? (size_t)(nul - data) : size;
    char *text = malloc(tlen + 1), *labels = NULL, err[512];
    int rc;

    CHECK(text != NULL);
    memcpy(text, data, tlen);
    text[tlen] = '\0';
    if (nul) {
        size_t llen = size - tlen - 1;
        labels = malloc(llen + 1);
        CHECK(labels != NULL);
        memcpy(labels, nul + 1, llen);
        labels[llen] = '\0';
    }

    err[0] = '\0';
    rc = kube_label_selector_parse(text, &sel, err, sizeof(err));
    if (rc == 0) {
        bool m;

        CHECK(tlen <= KUBE_SELECTOR_MAX_TEXT);
        CHECK(sel.n <= KUBE_SELECTOR_MAX_REQS);
        for (size_t i = 0; i < sel.n; i++) {
            const struct kube_sel_req *r = &sel.reqs[i];
            size_t kl = strnlen(r->key, sizeof(r->key));

            CHECK(r->op >= KUBE_SEL_EXISTS && r->op <= KUBE_SEL_NOT_IN);
            CHECK(kl > 0 && kl < sizeof(r->key));
            CHECK(strstr(text, r->key) != NULL);
            CHECK(r->n_vals <= KUBE_SELECTOR_MAX_VALS);
            CHECK((r->op == KUBE_SEL_EXISTS || r->op == KUBE_SEL_NOT_EXISTS) == (r->n_vals == 0));
            for (size_t k = 0; k < r->n_vals; k++) {
                CHECK(strnlen(r->vals[k], sizeof(r->vals[k])) < sizeof(r->vals[k]));
                CHECK(strchr(r->vals[k], '/') == NULL);
            }
        }
        /* The same text, the same structure, byte for byte (parse zeroes it first). */
        CHECK(kube_label_selector_parse(text, &again, NULL, 0) == 0);
        CHECK(memcmp(&sel, &again, sizeof(sel)) == 0);
        m = kube_label_selector_match(&sel, labels);
        CHECK(kube_label_selector_match(&again, labels) == m);
        /* No labels at all: only exists and in can fail. */
        if (labels == NULL || labels[0] == '\0') {
            bool want = true;
            for (size_t i = 0; i < sel.n; i++)
                if (sel.reqs[i].op == KUBE_SEL_EXISTS || sel.reqs[i].op == KUBE_SEL_IN)
                    want = false;
            CHECK(m == want);
        }
        /* A selector holds for labels, or its first failing requirement alone fails too. */
        if (!m && sel.n > 0) {
            bool one_fails = false;
            for (size_t i = 0; i < sel.n && !one_fails; i++) {
                again.n = 1;
                again.reqs[0] = sel.reqs[i];
                one_fails = !kube_label_selector_match(&again, labels);
            }
            CHECK(one_fails);
        }
    } else {
        CHECK(rc == NR_EPARSE);
        CHECK(err[0] != '\0' && strlen(err) < sizeof(err));
        if (strpbrk(text, "\r\n") == NULL)
            CHECK(strpbrk(err, "\r\n") == NULL);
        CHECK(kube_label_selector_parse(text, &again, NULL, 0) == NR_EPARSE);
    }

    /* The empty selector matches anything. */
    CHECK(kube_label_selector_parse("", &empty, NULL, 0) == 0);
    CHECK(empty.n == 0);
    CHECK(kube_label_selector_match(&empty, labels));
    CHECK(kube_label_selector_match(&empty, text));

    free(labels);
    free(text);
    return 0;
}
