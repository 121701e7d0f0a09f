/* Base64 decoding of what Kubernetes hands over as base64: kubeconfig "*-data" fields and
 * Secret data (kubectl's jsonpath output), as the API server writes them or as a hand-edited
 * kubeconfig wraps them. */
#ifndef NR_UTIL_BASE64_H
#define NR_UTIL_BASE64_H

#include <stddef.h>

/* Enough room for what len characters of base64 decode to. */
#define NR_BASE64_DECODED_MAX(len) ((len) / 4 * 3 + 2)

/* Decodes standard base64 (RFC 4648 §4: A-Z a-z 0-9 + /) from s[0..len). White space (space,
 * \t, \n, \v, \f, \r) anywhere is skipped; '=' padding is optional, at most two, and only at
 * the end (white space may follow it); the bits left over after the last whole byte must be
 * zero, and one character alone past a whole group of four is refused. Writes the bytes to out,
 * which has room for cap bytes; out may be s itself, as the output never overtakes the input.
 * Returns 0 and *n (0 when s holds only white space), -EINVAL when s is not base64 as above, or
 * -EOVERFLOW as soon as the bytes would pass cap. *n is written only on success; out may hold
 * bytes on failure. */
int nr_base64_decode(const char *s, size_t len, void *out, size_t cap, size_t *n);

#endif
