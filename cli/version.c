/* netreel version. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "util/version.h"

int cli_version(int argc, char **argv)
{
    if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        puts("usage: netreel version\nPrints netreel's version (the same for every program).");
        return CLI_EXIT_OK;
    }
    if (argc > 1)
        return cli_error(CLI_EXIT_USAGE, "version: unexpected argument \"%s\"", argv[1]);
    printf("netreel %s\n", NR_VERSION);
    return CLI_EXIT_OK;
}
