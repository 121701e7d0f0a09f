/* Tests for services/store/batch.c: every kind of lie in a PacketBatch is refused with a
 * message that names it, before anything is written. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "pcapng/encode.h"
#include "store/batch.h"
#include "util/error.h"

#define NOW INT64_C(1795600000000000000)

struct batch {
    Netreel__V1__PacketBatch b;
    Netreel__V1__Interface ifs[3], *ifp[3];
    Netreel__V1__PodName pod, *podp;
    struct nr_buf blocks;
};

static struct store_config cfg = {
    .max_future_ns = 3600 * INT64_C(1000000000),
    .max_past_ns = 30 * 86400 * INT64_C(1000000000),
};

/* A valid batch: two interfaces, three sorted packets. */
static void make(struct batch *x)
{
    static uint8_t data[200];

    memset(x, 0, sizeof(*x));
    netreel__v1__packet_batch__init(&x->b);
    x->b.capture_id = "node-a@1";
    x->b.node = "node-a";
    x->b.seq = 1;
    for (int i = 0; i < 2; i++) {
        netreel__v1__interface__init(&x->ifs[i]);
        x->ifs[i].id = (uint32_t)i;
        x->ifs[i].name = i ? "eth1" : "eth0";
        x->ifs[i].link_type = 1;
        x->ifs[i].snaplen = 128;
        x->ifp[i] = &x->ifs[i];
    }
    x->b.n_interfaces = 2;
    x->b.interfaces = x->ifp;
    nr_buf_init(&x->blocks, 1 << 20);
    assert_int_equal(pcapng_epb_append(&x->blocks, 0, NOW, data, 100, 100, NULL), 0);
    assert_int_equal(pcapng_epb_append(&x->blocks, 1, NOW + 5, data, 128, 1500, NULL), 0);
    assert_int_equal(pcapng_epb_append(&x->blocks, 0, NOW + 9, data, 60, 60, NULL), 0);
    x->b.blocks.data = x->blocks.data;
    x->b.blocks.len = x->blocks.len;
    x->b.packet_count = 3;
    x->b.first_ts_ns = NOW;
    x->b.last_ts_ns = NOW + 9;
}

/* A stream that knows what make()'s batch describes: eth0 and eth1, link type 1, snaplen 128. */
static void knows_eth0_eth1(struct store_stream *st)
{
    st->n_ifaces = 2;
    snprintf(st->ifaces[0].name, sizeof(st->ifaces[0].name), "eth0");
    snprintf(st->ifaces[1].name, sizeof(st->ifaces[1].name), "eth1");
    st->ifaces[0].link_type = st->ifaces[1].link_type = 1;
    st->ifaces[0].snaplen = st->ifaces[1].snaplen = 128;
}

static void expect(struct batch *x, const struct store_stream *st, const char *want)
{
    struct store_iface ifaces[STORE_MAX_INTERFACES];
    struct pcapng_batch_info info;
    uint32_t n = 0;
    char err[512] = "";
    int rc = store_batch_check(&cfg, st, &x->b, NOW, ifaces, &n, &info, err, sizeof(err));

    if (!want) {
        if (rc != 0)
            fail_msg("valid batch refused: %s", err);
    } else {
        assert_int_equal(rc, NR_EPARSE);
        if (!strstr(err, want))
            fail_msg("message \"%s\" does not say \"%s\"", err, want);
    }
    nr_buf_free(&x->blocks);
}

static void valid_batch_passes(void **state)
{
    struct batch x;
    struct store_iface ifaces[STORE_MAX_INTERFACES];
    struct pcapng_batch_info info;
    uint32_t n = 0;
    char err[256];

    (void)state;
    make(&x);
    assert_int_equal(store_batch_check(&cfg, NULL, &x.b, NOW, ifaces, &n, &info, err, sizeof(err)),
                     0);
    assert_int_equal(n, 2);
    assert_string_equal(ifaces[1].name, "eth1");
    assert_int_equal(info.packets, 3);
    assert_int_equal(info.first_ts_ns, NOW);
    nr_buf_free(&x.blocks);
}

static void lies_in_the_header_are_named(void **state)
{
    struct batch x;
    struct store_stream st = {0};

    (void)state;
    make(&x);
    x.b.capture_id = "has space";
    expect(&x, NULL, "capture_id must be");
    make(&x);
    x.b.capture_id = "";
    expect(&x, NULL, "capture_id must be");
    make(&x);
    x.ifs[1].id = 5;
    expect(&x, NULL, "interface 1 of the list has id 5, not 1");
    make(&x);
    x.ifs[0].snaplen = 0;
    expect(&x, NULL, "snaplen 0 is not in 1..262144");
    make(&x);
    x.ifs[0].snaplen = 300000;
    expect(&x, NULL, "snaplen 300000");
    make(&x);
    x.ifs[0].link_type = 70000;
    expect(&x, NULL, "link type 70000 does not fit");
    make(&x);
    x.ifs[0].name = "eth\n0";
    expect(&x, NULL, "interface 0: its name");
    make(&x);
    x.b.packet_count = 4;
    expect(&x, NULL, "packet_count says 4, the blocks hold 3");
    make(&x);
    x.b.last_ts_ns = NOW + 10;
    expect(&x, NULL, "first_ts_ns/last_ts_ns say");
    make(&x);
    x.b.n_interfaces = 0;
    expect(&x, NULL, "packets before any interface was described");
    make(&x);
    x.b.n_pods = 1;
    netreel__v1__pod_name__init(&x.pod);
    x.podp = &x.pod;
    x.b.pods = &x.podp;
    expect(&x, NULL, "pods are sent without pods_update");
    make(&x);
    x.b.pods_update = true;
    x.b.n_pods = 1;
    netreel__v1__pod_name__init(&x.pod);
    x.pod.ip.data = (uint8_t *)"\x0a\x00\x00";
    x.pod.ip.len = 3;
    x.pod.namespace_ = "default";
    x.pod.name = "web";
    x.podp = &x.pod;
    x.b.pods = &x.podp;
    expect(&x, NULL, "pod 0: an address of 3 bytes");

    /* A stream that knows its interfaces: they may grow, never change or shrink. */
    knows_eth0_eth1(&st);
    make(&x);
    expect(&x, &st, NULL);
    make(&x);
    x.ifs[1].name = "eth9";
    expect(&x, &st, "interface 1 changed from eth1");
    make(&x);
    x.b.n_interfaces = 1; /* the first of those it knows: fine */
    expect(&x, &st, NULL);
    make(&x);
    x.b.n_interfaces = 0; /* known from earlier batches: fine */
    expect(&x, &st, NULL);
}

/* A batch lists the interfaces its call has not carried yet: consecutive ids from any id the
 * stream knows; one starting past them is not the batch's fault (-ESTALE: resend from 0). */
static void interfaces_from_an_id_the_stream_knows(void **state)
{
    static struct store_stream st;
    struct store_iface ifaces[STORE_MAX_INTERFACES];
    struct pcapng_batch_info info;
    struct batch x;
    uint32_t n = 0;
    char err[512] = "";

    (void)state;
    knows_eth0_eth1(&st);

    /* ids 2 and 3 new: the stream knows 0..3 after it, its packets may use all four */
    make(&x);
    x.ifs[0].id = 2;
    x.ifs[0].name = "default/web-1";
    x.ifs[0].description = "k8s.namespace=default;k8s.podName=web-1";
    x.ifs[1].id = 3;
    x.ifs[1].name = "eth2";
    assert_int_equal(store_batch_check(&cfg, &st, &x.b, NOW, ifaces, &n, &info, err, sizeof(err)),
                     0);
    assert_int_equal(n, 4);
    assert_string_equal(ifaces[0].name, "eth0");
    assert_string_equal(ifaces[2].name, "default/web-1");
    assert_string_equal(ifaces[2].desc, "k8s.namespace=default;k8s.podName=web-1");
    assert_string_equal(ifaces[3].name, "eth2");
    nr_buf_free(&x.blocks);

    /* from id 1: eth1 as it was, then a new one */
    make(&x);
    x.ifs[0].id = 1;
    x.ifs[0].name = "eth1";
    x.ifs[1].id = 2;
    x.ifs[1].name = "eth2";
    assert_int_equal(store_batch_check(&cfg, &st, &x.b, NOW, ifaces, &n, &info, err, sizeof(err)),
                     0);
    assert_int_equal(n, 3);
    nr_buf_free(&x.blocks);

    /* from id 1, but id 1 is not what it was */
    make(&x);
    x.ifs[0].id = 1;
    x.ifs[0].name = "eth7";
    x.ifs[1].id = 2;
    expect(&x, &st, "interface 1 changed from eth1");

    /* a gap: ids 2 then 4 */
    make(&x);
    x.ifs[0].id = 2;
    x.ifs[1].id = 4;
    expect(&x, &st, "interface 1 of the list has id 4, not 3");

    /* past what it knows (3 when it knows 0..1), or anything but 0 for a new stream */
    make(&x);
    x.ifs[0].id = 3;
    x.ifs[1].id = 4;
    assert_int_equal(store_batch_check(&cfg, &st, &x.b, NOW, ifaces, &n, &info, err, sizeof(err)),
                     -ESTALE);
    assert_non_null(strstr(err, "start at id 3, but this stream knows ids 0..1 only"));
    nr_buf_free(&x.blocks);
    make(&x);
    x.ifs[0].id = 1;
    x.ifs[1].id = 2;
    assert_int_equal(store_batch_check(&cfg, NULL, &x.b, NOW, ifaces, &n, &info, err, sizeof(err)),
                     -ESTALE);
    nr_buf_free(&x.blocks);

    /* the last id there is room for, and one past it */
    st.n_ifaces = STORE_MAX_INTERFACES - 1;
    make(&x);
    x.ifs[0].id = STORE_MAX_INTERFACES - 1;
    x.b.n_interfaces = 1;
    assert_int_equal(store_batch_check(&cfg, &st, &x.b, NOW, ifaces, &n, &info, err, sizeof(err)),
                     0);
    assert_int_equal(n, STORE_MAX_INTERFACES);
    nr_buf_free(&x.blocks);
    make(&x);
    x.ifs[0].id = STORE_MAX_INTERFACES - 1;
    x.ifs[1].id = STORE_MAX_INTERFACES;
    expect(&x, &st, "interfaces up to id 256: at most 256");
}

static void lies_in_the_blocks_are_named(void **state)
{
    struct batch x;
    static uint8_t data[300];

    (void)state;
    make(&x);
    pcapng_put32(x.blocks.data + 4, 60); /* leading length no longer matches the trailer */
    expect(&x, NULL, "block 0 at offset 0");
    make(&x);
    x.b.blocks.len -= 4; /* the last block runs past the end */
    expect(&x, NULL, "block 2");
    make(&x);
    pcapng_put32(x.blocks.data + 8, 2); /* interface id 2 of 2 */
    expect(&x, NULL, "interface id 2");
    make(&x);
    nr_buf_free(&x.blocks);
    nr_buf_init(&x.blocks, 1 << 20);
    assert_int_equal(pcapng_epb_append(&x.blocks, 0, NOW, data, 200, 200, NULL), 0);
    x.b.blocks.data = x.blocks.data;
    x.b.blocks.len = x.blocks.len;
    x.b.packet_count = 1;
    x.b.last_ts_ns = NOW;
    expect(&x, NULL, "snaplen 128");
    make(&x);
    nr_buf_free(&x.blocks);
    nr_buf_init(&x.blocks, 1 << 20);
    assert_int_equal(
        pcapng_epb_append(&x.blocks, 0, NOW + 7200 * INT64_C(1000000000), data, 10, 10, NULL), 0);
    x.b.blocks.data = x.blocks.data;
    x.b.blocks.len = x.blocks.len;
    x.b.packet_count = 1;
    x.b.first_ts_ns = x.b.last_ts_ns = NOW + 7200 * INT64_C(1000000000);
    expect(&x, NULL, "timestamp");
    make(&x);
    nr_buf_free(&x.blocks);
    nr_buf_init(&x.blocks, 1 << 20);
    assert_int_equal(pcapng_epb_append(&x.blocks, 0, NOW + 5, data, 10, 10, NULL), 0);
    assert_int_equal(pcapng_epb_append(&x.blocks, 0, NOW, data, 10, 10, NULL), 0);
    x.b.blocks.data = x.blocks.data;
    x.b.blocks.len = x.blocks.len;
    x.b.packet_count = 2;
    x.b.first_ts_ns = NOW + 5;
    x.b.last_ts_ns = NOW;
    expect(&x, NULL, "goes backwards");
    make(&x);
    memcpy(x.blocks.data, "\x01\x00\x00\x00", 4); /* an IDB where only EPBs may be */
    expect(&x, NULL, "block 0 at offset 0");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(valid_batch_passes),
        cmocka_unit_test(lies_in_the_header_are_named),
        cmocka_unit_test(lies_in_the_blocks_are_named),
        cmocka_unit_test(interfaces_from_an_id_the_stream_knows),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
