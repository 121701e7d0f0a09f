/* What every netreel program does the same way at its edges: its name in messages, one line
 * and exit status 2 for a bad flag or a failed start, and the wall clock in nanoseconds. */
#ifndef NR_UTIL_PROG_H
#define NR_UTIL_PROG_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "util/httpd.h"

/* The name nr_die prefixes ("netreel-store"); the string must outlive the program. */
void nr_prog_set_name(const char *name);

/* Prints "NAME: message" on stderr and exits with status 2. */
void nr_die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* The options every service takes, last in its getopt_long table (NR_PROG_OPTIONS ends the
 * table): --node, --log-level, --version, --help. Their codes are above any a program uses. */
enum { NR_PROG_O_NODE = 0x4e00, NR_PROG_O_LOG, NR_PROG_O_VERSION };
/* clang-format off */
#define NR_PROG_OPTIONS                                                                            \
    {"node", required_argument, NULL, NR_PROG_O_NODE},                                             \
    {"log-level", required_argument, NULL, NR_PROG_O_LOG},                                         \
    {"version", no_argument, NULL, NR_PROG_O_VERSION},                                             \
    {"help", no_argument, NULL, 'h'},                                                              \
    {NULL, 0, NULL, 0}
/* clang-format on */

/* The `default:` of a service's option switch (getopt_long with ":" leading its short options):
 * --node sets *node, --log-level the log level, --version and --help print (`usage` for help)
 * and exit 0; a missing value, an unknown option or a bad level is one line and exit 2. */
void nr_prog_option(int c, char **argv, const char *usage, const char **node);

/* CLOCK_REALTIME in Unix nanoseconds. */
int64_t nr_now_ns(void);

/* The --metrics-listen server of a service (its /metrics and /healthz routes): NULL for "off"
 * or "", else started — or nr_die with the reason. */
struct nr_httpd *nr_prog_metrics(uv_loop_t *loop, const char *listen,
                                 const struct nr_httpd_route *routes, size_t n_routes);

/* Raises the soft limit of open descriptors to the hard one: a store's snapshots hold one per
 * segment they read, a hub one per store. Returns the limit now in force (0 if unknown). */
uint64_t nr_prog_raise_nofile(void);

/* At shutdown: closes every handle still open on the loop, so uv_run returns. */
void nr_prog_close_handles(uv_loop_t *loop);

#endif
