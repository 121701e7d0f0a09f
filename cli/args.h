/* The command line of every subcommand, parsed into a struct by a pure function: no file is
 * opened, nothing is run or connected, nothing exits; a bad flag is one line on stderr
 * (cli_error) and CLI_EXIT_USAGE. Each parser returns 0, CLI_ARGS_HELP (--help) or
 * CLI_EXIT_USAGE. The subcommands act on the struct; tests/fuzz/fuzz_cli_args.c
 * feeds these parsers arbitrary argument vectors. Every pointer in a parsed struct points into
 * argv or at a constant string: argv must outlive it. */
#ifndef NR_CLI_ARGS_H
#define NR_CLI_ARGS_H

#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Returned by a parser for --help: the caller prints its usage and exits 0. */
#define CLI_ARGS_HELP (-1)

/* ---- the hub client's flags (pcapdump, status) ---- */

enum {
    CLI_OPT_HUB = 1000,
    CLI_OPT_TLS_CA,
    CLI_OPT_TLS_CERT,
    CLI_OPT_TLS_KEY,
    CLI_OPT_TOKEN_FILE,
    CLI_OPT_RELEASE_NS,
    CLI_OPT_DATA,
};

#define CLI_HUB_LONGOPTS                                                    \
    {"hub", required_argument, NULL, CLI_OPT_HUB},                          \
        {"tls-ca", required_argument, NULL, CLI_OPT_TLS_CA},                \
        {"tls-cert", required_argument, NULL, CLI_OPT_TLS_CERT},            \
        {"tls-key", required_argument, NULL, CLI_OPT_TLS_KEY},              \
        {"token-file", required_argument, NULL, CLI_OPT_TOKEN_FILE},        \
        {"release-namespace", required_argument, NULL, CLI_OPT_RELEASE_NS}, \
    {                                                                       \
        "data", required_argument, NULL, CLI_OPT_DATA                       \
    }

/* Their --help lines. */
extern const char cli_hub_usage[];

struct cli_hub_opts {
    const char *hub, *tls_ca, *tls_cert, *tls_key, *token_file, *release_ns, *data;
};

/* Takes getopt's value c if it is one of the hub flags: returns true (and keeps arg). */
bool cli_hub_opt(struct cli_hub_opts *o, int c, const char *arg);

/* Checks the flags that go together. 0, or CLI_EXIT_USAGE with the message printed. */
int cli_hub_opts_check(const char *cmd, const struct cli_hub_opts *o);

/* ---- netreel pcapdump ---- */

#define CLI_MAX_NAMESPACES 64

struct cli_pcapdump_args {
    const char *dest, *output, *filter;
    int64_t since, until; /* absolute ns; since 0: everything retained */
    bool have_since, have_until, have_time, strict, pcap, force;
    bool all_sightings; /* --sightings=all: every copy of a packet seen on several interfaces */
    bool raw_clock;     /* --clock=raw: the nodes' own timestamps */
    /* the pod selection: -n NS (repeated, or with commas), --pod REGEX, -l SELECTOR */
    const char *namespaces[CLI_MAX_NAMESPACES];
    size_t n_namespaces;
    const char *pod_regex, *selector;
    uint32_t snaplen;
    bool follow;      /* --follow: the window, then live until Ctrl-C */
    int64_t lateness; /* --lateness (ns; 0: the hub's default) */
    bool quiet;       /* -q: no closing line */
    struct cli_hub_opts hub;
};

/* Whether the n bytes at s are a namespace name (a DNS label: a-z, 0-9, '-', at most 63). */
static inline bool cli_namespace_name(const char *s, size_t n)
{
    if (n == 0 || n > 63 || s[0] == '-' || s[n - 1] == '-')
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
            return false;
    return true;
}

/* `now_ns` is the wall clock that --time and a missing --until count from. 0, CLI_ARGS_HELP, or
 * CLI_EXIT_USAGE with the message printed. With --dest, -o must be a plain file name. */
int cli_pcapdump_args_parse(int argc, char **argv, int64_t now_ns, struct cli_pcapdump_args *a);

/* ---- netreel status, clean, version ---- */

struct cli_status_opts {
    struct cli_hub_opts hub;
    bool all;  /* --all, -o wide: the full table of nodes */
    bool json; /* -o json */
};

int cli_status_args_parse(int argc, char **argv, struct cli_status_opts *o);

int cli_clean_args_parse(int argc, char **argv, const char **release_ns);

int cli_version_args_parse(int argc, char **argv);

/* ---- netreel tap (cluster) ---- */

#define CLI_TAP_MAX_SETS       256
#define CLI_TAP_MAX_NAMESPACES 256

struct cli_tap_args {
    const char *regex, *ns_flag, *chart;
    /* -n and -e: each name a slice of its flag's value (no NUL after it) */
    const char *namespaces[CLI_TAP_MAX_NAMESPACES], *excluded[CLI_TAP_MAX_NAMESPACES];
    size_t namespaces_len[CLI_TAP_MAX_NAMESPACES], excluded_len[CLI_TAP_MAX_NAMESPACES];
    size_t n_namespaces, n_excluded;
    const char *sets[CLI_TAP_MAX_SETS];
    size_t n_sets;
    int tls; /* --tls[=true|false] as tap.tls: 1, 0, or -1 not given (the chart's default) */
};

/* True when argv (before a "--") holds --local: the arguments are tap --local's. */
bool cli_tap_is_local(int argc, char **argv);

int cli_tap_args_parse(int argc, char **argv, struct cli_tap_args *a);

/* ---- netreel tap --local ---- */

enum cli_local_child { CLI_LOCAL_CAPTURE, CLI_LOCAL_STORE, CLI_LOCAL_HUB, CLI_LOCAL_NCHILD };

#define CLI_LOCAL_MAX_SET_ARGS 40 /* flags and values --set adds to one child */

struct cli_tap_local_args {
    const char *iface; /* -i or --set tap.interface; NULL: the default interface */
    const char *data;  /* --data; NULL: the default folder */
    unsigned store_port, hub_port, metrics_base; /* metrics_base 0: off */
    /* what --set adds to each child's command line, in order */
    const char *sets[CLI_LOCAL_NCHILD][CLI_LOCAL_MAX_SET_ARGS];
    int n_sets[CLI_LOCAL_NCHILD];
    bool tls; /* --tls or --set tap.tls=true (the last one given wins): capture --tls */
};

int cli_tap_local_args_parse(int argc, char **argv, struct cli_tap_local_args *a);

#endif
