/* Atomic filter swaps on a live packet socket (see kfilter.h). */
#include "capture/kfilter.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <linux/filter.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define LINKTYPE_LINUX_SLL  113
#define LINKTYPE_LINUX_SLL2 276
#define SLL_HEADER          16
#define SLL2_HEADER         20

/* Where the kernel finds what a load at cooked-header offset k reads; false when it cannot. */
static bool cooked_offset(int link_type, uint32_t *k)
{
    uint32_t header = link_type == LINKTYPE_LINUX_SLL2 ? SLL2_HEADER : SLL_HEADER;

    if (*k >= (uint32_t)SKF_AD_OFF) /* already an ancillary load */
        return true;
    if (*k >= header) {
        *k -= header; /* the kernel's packet starts at the network header */
        return true;
    }
    if (link_type == LINKTYPE_LINUX_SLL2) {
        switch (*k) { /* protocol (2 bytes), reserved, ifindex (4), ..., packet type (1) */
        case 0: *k = (uint32_t)(SKF_AD_OFF + SKF_AD_PROTOCOL); return true;
        case 4: *k = (uint32_t)(SKF_AD_OFF + SKF_AD_IFINDEX); return true;
        case 10: *k = (uint32_t)(SKF_AD_OFF + SKF_AD_PKTTYPE); return true;
        default: return false;
        }
    }
    switch (*k) { /* packet type (2 bytes), ..., protocol at 14 */
    case 0: *k = (uint32_t)(SKF_AD_OFF + SKF_AD_PKTTYPE); return true;
    case 14: *k = (uint32_t)(SKF_AD_OFF + SKF_AD_PROTOCOL); return true;
    default: return false;
    }
}

int capture_kfilter_fix(int link_type, struct bpf_insn *insns, unsigned n)
{
    if (link_type != LINKTYPE_LINUX_SLL && link_type != LINKTYPE_LINUX_SLL2)
        return 0;
    for (unsigned i = 0; i < n; i++) {
        struct bpf_insn *in = &insns[i];
        unsigned cls = BPF_CLASS(in->code), mode = BPF_MODE(in->code);
        if ((cls == BPF_LD || cls == BPF_LDX) &&
            (mode == BPF_ABS || mode == BPF_IND || mode == BPF_MSH) &&
            !cooked_offset(link_type, &in->k))
            return -ENOTSUP;
    }
    return 0;
}

int capture_kfilter_attach(pcap_t *p, int link_type, const struct bpf_program *prog)
{
    size_t size = (size_t)prog->bf_len * sizeof(*prog->bf_insns);
    struct bpf_insn *copy;
    struct sock_fprog fp;
    int rc;

    if (prog->bf_len == 0 || prog->bf_len > BPF_MAXINSNS)
        return -EINVAL;
    copy = malloc(size);
    if (!copy)
        return -ENOMEM;
    memcpy(copy, prog->bf_insns, size);
    rc = capture_kfilter_fix(link_type, copy, prog->bf_len);
    if (rc == 0) {
        /* struct bpf_insn and struct sock_filter are the same four fields. */
        fp.len = (unsigned short)prog->bf_len;
        fp.filter = (struct sock_filter *)copy;
        if (setsockopt(pcap_fileno(p), SOL_SOCKET, SO_ATTACH_FILTER, &fp, sizeof(fp)) != 0)
            rc = -errno;
    }
    free(copy);
    return rc;
}
