/* netreel as Wireshark's capture interface "netreel: cluster" (extcap.h). The answers to
 * Wireshark's questions are constant text; a capture checks what Wireshark passed, translates it
 * into pcapdump's command line, puts the fifo on stdout and execs this program as pcapdump, which
 * then owns the signals Wireshark sends and the end of the stream. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <pcap/pcap.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "args.h"
#include "cli.h"
#include "extcap.h"
#include "kube/selector.h"
#include "kube/target.h"
#include "util/addr.h"
#include "util/error.h"
#include "util/parse.h"
#include "util/version.h"

#define LINKTYPE_ETHERNET   1
#define LINKTYPE_LINUX_SLL2 276
#define DURATION_MAX        64   /* bytes of a duration's text */
#define RELEASE_WAIT_MS     1000 /* how long a refused capture waits for Wireshark's reader */

/* ---- what Wireshark is told ---- */

/* The pcapng holds one IDB per node interface: LINUX_SLL2 for "any" (the chart's default), and
 * Ethernet for named devices. Wireshark takes each packet's link type from its IDB; this one is
 * what its dialogs show and the link type most of a recording has. */
static const char dlts_text[] = "dlt {number=276}{name=LINUX_SLL2}{display=Linux cooked v2, "
                                "with Ethernet where a node records a named device}\n";

/* Validation patterns are anchored (Wireshark takes a match anywhere) and hold no braces (the
 * extcap grammar ends a value at "}{"). */
#define RE_DURATION "([0-9]+(\\.[0-9]+)?(ns|us|ms|s|m|h|d))+"

static const char config_text[] =
    "arg {number=0}{call=--time}{display=Start from}{type=string}"
    "{tooltip=Start this far back in the recording (30s, 5m, 1h30m), then go on live. Empty: "
    "from now}{placeholder=5m}{validation=^" RE_DURATION "$}{group=Window}\n"
    "arg {number=1}{call=--lateness}{display=Lateness}{type=string}{default=1s}"
    "{tooltip=How late a node's packets may reach the hub and still go out in time order "
    "(pcapdump --lateness)}{validation=^(" RE_DURATION ")$}{group=Window}\n"
    "arg {number=2}{call=--clock}{display=Clock}{type=radio}"
    "{tooltip=aligned: every node's timestamps on one clock, offsets measured from the traffic "
    "between nodes. raw: each node's own}{group=Window}\n"
    "value {arg=2}{value=aligned}{display=aligned: one clock for every node}{default=true}\n"
    "value {arg=2}{value=raw}{display=raw: each node's own clock}{default=false}\n"
    "arg {number=3}{call=--filter}{display=BPF filter}{type=string}"
    "{tooltip=Only the packets this expression matches (tcpdump syntax), applied on every node. "
    "A capture filter given to Wireshark applies too: a packet must match both}"
    "{placeholder=tcp port 443}{group=Packets}\n"
    "arg {number=4}{call=--sightings}{display=Sightings}{type=selector}"
    "{tooltip=A packet between pods is seen on several nodes and devices. one: each packet once, "
    "as its sender saw it. all: every sighting, copies sharing a packet id (frame.packet_id)}"
    "{group=Packets}\n"
    "value {arg=4}{value=one}{display=one: each packet once}{default=true}\n"
    "value {arg=4}{value=all}{display=all: every sighting}{default=false}\n"
    "arg {number=5}{call=--namespace}{display=Namespaces}{type=string}"
    "{tooltip=Only packets sent or received by pods of these namespaces (a,b), as the pods were "
    "when each packet was seen}{placeholder=default,shop}{validation=^[-a-z0-9, ]*$}"
    "{group=Pods}\n"
    "arg {number=6}{call=--pod}{display=Pod name}{type=string}"
    "{tooltip=... by pods whose name matches this regular expression (PCRE2, unanchored)}"
    "{placeholder=^web-}{group=Pods}\n"
    "arg {number=7}{call=--selector}{display=Label selector}{type=string}"
    "{tooltip=... by pods whose labels match (kubectl's -l syntax: app=web,tier!=db)}"
    "{placeholder=app=web}{group=Pods}\n"
    "arg {number=8}{call=--hub}{display=Hub}{type=string}"
    "{tooltip=The hub as host:port. Empty: $NETREEL_HUB, else the hub of a local netreel tap "
    "--local, else kubectl port-forward in the current kube context (netreel pcapdump --help)}"
    "{placeholder=127.0.0.1:8898}{validation=^\\S+:[0-9]+$}{group=Hub}\n";

/* ---- the parser ---- */

enum {
    OPT_INTERFACES = 1000,
    OPT_VERSION,
    OPT_DLTS,
    OPT_CONFIG,
    OPT_CAPTURE,
    OPT_CLEANUP,
    OPT_INTERFACE,
    OPT_FIFO,
    OPT_CAPTURE_FILTER,
    OPT_IGNORED,      /* Wireshark's, with a value: taken and ignored */
    OPT_IGNORED_FLAG, /* ... without */
    OPT_TIME,
    OPT_LATENESS,
    OPT_FILTER,
    OPT_NAMESPACE,
    OPT_POD,
    OPT_SELECTOR,
    OPT_HUB,
    OPT_SIGHTINGS,
    OPT_CLOCK,
};

static const struct option opts[] = {
    {"extcap-interfaces", no_argument, NULL, OPT_INTERFACES},
    {"extcap-version", optional_argument, NULL, OPT_VERSION},
    {"extcap-dlts", no_argument, NULL, OPT_DLTS},
    {"extcap-config", no_argument, NULL, OPT_CONFIG},
    {"capture", no_argument, NULL, OPT_CAPTURE},
    {"extcap-cleanup-postkill", no_argument, NULL, OPT_CLEANUP},
    {"extcap-interface", required_argument, NULL, OPT_INTERFACE},
    {"fifo", required_argument, NULL, OPT_FIFO},
    {"extcap-capture-filter", required_argument, NULL, OPT_CAPTURE_FILTER},
    {"extcap-control-in", required_argument, NULL, OPT_IGNORED},
    {"extcap-control-out", required_argument, NULL, OPT_IGNORED},
    {"log-level", required_argument, NULL, OPT_IGNORED},
    {"log-file", required_argument, NULL, OPT_IGNORED},
    {"debug-file", required_argument, NULL, OPT_IGNORED},
    {"debug", no_argument, NULL, OPT_IGNORED_FLAG},
    {"time", required_argument, NULL, OPT_TIME},
    {"lateness", required_argument, NULL, OPT_LATENESS},
    {"filter", required_argument, NULL, OPT_FILTER},
    {"namespace", required_argument, NULL, OPT_NAMESPACE},
    {"pod", required_argument, NULL, OPT_POD},
    {"selector", required_argument, NULL, OPT_SELECTOR},
    {"hub", required_argument, NULL, OPT_HUB},
    {"sightings", required_argument, NULL, OPT_SIGHTINGS},
    {"clock", required_argument, NULL, OPT_CLOCK},
    {NULL, 0, NULL, 0},
};

bool cli_extcap_wanted(int argc, char **argv)
{
    /* Wireshark puts its question first, but nothing says it must. */
    if (argc < 2 || argv[1][0] != '-')
        return false;
    for (int i = 1; i < argc; i++)
        if (strncmp(argv[i], "--extcap-", 9) == 0 || strcmp(argv[i], "--capture") == 0)
            return true;
    return false;
}

/* A value's length and bytes: no control character (Wireshark's fields are one line). */
static int text_ok(const char *flag, const char *v, size_t max)
{
    size_t n = strnlen(v, max + 1);

    if (n > max)
        return cli_error(CLI_EXIT_USAGE, "extcap: %s: longer than %zu bytes", flag, max);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)v[i] < 0x20 || v[i] == 0x7f)
            return cli_error(CLI_EXIT_USAGE, "extcap: %s: a control character at byte %zu", flag,
                             i);
    return 0;
}

static int duration_ok(const char *flag, const char *v, bool zero_ok)
{
    char err[256];
    int64_t ns;
    int rc = text_ok(flag, v, DURATION_MAX);

    if (rc != 0)
        return rc;
    if (nr_parse_duration(v, &ns, err, sizeof(err)) != 0)
        return cli_error(CLI_EXIT_USAGE, "extcap: %s: %s", flag, err);
    if (ns == 0 && !zero_ok)
        return cli_error(CLI_EXIT_USAGE, "extcap: %s: must be above zero (5m), or empty", flag);
    return 0;
}

/* Adds "a, b,,c" to a->ns_buf as "a,b,c" (spaces around names and empty items left out). */
static int add_namespaces(struct cli_extcap_args *a, const char *v)
{
    size_t used = strlen(a->ns_buf), count = 0;

    for (const char *p = a->ns_buf; *p; p++)
        count += *p == ',';
    count += used > 0;
    while (*v) {
        size_t len = strcspn(v, ","), lead = strspn(v, " "), n;
        const char *name = v + (lead < len ? lead : len);
        for (n = len - (size_t)(name - v); n > 0 && name[n - 1] == ' '; n--)
            ;
        if (n > 0) {
            if (!cli_namespace_name(name, n))
                return cli_error(CLI_EXIT_USAGE,
                                 "extcap: --namespace: \"%.*s\" is not a namespace name "
                                 "(lower-case letters, digits and '-', at most 63)",
                                 (int)(n > 100 ? 100 : n), name);
            if (++count > CLI_MAX_NAMESPACES)
                return cli_error(CLI_EXIT_USAGE, "extcap: --namespace: at most %d namespaces",
                                 CLI_MAX_NAMESPACES);
            if (used + n + 2 > sizeof(a->ns_buf))
                return cli_error(CLI_EXIT_USAGE, "extcap: --namespace: longer than %d bytes",
                                 CLI_EXTCAP_VALUE_MAX);
            used += (size_t)snprintf(a->ns_buf + used, sizeof(a->ns_buf) - used, "%s%.*s",
                                     used ? "," : "", (int)n, name);
        }
        v += len + (v[len] == ',');
    }
    a->namespaces = used ? a->ns_buf : NULL;
    return 0;
}

static int selector_ok(const char *v)
{
    struct kube_label_selector *sel = malloc(sizeof(*sel));
    char err[512];
    int rc = 0;

    if (!sel)
        return cli_error(CLI_EXIT_USAGE, "extcap: --selector: out of memory");
    if (kube_label_selector_parse(v, sel, err, sizeof(err)) != 0)
        rc = cli_error(CLI_EXIT_USAGE, "extcap: --selector: %s", err);
    free(sel);
    return rc;
}

static int hub_ok(const char *v)
{
    char host[256], err[256];
    uint16_t port;

    if (nr_addr_split(v, host, sizeof(host), &port, err, sizeof(err)) != 0)
        return cli_error(CLI_EXIT_USAGE, "extcap: --hub: %s", err);
    if (!host[0])
        return cli_error(CLI_EXIT_USAGE, "extcap: --hub \"%s\": give a host (127.0.0.1:8898)", v);
    return 0;
}

/* v if it is one of the two words, else the error. */
static int word_ok(const char *flag, const char *v, const char *w1, const char *w2,
                   const char **out)
{
    if (strcmp(v, w1) != 0 && strcmp(v, w2) != 0)
        return cli_error(CLI_EXIT_USAGE, "extcap: %s \"%.64s\": %s or %s", flag, v, w1, w2);
    *out = v;
    return 0;
}

static int set_action(struct cli_extcap_args *a, enum cli_extcap_action action)
{
    /* --extcap-version goes with every other action (Wireshark adds it to --extcap-interfaces). */
    if (action == CLI_EXTCAP_VERSION && a->action != CLI_EXTCAP_NONE)
        return 0;
    if (a->action != CLI_EXTCAP_NONE && a->action != CLI_EXTCAP_VERSION && a->action != action)
        return cli_error(CLI_EXIT_USAGE,
                         "extcap: one of --extcap-interfaces, --extcap-dlts, --extcap-config, "
                         "--capture at a time");
    a->action = action;
    return 0;
}

/* One option of the capture's: checked, kept (NULL when empty). */
static int take_value(struct cli_extcap_args *a, int c, const char *v)
{
    int rc;

    if (!v[0] && c != OPT_FIFO && c != OPT_INTERFACE)
        return 0; /* an empty field is an option not given */
    switch (c) {
    case OPT_TIME:
        rc = duration_ok("--time", v, false);
        a->time = v;
        return rc;
    case OPT_LATENESS:
        rc = duration_ok("--lateness", v, false);
        a->lateness = v;
        return rc;
    case OPT_FILTER:
    case OPT_CAPTURE_FILTER:
        rc = text_ok(c == OPT_FILTER ? "--filter" : "--extcap-capture-filter", v,
                     CLI_EXTCAP_FILTER_MAX);
        if (c == OPT_FILTER)
            a->filter = v;
        else
            a->capture_filter = v;
        return rc;
    case OPT_NAMESPACE:
        rc = text_ok("--namespace", v, CLI_EXTCAP_VALUE_MAX);
        return rc != 0 ? rc : add_namespaces(a, v);
    case OPT_POD: {
        char err[256];
        if ((rc = text_ok("--pod", v, CLI_EXTCAP_VALUE_MAX)) != 0)
            return rc;
        if (kube_regex_check(v, err, sizeof(err)) != 0)
            return cli_error(CLI_EXIT_USAGE, "extcap: --pod: %s", err);
        a->pod = v;
        return 0;
    }
    case OPT_SELECTOR:
        if ((rc = text_ok("--selector", v, KUBE_SELECTOR_MAX_TEXT)) == 0)
            rc = selector_ok(v);
        a->selector = v;
        return rc;
    case OPT_HUB:
        if ((rc = text_ok("--hub", v, 512)) == 0)
            rc = hub_ok(v);
        a->hub = v;
        return rc;
    case OPT_SIGHTINGS: return word_ok("--sightings", v, "one", "all", &a->sightings);
    case OPT_CLOCK: return word_ok("--clock", v, "aligned", "raw", &a->clock);
    case OPT_FIFO:
        if (!v[0])
            return cli_error(CLI_EXIT_USAGE, "extcap: --fifo is empty");
        a->fifo = v;
        return text_ok("--fifo", v, PATH_MAX - 1);
    default: /* OPT_INTERFACE: the only other option getopt returns */
        if (strcmp(v, CLI_EXTCAP_IFACE) != 0)
            return cli_error(CLI_EXIT_USAGE,
                             "extcap: no interface \"%.64s\": this program has only \"%s\"", v,
                             CLI_EXTCAP_IFACE);
        return 0;
    }
}

/* An unknown option or one without its value: named, as Wireshark shows the line. */
static int bad_option(int c, char **argv)
{
    const char *arg = argv[optind - 1];
    char shortopt[3] = {'-', (char)optopt, 0};
    /* A short option may sit in a cluster ("-xq"), a long one's optopt is its number. */
    const char *opt = optopt && (arg[0] != '-' || arg[1] != '-') ? shortopt : arg;

    if (c == ':')
        return cli_error(CLI_EXIT_USAGE, "extcap: option %.64s needs a value", opt);
    return cli_error(CLI_EXIT_USAGE, "extcap: unknown option %.64s (docs/cli.md lists them)", opt);
}

static int take(struct cli_extcap_args *a, int c, char *v, bool *iface, char **argv)
{
    *iface |= c == OPT_INTERFACE;
    switch (c) {
    case OPT_INTERFACES: return set_action(a, CLI_EXTCAP_INTERFACES);
    case OPT_VERSION: return set_action(a, CLI_EXTCAP_VERSION);
    case OPT_DLTS: return set_action(a, CLI_EXTCAP_DLTS);
    case OPT_CONFIG: return set_action(a, CLI_EXTCAP_CONFIG);
    case OPT_CAPTURE: return set_action(a, CLI_EXTCAP_CAPTURE);
    case OPT_CLEANUP: return set_action(a, CLI_EXTCAP_CLEANUP);
    case OPT_IGNORED:
    case OPT_IGNORED_FLAG: return 0;
    case 'n': return take_value(a, OPT_NAMESPACE, v);
    case 'l': return take_value(a, OPT_SELECTOR, v);
    case ':':
    case '?': return bad_option(c, argv);
    default: return take_value(a, c, v);
    }
}

/* --filter and Wireshark's capture filter: both must match. */
static int join_filters(struct cli_extcap_args *a)
{
    int n;

    if (!a->capture_filter)
        return 0;
    if (!a->filter) {
        a->filter = a->capture_filter;
        return 0;
    }
    n = snprintf(a->filter_buf, sizeof(a->filter_buf), "(%s) and (%s)", a->filter,
                 a->capture_filter);
    if (n < 0 || (size_t)n >= sizeof(a->filter_buf))
        return cli_error(CLI_EXIT_USAGE,
                         "extcap: --filter and the capture filter together are longer than %d "
                         "bytes",
                         CLI_EXTCAP_FILTER_MAX);
    a->filter = a->filter_buf;
    return 0;
}

/* What each action needs. */
static int check_action(struct cli_extcap_args *a, bool iface)
{
    if (a->action == CLI_EXTCAP_NONE && a->capture_filter)
        a->action = CLI_EXTCAP_FILTER_CHECK;
    switch (a->action) {
    case CLI_EXTCAP_NONE:
        return cli_error(CLI_EXIT_USAGE,
                         "extcap: give --extcap-interfaces, --extcap-dlts, --extcap-config or "
                         "--capture (Wireshark runs this; docs/cli.md)");
    case CLI_EXTCAP_DLTS:
    case CLI_EXTCAP_CONFIG:
    case CLI_EXTCAP_FILTER_CHECK:
    case CLI_EXTCAP_CAPTURE:
        if (!iface)
            return cli_error(CLI_EXIT_USAGE, "extcap: give --extcap-interface %s",
                             CLI_EXTCAP_IFACE);
        break;
    default: break;
    }
    if (a->action == CLI_EXTCAP_CAPTURE && !a->fifo)
        return cli_error(CLI_EXIT_USAGE, "extcap: --capture needs --fifo PATH");
    return join_filters(a);
}

int cli_extcap_args_parse(int argc, char **argv, struct cli_extcap_args *a)
{
    bool iface = false;
    int c, rc;

    memset(a, 0, sizeof(*a));
    optind = 0; /* getopt afresh: the tests parse many command lines in one process */
    opterr = 0;
    optopt = 0;
    while ((c = getopt_long(argc, argv, ":n:l:", opts, NULL)) != -1)
        if ((rc = take(a, c, optarg, &iface, argv)) != 0)
            return rc;
    if (optind != argc)
        return cli_error(CLI_EXIT_USAGE, "extcap: unexpected argument \"%.64s\"", argv[optind]);
    return check_action(a, iface);
}

/* ---- pcapdump's command line ---- */

/* flag and value, when there is a value. */
static int push(struct cli_extcap_cmd *cmd, const char *flag, const char *value)
{
    if (!value)
        return 0;
    if (cmd->argc + 2 > CLI_EXTCAP_ARGV_MAX)
        return -ENOSPC;
    cmd->argv[cmd->argc++] = flag;
    cmd->argv[cmd->argc++] = value;
    cmd->argv[cmd->argc] = NULL;
    return 0;
}

int cli_extcap_pcapdump_argv(const struct cli_extcap_args *a, int64_t now_ns,
                             struct cli_extcap_cmd *cmd)
{
    int rc = 0;

    memset(cmd, 0, sizeof(*cmd));
    cmd->argv[cmd->argc++] = "netreel";
    cmd->argv[cmd->argc++] = "pcapdump";
    cmd->argv[cmd->argc++] = "--follow";
    /* Wireshark takes whatever an extcap writes on stderr for an error: no closing line. */
    cmd->argv[cmd->argc++] = "-q";
    if (a->time) {
        rc = push(cmd, "--time", a->time);
    } else {
        /* "From now" said as a time: the window of --follow without one is pcapdump's. */
        if (nr_format_time(now_ns, 9, cmd->since, sizeof(cmd->since)) < 0)
            return -EINVAL;
        rc = push(cmd, "--since", cmd->since);
    }
    /* Separate arguments: getopt takes the next one as the value, whatever its first byte. */
    if (rc == 0)
        rc = push(cmd, "--lateness", a->lateness);
    if (rc == 0)
        rc = push(cmd, "--filter", a->filter);
    if (rc == 0)
        rc = push(cmd, "--namespace", a->namespaces);
    if (rc == 0)
        rc = push(cmd, "--pod", a->pod);
    if (rc == 0)
        rc = push(cmd, "--selector", a->selector);
    if (rc == 0)
        rc = push(cmd, "--hub", a->hub);
    if (rc == 0)
        rc = push(cmd, "--sightings", a->sightings);
    if (rc == 0)
        rc = push(cmd, "--clock", a->clock);
    if (rc == 0)
        rc = push(cmd, "-o", "-");
    return rc;
}

int cli_extcap_filter_check(const char *filter, char *err, size_t errlen)
{
    static const int types[] = {LINKTYPE_LINUX_SLL2, LINKTYPE_ETHERNET};
    int rc = 0;

    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]) && rc == 0; i++) {
        struct bpf_program prog;
        pcap_t *p = pcap_open_dead(types[i], 65535);
        if (!p)
            return -ENOMEM;
        /* Unoptimized: the check only needs the parse, and the optimizer can take seconds on a
         * long expression. */
        if (pcap_compile(p, &prog, filter, 0, PCAP_NETMASK_UNKNOWN) != 0)
            rc = nr_errf(NR_EPARSE, err, errlen, "filter \"%.200s\": %s", filter, pcap_geterr(p));
        else
            pcap_freecode(&prog);
        pcap_close(p);
    }
    return rc;
}

/* ---- the answers and the capture ---- */

static int64_t wall_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int print_done(void)
{
    if (fflush(stdout) != 0 || ferror(stdout))
        return cli_error(CLI_EXIT_FAIL, "extcap: cannot write to stdout: %s", strerror(errno));
    return CLI_EXIT_OK;
}

/* {help=...}: the page make install puts beside the program, when there is one (a path with a
 * brace would end the field early). */
static void print_interfaces(bool with_iface)
{
    char exe[PATH_MAX], doc[PATH_MAX + 64], real[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    char *slash = NULL;

    if (n > 0) {
        exe[n] = 0;
        slash = strrchr(exe, '/');
    }
    printf("extcap {version=%s}", NR_VERSION);
    if (slash) {
        *slash = 0; /* PREFIX/bin */
        snprintf(doc, sizeof(doc), "%s/../share/doc/netreel/cli.md", exe);
        if (realpath(doc, real) && access(real, R_OK) == 0 && !strpbrk(real, "{}"))
            printf("{help=file://%s}", real);
    }
    putchar('\n');
    if (with_iface)
        printf("interface {value=%s}{display=netreel: cluster}\n", CLI_EXTCAP_IFACE);
}

/* Wireshark's check of its capture filter field: nothing on stdout means valid, a line the
 * reason; the exit status is 0 either way (another means "cannot tell"). */
static int filter_answer(const struct cli_extcap_args *a)
{
    char err[512];

    if (cli_extcap_filter_check(a->capture_filter, err, sizeof(err)) != 0) {
        cli_sanitize(err);
        printf("%s\n", err);
    }
    return print_done();
}

static int dry_run(const struct cli_extcap_cmd *cmd)
{
    for (int i = 0; i < cmd->argc; i++)
        printf("%s\n", cmd->argv[i]);
    return print_done();
}

/* The fifo Wireshark made, as stdout. Nothing else is opened (a device may act on open), and
 * what was opened is checked again. Opening waits for Wireshark's side to open it. */
static int fifo_to_stdout(const char *path)
{
    struct stat st;
    int fd, rc = 0;

    if (stat(path, &st) == 0 && !S_ISFIFO(st.st_mode))
        return cli_error(CLI_EXIT_USAGE, "extcap: --fifo %s is not a fifo (Wireshark makes one)",
                         path);
    fd = open(path, O_WRONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return cli_error(CLI_EXIT_FAIL, "extcap: --fifo %s: %s", path, strerror(errno));
    if (fstat(fd, &st) != 0 || !S_ISFIFO(st.st_mode))
        rc = cli_error(CLI_EXIT_USAGE, "extcap: --fifo %s is not a fifo (Wireshark makes one)",
                       path);
    else if (fd != 1 && dup2(fd, 1) < 0)
        rc = cli_error(CLI_EXIT_FAIL, "extcap: cannot put the fifo on stdout: %s", strerror(errno));
    if (fd != 1)
        close(fd);
    return rc;
}

static int capture(const struct cli_extcap_args *a)
{
    const char *dry = getenv("NETREEL_EXTCAP_DRY_RUN");
    struct cli_extcap_cmd cmd;
    char err[512];
    int rc;

    if (a->filter && cli_extcap_filter_check(a->filter, err, sizeof(err)) != 0)
        return cli_error(CLI_EXIT_USAGE, "extcap: %s", err);
    if (cli_extcap_pcapdump_argv(a, wall_ns(), &cmd) != 0)
        return cli_error(CLI_EXIT_FAIL, "extcap: cannot build pcapdump's command line");
    if (dry && strcmp(dry, "1") == 0)
        return dry_run(&cmd);
    if ((rc = fifo_to_stdout(a->fifo)) != 0)
        return rc;
    /* The same program, by the kernel's name for it: no PATH, no shell. */
    execv("/proc/self/exe", (char *const *)cmd.argv);
    return cli_error(CLI_EXIT_FAIL, "extcap: cannot run netreel pcapdump (/proc/self/exe): %s",
                     strerror(errno));
}

/* The fifo a refused capture was given, when it is one: the last --fifo of argv (getopt keeps
 * an option next to its value). */
static const char *refused_fifo(int argc, char **argv)
{
    const char *path = NULL;
    bool capture = false;
    struct stat st;

    for (int i = 1; i < argc; i++) {
        capture |= strcmp(argv[i], "--capture") == 0;
        if (strcmp(argv[i], "--fifo") == 0 && i + 1 < argc)
            path = argv[i + 1];
        else if (strncmp(argv[i], "--fifo=", 7) == 0)
            path = argv[i] + 7;
    }
    if (!capture || !path || stat(path, &st) != 0 || !S_ISFIFO(st.st_mode))
        return NULL;
    return path;
}

/* Wireshark's reader may already wait in open() for the writer a refused capture never becomes,
 * and would wait there for good (tshark hangs, the error unseen): the fifo is opened and closed,
 * so that it reads the end at once. A reader that has not come within RELEASE_WAIT_MS finds the
 * fifo gone, as Wireshark removes it when this program exits. */
static void release_fifo(int argc, char **argv)
{
    const struct timespec step = {.tv_nsec = 20 * 1000000};
    const char *path = refused_fifo(argc, argv);

    for (int waited = 0; path && waited <= RELEASE_WAIT_MS; waited += 20) {
        int fd = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
        if (fd >= 0) {
            close(fd);
            return;
        }
        if (errno != ENXIO) /* ENXIO: no reader yet */
            return;
        nanosleep(&step, NULL);
    }
}

int cli_extcap(int argc, char **argv)
{
    struct cli_extcap_args *a = malloc(sizeof(*a));
    int rc;

    if (!a)
        return cli_error(CLI_EXIT_FAIL, "extcap: out of memory");
    rc = cli_extcap_args_parse(argc, argv, a);
    if (rc != 0)
        goto out;
    switch (a->action) {
    case CLI_EXTCAP_INTERFACES:
    case CLI_EXTCAP_VERSION:
        print_interfaces(a->action == CLI_EXTCAP_INTERFACES);
        rc = print_done();
        break;
    case CLI_EXTCAP_DLTS:
        fputs(dlts_text, stdout);
        rc = print_done();
        break;
    case CLI_EXTCAP_CONFIG:
        fputs(config_text, stdout);
        rc = print_done();
        break;
    case CLI_EXTCAP_FILTER_CHECK: rc = filter_answer(a); break;
    case CLI_EXTCAP_CAPTURE: rc = capture(a); break;
    default: rc = CLI_EXIT_OK; break;
    }
out:
    if (rc != CLI_EXIT_OK)
        release_fifo(argc, argv);
    free(a);
    return rc;
}
