/* Store.Stats and the numbers /metrics exports: retained window, disk use, segments, per
 * capture stream counters, deletions by reason. */
#ifndef NR_STORE_STATS_H
#define NR_STORE_STATS_H

#include "rpc/call.h"
#include "store/store.h"
#include "util/buf.h"

/* The Stats method's start function; data is the struct store. */
int store_stats_start(struct rpc_call *call, void *data);

/* Writes the Prometheus text exposition of the store's state into b. Returns 0 or -EOVERFLOW /
 * -ENOMEM from the buffer. */
int store_metrics_write(const struct store *s, struct nr_buf *b);

#endif
