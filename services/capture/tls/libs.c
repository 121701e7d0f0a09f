/* The /proc scan for libssl files (see libs.h). */
#include "capture/tls/libs.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

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

static int seen(struct capture_tls_libs *l, const struct stat *st)
{
    for (size_t i = 0; i < l->n; i++)
        if (l->seen[i].dev == st->st_dev && l->seen[i].ino == st->st_ino)
            return 1;
    return 0;
}

/* One process's maps: its libssl files not seen yet. */
static int scan_pid(struct capture_tls_libs *l, const char *proc, int pid,
                    capture_tls_libs_found cb, void *arg)
{
    char maps[4200], line[4200], path[4200];
    int found = 0;
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
        if (!p || !strstr(p, "libssl"))
            continue;
        p[strcspn(p, "\n")] = 0;
        if (!capture_tls_libs_is_libssl(p))
            continue;
        snprintf(path, sizeof(path), "%s/%d/root%s", proc, pid, p);
        if (stat(path, &st) != 0 || seen(l, &st))
            continue;
        if (l->n == CAPTURE_TLS_MAX_LIBS) {
            if (!l->full_warned++)
                NR_WARN("tls: too many distinct libssl files; new ones are not traced", "max=%d",
                        CAPTURE_TLS_MAX_LIBS);
            break;
        }
        l->seen[l->n].dev = st.st_dev;
        l->seen[l->n].ino = st.st_ino;
        l->n++;
        found++;
        cb(arg, pid, path);
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
