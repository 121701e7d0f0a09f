/* netreel as Wireshark's capture interface "netreel: cluster" (the extcap protocol; docs/cli.md,
 * "Wireshark: netreel as a capture interface"). Wireshark runs the `netreel` in its extcap
 * folder with --extcap-interfaces, --extcap-dlts, --extcap-config to learn about the interface,
 * with --extcap-capture-filter alone to check a capture filter, and with --capture --fifo PATH
 * to record: that becomes `netreel pcapdump --follow ... -o -` with stdout on the fifo.
 * Everything Wireshark passes is untrusted: it is read by a pure parser that caps every value
 * and refuses what pcapdump would refuse, and runs nothing (no shell, ever). */
#ifndef NR_CLI_EXTCAP_H
#define NR_CLI_EXTCAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CLI_EXTCAP_IFACE      "netreel"
#define CLI_EXTCAP_VALUE_MAX  4096        /* bytes of one option's value (a filter excepted) */
#define CLI_EXTCAP_FILTER_MAX (16 * 1024) /* bytes of the filter pcapdump gets: its own cap */
#define CLI_EXTCAP_ARGV_MAX   32          /* arguments of the pcapdump command line */

/* What Wireshark asks for. */
enum cli_extcap_action {
    CLI_EXTCAP_NONE,
    CLI_EXTCAP_INTERFACES,   /* --extcap-interfaces */
    CLI_EXTCAP_VERSION,      /* --extcap-version alone */
    CLI_EXTCAP_DLTS,         /* --extcap-dlts */
    CLI_EXTCAP_CONFIG,       /* --extcap-config */
    CLI_EXTCAP_FILTER_CHECK, /* --extcap-capture-filter F without an action: is F valid? */
    CLI_EXTCAP_CAPTURE,      /* --capture --fifo PATH */
    CLI_EXTCAP_CLEANUP,      /* --extcap-cleanup-postkill: nothing to clean */
};

/* The command line Wireshark gave. Every pointer is NULL when its option was not given or
 * given empty, and otherwise points into argv or into the struct's own buffers: argv must
 * outlive it. */
struct cli_extcap_args {
    enum cli_extcap_action action;
    const char *fifo;
    const char *time, *lateness; /* durations, checked */
    const char *filter;          /* --filter and --extcap-capture-filter, ANDed when both */
    const char *capture_filter;  /* --extcap-capture-filter alone (for CLI_EXTCAP_FILTER_CHECK) */
    const char *namespaces;      /* "a,b": every -n, names checked, spaces and empty items out */
    const char *pod, *selector, *hub;
    const char *sightings, *clock; /* "one"/"all", "aligned"/"raw" */
    char ns_buf[CLI_EXTCAP_VALUE_MAX + 1];
    char filter_buf[CLI_EXTCAP_FILTER_MAX + 1];
};

/* pcapdump's command line for a capture: argv[0] "netreel", argv[1] "pcapdump". */
struct cli_extcap_cmd {
    int argc;
    const char *argv[CLI_EXTCAP_ARGV_MAX + 1]; /* NULL-terminated */
    char since[40];                            /* --since's value when no --time was given */
};

/* True when argv is Wireshark's: argv[1] is a flag, not a subcommand, and an argument starts
 * with "--extcap-" or is "--capture". */
bool cli_extcap_wanted(int argc, char **argv);

/* Parses argv (argv[0] the program). Options Wireshark adds that mean nothing here
 * (--extcap-version=V, --extcap-control-in/out, --log-level, --log-file, --debug, --debug-file)
 * are taken and ignored; any other unknown option, a value past its cap, a control character,
 * a duration, namespace, regex, label selector, hub address, sightings or clock that pcapdump
 * would refuse, an interface other than "netreel", or --capture without --fifo is one line on
 * stderr (cli_error) and CLI_EXIT_USAGE. Returns 0 or CLI_EXIT_USAGE. Allocates only for the
 * checks, and frees before it returns. */
int cli_extcap_args_parse(int argc, char **argv, struct cli_extcap_args *a);

/* Builds `netreel pcapdump --follow [--time DUR | --since NOW] [--lateness DUR] [--filter F]
 * [--namespace NS] [--pod RE] [--selector S] [--hub ADDR] [--sightings S] [--clock C] -o -`
 * from a parsed capture's args: without --time the window starts at now_ns (UTC, RFC 3339).
 * Pointers in cmd point into a, into argv, into cmd or at constants. Returns 0, or -ENOSPC if
 * the line would pass CLI_EXTCAP_ARGV_MAX (it cannot with the options above). */
int cli_extcap_pcapdump_argv(const struct cli_extcap_args *a, int64_t now_ns,
                             struct cli_extcap_cmd *cmd);

/* Whether filter compiles as a BPF expression for the link types the recording holds
 * (LINUX_SLL2 and Ethernet), as each store compiles it. Returns 0, NR_EPARSE with libpcap's
 * reason in err, or -ENOMEM. */
int cli_extcap_filter_check(const char *filter, char *err, size_t errlen);

/* The entry point: answers Wireshark, or for a capture opens the fifo, puts it on stdout and
 * execs this program as pcapdump (so that Wireshark's SIGTERM reaches pcapdump). With
 * $NETREEL_EXTCAP_DRY_RUN=1 a capture prints pcapdump's arguments, one a line, and exits 0
 * instead (the tests). Returns an exit code (only when it does not exec). */
int cli_extcap(int argc, char **argv);

#endif
