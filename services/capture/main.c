/* netreel-capture: records this node's interfaces with libpcap and streams the packets to its
 * store. Flags, start-up (open the handles, apply the filter, give up privilege, start the
 * threads), metrics, and a clean stop that delivers what it still holds. */
#include <errno.h>
#include <getopt.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "capture/capture.h"
#include "capture/filter.h"
#include "capture/ifaces.h"
#include "capture/pipeline.h"
#include "capture/privs.h"
#include "capture/source.h"
#include "capture/spool.h"
#include "capture/targeting.h"
#include "capture/tls/iface.h"
#include "capture/uplink.h"
#include "kube/filter.h"
#include "util/addr.h"
#include "util/httpd.h"
#include "util/log.h"
#include "util/metrics.h"
#include "util/parse.h"
#include "util/prog.h"
#include "util/version.h"

#define HEARTBEAT_NS (5 * INT64_C(1000000000))

static struct capture cap;
static struct capture_spool spool;
static struct nr_httpd *httpd;
static uv_signal_t sigterm, sigint;
static uv_timer_t tick;
static int exit_status;
static uint64_t last_batches;
static int64_t last_batch_ns;

static const char usage_text[] =
    "usage: netreel-capture [options]\n"
    "Records this node's traffic with libpcap and streams it to netreel-store (docs/capture.md).\n"
    "\n"
    "  -i, --interface IFACE     any (default), or names; repeat or separate with commas\n"
    "  --snaplen N               bytes kept of each packet (default 262144)\n"
    "  --buffer-size SIZE        kernel ring per interface (default 64MiB)\n"
    "  --filter BPF              record only what this expression matches\n"
    "  --bpf-override BPF        a raw expression that replaces pod targeting\n"
    "  --record-self             also record netreel's own connections (debugging)\n"
    "  --exclude-port PORT       never record TCP on this port (repeat; default: the store's)\n"
    "  --batch-bytes SIZE        send a batch at this size (default 1MiB) ...\n"
    "  --batch-time DUR          ... or this long after its first packet (default 200ms)\n"
    "  --store ADDR              the store (default 127.0.0.1:8897)\n"
    "  --tls-ca F                verify the store against this CA (turns TLS on) ...\n"
    "  --tls-cert F --tls-key F  ... and present this client certificate (mTLS)\n"
    "  --spool-size SIZE         batches kept until the store acknowledges them (default 256MiB)\n"
    "  --metrics-listen ADDR     Prometheus /metrics and /healthz (default :9101; \"off\")\n"
    "  --kube                    pod targeting from the Kubernetes API (in-cluster config) ...\n"
    "  --kubeconfig FILE         ... or from this kubeconfig\n"
    "  --pod-regex RE            pods whose name matches (PCRE2, unanchored; default .*)\n"
    "  --namespaces NS,...       only these namespaces\n"
    "  --excluded-namespaces NS,...\n"
    "  --user NAME               drop to this user once the interfaces are open (default nobody)\n"
    "  --node NAME               this node's name (default $NODE_NAME, else the host name)\n"
    "  --tls                     also record the plaintext of OpenSSL connections (eBPF\n"
    "                            uprobes) as TCP on an interface named tls; off by default;\n"
    "                            without eBPF support: one warning, the rest is recorded\n"
    "                            (docs/capture-tls.md)\n"
    "  --tls-keylog-file F       with --tls: also append the connections' TLS secrets to F\n"
    "                            (NSS key log format, as SSLKEYLOGFILE; created 0600).\n"
    "                            SENSITIVE: F decrypts the recorded traffic\n"
    "  --read-mode thread|poll   read the rings in a thread per interface (default) or on the\n"
    "                            event loop (docs/benchmarks.md compares them)\n"
    "  --log-level LEVEL         debug, info, warn or error (default info)\n"
    "  --test-clock-skew DUR     add DUR (-3ms: subtract) to every timestamp, as a node whose\n"
    "                            clock is off would (for testing the hub's clock alignment)\n"
    "  --test-interfaces-max N   at most N (4..256) interfaces per capture stream, so that a\n"
    "                            test sees a new stream begin after a few pods' devices\n"
    "  --version, --help\n";

static uint64_t size_flag(const char *name, const char *v)
{
    char err[256];
    uint64_t n;

    if (nr_parse_size(v, &n, err, sizeof(err)) != 0)
        nr_die("--%s: %s", name, err);
    return n;
}

static unsigned long number_flag(const char *name, const char *v, unsigned long min,
                                 unsigned long max)
{
    char *end;
    unsigned long n;

    errno = 0;
    n = strtoul(v, &end, 10);
    if (end == v || *end || errno || n < min || n > max)
        nr_die("--%s: \"%s\" is not a number from %lu to %lu", name, v, min, max);
    return n;
}

static void add_interfaces(struct capture_config *cfg, char *list)
{
    for (char *save = NULL, *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (!t[0])
            continue;
        if (cfg->n_ifaces == CAPTURE_MAX_IFACES)
            nr_die("--interface: at most %d interfaces", CAPTURE_MAX_IFACES);
        cfg->ifaces[cfg->n_ifaces++] = t;
    }
}

static void parse_flags(int argc, char **argv, struct capture_config *cfg)
{
    enum {
        O_SNAPLEN = 256,
        O_BUFSIZE,
        O_FILTER,
        O_OVERRIDE,
        O_SELF,
        O_EXCLUDE,
        O_BBYTES,
        O_BTIME,
        O_STORE,
        O_CA,
        O_CERT,
        O_KEY,
        O_SPOOL,
        O_METRICS,
        O_KUBE,
        O_KUBECONFIG,
        O_REGEX,
        O_NS,
        O_XNS,
        O_USER,
        O_READ,
        O_TLS,
        O_KEYLOG,
        O_SKEW,
        O_IFMAX
    };
    static const struct option opts[] = {
        {"interface", required_argument, NULL, 'i'},
        {"snaplen", required_argument, NULL, O_SNAPLEN},
        {"buffer-size", required_argument, NULL, O_BUFSIZE},
        {"filter", required_argument, NULL, O_FILTER},
        {"bpf-override", required_argument, NULL, O_OVERRIDE},
        {"record-self", no_argument, NULL, O_SELF},
        {"exclude-port", required_argument, NULL, O_EXCLUDE},
        {"batch-bytes", required_argument, NULL, O_BBYTES},
        {"batch-time", required_argument, NULL, O_BTIME},
        {"store", required_argument, NULL, O_STORE},
        {"tls-ca", required_argument, NULL, O_CA},
        {"tls-cert", required_argument, NULL, O_CERT},
        {"tls-key", required_argument, NULL, O_KEY},
        {"spool-size", required_argument, NULL, O_SPOOL},
        {"metrics-listen", required_argument, NULL, O_METRICS},
        {"kube", no_argument, NULL, O_KUBE},
        {"kubeconfig", required_argument, NULL, O_KUBECONFIG},
        {"pod-regex", required_argument, NULL, O_REGEX},
        {"namespaces", required_argument, NULL, O_NS},
        {"excluded-namespaces", required_argument, NULL, O_XNS},
        {"user", required_argument, NULL, O_USER},
        {"read-mode", required_argument, NULL, O_READ},
        {"tls", no_argument, NULL, O_TLS},
        {"tls-keylog-file", required_argument, NULL, O_KEYLOG},
        {"test-clock-skew", required_argument, NULL, O_SKEW},
        {"test-interfaces-max", required_argument, NULL, O_IFMAX},
        NR_PROG_OPTIONS,
    };
    const char *node = getenv("NODE_NAME");
    bool ports_given = false;
    char err[256];
    int c;

    cfg->snaplen = 262144;
    cfg->buffer_size = 64u << 20;
    cfg->batch_bytes = 1u << 20;
    cfg->batch_time_ns = 200 * INT64_C(1000000);
    cfg->block_timeout_ms = 100;
    cfg->store = "127.0.0.1:8897";
    cfg->spool_size = 256u << 20;
    cfg->metrics_listen = ":9101";
    cfg->user = "nobody";
    cfg->read_mode_poll = false; /* a thread measured to drop less (docs/benchmarks.md) */
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":i:h", opts, NULL)) != -1) {
        switch (c) {
        case 'i': add_interfaces(cfg, optarg); break;
        case O_SNAPLEN: cfg->snaplen = (uint32_t)number_flag("snaplen", optarg, 64, 262144); break;
        case O_BUFSIZE: cfg->buffer_size = size_flag("buffer-size", optarg); break;
        case O_FILTER: cfg->filter = optarg; break;
        case O_OVERRIDE: cfg->bpf_override = optarg; break;
        case O_SELF: cfg->record_self = true; break;
        case O_EXCLUDE:
            if (cfg->n_exclude == CAPTURE_MAX_EXCLUDE)
                nr_die("--exclude-port: at most %d ports", CAPTURE_MAX_EXCLUDE);
            cfg->exclude_ports[cfg->n_exclude++] =
                (uint16_t)number_flag("exclude-port", optarg, 1, 65535);
            ports_given = true;
            break;
        case O_BBYTES: cfg->batch_bytes = size_flag("batch-bytes", optarg); break;
        case O_BTIME:
            if (nr_parse_duration(optarg, &cfg->batch_time_ns, err, sizeof(err)) != 0)
                nr_die("--batch-time: %s", err);
            break;
        case O_STORE: cfg->store = optarg; break;
        case O_CA: cfg->tls_ca = optarg; break;
        case O_CERT: cfg->tls_cert = optarg; break;
        case O_KEY: cfg->tls_key = optarg; break;
        case O_SPOOL: cfg->spool_size = size_flag("spool-size", optarg); break;
        case O_METRICS: cfg->metrics_listen = optarg; break;
        case O_KUBE: cfg->kube = true; break;
        case O_KUBECONFIG:
            cfg->kubeconfig = optarg;
            cfg->kube = true;
            break;
        case O_REGEX: cfg->pod_regex = optarg; break;
        case O_NS: cfg->namespaces = optarg; break;
        case O_XNS: cfg->excluded_namespaces = optarg; break;
        case O_USER: cfg->user = optarg; break;
        case O_READ:
            if (strcmp(optarg, "thread") != 0 && strcmp(optarg, "poll") != 0)
                nr_die("--read-mode: \"%s\" is not thread or poll", optarg);
            cfg->read_mode_poll = strcmp(optarg, "poll") == 0;
            break;
        case O_TLS: cfg->tls = true; break;
        case O_SKEW: {
            bool neg = optarg[0] == '-';
            if (nr_parse_duration(optarg + neg, &cfg->clock_skew_ns, err, sizeof(err)) != 0)
                nr_die("--test-clock-skew: %s", err);
            if (neg)
                cfg->clock_skew_ns = -cfg->clock_skew_ns;
            break;
        }
        case O_IFMAX: {
            char *end;
            unsigned long v = strtoul(optarg, &end, 10);
            if (*optarg < '0' || *optarg > '9' || *end || v < 4 || v > CAPTURE_IFACES_MAX)
                nr_die("--test-interfaces-max: '%s' is not a count in 4..%u", optarg,
                       CAPTURE_IFACES_MAX);
            cfg->ifaces_max = (uint32_t)v;
            break;
        }
        case O_KEYLOG: cfg->tls_keylog_file = optarg; break;
        default: nr_prog_option(c, argv, usage_text, &node); break;
        }
    }
    if (optind != argc)
        nr_die("unexpected argument \"%s\" (see --help)", argv[optind]);
    if (cfg->n_ifaces == 0)
        cfg->ifaces[cfg->n_ifaces++] = "any";
    if (cfg->batch_bytes < 4096 || cfg->batch_bytes > (8u << 20))
        nr_die("--batch-bytes: from 4KiB to 8MiB");
    if (cfg->batch_time_ns < 1000000 || cfg->batch_time_ns > 60 * INT64_C(1000000000))
        nr_die("--batch-time: from 1ms to 1m");
    if (cfg->spool_size < 2 * cfg->batch_bytes + (1u << 20))
        nr_die("--spool-size: at least two batches (2 x --batch-bytes + 1MiB)");
    if (cfg->buffer_size < (1u << 20))
        nr_die("--buffer-size: at least 1MiB");
    if ((cfg->tls_cert == NULL) != (cfg->tls_key == NULL))
        nr_die("--tls-cert and --tls-key go together");
    if (cfg->tls_keylog_file && !cfg->tls)
        nr_die("--tls-keylog-file needs --tls");
    if (cfg->filter && strlen(cfg->filter) > CAPTURE_MAX_FILTER)
        nr_die("--filter: at most %d bytes", CAPTURE_MAX_FILTER);
    if (cfg->bpf_override && strlen(cfg->bpf_override) > CAPTURE_MAX_FILTER)
        nr_die("--bpf-override: at most %d bytes", CAPTURE_MAX_FILTER);
    if (cfg->filter && (cfg->bpf_override || cfg->kube))
        nr_die("--filter is for recording without a cluster; with --kube use --bpf-override");
    if (getuid() == 0 && cfg->user[0] && strcmp(cfg->user, "root") != 0) {
        const struct passwd *pw = getpwnam(cfg->user);
        if (!pw)
            nr_die("--user %s: no such user", cfg->user);
        if (pw->pw_uid == 0)
            nr_die("--user %s: is root; say --user root to stay root", cfg->user);
    }
    if (!ports_given) {
        char host[256];
        uint16_t port = 0;
        if (nr_addr_split(cfg->store, host, sizeof(host), &port, err, sizeof(err)) != 0)
            nr_die("--store: %s", err);
        cfg->exclude_ports[cfg->n_exclude++] = port;
    }
    if (!node || !node[0]) {
        static char hostname[256];
        node = gethostname(hostname, sizeof(hostname) - 1) == 0 ? hostname : "unknown";
    }
    snprintf(cfg->node, sizeof(cfg->node), "%s", node);
    capture_pipeline_name_stream(cfg);
}

static int serve_metrics(struct nr_buf *body, const char **content_type, void *data)
{
    struct capture *c = data;
    struct nr_metrics m;
    uint64_t recv, kdrop, ifdrop, own;

    capture_pipeline_counters(c, &recv, &kdrop, &ifdrop, &own);
    nr_metrics_init(&m, body);
    nr_metrics_family(&m, "netreel_capture_info", NR_METRICS_GAUGE,
                      "The capture's version, node, capture id and filter.");
    nr_metrics_u64(&m,
                   NR_METRICS_LABELS({"version", NR_VERSION}, {"node", c->cfg.node},
                                     {"capture_id", c->cfg.capture_id},
                                     {"filter", c->filter_text ? c->filter_text : ""}),
                   1);
    nr_metrics_family(&m, "netreel_capture_packets_total", NR_METRICS_COUNTER,
                      "Packets captured into batches.");
    nr_metrics_u64(&m, NULL, c->c.packets);
    nr_metrics_family(&m, "netreel_capture_bytes_total", NR_METRICS_COUNTER,
                      "Captured bytes put in batches.");
    nr_metrics_u64(&m, NULL, c->c.bytes);
    nr_metrics_family(&m, "netreel_capture_kernel_received_total", NR_METRICS_COUNTER,
                      "Packets the kernel passed the filter (pcap_stats ps_recv; counts packets "
                      "not read yet).");
    nr_metrics_u64(&m, NULL, recv);
    nr_metrics_family(&m, "netreel_capture_dropped_total", NR_METRICS_COUNTER,
                      "Packets lost, by where: kernel ring full, interface, capture buffers, "
                      "spool full.");
    nr_metrics_u64(&m, NR_METRICS_LABELS({"where", "kernel"}), kdrop);
    nr_metrics_u64(&m, NR_METRICS_LABELS({"where", "interface"}), ifdrop);
    nr_metrics_u64(&m, NR_METRICS_LABELS({"where", "buffer"}), own - c->c.spool_dropped);
    nr_metrics_u64(&m, NR_METRICS_LABELS({"where", "spool"}), c->c.spool_dropped);
    nr_metrics_family(&m, "netreel_capture_batches_total", NR_METRICS_COUNTER,
                      "Batches, by what became of them.");
    nr_metrics_u64(&m, NR_METRICS_LABELS({"result", "spooled"}), c->c.batches);
    nr_metrics_u64(&m, NR_METRICS_LABELS({"result", "acked"}), c->c.acked);
    nr_metrics_u64(&m, NR_METRICS_LABELS({"result", "dropped"}), c->c.spool_dropped_batches);
    nr_metrics_u64(&m, NR_METRICS_LABELS({"result", "refused"}), c->c.refused_batches);
    nr_metrics_family(&m, "netreel_capture_spool_bytes", NR_METRICS_GAUGE,
                      "Bytes of batches the store has not acknowledged.");
    nr_metrics_u64(&m, NULL, c->spool->bytes);
    nr_metrics_family(&m, "netreel_capture_spool_max_bytes", NR_METRICS_GAUGE,
                      "The --spool-size limit.");
    nr_metrics_u64(&m, NULL, c->cfg.spool_size);
    nr_metrics_family(&m, "netreel_capture_store_connected", NR_METRICS_GAUGE,
                      "1 while the Ingest stream to the store works.");
    nr_metrics_u64(&m, NULL, capture_uplink_connected(c->uplink) ? 1 : 0);
    nr_metrics_family(&m, "netreel_capture_store_errors_total", NR_METRICS_COUNTER,
                      "Ingest calls that ended with an error.");
    nr_metrics_u64(&m, NULL, c->c.store_errors);
    nr_metrics_family(&m, "netreel_capture_interfaces_sent_total", NR_METRICS_COUNTER,
                      "Interface descriptions sent to the store: each once per Ingest call, in "
                      "front of the first batch that needs it.");
    nr_metrics_u64(&m, NULL, c->c.ifaces_sent);
    nr_metrics_family(&m, "netreel_capture_filter_changes_total", NR_METRICS_COUNTER,
                      "Filters swapped onto the live handles.");
    nr_metrics_u64(&m, NULL, c->c.filter_changes);
    if (c->tls) {
        struct capture_tls_stats ts;
        capture_tls_iface_stats(c->tls, &ts);
        nr_metrics_family(&m, "netreel_capture_tls_packets_total", NR_METRICS_COUNTER,
                          "Synthetic packets of decrypted TLS on interface tls.");
        nr_metrics_u64(&m, NULL, ts.packets);
        nr_metrics_family(&m, "netreel_capture_tls_calls_total", NR_METRICS_COUNTER,
                          "SSL_read/SSL_write calls that moved plaintext in traced processes.");
        nr_metrics_u64(&m, NULL, ts.calls);
        nr_metrics_family(&m, "netreel_capture_tls_lost_total", NR_METRICS_COUNTER,
                          "Decrypted TLS lost, by what: ring buffer records, plaintext bytes, "
                          "malformed records.");
        nr_metrics_u64(&m, NR_METRICS_LABELS({"what", "records"}), ts.ring_dropped);
        nr_metrics_u64(&m, NR_METRICS_LABELS({"what", "bytes"}), ts.bytes_lost);
        nr_metrics_u64(&m, NR_METRICS_LABELS({"what", "malformed"}), ts.bad_records);
        nr_metrics_family(&m, "netreel_capture_tls_connections", NR_METRICS_GAUGE,
                          "TLS connections tracked (at most 4096; the least recently used go).");
        nr_metrics_u64(&m, NULL, ts.conns);
        nr_metrics_family(&m, "netreel_capture_tls_libraries", NR_METRICS_GAUGE,
                          "libssl files with uprobes attached.");
        nr_metrics_u64(&m, NULL, ts.libraries);
        nr_metrics_family(&m, "netreel_capture_tls_helper_up", NR_METRICS_GAUGE,
                          "1 while the helper process that attaches new libssl files and follows "
                          "the targeted pods runs.");
        nr_metrics_u64(&m, NULL, ts.helper_up ? 1 : 0);
        if (ts.pod_namespaces >= 0) {
            nr_metrics_family(&m, "netreel_capture_tls_pod_namespaces", NR_METRICS_GAUGE,
                              "Network namespaces of targeted pods whose processes are traced "
                              "(absent when every process is traced).");
            nr_metrics_u64(&m, NULL, (uint64_t)ts.pod_namespaces);
        }
        nr_metrics_family(&m, "netreel_capture_tls_secrets_total", NR_METRICS_COUNTER,
                          "TLS connections' secrets read, by result: ok (key log lines made), "
                          "bad (refused: not valid secrets), dropped (no room before the next "
                          "batch).");
        nr_metrics_u64(&m, NR_METRICS_LABELS({"result", "ok"}),
                       ts.secrets - ts.bad_secrets - ts.keylog_dropped);
        nr_metrics_u64(&m, NR_METRICS_LABELS({"result", "bad"}), ts.bad_secrets);
        nr_metrics_u64(&m, NR_METRICS_LABELS({"result", "dropped"}), ts.keylog_dropped);
        nr_metrics_family(&m, "netreel_capture_tls_keylog_lines_total", NR_METRICS_COUNTER,
                          "NSS key log lines made from TLS secrets.");
        nr_metrics_u64(&m, NULL, ts.keylog_lines);
        nr_metrics_family(&m, "netreel_capture_tls_kdf_calls_total", NR_METRICS_COUNTER,
                          "OpenSSL 3 EVP_KDF_derive calls trapped, by every process mapping a "
                          "traced libcrypto (inside SSL calls or not).");
        nr_metrics_u64(&m, NULL, ts.kdf_calls);
        nr_metrics_family(&m, "netreel_capture_tls_kdf_secrets_total", NR_METRICS_COUNTER,
                          "TLS secrets taken from OpenSSL 3's key derivation (libssl builds "
                          "other than the calibrated one), by result: ok (a key log line, or "
                          "one already made), bad (refused), no_client_random (TLS 1.3: the "
                          "connection's ClientHello was not seen in its socket syscalls).");
        nr_metrics_u64(&m, NR_METRICS_LABELS({"result", "ok"}), ts.kdf_secrets - ts.kdf_bad);
        nr_metrics_u64(&m, NR_METRICS_LABELS({"result", "bad"}), ts.kdf_bad);
        nr_metrics_u64(&m, NR_METRICS_LABELS({"result", "no_client_random"}), ts.kdf_no_random);
    }
    capture_targeting_metrics(c, &m);
    capture_ifaces_metrics(c, &m);
    *content_type = NR_METRICS_CONTENT_TYPE;
    return m.err ? m.err : 200;
}

static int serve_healthz(struct nr_buf *body, const char **content_type, void *data)
{
    const char *text = "ok\n";

    nr_buf_append(body, text, strlen(text));
    return 200;
}

static const struct nr_httpd_route routes[] = {
    {"/metrics", serve_metrics, &cap},
    {"/healthz", serve_healthz, &cap},
};

static void uplink_closed(void *arg)
{
    if (httpd)
        nr_httpd_close(httpd, NULL, NULL);
    httpd = NULL;
    nr_prog_close_handles(cap.loop);
}

static void targeting_closed(void *arg)
{
    capture_uplink_close(cap.uplink, 5000, uplink_closed, NULL);
}

/* Stops the threads, sends what they held, waits (5 s at most) for the store's acks. */
static void stop(int status)
{
    if (cap.stopping)
        return;
    cap.stopping = true;
    exit_status = status;
    uv_signal_stop(&sigterm);
    uv_signal_stop(&sigint);
    uv_timer_stop(&tick);
    for (unsigned i = 0; i < cap.n_sources; i++)
        capture_source_stop(cap.sources[i]);
    capture_tls_iface_stop(cap.tls);
    capture_pipeline_ready(&cap.ready);
    capture_targeting_close(&cap, targeting_closed, NULL);
}

static void on_signal(uv_signal_t *sig, int signum)
{
    NR_INFO("stopping", "signal=%d", signum);
    stop(0);
}

static void on_ready(uv_async_t *a)
{
    char err[512];

    capture_pipeline_ready(a);
    for (unsigned i = 0; i < cap.n_sources && !cap.stopping; i++) {
        if (capture_source_failed(cap.sources[i], err, sizeof(err))) {
            NR_ERROR("capture failed", "err=\"%s\"", err);
            stop(1);
        }
    }
}

/* An empty batch now and then keeps the store's counters and liveness current. */
static void on_tick(uv_timer_t *t)
{
    int64_t now = nr_now_ns();

    if (cap.c.batches != last_batches) {
        last_batches = cap.c.batches;
        last_batch_ns = now;
    } else if (now - last_batch_ns >= HEARTBEAT_NS || cap.pods_dirty) {
        capture_pipeline_heartbeat(&cap);
        last_batches = cap.c.batches;
        last_batch_ns = now;
    }
}

int main(int argc, char **argv)
{
    char err[1024];
    const char *base;
    uint32_t tls_id;

    nr_prog_set_name("netreel-capture");
    parse_flags(argc, argv, &cap.cfg);
    cap.loop = uv_default_loop();
    cap.next_seq = 1;
    capture_pipeline_init(&cap);
    capture_spool_init(&spool, cap.cfg.spool_size);
    cap.spool = &spool;
    uv_async_init(cap.loop, &cap.ready, on_ready);
    capture_filter_init(&cap);
    cap.ready.data = &cap;
    for (unsigned i = 0; i < cap.cfg.n_ifaces; i++) {
        cap.sources[i] = capture_source_open(&cap, i, cap.cfg.ifaces[i], err, sizeof(err));
        if (!cap.sources[i])
            nr_die("cannot capture on %s", err);
        cap.n_sources++;
    }
    /* With targeting, nothing is recorded until the first pod list says what to record. */
    base = cap.cfg.bpf_override ? cap.cfg.bpf_override
           : cap.cfg.kube       ? KUBE_FILTER_NOTHING
                                : cap.cfg.filter;
    if (capture_filter_apply(&cap, base, err, sizeof(err)) != 0)
        nr_die("%s", err);
    /* Loading eBPF and attaching uprobes needs privileges the drop below gives up. It also forks
     * the TLS helper: here no thread exists yet (the capture threads start below, libuv's pool
     * is never used before), so the child starts with one consistent copy of the memory. */
    if (capture_ifaces_init(&cap) != 0)
        nr_die("out of memory for the interface table");
    if (cap.cfg.tls)
        cap.tls = capture_tls_iface_open(&cap, capture_ifaces_next_id(&cap));
    if (cap.tls &&
        capture_ifaces_add(&cap, CAPTURE_TLS_IFNAME, (uint32_t)capture_tls_iface_link_type(cap.tls),
                           CAPTURE_TLS_SNAPLEN, &tls_id) != 0)
        nr_die("out of memory for the interface table");
    /* TLS material is read now, while the files are still readable to us. */
    cap.uplink = capture_uplink_new(&cap, err, sizeof(err));
    if (!cap.uplink)
        nr_die("--store: %s", err);
    if (capture_targeting_new(&cap, err, sizeof(err)) != 0)
        nr_die("--kube: %s", err);
    if (capture_drop_privileges(cap.cfg.user, err, sizeof(err)) != 0)
        nr_die("%s", err);
    httpd = nr_prog_metrics(cap.loop, cap.cfg.metrics_listen, routes,
                            sizeof(routes) / sizeof(routes[0]));
    for (unsigned i = 0; i < cap.n_sources; i++)
        if (capture_source_start(cap.sources[i]) != 0)
            nr_die("cannot start the capture thread of %s", cap.cfg.ifaces[i]);
    if (cap.tls && capture_tls_iface_start(cap.tls) != 0)
        nr_die("--tls: cannot start taking records");
    if (capture_targeting_start(&cap) != 0)
        nr_die("--kube: cannot start the pod watch");
    uv_timer_init(cap.loop, &tick);
    uv_timer_start(&tick, on_tick, 1000, 1000);
    uv_signal_init(cap.loop, &sigterm);
    uv_signal_init(cap.loop, &sigint);
    uv_signal_start(&sigterm, on_signal, SIGTERM);
    uv_signal_start(&sigint, on_signal, SIGINT);
    {
        char ifs[256] = "", sz[32];
        size_t o = 0;
        for (unsigned i = 0; i < cap.n_sources; i++)
            o += (size_t)snprintf(ifs + o, sizeof(ifs) - o, "%s%s", i ? "," : "",
                                  capture_source_name(cap.sources[i]));
        if (cap.tls && o < sizeof(ifs))
            snprintf(ifs + o, sizeof(ifs) - o, ",%s", CAPTURE_TLS_IFNAME);
        nr_format_size(cap.cfg.spool_size, sz, sizeof(sz));
        NR_INFO("capturing",
                "interfaces=%s capture_id=%s store=%s uid=%d spool=%s "
                "metrics_port=%d",
                ifs, cap.cfg.capture_id, cap.cfg.store, (int)getuid(), sz,
                httpd ? nr_httpd_port(httpd) : -1);
    }
    uv_run(cap.loop, UV_RUN_DEFAULT);
    for (unsigned i = 0; i < cap.n_sources; i++)
        capture_source_close(cap.sources[i]);
    capture_spool_free(&spool);
    capture_pipeline_free(&cap);
    free(cap.filter_text);
    free(cap.filter_base);
    free(cap.filter_wanted);
    free(cap.pods);
    capture_ifaces_free(&cap);
    uv_loop_close(cap.loop);
    capture_tls_iface_free(cap.tls);
    NR_INFO("stopped", "packets=%llu batches=%llu acked=%llu", (unsigned long long)cap.c.packets,
            (unsigned long long)cap.c.batches, (unsigned long long)cap.c.acked);
    return exit_status;
}
