/* netreel clean: uninstalls the release `netreel tap` installed (helm uninstall). The
 * recordings on the nodes' disks stay (hostPath): the message says where. */
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "args.h"
#include "cli.h"
#include "hub.h"
#include "kube.h"
#include "proc.h"
#include "util/error.h"

static const char usage_text[] =
    "usage: netreel clean [--release-namespace NS]\n"
    "Uninstalls netreel from the current kube context (helm uninstall). Each node's recording\n"
    "stays in /var/lib/netreel until you delete it; a new `netreel tap` serves it again.\n"
    "\n"
    "  --release-namespace NS  where netreel is installed (default $NETREEL_NAMESPACE, else\n"
    "                          netreel)\n"
    "  --help\n"
    "\n"
    "Exit: 0 uninstalled (or nothing was installed), 1 helm failed, 2 bad usage, 4 helm,\n"
    "kubectl or a kube context is missing.\n";

int cli_clean(int argc, char **argv)
{
    const char *ns_flag, *ns;
    char helm[PATH_MAX], kubectl[PATH_MAX], context[256], line[512];
    const char *args[8];
    struct cli_output o;
    int rc = cli_clean_args_parse(argc, argv, &ns_flag);

    if (rc == CLI_ARGS_HELP) {
        fputs(usage_text, stdout);
        return CLI_EXIT_OK;
    }
    if (rc != 0)
        return rc;
    ns = cli_release_namespace(ns_flag);
    rc = cli_kube_ready("clean", helm, kubectl, sizeof(helm), context, sizeof(context));
    if (rc != 0)
        return rc;
    args[0] = helm;
    args[1] = "uninstall";
    args[2] = CLI_RELEASE;
    args[3] = "--namespace";
    args[4] = ns;
    args[5] = NULL;
    rc = cli_run(args, &o);
    if (rc < 0)
        return cli_error(CLI_EXIT_ENV, "clean: cannot run %s: %s", helm, nr_strerror(rc));
    if (rc != 0) {
        if (strstr(o.err, "not found")) {
            printf("netreel: nothing to clean: no release %s in namespace %s (context %s)\n",
                   CLI_RELEASE, ns, context);
            rc = CLI_EXIT_OK;
        } else {
            rc = cli_error(CLI_EXIT_FAIL, "clean: helm uninstall failed (exit %d): %s", rc,
                           cli_last_line(o.err, line, sizeof(line)));
        }
        cli_output_free(&o);
        return rc;
    }
    cli_output_free(&o);
    printf("netreel: uninstalled release %s from namespace %s (context %s).\n"
           "netreel: each node keeps its recording in /var/lib/netreel (hostPath storage) until "
           "you delete it.\n",
           CLI_RELEASE, ns, context);
    return CLI_EXIT_OK;
}
