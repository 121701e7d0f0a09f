/* How every subcommand reports: one line on stderr starting "netreel: ", whatever a peer or a
 * program put in the message. Apart from main.c so that the fuzz target of the argument parsers
 * (which has its own main) links it; there the line is formatted but not printed. */
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static void emit(const char *prefix, char *line)
{
    for (char *p = line; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
#ifndef NR_FUZZING
    fprintf(stderr, "netreel: %s%s\n", prefix, line);
#else
    (void)prefix;
#endif
}

int cli_error(int code, const char *fmt, ...)
{
    char line[2048];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    emit("", line);
    return code;
}

void cli_warn(const char *fmt, ...)
{
    char line[2048];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    emit("WARNING: ", line);
}

int cli_bad_option(const char *cmd, int c, char **argv)
{
    const char *opt = argv[optind - 1];

    /* A short option glued to others ("-xq"): name the letter. */
    if (optopt && opt[0] == '-' && opt[1] != '-') {
        char s[3] = {'-', (char)optopt, 0};
        opt = s;
        if (c == ':')
            return cli_error(CLI_EXIT_USAGE, "%s: option %s needs a value (netreel %s --help)", cmd,
                             opt, cmd);
        return cli_error(CLI_EXIT_USAGE, "%s: unknown option %s (netreel %s --help)", cmd, opt,
                         cmd);
    }
    if (c == ':')
        return cli_error(CLI_EXIT_USAGE, "%s: option %s needs a value (netreel %s --help)", cmd,
                         opt, cmd);
    return cli_error(CLI_EXIT_USAGE, "%s: unknown option %s (netreel %s --help)", cmd, opt, cmd);
}
