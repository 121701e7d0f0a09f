/* pcapng as netreel writes and reads it (draft-ietf-opsawg-pcapng): little-endian sections,
 * nanosecond timestamps (if_tsresol 9) on every interface. The constants and the decoded forms
 * of the blocks the store, the hub and the capture share. */
#ifndef NR_PCAPNG_PCAPNG_H
#define NR_PCAPNG_PCAPNG_H

#include <stddef.h>
#include <stdint.h>

#define PCAPNG_BT_SHB           0x0A0D0D0Au
#define PCAPNG_BT_IDB           0x00000001u
#define PCAPNG_BT_NRB           0x00000004u
#define PCAPNG_BT_ISB           0x00000005u
#define PCAPNG_BT_EPB           0x00000006u
#define PCAPNG_BT_DSB           0x0000000Au
#define PCAPNG_BYTE_ORDER_MAGIC 0x1A2B3C4Du
/* Decryption Secrets Block secrets type: an NSS key log (TLS). */
#define PCAPNG_DSB_TLS_KEYLOG 0x544C534Bu
/* A DSB without secrets or options: type, length, secrets type, secrets length, trailer. */
#define PCAPNG_DSB_MIN 20u
/* The most secrets one DSB we write carries: a block stays well under PCAPNG_MAX_BLOCK. */
#define PCAPNG_DSB_MAX_SECRETS (1u << 20)

/* Type, total length, ..., total length: the smallest block there is. */
#define PCAPNG_BLOCK_MIN 12u
/* An EPB without packet data or options: type, length, interface, ts high, ts low, captured
 * length, original length, trailing length. */
#define PCAPNG_EPB_MIN 32u
/* The largest snaplen an interface may declare (libpcap's MAXIMUM_SNAPLEN). */
#define PCAPNG_MAX_SNAPLEN 262144u
/* The largest block we read or write: an EPB of the largest snaplen plus generous options, or
 * an NRB of a few thousand pods. Anything longer is taken as a lie. */
#define PCAPNG_MAX_BLOCK (4u << 20)

/* Rounds n up to the 4-byte alignment of pcapng. */
#define PCAPNG_PAD4(n) (((n) + 3u) & ~(size_t)3u)

/* One Enhanced Packet Block, decoded in place: pointers into the block's bytes. */
struct pcapng_epb {
    uint32_t ifid;
    int64_t ts_ns;
    uint32_t caplen;
    uint32_t origlen;
    const uint8_t *data;    /* caplen bytes */
    const uint8_t *options; /* options_len bytes (may be 0) */
    size_t options_len;
    size_t block_len; /* the whole block, header and trailer included */
};

/* One Interface Description Block, decoded. */
struct pcapng_idb {
    uint16_t link_type;
    uint32_t snaplen;
    char name[256];         /* if_name, "" when absent; cut to fit, always NUL-terminated */
    char description[2048]; /* if_description, "" when absent */
    uint8_t tsresol;        /* if_tsresol, 6 (microseconds) when absent */
};

/* One name for the Name Resolution Block: an IPv4 or IPv6 address and a name. */
struct pcapng_name {
    int family; /* 4 or 6 */
    uint8_t addr[16];
    const char *name; /* NUL-terminated UTF-8, "namespace/pod" in netreel's files */
};

/* One Interface Statistics Block. */
struct pcapng_isb {
    uint32_t ifid;
    int64_t ts_ns;    /* the block's timestamp: when the counters were taken */
    int64_t start_ns; /* isb_starttime; written only when non-zero */
    int64_t end_ns;   /* isb_endtime; written only when non-zero */
    uint64_t ifrecv;  /* isb_ifrecv */
    uint64_t ifdrop;  /* isb_ifdrop */
    uint64_t osdrop;  /* isb_osdrop */
};

static inline uint32_t pcapng_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline void pcapng_put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

#endif
