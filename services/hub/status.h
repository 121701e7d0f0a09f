/* Hub.Status: every store's Stats and whether it could be reached, in parallel, each with a
 * deadline (--store-timeout). */
#ifndef NR_HUB_STATUS_H
#define NR_HUB_STATUS_H

#include "hub/hub.h"
#include "rpc/call.h"

/* The Status method's start function; data is the struct hub. 0, or -ENOMEM (the call is then
 * answered INTERNAL by lib/rpc). */
int hub_status_start(struct rpc_call *call, void *data);

#endif
