/* libFuzzer target for the extcap's parser (cli/extcap.c): the command line Wireshark passes,
 * which anyone who can set Wireshark's preferences chooses. The input is argv, NUL-separated
 * (argv[0] is "netreel"). The parser either refuses with CLI_EXIT_USAGE or accepts, and then
 * a capture's pcapdump command line holds only pcapdump's flags, each followed by a value that
 * came from argv or from the parser's own checked buffers, with no control character in it and
 * within the caps. As fuzz_cli_args does, the files are compiled in, NR_FUZZING keeping their
 * error lines quiet. The BPF check (libpcap) is left out: it is libpcap's parser. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../cli/error.c"
#include "../../cli/extcap.c"
#include "fuzz.h"

#define MAX_ARGV 64
#define NOW_NS   INT64_C(1795000000000000000)

/* As fuzz_cli_args: PCRE2 compiles every --pod; a smaller quarantine keeps ASan's RSS down. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
    return "quarantine_size_mb=64";
}

static char *args[MAX_ARGV + 1];
static int nargs;
static struct cli_extcap_args a;
static struct cli_extcap_cmd cmd;

static bool inside(const char *p, const char *buf, size_t size)
{
    return p >= buf && p < buf + size;
}

/* p points into an argument, or into one of the parser's buffers. */
static bool owned(const char *p)
{
    for (int i = 0; i < nargs; i++)
        if (p >= args[i] && p <= args[i] + strlen(args[i]))
            return true;
    return inside(p, a.ns_buf, sizeof(a.ns_buf)) || inside(p, a.filter_buf, sizeof(a.filter_buf)) ||
           inside(p, cmd.since, sizeof(cmd.since));
}

static bool clean(const char *s, size_t max)
{
    size_t n = strlen(s);

    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return false;
    return n <= max;
}

static void check_capture(void)
{
    static const char *const flags[] = {"--time",      "--since", "--lateness", "--filter",
                                        "--namespace", "--pod",   "--selector", "--hub",
                                        "--sightings", "--clock", "-o"};

    CHECK(a.fifo && a.fifo[0] && owned(a.fifo));
    CHECK(cli_extcap_pcapdump_argv(&a, NOW_NS, &cmd) == 0);
    CHECK(cmd.argc >= 7 && cmd.argc <= CLI_EXTCAP_ARGV_MAX && cmd.argv[cmd.argc] == NULL);
    CHECK(strcmp(cmd.argv[0], "netreel") == 0 && strcmp(cmd.argv[1], "pcapdump") == 0 &&
          strcmp(cmd.argv[2], "--follow") == 0 && strcmp(cmd.argv[3], "-q") == 0);
    CHECK(strcmp(cmd.argv[cmd.argc - 2], "-o") == 0 && strcmp(cmd.argv[cmd.argc - 1], "-") == 0);
    CHECK((cmd.argc - 4) % 2 == 0);
    for (int i = 4; i < cmd.argc; i += 2) {
        bool known = false;
        for (size_t f = 0; f < sizeof(flags) / sizeof(flags[0]); f++)
            known |= strcmp(cmd.argv[i], flags[f]) == 0;
        CHECK(known);
        CHECK(cmd.argv[i + 1] && cmd.argv[i + 1][0]);
        CHECK(i + 1 == cmd.argc - 1 || owned(cmd.argv[i + 1]));
        CHECK(clean(cmd.argv[i + 1], strcmp(cmd.argv[i], "--filter") == 0 ? CLI_EXTCAP_FILTER_MAX
                                                                          : CLI_EXTCAP_VALUE_MAX));
    }
    if (a.namespaces) {
        size_t names = 1;
        CHECK(a.namespaces[0] != ',' && a.namespaces[strlen(a.namespaces) - 1] != ',');
        for (const char *p = a.namespaces; *p; p++) {
            CHECK((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' || *p == ',');
            CHECK(!(p[0] == ',' && p[1] == ','));
            names += *p == ',';
        }
        CHECK(names <= CLI_MAX_NAMESPACES);
    }
    CHECK(!a.sightings || strcmp(a.sightings, "one") == 0 || strcmp(a.sightings, "all") == 0);
    CHECK(!a.clock || strcmp(a.clock, "aligned") == 0 || strcmp(a.clock, "raw") == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data, *end = (const char *)data + size;
    char *argv[MAX_ARGV + 1];
    int rc;

    args[0] = strdup("netreel");
    nargs = 1;
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
    memcpy(argv, args, sizeof(argv)); /* getopt may permute argv */
    rc = cli_extcap_args_parse(nargs, argv, &a);
    CHECK(rc == 0 || rc == CLI_EXIT_USAGE);
    if (rc == 0) {
        CHECK(a.action != CLI_EXTCAP_NONE);
        CHECK(!a.filter || (owned(a.filter) && clean(a.filter, CLI_EXTCAP_FILTER_MAX)));
        if (a.action == CLI_EXTCAP_CAPTURE)
            check_capture();
    }
    for (int i = 0; i < nargs; i++)
        free(args[i]);
    nargs = 0;
    return 0;
}
