/* netreel tap --local: records this machine in the foreground. Runs netreel-store, then
 * netreel-capture and netreel-hub on 127.0.0.1, says "recording" once the store and the hub
 * answer gRPC health checks, and on Ctrl-C/SIGTERM stops the capture first (so its last
 * batches reach the store), then the hub and the store. A child that dies stops the rest and
 * the exit is non-zero, naming it. Children's output comes out on our stderr, each line
 * prefixed with the child's name: it is a foreground tool, like `docker compose up`, and the
 * user sees why something stopped where they are looking, with nothing to clean up. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <net/if.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include "cli.h"
#include "grpc/health/v1/health.pb-c.h"
#include "proc.h"
#include "rpc/client.h"
#include "rpc/health.h"
#include "rpc/status.h"
#include "util/log.h"
#include "util/parse.h"

#define MAX_ARGS      64
#define TAIL_LINES    8
#define READY_WAIT_MS 30000
#define PROBE_MS      200
#define STOP_WAIT_MS  15000

enum { CAPTURE, STORE, HUB, NCHILD };

static const char usage_text[] =
    "usage: netreel tap --local [-i IFACE] [--data DIR] [--set key=value]...\n"
    "Records this machine in the foreground until Ctrl-C: netreel-capture, netreel-store and\n"
    "netreel-hub run as children on 127.0.0.1 (their output on stderr, prefixed). From another\n"
    "terminal: netreel pcapdump --time=5m.\n"
    "\n"
    "  -i, --interface IFACE  what to record: a name, names with commas, or any (default: the\n"
    "                         first interface that is up and not loopback)\n"
    "  --data DIR             the recording (default /var/lib/netreel as root, else\n"
    "                         $XDG_DATA_HOME/netreel or ~/.local/share/netreel)\n"
    "  --set key=value        chart values that apply here: pcapdump.maxTime, pcapdump.maxSize,\n"
    "                         pcapdump.timeInterval, pcapdump.minFreeDisk, tap.interface,\n"
    "                         tap.snaplen, tap.bufferSize, tap.bpfOverride, capture.batchBytes,\n"
    "                         capture.batchTime, capture.spoolSize, capture.recordSelf,\n"
    "                         hub.maxSnapshots, logLevel (headless=true is accepted)\n"
    "  --store-port PORT      the store's gRPC port (default 8897)\n"
    "  --hub-port PORT        the hub's gRPC port (default 8898)\n"
    "  --metrics-ports BASE   /metrics of capture, store, hub on BASE, BASE+1, BASE+2\n"
    "                         (default 9101; \"off\": none)\n"
    "  --help\n"
    "\n"
    "The capture never records the store's and the hub's ports. Exit: 0 stopped by Ctrl-C or\n"
    "SIGTERM, 1 a program died or did not start (named on stderr), 2 bad usage, 4 a program is\n"
    "missing.\n";

struct child {
    const char *name;  /* "netreel-store" */
    const char *label; /* "store" */
    char path[PATH_MAX];
    const char *argv[MAX_ARGS];
    int argc;
    pid_t pid;
    uv_pipe_t pipe;
    bool piped, eof, exited, reported;
    int status; /* as cli_run: exit status, or 128+signal */
    char partial[2048];
    size_t plen;
    char tail[TAIL_LINES][512];
    unsigned lines;
    /* readiness (store, hub) */
    struct rpc_channel *probe;
    bool probing, serving, ready;
};

static struct {
    struct child c[NCHILD];
    const char *iface, *data;
    char data_buf[PATH_MAX], iface_buf[IF_NAMESIZE];
    unsigned store_port, hub_port, metrics_base;
    char store_addr[32], hub_addr[32], store_port_s[8], hub_port_s[8];
    char metrics[NCHILD][32];
    char args_buf[32][64]; /* flags made up here (numbers) */
    int n_args_buf;
    const char *sets[NCHILD][MAX_ARGS];
    int n_sets[NCHILD];
    uv_loop_t *loop;
    uv_signal_t sigint, sigterm, sigchld;
    uv_timer_t tick, stop_timer;
    int64_t ready_deadline;
    bool recording, stopping, failed, closing;
    int stop_phase; /* 1: the capture is stopping, 2: the hub and the store */
} t;

/* ---- --set ---- */

enum value_kind { V_DURATION, V_SIZE, V_COUNT, V_TEXT, V_BOOL, V_PERCENT, V_LEVEL };

static const struct set_key {
    const char *key;
    int child; /* CAPTURE, STORE, HUB, or NCHILD for all three */
    const char *flag;
    enum value_kind kind;
} set_keys[] = {
    {"pcapdump.maxTime", STORE, "--max-time", V_DURATION},
    {"pcapdump.maxSize", STORE, "--max-size", V_SIZE},
    {"pcapdump.timeInterval", STORE, "--time-interval", V_DURATION},
    {"pcapdump.minFreeDisk", STORE, "--min-free-disk", V_PERCENT},
    {"tap.interface", CAPTURE, "-i", V_TEXT},
    {"tap.snaplen", CAPTURE, "--snaplen", V_COUNT},
    {"tap.bufferSize", CAPTURE, "--buffer-size", V_SIZE},
    {"tap.bpfOverride", CAPTURE, "--bpf-override", V_TEXT},
    {"capture.batchBytes", CAPTURE, "--batch-bytes", V_SIZE},
    {"capture.batchTime", CAPTURE, "--batch-time", V_DURATION},
    {"capture.spoolSize", CAPTURE, "--spool-size", V_SIZE},
    {"capture.recordSelf", CAPTURE, "--record-self", V_BOOL},
    {"hub.maxSnapshots", HUB, "--max-snapshots", V_COUNT},
    {"logLevel", NCHILD, "--log-level", V_LEVEL},
};

static int check_value(const struct set_key *k, const char *v)
{
    char err[256];
    int64_t ns;
    uint64_t bytes;
    enum nr_log_level level;
    char *end;

    switch (k->kind) {
    case V_DURATION:
        if (nr_parse_duration(v, &ns, err, sizeof(err)) != 0)
            return cli_error(CLI_EXIT_USAGE, "tap --local: --set %s: %s", k->key, err);
        return 0;
    case V_SIZE:
        if (nr_parse_size(v, &bytes, err, sizeof(err)) != 0)
            return cli_error(CLI_EXIT_USAGE, "tap --local: --set %s: %s", k->key, err);
        return 0;
    case V_COUNT:
        errno = 0;
        if (!*v || *v == '-' || strtoul(v, &end, 10) == 0 || errno || *end)
            return cli_error(CLI_EXIT_USAGE, "tap --local: --set %s=%s: want a number above 0",
                             k->key, v);
        return 0;
    case V_BOOL:
        if (strcmp(v, "true") != 0 && strcmp(v, "false") != 0)
            return cli_error(CLI_EXIT_USAGE, "tap --local: --set %s=%s: want true or false", k->key,
                             v);
        return 0;
    case V_LEVEL:
        if (nr_log_parse_level(v, &level) != 0)
            return cli_error(CLI_EXIT_USAGE,
                             "tap --local: --set %s=%s: want debug, info, warn or error", k->key,
                             v);
        return 0;
    case V_TEXT:
    case V_PERCENT:
        if (!*v)
            return cli_error(CLI_EXIT_USAGE, "tap --local: --set %s: empty value", k->key);
        return 0; /* the program checks it and says so */
    }
    return 0;
}

static void add_set(int child, const char *flag, const char *value)
{
    t.sets[child][t.n_sets[child]++] = flag;
    if (value)
        t.sets[child][t.n_sets[child]++] = value;
}

static int apply_set(char *kv)
{
    char *eq = strchr(kv, '=');
    const char *v;

    if (!eq || eq == kv)
        return cli_error(CLI_EXIT_USAGE, "tap --local: --set \"%s\": want key=value", kv);
    *eq = 0;
    v = eq + 1;
    if (strcmp(kv, "headless") == 0)
        return 0; /* there is no dashboard: headless is the only mode */
    if (strcmp(kv, "tap.regex") == 0 || strcmp(kv, "tap.namespaces") == 0 ||
        strcmp(kv, "tap.excludedNamespaces") == 0)
        return cli_error(CLI_EXIT_USAGE,
                         "tap --local: --set %s: pod targeting needs a cluster "
                         "(netreel tap); on this machine give a BPF expression: --set "
                         "tap.bpfOverride='host 10.0.0.5'",
                         kv);
    for (size_t i = 0; i < sizeof(set_keys) / sizeof(set_keys[0]); i++) {
        const struct set_key *k = &set_keys[i];
        int rc;
        if (strcmp(kv, k->key) != 0)
            continue;
        if ((rc = check_value(k, v)) != 0)
            return rc;
        if (strcmp(k->key, "tap.interface") == 0) {
            t.iface = v;
        } else if (k->kind == V_BOOL) {
            if (strcmp(v, "true") == 0)
                add_set(k->child, k->flag, NULL);
        } else if (k->child == NCHILD) {
            for (int c = 0; c < NCHILD; c++)
                add_set(c, k->flag, v);
        } else {
            add_set(k->child, k->flag, v);
        }
        return 0;
    }
    return cli_error(CLI_EXIT_USAGE,
                     "tap --local: --set %s: not a value --local knows "
                     "(netreel tap --local --help lists them)",
                     kv);
}

/* ---- flags and defaults ---- */

static int port_flag(const char *flag, const char *v, unsigned *port)
{
    char *end;
    unsigned long p;

    errno = 0;
    p = strtoul(v, &end, 10);
    if (errno || end == v || *end || v[0] == '-' || p == 0 || p > 65535)
        return cli_error(CLI_EXIT_USAGE, "tap --local: %s \"%s\": a port from 1 to 65535", flag, v);
    *port = (unsigned)p;
    return 0;
}

/* The first interface that is up and is not loopback, in index order. */
static int default_interface(void)
{
    struct if_nameindex *ifs = if_nameindex(), *i;
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    int rc = -ENOENT;

    for (i = ifs; fd >= 0 && i && i->if_index; i++) {
        struct ifreq ifr = {0};
        snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", i->if_name);
        if (ioctl(fd, SIOCGIFFLAGS, &ifr) == 0 && (ifr.ifr_flags & IFF_UP) &&
            !(ifr.ifr_flags & IFF_LOOPBACK)) {
            snprintf(t.iface_buf, sizeof(t.iface_buf), "%s", i->if_name);
            t.iface = t.iface_buf;
            rc = 0;
            break;
        }
    }
    if (fd >= 0)
        close(fd);
    if (ifs)
        if_freenameindex(ifs);
    if (rc != 0)
        return cli_error(CLI_EXIT_USAGE, "tap --local: no interface is up besides loopback: "
                                         "choose one with -i (-i lo)");
    return 0;
}

static int mkdir_p(char *path)
{
    for (char *p = path + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = 0;
        if (mkdir(path, 0750) != 0 && errno != EEXIST) {
            *p = '/';
            return -errno;
        }
        *p = '/';
    }
    if (mkdir(path, 0750) != 0 && errno != EEXIST)
        return -errno;
    return 0;
}

static int default_data(void)
{
    const char *xdg = getenv("XDG_DATA_HOME"), *home = getenv("HOME");
    int rc;

    if (t.data)
        snprintf(t.data_buf, sizeof(t.data_buf), "%s", t.data);
    else if (geteuid() == 0)
        snprintf(t.data_buf, sizeof(t.data_buf), "/var/lib/netreel");
    else if (xdg && xdg[0] == '/')
        snprintf(t.data_buf, sizeof(t.data_buf), "%s/netreel", xdg);
    else if (home && *home)
        snprintf(t.data_buf, sizeof(t.data_buf), "%s/.local/share/netreel", home);
    else
        return cli_error(CLI_EXIT_USAGE, "tap --local: no $HOME for the recording: give --data");
    t.data = t.data_buf;
    rc = mkdir_p(t.data_buf);
    if (rc != 0)
        return cli_error(CLI_EXIT_FAIL, "tap --local: cannot make %s: %s", t.data, strerror(-rc));
    return 0;
}

static int parse_flags(int argc, char **argv)
{
    static const struct option opts[] = {
        {"local", no_argument, NULL, 'L'},
        {"interface", required_argument, NULL, 'i'},
        {"data", required_argument, NULL, 'd'},
        {"set", required_argument, NULL, 's'},
        {"store-port", required_argument, NULL, 'S'},
        {"hub-port", required_argument, NULL, 'H'},
        {"metrics-ports", required_argument, NULL, 'M'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *iface_flag = NULL;
    int c, rc;

    t.store_port = 8897;
    t.hub_port = 8898;
    t.metrics_base = 9101;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":i:h", opts, NULL)) != -1) {
        switch (c) {
        case 'L': break;
        case 'i': iface_flag = optarg; break;
        case 'd': t.data = optarg; break;
        case 's':
            if (t.n_sets[CAPTURE] > MAX_ARGS - 24 || t.n_sets[STORE] > MAX_ARGS - 24 ||
                t.n_sets[HUB] > MAX_ARGS - 24)
                return cli_error(CLI_EXIT_USAGE, "tap --local: too many --set");
            if ((rc = apply_set(optarg)) != 0)
                return rc;
            break;
        case 'S':
            if ((rc = port_flag("--store-port", optarg, &t.store_port)) != 0)
                return rc;
            break;
        case 'H':
            if ((rc = port_flag("--hub-port", optarg, &t.hub_port)) != 0)
                return rc;
            break;
        case 'M':
            if (strcmp(optarg, "off") == 0)
                t.metrics_base = 0;
            else if ((rc = port_flag("--metrics-ports", optarg, &t.metrics_base)) != 0)
                return rc;
            else if (t.metrics_base > 65533)
                return cli_error(CLI_EXIT_USAGE, "tap --local: --metrics-ports: at most 65533");
            break;
        case 'h': fputs(usage_text, stdout); exit(CLI_EXIT_OK);
        default: return cli_bad_option("tap --local", c, argv);
        }
    }
    if (optind != argc)
        return cli_error(CLI_EXIT_USAGE,
                         "tap --local: unexpected argument \"%s\" (POD_REGEX "
                         "needs a cluster: netreel tap)",
                         argv[optind]);
    if (t.store_port == t.hub_port)
        return cli_error(CLI_EXIT_USAGE, "tap --local: --store-port and --hub-port are both %u",
                         t.store_port);
    if (iface_flag)
        t.iface = iface_flag;
    if (!t.iface && (rc = default_interface()) != 0)
        return rc;
    return default_data();
}

/* ---- the children ---- */

static int find_binary(struct child *c)
{
    char dir[PATH_MAX];

    if (cli_exe_dir(dir, sizeof(dir)) == 0) {
        snprintf(c->path, sizeof(c->path), "%s/%s", dir, c->name);
        if (access(c->path, X_OK) == 0)
            return 0;
    }
    if (cli_find_program(c->name, c->path, sizeof(c->path)) == 0)
        return 0;
    return cli_error(CLI_EXIT_ENV,
                     "tap --local: %s is not beside netreel (%s) nor on PATH: "
                     "build it (make) or install netreel (make install)",
                     c->name, dir[0] ? dir : "?");
}

static void arg(struct child *c, const char *a)
{
    if (c->argc < MAX_ARGS - 1)
        c->argv[c->argc++] = a;
}

static void build_argv(void)
{
    struct child *cap = &t.c[CAPTURE], *st = &t.c[STORE], *hub = &t.c[HUB];

    snprintf(t.store_addr, sizeof(t.store_addr), "127.0.0.1:%u", t.store_port);
    snprintf(t.hub_addr, sizeof(t.hub_addr), "127.0.0.1:%u", t.hub_port);
    snprintf(t.store_port_s, sizeof(t.store_port_s), "%u", t.store_port);
    snprintf(t.hub_port_s, sizeof(t.hub_port_s), "%u", t.hub_port);
    for (int i = 0; i < NCHILD; i++) {
        if (t.metrics_base)
            snprintf(t.metrics[i], sizeof(t.metrics[i]), "127.0.0.1:%u",
                     t.metrics_base + (i == CAPTURE ? 0
                                       : i == STORE ? 1
                                                    : 2));
        else
            snprintf(t.metrics[i], sizeof(t.metrics[i]), "off");
        t.c[i].argc = 0;
        arg(&t.c[i], t.c[i].path);
    }
    arg(st, "--listen");
    arg(st, t.store_addr);
    arg(st, "--data-dir");
    arg(st, t.data);
    arg(st, "--metrics-listen");
    arg(st, t.metrics[STORE]);
    arg(hub, "--listen");
    arg(hub, t.hub_addr);
    arg(hub, "--stores");
    arg(hub, t.store_addr);
    arg(hub, "--metrics-listen");
    arg(hub, t.metrics[HUB]);
    arg(cap, "-i");
    arg(cap, t.iface);
    arg(cap, "--store");
    arg(cap, t.store_addr);
    /* Local mode: never record what goes to the store and the hub (DESIGN §6). */
    arg(cap, "--exclude-port");
    arg(cap, t.store_port_s);
    arg(cap, "--exclude-port");
    arg(cap, t.hub_port_s);
    arg(cap, "--metrics-listen");
    arg(cap, t.metrics[CAPTURE]);
    for (int i = 0; i < NCHILD; i++) {
        for (int j = 0; j < t.n_sets[i]; j++)
            arg(&t.c[i], t.sets[i][j]);
        t.c[i].argv[t.c[i].argc] = NULL;
    }
}

static void print_line(struct child *c, const char *line, size_t len)
{
    char out[2200];
    int n;

    if (len > sizeof(c->tail[0]) - 1)
        len = sizeof(c->tail[0]) - 1;
    memcpy(c->tail[c->lines % TAIL_LINES], line, len);
    c->tail[c->lines % TAIL_LINES][len] = 0;
    c->lines++;
    n = snprintf(out, sizeof(out), "%-7s | %.*s\n", c->label, (int)len, line);
    if (n >= (int)sizeof(out)) {
        n = (int)sizeof(out) - 1;
        out[n - 1] = '\n';
    }
    if (write(2, out, (size_t)n) < 0) {
        /* our stderr is gone: nothing to tell anyone */
    }
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct child *c = h->data;

    buf->base = c->partial + c->plen;
    buf->len = sizeof(c->partial) - c->plen;
}

static void child_check(struct child *c);

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct child *c = s->data;
    char *start = c->partial, *nl;

    if (n < 0) {
        if (c->plen)
            print_line(c, c->partial, c->plen);
        c->plen = 0;
        c->eof = true;
        uv_close((uv_handle_t *)&c->pipe, NULL);
        child_check(c);
        return;
    }
    c->plen += (size_t)n;
    while ((nl = memchr(start, '\n', c->plen - (size_t)(start - c->partial)))) {
        print_line(c, start, (size_t)(nl - start));
        start = nl + 1;
    }
    c->plen -= (size_t)(start - c->partial);
    memmove(c->partial, start, c->plen);
    if (c->plen == sizeof(c->partial)) { /* a line longer than the buffer: as it is */
        print_line(c, c->partial, c->plen);
        c->plen = 0;
    }
}

static int start_child(struct child *c)
{
    int fd;

    c->pid = cli_spawn_piped(c->argv, &fd, 1);
    if (c->pid < 0)
        return cli_error(CLI_EXIT_FAIL, "tap --local: cannot start %s: %s", c->name,
                         strerror((int)-c->pid));
    uv_pipe_init(t.loop, &c->pipe, 0);
    c->pipe.data = c;
    uv_pipe_open(&c->pipe, fd);
    uv_read_start((uv_stream_t *)&c->pipe, on_alloc, on_read);
    c->piped = true;
    return 0;
}

static void stop_all(bool failed);

static const char *last_line(const struct child *c)
{
    return c->lines ? c->tail[(c->lines - 1) % TAIL_LINES] : "(it printed nothing)";
}

/* A child is gone once it exited and its output ended: then say so, if it was not asked to. */
static void child_check(struct child *c)
{
    if (!c->exited || !c->eof || c->reported)
        return;
    c->reported = true;
    if (!t.stopping || c->status != 0) {
        char how[64];
        if (c->status > 128)
            snprintf(how, sizeof(how), "was killed by signal %d", c->status - 128);
        else
            snprintf(how, sizeof(how), "exited with status %d", c->status);
        cli_error(CLI_EXIT_FAIL, "tap --local: %s %s%s; its last line: %s", c->name, how,
                  t.stopping ? " while stopping" : "", last_line(c));
        if (c->lines > 1) {
            fprintf(stderr, "netreel: the last lines of %s:\n", c->name);
            for (unsigned i = c->lines > TAIL_LINES ? c->lines - TAIL_LINES : 0; i < c->lines; i++)
                fprintf(stderr, "  %s\n", c->tail[i % TAIL_LINES]);
        }
        t.failed = true;
    }
    stop_all(t.failed);
}

static void on_sigchld(uv_signal_t *h, int signum)
{
    for (int i = 0; i < NCHILD; i++) {
        struct child *c = &t.c[i];
        int st;
        if (c->pid <= 0 || c->exited)
            continue;
        if (waitpid(c->pid, &st, WNOHANG) == c->pid) {
            c->exited = true;
            c->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
            child_check(c);
        }
    }
}

static bool running(const struct child *c)
{
    return c->pid > 0 && !c->exited;
}

static void close_handle(uv_handle_t *h)
{
    if (h->loop && !uv_is_closing(h))
        uv_close(h, NULL);
}

/* Everything is over: close what keeps the loop running. */
static void close_loop(void)
{
    if (t.closing)
        return;
    t.closing = true;
    close_handle((uv_handle_t *)&t.sigint);
    close_handle((uv_handle_t *)&t.sigterm);
    close_handle((uv_handle_t *)&t.sigchld);
    close_handle((uv_handle_t *)&t.tick);
    close_handle((uv_handle_t *)&t.stop_timer);
    for (int i = 0; i < NCHILD; i++) {
        if (t.c[i].probe)
            rpc_channel_close(t.c[i].probe, NULL, NULL);
        t.c[i].probe = NULL;
        if (t.c[i].piped && !t.c[i].eof)
            close_handle((uv_handle_t *)&t.c[i].pipe);
    }
}

static void on_stop_timer(uv_timer_t *h)
{
    /* Past the wait: what is still running is killed, and that is a failure. */
    for (int i = 0; i < NCHILD; i++) {
        struct child *c = &t.c[i];
        bool due = t.stop_phase == 1 ? i == CAPTURE : true;
        if (due && running(c)) {
            cli_error(CLI_EXIT_FAIL,
                      "tap --local: %s did not stop within %d s of SIGTERM: "
                      "killing it",
                      c->name, STOP_WAIT_MS / 1000);
            kill(c->pid, SIGKILL);
            t.failed = true;
        }
    }
}

/* Advances the stop: the capture first, then the hub and the store, then the loop. */
static void stop_all(bool failed)
{
    if (failed)
        t.failed = true;
    if (!t.stopping) {
        t.stopping = true;
        t.stop_phase = 0;
        for (int i = 0; i < NCHILD; i++)
            if (t.c[i].probe) {
                rpc_channel_close(t.c[i].probe, NULL, NULL);
                t.c[i].probe = NULL;
            }
    }
    if (t.stop_phase < 1) {
        t.stop_phase = 1;
        if (running(&t.c[CAPTURE])) {
            kill(t.c[CAPTURE].pid, SIGTERM);
            uv_timer_start(&t.stop_timer, on_stop_timer, STOP_WAIT_MS, 0);
            return;
        }
    }
    if (t.stop_phase == 1) {
        if (running(&t.c[CAPTURE]))
            return;
        t.stop_phase = 2;
        uv_timer_stop(&t.stop_timer);
        for (int i = 0; i < NCHILD; i++)
            if (running(&t.c[i]))
                kill(t.c[i].pid, SIGTERM);
        uv_timer_start(&t.stop_timer, on_stop_timer, STOP_WAIT_MS, 0);
    }
    for (int i = 0; i < NCHILD; i++)
        if (running(&t.c[i]) || (t.c[i].pid > 0 && !t.c[i].reported))
            return;
    close_loop();
}

static void on_signal(uv_signal_t *h, int signum)
{
    if (!t.stopping)
        fprintf(stderr, "netreel: %s: stopping the capture, then the hub and the store\n",
                signum == SIGINT ? "interrupted" : "SIGTERM");
    stop_all(false);
}

/* ---- readiness: gRPC health checks on the store and the hub ---- */

static void probe_message(struct rpc_call *call, const uint8_t *msg, size_t len, void *user)
{
    struct child *c = user;
    Grpc__Health__V1__HealthCheckResponse *r =
        grpc__health__v1__health_check_response__unpack(NULL, len, msg);

    if (r) {
        c->serving = r->status == GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING;
        grpc__health__v1__health_check_response__free_unpacked(r, NULL);
    }
}

static void advance(void);

static void probe_done(struct rpc_call *call, int code, const char *message, void *user)
{
    struct child *c = user;

    c->probing = false;
    if (code == RPC_OK && c->serving && !c->ready) {
        c->ready = true;
        advance();
    }
}

static void probe(struct child *c, const char *target)
{
    static const struct rpc_call_cbs cbs = {.on_message = probe_message, .on_done = probe_done};
    Grpc__Health__V1__HealthCheckRequest req = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
    struct rpc_call_opts co = {
        .path = RPC_HEALTH_CHECK_PATH, .shape = RPC_SHAPE_UNARY, .timeout_ms = 1000};
    struct rpc_call *call;

    if (c->ready || c->probing || !running(c))
        return;
    if (!c->probe) {
        struct rpc_channel_config cfg;
        char err[256];
        rpc_channel_config_init(&cfg);
        cfg.target = target;
        cfg.backoff_initial_ms = 100;
        cfg.backoff_max_ms = 200;
        c->probe = rpc_channel_new(t.loop, &cfg, err, sizeof(err));
        if (!c->probe)
            return;
    }
    req.service = "";
    call = rpc_channel_call(c->probe, &co, &cbs, c);
    if (!call)
        return;
    c->probing = true;
    rpc_call_send(call, &req.base);
    rpc_call_close_send(call);
}

/* Store ready: start the capture and the hub. Hub ready too: recording. */
static void advance(void)
{
    if (t.stopping)
        return;
    if (t.c[STORE].ready && t.c[CAPTURE].pid == 0) {
        if (start_child(&t.c[CAPTURE]) != 0 || start_child(&t.c[HUB]) != 0) {
            stop_all(true);
            return;
        }
    }
    if (t.c[STORE].ready && t.c[HUB].ready && !t.recording) {
        t.recording = true;
        for (int i = 0; i < NCHILD; i++)
            if (t.c[i].probe) {
                rpc_channel_close(t.c[i].probe, NULL, NULL);
                t.c[i].probe = NULL;
            }
        uv_timer_stop(&t.tick);
        fprintf(stderr,
                "netreel: recording %s into %s (store %s, hub %s); Ctrl-C stops.\n"
                "netreel: take a snapshot from another terminal: netreel pcapdump --time=5m%s%s\n",
                t.iface, t.data, t.store_addr, t.hub_addr, t.hub_port != 8898 ? " --hub " : "",
                t.hub_port != 8898 ? t.hub_addr : "");
    }
}

static void on_tick(uv_timer_t *h)
{
    if (t.stopping || t.recording)
        return;
    if (uv_now(t.loop) > (uint64_t)t.ready_deadline) {
        struct child *late = !t.c[STORE].ready ? &t.c[STORE] : &t.c[HUB];
        cli_error(CLI_EXIT_FAIL,
                  "tap --local: %s did not answer on %s within %d s; its last "
                  "line: %s",
                  late->name, late == &t.c[STORE] ? t.store_addr : t.hub_addr, READY_WAIT_MS / 1000,
                  last_line(late));
        stop_all(true);
        return;
    }
    probe(&t.c[STORE], t.store_addr);
    if (t.c[STORE].ready)
        probe(&t.c[HUB], t.hub_addr);
}

int cli_tap_local(int argc, char **argv)
{
    static const char *const names[NCHILD][2] = {
        {"netreel-capture", "capture"}, {"netreel-store", "store"}, {"netreel-hub", "hub"}};
    int rc;

    memset(&t, 0, sizeof(t));
    rc = parse_flags(argc, argv);
    if (rc != 0)
        return rc;
    for (int i = 0; i < NCHILD; i++) {
        t.c[i].name = names[i][0];
        t.c[i].label = names[i][1];
        if ((rc = find_binary(&t.c[i])) != 0)
            return rc;
    }
    build_argv();
    t.loop = uv_default_loop();
    uv_signal_init(t.loop, &t.sigint);
    uv_signal_init(t.loop, &t.sigterm);
    uv_signal_init(t.loop, &t.sigchld);
    uv_timer_init(t.loop, &t.tick);
    uv_timer_init(t.loop, &t.stop_timer);
    uv_signal_start(&t.sigint, on_signal, SIGINT);
    uv_signal_start(&t.sigterm, on_signal, SIGTERM);
    uv_signal_start(&t.sigchld, on_sigchld, SIGCHLD);
    fprintf(stderr,
            "netreel: starting netreel-store (%s), then netreel-capture on %s and "
            "netreel-hub (%s)\n",
            t.store_addr, t.iface, t.hub_addr);
    t.ready_deadline = (int64_t)uv_now(t.loop) + READY_WAIT_MS;
    if (start_child(&t.c[STORE]) != 0)
        stop_all(true);
    else
        uv_timer_start(&t.tick, on_tick, PROBE_MS, PROBE_MS);
    uv_run(t.loop, UV_RUN_DEFAULT);
    uv_loop_close(t.loop);
    if (t.failed)
        return CLI_EXIT_FAIL;
    fprintf(stderr, "netreel: stopped; the recording stays in %s\n", t.data);
    return CLI_EXIT_OK;
}
