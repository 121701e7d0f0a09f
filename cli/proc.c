/* Child processes for the CLI: kubectl and helm run to completion with their output captured,
 * kubectl port-forward kept running beside us, and the search for programs on $PATH. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "proc.h"
#include "util/buf.h"

#define OUTPUT_MAX (1u << 20)

int cli_find_program(const char *name, char *path, size_t len)
{
    const char *env = getenv("PATH");
    const char *p;

    if (strchr(name, '/')) {
        if (access(name, X_OK) != 0)
            return -ENOENT;
        snprintf(path, len, "%s", name);
        return 0;
    }
    p = env && *env ? env : "/usr/local/bin:/usr/bin:/bin";
    while (*p) {
        const char *end = strchr(p, ':');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        struct stat st;

        if (n == 0)
            snprintf(path, len, "./%s", name);
        else
            snprintf(path, len, "%.*s/%s", (int)n, p, name);
        if (stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0)
            return 0;
        p += n + (end ? 1 : 0);
    }
    return -ENOENT;
}

int cli_exe_dir(char *dir, size_t len)
{
    char buf[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
    char *slash;

    if (n < 0)
        return -errno;
    buf[n] = 0;
    slash = strrchr(buf, '/');
    if (!slash)
        return -EINVAL;
    *slash = 0;
    if ((size_t)snprintf(dir, len, "%s", buf) >= len)
        return -ENAMETOOLONG;
    return 0;
}

/* In the child between fork and exec: only async-signal-safe calls. */
static void child_exec(const char *const argv[], int out, int err, int own_group)
{
    int null = open("/dev/null", O_RDONLY);
    sigset_t none;

    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);

    if (null >= 0)
        dup2(null, 0);
    if (out >= 0)
        dup2(out, 1);
    if (err >= 0)
        dup2(err, 2);
    if (own_group)
        setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    signal(SIGPIPE, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    execvp(argv[0], (char *const *)argv);
    _exit(127);
}

static int exit_code(int status)
{
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return 255;
}

static void drain(int *fd, struct nr_buf *b)
{
    char chunk[8192];
    ssize_t n = read(*fd, chunk, sizeof(chunk));

    if (n > 0) {
        size_t room = b->max - b->len;
        nr_buf_append(b, chunk, (size_t)n < room ? (size_t)n : room);
        return;
    }
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return;
    close(*fd);
    *fd = -1;
}

/* The buffer as a C string (its last byte given up for the NUL when it is full). */
static char *to_string(struct nr_buf *b)
{
    if (nr_buf_append(b, "", 1) != 0 && b->len)
        b->data[b->len - 1] = 0;
    return b->data ? (char *)b->data : strdup("");
}

int cli_run(const char *const argv[], struct cli_output *o)
{
    int out[2] = {-1, -1}, err[2] = {-1, -1};
    struct nr_buf bo, be;
    int status, rc;
    pid_t pid;

    if (o && (pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0)) {
        rc = -errno;
        goto fail;
    }
    pid = fork();
    if (pid < 0) {
        rc = -errno;
        goto fail;
    }
    if (pid == 0)
        child_exec(argv, out[1], err[1], 0);
    if (o) {
        close(out[1]);
        close(err[1]);
        nr_buf_init(&bo, OUTPUT_MAX);
        nr_buf_init(&be, OUTPUT_MAX);
        while (out[0] >= 0 || err[0] >= 0) {
            struct pollfd p[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
            if (poll(p, 2, -1) < 0) {
                if (errno == EINTR)
                    continue;
                break;
            }
            if (p[0].revents)
                drain(&out[0], &bo);
            if (p[1].revents)
                drain(&err[0], &be);
        }
        if (out[0] >= 0)
            close(out[0]);
        if (err[0] >= 0)
            close(err[0]);
        o->out = to_string(&bo);
        o->err = to_string(&be);
    }
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return -errno;
    return exit_code(status);

fail:
    for (int i = 0; i < 2; i++) {
        if (out[i] >= 0)
            close(out[i]);
        if (err[i] >= 0)
            close(err[i]);
    }
    return rc;
}

void cli_output_free(struct cli_output *o)
{
    free(o->out);
    free(o->err);
    o->out = o->err = NULL;
}

pid_t cli_spawn_piped(const char *const argv[], int *out_fd, int merge_stderr)
{
    int p[2];
    pid_t pid;

    if (pipe2(p, O_CLOEXEC) != 0)
        return -errno;
    pid = fork();
    if (pid < 0) {
        int e = errno;
        close(p[0]);
        close(p[1]);
        return -e;
    }
    if (pid == 0)
        child_exec(argv, p[1], merge_stderr ? p[1] : -1, 1);
    close(p[1]);
    *out_fd = p[0];
    return pid;
}

const char *cli_last_line(const char *text, char *buf, size_t len)
{
    const char *end = text + strlen(text);

    buf[0] = 0;
    while (end > text && (end[-1] == '\n' || end[-1] == '\r' || end[-1] == ' '))
        end--;
    if (end > text) {
        const char *start = end;
        while (start > text && start[-1] != '\n')
            start--;
        snprintf(buf, len, "%.*s", (int)(end - start), start);
    }
    return buf;
}
