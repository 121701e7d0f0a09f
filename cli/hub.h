/* Finding the hub and talking to it: --hub, else $NETREEL_HUB, else the hub of a local
 * `netreel tap --local` (its data folder says where it is, and holds the client certificate and
 * the token), else `kubectl port-forward` to service/netreel-hub in the release namespace with
 * the token and client certificate read from the chart's Secrets. Shared by pcapdump and
 * status. */
#ifndef NR_CLI_HUB_H
#define NR_CLI_HUB_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <uv.h>

#include "args.h"
#include "rpc/client.h"

/* --release-namespace, else $NETREEL_NAMESPACE, else "netreel". */
const char *cli_release_namespace(const char *flag);

/* A hub found and how to reach it. Owns the port-forward child and the temporary folder of the
 * certificates read from the cluster; cli_hub_release() ends both. */
struct cli_hub {
    char target[300];
    char how[200]; /* how it was found, for messages */
    char *token;
    char bearer[4200];
    const char *metadata[3];
    const char *tls_ca, *tls_cert, *tls_key;
    char tmpdir[PATH_MAX];
    char ca_file[PATH_MAX], cert_file[PATH_MAX], key_file[PATH_MAX];
    pid_t forward_pid;
    int forward_fd;
};

/* Finds the hub (see above; docs/cli.md "How the hub is found"). With --data or $NETREEL_DATA
 * and --hub/$NETREEL_HUB, that folder's credentials are used for the hub given. Returns 0, or an
 * exit code with the message printed. */
int cli_hub_find(const struct cli_hub_opts *o, struct cli_hub *h);

/* Stops the port-forward and removes the temporary certificates. Safe to call twice. */
void cli_hub_release(struct cli_hub *h);

/* A channel to the hub with its TLS material. NULL with a reason in err. */
struct rpc_channel *cli_hub_channel(uv_loop_t *loop, const struct cli_hub *h, char *err,
                                    size_t errlen);

/* The call metadata: the bearer token, or NULL when there is none. */
const char *const *cli_hub_metadata(struct cli_hub *h);

/* Prints why a call to the hub (`what`: "snapshot", "status") ended with gRPC status `code`,
 * with a hint for the common causes. Returns CLI_EXIT_FAIL. */
int cli_hub_failed(const struct cli_hub *h, const char *what, int code, const char *message);

#endif
