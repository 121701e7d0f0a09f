/* netreel pcapdump: one snapshot of every node as one file (docs/design.md §5, §7). The hub
 * streams the file's bytes; they go to DIR/netreel-<start>-<end>.pcapng through a .part file that
 * becomes the final name only after the hub's last message said the file is whole, and after fsync.
 * Every file is made relative to one descriptor of DIR, never replaces a file without --force,
 * and is named only from the flags and the CLI's own time stamps, never from the network. */
#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/random.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "args.h"
#include "cli.h"
#include "hub.h"
#include "netreel/v1/hub.pb-c.h"
#include "rpc/status.h"
#include "util/error.h"
#include "util/parse.h"

#define CONNECT_WAIT_MS 15000
#define PROGRESS_MS     250
#define STOP_WAIT_MS    30000 /* --follow: how long the hub has to end the file once asked */

static const char usage_text[] =
    "usage: netreel pcapdump [--time=5m | --since T [--until T]] [--dest DIR] [-o FILE|-]\n"
    "                        [--force] [--filter BPF] [--format pcapng|pcap] [--hub ADDR]\n"
    "                        [--sightings one|all] [--clock aligned|raw] [--strict]\n"
    "                        [-n NS]... [--pod REGEX] [-l SELECTOR]\n"
    "                        [--follow [--lateness DUR]] [-q]\n"
    "Takes a snapshot of the recording: every node's packets in the window, merged in time\n"
    "order by the hub, as one file. Without --time or --since: everything retained (with\n"
    "--follow: from now).\n"
    "\n"
    "  --time DUR        the last DUR (5m, 1h30m, 30s) up to now\n"
    "  --since T         from T (RFC 3339: 2026-11-26T06:30:00Z, 2026-11-26T07:30:00+01:00) ...\n"
    "  --until T         ... up to T (default: now)\n"
    "  --dest DIR        write DIR/netreel-<start>-<end>.pcapng (UTC; default: this folder)\n"
    "  -o, --output F    write F instead (with --dest: a file name inside DIR); \"-\" streams\n"
    "                    to stdout (| wireshark -k -i -)\n"
    "  --force           replace a file of that name (without: an existing -o F is an error,\n"
    "                    and the default name gets -2, -3, ...)\n"
    "  --filter BPF      only the packets this expression matches (applied on every node)\n"
    "  --format F        pcapng (default) or pcap (classic, nanosecond; one link type)\n"
    "  --snaplen N       cut every packet to N bytes\n"
    "  --sightings S     one (default): each packet once, as the sending side saw it, where\n"
    "                    nodes and devices saw it several times; all: every sighting, copies\n"
    "                    of one packet sharing a packet id (Wireshark's frame.packet_id)\n"
    "  -n, --namespace NS  only packets sent or received by pods of namespace NS (repeat, or\n"
    "                    NS1,NS2), as the pods were when each packet was seen\n"
    "  --pod REGEX       ... by pods whose name matches (PCRE2, unanchored)\n"
    "  -l, --selector S  ... by pods whose labels match (kubectl's syntax: app=web,tier!=db)\n"
    "  --clock C         aligned (default): every node's timestamps on one clock, offsets\n"
    "                    measured from the traffic between nodes; raw: each node's own\n"
    "  --strict          fail (exit 3, no file) when a store is missing from the snapshot\n"
    "  --follow          after the window, go on with the packets the nodes record from now\n"
    "                    on, in time order, until Ctrl-C (or the reader closes the pipe):\n"
    "                    netreel pcapdump --time=5m --follow | wireshark -k -i -\n"
    "  --lateness DUR    with --follow: how long a packet may wait for a node that is silent\n"
    "                    (default 1s); a packet later than that is counted, not written\n"
    "  -q, --quiet       no closing line (errors and missing nodes are still said)\n"
    "%s"
    "  --help\n"
    "\n"
    "The file (mode 0600) appears under its name only when it is complete; a failure leaves\n"
    "none.\n"
    "Exit: 0 written (a missing store is named on stderr), 1 failed, 2 bad usage, 3 a store\n"
    "missing with --strict, or every store missing, 4 no hub and no kubectl or kube context,\n"
    "130 interrupted.\n";

static struct {
    struct cli_pcapdump_args a;
    /* the run */
    struct cli_hub hub;
    uv_loop_t *loop;
    struct rpc_channel *ch;
    struct rpc_call *call;
    uv_timer_t progress, connect;
    uv_signal_t sigint, sigterm;
    int fd, dirfd;
    char dir[PATH_MAX]; /* the folder, as given (for messages) */
    const char *name;   /* -o's file name in it, or NULL: the default name */
    char part[NAME_MAX + 1];
    uint64_t received;
    bool got_message, progress_shown, interrupted, timed_out;
    bool stopping;    /* --follow: the end was asked for (Ctrl-C, the reader went) */
    bool reader_gone; /* --follow to a pipe whose reader closed it: the rest is dropped */
    uv_timer_t stop_wait;
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

/* ---- the output ---- */

static bool to_stdout(void)
{
    return s.a.output && strcmp(s.a.output, "-") == 0;
}

static void remove_part(void);

/* The folder and the name: --dest DIR [-o NAME], -o PATH, or this folder. */
static int split_output(void)
{
    const char *out = s.a.output;

    if (out && !s.a.dest) {
        const char *slash = strrchr(out, '/');
        if (slash) {
            snprintf(s.dir, sizeof(s.dir), "%.*s", slash == out ? 1 : (int)(slash - out), out);
            s.name = slash + 1;
        } else {
            snprintf(s.dir, sizeof(s.dir), ".");
            s.name = out;
        }
        if (!s.name[0] || strcmp(s.name, ".") == 0 || strcmp(s.name, "..") == 0)
            return cli_error(CLI_EXIT_USAGE, "pcapdump: -o %s names a folder: give a file", out);
        return 0;
    }
    snprintf(s.dir, sizeof(s.dir), "%s", s.a.dest ? s.a.dest : ".");
    s.name = out; /* with --dest, a plain name (args.c checked) */
    return 0;
}

/* The path to show for NAME in the folder. */
static void shown_path(const char *name, char *buf, size_t len)
{
    if (s.a.output && !s.a.dest)
        snprintf(buf, len, "%s", s.a.output);
    else if (!s.a.dest)
        snprintf(buf, len, "%s", name);
    else
        snprintf(buf, len, "%s%s%s", s.dir, s.dir[strlen(s.dir) - 1] == '/' ? "" : "/", name);
}

/* What can be checked before the hub is asked: the folder, an existing -o file (refused
 * without --force), stdout not a terminal. */
static int check_output(void)
{
    char shown[PATH_MAX + NAME_MAX + 2];
    struct stat st;
    int rc;

    if (to_stdout()) {
        if (isatty(1))
            return cli_error(CLI_EXIT_USAGE,
                             "pcapdump: -o - would write a capture to this "
                             "terminal: pipe it (-o - | wireshark -k -i -) or give a file");
        return 0;
    }
    if ((rc = split_output()) != 0)
        return rc;
    /* The folder is opened once: every file below is made in it, whatever its path turns into
     * meanwhile. */
    s.dirfd = open(s.dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (s.dirfd < 0) {
        int e = errno;
        if (s.a.dest && e == ENOTDIR)
            return cli_error(CLI_EXIT_FAIL, "pcapdump: --dest %s is not a folder", s.dir);
        if (s.a.dest)
            return cli_error(CLI_EXIT_FAIL, "pcapdump: --dest %s: %s", s.dir, strerror(e));
        if (s.name)
            return cli_error(CLI_EXIT_FAIL, "pcapdump: -o %s: the folder %s: %s", s.a.output, s.dir,
                             strerror(e));
        return cli_error(CLI_EXIT_FAIL, "pcapdump: this folder: %s", strerror(e));
    }
    if (s.name && fstatat(s.dirfd, s.name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
        shown_path(s.name, shown, sizeof(shown));
        if (S_ISDIR(st.st_mode))
            return cli_error(CLI_EXIT_FAIL, "pcapdump: %s is a folder: give a file name", shown);
        /* --force replaces a file by renaming the new one over it: over /dev/null, as root,
         * that would leave a regular file where the device was. */
        if (!S_ISREG(st.st_mode) && !S_ISLNK(st.st_mode))
            return cli_error(CLI_EXIT_FAIL,
                             "pcapdump: %s is not a file (a device, a pipe or a socket): -o "
                             "replaces only files; write to it with -o - > %s (nothing was "
                             "written)",
                             shown, shown);
        if (!s.a.force)
            return cli_error(CLI_EXIT_FAIL,
                             "pcapdump: %s exists: give --force to replace it (nothing was "
                             "written)",
                             shown);
    }
    return 0;
}

/* A new file NAME.XXXXXX.part (or netreel-XXXXXX.part) in the folder: O_EXCL and O_NOFOLLOW,
 * so never a file or a link that was there. */
static int make_part(void)
{
    static const char abc[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

    for (int tries = 0; tries < 100; tries++) {
        unsigned char r[6];
        char x[7];
        if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r))
            return -EIO;
        for (int i = 0; i < 6; i++)
            x[i] = abc[r[i] % (sizeof(abc) - 1)];
        x[6] = 0;
        if ((size_t)snprintf(s.part, sizeof(s.part), "%s%s%s.part", s.name ? s.name : "netreel",
                             s.name ? "." : "-", x) >= sizeof(s.part))
            return -ENAMETOOLONG;
        s.fd = openat(s.dirfd, s.part, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (s.fd >= 0)
            return 0;
        if (errno != EEXIST)
            return -errno;
    }
    return -EEXIST;
}

static int open_output(void)
{
    int rc;

    if (to_stdout()) {
        s.fd = 1;
        return 0;
    }
    rc = make_part();
    if (rc != 0) {
        s.part[0] = 0;
        s.fd = -1;
        return cli_error(CLI_EXIT_FAIL, "pcapdump: cannot create a file in %s: %s", s.dir,
                         nr_strerror(rc));
    }
    /* A capture holds whatever crossed the wire: 0600, whatever the umask. */
    if (fchmod(s.fd, 0600) != 0) {
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
    if (s.part[0] && s.dirfd >= 0)
        unlinkat(s.dirfd, s.part, 0);
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

/* 20261126T063000Z; a time gmtime cannot take is written as 0. */
static void stamp(int64_t ns, char *buf, size_t len)
{
    time_t t = (time_t)(ns / 1000000000);
    struct tm tm;

    if (!gmtime_r(&t, &tm) || tm.tm_year < 0 || tm.tm_year > 8099) {
        t = 0;
        gmtime_r(&t, &tm);
    }
    strftime(buf, len, "%Y%m%dT%H%M%SZ", &tm);
}

/* Renames the .part to name in the folder: never over a file without --force (RENAME_NOREPLACE,
 * or link + unlink where the file system lacks it), never over anything but a file or a link
 * with it. 0 or a negative errno (-EEXIST). */
static int place(const char *name)
{
    struct stat st;

    /* What appeared meanwhile is replaced only if it is a file (or a link): never a device. */
    if (s.a.force && fstatat(s.dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
        !S_ISREG(st.st_mode) && !S_ISLNK(st.st_mode))
        return -EEXIST;
    if (renameat2(s.dirfd, s.part, s.dirfd, name, s.a.force ? 0 : RENAME_NOREPLACE) == 0)
        return 0;
    if (!s.a.force && (errno == EINVAL || errno == ENOSYS)) {
        if (linkat(s.dirfd, s.part, s.dirfd, name, 0) != 0)
            return -errno;
        unlinkat(s.dirfd, s.part, 0);
        return 0;
    }
    return -errno;
}

/* netreel-<start>-<end>.EXT, or -2, -3... when that exists (without --force). */
static int place_default(char *name, size_t len, int64_t start, int64_t end)
{
    const char *ext = s.a.pcap ? "pcap" : "pcapng";
    char a[32], b[32];
    int rc = -EEXIST;

    stamp(start, a, sizeof(a));
    stamp(end, b, sizeof(b));
    for (int i = 1; i < 1000 && rc == -EEXIST; i++) {
        if (i == 1)
            snprintf(name, len, "netreel-%s-%s.%s", a, b, ext);
        else
            snprintf(name, len, "netreel-%s-%s-%d.%s", a, b, i, ext);
        rc = place(name);
    }
    return rc;
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

/* The hub did not end the follow in time after it was asked: what came is kept. */
static void on_stop_wait(uv_timer_t *t)
{
    if (s.call) {
        s.interrupted = true;
        rpc_call_cancel(s.call);
    }
}

/* --follow: asks the hub for the end (the file's end and the summary come, then the call
 * ends): the CLI's side of the call is closed. */
static void follow_stop(void)
{
    if (s.stopping || !s.call)
        return;
    s.stopping = true;
    if (rpc_call_close_send(s.call) != 0) {
        s.interrupted = true;
        rpc_call_cancel(s.call);
        return;
    }
    uv_timer_start(&s.stop_wait, on_stop_wait, STOP_WAIT_MS, 0);
}

static void on_signal(uv_signal_t *sig, int signum)
{
    if (s.a.follow && !s.stopping) { /* the first Ctrl-C ends a follow cleanly */
        follow_stop();
        return;
    }
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
    rc = s.reader_gone ? 0 : write_all(c->data.data, c->data.len);
    if (rc == -EPIPE && s.a.follow && to_stdout()) {
        /* The reader went (Wireshark stopped, `| head`): a follow ends, asked like Ctrl-C. */
        s.reader_gone = true;
        follow_stop();
    } else if (rc != 0) {
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
    close_handle((uv_handle_t *)&s.stop_wait);
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
    req.since_ns = s.a.since;
    req.until_ns = s.a.follow ? 0 : s.a.until;
    req.filter = (char *)(s.a.filter ? s.a.filter : "");
    req.format = s.a.pcap ? NETREEL__V1__FORMAT__FORMAT_PCAP : NETREEL__V1__FORMAT__FORMAT_PCAPNG;
    req.sightings = s.a.all_sightings ? NETREEL__V1__SIGHTINGS__SIGHTINGS_ALL
                                      : NETREEL__V1__SIGHTINGS__SIGHTINGS_ONE;
    req.clock = s.a.raw_clock ? NETREEL__V1__CLOCK__CLOCK_RAW : NETREEL__V1__CLOCK__CLOCK_ALIGNED;
    req.n_namespaces = s.a.n_namespaces;
    req.namespaces = (char **)s.a.namespaces;
    req.pod_regex = (char *)(s.a.pod_regex ? s.a.pod_regex : "");
    req.label_selector = (char *)(s.a.selector ? s.a.selector : "");
    req.snaplen = s.a.snaplen;
    req.follow = s.a.follow;
    req.lateness_ns = s.a.lateness;
    co.path = "/netreel.v1.Hub/Snapshot";
    co.shape = RPC_SHAPE_SERVER_STREAM;
    co.max_recv_size = 64u << 20;
    co.metadata = cli_hub_metadata(&s.hub);
    uv_timer_init(s.loop, &s.progress);
    uv_timer_init(s.loop, &s.connect);
    uv_timer_init(s.loop, &s.stop_wait);
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
    /* A follow keeps its side open: closing it is how the end is asked for. */
    if (!s.call || rpc_call_send(s.call, &req.base) != 0 ||
        (!s.a.follow && rpc_call_close_send(s.call) != 0)) {
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
        const char *why = r->error && r->error[0] ? r->error : "no reason given";
        char who[512], reached[40];
        if (r->node && r->node[0])
            snprintf(who, sizeof(who), "node %s (store %s)", r->node, r->store);
        else
            snprintf(who, sizeof(who), "store %s", r->store);
        /* Left out mid-stream: what it sent before is in the file, up to a time. */
        if (r->packets > 0 && r->reached_ns > 0 &&
            nr_format_time(r->reached_ns, 6, reached, sizeof(reached)) > 0)
            cli_warn("%s is CUT SHORT in the snapshot: its %llu packets up to %s are in, none "
                     "after: %s",
                     who, (unsigned long long)r->packets, reached, why);
        else
            cli_warn("%s is MISSING from the snapshot: %s", who, why);
    }
    return missing;
}

/* True when a store sent packets (one cut short mid-stream counts: its packets are in). */
static bool sent_any(const Netreel__V1__SnapshotSummary *sum)
{
    for (size_t i = 0; i < sum->n_stores; i++)
        if (sum->stores[i]->packets > 0)
            return true;
    return false;
}

/* One stderr line per node whose clock the hub measured against the reference's. */
static void report_clock(const Netreel__V1__SnapshotSummary *sum)
{
    char ref[256];

    if (!sum->clock_reference || !sum->clock_reference[0])
        return;
    snprintf(ref, sizeof(ref), "%s", sum->clock_reference);
    cli_sanitize(ref); /* the hub names them */
    for (size_t i = 0; i < sum->n_stores; i++) {
        const Netreel__V1__StoreResult *r = sum->stores[i];
        char node[256];
        if (!r->clock_known || !r->node || strcmp(r->node, sum->clock_reference) == 0)
            continue;
        snprintf(node, sizeof(node), "%s", r->node);
        cli_sanitize(node);
        fprintf(stderr,
                "netreel: clock of %s: %+.3f ms against %s (\xc2\xb1 %.3f ms, %" PRIu64
                " packets), taken off its timestamps\n",
                node, (double)r->clock_offset_ns / 1e6, ref, (double)r->clock_uncertainty_ns / 1e6,
                r->clock_samples);
    }
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
    cli_sanitize(nodes); /* the hub names them */
    if (s.a.quiet)
        return;
    fprintf(f, "%s: %" PRIu64 " packets, %s (%" PRIu64 " bytes), ", path, sum->packets, size,
            s.received);
    if (s.a.follow && (sum->late || sum->resumed))
        fprintf(f, "%" PRIu64 " late (over --lateness, left out), %" PRIu64 " resumed, ", sum->late,
                sum->resumed);
    if (s.a.follow && sum->lost_segments)
        fprintf(f,
                "%" PRIu64 " segments deleted by retention before they were read (GAPS: "
                "see the packet comments), ",
                sum->lost_segments);
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
    char final[PATH_MAX + NAME_MAX + 2], name[NAME_MAX + 1];
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
                         : s.name    ? s.name
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
    report_clock(sum);
    if (missing && missing == sum->n_stores && !sent_any(sum)) {
        /* Not a file of the cluster: a script must not take it for one. */
        remove_part();
        return cli_error(CLI_EXIT_INCOMPLETE, "pcapdump: no store answered (%zu missing)%s",
                         missing, to_stdout() ? "" : ": no file written");
    }
    if (missing && s.a.strict) {
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
    if (s.name) {
        snprintf(name, sizeof(name), "%s", s.name);
        rc = place(name);
    } else {
        /* The whole window starts at the oldest packet the summary reports: taken only as a
         * number inside the window, and written by stamp() as digits. */
        start = s.a.since > 0                                     ? s.a.since
                : sum->since_ns > 0 && sum->since_ns <= s.a.until ? sum->since_ns
                                                                  : s.a.until;
        rc = place_default(name, sizeof(name), start, s.a.follow ? wall_ns() : s.a.until);
    }
    shown_path(name, final, sizeof(final));
    if (rc != 0) {
        remove_part();
        if (rc == -EEXIST && s.a.force)
            return cli_error(CLI_EXIT_FAIL,
                             "pcapdump: %s appeared while the snapshot ran and is not a file: "
                             "it is left as it is (no file written)",
                             final);
        if (rc == -EEXIST)
            return cli_error(CLI_EXIT_FAIL,
                             "pcapdump: %s appeared while the snapshot ran: give --force to "
                             "replace it (no file written)",
                             final);
        return cli_error(CLI_EXIT_FAIL, "pcapdump: cannot rename the file to %s: %s", final,
                         nr_strerror(rc));
    }
    s.part[0] = 0;
    fsync(s.dirfd);
    closing_line(stdout, final, sum, missing);
    return CLI_EXIT_OK;
}

int cli_pcapdump(int argc, char **argv)
{
    sigset_t stop;
    int rc;

    memset(&s, 0, sizeof(s));
    s.fd = -1;
    s.dirfd = -1;
    rc = cli_pcapdump_args_parse(argc, argv, wall_ns(), &s.a);
    if (rc == CLI_ARGS_HELP) {
        printf(usage_text, cli_hub_usage);
        return CLI_EXIT_OK;
    }
    if (rc != 0)
        return rc;
    if (s.a.follow) /* a reader that goes ends a follow (EPIPE), it does not kill it */
        signal(SIGPIPE, SIG_IGN);
    rc = check_output();
    if (rc != 0) {
        if (s.dirfd >= 0)
            close(s.dirfd);
        return rc;
    }
    /* Ctrl-C while the hub is being found (kubectl) waits for the loop's handler, which then
     * cleans up: no port-forward or certificate is left behind. */
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    sigprocmask(SIG_BLOCK, &stop, NULL);
    rc = cli_hub_find(&s.a.hub, &s.hub);
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
    if (s.dirfd >= 0)
        close(s.dirfd);
    return rc;
}
