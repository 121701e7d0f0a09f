/* netreel pcapdump: one snapshot of every node as one file (DESIGN §5, §7). The hub streams the
 * file's bytes; they go to DIR/netreel-<start>-<end>.pcapng through a .part file that becomes
 * the final name only after the hub's last message said the file is whole, and after fsync. */
#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "cli.h"
#include "hub.h"
#include "netreel/v1/hub.pb-c.h"
#include "rpc/status.h"
#include "util/parse.h"

#define CONNECT_WAIT_MS 15000
#define PROGRESS_MS     250

static const char usage_text[] =
    "usage: netreel pcapdump [--time=5m | --since T [--until T]] [--dest DIR] [-o FILE|-]\n"
    "                        [--filter BPF] [--format pcapng|pcap] [--hub ADDR] [--strict]\n"
    "Takes a snapshot of the recording: every node's packets in the window, merged in time\n"
    "order by the hub, as one file. Without --time or --since: everything retained.\n"
    "\n"
    "  --time DUR        the last DUR (5m, 1h30m, 30s) up to now\n"
    "  --since T         from T (RFC 3339: 2026-11-26T06:30:00Z, 2026-11-26T07:30:00+01:00) ...\n"
    "  --until T         ... up to T (default: now)\n"
    "  --dest DIR        write DIR/netreel-<start>-<end>.pcapng (UTC; default: this folder)\n"
    "  -o, --output F    write F instead; \"-\" streams to stdout (| wireshark -k -i -)\n"
    "  --filter BPF      only the packets this expression matches (applied on every node)\n"
    "  --format F        pcapng (default) or pcap (classic, nanosecond; one link type)\n"
    "  --snaplen N       cut every packet to N bytes\n"
    "  --strict          fail (exit 3, no file) when a store is missing from the snapshot\n"
    "%s"
    "  --help\n"
    "\n"
    "The file appears under its name only when it is complete; a failure leaves none.\n"
    "Exit: 0 written (a missing store is named on stderr), 1 failed, 2 bad usage, 3 a store\n"
    "missing with --strict, 4 no hub and no kubectl or kube context, 130 interrupted.\n";

static struct {
    /* flags */
    const char *dest, *output, *filter;
    int64_t since, until;
    bool have_since, have_until, have_time, strict, pcap;
    uint32_t snaplen;
    struct cli_hub_opts hubopts;
    /* the run */
    struct cli_hub hub;
    uv_loop_t *loop;
    struct rpc_channel *ch;
    struct rpc_call *call;
    uv_timer_t progress, connect;
    uv_signal_t sigint, sigterm;
    int fd;
    char part[PATH_MAX];
    uint64_t received;
    bool got_message, progress_shown, interrupted, timed_out;
    int write_errno;
    int64_t started_ms;
    Netreel__V1__FileChunk *last; /* the message that carried the summary */
    int status;
    char message[1024];
} s;

static int64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t wall_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---- flags ---- */

static int parse_flags(int argc, char **argv)
{
    static const struct option opts[] = {
        {"time", required_argument, NULL, 't'},
        {"since", required_argument, NULL, 'S'},
        {"until", required_argument, NULL, 'U'},
        {"dest", required_argument, NULL, 'd'},
        {"output", required_argument, NULL, 'o'},
        {"filter", required_argument, NULL, 'f'},
        {"format", required_argument, NULL, 'F'},
        {"snaplen", required_argument, NULL, 'n'},
        {"strict", no_argument, NULL, 's'},
        {"help", no_argument, NULL, 'h'},
        CLI_HUB_LONGOPTS,
        {NULL, 0, NULL, 0},
    };
    char err[256];
    int64_t dur = 0;
    int c;

    opterr = 0;
    while ((c = getopt_long(argc, argv, ":o:h", opts, NULL)) != -1) {
        if (cli_hub_opt(&s.hubopts, c, optarg))
            continue;
        switch (c) {
        case 't':
            if (nr_parse_duration(optarg, &dur, err, sizeof(err)) != 0)
                return cli_error(CLI_EXIT_USAGE, "pcapdump: --time: %s", err);
            if (dur <= 0)
                return cli_error(CLI_EXIT_USAGE, "pcapdump: --time: must be above zero (5m)");
            s.have_time = true;
            break;
        case 'S':
            if (nr_parse_time(optarg, &s.since, err, sizeof(err)) != 0)
                return cli_error(CLI_EXIT_USAGE, "pcapdump: --since: %s", err);
            s.have_since = true;
            break;
        case 'U':
            if (nr_parse_time(optarg, &s.until, err, sizeof(err)) != 0)
                return cli_error(CLI_EXIT_USAGE, "pcapdump: --until: %s", err);
            s.have_until = true;
            break;
        case 'd': s.dest = optarg; break;
        case 'o': s.output = optarg; break;
        case 'f': s.filter = optarg; break;
        case 'F':
            if (strcmp(optarg, "pcap") == 0)
                s.pcap = true;
            else if (strcmp(optarg, "pcapng") == 0)
                s.pcap = false;
            else
                return cli_error(CLI_EXIT_USAGE, "pcapdump: --format \"%s\": pcapng or pcap",
                                 optarg);
            break;
        case 'n': {
            char *end;
            unsigned long v;
            errno = 0;
            v = strtoul(optarg, &end, 10);
            if (errno || end == optarg || *end || optarg[0] == '-' || v == 0 || v > 0x7fffffff)
                return cli_error(CLI_EXIT_USAGE,
                                 "pcapdump: --snaplen \"%s\": a number of bytes above zero",
                                 optarg);
            s.snaplen = (uint32_t)v;
            break;
        }
        case 's': s.strict = true; break;
        case 'h': printf(usage_text, cli_hub_usage); exit(CLI_EXIT_OK);
        default: return cli_bad_option("pcapdump", c, argv);
        }
    }
    if (optind != argc)
        return cli_error(CLI_EXIT_USAGE,
                         "pcapdump: unexpected argument \"%s\" (netreel "
                         "pcapdump --help)",
                         argv[optind]);
    if (s.have_time && (s.have_since || s.have_until))
        return cli_error(CLI_EXIT_USAGE,
                         "pcapdump: --time is the last DUR up to now: it goes without --since "
                         "and --until");
    if (s.have_until && !s.have_since)
        return cli_error(CLI_EXIT_USAGE, "pcapdump: --until needs --since (or use --time)");
    if (s.dest && s.output)
        return cli_error(CLI_EXIT_USAGE,
                         "pcapdump: --dest and -o exclude each other (-o names the file itself)");
    if (s.output && !s.output[0])
        return cli_error(CLI_EXIT_USAGE, "pcapdump: -o needs a file name or \"-\"");
    if (s.filter && strlen(s.filter) > 64 * 1024)
        return cli_error(CLI_EXIT_USAGE, "pcapdump: --filter is longer than 64 KiB");
    /* The window: absolute nanoseconds, as the hub wants them. */
    if (!s.have_until)
        s.until = wall_ns();
    if (s.have_time)
        s.since = s.until - dur > 0 ? s.until - dur : 1;
    if (s.have_since && s.since > s.until)
        return cli_error(CLI_EXIT_USAGE, "pcapdump: --since is after --until");
    return cli_hub_opts_check("pcapdump", &s.hubopts);
}

/* ---- the output ---- */

static bool to_stdout(void)
{
    return s.output && strcmp(s.output, "-") == 0;
}

static void remove_part(void);

/* What can be checked before the hub is asked: the folder, and stdout not a terminal. */
static int check_output(void)
{
    const char *dir = s.dest ? s.dest : ".";
    struct stat st;

    if (to_stdout()) {
        if (isatty(1))
            return cli_error(CLI_EXIT_USAGE,
                             "pcapdump: -o - would write a capture to this "
                             "terminal: pipe it (-o - | wireshark -k -i -) or give a file");
        return 0;
    }
    if (s.output)
        return 0;
    if (stat(dir, &st) != 0)
        return cli_error(CLI_EXIT_FAIL, "pcapdump: --dest %s: %s", dir, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return cli_error(CLI_EXIT_FAIL, "pcapdump: --dest %s is not a folder", dir);
    return 0;
}

static int open_output(void)
{
    const char *dir = s.dest ? s.dest : ".";
    mode_t um;

    if (to_stdout()) {
        s.fd = 1;
        return 0;
    }
    if (s.output)
        snprintf(s.part, sizeof(s.part), "%s.XXXXXX.part", s.output);
    else
        snprintf(s.part, sizeof(s.part), "%s/netreel-XXXXXX.part", dir);
    s.fd = mkostemps(s.part, 5, O_CLOEXEC);
    if (s.fd < 0) {
        int e = errno;
        s.part[0] = 0;
        return cli_error(CLI_EXIT_FAIL, "pcapdump: cannot create %s: %s", s.output ? s.output : dir,
                         strerror(e));
    }
    /* mkstemp makes 0600; a capture gets what tcpdump -w gives it (0666 less the umask). */
    um = umask(0);
    umask(um);
    if (fchmod(s.fd, 0666 & ~um) != 0) {
        int e = errno;
        remove_part();
        return cli_error(CLI_EXIT_FAIL, "pcapdump: cannot set the file's mode: %s", strerror(e));
    }
    return 0;
}

static void remove_part(void)
{
    if (s.fd > 1)
        close(s.fd);
    s.fd = -1;
    if (s.part[0])
        unlink(s.part);
    s.part[0] = 0;
}

static int write_all(const uint8_t *p, size_t n)
{
    while (n) {
        ssize_t w = write(s.fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static void stamp(int64_t ns, char *buf, size_t len)
{
    time_t t = (time_t)(ns / 1000000000);
    struct tm tm;

    gmtime_r(&t, &tm);
    strftime(buf, len, "%Y%m%dT%H%M%SZ", &tm);
}

/* Renames the .part to DIR/netreel-<start>-<end>.EXT, never over an existing file ("-2"... then).
 */
static int place_default(char *final, size_t len, int64_t start, int64_t end)
{
    const char *dir = s.dest ? s.dest : ".";
    const char *ext = s.pcap ? "pcap" : "pcapng";
    char a[32], b[32];

    stamp(start, a, sizeof(a));
    stamp(end, b, sizeof(b));
    for (int i = 1; i < 1000; i++) {
        if (i == 1)
            snprintf(final, len, "%s/netreel-%s-%s.%s", dir, a, b, ext);
        else
            snprintf(final, len, "%s/netreel-%s-%s-%d.%s", dir, a, b, i, ext);
        if (renameat2(AT_FDCWD, s.part, AT_FDCWD, final, RENAME_NOREPLACE) == 0)
            return 0;
        if (errno == EINVAL || errno == ENOSYS) { /* a file system without NOREPLACE */
            if (access(final, F_OK) == 0)
                continue;
            return rename(s.part, final) == 0 ? 0 : -errno;
        }
        if (errno != EEXIST)
            return -errno;
    }
    return -EEXIST;
}

static void sync_dir(const char *path)
{
    char dir[PATH_MAX];
    char *slash;
    int fd;

    snprintf(dir, sizeof(dir), "%s", path);
    slash = strrchr(dir, '/');
    if (slash)
        *slash = 0;
    else
        snprintf(dir, sizeof(dir), ".");
    if (!dir[0])
        snprintf(dir, sizeof(dir), "/");
    fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

/* ---- the call ---- */

static void clear_progress(void)
{
    if (s.progress_shown) {
        fputs("\r\033[K", stderr);
        s.progress_shown = false;
    }
}

static void on_progress(uv_timer_t *t)
{
    char size[32], rate[32];
    int64_t ms = mono_ms() - s.started_ms;

    nr_format_size(s.received, size, sizeof(size));
    nr_format_size(ms > 0 ? (uint64_t)((double)s.received * 1000.0 / (double)ms) : 0, rate,
                   sizeof(rate));
    fprintf(stderr, "\r\033[Knetreel: %s received (%s/s) from %s", size, rate, s.hub.target);
    s.progress_shown = true;
}

static void on_connect_timeout(uv_timer_t *t)
{
    if (!s.got_message && s.call && !rpc_channel_connected(s.ch)) {
        s.timed_out = true;
        rpc_call_cancel(s.call);
    }
}

static void on_signal(uv_signal_t *sig, int signum)
{
    s.interrupted = true;
    if (s.call)
        rpc_call_cancel(s.call);
}

static void on_message(struct rpc_call *call, const uint8_t *msg, size_t len, void *user)
{
    Netreel__V1__FileChunk *c = netreel__v1__file_chunk__unpack(NULL, len, msg);
    int rc;

    s.got_message = true;
    if (!c) {
        snprintf(s.message, sizeof(s.message), "a FileChunk from the hub does not parse");
        s.status = RPC_INTERNAL;
        rpc_call_cancel(call);
        return;
    }
    if (s.last) { /* a summary before the end: only the last one counts */
        netreel__v1__file_chunk__free_unpacked(s.last, NULL);
        s.last = NULL;
    }
    rc = write_all(c->data.data, c->data.len);
    if (rc != 0) {
        s.write_errno = -rc;
        netreel__v1__file_chunk__free_unpacked(c, NULL);
        rpc_call_cancel(call);
        return;
    }
    s.received += c->data.len;
    if (c->summary)
        s.last = c;
    else
        netreel__v1__file_chunk__free_unpacked(c, NULL);
}

static void close_handle(uv_handle_t *h)
{
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static void on_done(struct rpc_call *call, int code, const char *message, void *user)
{
    s.call = NULL;
    if (s.status == 0) {
        s.status = code;
        snprintf(s.message, sizeof(s.message), "%s", message);
    }
    close_handle((uv_handle_t *)&s.progress);
    close_handle((uv_handle_t *)&s.connect);
    close_handle((uv_handle_t *)&s.sigint);
    close_handle((uv_handle_t *)&s.sigterm);
    rpc_channel_close(s.ch, NULL, NULL);
}

static int run_call(void)
{
    Netreel__V1__SnapshotRequest req = NETREEL__V1__SNAPSHOT_REQUEST__INIT;
    struct rpc_call_opts co = {0};
    static const struct rpc_call_cbs cbs = {.on_message = on_message, .on_done = on_done};
    char err[512];

    s.loop = uv_default_loop();
    s.ch = cli_hub_channel(s.loop, &s.hub, err, sizeof(err));
    if (!s.ch)
        return cli_error(CLI_EXIT_USAGE, "pcapdump: %s", err);
    req.since_ns = s.since;
    req.until_ns = s.until;
    req.filter = (char *)(s.filter ? s.filter : "");
    req.format = s.pcap ? NETREEL__V1__FORMAT__FORMAT_PCAP : NETREEL__V1__FORMAT__FORMAT_PCAPNG;
    req.snaplen = s.snaplen;
    co.path = "/netreel.v1.Hub/Snapshot";
    co.shape = RPC_SHAPE_SERVER_STREAM;
    co.max_recv_size = 64u << 20;
    co.metadata = cli_hub_metadata(&s.hub);
    uv_timer_init(s.loop, &s.progress);
    uv_timer_init(s.loop, &s.connect);
    uv_signal_init(s.loop, &s.sigint);
    uv_signal_init(s.loop, &s.sigterm);
    uv_signal_start(&s.sigint, on_signal, SIGINT);
    uv_signal_start(&s.sigterm, on_signal, SIGTERM);
    {
        sigset_t stop;
        sigemptyset(&stop);
        sigaddset(&stop, SIGINT);
        sigaddset(&stop, SIGTERM);
        sigprocmask(SIG_UNBLOCK, &stop, NULL);
    }
    uv_timer_start(&s.connect, on_connect_timeout, CONNECT_WAIT_MS, 0);
    if (isatty(2))
        uv_timer_start(&s.progress, on_progress, PROGRESS_MS, PROGRESS_MS);
    s.started_ms = mono_ms();
    s.call = rpc_channel_call(s.ch, &co, &cbs, NULL);
    if (!s.call || rpc_call_send(s.call, &req.base) != 0 || rpc_call_close_send(s.call) != 0) {
        s.status = RPC_INTERNAL;
        snprintf(s.message, sizeof(s.message), "cannot start the call (out of memory)");
        if (s.call)
            rpc_call_cancel(s.call);
        else
            on_done(NULL, RPC_INTERNAL, s.message, NULL);
    }
    uv_run(s.loop, UV_RUN_DEFAULT);
    clear_progress();
    uv_loop_close(s.loop);
    return 0;
}

/* ---- the result ---- */

/* Names every store the summary says is missing; returns how many there are. */
static size_t report_missing(const Netreel__V1__SnapshotSummary *sum)
{
    size_t missing = 0;

    for (size_t i = 0; i < sum->n_stores; i++) {
        const Netreel__V1__StoreResult *r = sum->stores[i];
        if (r->ok)
            continue;
        missing++;
        if (r->node && r->node[0])
            cli_warn("node %s (store %s) is MISSING from the snapshot: %s", r->node, r->store,
                     r->error && r->error[0] ? r->error : "no reason given");
        else
            cli_warn("store %s is MISSING from the snapshot: %s", r->store,
                     r->error && r->error[0] ? r->error : "no reason given");
    }
    return missing;
}

static void closing_line(FILE *f, const char *path, const Netreel__V1__SnapshotSummary *sum,
                         size_t missing)
{
    char size[32], nodes[512] = "";
    size_t ok = 0, used = 0;

    nr_format_size(sum->bytes ? sum->bytes : s.received, size, sizeof(size));
    for (size_t i = 0; i < sum->n_stores; i++) {
        const Netreel__V1__StoreResult *r = sum->stores[i];
        const char *name = r->node && r->node[0] ? r->node : r->store;
        if (!r->ok)
            continue;
        ok++;
        if (used < sizeof(nodes))
            used += (size_t)snprintf(nodes + used, sizeof(nodes) - used, "%s%s", ok > 1 ? ", " : "",
                                     name);
    }
    if (used >= sizeof(nodes))
        snprintf(nodes + sizeof(nodes) - 5, 5, "...");
    fprintf(f, "%s: %" PRIu64 " packets, %s (%" PRIu64 " bytes), ", path, sum->packets, size,
            s.received);
    if (missing)
        fprintf(f, "%zu of %zu nodes (%s)\n", ok, ok + missing, nodes);
    else
        fprintf(f, "%zu node%s%s%s%s\n", ok, ok == 1 ? "" : "s", ok ? " (" : "", nodes,
                ok ? ")" : "");
    fflush(f);
}

static int finish(void)
{
    const Netreel__V1__SnapshotSummary *sum;
    char final[PATH_MAX];
    size_t missing;
    int64_t start;
    int rc;

    if (s.interrupted) {
        remove_part();
        return cli_error(CLI_EXIT_INTERRUPTED, "pcapdump: interrupted%s",
                         to_stdout() ? "" : ": no file written");
    }
    if (s.write_errno) {
        remove_part();
        return cli_error(CLI_EXIT_FAIL, "pcapdump: cannot write %s: %s",
                         to_stdout() ? "to stdout"
                         : s.output  ? s.output
                                     : "the file",
                         strerror(s.write_errno));
    }
    if (s.timed_out) {
        remove_part();
        return cli_error(CLI_EXIT_FAIL,
                         "pcapdump: cannot reach the hub at %s (%s): no connection within %d s",
                         s.hub.target, s.hub.how, CONNECT_WAIT_MS / 1000);
    }
    if (s.status != RPC_OK) {
        remove_part();
        return cli_hub_failed(&s.hub, "pcapdump", s.status, s.message);
    }
    if (!s.last) {
        remove_part();
        return cli_error(CLI_EXIT_FAIL,
                         "pcapdump: the hub at %s ended the snapshot without "
                         "its summary: the file would be incomplete, none written",
                         s.hub.target);
    }
    sum = s.last->summary;
    missing = report_missing(sum);
    if (missing && s.strict) {
        remove_part();
        return cli_error(CLI_EXIT_INCOMPLETE,
                         "pcapdump: %zu store%s missing and --strict: no file written", missing,
                         missing == 1 ? " is" : "s are");
    }
    if (to_stdout()) {
        closing_line(stderr, "stdout", sum, missing);
        return CLI_EXIT_OK;
    }
    if (fsync(s.fd) != 0 || close(s.fd) != 0) {
        int e = errno;
        s.fd = -1;
        remove_part();
        return cli_error(CLI_EXIT_FAIL, "pcapdump: cannot write the file: %s", strerror(e));
    }
    s.fd = -1;
    if (s.output) {
        snprintf(final, sizeof(final), "%s", s.output);
        rc = rename(s.part, final) == 0 ? 0 : -errno;
    } else {
        start = s.since > 0 ? s.since : sum->since_ns > 0 ? sum->since_ns : s.until;
        rc = place_default(final, sizeof(final), start, s.until);
    }
    if (rc != 0) {
        remove_part();
        return cli_error(CLI_EXIT_FAIL, "pcapdump: cannot rename the file to %s: %s", final,
                         strerror(-rc));
    }
    s.part[0] = 0;
    sync_dir(final);
    closing_line(stdout, final[0] == '.' && final[1] == '/' ? final + 2 : final, sum, missing);
    return CLI_EXIT_OK;
}

int cli_pcapdump(int argc, char **argv)
{
    sigset_t stop;
    int rc;

    memset(&s, 0, sizeof(s));
    s.fd = -1;
    rc = parse_flags(argc, argv);
    if (rc != 0)
        return rc;
    rc = check_output();
    if (rc != 0)
        return rc;
    /* Ctrl-C while the hub is being found (kubectl) waits for the loop's handler, which then
     * cleans up: no port-forward or certificate is left behind. */
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    sigprocmask(SIG_BLOCK, &stop, NULL);
    rc = cli_hub_find(&s.hubopts, &s.hub);
    if (rc == 0)
        rc = open_output();
    if (rc == 0)
        rc = run_call();
    if (rc == 0)
        rc = finish();
    else
        remove_part();
    if (s.last)
        netreel__v1__file_chunk__free_unpacked(s.last, NULL);
    cli_hub_release(&s.hub);
    return rc;
}
