/* grpc.health.v1.Health for every lib/rpc server: Check (unary) and Watch (the current status,
 * then every change). rpc_server wires it in; services set their status through
 * rpc_server_set_health(). */
#ifndef NR_RPC_HEALTH_H
#define NR_RPC_HEALTH_H

#include <stddef.h>

#include "rpc/call.h"

struct rpc_health_entry;
struct rpc_health_watch;

struct rpc_health {
    struct rpc_health_entry *entries;
    struct rpc_health_watch *watchers;
};

#define RPC_HEALTH_CHECK_PATH "/grpc.health.v1.Health/Check"
#define RPC_HEALTH_WATCH_PATH "/grpc.health.v1.Health/Watch"

/* Method start functions; `data` is the struct rpc_health. 0, or a negative errno (-ENOMEM):
 * lib/rpc then answers the call with INTERNAL. */
int rpc_health_check_start(struct rpc_call *call, void *data);
int rpc_health_watch_start(struct rpc_call *call, void *data);

/* Sets a service's status (1 SERVING, 2 NOT_SERVING) and tells its watchers. 0 or -ENOMEM. */
int rpc_health_set(struct rpc_health *h, const char *service, int status);

/* Frees the entries. Watch calls must already be over (the server closes them first). */
void rpc_health_free(struct rpc_health *h);

#endif
