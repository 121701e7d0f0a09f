/* The /proc scan for libssl and libcrypto files (see libs.h). */
#include "capture/tls/libs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "util/log.h"

int capture_tls_libs_is_libssl(const char *path)
{
    const char *base = strrchr(path, '/');
    size_t n = strlen(path);

    if (!base || path[0] != '/')
        return 0;
    base++;
    if (strncmp(base, "libssl.so", 9) != 0 || (base[9] != 0 && base[9] != '.'))
        return 0;
    if (n >= 10 && strcmp(path + n - 10, " (deleted)") == 0)
        return 0;
    return 1;
}

int capture_tls_libs_is_libcrypto(const char *path)
{
    const char *base = strrchr(path, '/');
    size_t n = strlen(path);

    if (!base || path[0] != '/')
        return 0;
    base++;
    /* OpenSSL 3 only: 1.1's libcrypto has no EVP_KDF_derive */
    if (strncmp(base, "libcrypto.so.3", 14) != 0 || (base[14] != 0 && base[14] != '.'))
        return 0;
    if (n >= 10 && strcmp(path + n - 10, " (deleted)") == 0)
        return 0;
    return 1;
}

static int seen(struct capture_tls_libs *l, const struct stat *st)
{
    for (size_t i = 0; i < l->n; i++)
        if (l->seen[i].dev == st->st_dev && l->seen[i].ino == st->st_ino)
            return 1;
    return 0;
}

/* Opens `file` (absolute, as a maps line names it) the way process `pid` sees it, or -errno:
 * - inside its root (RESOLVE_IN_ROOT): an absolute symlink in a container's image resolves in
 *   the container, never on the host, so a pod cannot point the capture at a file of the node;
 * - without blocking (O_NONBLOCK): a FIFO swapped in after the maps line was read cannot hold the
 *   scan, which runs with privileges;
 * - only a regular file (-EINVAL otherwise). */
static int open_in_root(const char *proc, int pid, const char *file)
{
    struct open_how how = {.flags = O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY,
                           .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS};
    char root[4200];
    struct stat st;
    int dfd, fd;

    snprintf(root, sizeof(root), "%s/%d/root", proc, pid);
    dfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return -errno;
    fd = (int)syscall(SYS_openat2, dfd, file, &how, sizeof(how));
    if (fd < 0)
        fd = -errno;
    close(dfd);
    if (fd >= 0 && (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))) {
        close(fd);
        fd = -EINVAL;
    }
    return fd;
}

/* One process's maps: its libssl and libcrypto files not seen yet. */
static int scan_pid(struct capture_tls_libs *l, const char *proc, int pid,
                    capture_tls_libs_found cb, void *arg)
{
    char maps[4200], line[4200], path[4200], fd_path[64], last[4200] = "";
    int found = 0, fd;
    FILE *f;

    snprintf(maps, sizeof(maps), "%s/%d/maps", proc, pid);
    f = fopen(maps, "re");
    if (!f)
        return 0;
    while (fgets(line, sizeof(line), f)) {
        size_t n = strlen(line);
        char *p = strchr(line, '/');
        struct stat st;
        if (n && line[n - 1] != '\n' && !feof(f)) {
            /* longer than any path we use: skip the rest of the line */
            int c;
            while ((c = fgetc(f)) != EOF && c != '\n')
                ;
            continue;
        }
        if (!p || (!strstr(p, "libssl") && !strstr(p, "libcrypto")))
            continue;
        p[strcspn(p, "\n")] = 0;
        if (!capture_tls_libs_is_libssl(p) && !capture_tls_libs_is_libcrypto(p))
            continue;
        /* A library's segments are consecutive lines: one open for them (libcrypto is in
         * nearly every process, and the helper rescans every second). */
        if (strcmp(p, last) == 0)
            continue;
        snprintf(last, sizeof(last), "%s", p);
        fd = open_in_root(proc, pid, p);
        if (fd < 0)
            continue;
        if (fstat(fd, &st) != 0 || seen(l, &st)) {
            close(fd);
            continue;
        }
        if (l->n == CAPTURE_TLS_MAX_LIBS) {
            close(fd);
            if (!l->full_warned++)
                NR_WARN("tls: too many distinct libssl/libcrypto files; new ones are not traced",
                        "max=%d", CAPTURE_TLS_MAX_LIBS);
            break;
        }
        l->seen[l->n].dev = st.st_dev;
        l->seen[l->n].ino = st.st_ino;
        l->n++;
        found++;
        snprintf(path, sizeof(path), "%s/%d/root%s", proc, pid, p);
        snprintf(fd_path, sizeof(fd_path), "/proc/self/fd/%d", fd);
        cb(arg, pid, path, fd_path);
        close(fd);
    }
    fclose(f);
    return found;
}

int capture_tls_libs_scan(struct capture_tls_libs *l, const char *proc, capture_tls_libs_found cb,
                          void *arg)
{
    DIR *d = opendir(proc);
    struct dirent *e;
    int found = 0;

    if (!d)
        return -errno;
    while ((e = readdir(d))) {
        char *end;
        long pid = strtol(e->d_name, &end, 10);
        if (end == e->d_name || *end || pid <= 0 || pid > 0x7fffffff)
            continue;
        found += scan_pid(l, proc, (int)pid, cb, arg);
    }
    closedir(d);
    return found;
}
