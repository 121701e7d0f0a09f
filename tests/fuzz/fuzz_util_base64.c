/* libFuzzer target for lib/util/base64.c: whatever it accepts is what OpenSSL's decoder reads
 * from the same text once white space is dropped and padding completed; the output fits
 * NR_BASE64_DECODED_MAX, decoding in place gives the same bytes, and one byte less room is
 * refused. */
#include <errno.h>
#include <openssl/evp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/base64.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t max = NR_BASE64_DECODED_MAX(size), n = 0, n2 = 0, k = 0, pad = 0;
    unsigned char *out = malloc(max + 1), *ref = malloc(size + 4);
    char *copy = malloc(size + 4), *text = malloc(size + 4);
    int rc;

    if (out == NULL || ref == NULL || copy == NULL || text == NULL)
        goto out;
    rc = nr_base64_decode((const char *)data, size, out, max, &n);
    CHECK(rc == 0 || rc == -EINVAL);
    if (rc != 0)
        goto out;
    CHECK(n <= max);
    memcpy(copy, data, size);
    CHECK(nr_base64_decode(copy, size, copy, size, &n2) == 0);
    CHECK(n2 == n && memcmp(copy, out, n) == 0);
    if (n > 0)
        CHECK(nr_base64_decode((const char *)data, size, out, n - 1, &n2) == -EOVERFLOW);

    for (size_t i = 0; i < size; i++) {
        if (data[i] != '=' && strchr(" \t\n\v\f\r", data[i]) == NULL)
            text[k++] = (char)data[i];
    }
    pad = (4 - k % 4) % 4;
    memset(text + k, '=', pad);
    k += pad;
    if (k > 0) {
        int m = EVP_DecodeBlock(ref, (const unsigned char *)text, (int)k);

        CHECK(m >= 0 && (size_t)m == n + pad);
        CHECK(memcmp(ref, out, n) == 0);
    }
out:
    free(out);
    free(ref);
    free(copy);
    free(text);
    return 0;
}
