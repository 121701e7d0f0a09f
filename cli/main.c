/* netreel: the command users type. A table of subcommands, each in its own file (as wg(8) does);
 * how they report errors is error.c, how they read their flags args.c. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "extcap.h"

static const struct cli_command commands[] = {
    {"tap", cli_tap, "record: install the chart into the kube context (or --local: this machine)"},
    {"pcapdump", cli_pcapdump, "take a snapshot: one time-ordered pcapng file from every node"},
    {"status", cli_status, "the cluster: totals, nodes that need attention (--all: per node)"},
    {"clean", cli_clean, "uninstall the release from the kube context"},
    {"version", cli_version, "print netreel's version"},
};

static void usage(FILE *f)
{
    fputs("usage: netreel COMMAND [options]   (netreel COMMAND --help for each)\n"
          "A continuous packet recorder for Kubernetes: every node keeps a rolling recording,\n"
          "and one command brings back any window of it as one time-ordered capture file.\n\n",
          f);
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].help);
    fputs("\nExamples:\n"
          "  netreel tap                      start recording the cluster (helm), decrypted\n"
          "                                   TLS included (--tls=false: without it)\n"
          "  netreel tap --local -i eth0      or record this machine, in the foreground\n"
          "  netreel tap --local --tls        ... with decrypted TLS (as root)\n"
          "  netreel pcapdump --time=5m       the last 5 minutes of every node, one file\n"
          "  wireshark -k -i netreel          the cluster live in Wireshark (make install puts\n"
          "                                   netreel in its extcap folder)\n"
          "\nExit codes: 0 ok, 1 failed, 2 bad usage, 3 a store is missing, 4 a tool or kube\n"
          "context is missing, 130 interrupted (docs/cli.md).\n",
          f);
}

int main(int argc, char **argv)
{
    const char *name = argc > 1 ? argv[1] : NULL;

    if (!name) {
        usage(stderr);
        return CLI_EXIT_USAGE;
    }
    /* Wireshark runs the netreel of its extcap folder with flags of its own (cli/extcap.h). */
    if (cli_extcap_wanted(argc, argv))
        return cli_extcap(argc, argv);
    if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0 || strcmp(name, "help") == 0) {
        /* `netreel help pcapdump` is `netreel pcapdump --help`. */
        if (strcmp(name, "help") == 0 && argc > 2) {
            char *args[] = {argv[2], "--help", NULL};
            for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
                if (strcmp(argv[2], commands[i].name) == 0)
                    return commands[i].fn(2, args);
            return cli_error(CLI_EXIT_USAGE, "unknown command \"%s\" (netreel --help)", argv[2]);
        }
        usage(stdout);
        return CLI_EXIT_OK;
    }
    if (strcmp(name, "--version") == 0)
        return cli_version(1, argv + 1);
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (strcmp(name, commands[i].name) == 0)
            return commands[i].fn(argc - 1, argv + 1);
    return cli_error(CLI_EXIT_USAGE, "unknown command \"%s\" (netreel --help lists them)", name);
}
