/* libFuzzer target for the ELF build-id reader of services/capture/tls/offsets.c: with --tls the
 * capture opens every libssl.so* file any process of the node maps, containers' own included
 * (through /proc/PID/root), and reads its ELF header, program headers and notes while it still
 * runs as root with SYS_ADMIN and SYS_PTRACE. A pod can map a file of its own making under that
 * name, so these are hostile bytes. The input is the file (written to a memfd, read through
 * /proc/self/fd/N as the capture reads a path). Every file gives an identity: a build-id of at
 * most 64 bytes that is a run of the file's own bytes, or none (device and inode decide); the
 * same file twice gives the same identity. FUZZ_VERBOSE=1 prints each build-id's length (to check
 * seeds). */
#include <elf.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "capture/tls/offsets.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int fd = -1;
    static char path[64];
    static int verbose = -1;
    struct capture_tls_build a, b;

    if (verbose < 0)
        verbose = getenv("FUZZ_VERBOSE") != NULL;
    if (fd < 0) {
        fd = memfd_create("fuzz-libssl", MFD_CLOEXEC);
        CHECK(fd >= 0);
        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    }
    CHECK(ftruncate(fd, 0) == 0);
    CHECK(size == 0 || pwrite(fd, data, size, 0) == (ssize_t)size);

    CHECK(capture_tls_offsets_build_of(path, &a) == 0);
    CHECK(a.build_id_len <= sizeof(a.build_id));
    if (verbose)
        fprintf(stderr, "build-id of %zu bytes\n", a.build_id_len);
    if (a.build_id_len) {
        CHECK(size >= sizeof(Elf64_Ehdr) && memcmp(data, ELFMAG, SELFMAG) == 0 &&
              data[EI_CLASS] == ELFCLASS64);
        CHECK(memmem(data, size, a.build_id, a.build_id_len) != NULL);
    }
    CHECK(capture_tls_offsets_same_build(&a, &a));

    CHECK(capture_tls_offsets_build_of(path, &b) == 0);
    CHECK(b.build_id_len == a.build_id_len && memcmp(b.build_id, a.build_id, a.build_id_len) == 0);
    CHECK(b.dev == a.dev && b.ino == a.ino && capture_tls_offsets_same_build(&a, &b));
    return 0;
}
