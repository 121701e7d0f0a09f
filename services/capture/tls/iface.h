/* The `tls` pseudo-interface of netreel-capture (--tls): the eBPF probe's plaintext records,
 * taken on the capture's loop, become synthetic TCP packets (synth.h) in batches of their own
 * that go to the store like any interface's. Libraries are attached before the privilege drop;
 * afterwards a privileged helper process (helper.h, watched from here through supervisor.h)
 * attaches libssl files new processes map and keeps the probes to the targeted pods' network
 * namespaces (docs/capture-tls.md). */
#ifndef NR_CAPTURE_TLS_IFACE_H
#define NR_CAPTURE_TLS_IFACE_H

#include <stdint.h>

#include "capture/capture.h"
#include "kube/target.h"

#define CAPTURE_TLS_IFNAME       "tls"
#define CAPTURE_TLS_LINKTYPE     1   /* LINKTYPE_ETHERNET: the same as most real interfaces */
#define CAPTURE_TLS_LINKTYPE_ANY 276 /* LINUX_SLL2, when the capture records "any" */
#define CAPTURE_TLS_SNAPLEN      262144
#define CAPTURE_TLS_MAX_CONNS    4096

struct capture_tls_iface;

/* Loads the probe, keeps the capture's own process out, attaches to every libssl mapped now,
 * then forks the helper process (with pod targeting, --kube without --bpf-override, the probes
 * trace nothing until the first target set; a failed fork: one warning, every process traced,
 * no rescans).
 * NULL when that cannot be done here: then it has logged ONE warning saying why, and the
 * capture records everything else as before. Call before the privilege drop. The environment
 * variable NETREEL_TLS_BTF names a kernel BTF file to use instead of /sys/kernel/btf/vmlinux.
 * It also calibrates where the linked libssl keeps TLS secrets (offsets.h; when that fails, one
 * warning and plaintext only) and opens --tls-keylog-file (0600, appended to). */
struct capture_tls_iface *capture_tls_iface_open(struct capture *cap, uint32_t ifid);

/* The link type of its packets: LINUX_SLL2 when a source of the capture records "any", else
 * Ethernet. */
int capture_tls_iface_link_type(const struct capture_tls_iface *t);

/* Starts taking records on the loop, flushing batches and rescanning. 0 or a negative errno. */
int capture_tls_iface_start(struct capture_tls_iface *t);

/* The targeted pods changed: the probes trace only processes of their network namespaces (set
 * NULL: every process, as when the packet filter records everything). Sent to the helper; when it
 * cannot take it now, the latest set is sent again each second. */
void capture_tls_iface_target(struct capture_tls_iface *t, const struct kube_target_set *set);

/* Takes what the ring still holds and hands the last batch to the pipeline; stops the handles
 * (nr_prog_close_handles closes them). */
void capture_tls_iface_stop(struct capture_tls_iface *t);

/* For /metrics: records and packets made, records refused as malformed, connections tracked,
 * and the probe's counters. */
struct capture_tls_stats {
    uint64_t records, packets, bad_records, ring_dropped, bytes_lost, calls, conns, evicted;
    unsigned libraries;
    /* secrets records, those refused (wrong offsets, malformed), key log lines made, and
     * connections whose lines found no room in the pipeline (capture_pipeline_keylog_add) */
    uint64_t secrets, bad_secrets, keylog_lines, keylog_dropped;
    /* OpenSSL 3's key derivation: EVP_KDF_derive calls trapped, secrets the probe sent, TLS 1.3
     * ones it could not (no client random), records received and those refused */
    uint64_t kdf_calls, kdf_sent, kdf_no_random, kdf_secrets, kdf_bad;
    /* the helper: running (1) or not; network namespaces of targeted pods traced, -1 when every
     * process is traced (no pod targeting) */
    int helper_up;
    int64_t pod_namespaces;
};
void capture_tls_iface_stats(const struct capture_tls_iface *t, struct capture_tls_stats *st);

/* Frees everything (after the loop has closed the handles), stopping and reaping the helper.
 * NULL: nothing. */
void capture_tls_iface_free(struct capture_tls_iface *t);

#endif
