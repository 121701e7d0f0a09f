/* The capture's side of the --tls helper (see supervisor.h): its socket watched on the loop, the
 * link fds it hands over, the target sets sent to it, its end and reaping. */
#include "capture/tls/supervisor.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util/log.h"

struct capture_tls_supervisor {
    pid_t pid; /* 0: reaped */
    int sock;  /* the capture's end */
    bool up, polling, have_status;
    uv_poll_t poll;
    struct capture_tls_status_msg status;    /* the last it sent */
    struct capture_tls_targets_msg *targets; /* the latest set, while not sent yet */
    size_t targets_len;
    int held[CAPTURE_TLS_SUPERVISOR_HELD_MAX];
    unsigned n_held;
};

struct capture_tls_supervisor *capture_tls_supervisor_new(struct capture_tls_probe *probe,
                                                          const char *user, uint32_t mode,
                                                          capture_tls_helper_rescan_cb rescan,
                                                          void *arg, char *err, size_t errlen)
{
    struct capture_tls_supervisor *s = calloc(1, sizeof(*s));

    if (!s) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (capture_tls_helper_fork(probe, user, mode, rescan, arg, &s->pid, &s->sock, err, errlen) !=
        0) {
        free(s);
        return NULL;
    }
    s->up = true;
    return s;
}

static void reap(struct capture_tls_supervisor *s, int options)
{
    int status;

    if (s->pid > 0 && waitpid(s->pid, &status, options) == s->pid)
        s->pid = 0;
}

static void down(struct capture_tls_supervisor *s, const char *why)
{
    if (!s->up)
        return;
    s->up = false;
    NR_ERROR("tls: the helper exited; libraries and pods that appear now are not traced",
             "pid=%d reason=\"%s\"", (int)s->pid, why);
    if (s->polling)
        uv_poll_stop(&s->poll);
    reap(s, WNOHANG); /* else at the next tick: its socket closes before it is a zombie */
}

/* Keeps the link fds of a message; refuses what is not fds or exceeds the table. */
static void hold_fds(struct capture_tls_supervisor *s, struct msghdr *mh)
{
    for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
        size_t n;
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS || c->cmsg_len < CMSG_LEN(0))
            continue;
        n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < n; i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(fd));
            if (s->n_held < CAPTURE_TLS_SUPERVISOR_HELD_MAX)
                s->held[s->n_held++] = fd;
            else
                close(fd); /* the library stays attached while the helper lives */
        }
    }
}

static void on_readable(uv_poll_t *h, int status, int events)
{
    struct capture_tls_supervisor *s = h->data;

    if (status < 0) {
        down(s, uv_strerror(status));
        return;
    }
    for (int i = 0; i < 64 && s->up; i++) {
        union {
            char buf[CMSG_SPACE(sizeof(int) * CAPTURE_TLS_HELPER_FDS_MAX)];
            struct cmsghdr align;
        } u;
        struct capture_tls_status_msg m;
        struct iovec iov = {.iov_base = &m, .iov_len = sizeof(m)};
        struct msghdr mh = {.msg_iov = &iov,
                            .msg_iovlen = 1,
                            .msg_control = u.buf,
                            .msg_controllen = sizeof(u.buf)};
        ssize_t n = recvmsg(s->sock, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        if (n <= 0) {
            down(s, n == 0 ? "its socket closed" : strerror(errno));
            return;
        }
        hold_fds(s, &mh);
        if ((size_t)n != sizeof(m) || m.type != CAPTURE_TLS_MSG_STATUS ||
            (mh.msg_flags & MSG_TRUNC))
            continue; /* not ours to understand: the status stays */
        s->status = m;
        s->have_status = true;
    }
}

int capture_tls_supervisor_start(struct capture_tls_supervisor *s, uv_loop_t *loop)
{
    int rc;

    if (!s->up)
        return 0;
    rc = uv_poll_init(loop, &s->poll, s->sock);
    if (rc != 0)
        return rc;
    s->poll.data = s;
    s->polling = true;
    return uv_poll_start(&s->poll, UV_READABLE | UV_DISCONNECT, on_readable);
}

static void send_targets(struct capture_tls_supervisor *s)
{
    ssize_t n;

    if (!s->targets || !s->up)
        return;
    n = send(s->sock, s->targets, s->targets_len, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return; /* the next tick tries again */
    if (n < 0)
        down(s, strerror(errno));
    free(s->targets);
    s->targets = NULL;
}

void capture_tls_supervisor_target(struct capture_tls_supervisor *s,
                                   const struct kube_target_set *set)
{
    size_t n = set ? set->n : 0;
    struct capture_tls_targets_msg *m;

    if (!s->up)
        return;
    if (n > CAPTURE_TLS_TARGETS_MAX)
        set = NULL, n = 0; /* more than the helper takes: every process, as the filter does */
    m = calloc(1, CAPTURE_TLS_TARGETS_HDR + n * sizeof(m->addrs[0]));
    if (!m) {
        NR_ERROR("tls: out of memory for the targeted pods; the last set stays", "pods=%zu", n);
        return;
    }
    m->type = CAPTURE_TLS_MSG_TARGETS;
    m->mode = set ? 1 : 0;
    m->n = (uint32_t)n;
    for (size_t i = 0; i < n; i++) {
        const struct kube_ip *ip = &set->entries[i].ip;
        if (ip->family == AF_INET) {
            m->addrs[i].a[10] = m->addrs[i].a[11] = 0xff;
            memcpy(m->addrs[i].a + 12, ip->addr, 4);
        } else {
            memcpy(m->addrs[i].a, ip->addr, 16);
        }
    }
    free(s->targets);
    s->targets = m;
    s->targets_len = CAPTURE_TLS_TARGETS_HDR + n * sizeof(m->addrs[0]);
    send_targets(s);
}

void capture_tls_supervisor_tick(struct capture_tls_supervisor *s)
{
    send_targets(s);
    if (!s->up)
        reap(s, WNOHANG);
}

bool capture_tls_supervisor_up(const struct capture_tls_supervisor *s)
{
    return s->up;
}

const struct capture_tls_status_msg *
capture_tls_supervisor_status(const struct capture_tls_supervisor *s)
{
    return s->have_status ? &s->status : NULL;
}

void capture_tls_supervisor_stop(struct capture_tls_supervisor *s)
{
    if (s->polling)
        uv_poll_stop(&s->poll);
}

void capture_tls_supervisor_free(struct capture_tls_supervisor *s)
{
    if (!s)
        return;
    close(s->sock); /* the helper's poll sees the end */
    if (s->pid > 0) {
        kill(s->pid, SIGKILL);
        reap(s, 0);
    }
    while (s->n_held)
        close(s->held[--s->n_held]);
    free(s->targets);
    free(s);
}
