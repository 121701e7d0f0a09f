/* The privileged helper of --tls ("netreel-tls"): a process forked by the capture right after the
 * probe is loaded, before any thread exists and before the privilege drop, that keeps only
 * CAP_SYS_ADMIN (making uprobes) and CAP_SYS_PTRACE (other users' /proc/PID/maps and
 * /proc/PID/ns/net) as the capture's --user, and does nothing but: every second (and at once
 * when the targeted pods change) attach libssl files first mapped since, and recompute which
 * network namespaces belong to targeted pods (netns.h) into the probe's `pod_netns` table. The
 * capture itself drops everything and parses the network; the helper reads only /proc and a
 * socketpair to the capture (SOCK_SEQPACKET: one message per send, the structs below). */
#ifndef NR_CAPTURE_TLS_HELPER_H
#define NR_CAPTURE_TLS_HELPER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "capture/tls/netns.h"
#include "capture/tls/probe.h"

/* Targeted addresses the helper takes; a larger set is sent as mode 0 (every process), the way
 * the packet filter records everything past KUBE_FILTER_HOSTS_MAX. */
#define CAPTURE_TLS_TARGETS_MAX 1024
/* Link fds passed with one message (one library: 10 probes). */
#define CAPTURE_TLS_HELPER_FDS_MAX 16

enum { CAPTURE_TLS_MSG_TARGETS = 1, CAPTURE_TLS_MSG_STATUS = 2 };

/* Capture -> helper: which processes to trace. mode 0: every process (addresses ignored);
 * mode 1: those of the network namespaces holding one of the n addresses (v4-mapped for IPv4). */
struct capture_tls_targets_msg {
    uint32_t type; /* CAPTURE_TLS_MSG_TARGETS */
    uint32_t mode;
    uint32_t n;
    uint32_t pad;
    struct capture_tls_netns_addr addrs[CAPTURE_TLS_TARGETS_MAX];
};
#define CAPTURE_TLS_TARGETS_HDR offsetof(struct capture_tls_targets_msg, addrs)

/* Helper -> capture, whenever something in it changed; may carry, as SCM_RIGHTS, the link fds of
 * libraries just attached, so that the capture holds them and they stay attached should the
 * helper die. */
struct capture_tls_status_msg {
    uint32_t type;      /* CAPTURE_TLS_MSG_STATUS */
    uint32_t mode;      /* the netns_mode in force */
    uint32_t libraries; /* library files attached, by the capture and by the helper */
    uint32_t pod_netns; /* namespaces in pod_netns (mode 1) */
    uint64_t attach_failures;
    uint64_t scans;          /* /proc rescans done */
    uint64_t netns_left_out; /* namespaces the last scan had no room for */
};

/* Checks a targets message of len bytes as received (not trusted). 0, or -EINVAL. */
int capture_tls_helper_targets_check(const struct capture_tls_targets_msg *m, size_t len);

/* Called by the helper every second and at each new target set, before the namespaces: attaches
 * the libssl files mapped since the last call (the capture's own /proc scan and its decision
 * about secrets, in the helper's copy of the capture's memory). */
typedef uint64_t (*capture_tls_helper_rescan_cb)(void *arg); /* returns attach failures so far */

/* Forks the helper, which starts in netns_mode `mode` with no targeted address. In the capture: 0
 * with *pid and *sock (the capture's end, non-blocking, close-on-exec) set, or a negative errno
 * with a reason in err (nothing forked; the caller goes on without). The child never returns from
 * here: it keeps the probe's BPF fds, 0-2 and its end of the socketpair, closes every other
 * descriptor, becomes `user` (like privs.c: "" or "root" stays uid 0) with only the two
 * capabilities and no_new_privs, dies with the capture (PR_SET_PDEATHSIG), and exits when the
 * capture's end closes. Call with no other thread. */
int capture_tls_helper_fork(struct capture_tls_probe *probe, const char *user, uint32_t mode,
                            capture_tls_helper_rescan_cb rescan, void *arg, pid_t *pid, int *sock,
                            char *err, size_t errlen);

#endif
