/* netreel version. */
#include <stdio.h>

#include "args.h"
#include "cli.h"
#include "util/version.h"

int cli_version(int argc, char **argv)
{
    int rc = cli_version_args_parse(argc, argv);

    if (rc == CLI_ARGS_HELP) {
        puts("usage: netreel version\nPrints netreel's version (the same for every program).");
        return CLI_EXIT_OK;
    }
    if (rc != 0)
        return rc;
    printf("netreel %s\n", NR_VERSION);
    return CLI_EXIT_OK;
}
