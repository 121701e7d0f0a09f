/* What the netreel subcommands share: the exit codes every one of them documents, one-line
 * errors, and the entry point each subcommand's file provides to the table in main.c. */
#ifndef NR_CLI_CLI_H
#define NR_CLI_CLI_H

/* The exit codes of every subcommand (docs/cli.md). */
enum cli_exit {
    CLI_EXIT_OK = 0,
    CLI_EXIT_FAIL = 1,       /* the work failed: hub unreachable, stream cut, I/O, a child died */
    CLI_EXIT_USAGE = 2,      /* a bad flag or value: nothing was done */
    CLI_EXIT_INCOMPLETE = 3, /* a store is missing (pcapdump --strict, status) */
    CLI_EXIT_ENV = 4,        /* kubectl, helm, a kube context or a program is missing */
    CLI_EXIT_INTERRUPTED = 130, /* Ctrl-C or SIGTERM during pcapdump: no file was written */
};

/* One subcommand: argv[0] is its name, the rest its arguments. Returns an exit code. */
struct cli_command {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *help; /* one line for `netreel --help` */
};

int cli_pcapdump(int argc, char **argv);
int cli_status(int argc, char **argv);
int cli_tap(int argc, char **argv);
int cli_tap_local(int argc, char **argv);
int cli_clean(int argc, char **argv);
int cli_version(int argc, char **argv);

/* Prints "netreel: " and the message as one line on stderr; returns `code`. */
int cli_error(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Makes text from a peer (a hub, a store, a program) safe to print on a terminal, in place:
 * line breaks and tabs become spaces, other control characters (C0, DEL, and C1 as UTF-8,
 * which would start escape sequences) become '?'. cli_error and cli_warn do it to their line. */
void cli_sanitize(char *s);

/* "netreel: WARNING: ..." on stderr. */
void cli_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The usage error of a subcommand's getopt loop for option character c (':' a missing value,
 * anything else an unknown option), pointing at --help. Returns CLI_EXIT_USAGE. */
int cli_bad_option(const char *cmd, int c, char **argv);

#endif
