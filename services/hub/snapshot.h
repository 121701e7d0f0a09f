/* Hub.Snapshot: the same window from every store at once, merged by timestamp into one file —
 * pcapng (SHB with the window and the stores, an IDB per node and interface named node/iface,
 * an NRB of pod names, EPBs in non-decreasing timestamp order, ISBs with each capture's
 * counters) or classic nanosecond pcap — streamed as FileChunks. Each store's stream is held
 * one message at a time (its call paused meanwhile), so a slow caller's back-pressure reaches
 * the stores through HTTP/2 flow control and memory stays flat. A store that fails or stays
 * silent is left out, and the summary says which and why. */
#ifndef NR_HUB_SNAPSHOT_H
#define NR_HUB_SNAPSHOT_H

#include "hub/hub.h"
#include "rpc/call.h"

/* The Snapshot method's start function; data is the struct hub. 0, or -ENOMEM (the call is
 * then answered INTERNAL by lib/rpc). */
int hub_snapshot_start(struct rpc_call *call, void *data);

#endif
