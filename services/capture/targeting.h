/* Pod targeting for the capture (--kube / --kubeconfig): the node's pods from the Kubernetes
 * API (lib/kube), turned into the capture filter `ip host A or ip6 host B …` (ANDed with the
 * self-exclusion term) swapped onto the live handles, and into the pod names the store writes
 * into its Name Resolution Blocks. Until the first list arrives nothing is recorded; when the
 * API fails, the last good filter stays. */
#ifndef NR_CAPTURE_TARGETING_H
#define NR_CAPTURE_TARGETING_H

#include <stdbool.h>
#include <stddef.h>

#include "capture/capture.h"
#include "util/metrics.h"

/* Loads the configuration (kubeconfig or in-cluster, with every file it names read now, while
 * they are still readable) and prepares the watch. Call before capture threads exist. Returns 0
 * or a negative code with a one-line reason in err. */
int capture_targeting_new(struct capture *cap, char *err, size_t errlen);

/* Starts listing and watching. */
int capture_targeting_start(struct capture *cap);

/* Writes the targeting's /metrics families (nothing without --kube). */
void capture_targeting_metrics(const struct capture *cap, struct nr_metrics *m);

/* Stops the watch; cb(arg) runs from the loop once it is gone (right away without --kube). */
void capture_targeting_close(struct capture *cap, void (*cb)(void *arg), void *arg);

#endif
