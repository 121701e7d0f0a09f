/* What every netreel program does the same way at its edges: its name in messages, one line
 * and exit status 2 for a bad flag or a failed start, and the wall clock in nanoseconds. */
#ifndef NR_UTIL_PROG_H
#define NR_UTIL_PROG_H

#include <stdint.h>

/* The name nr_die prefixes ("netreel-store"); the string must outlive the program. */
void nr_prog_set_name(const char *name);

/* Prints "NAME: message" on stderr and exits with status 2. */
void nr_die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* CLOCK_REALTIME in Unix nanoseconds. */
int64_t nr_now_ns(void);

#endif
