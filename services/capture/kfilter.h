/* Swapping a compiled filter onto a live Linux packet socket in one step. libpcap's
 * pcap_setfilter first attaches a reject-all filter, drains the socket and only then attaches
 * the new program — packets arriving meanwhile are rejected without being counted anywhere —
 * and re-filters the ring's blocks already captured with the new program. The kernel itself
 * replaces a socket filter atomically (SO_ATTACH_FILTER), so attaching the program directly
 * loses nothing. Cooked captures (-i any: LINUX_SLL2, LINUX_SLL) need the program's loads
 * moved from the cooked header libpcap shows to what the kernel sees: the network header at
 * offset 0, and the protocol, interface index and packet type as the kernel's ancillary loads. */
#ifndef NR_CAPTURE_KFILTER_H
#define NR_CAPTURE_KFILTER_H

#include <pcap/pcap.h>

/* Attaches prog (compiled for the handle's link type) to the handle's socket. Returns 0;
 * -ENOTSUP when the program reads a part of the cooked header the kernel cannot show it (then
 * only libpcap's userland filtering can run it: use pcap_setfilter); or a negative errno from
 * the kernel (e.g. a program beyond its 4096 instructions). */
int capture_kfilter_attach(pcap_t *p, int link_type, const struct bpf_program *prog);

/* The translation alone (pure, tested): rewrites the n instructions of a program compiled for
 * a cooked link type in place. Returns 0, or -ENOTSUP as above. Other link types: unchanged. */
int capture_kfilter_fix(int link_type, struct bpf_insn *insns, unsigned n);

#endif
