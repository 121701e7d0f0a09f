/* Which network namespaces of the node belong to targeted pods: a pod is its network namespace
 * (hostNetwork pods are never targeted), and a namespace is a pod's when one of its local
 * addresses is the pod's address. Found through /proc: /proc/PID/ns/net names the namespace
 * (its inode number, what the eBPF program reads as task->nsproxy->net_ns->ns.inum), and
 * /proc/PID/net/fib_trie and if_inet6 list that namespace's local addresses. No I/O but reading
 * the given directory, so it runs against a made-up /proc in the unit tests. */
#ifndef NR_CAPTURE_TLS_NETNS_H
#define NR_CAPTURE_TLS_NETNS_H

#include <stddef.h>
#include <stdint.h>

/* Distinct network namespaces looked at in one scan; more are left out (and counted). */
#define CAPTURE_TLS_NETNS_SCAN_MAX 8192
/* Bytes of a namespace's fib_trie read at most (a pod's holds a few hundred; the host's may be
 * large, and is never a pod's). */
#define CAPTURE_TLS_NETNS_FILE_MAX (1u << 20)

/* An address: IPv6, or IPv4 v4-mapped (::ffff:a.b.c.d). */
struct capture_tls_netns_addr {
    uint8_t a[16];
};

struct capture_tls_netns_result {
    size_t namespaces; /* distinct namespaces looked at */
    size_t matched;    /* written to out (at most max) */
    size_t left_out;   /* namespaces not looked at (past CAPTURE_TLS_NETNS_SCAN_MAX) or
                          matched past max */
};

/* Sorts `addrs` (n of them) in place for capture_tls_netns_scan. */
void capture_tls_netns_sort(struct capture_tls_netns_addr *addrs, size_t n);

/* Scans `proc` (normally "/proc") and writes to out the inode numbers of the network namespaces
 * that hold one of the n sorted addresses `addrs` as a local address, each once, at most max.
 * Processes whose namespace cannot be named (gone, not ours to look at, pid 1 in some
 * sandboxes) are skipped; files are read with every length capped. Returns 0 with *res filled
 * in, or a negative errno when `proc` cannot be listed (-ENOMEM: out of memory). */
int capture_tls_netns_scan(const char *proc, const struct capture_tls_netns_addr *addrs, size_t n,
                           uint32_t *out, size_t max, struct capture_tls_netns_result *res);

/* Parsers of the two files (exposed for the tests): calls cb for each local address found in
 * `text` (len bytes, need not end in NUL) until cb returns non-zero, which they then return. */
typedef int (*capture_tls_netns_addr_cb)(void *arg, const struct capture_tls_netns_addr *a);
int capture_tls_netns_parse_fib_trie(const char *text, size_t len, capture_tls_netns_addr_cb cb,
                                     void *arg);
int capture_tls_netns_parse_if_inet6(const char *text, size_t len, capture_tls_netns_addr_cb cb,
                                     void *arg);

#endif
