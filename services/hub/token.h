/* The hub's one check of who calls: with --token-file, every method but the health service wants
 * "authorization: Bearer <token>". */
#ifndef NR_HUB_TOKEN_H
#define NR_HUB_TOKEN_H

#include "hub/hub.h"
#include "rpc/call.h"

/* 0 when the call carries the hub's token (always without --token-file), else -EACCES. The
 * comparison takes the same time wherever the token differs. */
int hub_check_token(const struct hub *h, struct rpc_call *call);

#endif
