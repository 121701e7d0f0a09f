/* What stays the same when one packet is seen in several places of a cluster: on the sending
 * pod's device, the node's uplink, the receiving node's uplink and the receiving pod's device,
 * inside and outside an overlay's tunnel. The key of a sighting hashes only the bytes that do not
 * change in flight:
 *
 *   kept out: the link-layer header, TTL / hop limit, checksums, TOS/traffic class (ECN marks),
 *             addresses and ports (kube-proxy's DNAT of a Service address, SNAT on egress, the
 *             ICMP echo identifier NAT rewrites like a port), the IPv6 flow label, the TCP
 *             options of a SYN (MSS clamping), and every encapsulation (VXLAN on UDP 4789 and
 *             8472, Geneve on 6081, IP-in-IP, IPv6-in-IPv4: the key is the inner packet's);
 *   kept in:  the IPv4 identification, fragment offset and flags, the IP payload length and
 *             protocol, IPv6 fragment headers, TCP sequence, acknowledgement, flags, window and
 *             options, the UDP length, SCTP's verification tag, ICMP type, code and echo
 *             sequence, for an ICMP error the invariant fields of the packet it quotes, and up
 *             to PCAPNG_SIGHTING_PAYLOAD bytes of payload.
 *
 * Pure: no allocation, no I/O; every length is checked against the captured bytes. Unit-tested
 * (tests/unit/test_pcapng_sighting.c) and fuzzed (fuzz_pcapng_sighting). */
#ifndef NR_PCAPNG_SIGHTING_H
#define NR_PCAPNG_SIGHTING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PCAPNG_SIGHTING_PAYLOAD 256 /* payload bytes a key covers, at most */

/* pcapng epb_flags direction bits */
enum pcapng_direction { PCAPNG_DIR_UNKNOWN = 0, PCAPNG_DIR_IN = 1, PCAPNG_DIR_OUT = 2 };

/* Where the packet was seen and which way it went, from the link-layer header where it says
 * (LINUX_SLL2 and LINUX_SLL carry the packet type: PACKET_OUTGOING is out, the rest in). */
enum pcapng_direction pcapng_sighting_direction(uint16_t link_type, const uint8_t *data,
                                                size_t caplen);

/* The addresses of the packet's IP header (the outer one; link types as below): true with
 * *family (4 or 6) and src, dst (4 or 16 bytes used), or false when there is none. */
bool pcapng_packet_addrs(uint16_t link_type, const uint8_t *data, size_t caplen, uint8_t *family,
                         uint8_t src[16], uint8_t dst[16]);

/* The key of the packet in data (caplen bytes captured of origlen) of link type link_type
 * (Ethernet, LINUX_SLL, LINUX_SLL2, RAW, IPV4, IPV6, NULL/LOOP). Returns true with *key, or false
 * when there is no IP packet to key (ARP, a cut header, another link type): such a packet is
 * always kept. */
bool pcapng_sighting_key(uint16_t link_type, const uint8_t *data, size_t caplen, uint64_t *key);

#endif
