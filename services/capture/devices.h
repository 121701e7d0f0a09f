/* The node's network devices as the kernel describes them (rtnetlink, no privilege needed):
 * what a device is (its name, kind, bridge) and which device leads to a pod. A pod's device is
 * found from its address: the route to it names the device (routed CNIs: Calico's cali*,
 * Cilium's lxc*, a plain veth); when that is a bridge (bridge, flannel, kindnet), the
 * neighbour entry gives the pod's MAC and the bridge's forwarding table the port it was
 * learnt on. Only a device whose other end lives in another network namespace (a veth's peer)
 * is taken as a pod's. Every request is bounded by a short receive timeout: the capture's loop
 * asks, so it never waits long. */
#ifndef NR_CAPTURE_DEVICES_H
#define NR_CAPTURE_DEVICES_H

#include <stddef.h>
#include <stdint.h>

#include "capture/netlink.h"

struct capture_devices;

/* A NETLINK_ROUTE socket. NULL with a reason in err. */
struct capture_devices *capture_devices_open(char *err, size_t errlen);
void capture_devices_close(struct capture_devices *d);

/* The device with index ifindex. 0, -ENODEV when it is gone, or another negative code. */
int capture_devices_link(struct capture_devices *d, int32_t ifindex, struct capture_nl_link *out);

/* The device that leads to the pod at ip (family 4 or 6), as above: 0 and *ifindex, -ENOENT
 * when none does (a pod on another node, a route through an uplink, a bridge that has not
 * learnt the pod's MAC yet), or another negative code. */
int capture_devices_pod_device(struct capture_devices *d, int family, const uint8_t *ip,
                               int32_t *ifindex);

/* The devices of the node's default routes (IPv4 and IPv6, main table), at most cap of them.
 * Returns how many, or a negative code. */
int capture_devices_uplinks(struct capture_devices *d, int32_t *out, int cap);

#endif
