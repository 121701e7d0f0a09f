/* The eBPF side of --tls through libbpf: loads the program (skeleton of tls.bpf.c), attaches its
 * uprobes to libssl files, keeps the capture's own processes out, and hands the ring buffer's
 * records to a callback. No libuv here: the caller polls capture_tls_probe_fd(). */
#ifndef NR_CAPTURE_TLS_PROBE_H
#define NR_CAPTURE_TLS_PROBE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "capture/tls/record.h"

struct capture_tls_probe;

/* Called for each ring buffer record, `size` bytes as the kernel wrote them (not trusted). */
typedef void (*capture_tls_probe_cb)(void *arg, const void *rec, size_t size);

/* Opens and loads the program. `btf_path` (NULL: the kernel's /sys/kernel/btf/vmlinux) is the
 * kernel BTF CO-RE relocates against. NULL when eBPF cannot be used here, with the reason in
 * err ("kernel has no BTF (/sys/kernel/btf/vmlinux)", "loading the eBPF program: Operation not
 * permitted (needs CAP_BPF and CAP_PERFMON, or CAP_SYS_ADMIN)"). */
struct capture_tls_probe *capture_tls_probe_open(const char *btf_path, capture_tls_probe_cb cb,
                                                 void *arg, char *err, size_t errlen);

/* Never traces the process `tgid`. 0, or a negative errno (-E2BIG: the table is full). */
int capture_tls_probe_exclude(struct capture_tls_probe *p, uint32_t tgid);

/* Where the calibrated libssl build keeps the secrets (offsets.h). 0 or a negative errno. */
int capture_tls_probe_set_offsets(struct capture_tls_probe *p, const struct capture_tls_offsets *o);

/* Attaches entry and return probes of SSL_write, SSL_write_ex, SSL_read and SSL_read_ex in the
 * library file `path` (every process that maps that file, now or later). With `secrets` (only
 * for a file of the calibrated build) the probes also send each connection's secrets once. A
 * function the file lacks is skipped (OpenSSL 1.1.0 has no _ex). 0, or a negative errno with a
 * reason in err: -EACCES/-EPERM when creating uprobes is not allowed (CAP_SYS_ADMIN), -ENOENT when
 * the file has none of the four functions. Nothing stays attached on failure. */
int capture_tls_probe_attach(struct capture_tls_probe *p, const char *path, bool secrets, char *err,
                             size_t errlen);

/* Attaches entry and return probes of EVP_KDF_derive in the libcrypto file `path` (OpenSSL 3):
 * the secrets of libssl files attached without `secrets`, as they are derived. 0, or a negative
 * errno with a reason in err (-ENOENT: the file has no EVP_KDF_derive, it is not OpenSSL 3;
 * -E2BIG: 64 files already). Nothing stays attached on failure. */
int capture_tls_probe_attach_kdf(struct capture_tls_probe *p, const char *path, char *err,
                                 size_t errlen);

/* Pod targeting of the probes: mode 0 traces every process (but netreel's), mode 1 only those
 * whose network namespace (inode number) was added. The maps are reached through their fds:
 * no privilege needed, after the drop too. 0 or a negative errno (-E2BIG: the table is full). */
int capture_tls_probe_set_netns_mode(struct capture_tls_probe *p, uint32_t mode);
int capture_tls_probe_netns_add(struct capture_tls_probe *p, uint32_t inum);
int capture_tls_probe_netns_del(struct capture_tls_probe *p, uint32_t inum);
/* The namespaces in the table, at most max written to out; their number. */
size_t capture_tls_probe_netns_list(const struct capture_tls_probe *p, uint32_t *out, size_t max);

/* The number of links (attached probes) so far, and the fds of links [first, first + max): what
 * keeps a library's probes attached, to hand to another process (SCM_RIGHTS). Returns how many
 * fds were written. */
unsigned capture_tls_probe_links(const struct capture_tls_probe *p);
unsigned capture_tls_probe_link_fds(const struct capture_tls_probe *p, unsigned first, int *fds,
                                    unsigned max);

/* The number of libssl files attached. */
unsigned capture_tls_probe_libraries(const struct capture_tls_probe *p);

/* A file descriptor that is readable when records wait (for poll/uv_poll). */
int capture_tls_probe_fd(const struct capture_tls_probe *p);

/* Hands waiting records to the callback, at most max_records (the rest stays in the ring and
 * the fd stays readable: producers faster than the consumer cannot keep the caller here). The
 * number consumed or a negative errno. */
int capture_tls_probe_consume(struct capture_tls_probe *p, unsigned max_records);

/* The program's counters: records the ring had no room for, plaintext bytes lost (calls cut
 * at 1 MiB, unreadable buffers, full ring), SSL calls that moved bytes; EVP_KDF_derive calls
 * trapped (by every process mapping an attached libcrypto, in SSL calls or not), key derivation
 * secrets sent, TLS 1.3 ones not sent for want of the connection's client random. */
struct capture_tls_probe_counts {
    uint64_t ring_dropped, bytes_lost, calls, kdf_calls, kdf_secrets, kdf_no_random;
};
void capture_tls_probe_counters(const struct capture_tls_probe *p,
                                struct capture_tls_probe_counts *out);

/* Detaches everything and frees the probe (NULL: nothing). */
void capture_tls_probe_free(struct capture_tls_probe *p);

#endif
