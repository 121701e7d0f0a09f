/* The privileged helper process of --tls (see helper.h): fork, what it keeps (descriptors,
 * capabilities), and its loop of rescans. Single-threaded; blocking I/O on its socket only. */
#include "capture/tls/helper.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "util/error.h"
#include "util/log.h"

#define SCAN_MS     1000
#define KEEP_CAPS   ((1u << CAP_SYS_ADMIN) | (1u << CAP_SYS_PTRACE)) /* both < 32 */
#define HELPER_COMM "netreel-tls" /* the eBPF program never traces comm "netreel*" */

struct helper {
    struct capture_tls_probe *probe;
    capture_tls_helper_rescan_cb rescan;
    void *arg;
    int sock;
    uint32_t mode;
    size_t n;
    struct capture_tls_netns_addr *addrs; /* sorted, CAPTURE_TLS_TARGETS_MAX */
    uint32_t *found, *table;              /* CAPTURE_TLS_MAX_POD_NETNS each */
    struct capture_tls_status_msg st, sent;
    bool mode_written;
    unsigned netns_warned;
};

int capture_tls_helper_targets_check(const struct capture_tls_targets_msg *m, size_t len)
{
    if (len < CAPTURE_TLS_TARGETS_HDR || m->type != CAPTURE_TLS_MSG_TARGETS || m->mode > 1 ||
        m->n > CAPTURE_TLS_TARGETS_MAX ||
        len != CAPTURE_TLS_TARGETS_HDR + (size_t)m->n * sizeof(m->addrs[0]))
        return -EINVAL;
    return 0;
}

/* Every descriptor but 0-2, the socket and the eBPF programs and maps (the attach and the
 * namespace table use them): the packet sockets, the key log file, libuv's, the capture's own
 * probe links are not the helper's business. */
static int close_other_fds(int keep)
{
    int fds[4096], n = 0, rc = 0;
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;

    if (!d)
        return -errno;
    while ((e = readdir(d))) {
        char path[64], link[64];
        char *end;
        long fd = strtol(e->d_name, &end, 10);
        ssize_t len;
        if (end == e->d_name || *end || fd <= 2 || fd == keep || fd == dirfd(d) || fd > 0x7fffffff)
            continue;
        snprintf(path, sizeof(path), "/proc/self/fd/%ld", fd);
        len = readlink(path, link, sizeof(link) - 1);
        link[len > 0 ? len : 0] = 0;
        if (strncmp(link, "anon_inode:bpf-", 15) == 0) /* bpf-map, bpf-prog: not links */
            continue;
        if (n == (int)(sizeof(fds) / sizeof(fds[0]))) {
            rc = -EMFILE;
            break;
        }
        fds[n++] = (int)fd;
    }
    closedir(d);
    for (int i = 0; i < n; i++)
        close(fds[i]);
    return rc;
}

static int caps_get(struct __user_cap_data_struct d[2])
{
    struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};

    return syscall(SYS_capget, &h, d) == 0 ? 0 : -errno;
}

/* To `user` (resolved before: uid, gid; root: stays) with only KEEP_CAPS, for good. */
static int become(bool change, uid_t uid, gid_t gid, const char *user, char *err, size_t errlen)
{
    struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
    struct __user_cap_data_struct d[2];

    /* The bounding set first, while CAP_SETPCAP is still effective. */
    for (int c = 0; c <= 63; c++)
        if (!(c < 32 && (KEEP_CAPS >> c) & 1) && prctl(PR_CAPBSET_DROP, c, 0, 0, 0) != 0 &&
            errno == EINVAL)
            break; /* past the kernel's last capability */
    if (change) {
        if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0 || setgroups(0, NULL) != 0 ||
            setgid(gid) != 0 || setuid(uid) != 0) {
            int e = errno;
            snprintf(err, errlen, "cannot become %s: %s", user, strerror(e));
            return -e;
        }
        prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0);
    }
    memset(d, 0, sizeof(d));
    d[0].effective = d[0].permitted = KEEP_CAPS;
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
    if (syscall(SYS_capset, &h, d) != 0) {
        int e = errno;
        snprintf(err, errlen, "cannot keep CAP_SYS_ADMIN and CAP_SYS_PTRACE: %s", strerror(e));
        return -e;
    }
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
        int e = errno;
        snprintf(err, errlen, "cannot set no_new_privs: %s", strerror(e));
        return -e;
    }
    /* Verify, as privs.c does: exactly the two, and no way back to root. */
    if (caps_get(d) != 0 || d[0].effective != KEEP_CAPS || d[0].permitted != KEEP_CAPS ||
        d[0].inheritable || d[1].effective || d[1].permitted || d[1].inheritable) {
        snprintf(err, errlen, "the capabilities are not exactly CAP_SYS_ADMIN and CAP_SYS_PTRACE");
        return -EPERM;
    }
    if (change && (setuid(0) == 0 || getuid() != uid || geteuid() != uid || getgid() != gid ||
                   getegid() != gid)) {
        snprintf(err, errlen, "became %s but root could be regained", user);
        return -EPERM;
    }
    return 0;
}

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A status message, with fds (link fds to hand over) or not. */
static int send_status(struct helper *h, const int *fds, unsigned n_fds)
{
    union {
        char buf[CMSG_SPACE(sizeof(int) * CAPTURE_TLS_HELPER_FDS_MAX)];
        struct cmsghdr align;
    } u;
    struct iovec iov = {.iov_base = &h->st, .iov_len = sizeof(h->st)};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};

    if (n_fds) {
        struct cmsghdr *c;
        memset(&u, 0, sizeof(u));
        mh.msg_control = u.buf;
        mh.msg_controllen = CMSG_SPACE(sizeof(int) * n_fds);
        c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * n_fds);
        memcpy(CMSG_DATA(c), fds, sizeof(int) * n_fds);
    }
    while (sendmsg(h->sock, &mh, MSG_NOSIGNAL) < 0) {
        if (errno != EINTR)
            return -errno;
    }
    h->sent = h->st;
    return 0;
}

/* pod_netns := the namespaces of the targeted addresses: new ones first, then the stale ones
 * out, then the mode, so that a pod staying targeted is never untraced in between. */
static void update_netns(struct helper *h)
{
    struct capture_tls_netns_result res;
    size_t n_table;
    int rc;

    if (h->mode == 0) {
        if (!h->mode_written || h->st.mode != 0)
            h->mode_written = capture_tls_probe_set_netns_mode(h->probe, 0) == 0;
        h->st.mode = 0;
        h->st.pod_netns = 0;
        return;
    }
    rc = capture_tls_netns_scan("/proc", h->addrs, h->n, h->found, CAPTURE_TLS_MAX_POD_NETNS, &res);
    if (rc != 0) {
        NR_WARN("tls: cannot find the targeted pods' network namespaces", "err=\"%s\"",
                nr_strerror(rc));
        return; /* the table stays as it was */
    }
    if (res.left_out && !h->netns_warned++)
        NR_WARN("tls: too many network namespaces; some pods' processes are not traced",
                "left_out=%zu max=%d", res.left_out, CAPTURE_TLS_MAX_POD_NETNS);
    h->st.netns_left_out = res.left_out;
    for (size_t i = 0; i < res.matched; i++)
        if (capture_tls_probe_netns_add(h->probe, h->found[i]) != 0)
            h->st.netns_left_out++;
    n_table = capture_tls_probe_netns_list(h->probe, h->table, CAPTURE_TLS_MAX_POD_NETNS);
    for (size_t i = 0; i < n_table; i++) {
        bool keep = false;
        for (size_t j = 0; j < res.matched && !keep; j++)
            keep = h->found[j] == h->table[i];
        if (!keep)
            capture_tls_probe_netns_del(h->probe, h->table[i]);
    }
    if (!h->mode_written || h->st.mode != 1)
        h->mode_written = capture_tls_probe_set_netns_mode(h->probe, 1) == 0;
    h->st.mode = 1;
    h->st.pod_netns =
        (uint32_t)capture_tls_probe_netns_list(h->probe, h->table, CAPTURE_TLS_MAX_POD_NETNS);
}

/* Libraries, then namespaces; what changed goes to the capture. */
static int scan(struct helper *h)
{
    unsigned first = capture_tls_probe_links(h->probe);
    int fds[CAPTURE_TLS_HELPER_FDS_MAX], rc;
    unsigned n;

    h->st.attach_failures = h->rescan(h->arg);
    h->st.libraries = capture_tls_probe_libraries(h->probe);
    h->st.scans++;
    update_netns(h);
    /* The links just made go to the capture, which keeps them: they outlive the helper. */
    while ((n = capture_tls_probe_link_fds(h->probe, first, fds, CAPTURE_TLS_HELPER_FDS_MAX))) {
        rc = send_status(h, fds, n);
        if (rc != 0)
            return rc;
        first += n;
    }
    if (h->st.mode != h->sent.mode || h->st.libraries != h->sent.libraries ||
        h->st.pod_netns != h->sent.pod_netns || h->st.attach_failures != h->sent.attach_failures ||
        h->st.netns_left_out != h->sent.netns_left_out)
        return send_status(h, NULL, 0);
    return 0;
}

/* A new target set; 0, 1 when the capture is gone, or a negative errno. */
static int take_targets(struct helper *h, struct capture_tls_targets_msg *m)
{
    ssize_t len = recv(h->sock, m, sizeof(*m), MSG_TRUNC);

    if (len == 0)
        return 1;
    if (len < 0)
        return errno == EINTR || errno == EAGAIN ? 0 : -errno;
    if ((size_t)len > sizeof(*m) || capture_tls_helper_targets_check(m, (size_t)len) != 0) {
        NR_WARN("tls: helper: a malformed target set; tracing every process", "bytes=%zd", len);
        h->mode = 0;
        return 0;
    }
    h->mode = m->mode;
    h->n = m->mode == 1 ? m->n : 0;
    memcpy(h->addrs, m->addrs, h->n * sizeof(m->addrs[0]));
    capture_tls_netns_sort(h->addrs, h->n);
    return 0;
}

static int run(struct helper *h)
{
    struct capture_tls_targets_msg *m = malloc(sizeof(*m));
    int64_t next = 0;
    int rc = 0;

    h->addrs = calloc(CAPTURE_TLS_TARGETS_MAX, sizeof(*h->addrs));
    h->found = calloc(CAPTURE_TLS_MAX_POD_NETNS, sizeof(*h->found));
    h->table = calloc(CAPTURE_TLS_MAX_POD_NETNS, sizeof(*h->table));
    if (!m || !h->addrs || !h->found || !h->table) {
        rc = -ENOMEM;
        goto out;
    }
    h->st.type = CAPTURE_TLS_MSG_STATUS;
    h->sent.libraries = UINT32_MAX; /* the first status always goes out */
    for (;;) {
        struct pollfd p = {.fd = h->sock, .events = POLLIN};
        int64_t now = now_ms();
        int n;
        if (now >= next) {
            rc = scan(h);
            if (rc != 0)
                break;
            next = now_ms() + SCAN_MS;
            continue;
        }
        n = poll(&p, 1, (int)(next - now));
        if (n < 0 && errno != EINTR) {
            rc = -errno;
            break;
        }
        if (n <= 0)
            continue;
        if (p.revents & POLLIN) {
            rc = take_targets(h, m);
            if (rc != 0)
                break;
            next = 0; /* at once */
        } else if (p.revents & (POLLHUP | POLLERR | POLLNVAL)) {
            rc = 1;
            break;
        }
    }
out:
    free(m);
    free(h->addrs);
    free(h->found);
    free(h->table);
    return rc == 1 ? 0 : rc;
}

static void child_main(struct capture_tls_probe *probe, const char *user, uint32_t mode,
                       capture_tls_helper_rescan_cb rescan, void *arg, int sock, pid_t parent)
{
    struct helper h = {.probe = probe, .rescan = rescan, .arg = arg, .sock = sock, .mode = mode};
    bool change = getuid() == 0 && user && user[0] && strcmp(user, "root") != 0;
    uid_t uid = 0;
    gid_t gid = 0;
    char err[256];
    int rc;

    /* Never outlive the capture: the signal, then the check for a capture already gone. */
    prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    if (getppid() != parent)
        _exit(0);
    prctl(PR_SET_NAME, HELPER_COMM, 0, 0, 0);
    if (change) {
        const struct passwd *pw = getpwnam(user);
        if (!pw || pw->pw_uid == 0) {
            NR_ERROR("tls: helper: no such user", "user=%s", user);
            _exit(1);
        }
        uid = pw->pw_uid;
        gid = pw->pw_gid;
    }
    rc = close_other_fds(sock);
    if (rc == 0)
        rc = become(change, uid, gid, user, err, sizeof(err));
    else
        snprintf(err, sizeof(err), "closing the capture's descriptors: %s", nr_strerror(rc));
    if (rc != 0) {
        NR_ERROR("tls: helper: cannot start", "err=\"%s\"", err);
        _exit(1);
    }
    /* A change of user clears the death signal: again, and check again. */
    prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    if (getppid() != parent)
        _exit(0);
    NR_DEBUG("tls: helper started", "pid=%d uid=%d", (int)getpid(), (int)getuid());
    rc = run(&h);
    if (rc != 0)
        NR_ERROR("tls: helper: stopped", "err=\"%s\"", nr_strerror(rc));
    _exit(rc != 0);
}

int capture_tls_helper_fork(struct capture_tls_probe *probe, const char *user, uint32_t mode,
                            capture_tls_helper_rescan_cb rescan, void *arg, pid_t *pid, int *sock,
                            char *err, size_t errlen)
{
    pid_t parent = getpid(), child;
    int sv[2];

    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
        snprintf(err, errlen, "socketpair: %s", strerror(errno));
        return -errno;
    }
    fflush(stderr); /* nothing buffered is written twice */
    child = fork();
    if (child < 0) {
        int rc = -errno;
        snprintf(err, errlen, "fork: %s", strerror(errno));
        close(sv[0]);
        close(sv[1]);
        return rc;
    }
    if (child == 0) {
        close(sv[0]);
        child_main(probe, user, mode, rescan, arg, sv[1], parent);
    }
    close(sv[1]);
    /* The capture's loop must never wait for the helper. */
    if (fcntl(sv[0], F_SETFL, O_NONBLOCK) != 0)
        NR_WARN("tls: helper socket stays blocking", "err=\"%s\"", strerror(errno));
    *pid = child;
    *sock = sv[0];
    return 0;
}
