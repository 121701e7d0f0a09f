/* The option parsers of every subcommand, kept pure (args.h): they read argv and write a struct,
 * and report a bad flag as one line where they find it. What acts on the flags (files, helm,
 * the children, the hub) is in each subcommand's file. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "cli.h"
#include "kube/target.h"
#include "util/addr.h"
#include "util/error.h"
#include "util/log.h"
#include "util/parse.h"

/* Every parser starts getopt afresh: several may run in one process (the fuzz target). */
static void getopt_reset(void)
{
    optind = 0;
    opterr = 0;
    optopt = 0;
}

/* ---- the hub client's flags ---- */

const char cli_hub_usage[] =
    "  --hub ADDR                the hub (default: $NETREEL_HUB, else the hub of a local\n"
    "                            `netreel tap --local` (see --data), else kubectl\n"
    "                            port-forward to service/netreel-hub in the release namespace)\n"
    "  --data DIR                the local recorder's folder, whose hub.addr, .tls/ and\n"
    "                            hub.token say where its hub is and how to talk to it (default\n"
    "                            $NETREEL_DATA, else tap --local's default folder)\n"
    "  --release-namespace NS    where `netreel tap` installed (default $NETREEL_NAMESPACE,\n"
    "                            else netreel)\n"
    "  --token-file FILE         the hub's bearer token (default $NETREEL_TOKEN; locally\n"
    "                            DIR/hub.token; in a cluster Secret netreel-hub-token)\n"
    "  --tls-ca FILE             verify the hub against this CA (turns TLS on) ...\n"
    "  --tls-cert FILE --tls-key FILE  ... and present this client certificate (mTLS; locally\n"
    "                            DIR/.tls; in a cluster read from Secret netreel-tls)\n";

bool cli_hub_opt(struct cli_hub_opts *o, int c, const char *arg)
{
    switch (c) {
    case CLI_OPT_HUB: o->hub = arg; return true;
    case CLI_OPT_TLS_CA: o->tls_ca = arg; return true;
    case CLI_OPT_TLS_CERT: o->tls_cert = arg; return true;
    case CLI_OPT_TLS_KEY: o->tls_key = arg; return true;
    case CLI_OPT_TOKEN_FILE: o->token_file = arg; return true;
    case CLI_OPT_RELEASE_NS: o->release_ns = arg; return true;
    case CLI_OPT_DATA: o->data = arg; return true;
    default: return false;
    }
}

int cli_hub_opts_check(const char *cmd, const struct cli_hub_opts *o)
{
    char host[256], err[256];
    uint16_t port;

    if ((o->tls_cert == NULL) != (o->tls_key == NULL))
        return cli_error(CLI_EXIT_USAGE, "%s: --tls-cert and --tls-key go together", cmd);
    if (o->hub && nr_addr_split(o->hub, host, sizeof(host), &port, err, sizeof(err)) != 0)
        return cli_error(CLI_EXIT_USAGE, "%s: --hub: %s", cmd, err);
    if (o->hub && !host[0])
        return cli_error(CLI_EXIT_USAGE, "%s: --hub \"%s\": give a host (127.0.0.1:8898)", cmd,
                         o->hub);
    if (o->release_ns && !o->release_ns[0])
        return cli_error(CLI_EXIT_USAGE, "%s: --release-namespace is empty", cmd);
    if (o->data && !o->data[0])
        return cli_error(CLI_EXIT_USAGE, "%s: --data is empty", cmd);
    return 0;
}

/* ---- pcapdump ---- */

/* A name for -o inside --dest: one path component, not "." or "..". */
static bool plain_name(const char *s)
{
    return s[0] && !strchr(s, '/') && strcmp(s, ".") != 0 && strcmp(s, "..") != 0;
}

int cli_pcapdump_args_parse(int argc, char **argv, int64_t now_ns, struct cli_pcapdump_args *a)
{
    static const struct option opts[] = {
        {"time", required_argument, NULL, 't'},
        {"since", required_argument, NULL, 'S'},
        {"until", required_argument, NULL, 'U'},
        {"dest", required_argument, NULL, 'd'},
        {"output", required_argument, NULL, 'o'},
        {"filter", required_argument, NULL, 'f'},
        {"format", required_argument, NULL, 'F'},
        {"snaplen", required_argument, NULL, 'Z'},
        {"sightings", required_argument, NULL, 'g'},
        {"clock", required_argument, NULL, 'k'},
        {"namespace", required_argument, NULL, 'N'},
        {"pod", required_argument, NULL, 'P'},
        {"selector", required_argument, NULL, 'l'},
        {"strict", no_argument, NULL, 's'},
        {"force", no_argument, NULL, 'r'},
        {"follow", no_argument, NULL, 'w'},
        {"quiet", no_argument, NULL, 'q'},
        {"lateness", required_argument, NULL, 'L'},
        {"help", no_argument, NULL, 'h'},
        CLI_HUB_LONGOPTS,
        {NULL, 0, NULL, 0},
    };
    char err[256];
    int64_t dur = 0;
    bool have_lateness = false;
    int c;

    memset(a, 0, sizeof(*a));
    getopt_reset();
    while ((c = getopt_long(argc, argv, ":o:hn:l:q", opts, NULL)) != -1) {
        if (cli_hub_opt(&a->hub, c, optarg))
            continue;
        switch (c) {
        case 't':
            if (nr_parse_duration(optarg, &dur, err, sizeof(err)) != 0)
                return cli_error(CLI_EXIT_USAGE, "pcapdump: --time: %s", err);
            if (dur <= 0)
                return cli_error(CLI_EXIT_USAGE, "pcapdump: --time: must be above zero (5m)");
            a->have_time = true;
            break;
        case 'S':
            if (nr_parse_time(optarg, &a->since, err, sizeof(err)) != 0)
                return cli_error(CLI_EXIT_USAGE, "pcapdump: --since: %s", err);
            a->have_since = true;
            break;
        case 'U':
            if (nr_parse_time(optarg, &a->until, err, sizeof(err)) != 0)
                return cli_error(CLI_EXIT_USAGE, "pcapdump: --until: %s", err);
            a->have_until = true;
            break;
        case 'd': a->dest = optarg; break;
        case 'o': a->output = optarg; break;
        case 'f': a->filter = optarg; break;
        case 'F':
            if (strcmp(optarg, "pcap") == 0)
                a->pcap = true;
            else if (strcmp(optarg, "pcapng") == 0)
                a->pcap = false;
            else
                return cli_error(CLI_EXIT_USAGE, "pcapdump: --format \"%s\": pcapng or pcap",
                                 optarg);
            break;
        case 'g':
            if (strcmp(optarg, "all") == 0)
                a->all_sightings = true;
            else if (strcmp(optarg, "one") == 0)
                a->all_sightings = false;
            else
                return cli_error(CLI_EXIT_USAGE, "pcapdump: --sightings \"%s\": one or all",
                                 optarg);
            break;
        case 'n':
        case 'N':
            /* kubectl's spelling: -n NS, repeated; commas too */
            for (char *save = NULL, *ns = strtok_r(optarg, ",", &save); ns;
                 ns = strtok_r(NULL, ",", &save)) {
                if (a->n_namespaces == CLI_MAX_NAMESPACES)
                    return cli_error(CLI_EXIT_USAGE, "pcapdump: -n: at most %d namespaces",
                                     CLI_MAX_NAMESPACES);
                a->namespaces[a->n_namespaces++] = ns;
            }
            break;
        case 'P': a->pod_regex = optarg; break;
        case 'l': a->selector = optarg; break;
        case 'k':
            if (strcmp(optarg, "raw") == 0)
                a->raw_clock = true;
            else if (strcmp(optarg, "aligned") == 0)
                a->raw_clock = false;
            else
                return cli_error(CLI_EXIT_USAGE, "pcapdump: --clock \"%s\": aligned or raw",
                                 optarg);
            break;
        case 'Z': {
            char *end;
            unsigned long v;
            errno = 0;
            v = strtoul(optarg, &end, 10);
            if (errno || end == optarg || *end || optarg[0] == '-' || v == 0 || v > 0x7fffffff)
                return cli_error(CLI_EXIT_USAGE,
                                 "pcapdump: --snaplen \"%s\": a number of bytes above zero",
                                 optarg);
            a->snaplen = (uint32_t)v;
            break;
        }
        case 's': a->strict = true; break;
        case 'r': a->force = true; break;
        case 'w': a->follow = true; break;
        case 'q': a->quiet = true; break;
        case 'L':
            if (nr_parse_duration(optarg, &a->lateness, err, sizeof(err)) != 0)
                return cli_error(CLI_EXIT_USAGE, "pcapdump: --lateness: %s", err);
            if (a->lateness <= 0 || a->lateness > 60 * INT64_C(1000000000))
                return cli_error(CLI_EXIT_USAGE,
                                 "pcapdump: --lateness: above zero and at most 1m (1s, 300ms)");
            have_lateness = true;
            break;
        case 'h': return CLI_ARGS_HELP;
        default: return cli_bad_option("pcapdump", c, argv);
        }
    }
    if (optind != argc)
        return cli_error(CLI_EXIT_USAGE,
                         "pcapdump: unexpected argument \"%s\" (netreel pcapdump --help)",
                         argv[optind]);
    if (a->have_time && (a->have_since || a->have_until))
        return cli_error(CLI_EXIT_USAGE,
                         "pcapdump: --time is the last DUR up to now: it goes without --since "
                         "and --until");
    if (a->have_until && !a->have_since)
        return cli_error(CLI_EXIT_USAGE, "pcapdump: --until needs --since (or use --time)");
    if (a->follow && a->have_until)
        return cli_error(CLI_EXIT_USAGE,
                         "pcapdump: --follow goes on until Ctrl-C: it goes without --until");
    if (have_lateness && !a->follow)
        return cli_error(CLI_EXIT_USAGE, "pcapdump: --lateness is for --follow");
    if (a->dest && !a->dest[0])
        return cli_error(CLI_EXIT_USAGE, "pcapdump: --dest is empty");
    if (a->output && !a->output[0])
        return cli_error(CLI_EXIT_USAGE, "pcapdump: -o needs a file name or \"-\"");
    if (a->dest && a->output && strcmp(a->output, "-") == 0)
        return cli_error(CLI_EXIT_USAGE, "pcapdump: -o - writes to stdout: it goes without --dest");
    /* With --dest the file stays in DIR: -o names it there, and nothing else. */
    if (a->dest && a->output && !plain_name(a->output))
        return cli_error(CLI_EXIT_USAGE,
                         "pcapdump: -o \"%s\" with --dest: give a file name inside DIR (no '/', "
                         "no '..'), or -o PATH without --dest",
                         a->output);
    if (a->filter && strlen(a->filter) > 16 * 1024)
        return cli_error(CLI_EXIT_USAGE, "pcapdump: --filter is longer than 16 KiB");
    /* The window: absolute nanoseconds, as the hub wants them. */
    if (!a->have_until)
        a->until = now_ns;
    if (a->have_time)
        a->since = a->until - dur > 0 ? a->until - dur : 1;
    else if (a->follow && !a->have_since)
        a->since = now_ns; /* --follow alone: from now */
    if (a->have_since && a->since > a->until)
        return cli_error(CLI_EXIT_USAGE, "pcapdump: --since is after --until");
    return cli_hub_opts_check("pcapdump", &a->hub);
}

/* ---- status, clean, version ---- */

int cli_status_args_parse(int argc, char **argv, struct cli_status_opts *o)
{
    static const struct option opts[] = {
        {"help", no_argument, NULL, 'h'},
        {"all", no_argument, NULL, 'a'},
        {"output", required_argument, NULL, 'o'},
        CLI_HUB_LONGOPTS,
        {NULL, 0, NULL, 0},
    };
    int c;

    memset(o, 0, sizeof(*o));
    getopt_reset();
    while ((c = getopt_long(argc, argv, ":hao:", opts, NULL)) != -1) {
        if (cli_hub_opt(&o->hub, c, optarg))
            continue;
        switch (c) {
        case 'h': return CLI_ARGS_HELP;
        case 'a': o->all = true; break;
        case 'o':
            if (strcmp(optarg, "wide") == 0)
                o->all = true;
            else if (strcmp(optarg, "json") == 0)
                o->json = true;
            else
                return cli_error(CLI_EXIT_USAGE,
                                 "status: -o %s: the output is wide or json (netreel status "
                                 "--help)",
                                 optarg);
            break;
        default: return cli_bad_option("status", c, argv);
        }
    }
    if (optind != argc)
        return cli_error(CLI_EXIT_USAGE,
                         "status: unexpected argument \"%s\" (netreel status --help)",
                         argv[optind]);
    return cli_hub_opts_check("status", &o->hub);
}

int cli_clean_args_parse(int argc, char **argv, const char **release_ns)
{
    static const struct option opts[] = {
        {"release-namespace", required_argument, NULL, 'r'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;

    *release_ns = NULL;
    getopt_reset();
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case 'r': *release_ns = optarg; break;
        case 'h': return CLI_ARGS_HELP;
        default: return cli_bad_option("clean", c, argv);
        }
    }
    if (optind != argc)
        return cli_error(CLI_EXIT_USAGE, "clean: unexpected argument \"%s\" (netreel clean --help)",
                         argv[optind]);
    if (*release_ns && !(*release_ns)[0])
        return cli_error(CLI_EXIT_USAGE, "clean: --release-namespace is empty");
    return 0;
}

int cli_version_args_parse(int argc, char **argv)
{
    if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0))
        return CLI_ARGS_HELP;
    if (argc > 1)
        return cli_error(CLI_EXIT_USAGE, "version: unexpected argument \"%s\"", argv[1]);
    return 0;
}

/* ---- tap (cluster) ---- */

/* Splits "a,b" into slices of arg (empty names between commas are skipped). */
static int add_namespaces(const char *flag, const char *arg, const char **list, size_t *lens,
                          size_t *n)
{
    const char *p = arg;

    while (*p) {
        size_t len = strcspn(p, ",");
        if (len > 0) {
            if (!cli_namespace_name(p, len))
                return cli_error(CLI_EXIT_USAGE,
                                 "tap: %s: \"%.*s\" is not a namespace name "
                                 "(lower-case letters, digits and '-')",
                                 flag, (int)(len > 100 ? 100 : len), p);
            if (*n == CLI_TAP_MAX_NAMESPACES)
                return cli_error(CLI_EXIT_USAGE, "tap: %s: more than %d namespaces", flag,
                                 CLI_TAP_MAX_NAMESPACES);
            list[*n] = p;
            lens[*n] = len;
            (*n)++;
        }
        p += len;
        if (*p == ',')
            p++;
    }
    return 0;
}

/* --tls, --tls=true or --tls=false (tap.tls). A bare --tls followed by "false" would take it
 * for POD_REGEX (getopt gives an optional value only after '='): refused, with the spelling. */
static int tls_flag(const char *cmd, const char *value, int argc, char **argv, int *tls)
{
    if (!value) {
        if (optind < argc &&
            (strcmp(argv[optind], "true") == 0 || strcmp(argv[optind], "false") == 0))
            return cli_error(CLI_EXIT_USAGE, "%s: --tls %s: write --tls=%s", cmd, argv[optind],
                             argv[optind]);
        *tls = 1;
    } else if (strcmp(value, "true") == 0) {
        *tls = 1;
    } else if (strcmp(value, "false") == 0) {
        *tls = 0;
    } else {
        return cli_error(CLI_EXIT_USAGE, "%s: --tls=%s: want --tls, --tls=true or --tls=false", cmd,
                         value);
    }
    return 0;
}

bool cli_tap_is_local(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0)
            return false;
        if (strcmp(argv[i], "--local") == 0)
            return true;
    }
    return false;
}

int cli_tap_args_parse(int argc, char **argv, struct cli_tap_args *a)
{
    static const struct option opts[] = {
        {"namespaces", required_argument, NULL, 'n'},
        {"excluded-namespaces", required_argument, NULL, 'e'},
        {"set", required_argument, NULL, 's'},
        {"release-namespace", required_argument, NULL, 'r'},
        {"chart", required_argument, NULL, 'c'},
        {"tls", optional_argument, NULL, 'T'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c, rc;

    memset(a, 0, sizeof(*a));
    a->tls = -1;
    getopt_reset();
    while ((c = getopt_long(argc, argv, ":n:e:h", opts, NULL)) != -1) {
        switch (c) {
        case 'n':
            rc = add_namespaces("-n", optarg, a->namespaces, a->namespaces_len, &a->n_namespaces);
            if (rc != 0)
                return rc;
            break;
        case 'e':
            rc = add_namespaces("-e", optarg, a->excluded, a->excluded_len, &a->n_excluded);
            if (rc != 0)
                return rc;
            break;
        case 's': {
            const char *eq = strchr(optarg, '=');
            if (!eq || eq == optarg)
                return cli_error(CLI_EXIT_USAGE, "tap: --set \"%s\": want key=value", optarg);
            if (strncmp(optarg, "headless=", 9) == 0)
                break; /* Kubeshark's habit: netreel is always headless */
            if (a->n_sets == CLI_TAP_MAX_SETS)
                return cli_error(CLI_EXIT_USAGE, "tap: more than %d --set", CLI_TAP_MAX_SETS);
            a->sets[a->n_sets++] = optarg;
            break;
        }
        case 'r': a->ns_flag = optarg; break;
        case 'c': a->chart = optarg; break;
        case 'T':
            if ((rc = tls_flag("tap", optarg, argc, argv, &a->tls)) != 0)
                return rc;
            break;
        case 'h': return CLI_ARGS_HELP;
        default: return cli_bad_option("tap", c, argv);
        }
    }
    if (optind < argc)
        a->regex = argv[optind++];
    if (optind < argc)
        return cli_error(CLI_EXIT_USAGE,
                         "tap: one POD_REGEX at most, and \"%s\" is a second "
                         "(netreel tap --help)",
                         argv[optind]);
    /* Compiled as every node's capture will (kube/target.h), so a bad one stops here. */
    if (a->regex) {
        char why[256];
        int e = kube_regex_check(a->regex, why, sizeof(why));
        if (e != 0)
            return cli_error(CLI_EXIT_USAGE, "tap: POD_REGEX \"%.100s%s\": %s", a->regex,
                             strlen(a->regex) > 100 ? "..." : "",
                             e == -EINVAL ? why : nr_strerror(e));
    }
    if (a->ns_flag && !cli_namespace_name(a->ns_flag, strlen(a->ns_flag)))
        return cli_error(CLI_EXIT_USAGE, "tap: --release-namespace \"%s\" is not a namespace name",
                         a->ns_flag);
    return 0;
}

/* ---- tap --local ---- */

enum value_kind { V_DURATION, V_SIZE, V_COUNT, V_TEXT, V_BOOL, V_PERCENT, V_LEVEL };

static const struct set_key {
    const char *key;
    int child; /* CLI_LOCAL_CAPTURE, _STORE, _HUB, or CLI_LOCAL_NCHILD for all three */
    const char *flag;
    enum value_kind kind;
} set_keys[] = {
    {"pcapdump.maxTime", CLI_LOCAL_STORE, "--max-time", V_DURATION},
    {"pcapdump.maxSize", CLI_LOCAL_STORE, "--max-size", V_SIZE},
    {"pcapdump.timeInterval", CLI_LOCAL_STORE, "--time-interval", V_DURATION},
    {"pcapdump.minFreeDisk", CLI_LOCAL_STORE, "--min-free-disk", V_PERCENT},
    {"pcapdump.syncInterval", CLI_LOCAL_STORE, "--sync-interval", V_DURATION},
    {"tap.interface", CLI_LOCAL_CAPTURE, "-i", V_TEXT},
    {"tap.snaplen", CLI_LOCAL_CAPTURE, "--snaplen", V_COUNT},
    {"tap.bufferSize", CLI_LOCAL_CAPTURE, "--buffer-size", V_SIZE},
    {"tap.bpfOverride", CLI_LOCAL_CAPTURE, "--bpf-override", V_TEXT},
    {"capture.batchBytes", CLI_LOCAL_CAPTURE, "--batch-bytes", V_SIZE},
    {"capture.batchTime", CLI_LOCAL_CAPTURE, "--batch-time", V_DURATION},
    {"capture.spoolSize", CLI_LOCAL_CAPTURE, "--spool-size", V_SIZE},
    {"capture.recordSelf", CLI_LOCAL_CAPTURE, "--record-self", V_BOOL},
    {"tap.tls", CLI_LOCAL_CAPTURE, "--tls", V_BOOL},
    {"hub.maxSnapshots", CLI_LOCAL_HUB, "--max-snapshots", V_COUNT},
    {"hub.memoryBudget", CLI_LOCAL_HUB, "--memory-budget", V_SIZE},
    {"logLevel", CLI_LOCAL_NCHILD, "--log-level", V_LEVEL},
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

static int add_set(struct cli_tap_local_args *a, int child, const char *flag, const char *value)
{
    if (a->n_sets[child] + 2 > CLI_LOCAL_MAX_SET_ARGS)
        return cli_error(CLI_EXIT_USAGE, "tap --local: too many --set");
    a->sets[child][a->n_sets[child]++] = flag;
    if (value)
        a->sets[child][a->n_sets[child]++] = value;
    return 0;
}

static bool key_is(const char *kv, size_t klen, const char *key)
{
    return strlen(key) == klen && memcmp(kv, key, klen) == 0;
}

static int apply_set(struct cli_tap_local_args *a, const char *kv)
{
    const char *eq = strchr(kv, '=');
    size_t klen;
    const char *v;
    int k = (int)(eq ? eq - kv : 0);

    if (!eq || eq == kv)
        return cli_error(CLI_EXIT_USAGE, "tap --local: --set \"%s\": want key=value", kv);
    klen = (size_t)(eq - kv);
    v = eq + 1;
    if (key_is(kv, klen, "headless"))
        return 0; /* there is no dashboard: headless is the only mode */
    if (key_is(kv, klen, "tap.regex") || key_is(kv, klen, "tap.namespaces") ||
        key_is(kv, klen, "tap.excludedNamespaces"))
        return cli_error(CLI_EXIT_USAGE,
                         "tap --local: --set %.*s: pod targeting needs a cluster "
                         "(netreel tap); on this machine give a BPF expression: --set "
                         "tap.bpfOverride='host 10.0.0.5'",
                         k, kv);
    for (size_t i = 0; i < sizeof(set_keys) / sizeof(set_keys[0]); i++) {
        const struct set_key *sk = &set_keys[i];
        int rc;
        if (!key_is(kv, klen, sk->key))
            continue;
        if ((rc = check_value(sk, v)) != 0)
            return rc;
        if (strcmp(sk->key, "tap.interface") == 0) {
            a->iface = v;
        } else if (strcmp(sk->key, "tap.tls") == 0) {
            a->tls = strcmp(v, "true") == 0; /* --tls is added once, at the end */
        } else if (sk->kind == V_BOOL) {
            if (strcmp(v, "true") == 0)
                return add_set(a, sk->child, sk->flag, NULL);
        } else if (sk->child == CLI_LOCAL_NCHILD) {
            for (int c = 0; c < CLI_LOCAL_NCHILD; c++)
                if ((rc = add_set(a, c, sk->flag, v)) != 0)
                    return rc;
        } else {
            return add_set(a, sk->child, sk->flag, v);
        }
        return 0;
    }
    return cli_error(CLI_EXIT_USAGE,
                     "tap --local: --set %.*s: not a value --local knows "
                     "(netreel tap --local --help lists them)",
                     k, kv);
}

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

int cli_tap_local_args_parse(int argc, char **argv, struct cli_tap_local_args *a)
{
    static const struct option opts[] = {
        {"local", no_argument, NULL, 'L'},
        {"interface", required_argument, NULL, 'i'},
        {"data", required_argument, NULL, 'd'},
        {"set", required_argument, NULL, 's'},
        {"store-port", required_argument, NULL, 'S'},
        {"hub-port", required_argument, NULL, 'H'},
        {"metrics-ports", required_argument, NULL, 'M'},
        {"tls", optional_argument, NULL, 'T'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *iface_flag = NULL;
    int c, rc, tls;

    memset(a, 0, sizeof(*a));
    a->store_port = 8897;
    a->hub_port = 8898;
    a->metrics_base = 9101;
    getopt_reset();
    while ((c = getopt_long(argc, argv, ":i:h", opts, NULL)) != -1) {
        switch (c) {
        case 'L': break;
        case 'i': iface_flag = optarg; break;
        case 'd': a->data = optarg; break;
        case 's':
            if ((rc = apply_set(a, optarg)) != 0)
                return rc;
            break;
        case 'S':
            if ((rc = port_flag("--store-port", optarg, &a->store_port)) != 0)
                return rc;
            break;
        case 'H':
            if ((rc = port_flag("--hub-port", optarg, &a->hub_port)) != 0)
                return rc;
            break;
        case 'M':
            if (strcmp(optarg, "off") == 0)
                a->metrics_base = 0;
            else if ((rc = port_flag("--metrics-ports", optarg, &a->metrics_base)) != 0)
                return rc;
            else if (a->metrics_base > 65533)
                return cli_error(CLI_EXIT_USAGE, "tap --local: --metrics-ports: at most 65533");
            break;
        case 'T':
            if ((rc = tls_flag("tap --local", optarg, argc, argv, &tls)) != 0)
                return rc;
            a->tls = tls == 1;
            break;
        case 'h': return CLI_ARGS_HELP;
        default: return cli_bad_option("tap --local", c, argv);
        }
    }
    if (optind != argc)
        return cli_error(CLI_EXIT_USAGE,
                         "tap --local: unexpected argument \"%s\" (POD_REGEX "
                         "needs a cluster: netreel tap)",
                         argv[optind]);
    if (a->store_port == a->hub_port)
        return cli_error(CLI_EXIT_USAGE, "tap --local: --store-port and --hub-port are both %u",
                         a->store_port);
    if (a->data && !a->data[0])
        return cli_error(CLI_EXIT_USAGE, "tap --local: --data is empty");
    if (iface_flag)
        a->iface = iface_flag;
    if (a->iface && !a->iface[0])
        return cli_error(CLI_EXIT_USAGE, "tap --local: -i is empty");
    /* The capture loads its eBPF program and attaches the uprobes as root, before it drops to
     * nobody (docs/capture-tls.md). */
    if (a->tls && (rc = add_set(a, CLI_LOCAL_CAPTURE, "--tls", NULL)) != 0)
        return rc;
    return 0;
}
