/* What the cluster subcommands (tap, clean) need before they run helm: helm and kubectl on
 * $PATH and a current kube context, each missing one a clear error. */
#ifndef NR_CLI_KUBE_H
#define NR_CLI_KUBE_H

#include <stddef.h>

/* The release name every object of the chart is named after (docs/deploy.md). */
#define CLI_RELEASE "netreel"

/* Finds helm and kubectl (paths into helm/kubectl) and checks the current context, whose name
 * goes into context. Returns 0, or CLI_EXIT_ENV with the message printed. */
int cli_kube_ready(const char *cmd, char *helm, char *kubectl, size_t len, char *context,
                   size_t context_len);

#endif
