/* libFuzzer target for the CLI's option parsers (cli/args.c): every subcommand's command line.
 * The input's first byte picks the parser, the rest is its argv, NUL-separated (argv[0] the
 * subcommand's name). A parser either refuses with CLI_EXIT_USAGE, asks for --help, or accepts,
 * and then what it filled holds what the subcommand relies on. The same bytes, as text from a
 * peer, must come out of cli_sanitize unable to steer a terminal. The parsers are pure: nothing
 * is run, connected or written. As wireguard-tools' fuzzers do, the parsers' files are compiled
 * in here (there is no cli library to link), with NR_FUZZING keeping their error lines quiet. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../cli/args.c"
#include "../../cli/error.c"
#include "fuzz.h"

#define MAX_ARGV 64
#define NOW_NS   INT64_C(1795000000000000000)

/* Every POD_REGEX is compiled and matched (PCRE2's code, match data and backtracking frames are
 * allocated and freed each run): with ASan's default quarantine (256 MB of freed chunks, each
 * with its redzones) the target reaches 435 MB of RSS in a minute; 64 MB keeps it near 160 MB
 * and still holds every chunk freed within one run. ASAN_OPTIONS in the environment still
 * wins. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
    return "quarantine_size_mb=64";
}

static char *args[MAX_ARGV + 1];
static int nargs;

/* True when p points into one of the argument strings (what the parsers keep must). */
static bool in_argv(const char *p)
{
    for (int i = 0; i < nargs; i++)
        if (p >= args[i] && p <= args[i] + strlen(args[i]))
            return true;
    return false;
}

static bool str_ok(const char *p)
{
    return p == NULL || in_argv(p);
}

static void check_hub(const struct cli_hub_opts *o)
{
    CHECK(str_ok(o->hub) && str_ok(o->tls_ca) && str_ok(o->tls_cert) && str_ok(o->tls_key) &&
          str_ok(o->token_file) && str_ok(o->release_ns) && str_ok(o->data));
    CHECK((o->tls_cert == NULL) == (o->tls_key == NULL));
    CHECK(!o->release_ns || o->release_ns[0]);
    CHECK(!o->data || o->data[0]);
}

static void check_pcapdump(int argc, char **argv)
{
    struct cli_pcapdump_args a;
    int rc = cli_pcapdump_args_parse(argc, argv, NOW_NS, &a);

    CHECK(rc == 0 || rc == CLI_ARGS_HELP || rc == CLI_EXIT_USAGE);
    if (rc != 0)
        return;
    check_hub(&a.hub);
    CHECK(str_ok(a.dest) && str_ok(a.output) && str_ok(a.filter));
    CHECK(!(a.have_time && (a.have_since || a.have_until)));
    CHECK(!a.have_until || a.have_since);
    CHECK(a.since <= a.until);
    CHECK(a.have_until || a.until == NOW_NS);
    CHECK(!a.output || a.output[0]);
    CHECK(!a.dest || a.dest[0]);
    /* --dest keeps the file inside DIR: -o is then one plain name. */
    if (a.dest && a.output)
        CHECK(!strchr(a.output, '/') && strcmp(a.output, ".") != 0 && strcmp(a.output, "..") != 0 &&
              strcmp(a.output, "-") != 0);
    CHECK(!a.filter || strlen(a.filter) <= 64 * 1024);
    CHECK(a.snaplen <= 0x7fffffff);
}

static void check_tap(int argc, char **argv)
{
    struct cli_tap_args *a = malloc(sizeof(*a));
    int rc;

    CHECK(a);
    rc = cli_tap_args_parse(argc, argv, a);
    CHECK(rc == 0 || rc == CLI_ARGS_HELP || rc == CLI_EXIT_USAGE);
    if (rc == 0) {
        CHECK(str_ok(a->regex) && str_ok(a->ns_flag) && str_ok(a->chart));
        CHECK(a->n_sets <= CLI_TAP_MAX_SETS && a->n_namespaces <= CLI_TAP_MAX_NAMESPACES &&
              a->n_excluded <= CLI_TAP_MAX_NAMESPACES);
        for (size_t i = 0; i < a->n_sets; i++)
            CHECK(in_argv(a->sets[i]) && strchr(a->sets[i], '=') > a->sets[i]);
        for (size_t i = 0; i < a->n_namespaces + a->n_excluded; i++) {
            bool ex = i >= a->n_namespaces;
            const char *ns = ex ? a->excluded[i - a->n_namespaces] : a->namespaces[i];
            size_t len = ex ? a->excluded_len[i - a->n_namespaces] : a->namespaces_len[i];
            CHECK(in_argv(ns) && len >= 1 && len <= 63);
            CHECK(cli_namespace_name(ns, len));
        }
        /* An accepted POD_REGEX is what every node's capture compiles and runs on pod names
         * that anyone who may create a pod chooses: it must compile there too, and match such
         * names within PCRE2's limits (-timeout and -rss_limit_mb make a slow or huge one a
         * finding). */
        if (a->regex) {
            static const char *const names[] = {
                "web-7d4b9c6f5-x2x9z",
                "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab",
                "a-a-a-a-a-a-a-a-a-a-a-a-a-a-a-a-a-a-a-a-a-a-a-a-a-a-a-a-a-a-a-!",
            };
            struct kube_selector sel;
            struct kube_pod pod = {.n_ips = 1};
            char err[256];

            CHECK(kube_selector_init(&sel, a->regex, NULL, NULL, err, sizeof(err)) == 0);
            snprintf(pod.namespace, sizeof(pod.namespace), "default");
            for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
                bool limited = false;

                snprintf(pod.name, sizeof(pod.name), "%s", names[i]);
                /* At a limit the name counts as matching. */
                CHECK(kube_selector_match(&sel, &pod, &limited) || !limited);
            }
            kube_selector_free(&sel);
        }
    }
    free(a);
}

static void check_tap_local(int argc, char **argv)
{
    struct cli_tap_local_args a;
    int rc = cli_tap_local_args_parse(argc, argv, &a);

    CHECK(rc == 0 || rc == CLI_ARGS_HELP || rc == CLI_EXIT_USAGE);
    if (rc != 0)
        return;
    CHECK(str_ok(a.iface) && str_ok(a.data));
    CHECK(!a.iface || a.iface[0]);
    CHECK(!a.data || a.data[0]);
    CHECK(a.store_port >= 1 && a.store_port <= 65535 && a.hub_port >= 1 && a.hub_port <= 65535 &&
          a.store_port != a.hub_port);
    CHECK(a.metrics_base <= 65533);
    for (int c = 0; c < CLI_LOCAL_NCHILD; c++) {
        CHECK(a.n_sets[c] >= 0 && a.n_sets[c] <= CLI_LOCAL_MAX_SET_ARGS);
        /* Flags come from the table, values from argv: a child's command line gets nothing
         * else, and every flag starts with '-'. */
        for (int j = 0; j < a.n_sets[c]; j++)
            CHECK(a.sets[c][j] != NULL && (in_argv(a.sets[c][j]) || a.sets[c][j][0] == '-'));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const names[] = {"pcapdump", "status", "tap", "tap", "clean", "version"};
    const char *p, *end;
    int which;

    if (size < 1)
        return 0;
    which = data[0] % 6;
    p = (const char *)data + 1;
    end = (const char *)data + size;
    /* Each argument its own allocation: ASan sees a read past its end. */
    args[0] = strdup(names[which]);
    nargs = 1;
    if (which == 3 && nargs < MAX_ARGV) /* tap --local */
        args[nargs++] = strdup("--local");
    while (p < end && nargs < MAX_ARGV) {
        const char *nul = memchr(p, 0, (size_t)(end - p));
        size_t len = nul ? (size_t)(nul - p) : (size_t)(end - p);
        args[nargs] = malloc(len + 1);
        CHECK(args[nargs]);
        memcpy(args[nargs], p, len);
        args[nargs][len] = 0;
        nargs++;
        p += len + 1;
    }
    args[nargs] = NULL;
    {
        /* getopt may permute argv: the parsers get a copy of the pointers. */
        char *argv[MAX_ARGV + 1];
        memcpy(argv, args, sizeof(argv));
        switch (which) {
        case 0: check_pcapdump(nargs, argv); break;
        case 1: {
            struct cli_status_opts o;
            int rc = cli_status_args_parse(nargs, argv, &o);
            CHECK(rc == 0 || rc == CLI_ARGS_HELP || rc == CLI_EXIT_USAGE);
            if (rc == 0) {
                bool json = false, all = false;
                check_hub(&o.hub);
                /* An output format only from an argument that names it. */
                for (int i = 1; i < nargs; i++) {
                    json |= strstr(args[i], "json") != NULL;
                    all |= strstr(args[i], "wide") != NULL || strchr(args[i], 'a') != NULL;
                }
                CHECK(!o.json || json);
                CHECK(!o.all || all);
            }
            break;
        }
        case 2:
        case 3:
            if (cli_tap_is_local(nargs, argv))
                check_tap_local(nargs, argv);
            else
                check_tap(nargs, argv);
            break;
        case 4: {
            const char *ns = NULL;
            int rc = cli_clean_args_parse(nargs, argv, &ns);
            CHECK(rc == 0 || rc == CLI_ARGS_HELP || rc == CLI_EXIT_USAGE);
            CHECK(rc != 0 || str_ok(ns));
            break;
        }
        default: {
            int rc = cli_version_args_parse(nargs, argv);
            CHECK(rc == 0 || rc == CLI_ARGS_HELP || rc == CLI_EXIT_USAGE);
            CHECK(rc != 0 || nargs == 1);
            break;
        }
        }
    }
    /* What a peer says goes through cli_sanitize before a terminal: nothing of it may steer
     * one. The arguments stand in for such text. */
    for (int i = 0; i < nargs; i++) {
        size_t len = strlen(args[i]);
        cli_sanitize(args[i]);
        CHECK(strlen(args[i]) == len);
        for (const unsigned char *q = (const unsigned char *)args[i]; *q; q++)
            CHECK(*q >= 0x20 && *q != 0x7f && !(q[0] == 0xc2 && q[1] >= 0x80 && q[1] <= 0x9f));
        free(args[i]);
    }
    nargs = 0;
    return 0;
}
