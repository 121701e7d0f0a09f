/* The checks before helm runs: helm, kubectl and a current kube context. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "kube.h"
#include "proc.h"
#include "util/error.h"

int cli_kube_ready(const char *cmd, char *helm, char *kubectl, size_t len, char *context,
                   size_t context_len)
{
    const char *argv[4];
    struct cli_output o;
    char line[300];
    int rc;

    if (cli_find_program("helm", helm, len) != 0)
        return cli_error(CLI_EXIT_ENV,
                         "%s: helm is not on PATH: install Helm 3.8 or later "
                         "(https://helm.sh/docs/intro/install/), or record this machine "
                         "without a cluster: netreel tap --local",
                         cmd);
    if (cli_find_program("kubectl", kubectl, len) != 0)
        return cli_error(CLI_EXIT_ENV,
                         "%s: kubectl is not on PATH: install it and point it at "
                         "the cluster (a kube context)",
                         cmd);
    argv[0] = kubectl;
    argv[1] = "config";
    argv[2] = "current-context";
    argv[3] = NULL;
    rc = cli_run(argv, &o);
    if (rc != 0) {
        rc = cli_error(CLI_EXIT_ENV,
                       "%s: no kube context: `kubectl config current-context` failed (%s); "
                       "choose one with kubectl config use-context NAME",
                       cmd, rc < 0 ? nr_strerror(rc) : cli_last_line(o.err, line, sizeof(line)));
        if (rc >= 0)
            cli_output_free(&o);
        return CLI_EXIT_ENV;
    }
    cli_last_line(o.out, context, context_len);
    cli_output_free(&o);
    if (!context[0])
        return cli_error(CLI_EXIT_ENV,
                         "%s: no kube context: kubectl config current-context "
                         "printed nothing",
                         cmd);
    return 0;
}
