/* Finding the libssl (and OpenSSL 3 libcrypto) files processes map: /proc/PID/maps of every
 * process, each library named through /proc/PID/root (so that a container's own libssl is reached
 * from the host's mount namespace) and counted once per file (device and inode), whatever its path
 * in each process. */
#ifndef NR_CAPTURE_TLS_LIBS_H
#define NR_CAPTURE_TLS_LIBS_H

#include <stddef.h>
#include <sys/types.h>

#define CAPTURE_TLS_MAX_LIBS 256

/* The library files found so far. Embedded; zero it to start. */
struct capture_tls_libs {
    struct {
        dev_t dev;
        ino_t ino;
    } seen[CAPTURE_TLS_MAX_LIBS];
    size_t n;
    unsigned full_warned;
};

/* Called for each file not seen before (which then counts as seen, whatever the callback does
 * with it): `path` is "/proc/PID/root/usr/lib/.../libssl.so.3" (or libcrypto.so.3: tell them
 * apart with the two functions below), for messages; `open_path` ("/proc/self/fd/N", valid
 * during the call) is the regular file itself, opened inside the process's root (see libs.c):
 * what to read and attach to, so that nothing swapped in under the path since (a FIFO, a
 * symlink to a file of the node) is. */
typedef void (*capture_tls_libs_found)(void *arg, int pid, const char *path, const char *open_path);

/* Scans `proc` (normally "/proc": a directory of PID folders with maps and root). Processes
 * whose maps cannot be read (gone, or not ours to read) are skipped. Returns the number of new
 * files found, or a negative errno when `proc` cannot be listed. */
int capture_tls_libs_scan(struct capture_tls_libs *l, const char *proc, capture_tls_libs_found cb,
                          void *arg);

/* Whether a maps line's path names an OpenSSL libssl ("/x/libssl.so.3", "/x/libssl.so.1.1";
 * not "libssl3.so" (NSS), not " (deleted)" files). */
int capture_tls_libs_is_libssl(const char *path);

/* Whether it names an OpenSSL 3 libcrypto ("/x/libcrypto.so.3"; not 1.1's, not " (deleted)"). */
int capture_tls_libs_is_libcrypto(const char *path);

#endif
