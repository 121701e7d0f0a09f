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
