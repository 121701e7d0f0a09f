/* Writing pcapng blocks into a bounded buffer (see encode.h). Each encoder first works out the
 * block's whole length, refuses what would be invalid, reserves once, then writes: a failure
 * leaves the buffer as it was. */
#include "pcapng/encode.h"

#include <assert.h>
#include <errno.h>
#include <stdbool.h>
#include <string.h>

/* Option codes: the generic ones, then those of each block type that we write. */
#define OPT_ENDOFOPT       0
#define OPT_COMMENT        1
#define OPT_SHB_HARDWARE   2
#define OPT_SHB_OS         3
#define OPT_SHB_USERAPPL   4
#define OPT_IF_NAME        2
#define OPT_IF_DESCRIPTION 3
#define OPT_IF_TSRESOL     9
#define OPT_ISB_STARTTIME  2
#define OPT_ISB_ENDTIME    3
#define OPT_ISB_IFRECV     4
#define OPT_ISB_IFDROP     5
#define OPT_ISB_OSDROP     7
#define OPT_EPB_FLAGS      2
#define OPT_EPB_PACKETID   5
#define NRB_RECORD_END     0
#define NRB_RECORD_IPV4    1
#define NRB_RECORD_IPV6    2

/* An option's value length is 16 bits. */
#define OPT_VALUE_MAX 65535u
/* The longest NRB name: a record's value (address, name, NUL) must fit in 16 bits too. */
#define NRB_NAME_MAX 65000u

/* Bytes a string option takes (header, value, padding); 0 for NULL or "". -EINVAL when the
 * string does not fit in one option. */
static int str_opt_len(const char *s, size_t *len)
{
    size_t n = s ? strlen(s) : 0;

    if (n > OPT_VALUE_MAX)
        return -EINVAL;
    *len = n ? 4 + PCAPNG_PAD4(n) : 0;
    return 0;
}

static uint8_t *put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    return p + 2;
}

static uint8_t *put32(uint8_t *p, uint32_t v)
{
    pcapng_put32(p, v);
    return p + 4;
}

/* A 64-bit integer in the section's byte order (isb_ifrecv and the like). */
static uint8_t *put64(uint8_t *p, uint64_t v)
{
    p = put32(p, (uint32_t)v);
    return put32(p, (uint32_t)(v >> 32));
}

/* A timestamp as EPBs and isb_starttime hold it: the high word first, then the low word. */
static uint8_t *put_ts(uint8_t *p, int64_t ts)
{
    p = put32(p, (uint32_t)((uint64_t)ts >> 32));
    return put32(p, (uint32_t)ts);
}

/* n bytes of v (may be NULL when n is 0), then zeros up to the next multiple of 4. */
static uint8_t *put_padded(uint8_t *p, const void *v, size_t n)
{
    size_t pad = PCAPNG_PAD4(n) - n;

    if (n)
        memcpy(p, v, n);
    memset(p + n, 0, pad);
    return p + n + pad;
}

static uint8_t *put_opt(uint8_t *p, uint16_t code, const void *v, size_t n)
{
    p = put16(p, code);
    p = put16(p, (uint16_t)n);
    return put_padded(p, v, n);
}

static uint8_t *put_str_opt(uint8_t *p, uint16_t code, const char *s)
{
    if (s == NULL || *s == '\0')
        return p;
    return put_opt(p, code, s, strlen(s));
}

static uint8_t *put_opt64(uint8_t *p, uint16_t code, uint64_t v)
{
    p = put16(p, code);
    p = put16(p, 8);
    return put64(p, v);
}

static uint8_t *put_opt_ts(uint8_t *p, uint16_t code, int64_t ts)
{
    p = put16(p, code);
    p = put16(p, 8);
    return put_ts(p, ts);
}

/* Reserves a block of `total` bytes and writes its type and length; the caller writes the body
 * and then block_end. Nothing changes in b on failure. */
static int block_begin(struct nr_buf *b, uint32_t type, size_t total, uint8_t **p)
{
    int rc;

    if (total > PCAPNG_MAX_BLOCK)
        return -EINVAL;
    rc = nr_buf_reserve(b, total);
    if (rc < 0)
        return rc;
    *p = put32(b->data + b->len, type);
    *p = put32(*p, (uint32_t)total);
    return 0;
}

/* Writes the trailing length at p, which must be where the block's last word is. */
static void block_end(struct nr_buf *b, uint8_t *p, size_t total)
{
    p = put32(p, (uint32_t)total);
    /* The length was worked out apart from the writing: the two must meet. */
    assert((size_t)(p - (b->data + b->len)) == total);
    b->len += total;
}

int pcapng_shb_append(struct nr_buf *b, const char *comment, const char *hardware, const char *os,
                      const char *userappl)
{
    const char *strs[4] = {comment, hardware, os, userappl};
    size_t opts = 0;
    size_t total;
    uint8_t *p;
    int rc;

    for (size_t i = 0; i < 4; i++) {
        size_t n;

        rc = str_opt_len(strs[i], &n);
        if (rc < 0)
            return rc;
        opts += n;
    }
    if (opts)
        opts += 4; /* opt_endofopt */
    /* type, length, byte-order magic, version, section length, ..., length */
    total = 24 + opts + 4;
    rc = block_begin(b, PCAPNG_BT_SHB, total, &p);
    if (rc < 0)
        return rc;
    p = put32(p, PCAPNG_BYTE_ORDER_MAGIC);
    p = put16(p, 1);
    p = put16(p, 0);
    p = put64(p, UINT64_MAX); /* -1: not known, we stream */
    if (opts) {
        p = put_str_opt(p, OPT_COMMENT, comment);
        p = put_str_opt(p, OPT_SHB_HARDWARE, hardware);
        p = put_str_opt(p, OPT_SHB_OS, os);
        p = put_str_opt(p, OPT_SHB_USERAPPL, userappl);
        p = put_opt(p, OPT_ENDOFOPT, NULL, 0);
    }
    block_end(b, p, total);
    return 0;
}

int pcapng_idb_append(struct nr_buf *b, uint16_t link_type, uint32_t snaplen, const char *name,
                      const char *description)
{
    const uint8_t tsresol = 9;
    size_t name_len;
    size_t desc_len;
    size_t total;
    uint8_t *p;
    int rc;

    if (snaplen == 0 || snaplen > PCAPNG_MAX_SNAPLEN)
        return -EINVAL;
    rc = str_opt_len(name, &name_len);
    if (rc == 0)
        rc = str_opt_len(description, &desc_len);
    if (rc < 0)
        return rc;
    /* type, length, link type, reserved, snaplen, options (if_tsresol: 8), end, length */
    total = 16 + name_len + desc_len + 8 + 4 + 4;
    rc = block_begin(b, PCAPNG_BT_IDB, total, &p);
    if (rc < 0)
        return rc;
    p = put16(p, link_type);
    p = put16(p, 0);
    p = put32(p, snaplen);
    p = put_str_opt(p, OPT_IF_NAME, name);
    p = put_str_opt(p, OPT_IF_DESCRIPTION, description);
    p = put_opt(p, OPT_IF_TSRESOL, &tsresol, 1);
    p = put_opt(p, OPT_ENDOFOPT, NULL, 0);
    block_end(b, p, total);
    return 0;
}

int pcapng_nrb_append(struct nr_buf *b, const struct pcapng_name *names, size_t n)
{
    size_t total = 8 + 4 + 4; /* type, length, nrb_record_end, length */
    uint8_t *p;
    int rc;

    for (size_t i = 0; i < n; i++) {
        size_t len;

        if ((names[i].family != 4 && names[i].family != 6) || names[i].name == NULL)
            return -EINVAL;
        len = strlen(names[i].name);
        if (len > NRB_NAME_MAX)
            return -EINVAL;
        total += 4 + PCAPNG_PAD4((names[i].family == 4 ? 4 : 16) + len + 1);
        /* Stop summing before it could wrap: block_begin refuses it anyway. */
        if (total > PCAPNG_MAX_BLOCK)
            return -EINVAL;
    }
    rc = block_begin(b, PCAPNG_BT_NRB, total, &p);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < n; i++) {
        size_t alen = names[i].family == 4 ? 4 : 16;
        size_t len = strlen(names[i].name);

        p = put16(p, names[i].family == 4 ? NRB_RECORD_IPV4 : NRB_RECORD_IPV6);
        p = put16(p, (uint16_t)(alen + len + 1));
        memcpy(p, names[i].addr, alen);
        /* The name with its NUL; the address is whole words, so the padding is the name's. */
        p = put_padded(p + alen, names[i].name, len + 1);
    }
    p = put_opt(p, NRB_RECORD_END, NULL, 0);
    block_end(b, p, total);
    return 0;
}

int pcapng_isb_append(struct nr_buf *b, const struct pcapng_isb *isb)
{
    size_t total;
    uint8_t *p;
    int rc;

    if (isb->ts_ns < 0 || isb->start_ns < 0 || isb->end_ns < 0)
        return -EINVAL;
    /* type, length, interface, ts high, ts low, 3 counters, end, length */
    total = 20 + 3 * 12 + 4 + 4;
    if (isb->start_ns)
        total += 12;
    if (isb->end_ns)
        total += 12;
    rc = block_begin(b, PCAPNG_BT_ISB, total, &p);
    if (rc < 0)
        return rc;
    p = put32(p, isb->ifid);
    p = put_ts(p, isb->ts_ns);
    if (isb->start_ns)
        p = put_opt_ts(p, OPT_ISB_STARTTIME, isb->start_ns);
    if (isb->end_ns)
        p = put_opt_ts(p, OPT_ISB_ENDTIME, isb->end_ns);
    p = put_opt64(p, OPT_ISB_IFRECV, isb->ifrecv);
    p = put_opt64(p, OPT_ISB_IFDROP, isb->ifdrop);
    p = put_opt64(p, OPT_ISB_OSDROP, isb->osdrop);
    p = put_opt(p, OPT_ENDOFOPT, NULL, 0);
    block_end(b, p, total);
    return 0;
}

/* Starts an EPB of `opts` option bytes: the block's head, the packet's fields and its data
 * padded to 4; *p is where the options go. block_end closes it. */
static int epb_begin(struct nr_buf *b, uint32_t ifid, int64_t ts_ns, const void *data,
                     uint32_t caplen, uint32_t origlen, size_t opts, size_t *total, uint8_t **p)
{
    int rc;

    *total = PCAPNG_EPB_MIN + PCAPNG_PAD4(caplen) + opts;
    rc = block_begin(b, PCAPNG_BT_EPB, *total, p);
    if (rc < 0)
        return rc;
    *p = put32(*p, ifid);
    *p = put_ts(*p, ts_ns);
    *p = put32(*p, caplen);
    *p = put32(*p, origlen);
    *p = put_padded(*p, data, caplen);
    return 0;
}

int pcapng_epb_append(struct nr_buf *b, uint32_t ifid, int64_t ts_ns, const void *data,
                      uint32_t caplen, uint32_t origlen, const char *comment)
{
    size_t opts;
    size_t total;
    uint8_t *p;
    int rc;

    if (caplen > origlen || caplen > PCAPNG_MAX_SNAPLEN || ts_ns < 0 ||
        (data == NULL && caplen > 0))
        return -EINVAL;
    rc = str_opt_len(comment, &opts);
    if (rc < 0)
        return rc;
    if (opts)
        opts += 4;
    rc = epb_begin(b, ifid, ts_ns, data, caplen, origlen, opts, &total, &p);
    if (rc < 0)
        return rc;
    if (opts) {
        p = put_str_opt(p, OPT_COMMENT, comment);
        p = put_opt(p, OPT_ENDOFOPT, NULL, 0);
    }
    block_end(b, p, total);
    return 0;
}

/* Walks the source's options (decoded, so within bounds): the bytes of those kept, that is all
 * but opt_endofopt and those the caller writes itself (`skip_flags`, `skip_id`), copied to out
 * when it is not NULL. Returns their length. */
static size_t kept_options(const struct pcapng_epb *epb, bool skip_flags, bool skip_id,
                           uint8_t *out)
{
    size_t off = 0, kept = 0;

    while (epb->options_len - off >= 4) {
        uint16_t code = (uint16_t)(epb->options[off] | epb->options[off + 1] << 8);
        uint16_t n = (uint16_t)(epb->options[off + 2] | epb->options[off + 3] << 8);
        size_t whole = 4 + PCAPNG_PAD4(n);
        if (code == OPT_ENDOFOPT || whole > epb->options_len - off)
            break;
        if (!(skip_flags && code == OPT_EPB_FLAGS) && !(skip_id && code == OPT_EPB_PACKETID)) {
            if (out)
                memcpy(out + kept, epb->options + off, whole);
            kept += whole;
        }
        off += whole;
    }
    return kept;
}

size_t pcapng_epb_sighting_len(const struct pcapng_epb *epb, uint32_t snaplen, uint32_t flags,
                               uint64_t packet_id)
{
    uint32_t caplen = snaplen != 0 && snaplen < epb->caplen ? snaplen : epb->caplen;
    size_t opts = kept_options(epb, flags != 0, packet_id != 0, NULL) + (flags ? 8 : 0) +
                  (packet_id ? 12 : 0);

    return PCAPNG_EPB_MIN + PCAPNG_PAD4(caplen) + (opts ? opts + 4 : 0);
}

int pcapng_epb_append_sighting(struct nr_buf *b, const struct pcapng_epb *epb, uint32_t ifid,
                               int64_t ts_ns, uint32_t snaplen, uint32_t flags, uint64_t packet_id)
{
    uint32_t caplen = snaplen != 0 && snaplen < epb->caplen ? snaplen : epb->caplen;
    size_t own = kept_options(epb, flags != 0, packet_id != 0, NULL);
    size_t opts = own + (flags ? 8 : 0) + (packet_id ? 12 : 0), total;
    uint8_t *p;
    int rc;

    if (epb->caplen > epb->origlen || caplen > PCAPNG_MAX_SNAPLEN || ts_ns < 0 || !epb->data)
        return -EINVAL;
    if (opts)
        opts += 4; /* opt_endofopt */
    rc = epb_begin(b, ifid, ts_ns, epb->data, caplen, epb->origlen, opts, &total, &p);
    if (rc < 0)
        return rc;
    if (own) { /* the source's own (a --tls packet's comment) */
        kept_options(epb, flags != 0, packet_id != 0, p);
        p += own;
    }
    if (flags) {
        p = put16(p, OPT_EPB_FLAGS);
        p = put16(p, 4);
        p = put32(p, flags);
    }
    if (packet_id)
        p = put_opt64(p, OPT_EPB_PACKETID, packet_id);
    if (opts)
        p = put_opt(p, OPT_ENDOFOPT, NULL, 0);
    block_end(b, p, total);
    return 0;
}

int pcapng_epb_append_copy(struct nr_buf *b, const struct pcapng_epb *epb, uint32_t ifid,
                           uint32_t snaplen)
{
    /* The block's fixed head: type, length, interface, ts high, ts low, caplen, origlen. */
    const size_t head = PCAPNG_EPB_MIN - 4;
    bool cut = snaplen != 0 && snaplen < epb->caplen;
    uint32_t caplen = cut ? snaplen : epb->caplen;
    size_t total;
    uint8_t *p;
    int rc;

    /* The fast path copies the block the struct was decoded from: it must be laid out as
     * pcapng_epb_decode leaves it, or the copy would be of bytes we were not given. A block may
     * hold more than a snaplen allows; its copy may not. */
    if (epb->caplen > epb->origlen || caplen > PCAPNG_MAX_SNAPLEN || epb->ts_ns < 0 ||
        epb->data == NULL || epb->options_len % 4 != 0 || epb->options_len > PCAPNG_MAX_BLOCK ||
        epb->block_len > PCAPNG_MAX_BLOCK || epb->options != epb->data + PCAPNG_PAD4(epb->caplen) ||
        epb->block_len != PCAPNG_EPB_MIN + PCAPNG_PAD4(epb->caplen) + epb->options_len)
        return -EINVAL;

    if (!cut) {
        rc = nr_buf_append(b, epb->data - head, epb->block_len);
        if (rc == 0)
            pcapng_put32(b->data + b->len - epb->block_len + 8, ifid);
        return rc;
    }

    rc = epb_begin(b, ifid, epb->ts_ns, epb->data, caplen, epb->origlen, epb->options_len, &total,
                   &p);
    if (rc < 0)
        return rc;
    if (epb->options_len)
        memcpy(p, epb->options, epb->options_len);
    p += epb->options_len;
    block_end(b, p, total);
    return 0;
}

int pcapng_epb_append_noted(struct nr_buf *b, const struct pcapng_epb *epb, uint32_t ifid,
                            uint32_t snaplen, const char *comment)
{
    uint32_t caplen = snaplen != 0 && snaplen < epb->caplen ? snaplen : epb->caplen;
    size_t note, kept, total;
    uint8_t *p;
    int rc;

    if (!comment)
        return pcapng_epb_append_copy(b, epb, ifid, snaplen);
    if (epb->caplen > epb->origlen || caplen > PCAPNG_MAX_SNAPLEN || epb->ts_ns < 0 ||
        epb->data == NULL || epb->options_len > PCAPNG_MAX_BLOCK)
        return -EINVAL;
    rc = str_opt_len(comment, &note);
    if (rc < 0)
        return rc;
    kept = kept_options(epb, false, false, NULL);
    rc = epb_begin(b, ifid, epb->ts_ns, epb->data, caplen, epb->origlen, note + kept + 4, &total,
                   &p);
    if (rc < 0)
        return rc;
    p = put_str_opt(p, OPT_COMMENT, comment);
    kept_options(epb, false, false, p);
    p += kept;
    p = put_opt(p, OPT_ENDOFOPT, NULL, 0);
    block_end(b, p, total);
    return 0;
}

int pcapng_dsb_append(struct nr_buf *b, uint32_t secrets_type, const void *data, size_t len)
{
    size_t total;
    uint8_t *p;
    int rc;

    if (len == 0 || len > PCAPNG_DSB_MAX_SECRETS || data == NULL)
        return -EINVAL;
    total = PCAPNG_DSB_MIN + PCAPNG_PAD4(len);
    rc = block_begin(b, PCAPNG_BT_DSB, total, &p);
    if (rc < 0)
        return rc;
    p = put32(p, secrets_type);
    p = put32(p, (uint32_t)len);
    p = put_padded(p, data, len);
    block_end(b, p, total);
    return 0;
}
