/* Tests for services/capture/kfilter.c: programs compiled for the cooked link types of -i any
 * read, in the kernel, what they read in libpcap's cooked header — or are refused. */
#include <linux/filter.h>
#include <pcap/pcap.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <errno.h>

#include <cmocka.h>

#include "capture/kfilter.h"

#define SLL  113
#define SLL2 276

static struct bpf_program compile(int link_type, const char *expr)
{
    pcap_t *p = pcap_open_dead(link_type, 262144);
    struct bpf_program prog;

    assert_non_null(p);
    if (pcap_compile(p, &prog, expr, 1, PCAP_NETMASK_UNKNOWN) != 0)
        fail_msg("%s: %s", expr, pcap_geterr(p));
    pcap_close(p);
    return prog;
}

static bool is_packet_load(const struct bpf_insn *in)
{
    unsigned cls = BPF_CLASS(in->code), mode = BPF_MODE(in->code);

    return (cls == BPF_LD || cls == BPF_LDX) &&
           (mode == BPF_ABS || mode == BPF_IND || mode == BPF_MSH);
}

/* Every packet load of the fixed program equals the original's minus the header, except the
 * cooked-header fields, which became the kernel's ancillary loads. */
static void check_fixed(int link_type, const char *expr, uint32_t header)
{
    struct bpf_program prog = compile(link_type, expr);
    struct bpf_insn *copy = malloc(prog.bf_len * sizeof(*copy));
    unsigned ancillary = 0;

    memcpy(copy, prog.bf_insns, prog.bf_len * sizeof(*copy));
    assert_int_equal(capture_kfilter_fix(link_type, copy, prog.bf_len), 0);
    for (unsigned i = 0; i < prog.bf_len; i++) {
        const struct bpf_insn *a = &prog.bf_insns[i], *b = &copy[i];
        assert_int_equal(a->code, b->code);
        assert_int_equal(a->jt, b->jt);
        assert_int_equal(a->jf, b->jf);
        if (!is_packet_load(a)) {
            assert_int_equal(a->k, b->k);
        } else if (a->k >= header) {
            assert_int_equal(b->k, a->k - header);
        } else {
            assert_true(b->k >= (uint32_t)SKF_AD_OFF);
            ancillary++;
        }
    }
    assert_true(ancillary > 0); /* the protocol, at least */
    free(copy);
    pcap_freecode(&prog);
}

static void cooked_programs_move_to_the_network_header(void **state)
{
    (void)state;
    check_fixed(SLL2, "udp port 53", 20);
    check_fixed(SLL2, "ip host 10.0.0.1 or ip6 host fd00::1", 20);
    check_fixed(SLL2, "(tcp port 443) and not (tcp port 8897)", 20);
    check_fixed(SLL, "udp port 53", 16);
    check_fixed(SLL, "ip6 and tcp", 16);
}

static void cooked_header_fields_become_ancillary_loads(void **state)
{
    struct bpf_program prog = compile(SLL2, "inbound and ifindex 3");
    bool pkttype = false, ifindex = false;

    (void)state;
    assert_int_equal(capture_kfilter_fix(SLL2, prog.bf_insns, prog.bf_len), 0);
    for (unsigned i = 0; i < prog.bf_len; i++) {
        if (!is_packet_load(&prog.bf_insns[i]))
            continue;
        pkttype |= prog.bf_insns[i].k == (uint32_t)(SKF_AD_OFF + SKF_AD_PKTTYPE);
        ifindex |= prog.bf_insns[i].k == (uint32_t)(SKF_AD_OFF + SKF_AD_IFINDEX);
    }
    assert_true(pkttype);
    assert_true(ifindex);
    pcap_freecode(&prog);
}

static void what_the_kernel_cannot_see_is_refused(void **state)
{
    /* The cooked header's address bytes: only libpcap's userland filter has them. */
    struct bpf_program prog = compile(SLL2, "link[12] == 2");

    (void)state;
    assert_int_equal(capture_kfilter_fix(SLL2, prog.bf_insns, prog.bf_len), -ENOTSUP);
    pcap_freecode(&prog);
}

static void other_link_types_are_left_alone(void **state)
{
    struct bpf_program prog = compile(1, "udp port 53");
    struct bpf_insn *copy = malloc(prog.bf_len * sizeof(*copy));

    (void)state;
    memcpy(copy, prog.bf_insns, prog.bf_len * sizeof(*copy));
    assert_int_equal(capture_kfilter_fix(1, copy, prog.bf_len), 0);
    assert_memory_equal(copy, prog.bf_insns, prog.bf_len * sizeof(*copy));
    free(copy);
    pcap_freecode(&prog);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(cooked_programs_move_to_the_network_header),
        cmocka_unit_test(cooked_header_fields_become_ancillary_loads),
        cmocka_unit_test(what_the_kernel_cannot_see_is_refused),
        cmocka_unit_test(other_link_types_are_left_alone),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
