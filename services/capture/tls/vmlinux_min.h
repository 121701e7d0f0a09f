/* vmlinux_min.h: the few kernel types tls.bpf.c reads, as CO-RE relocatable declarations (libbpf
 * matches them by name against the running kernel's BTF), instead of a 5 MB generated vmlinux.h
 * that needs /sys/kernel/btf/vmlinux on the BUILD machine. x86-64 only (pt_regs). */
#ifndef VMLINUX_MIN_H
#define VMLINUX_MIN_H
#ifndef __TARGET_ARCH_x86
/* pt_regs below and the syscall numbers in tls.bpf.c are x86-64's: another architecture needs
 * its own, not a program that loads and reads the wrong registers. */
#error "vmlinux_min.h: x86-64 only"
#endif
#define __VMLINUX_H__ /* bpf_tracing.h: use the kernel's pt_regs names (di, not rdi) */
typedef unsigned char __u8;
typedef unsigned short __u16;
typedef unsigned int __u32;
typedef unsigned long long __u64;
typedef signed char __s8;
typedef short __s16;
typedef int __s32;
typedef long long __s64;
typedef __u16 __be16;
typedef __u32 __be32;
typedef __u32 __wsum;
typedef _Bool bool;
enum { false = 0, true = 1 };

enum bpf_map_type {
    BPF_MAP_TYPE_HASH = 1,
    BPF_MAP_TYPE_ARRAY = 2,
    BPF_MAP_TYPE_PERCPU_ARRAY = 6,
    BPF_MAP_TYPE_LRU_HASH = 9,
    BPF_MAP_TYPE_RINGBUF = 27,
};
enum { BPF_ANY = 0 };
enum { BPF_RB_NO_WAKEUP = 1, BPF_RB_FORCE_WAKEUP = 2 };
enum { BPF_RB_AVAIL_DATA = 0 };

#pragma clang attribute push(__attribute__((preserve_access_index)), apply_to = record)
struct pt_regs {
    unsigned long r15, r14, r13, r12, bp, bx, r11, r10, r9, r8, ax, cx, dx, si, di, orig_ax, ip, cs,
        flags, sp, ss;
};
struct bpf_raw_tracepoint_args {
    __u64 args[0];
};
struct in6_addr {
    union {
        __u8 u6_addr8[16];
    } in6_u;
};
struct sock_common {
    __be32 skc_daddr;
    __be32 skc_rcv_saddr;
    __be16 skc_dport;
    __u16 skc_num;
    unsigned short skc_family;
    struct in6_addr skc_v6_daddr;
    struct in6_addr skc_v6_rcv_saddr;
};
struct sock {
    struct sock_common __sk_common;
};
struct file;
struct socket {
    struct file *file;
    struct sock *sk;
};
struct file {
    void *private_data;
};
struct fdtable {
    unsigned int max_fds;
    struct file **fd;
};
struct files_struct {
    struct fdtable *fdt;
};
/* The network namespace of a task: its inode number (what stat(/proc/PID/ns/net) shows) is the
 * key of the pod filter. */
struct ns_common {
    unsigned int inum;
};
struct net {
    struct ns_common ns;
};
struct nsproxy {
    struct net *net_ns;
};
struct task_struct {
    struct files_struct *files;
    struct nsproxy *nsproxy;
};
#pragma clang attribute pop
#endif
