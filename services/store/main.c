/* netreel-store: the per-node store. Flags, start-up (recovery, then serving), and a clean
 * stop on SIGTERM/SIGINT that completes the active segments and syncs them. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "rpc/server.h"
#include "store/ingest.h"
#include "store/recover.h"
#include "store/segment.h"
#include "store/snapshot.h"
#include "store/stats.h"
#include "store/store.h"
#include "store/sync.h"
#include "store/writer.h"
#include "util/error.h"
#include "util/httpd.h"
#include "util/log.h"
#include "util/metrics.h"
#include "util/parse.h"
#include "util/prog.h"
#include "util/version.h"

#define MAX_BATCH_MESSAGE (16u << 20)

static struct store store;
static struct rpc_server *server;
static struct rpc_limits rpc_limits; /* the server's, with the timeouts from the flags */
static struct nr_httpd *httpd;
static uv_signal_t sigterm, sigint;

static const char usage_text[] =
    "usage: netreel-store [options]\n"
    "Keeps the node's recording on disk: segments, retention, snapshots (docs/store.md).\n"
    "\n"
    "  --listen ADDR          gRPC address (default 127.0.0.1:8897; \":8897\" = all addresses)\n"
    "  --data-dir DIR         where segments live (default /var/lib/netreel)\n"
    "  --time-interval DUR    rotate segments this often (default 1m)\n"
    "  --max-time DUR         keep packets this long (default 1h; 0 = no limit)\n"
    "  --max-size SIZE        all segments together stay below this (default 500MB)\n"
    "  --min-free-disk PCT    delete oldest segments while the disk has less free (default 5%)\n"
    "  --sync-interval DUR    acknowledge batches once written, and sync them to the disk within\n"
    "                         DUR (default 1s): a power loss loses at most DUR; 0 = acknowledge\n"
    "                         each batch only once synced\n"
    "  --tls-cert FILE        serve TLS with this certificate (PEM) ...\n"
    "  --tls-key FILE         ... and key\n"
    "  --tls-ca FILE          require client certificates signed by this CA (mTLS)\n"
    "  --ingest-peers NAMES   with mTLS, only certificates with these common names may send\n"
    "                         batches (comma-separated; default: any the CA signed)\n"
    "  --read-peers NAMES     ... and only these may call Snapshot and Stats\n"
    "  --handshake-timeout DUR  close connections without a TLS handshake and HTTP/2 preface\n"
    "                         within DUR (default 10s; 0 = never)\n"
    "  --idle-timeout DUR     close connections without calls for DUR (default 5m; 0 = never)\n"
    "  --stall-timeout DUR    reset calls whose client read nothing for DUR (default 1m;\n"
    "                         0 = never)\n"
    "  --metrics-listen ADDR  Prometheus /metrics and /healthz (default :9102; \"off\")\n"
    "  --node NAME            this node's name (default $NODE_NAME, else the host name)\n"
    "  --log-level LEVEL      debug, info, warn or error (default info)\n"
    "  --version, --help\n";

static int64_t duration_flag(const char *name, const char *v)
{
    char err[256];
    int64_t ns;

    if (nr_parse_duration(v, &ns, err, sizeof(err)) != 0)
        nr_die("--%s: %s", name, err);
    return ns;
}

/* A server timeout in milliseconds: 0 (never) or at least 100ms. */
static uint64_t timeout_flag(const char *name, const char *v)
{
    int64_t ns = duration_flag(name, v);

    if (ns != 0 && ns < 100000000)
        nr_die("--%s: at least 100ms (or 0 for never)", name);
    return (uint64_t)ns / 1000000;
}

/* Certificate common names allowed to call a method (rpc_method.peers): at most MAX_PEERS,
 * NULL-terminated. The strings point into argv. */
#define MAX_PEERS 16
static const char *ingest_peers[MAX_PEERS + 1], *read_peers[MAX_PEERS + 1];

static void peers_flag(const char *name, char *v, const char **out)
{
    size_t n = 0;

    for (char *save = NULL, *t = strtok_r(v, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (n == MAX_PEERS)
            nr_die("--%s: at most %d names", name, MAX_PEERS);
        out[n++] = t;
    }
    if (n == 0)
        nr_die("--%s: give one name or more, comma-separated", name);
    out[n] = NULL;
}

static double percent_flag(const char *name, const char *v)
{
    char *end;
    double p;

    errno = 0;
    p = strtod(v, &end);
    if (end == v || errno || (*end && strcmp(end, "%") != 0) || p < 0 || p >= 100)
        nr_die("--%s: \"%s\" is not a percentage from 0 to 99 (\"5%%\", \"2.5\")", name, v);
    return p;
}

static void parse_flags(int argc, char **argv, struct store_config *cfg)
{
    static const struct option opts[] = {
        {"listen", required_argument, NULL, 'l'},
        {"data-dir", required_argument, NULL, 'd'},
        {"time-interval", required_argument, NULL, 'i'},
        {"max-time", required_argument, NULL, 't'},
        {"max-size", required_argument, NULL, 's'},
        {"min-free-disk", required_argument, NULL, 'f'},
        {"sync-interval", required_argument, NULL, 'y'},
        {"tls-cert", required_argument, NULL, 'c'},
        {"tls-key", required_argument, NULL, 'k'},
        {"tls-ca", required_argument, NULL, 'a'},
        {"ingest-peers", required_argument, NULL, 'P'},
        {"read-peers", required_argument, NULL, 'R'},
        {"handshake-timeout", required_argument, NULL, 'H'},
        {"idle-timeout", required_argument, NULL, 'I'},
        {"stall-timeout", required_argument, NULL, 'S'},
        {"metrics-listen", required_argument, NULL, 'm'},
        NR_PROG_OPTIONS,
    };
    const char *node = getenv("NODE_NAME");
    char err[256];
    int c;

    cfg->listen = "127.0.0.1:8897";
    cfg->data_dir = "/var/lib/netreel";
    cfg->metrics_listen = ":9102";
    cfg->time_interval_ns = 60 * INT64_C(1000000000);
    cfg->max_time_ns = 3600 * INT64_C(1000000000);
    cfg->max_size = 500 * UINT64_C(1000000);
    cfg->min_free_pct = 5;
    cfg->sync_interval_ns = INT64_C(1000000000);
    cfg->max_future_ns = 3600 * INT64_C(1000000000);
    cfg->max_past_ns = 30 * 86400 * INT64_C(1000000000);
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case 'l': cfg->listen = optarg; break;
        case 'd': cfg->data_dir = optarg; break;
        case 'i': cfg->time_interval_ns = duration_flag("time-interval", optarg); break;
        case 't': cfg->max_time_ns = duration_flag("max-time", optarg); break;
        case 's':
            if (nr_parse_size(optarg, &cfg->max_size, err, sizeof(err)) != 0)
                nr_die("--max-size: %s", err);
            break;
        case 'f': cfg->min_free_pct = percent_flag("min-free-disk", optarg); break;
        case 'y': cfg->sync_interval_ns = duration_flag("sync-interval", optarg); break;
        case 'c': cfg->tls_cert = optarg; break;
        case 'k': cfg->tls_key = optarg; break;
        case 'a': cfg->tls_ca = optarg; break;
        case 'P': peers_flag("ingest-peers", optarg, ingest_peers); break;
        case 'R': peers_flag("read-peers", optarg, read_peers); break;
        case 'H':
            rpc_limits.handshake_timeout_ms = timeout_flag("handshake-timeout", optarg);
            break;
        case 'I': rpc_limits.idle_timeout_ms = timeout_flag("idle-timeout", optarg); break;
        case 'S': rpc_limits.stall_timeout_ms = timeout_flag("stall-timeout", optarg); break;
        case 'm': cfg->metrics_listen = optarg; break;
        default: nr_prog_option(c, argv, usage_text, &node); break;
        }
    }
    if (optind != argc)
        nr_die("unexpected argument \"%s\" (see --help)", argv[optind]);
    if (cfg->time_interval_ns < 1000000000)
        nr_die("--time-interval: at least 1s");
    if (cfg->sync_interval_ns > 3600 * INT64_C(1000000000))
        nr_die("--sync-interval: at most 1h");
    if (cfg->max_size < STORE_MIN_MAX_SIZE)
        nr_die("--max-size: at least 16MiB (a batch and a segment's head must fit)");
    if ((cfg->tls_cert == NULL) != (cfg->tls_key == NULL))
        nr_die("--tls-cert and --tls-key go together");
    if (cfg->tls_ca && !cfg->tls_cert)
        nr_die("--tls-ca needs --tls-cert and --tls-key");
    if ((ingest_peers[0] || read_peers[0]) && !cfg->tls_ca)
        nr_die("--ingest-peers and --read-peers name client certificates: they need --tls-ca");
    cfg->segment_cap = cfg->max_size / 16;
    if (cfg->segment_cap > STORE_SEGMENT_CAP_MAX)
        cfg->segment_cap = STORE_SEGMENT_CAP_MAX;
    if (!node || !node[0]) {
        static char host[256];
        node = gethostname(host, sizeof(host) - 1) == 0 ? host : "unknown";
    }
    snprintf(cfg->node, sizeof(cfg->node), "%s", node);
}

/* A directory just created: its name in its parent goes to the disk now, or a power loss could
 * take the directory with every segment later synced in it. */
static void sync_parent(const char *dir)
{
    char parent[600];
    char *slash;
    int fd;

    snprintf(parent, sizeof(parent), "%s", dir);
    while ((slash = strrchr(parent, '/')) && slash[1] == 0 && slash != parent)
        *slash = 0; /* "a/b/" is "a/b" */
    slash = strrchr(parent, '/');
    if (!slash)
        snprintf(parent, sizeof(parent), ".");
    else
        slash[slash == parent] = 0; /* "/x": "/" */
    fd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || fsync(fd) != 0)
        NR_WARN("cannot sync the directory holding --data-dir", "dir=%s err=\"%s\"", parent,
                strerror(errno));
    if (fd >= 0)
        close(fd);
}

/* One store per data directory: a second one would interleave writes with the first. */
static void lock_data_dir(const char *dir)
{
    char path[600];
    int fd;

    if (mkdir(dir, 0700) == 0)
        sync_parent(dir);
    else if (errno != EEXIST)
        nr_die("cannot create --data-dir %s: %s", dir, strerror(errno));
    snprintf(path, sizeof(path), "%s/.lock", dir);
    fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        nr_die("cannot open %s: %s", path, strerror(errno));
    if (flock(fd, LOCK_EX | LOCK_NB) != 0)
        nr_die("%s is in use by another netreel-store", dir);
}

static int serve_metrics(struct nr_buf *body, const char **content_type, void *data)
{
    int rc = store_metrics_write(data, body);
    struct nr_metrics m;

    if (rc == 0 && server) {
        nr_metrics_init(&m, body);
        rc = rpc_server_metrics_write(server, &m);
    }
    *content_type = NR_METRICS_CONTENT_TYPE;
    return rc ? rc : 200;
}

/* Alive and able to write: the data directory is still there and writable. */
static int serve_healthz(struct nr_buf *body, const char **content_type, void *data)
{
    const struct store *s = data;
    bool ok = access(s->cfg.data_dir, W_OK) == 0;
    const char *text = ok ? "ok\n" : "data directory not writable\n";

    nr_buf_append(body, text, strlen(text));
    return ok ? 200 : 503;
}

static const struct nr_httpd_route routes[] = {
    {"/metrics", serve_metrics, &store},
    {"/healthz", serve_healthz, &store},
};

static void on_tick(uv_timer_t *t)
{
    store_ingest_tick(&store, nr_now_ns());
    store_sync_tick(&store);
}

static void server_closed(void *arg)
{
    int64_t now = nr_now_ns();

    store_writer_drain(&store);
    for (struct store_stream *st = store.streams; st; st = st->next)
        if (st->active)
            store_segment_close(&store, st->active, now);
    nr_prog_close_handles(store.loop);
}

static void on_signal(uv_signal_t *sig, int signum)
{
    NR_INFO("stopping", "signal=%d", signum);
    uv_signal_stop(&sigterm);
    uv_signal_stop(&sigint);
    uv_timer_stop(&store.timer);
    if (httpd)
        nr_httpd_close(httpd, NULL, NULL);
    rpc_server_close(server, server_closed, NULL);
}

int main(int argc, char **argv)
{
    static struct rpc_method methods[] = {
        {"/netreel.v1.Store/Ingest", RPC_SHAPE_BIDI, store_ingest_start, &store, MAX_BATCH_MESSAGE,
         ingest_peers},
        {"/netreel.v1.Store/Snapshot", RPC_SHAPE_SERVER_STREAM, store_snapshot_start, &store, 0,
         read_peers},
        {"/netreel.v1.Store/Stats", RPC_SHAPE_UNARY, store_stats_start, &store, 0, read_peers},
    };
    struct rpc_server_config scfg;
    char err[256];
    int rc;

    nr_prog_set_name("netreel-store");
    rpc_limits_init(&rpc_limits);
    parse_flags(argc, argv, &store.cfg);
    store.loop = uv_default_loop();
    lock_data_dir(store.cfg.data_dir);
    nr_prog_raise_nofile(); /* snapshots hold a descriptor per segment they read */
    rc = store_recover(&store);
    if (rc != 0)
        nr_die("cannot read --data-dir %s: %s", store.cfg.data_dir, nr_strerror(rc));

    rpc_server_config_init(&scfg);
    scfg.limits = rpc_limits;
    scfg.listen = store.cfg.listen;
    scfg.tls_cert = store.cfg.tls_cert;
    scfg.tls_key = store.cfg.tls_key;
    scfg.tls_ca = store.cfg.tls_ca;
    server = rpc_server_new(store.loop, &scfg, methods, sizeof(methods) / sizeof(methods[0]));
    if (!server)
        nr_die("out of memory");
    if (rpc_server_start(server, err, sizeof(err)) != 0)
        nr_die("%s", err);
    rpc_server_set_health(server, "netreel.v1.Store", 1);
    httpd = nr_prog_metrics(store.loop, store.cfg.metrics_listen, routes,
                            sizeof(routes) / sizeof(routes[0]));

    rc = store_writer_start(&store);
    if (rc != 0)
        NR_WARN("no writer thread: writing on the loop", "err=\"%s\"", nr_strerror(rc));
    store_sync_init(&store);
    store_ingest_init(&store);
    uv_timer_init(store.loop, &store.timer);
    uv_timer_start(&store.timer, on_tick, 1000, 1000);
    uv_signal_init(store.loop, &sigterm);
    uv_signal_init(store.loop, &sigint);
    uv_signal_start(&sigterm, on_signal, SIGTERM);
    uv_signal_start(&sigint, on_signal, SIGINT);
    {
        char sz[32], mt[32], ti[32], si[32];
        nr_format_size(store.cfg.max_size, sz, sizeof(sz));
        nr_format_duration(store.cfg.max_time_ns, mt, sizeof(mt));
        nr_format_duration(store.cfg.time_interval_ns, ti, sizeof(ti));
        nr_format_duration(store.cfg.sync_interval_ns, si, sizeof(si));
        NR_INFO("serving",
                "listen=%s port=%d data_dir=%s node=%s max_size=%s max_time=%s "
                "time_interval=%s sync_interval=%s min_free_disk=%.1f%% tls=%s metrics_port=%d",
                store.cfg.listen, rpc_server_port(server), store.cfg.data_dir, store.cfg.node, sz,
                mt, ti, si, store.cfg.min_free_pct,
                store.cfg.tls_ca     ? "mtls"
                : store.cfg.tls_cert ? "tls"
                                     : "off",
                httpd ? nr_httpd_port(httpd) : -1);
    }
    uv_run(store.loop, UV_RUN_DEFAULT);
    store_writer_free(&store);
    rc = store_sync_free(&store);
    uv_loop_close(store.loop);
    NR_INFO("stopped", "segments=%u", store.n_segments);
    return rc == 0 ? 0 : 1;
}
