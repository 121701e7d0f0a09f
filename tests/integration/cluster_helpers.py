"""A cluster of network namespaces for the cluster tests (tests/integration/cluster/):

  fabric   a namespace with a bridge br0: the network between the nodes
  nodes    each a namespace with uplink eth0 (NODE_ADDR/24) on the fabric, IP forwarding on, a
           default route via 10.88.0.254 (what lets proxy ARP answer a pod's question for its
           gateway), and routes to the other nodes' pod subnets 10.90.K.0/24 (K: the last
           character of the node's name)
  pods     each a namespace on a routed veth into its node (a /32 route and proxy ARP, as
           Calico does), its gateway 169.254.1.1
"""

import os

from capture_helpers import _delete_ns, _ns_counter, run


def ns_name(suffix):
    _ns_counter[0] += 1
    return f"nr{os.getpid()}t{_ns_counter[0]}{suffix}"


def ip(ns, *args):
    run(["ip", "-n", ns, *args])


def sysctl(ns, *kv):
    run(["ip", "netns", "exec", ns, "sysctl", "-qw", *kv])


def nft(ns, *rules):
    for r in rules:
        run(["ip", "netns", "exec", ns, "nft", r])


class NetCluster:
    """nodes: {name: uplink address}; pods: {name: (node, address)}; node_setup(ns): more for
    each node once its uplink is up. self.ns[node], self.pods[pod] name the namespaces;
    close() deletes them (a test's lab does it after the processes in them stopped)."""

    def __init__(self, nodes, pods, node_setup=None):
        self.created = []
        self.ns, self.pods = {}, {}
        try:
            self.fabric = self._netns(ns_name("b"))
            ip(self.fabric, "link", "add", "br0", "type", "bridge")
            ip(self.fabric, "link", "set", "br0", "up")
            for k, (node, addr) in enumerate(nodes.items(), 1):
                ns = self.ns[node] = self._netns(ns_name("a"))
                sysctl(ns, "net.ipv4.ip_forward=1")
                run(["ip", "link", "add", "eth0", "netns", ns, "type", "veth", "peer", "name",
                     f"n{k}", "netns", self.fabric])
                ip(self.fabric, "link", "set", f"n{k}", "master", "br0", "up")
                ip(ns, "addr", "add", f"{addr}/24", "dev", "eth0")
                ip(ns, "link", "set", "eth0", "up")
                ip(ns, "route", "add", "default", "via", "10.88.0.254", "dev", "eth0")
                if node_setup:
                    node_setup(ns)
            for node in nodes:
                for other, oaddr in nodes.items():
                    if other != node:
                        ip(self.ns[node], "route", "add", f"10.90.{other[-1]}.0/24", "via",
                           oaddr)
            for pod, (node, addr) in pods.items():
                self._pod(pod, self.ns[node], addr)
        except Exception:
            self.close()
            raise

    def _pod(self, name, node_ns, addr):
        p = self.pods[name] = self._netns(ns_name("b"))
        dev = f"veth{name}"
        run(["ip", "link", "add", dev, "netns", node_ns, "type", "veth", "peer", "name", "eth0",
             "netns", p])
        ip(p, "addr", "add", f"{addr}/32", "dev", "eth0")
        ip(p, "link", "set", "eth0", "up")
        ip(p, "route", "add", "169.254.1.1", "dev", "eth0")
        ip(p, "route", "add", "default", "via", "169.254.1.1", "dev", "eth0")
        ip(node_ns, "link", "set", dev, "up")
        sysctl(node_ns, f"net.ipv4.conf.{dev}.proxy_arp=1")
        ip(node_ns, "route", "add", f"{addr}/32", "dev", dev)

    def _netns(self, ns):
        run(["ip", "netns", "add", ns])
        self.created.append(ns)
        sysctl(ns, "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
        ip(ns, "link", "set", "lo", "up")
        return ns

    def close(self):
        for ns in reversed(self.created):
            _delete_ns(ns)
        self.created = []
