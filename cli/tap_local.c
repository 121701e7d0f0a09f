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

#include "args.h"
#include "certs.h"
#include "cli.h"
#include "grpc/health/v1/health.pb-c.h"
#include "proc.h"
#include "rpc/client.h"
#include "rpc/health.h"
#include "rpc/status.h"
#include "util/error.h"

#define MAX_ARGS      64
#define TAIL_LINES    8
#define READY_WAIT_MS 30000
#define PROBE_MS      200
#define STOP_WAIT_MS  15000

enum {
    CAPTURE = CLI_LOCAL_CAPTURE,
    STORE = CLI_LOCAL_STORE,
    HUB = CLI_LOCAL_HUB,
    NCHILD = CLI_LOCAL_NCHILD
};

static const char usage_text[] =
    "usage: netreel tap --local [-i IFACE] [--data DIR] [--tls] [--set key=value]...\n"
    "Records this machine in the foreground until Ctrl-C: netreel-capture, netreel-store and\n"
    "netreel-hub run as children on 127.0.0.1 (their output on stderr, prefixed). From another\n"
    "terminal: netreel pcapdump --time=5m.\n"
    "\n"
    "  -i, --interface IFACE  what to record: a name, names with commas, or any (default: the\n"
    "                         first interface that is up and not loopback)\n"
    "  --data DIR             the recording, certificates and token (default $NETREEL_DATA,\n"
    "                         else /var/lib/netreel as root, else $XDG_DATA_HOME/netreel or\n"
    "                         ~/.local/share/netreel); made 0700\n"
    "  --tls                  also record decrypted TLS: the plaintext of this machine's OpenSSL\n"
    "                         connections (interface tls) and their secrets; needs root (the\n"
    "                         capture attaches its eBPF probes, then drops to nobody). Off\n"
    "                         unless given (--tls=false, --set tap.tls=true|false also work)\n"
    "  --set key=value        chart values that apply here: pcapdump.maxTime, pcapdump.maxSize,\n"
    "                         pcapdump.timeInterval, pcapdump.minFreeDisk, tap.interface,\n"
    "                         tap.snaplen, tap.bufferSize, tap.bpfOverride, tap.tls,\n"
    "                         capture.batchBytes, capture.batchTime, capture.spoolSize,\n"
    "                         capture.recordSelf, hub.maxSnapshots, logLevel (headless=true\n"
    "                         is accepted)\n"
    "  --store-port PORT      the store's gRPC port (default 8897)\n"
    "  --hub-port PORT        the hub's gRPC port (default 8898)\n"
    "  --metrics-ports BASE   /metrics of capture, store, hub on BASE, BASE+1, BASE+2\n"
    "                         (default 9101; \"off\": none)\n"
    "  --help\n"
    "\n"
    "The three talk mTLS with a CA and certificates made on first start in DIR/.tls; the hub\n"
    "wants the token in DIR/hub.token; pcapdump and status find both through DIR/hub.addr.\n"
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
    struct cli_tap_local_args a;
    const char *iface, *data;
    char data_buf[PATH_MAX], iface_buf[IF_NAMESIZE];
    bool data_default; /* the folder pcapdump finds without --data */
    unsigned store_port, hub_port, metrics_base;
    struct cli_certs certs;
    char token_file[PATH_MAX];
    bool addr_written;
    char store_addr[32], hub_addr[32], store_port_s[8], hub_port_s[8];
    char metrics[NCHILD][32];
    uv_loop_t *loop;
    uv_signal_t sigint, sigterm, sigchld;
    uv_timer_t tick, stop_timer;
    int64_t ready_deadline;
    bool recording, stopping, failed, closing;
    int stop_phase; /* 1: the capture is stopping, 2: the hub and the store */
} t;

/* ---- flags and defaults ---- */

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

/* DIR: made 0700 when missing. The default folder is ours: one an older netreel made 0750 is
 * closed to others. One the user chose (--data, $NETREEL_DATA) may be anything and is left as
 * it is, with a warning when others can look into it. */
static int data_dir(void)
{
    const char *env = getenv("NETREEL_DATA");
    bool chosen = t.a.data || (env && *env);
    char def[PATH_MAX];
    struct stat st;
    int rc;

    if (cli_local_data_default(def, sizeof(def)) != 0)
        def[0] = 0;
    if (t.a.data) {
        snprintf(t.data_buf, sizeof(t.data_buf), "%s", t.a.data);
    } else if (def[0]) {
        snprintf(t.data_buf, sizeof(t.data_buf), "%s", def);
    } else {
        return cli_error(CLI_EXIT_USAGE, "tap --local: no $HOME for the recording: give --data");
    }
    t.data = t.data_buf;
    t.data_default = def[0] && strcmp(def, t.data) == 0;
    rc = cli_mkdir_private(t.data_buf);
    if (rc != 0)
        return cli_error(CLI_EXIT_FAIL, "tap --local: cannot make %s: %s", t.data, nr_strerror(rc));
    if (stat(t.data, &st) != 0)
        return cli_error(CLI_EXIT_FAIL, "tap --local: %s: %s", t.data, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return cli_error(CLI_EXIT_FAIL, "tap --local: --data %s is not a folder", t.data);
    if ((st.st_mode & 077) && !chosen && st.st_uid == geteuid()) {
        if (chmod(t.data, 0700) != 0)
            return cli_error(CLI_EXIT_FAIL, "tap --local: cannot close %s to others: %s", t.data,
                             strerror(errno));
        fprintf(stderr, "netreel: closed %s to others (it was mode %04o)\n", t.data,
                (unsigned)(st.st_mode & 07777));
    } else if (st.st_mode & 077) {
        cli_warn("%s is open to others (mode %04o): the recording is readable by them; "
                 "chmod 700 %s",
                 t.data, (unsigned)(st.st_mode & 07777), t.data);
    }
    return 0;
}

/* The CA, the certificates and the token: made on first start, reused after. */
static int credentials(void)
{
    char made[PATH_MAX + 256], err[PATH_MAX + 256];
    bool token_made;

    if (cli_certs_ensure(t.data, &t.certs, made, sizeof(made), err, sizeof(err)) != 0)
        return cli_error(CLI_EXIT_FAIL, "tap --local: %s", err);
    if (made[0])
        fprintf(stderr, "netreel: %s\n", made);
    if (cli_token_ensure(t.data, t.token_file, sizeof(t.token_file), &token_made, err,
                         sizeof(err)) != 0)
        return cli_error(CLI_EXIT_FAIL, "tap --local: %s", err);
    if (token_made)
        fprintf(stderr, "netreel: made the hub's token in %s\n", t.token_file);
    return 0;
}

static int parse_flags(int argc, char **argv)
{
    int rc = cli_tap_local_args_parse(argc, argv, &t.a);

    if (rc == CLI_ARGS_HELP) {
        fputs(usage_text, stdout);
        exit(CLI_EXIT_OK);
    }
    if (rc != 0)
        return rc;
    t.store_port = t.a.store_port;
    t.hub_port = t.a.hub_port;
    t.metrics_base = t.a.metrics_base;
    t.iface = t.a.iface;
    if (!t.iface && (rc = default_interface()) != 0)
        return rc;
    return data_dir();
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
    /* mTLS: the store serves only peers with a certificate of our CA */
    arg(st, "--tls-cert");
    arg(st, t.certs.cert[CLI_CERT_STORE]);
    arg(st, "--tls-key");
    arg(st, t.certs.key[CLI_CERT_STORE]);
    arg(st, "--tls-ca");
    arg(st, t.certs.ca);
    arg(st, "--ingest-peers");
    arg(st, cli_cert_names[CLI_CERT_CAPTURE]);
    arg(st, "--read-peers");
    arg(st, cli_cert_names[CLI_CERT_HUB]);
    arg(hub, "--listen");
    arg(hub, t.hub_addr);
    arg(hub, "--stores");
    arg(hub, t.store_addr);
    arg(hub, "--metrics-listen");
    arg(hub, t.metrics[HUB]);
    arg(hub, "--tls-cert");
    arg(hub, t.certs.cert[CLI_CERT_HUB]);
    arg(hub, "--tls-key");
    arg(hub, t.certs.key[CLI_CERT_HUB]);
    arg(hub, "--tls-ca");
    arg(hub, t.certs.ca);
    arg(hub, "--store-tls-ca");
    arg(hub, t.certs.ca);
    arg(hub, "--store-tls-cert");
    arg(hub, t.certs.cert[CLI_CERT_HUB]);
    arg(hub, "--store-tls-key");
    arg(hub, t.certs.key[CLI_CERT_HUB]);
    arg(hub, "--token-file");
    arg(hub, t.token_file);
    arg(cap, "-i");
    arg(cap, t.iface);
    arg(cap, "--store");
    arg(cap, t.store_addr);
    arg(cap, "--tls-ca");
    arg(cap, t.certs.ca);
    arg(cap, "--tls-cert");
    arg(cap, t.certs.cert[CLI_CERT_CAPTURE]);
    arg(cap, "--tls-key");
    arg(cap, t.certs.key[CLI_CERT_CAPTURE]);
    /* Local mode: never record what goes to the store and the hub (docs/design.md §6). */
    arg(cap, "--exclude-port");
    arg(cap, t.store_port_s);
    arg(cap, "--exclude-port");
    arg(cap, t.hub_port_s);
    arg(cap, "--metrics-listen");
    arg(cap, t.metrics[CAPTURE]);
    for (int i = 0; i < NCHILD; i++) {
        for (int j = 0; j < t.a.n_sets[i]; j++)
            arg(&t.c[i], t.a.sets[i][j]);
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
        cfg.tls_ca = t.certs.ca;
        cfg.tls_cert = t.certs.cert[CLI_CERT_CLIENT];
        cfg.tls_key = t.certs.key[CLI_CERT_CLIENT];
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
        {
            char err[PATH_MAX + 64];
            if (cli_hub_addr_write(t.data, t.hub_addr, err, sizeof(err)) != 0) {
                cli_error(CLI_EXIT_FAIL, "tap --local: %s", err);
                stop_all(true);
                return;
            }
            t.addr_written = true;
        }
        /* pcapdump finds the hub and its credentials through the data folder: --data only
         * when it is not the one it looks in by default. */
        fprintf(stderr,
                "netreel: recording %s into %s (store %s, hub %s, mTLS and token); Ctrl-C "
                "stops.\n"
                "netreel: take a snapshot from another terminal: netreel pcapdump --time=5m%s%s\n",
                t.iface, t.data, t.store_addr, t.hub_addr, t.data_default ? "" : " --data ",
                t.data_default ? "" : t.data);
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
    if ((rc = credentials()) != 0)
        return rc;
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
    if (t.addr_written)
        cli_hub_addr_remove(t.data);
    if (t.failed)
        return CLI_EXIT_FAIL;
    fprintf(stderr, "netreel: stopped; the recording stays in %s\n", t.data);
    return CLI_EXIT_OK;
}
