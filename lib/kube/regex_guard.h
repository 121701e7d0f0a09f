/* A guard for --pod-regex: glibc's regcomp and regexec have inputs that take gigabytes or
 * minutes, and every node's capture compiles the same regex and matches it against pod names
 * that anyone who may create a pod chooses. Checked by `netreel tap` and by the capture. */
#ifndef NR_KUBE_REGEX_GUARD_H
#define NR_KUBE_REGEX_GUARD_H

#include <stddef.h>

/* 0 when `re` is safe to compile and match, else -EINVAL with why (a phrase that follows the
 * regex in a message: "has a back-reference ..." or "repeats too much ..."). It does not check
 * the syntax: regcomp does. */
int kube_regex_check(const char *re, char *why, size_t whylen);

#endif
