/* store-feeder: streams batches of realistic packets into netreel-store over Store.Ingest, as
 * the capture will, at a chosen rate — for the integration tests and the benchmarks, before and
 * beside the real capture. Packets are synthesized (an IMIX of Ethernet/IPv4 UDP and TCP frames,
 * deterministic from their index, so a resend is byte-identical) or read from a pcap file.
 * Prints one JSON line: batches, packets, bytes, acked seq, seconds, rates. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pcap/pcap.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>

#include "netreel/v1/store.pb-c.h"
#include "pcapng/encode.h"
#include "rpc/client.h"
#include "rpc/status.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/parse.h"

struct args {
    const char *store, *capture_id, *node, *pcap, *dump, *iface;
    const char *tls_ca, *tls_cert, *tls_key, *pods, *keylog;
    uint64_t packets, bytes, batch_bytes, seq_start;
    double rate_mbps;
    int64_t duration_ns, ts_start, ts_step;
    bool realtime;
    uint32_t snaplen;
};

static struct args a = {
    .store = "127.0.0.1:8897",
    .capture_id = "feeder",
    .node = "feeder-node",
    .iface = "eth0",
    .batch_bytes = 1 << 20,
    .seq_start = 1,
    .ts_step = 1000,
    .snaplen = 262144,
};

static struct {
    struct rpc_channel *ch;
    struct rpc_call *call;
    pcap_t *pcap;
    int link_type;
    FILE *dump;
    struct nr_buf batch, dumpbuf;
    uint8_t frame[65536];
    uint64_t index; /* next packet */
    uint64_t seq;   /* next batch */
    uint64_t sent_batches, sent_packets, sent_bytes, acked_seq;
    bool have_ack, input_done, closed_send;
    int64_t started_ns, ended_ns;
    uv_timer_t pace;
    int status;
    char *message;
} r;

static int64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static uint64_t mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    return x ^ (x >> 33);
}

/* A number of the capture id: two streams' packet i differ in their IP identification, TCP
 * sequence and acknowledgement or UDP payload, as two nodes' packets do (the hub takes packets
 * with the same invariant bytes on two nodes for sightings of one). */
static uint64_t stream_salt(void)
{
    uint64_t h = 1469598103934665603ULL;

    for (const char *c = a.capture_id; *c; c++)
        h = (h ^ (uint8_t)*c) * 1099511628211ULL;
    return h;
}

/* Packet i of the synthetic stream: an IMIX size (7:4:1 of 64, 576, 1500 bytes), UDP or TCP,
 * addresses and ports from a few flows, a payload that names the packet. */
static uint32_t synth(uint64_t i, uint8_t *f)
{
    uint64_t salt = mix(stream_salt() + i);
    static const uint32_t sizes[12] = {64, 64, 64, 64, 64, 64, 64, 576, 576, 576, 576, 1500};
    uint64_t h = mix(i);
    uint32_t len = sizes[h % 12];
    uint32_t flow = (uint32_t)(h >> 8) % 16;
    bool tcp = flow & 1;
    uint32_t ip_len = len - 14;

    memset(f, 0, len);
    memcpy(f, "\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01\x08\x00", 14);
    f[14] = 0x45;
    f[16] = (uint8_t)(ip_len >> 8);
    f[17] = (uint8_t)ip_len;
    f[18] = (uint8_t)(salt >> 8);
    f[19] = (uint8_t)salt;
    f[22] = 64;
    f[23] = tcp ? 6 : 17;
    memcpy(f + 26, "\x0a\x00\x00", 3);
    f[29] = (uint8_t)(1 + flow);
    memcpy(f + 30, "\x0a\x00\x01", 3);
    f[33] = (uint8_t)(1 + flow % 4);
    f[34] = (uint8_t)((40000 + flow) >> 8);
    f[35] = (uint8_t)(40000 + flow);
    f[36] = tcp ? 0x01 : 0x00; /* 443 or 53 */
    f[37] = tcp ? 0xbb : 0x35;
    if (tcp) {
        memcpy(f + 38, &salt, 8); /* sequence and acknowledgement */
        f[46] = 0x50;             /* data offset 5 */
        f[47] = 0x18;             /* PSH ACK */
    } else {
        uint32_t ulen = ip_len - 20;
        f[38] = (uint8_t)(ulen >> 8);
        f[39] = (uint8_t)ulen;
        memcpy(f + 42, &salt, 8); /* the payload's first bytes */
    }
    memcpy(f + 58 > f + len - 8 ? f + len - 8 : f + 58, &i, 8);
    return len;
}

/* Fills the next batch. Returns false when there is no more input. */
static bool build_batch(void)
{
    nr_buf_reset(&r.batch, 8u << 20);
    r.dumpbuf.len = 0;
    for (;;) {
        uint32_t caplen, origlen;
        const uint8_t *data = r.frame;
        int64_t ts;

        if ((a.packets && r.index >= a.packets) ||
            (a.bytes && r.sent_bytes + r.batch.len >= a.bytes) ||
            (a.duration_ns && now_ns() - r.started_ns >= a.duration_ns)) {
            r.input_done = true;
            break;
        }
        if (r.pcap) {
            struct pcap_pkthdr *h;
            const u_char *d;
            int k = pcap_next_ex(r.pcap, &h, &d);
            if (k != 1) {
                r.input_done = true;
                break;
            }
            caplen = h->caplen > a.snaplen ? a.snaplen : h->caplen;
            origlen = h->len;
            data = d;
        } else {
            caplen = origlen = synth(r.index, r.frame);
        }
        ts = a.realtime ? now_ns() : a.ts_start + (int64_t)r.index * a.ts_step;
        if (pcapng_epb_append(&r.batch, 0, ts, data, caplen, origlen, NULL) != 0) {
            fprintf(stderr, "store-feeder: cannot encode packet %" PRIu64 "\n", r.index);
            exit(1);
        }
        r.index++;
        if (r.batch.len >= a.batch_bytes)
            break;
    }
    return r.batch.len > 0;
}

static void send_batches(void);

static void pace_cb(uv_timer_t *t)
{
    send_batches();
}

static void send_batches(void)
{
    while (r.call && !r.closed_send && rpc_call_writable(r.call)) {
        Netreel__V1__PacketBatch b = NETREEL__V1__PACKET_BATCH__INIT;
        Netreel__V1__Interface ifc = NETREEL__V1__INTERFACE__INIT;
        Netreel__V1__Interface *ifp = &ifc;
        Netreel__V1__CaptureCounters cc = NETREEL__V1__CAPTURE_COUNTERS__INIT;
        const uint8_t *p;
        uint32_t n = 0;
        int64_t first = 0, last = 0;

        if (a.rate_mbps > 0) {
            double due_s = (double)r.sent_bytes * 8 / (a.rate_mbps * 1e6);
            double elapsed = (double)(now_ns() - r.started_ns) / 1e9;
            if (due_s > elapsed) {
                uv_timer_start(&r.pace, pace_cb, (uint64_t)((due_s - elapsed) * 1000) + 1, 0);
                return;
            }
        }
        if (r.input_done || !build_batch()) {
            rpc_call_close_send(r.call);
            r.closed_send = true;
            return;
        }
        /* Count and bound the batch as the capture will. */
        for (p = r.batch.data; p < r.batch.data + r.batch.len;) {
            uint32_t blen = pcapng_le32(p + 4);
            int64_t ts = (int64_t)((uint64_t)pcapng_le32(p + 12) << 32 | pcapng_le32(p + 16));
            if (!n)
                first = ts;
            last = ts;
            n++;
            p += blen;
        }
        b.capture_id = (char *)a.capture_id;
        b.node = (char *)a.node;
        b.seq = r.seq;
        if (r.seq == a.seq_start) {
            ifc.id = 0;
            ifc.name = (char *)a.iface;
            ifc.link_type = (uint32_t)r.link_type;
            ifc.snaplen = a.snaplen;
            b.n_interfaces = 1;
            b.interfaces = &ifp;
        }
        if (r.seq == a.seq_start && a.keylog) {
            /* --keylog: the file's bytes as they are, so hostile tests can send any. */
            static uint8_t *kl;
            static size_t kl_len;
            if (!kl) {
                FILE *f = fopen(a.keylog, "rb");
                long fsize = -1;
                if (f && fseek(f, 0, SEEK_END) == 0 && (fsize = ftell(f)) >= 0 &&
                    fseek(f, 0, SEEK_SET) == 0 && (kl = malloc((size_t)fsize + 1)) &&
                    fread(kl, 1, (size_t)fsize, f) == (size_t)fsize)
                    kl_len = (size_t)fsize;
                else {
                    fprintf(stderr, "store-feeder: cannot read --keylog %s\n", a.keylog);
                    exit(2);
                }
                fclose(f);
            }
            b.tls_keylog.data = kl;
            b.tls_keylog.len = kl_len;
        }
        b.blocks.data = r.batch.data;
        b.blocks.len = r.batch.len;
        b.packet_count = n;
        b.first_ts_ns = first;
        b.last_ts_ns = last;
        cc.received = r.index;
        b.counters = &cc;
        if (rpc_call_send(r.call, &b.base) != 0)
            return;
        if (r.dump && fwrite(r.batch.data, 1, r.batch.len, r.dump) != r.batch.len) {
            fprintf(stderr, "store-feeder: cannot write --dump\n");
            exit(1);
        }
        r.seq++;
        r.sent_batches++;
        r.sent_packets += n;
        r.sent_bytes += r.batch.len;
    }
}

static void on_message(struct rpc_call *call, const uint8_t *msg, size_t len, void *user)
{
    Netreel__V1__IngestAck *ack = netreel__v1__ingest_ack__unpack(NULL, len, msg);

    if (!ack) {
        rpc_call_cancel(call);
        return;
    }
    if (!r.have_ack || ack->seq > r.acked_seq)
        r.acked_seq = ack->seq;
    r.have_ack = true;
    netreel__v1__ingest_ack__free_unpacked(ack, NULL);
}

static void on_writable(struct rpc_call *call, void *user)
{
    send_batches();
}

static void closed(void *arg)
{
    uv_close((uv_handle_t *)&r.pace, NULL);
}

static void on_done(struct rpc_call *call, int code, const char *message, void *user)
{
    r.status = code;
    r.message = strdup(message);
    /* The message goes into a JSON string: no quotes or backslashes in it. */
    for (char *c = r.message; c && *c; c++)
        if (*c == '"' || *c == '\\' || (unsigned char)*c < 0x20)
            *c = '\'';
    r.ended_ns = now_ns();
    r.call = NULL;
    uv_timer_stop(&r.pace);
    rpc_channel_close(r.ch, closed, NULL);
}

static void usage(void)
{
    fprintf(stderr,
            "usage: store-feeder [--store ADDR] [--capture-id ID] [--node NAME]\n"
            "         [--packets N | --bytes SIZE | --duration DUR] [--rate-mbps N]\n"
            "         [--batch-bytes SIZE] [--seq-start N] [--ts-start NS] [--ts-step NS]\n"
            "         [--realtime] [--pcap FILE] [--snaplen N] [--iface NAME] [--dump FILE]\n"
            "         [--keylog FILE (TLS key log lines sent with the first batch)]\n"
            "         [--tls-ca F [--tls-cert F --tls-key F]]\n");
    exit(2);
}

static uint64_t size_arg(const char *v)
{
    char err[256];
    uint64_t n;

    if (nr_parse_size(v, &n, err, sizeof(err)) != 0) {
        fprintf(stderr, "store-feeder: %s\n", err);
        exit(2);
    }
    return n;
}

static void parse_args(int argc, char **argv)
{
    static const struct option opts[] = {
        {"store", required_argument, NULL, 's'},
        {"capture-id", required_argument, NULL, 'c'},
        {"node", required_argument, NULL, 'n'},
        {"packets", required_argument, NULL, 'p'},
        {"bytes", required_argument, NULL, 'b'},
        {"duration", required_argument, NULL, 'd'},
        {"rate-mbps", required_argument, NULL, 'r'},
        {"batch-bytes", required_argument, NULL, 'B'},
        {"seq-start", required_argument, NULL, 'q'},
        {"ts-start", required_argument, NULL, 't'},
        {"ts-step", required_argument, NULL, 'T'},
        {"realtime", no_argument, NULL, 'R'},
        {"pcap", required_argument, NULL, 'P'},
        {"snaplen", required_argument, NULL, 'S'},
        {"iface", required_argument, NULL, 'i'},
        {"dump", required_argument, NULL, 'D'},
        {"tls-ca", required_argument, NULL, 'a'},
        {"tls-cert", required_argument, NULL, 'C'},
        {"tls-key", required_argument, NULL, 'k'},
        {"keylog", required_argument, NULL, 'K'},
        {NULL, 0, NULL, 0},
    };
    char err[256];
    int c;

    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 's': a.store = optarg; break;
        case 'c': a.capture_id = optarg; break;
        case 'n': a.node = optarg; break;
        case 'p': a.packets = strtoull(optarg, NULL, 10); break;
        case 'b': a.bytes = size_arg(optarg); break;
        case 'd':
            if (nr_parse_duration(optarg, &a.duration_ns, err, sizeof(err)) != 0) {
                fprintf(stderr, "store-feeder: %s\n", err);
                exit(2);
            }
            break;
        case 'r': a.rate_mbps = strtod(optarg, NULL); break;
        case 'B': a.batch_bytes = size_arg(optarg); break;
        case 'q': a.seq_start = strtoull(optarg, NULL, 10); break;
        case 't': a.ts_start = strtoll(optarg, NULL, 10); break;
        case 'T': a.ts_step = strtoll(optarg, NULL, 10); break;
        case 'R': a.realtime = true; break;
        case 'P': a.pcap = optarg; break;
        case 'S': a.snaplen = (uint32_t)strtoul(optarg, NULL, 10); break;
        case 'i': a.iface = optarg; break;
        case 'D': a.dump = optarg; break;
        case 'a': a.tls_ca = optarg; break;
        case 'C': a.tls_cert = optarg; break;
        case 'k': a.tls_key = optarg; break;
        case 'K': a.keylog = optarg; break;
        default: usage();
        }
    }
    if (optind != argc || (!a.packets && !a.bytes && !a.duration_ns && !a.pcap))
        usage();
}

/* --dump: a pcapng file of exactly the EPBs sent, to compare a snapshot with. */
static void open_dump(void)
{
    struct nr_buf h;

    nr_buf_init(&h, 1 << 16);
    r.dump = fopen(a.dump, "wb");
    if (!r.dump || pcapng_shb_append(&h, "store-feeder", NULL, NULL, NULL) != 0 ||
        pcapng_idb_append(&h, (uint16_t)r.link_type, a.snaplen, a.iface, NULL) != 0 ||
        fwrite(h.data, 1, h.len, r.dump) != h.len) {
        fprintf(stderr, "store-feeder: cannot write %s\n", a.dump);
        exit(1);
    }
    nr_buf_free(&h);
}

int main(int argc, char **argv)
{
    struct rpc_channel_config cfg;
    struct rpc_call_opts co = {0};
    struct rpc_call_cbs cbs = {
        .on_message = on_message, .on_writable = on_writable, .on_done = on_done};
    char err[256];
    double secs;

    parse_args(argc, argv);
    r.link_type = 1;
    if (a.pcap) {
        char perr[PCAP_ERRBUF_SIZE];
        r.pcap = pcap_open_offline_with_tstamp_precision(a.pcap, PCAP_TSTAMP_PRECISION_NANO, perr);
        if (!r.pcap) {
            fprintf(stderr, "store-feeder: %s\n", perr);
            return 1;
        }
        r.link_type = pcap_datalink(r.pcap);
    }
    if (!a.ts_start)
        a.ts_start = now_ns();
    nr_buf_init(&r.batch, a.batch_bytes + (1u << 20));
    nr_buf_init(&r.dumpbuf, 1);
    if (a.dump)
        open_dump();
    r.seq = a.seq_start;
    rpc_channel_config_init(&cfg);
    cfg.target = a.store;
    cfg.tls_ca = a.tls_ca;
    cfg.tls_cert = a.tls_cert;
    cfg.tls_key = a.tls_key;
    cfg.backoff_initial_ms = 100;
    r.ch = rpc_channel_new(uv_default_loop(), &cfg, err, sizeof(err));
    if (!r.ch) {
        fprintf(stderr, "store-feeder: %s\n", err);
        return 2;
    }
    uv_timer_init(uv_default_loop(), &r.pace);
    co.path = "/netreel.v1.Store/Ingest";
    co.shape = RPC_SHAPE_BIDI;
    r.started_ns = now_ns();
    r.call = rpc_channel_call(r.ch, &co, &cbs, NULL);
    if (!r.call)
        return 1;
    send_batches();
    uv_run(uv_default_loop(), UV_RUN_DEFAULT);
    if (r.dump && fclose(r.dump) != 0) {
        fprintf(stderr, "store-feeder: cannot write %s\n", a.dump);
        return 1;
    }
    secs = (double)(r.ended_ns - r.started_ns) / 1e9;
    printf("{\"status\": %d, \"message\": \"%s\", \"batches\": %" PRIu64 ", \"packets\": %" PRIu64
           ", \"bytes\": %" PRIu64 ", \"first_seq\": %" PRIu64 ", \"last_seq\": %" PRIu64
           ", \"acked_seq\": %" PRIu64 ", \"seconds\": %.3f, \"mbytes_per_s\": %.1f, "
           "\"packets_per_s\": %.0f}\n",
           r.status, r.message ? r.message : "", r.sent_batches, r.sent_packets, r.sent_bytes,
           a.seq_start, r.seq - 1, r.have_ack ? r.acked_seq : 0, secs,
           secs > 0 ? (double)r.sent_bytes / secs / 1e6 : 0.0,
           secs > 0 ? (double)r.sent_packets / secs : 0.0);
    nr_buf_free(&r.batch);
    if (r.pcap)
        pcap_close(r.pcap);
    free(r.message);
    uv_loop_close(uv_default_loop());
    return r.status == RPC_OK && (!r.sent_batches || r.acked_seq == r.seq - 1) ? 0 : 1;
}
