/* How every subcommand reports: one line on stderr starting "netreel: ", whatever a peer or a
 * program put in the message (no line break, no terminal control sequence). Apart from main.c so
 * that the fuzz target of the argument parsers (which has its own main) links it; there the line is
 * formatted but not printed. */
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

void cli_sanitize(char *s)
{
    for (unsigned char *p = (unsigned char *)s; *p; p++) {
        if (*p == '\n' || *p == '\r' || *p == '\t')
            *p = ' ';
        else if (*p < 0x20 || *p == 0x7f)
            *p = '?';
        else if (*p == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f) /* U+0080..U+009F, e.g. CSI */
            p[0] = p[1] = '?';
    }
}

static void emit(const char *prefix, char *line)
{
    cli_sanitize(line);
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
