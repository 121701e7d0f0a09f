/* The stores a request goes to: --stores resolved afresh for every request (dns:NAME:PORT to
 * every A/AAAA record of NAME, as a headless Service answers), and the gRPC channels to them,
 * with the store TLS settings: one per call, an idle one kept for the next call until
 * --store-idle-timeout, then closed (the memory after a burst of snapshots comes back, and the
 * addresses of nodes that are gone are forgotten). */
#ifndef NR_HUB_STORES_H
#define NR_HUB_STORES_H

#include <stddef.h>

#include "hub/hub.h"
#include "rpc/client.h"

/* Checks the --stores syntax. Returns 0 or -EINVAL with a reason in err. */
int hub_stores_check(const char *spec, char *err, size_t errlen);

/* Resolves the list; cb gets the addresses (n may be 0) or an error message (one line) when
 * nothing could be resolved at all. Entries that do not resolve are passed as failed entries
 * (failed[i] set with the reason) so a snapshot can name them. */
struct hub_resolved {
    struct hub_store_addr *addrs;
    char (*failed)[256]; /* "" when resolved */
    size_t n;
};
typedef void (*hub_resolve_cb)(struct hub_resolved *r, void *arg);

/* Starts resolving; cb runs from the loop (never inside this call). Returns 0 or -ENOMEM. */
int hub_stores_resolve(struct hub *h, hub_resolve_cb cb, void *arg);

void hub_resolved_free(struct hub_resolved *r);

/* A channel to addr (TLS verifying authority, as hub_store_addr says) that no other call holds
 * (an idle one kept from before, else a new connection; past --max-snapshots + 4 of them, the
 * least used is shared), for one call. The caller gives it back with hub_stores_release once
 * that call is over. NULL with err on a TLS or address error. */
struct rpc_channel *hub_stores_channel(struct hub *h, const char *addr, const char *authority,
                                       char *err, size_t errlen);
void hub_stores_release(struct hub *h, struct rpc_channel *ch);

/* Remembers which node answered at an address, so a store that is down later can be named by
 * its node. hub_stores_node returns it, or NULL when the address never answered. */
void hub_stores_remember(struct hub *h, const char *addr, const char *node);
const char *hub_stores_node(const struct hub *h, const char *addr);

/* The last clock a snapshot's probe measured for the node at an address (hub/clock.h), for
 * Status. Remembered only for an address that answered (hub_stores_remember); the lookup is NULL
 * when none was. */
struct hub_store_clock {
    bool known;
    int64_t offset_ns, uncertainty_ns;
    uint64_t samples;
    int64_t measured_ns; /* when */
    char reference[254]; /* the node it is against */
};
void hub_stores_remember_clock(struct hub *h, const char *addr, const struct hub_store_clock *c);
const struct hub_store_clock *hub_stores_clock(const struct hub *h, const char *addr);

/* Store channels kept: in use by a call, and idle. */
void hub_stores_count(const struct hub *h, size_t *in_use, size_t *idle);

/* Closes every channel (and forgets the node names); cb(arg) once all are closed. */
void hub_stores_close(struct hub *h, void (*cb)(void *arg), void *arg);

#endif
