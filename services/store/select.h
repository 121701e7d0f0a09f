/* A snapshot's pod selection (pcapdump's -n, --pod, -l): only the packets sent or received by
 * the pods that matched when the packet was seen. Who held an address when is the pod history
 * the segments keep (podset.h): each capture stream's pod sets in time order, each taking
 * effect at its since_ns; a packet at time t of a stream is judged by that stream's last set
 * with since_ns <= t, so a pod deleted an hour ago is still found, and a later pod that got the
 * same address is not mistaken for it. A packet is selected when its source or destination
 * address belonged then to a matching pod, or when it was seen on a matching pod's own device
 * (the interface's k8s.* description: capture/ifaces.h), whatever NAT did to its addresses. */
#ifndef NR_STORE_SELECT_H
#define NR_STORE_SELECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "netreel/v1/store.pb-c.h"
#include "pcapng/pcapng.h"
#include "store/store.h"

struct store_select;

/* The selection a request asks for: 0 with *out NULL when it asks for none, 0 with a selection,
 * NR_EPARSE with a one-line reason in err (a namespace that is not a DNS label, a regex that
 * PCRE2 does not compile within the bounds of kube/target.h, a label selector that does not
 * parse), or -ENOMEM. */
int store_select_new(const Netreel__V1__SnapshotRequest *req, struct store_select **out, char *err,
                     size_t errlen);
void store_select_free(struct store_select *sel);

/* Tells the selection about stream `stream` (0..): the pod sets of one of its segments from
 * its set `from` on, in segment order (call for each segment of the window, oldest first; a
 * follow calls again for the sets a segment got since). The selection holds a reference to
 * each set. 0 or -ENOMEM. */
int store_select_add_segment(struct store_select *sel, uint32_t stream,
                             const struct store_segment *seg, size_t from);

/* Tells it about output interface out_id: its link type and the capture's description. */
int store_select_iface(struct store_select *sel, uint32_t out_id, uint32_t link_type,
                       const char *desc);

/* Whether the packet of stream `stream`, on output interface out_id, passes. Packets of one
 * stream must come in time order. */
bool store_select_passes(struct store_select *sel, uint32_t stream, uint32_t out_id,
                         const struct pcapng_epb *epb);

/* How many times so far the name regex stopped at its limit on a pod's name (once per pod set
 * that holds the pod): those pods were selected (kube_selector_match fails open). sel may be
 * NULL (0). */
size_t store_select_limited(const struct store_select *sel);

#endif
