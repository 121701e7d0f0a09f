/* The capture filter text for a target set: "ip host A or ip6 host B ...", or an expression
 * that matches nothing when the set is empty. Pure text; the capture compiles it (and ANDs its
 * own exclusion term into it). */
#ifndef NR_KUBE_FILTER_H
#define NR_KUBE_FILTER_H

#include <stddef.h>

#include "kube/target.h"
#include "util/buf.h"

/* Matches no packet and still compiles with pcap_compile, optimized or not, on every link
 * type: the optimizer refuses an expression it can prove false ("expression rejects all
 * packets", e.g. "ip and ip6"), but cannot prove that no packet has length 0. */
#define KUBE_FILTER_NOTHING "less 0"

/* More distinct addresses than this are refused (NR_EOVERSIZE): the program would pass the
 * kernel's 4096-instruction limit for classic BPF (libpcap would then filter in user space,
 * after copying every packet) and pcap_compile time grows faster than linearly. */
#define KUBE_FILTER_HOSTS_MAX 1024

/* Writes the filter for set (its distinct addresses, in the set's order) into out, replacing
 * its content, NUL-terminated (out->len counts the NUL). "ip host" and "ip6 host" rather than
 * "host": plain "host" also tests ARP and RARP addresses, which pods' L4 traffic never needs
 * and which make pcap_compile's optimizer ~180 times slower (500 hosts: 4.7 s against 26 ms)
 * and the program larger. Returns 0, NR_EOVERSIZE past KUBE_FILTER_HOSTS_MAX addresses,
 * -EOVERFLOW when the text exceeds out's cap (47 bytes per address suffice), -ENOMEM. */
int kube_filter_build(const struct kube_target_set *set, struct nr_buf *out);

#endif
