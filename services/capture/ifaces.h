/* The capture's interfaces as the store and the output files see them. Each source (a libpcap
 * handle) is one, and so is `tls`; a source on "any" (LINUX_SLL2, which carries the device's
 * index in every packet) is split into one interface per network device its packets came
 * through, each described by what the device is:
 *
 *   a pod's device (the host end of its veth, found as devices.h says):
 *       name "NAMESPACE/POD", description "k8s.node=N;k8s.namespace=NS;k8s.podName=P;
 *       k8s.podUID=U;k8s.podLabels=k=v,...;netreel.device=D;netreel.role=pod"
 *   the node's own:  name "DEVICE", description "k8s.node=N;netreel.device=D;netreel.role=R"
 *       with R uplink (a default route's device, or a NIC), overlay (vxlan, geneve, ipip,
 *       wireguard, ...), bridge, veth, loopback or device.
 *
 * An interface, once it has an id, never changes (pcapng IDBs cannot): a device whose owner is
 * learnt later (the pod list came after its first packets) gets a new id from then on. Ids are
 * 0..n-1 in the order they were made, within one capture stream (capture->stream, one
 * capture_id). Devices come and go with pods, so a long-lived capture fills its table with the
 * dead: when it nears CAPTURE_IFACES_MAX (or the devices seen near CAPTURE_DEVICES_SEEN), the
 * pipeline begins a new stream (capture_ifaces_roll) whose table holds the fixed interfaces
 * (sources', tls) and then the devices as their packets come; the old table is kept while the
 * spool holds batches of its stream. Past the limit within one stream (at most one new stream a
 * minute), packets of further devices stay on their source's own interface ("any"), counted.
 * All of it on the loop. */
#ifndef NR_CAPTURE_IFACES_H
#define NR_CAPTURE_IFACES_H

#include <stdbool.h>
#include <stdint.h>

#include "capture/capture.h"
#include "util/metrics.h"

#define CAPTURE_IFACES_MAX   256u /* the store's limit per capture stream */
#define CAPTURE_IFNAME_MAX   255u
#define CAPTURE_IFDESC_MAX   2047u
#define CAPTURE_DEVICES_SEEN 4096u /* distinct (source, device) pairs remembered */

struct capture_iface {
    char name[CAPTURE_IFNAME_MAX + 1];
    char *desc; /* NULL: nothing more than the name */
    uint32_t link_type, snaplen;
};

struct capture_batch;

/* Opens the netlink socket that splitting "any" needs (without it: one warning, no splitting)
 * and registers every source's interface but a split one's, telling each source its id
 * (capture_source_set_ifid). Call before the sources start. 0 or -ENOMEM. */
int capture_ifaces_init(struct capture *cap);
void capture_ifaces_free(struct capture *cap);

/* Registers an interface of the capture's own (`tls`): 0 and its id, or -ENOSPC / -ENOMEM.
 * capture_ifaces_next_id says beforehand which id the next one gets. */
int capture_ifaces_add(struct capture *cap, const char *name, uint32_t link_type, uint32_t snaplen,
                       uint32_t *id);
uint32_t capture_ifaces_next_id(const struct capture *cap);

/* The batch of a LINUX_SLL2 source gets each packet's interface id from its device (its EPBs'
 * interface ids are rewritten in place); other batches are left as they are. */
void capture_ifaces_split(struct capture *cap, struct capture_batch *b);

/* The pod set is about to be replaced by `next` (cap->pods still the old one): the devices of
 * the pods that leave stay named after them for a few seconds, as their last packets reach the
 * split a batch later. */
void capture_ifaces_pods_leaving(struct capture *cap, const struct capture_pod *next,
                                 size_t n_next);

/* The pod set changed (cap->pods): finds the pods' devices again; every known device is
 * described again at its next packet, and gets a new interface if its description changed. */
void capture_ifaces_pods_changed(struct capture *cap);

/* The interfaces made so far in the current stream (ids 0..*n-1). */
const struct capture_iface *capture_ifaces_all(const struct capture *cap, uint32_t *n);

/* Those of stream `stream` (the current one or one kept for its unsent batches); NULL and 0
 * when it is neither. */
const struct capture_iface *capture_ifaces_of(const struct capture *cap, uint32_t stream,
                                              uint32_t *n);

/* True when the table (or the devices seen) is within 1/16 of its limit, the last new stream
 * began at least a minute ago, and there is room to keep one more old table. */
bool capture_ifaces_should_roll(const struct capture *cap, uint64_t now_ms);

/* Begins stream `stream`: the current table is kept as that of the old stream, and the new one
 * holds the fixed interfaces only. 0, -ENOSPC (too many old tables kept) or -ENOMEM. */
int capture_ifaces_roll(struct capture *cap, uint32_t stream, uint64_t now_ms);

/* Frees the tables of streams before `oldest` (the oldest one the spool still holds). */
void capture_ifaces_release(struct capture *cap, uint32_t oldest);

void capture_ifaces_metrics(const struct capture *cap, struct nr_metrics *m);

#endif
