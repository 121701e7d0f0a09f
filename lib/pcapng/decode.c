/* Reading pcapng blocks from untrusted memory (see decode.h): every length is bounded by the
 * bytes that are there before it is used. The checks that can fail say why into an optional
 * buffer, so batch validation reports the same rules pcapng_block_peek and the decoders apply. */
#include "pcapng/decode.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "util/error.h"

#define OPT_ENDOFOPT       0
#define OPT_IF_NAME        2
#define OPT_IF_DESCRIPTION 3
#define OPT_IF_TSRESOL     9
#define NRB_RECORD_END     0
#define NRB_RECORD_IPV4    1
#define NRB_RECORD_IPV6    2

/* type, length, byte-order magic, version, section length, length */
#define SHB_MIN 28u
/* type, length, link type, reserved, snaplen, length */
#define IDB_MIN 20u
/* The longest NRB name handed to the caller, NUL excluded. */
#define NRB_NAME_CUT 1023u
/* Where an EPB's packet data starts: type, length, interface, ts high, ts low, caplen, origlen. */
#define EPB_DATA 28u

__attribute__((format(printf, 3, 4))) static void say(char *why, size_t whylen, const char *fmt,
                                                      ...)
{
    va_list ap;

    if (why == NULL || whylen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(why, whylen, fmt, ap);
    va_end(ap);
}

/* The header checks of pcapng_block_peek, saying why one fails (in the words of a batch: only
 * pcapng_batch_validate shows them where a block can be torn). */
static int block_check(const uint8_t *p, size_t len, uint32_t *type, size_t *block_len, char *why,
                       size_t whylen)
{
    uint32_t total;

    if (len < 8) {
        say(why, whylen,
            "block runs past the end of the batch (%zu bytes left, too few for a header)", len);
        return 0;
    }
    *type = pcapng_le32(p);
    total = pcapng_le32(p + 4);
    /* Before the length: a big-endian section's lengths read as nonsense. */
    if (*type == PCAPNG_BT_SHB && len >= 12 && pcapng_le32(p + 8) != PCAPNG_BYTE_ORDER_MAGIC) {
        say(why, whylen, "section header's byte-order magic 0x%08" PRIx32 " is not 0x%08x",
            pcapng_le32(p + 8), PCAPNG_BYTE_ORDER_MAGIC);
        return NR_EPARSE;
    }
    if (total % 4 != 0) {
        say(why, whylen, "block total length %" PRIu32 " is not a multiple of 4", total);
        return NR_EPARSE;
    }
    if (total < PCAPNG_BLOCK_MIN || (*type == PCAPNG_BT_SHB && total < SHB_MIN)) {
        say(why, whylen, "block total length %" PRIu32 " is less than the smallest block (%u)",
            total, *type == PCAPNG_BT_SHB ? SHB_MIN : PCAPNG_BLOCK_MIN);
        return NR_EPARSE;
    }
    if (total > PCAPNG_MAX_BLOCK) {
        say(why, whylen, "block total length %" PRIu32 " is more than the largest block (%u)",
            total, PCAPNG_MAX_BLOCK);
        return NR_EPARSE;
    }
    if (total > len) {
        say(why, whylen,
            "block runs past the end of the batch (length %" PRIu32 ", %zu bytes left)", total,
            len);
        return 0;
    }
    if (pcapng_le32(p + total - 4) != total) {
        say(why, whylen, "trailing length %" PRIu32 " differs from leading %" PRIu32,
            pcapng_le32(p + total - 4), total);
        return NR_EPARSE;
    }
    *block_len = total;
    return 1;
}

int pcapng_block_peek(const uint8_t *p, size_t len, uint32_t *type, size_t *block_len)
{
    uint32_t t = 0;
    size_t n = 0;
    int rc = block_check(p, len, &t, &n, NULL, 0);

    if (rc == 1) {
        *type = t;
        *block_len = n;
    }
    return rc;
}

size_t pcapng_whole_prefix(const uint8_t *buf, size_t len, size_t *blocks)
{
    size_t off = 0;
    size_t count = 0;

    while (off < len) {
        uint32_t type;
        size_t block_len;

        if (pcapng_block_peek(buf + off, len - off, &type, &block_len) != 1)
            break;
        off += block_len;
        count++;
    }
    if (blocks)
        *blocks = count;
    return off;
}

/* A whole block of the given type (`what` names it for people), its lengths agreeing with
 * block_len. */
static int whole_block(const uint8_t *p, size_t block_len, uint32_t type, const char *what,
                       size_t min, char *why, size_t whylen)
{
    uint32_t found;
    size_t n = 0;

    if (block_len < 8) {
        say(why, whylen, "block of %zu bytes is too short for a block header", block_len);
        return NR_EPARSE;
    }
    if (pcapng_le32(p) != type) {
        say(why, whylen, "is not %s (type 0x%" PRIx32 ")", what, pcapng_le32(p));
        return NR_EPARSE;
    }
    if (block_check(p, block_len, &found, &n, why, whylen) != 1)
        return NR_EPARSE;
    if (n != block_len) {
        say(why, whylen, "block total length %zu differs from the %zu bytes given", n, block_len);
        return NR_EPARSE;
    }
    if (block_len < min) {
        say(why, whylen, "block total length %zu is less than %s's smallest (%zu)", block_len, what,
            min);
        return NR_EPARSE;
    }
    return 0;
}

/* Options (and NRB records, laid out the same way): 16-bit code, 16-bit length, the value
 * padded to 4. */
struct opt_walk {
    const uint8_t *p;
    size_t len;
    size_t off;
};

/* 1 and the next option (never opt_endofopt), 0 at the end of the list, or NR_EPARSE when
 * one does not fit. */
static int opt_next(struct opt_walk *w, uint16_t *code, const uint8_t **value, uint16_t *vlen,
                    char *why, size_t whylen)
{
    size_t left = w->len - w->off;

    if (left == 0)
        return 0;
    if (left < 4) {
        say(why, whylen, "option header at options byte %zu runs past the options (%zu left)",
            w->off, left);
        return NR_EPARSE;
    }
    *code = (uint16_t)(w->p[w->off] | w->p[w->off + 1] << 8);
    *vlen = (uint16_t)(w->p[w->off + 2] | w->p[w->off + 3] << 8);
    if (*code == OPT_ENDOFOPT)
        return 0;
    if (PCAPNG_PAD4(*vlen) > left - 4) {
        say(why, whylen, "option %u of length %u runs past the options (%zu bytes left)", *code,
            *vlen, left - 4);
        return NR_EPARSE;
    }
    *value = w->p + w->off + 4;
    w->off += 4 + PCAPNG_PAD4(*vlen);
    return 1;
}

/* Every option of a list fits. */
static int opts_check(const uint8_t *p, size_t len, char *why, size_t whylen)
{
    struct opt_walk w = {p, len, 0};
    uint16_t code;
    uint16_t vlen;
    const uint8_t *value;
    int rc;

    while ((rc = opt_next(&w, &code, &value, &vlen, why, whylen)) == 1)
        ;
    return rc;
}

static int epb_parse(const uint8_t *p, size_t block_len, struct pcapng_epb *epb, char *why,
                     size_t whylen)
{
    uint64_t ts;
    uint32_t caplen;
    uint32_t origlen;
    size_t room;
    int rc;

    rc = whole_block(p, block_len, PCAPNG_BT_EPB, "an EPB", PCAPNG_EPB_MIN, why, whylen);
    if (rc < 0)
        return rc;
    ts = (uint64_t)pcapng_le32(p + 12) << 32 | pcapng_le32(p + 16);
    caplen = pcapng_le32(p + 20);
    origlen = pcapng_le32(p + 24);
    if (ts > INT64_MAX) {
        say(why, whylen, "timestamp %" PRIu64 " does not fit in 63 bits", ts);
        return NR_EPARSE;
    }
    /* room is a multiple of 4, so a caplen within it is with its padding too. */
    room = block_len - PCAPNG_EPB_MIN;
    if (caplen > room) {
        say(why, whylen, "captured length %" PRIu32 " runs past the block (length %zu)", caplen,
            block_len);
        return NR_EPARSE;
    }
    if (caplen > origlen) {
        say(why, whylen, "captured length %" PRIu32 " > original length %" PRIu32, caplen, origlen);
        return NR_EPARSE;
    }
    rc = opts_check(p + EPB_DATA + PCAPNG_PAD4(caplen), room - PCAPNG_PAD4(caplen), why, whylen);
    if (rc < 0)
        return rc;
    epb->ifid = pcapng_le32(p + 8);
    epb->ts_ns = (int64_t)ts;
    epb->caplen = caplen;
    epb->origlen = origlen;
    epb->data = p + EPB_DATA;
    epb->options = p + EPB_DATA + PCAPNG_PAD4(caplen);
    epb->options_len = room - PCAPNG_PAD4(caplen);
    epb->block_len = block_len;
    return 0;
}

int pcapng_epb_decode(const uint8_t *p, size_t block_len, struct pcapng_epb *epb)
{
    return epb_parse(p, block_len, epb, NULL, 0);
}

int pcapng_dsb_decode(const uint8_t *p, size_t block_len, struct pcapng_dsb *dsb)
{
    size_t room;
    uint32_t n;

    if (whole_block(p, block_len, PCAPNG_BT_DSB, "a DSB", PCAPNG_DSB_MIN, NULL, 0) < 0)
        return NR_EPARSE;
    n = pcapng_le32(p + 12);
    room = block_len - PCAPNG_DSB_MIN;
    if (n > room)
        return NR_EPARSE;
    for (size_t i = n; i < PCAPNG_PAD4(n); i++)
        if (p[16 + i] != 0)
            return NR_EPARSE;
    if (opts_check(p + 16 + PCAPNG_PAD4(n), room - PCAPNG_PAD4(n), NULL, 0) < 0)
        return NR_EPARSE;
    dsb->secrets_type = pcapng_le32(p + 8);
    dsb->data = p + 16;
    dsb->len = n;
    return 0;
}

/* An option's string, cut to fit and NUL-terminated (pcapng strings carry no NUL). */
static void copy_str(char *dst, size_t size, const uint8_t *value, size_t vlen)
{
    size_t n = vlen < size - 1 ? vlen : size - 1;

    memcpy(dst, value, n);
    dst[n] = '\0';
}

int pcapng_idb_decode(const uint8_t *p, size_t block_len, struct pcapng_idb *idb)
{
    struct pcapng_idb out;
    struct opt_walk w;
    uint16_t code;
    uint16_t vlen;
    const uint8_t *value;
    int rc;

    rc = whole_block(p, block_len, PCAPNG_BT_IDB, "an IDB", IDB_MIN, NULL, 0);
    if (rc < 0)
        return rc;
    memset(&out, 0, sizeof(out));
    out.link_type = (uint16_t)(p[8] | p[9] << 8);
    out.snaplen = pcapng_le32(p + 12);
    out.tsresol = 6;
    w = (struct opt_walk){p + 16, block_len - IDB_MIN, 0};
    while ((rc = opt_next(&w, &code, &value, &vlen, NULL, 0)) == 1) {
        switch (code) {
        case OPT_IF_NAME: copy_str(out.name, sizeof(out.name), value, vlen); break;
        case OPT_IF_DESCRIPTION:
            copy_str(out.description, sizeof(out.description), value, vlen);
            break;
        case OPT_IF_TSRESOL:
            if (vlen != 1)
                return NR_EPARSE;
            out.tsresol = value[0];
            break;
        default: break;
        }
    }
    if (rc < 0)
        return rc;
    *idb = out;
    return 0;
}

int pcapng_nrb_foreach(const uint8_t *p, size_t block_len,
                       int (*fn)(const struct pcapng_name *name, void *arg), void *arg)
{
    char scratch[NRB_NAME_CUT + 1];
    struct opt_walk w;
    uint16_t type;
    uint16_t vlen;
    const uint8_t *value;
    int rc;

    rc = whole_block(p, block_len, PCAPNG_BT_NRB, "an NRB", PCAPNG_BLOCK_MIN, NULL, 0);
    if (rc < 0)
        return rc;
    w = (struct opt_walk){p + 8, block_len - PCAPNG_BLOCK_MIN, 0};
    while ((rc = opt_next(&w, &type, &value, &vlen, NULL, 0)) == 1) {
        struct pcapng_name name;
        size_t alen;
        size_t at;

        if (type != NRB_RECORD_IPV4 && type != NRB_RECORD_IPV6)
            continue;
        name.family = type == NRB_RECORD_IPV4 ? 4 : 6;
        alen = type == NRB_RECORD_IPV4 ? 4 : 16;
        if (vlen < alen)
            return NR_EPARSE;
        memset(name.addr, 0, sizeof(name.addr));
        memcpy(name.addr, value, alen);
        name.name = scratch;
        /* One or more NUL-terminated names follow the address; one call for each. A last name
         * without its NUL ends at the record's end. */
        for (at = alen; at < vlen;) {
            const uint8_t *s = value + at;
            const uint8_t *nul = memchr(s, '\0', vlen - at);
            size_t n = nul ? (size_t)(nul - s) : vlen - at;

            copy_str(scratch, sizeof(scratch), s, n);
            at += n + 1;
            if (n == 0)
                continue;
            rc = fn(&name, arg);
            if (rc != 0)
                return rc;
        }
    }
    return rc < 0 ? rc : 0;
}

__attribute__((format(printf, 5, 6))) static int batch_error(char *err, size_t errlen, size_t index,
                                                             size_t off, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (err == NULL || errlen == 0)
        return NR_EPARSE;
    n = snprintf(err, errlen, "block %zu at offset %zu: ", index, off);
    if (n >= 0 && (size_t)n < errlen) {
        va_start(ap, fmt);
        vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return NR_EPARSE;
}

int pcapng_batch_validate(const uint8_t *blocks, size_t len, const struct pcapng_batch_rules *rules,
                          struct pcapng_batch_info *info, char *err, size_t errlen)
{
    struct pcapng_batch_info seen = {0};
    char why[160];
    size_t off = 0;
    size_t index = 0;

    if (err && errlen)
        err[0] = '\0';
    for (; off < len; index++) {
        struct pcapng_epb epb;
        uint32_t type = 0;
        size_t block_len = 0;
        uint32_t snaplen;
        int rc;

        rc = block_check(blocks + off, len - off, &type, &block_len, why, sizeof(why));
        if (rc != 1)
            return batch_error(err, errlen, index, off, "%s", why);
        if (epb_parse(blocks + off, block_len, &epb, why, sizeof(why)) < 0)
            return batch_error(err, errlen, index, off, "%s", why);
        if (epb.ifid >= rules->n_interfaces)
            return batch_error(err, errlen, index, off,
                               "interface id %" PRIu32 " is not known (%" PRIu32 " interfaces)",
                               epb.ifid, rules->n_interfaces);
        /* pcapng's snaplen 0 is "no limit": then the largest we would write. */
        snaplen = rules->snaplens[epb.ifid] ? rules->snaplens[epb.ifid] : PCAPNG_MAX_SNAPLEN;
        if (epb.caplen > snaplen)
            return batch_error(err, errlen, index, off,
                               "captured length %" PRIu32 " > snaplen %" PRIu32
                               " of interface %" PRIu32,
                               epb.caplen, snaplen, epb.ifid);
        if (epb.ts_ns < rules->min_ts_ns || epb.ts_ns > rules->max_ts_ns)
            return batch_error(err, errlen, index, off,
                               "timestamp %" PRId64 " outside the sane range [%" PRId64 ", %" PRId64
                               "]",
                               epb.ts_ns, rules->min_ts_ns, rules->max_ts_ns);
        if (rules->sorted && seen.packets > 0 && epb.ts_ns < seen.last_ts_ns)
            return batch_error(err, errlen, index, off,
                               "timestamp %" PRId64 " goes backwards (previous %" PRId64 ")",
                               epb.ts_ns, seen.last_ts_ns);
        if (seen.packets == 0)
            seen.first_ts_ns = epb.ts_ns;
        seen.last_ts_ns = epb.ts_ns;
        seen.packets++;
        seen.packet_bytes += epb.caplen;
        off += block_len;
    }
    *info = seen;
    return 0;
}
