/* libFuzzer target for the request parser of lib/util/httpd.c: any bytes a client sends are
 * either a head whose slices lie inside it and hold what the grammar allows, a valid beginning,
 * or refused with the status the server answers; and bytes arriving in pieces never change
 * the verdict (every prefix of a head needs more, every longer buffer parses the same); repeated
 * past the head's cap, they get a verdict, never "needs more". */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/error.h"
#include "util/httpd.h"
#include "fuzz.h"

static bool inside(struct nr_httpd_slice s, const char *buf, size_t len)
{
    return s.base >= buf && s.len <= len && (size_t)(s.base - buf) <= len - s.len;
}

static void check_head(const char *buf, size_t size, int rc, const struct nr_httpd_request *req)
{
    size_t head = (size_t)rc;

    CHECK(head <= size && head <= NR_HTTPD_MAX_HEAD);
    /* A head ends with its blank line. */
    CHECK(head >= 2 && buf[head - 1] == '\n');
    CHECK(buf[head - 2] == '\n' || (head >= 3 && buf[head - 2] == '\r' && buf[head - 3] == '\n'));
    CHECK(inside(req->method, buf, head) && req->method.len > 0);
    CHECK(inside(req->target, buf, head) && req->target.len > 0);
    CHECK(req->version == 10 || req->version == 11);
    for (size_t i = 0; i < req->method.len; i++)
        CHECK(req->method.base[i] > ' ' && req->method.base[i] < 0x7F);
    for (size_t i = 0; i < req->target.len; i++)
        CHECK(req->target.base[i] > ' ' && req->target.base[i] < 0x7F);
    /* The path is part of the target, a whole "/..." with no query in it, or empty. */
    CHECK(req->path.base >= req->target.base &&
          req->path.base + req->path.len <= req->target.base + req->target.len);
    CHECK(req->path.len == 0 || req->path.base[0] == '/');
    CHECK(memchr(req->path.base, '?', req->path.len) == NULL);
    if (req->target.base[0] == '/')
        CHECK(req->path.base == req->target.base && req->path.len > 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* An allocation of exactly size bytes, so ASan sees any read past the end. */
    char *buf = malloc(size ? size : 1);
    struct nr_httpd_request req, part;
    size_t splits[3];
    int rc;

    if (!buf)
        return 0;
    memcpy(buf, data, size);
    memset(&req, 0xA5, sizeof(req));
    rc = nr_httpd_parse_request(buf, size, &req);
    if (rc > 0) {
        check_head(buf, size, rc, &req);
    } else if (rc == 0) {
        CHECK(size < NR_HTTPD_MAX_HEAD);
    } else if (rc == NR_EOVERSIZE) {
        CHECK(req.status == 431 && size >= NR_HTTPD_MAX_HEAD);
    } else {
        CHECK(rc == NR_EPARSE && (req.status == 400 || req.status == 505));
    }

    /* The same bytes cut short, as the server sees them arrive: short heads look at every
     * length, longer ones at three taken from the input. */
    splits[0] = size > 0 ? data[0] * size / 256 : 0;
    splits[1] = size > 1 ? (size_t)data[size - 1] * 37 % size : 0;
    splits[2] = size > 0 ? size - 1 : 0;
    for (size_t k = 0, n = size <= 300 ? size : 3; k < n; k++) {
        size_t cut = size <= 300 ? k : splits[k];
        int prc = nr_httpd_parse_request(buf, cut, &part);

        if (rc > 0 && cut >= (size_t)rc) {
            CHECK(prc == rc);
            CHECK(part.method.base == req.method.base && part.path.len == req.path.len);
        } else if (rc >= 0) {
            CHECK(prc == 0);
        } else {
            /* Refused whole: a piece needs more or is refused for the same reason. */
            CHECK(prc == 0 || (prc == rc && part.status == req.status));
        }
    }
    free(buf);

    /* The bytes again and again, past the head's cap: a verdict always, never "needs more" (a
     * client that never ends its head gets 431, whatever it sends). */
    if (size > 0) {
        size_t big = NR_HTTPD_MAX_HEAD + 1 + data[0];
        char *rep = malloc(big);

        if (!rep)
            return 0;
        for (size_t off = 0; off < big; off += size)
            memcpy(rep + off, data, big - off < size ? big - off : size);
        rc = nr_httpd_parse_request(rep, big, &req);
        if (rc > 0)
            check_head(rep, big, rc, &req);
        else if (rc == NR_EOVERSIZE)
            CHECK(req.status == 431);
        else
            CHECK(rc == NR_EPARSE && (req.status == 400 || req.status == 505));
        free(rep);
    }
    return 0;
}
