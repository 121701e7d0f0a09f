/* libFuzzer target for services/capture/tls/synth.c: ring buffer records are bytes the kernel
 * hands over, whose lengths the capture must not trust. The input is a series of records, each
 * a 2-byte little-endian size then that many bytes (short inputs are records cut short). Every
 * record is either refused whole or becomes 1 to 4 well-formed EPBs; the buffer never passes
 * its cap; the connection table stays within its bound. */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "capture/tls/synth.h"
#include "fuzz.h"
#include "pcapng/pcapng.h"
#include "util/error.h"

#define MAX_CONNS 8

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct capture_tls_synth *s = capture_tls_synth_new(MAX_CONNS);
    struct nr_buf out;
    size_t off = 0;

    CHECK(s);
    nr_buf_init(&out, 3 * CAPTURE_TLS_SYNTH_MAX_BYTES);
    while (off + 2 <= size) {
        size_t n = (size_t)(data[off] | data[off + 1] << 8), before = out.len;
        uint8_t *rec;
        int rc;
        off += 2;
        if (n > size - off)
            n = size - off;
        rec = malloc(n ? n : 1); /* its own allocation: ASan sees a read past its end */
        CHECK(rec);
        memcpy(rec, data + off, n);
        off += n;
        rc = capture_tls_synth_record(s, rec, n, 1, 0, &out);
        if (rc == -EOVERFLOW) {
            CHECK(out.len == before);
            out.len = 0;
            before = 0;
            rc = capture_tls_synth_record(s, rec, n, 1, 0, &out);
        }
        free(rec);
        CHECK(rc == NR_EPARSE || (rc >= 1 && rc <= 4));
        CHECK(out.len <= out.max);
        if (rc == NR_EPARSE) {
            CHECK(out.len == before);
        } else {
            int blocks = 0;
            for (size_t p = before; p < out.len; blocks++) {
                uint32_t total = pcapng_le32(out.data + p + 4);
                CHECK(pcapng_le32(out.data + p) == PCAPNG_BT_EPB);
                CHECK(total >= PCAPNG_EPB_MIN && total % 4 == 0 && p + total <= out.len);
                CHECK(pcapng_le32(out.data + p + total - 4) == total);
                CHECK(pcapng_le32(out.data + p + 20) <=
                      CAPTURE_TLS_SYNTH_HEADERS + CAPTURE_TLS_CHUNK);
                p += total;
            }
            CHECK(blocks == rc);
        }
        CHECK(capture_tls_synth_conns(s) <= MAX_CONNS);
    }
    nr_buf_free(&out);
    capture_tls_synth_free(s);
    return 0;
}
