/* The protobuf wire scan of pbwire.h. */
#include "util/pbwire.h"

#include <string.h>

static int varint(const uint8_t *p, size_t len, size_t *pos, uint64_t *v)
{
    *v = 0;
    for (unsigned shift = 0; shift < 64; shift += 7) {
        uint8_t b;
        if (*pos >= len)
            return -1;
        b = p[(*pos)++];
        *v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80))
            return 0;
    }
    return -1;
}

int nr_pb_field_find(const uint8_t *msg, size_t len, uint32_t field, struct nr_pb_field *f)
{
    size_t pos = 0;
    int found = 0;

    while (pos < len) {
        uint64_t key, n;
        size_t start = pos;
        if (varint(msg, len, &pos, &key) != 0 || key >> 3 == 0)
            return -1;
        switch (key & 7) {
        case 0:
            if (varint(msg, len, &pos, &n) != 0)
                return -1;
            break;
        case 1:
        case 5: {
            size_t w = (key & 7) == 1 ? 8 : 4;
            if (len - pos < w)
                return -1;
            pos += w;
            break;
        }
        case 2:
            if (varint(msg, len, &pos, &n) != 0 || n > len - pos)
                return -1;
            if (key >> 3 == field) {
                f->start = start;
                f->value = pos;
                f->len = (size_t)n;
                found++;
            }
            pos += (size_t)n;
            break;
        default: /* groups (3, 4) are not proto3; 6 and 7 do not exist */ return -1;
        }
    }
    return found;
}

int nr_pb_field_len(const uint8_t *msg, size_t len, uint32_t field, size_t *flen)
{
    struct nr_pb_field f;
    int n = nr_pb_field_find(msg, len, field, &f);

    if (n > 0)
        *flen = f.len;
    return n > 0 ? 1 : n;
}

bool nr_pb_string_has_nul(const uint8_t *msg, size_t len, uint32_t field, const char *str)
{
    size_t wire = 0;

    return nr_pb_field_len(msg, len, field, &wire) == 1 && wire != strlen(str);
}
