/* The copies of one packet in a snapshot's merged stream. Every node records `-i any`, so a
 * packet between pods is seen on the sending pod's device, each node's uplink and the receiving
 * pod's device: up to four sightings of one packet, which Wireshark would take for
 * retransmissions. Sightings are recognised by their invariant bytes (pcapng/sighting.h) seen on
 * another interface or in the other direction within HUB_SIGHTING_WINDOW_NS of the first; the
 * same bytes again on an interface and direction that already saw them are a new packet (a
 * retransmission, a datagram sent twice), never a copy: the k-th sighting at one place belongs
 * to the k-th send of those bytes, even when a send's copies come after the next send.
 *
 *   one (the default): each packet once. Packets wait HUB_SIGHTING_WINDOW_NS of the merge's time
 *       in a bounded queue, so that the copy kept can be the sending side's: the sighting
 *       entering the node from a pod's device where there is one, else the first. The file stays
 *       in time order: a copy is dropped where it stands, the one kept is written where it
 *       stands.
 *   all: every sighting, at once, each with epb_packetid (the same for every copy of a packet:
 *       Wireshark's frame.packet_id).
 *
 * Both write epb_flags with the direction (in or out of the device) where the link-layer header
 * says it (LINUX_SLL2). Memory is bounded: the queue by HUB_SIGHTING_HOLD_MAX bytes (past it the
 * oldest packet is decided early), the table of recent packets by HUB_SIGHTING_TABLE_MAX slots
 * (when more than a quarter of them would be packets of the window, it starts over: a few copies
 * more, never a packet less). */
#ifndef NR_HUB_SIGHTINGS_H
#define NR_HUB_SIGHTINGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pcapng/pcapng.h"
#include "util/buf.h"

#define HUB_SIGHTING_WINDOW_NS (100 * 1000000LL)
/* A queued packet is released once the oldest is this far past its window: then every due one
 * goes, in runs of one copy each, rather than one call per packet. */
#define HUB_SIGHTING_RELEASE_SLACK_NS (2 * 1000000LL)
#define HUB_SIGHTING_HOLD_MAX         (4u << 20) /* 32 ms at 1 Gbit/s */
#define HUB_SIGHTING_TABLE_MAX        (1u << 15) /* slots of 32 + 128 bytes: 5 MiB */

/* PROBE: nothing is written; packets only feed the clock (hub_sightings_clock). */
enum hub_sightings_mode { HUB_SIGHTINGS_ONE = 0, HUB_SIGHTINGS_ALL = 1, HUB_SIGHTINGS_PROBE = 2 };

struct hub_sightings;

struct hub_sighting_stats {
    uint64_t packets;       /* taken */
    uint64_t written;       /* written to the file */
    uint64_t copies;        /* sightings of a packet already kept, left out (mode one) */
    uint64_t early;         /* decided before their window was over (the queue was full) */
    uint64_t table_shrinks; /* the table kept only its youngest packets (too many in a window) */
    uint64_t table_resets;
};

/* n_ifaces output interfaces; pcap: the file is classic pcap (no options, no packet ids).
 * NULL when out of memory. */
struct hub_sightings *hub_sightings_new(enum hub_sightings_mode mode, uint32_t n_ifaces, bool pcap);
void hub_sightings_free(struct hub_sightings *sg);

/* What output interface ifid is: its link type, whether it is a pod's device (where the
 * sending side's copy enters the node), and which node's (store's) it is. */
void hub_sightings_iface(struct hub_sightings *sg, uint32_t ifid, uint16_t link_type, bool pod,
                         uint32_t node);

/* Makes room for output interfaces up to n_ifaces (a follow's new ones, described with
 * hub_sightings_iface). 0 or -ENOMEM. */
int hub_sightings_grow(struct hub_sightings *sg, uint32_t n_ifaces);

/* A follow's watermark: no packet before ts_ns will be put, so the queued ones up to it are
 * released as if a packet of ts_ns had come. */
void hub_sightings_advance(struct hub_sightings *sg, int64_t ts_ns);

struct hub_clock;
/* Packets of one group seen leaving one node's uplink and entering another's become samples of
 * clock (hub/clock.h); NULL: none. The clock is the caller's. */
void hub_sightings_clock(struct hub_sightings *sg, struct hub_clock *clock);

/* Takes the merge's next packet (non-decreasing ts_ns), with output interface ifid. In mode all
 * it is written to out now; in mode one, queued. 0 or a negative errno (out's cap: -EOVERFLOW). */
int hub_sightings_put(struct hub_sightings *sg, const struct pcapng_epb *epb, uint32_t ifid,
                      int64_t ts_ns, struct nr_buf *out);

/* The same with the packet's key found beforehand (hub_sightings_key: `key` NULL when it has
 * none), for a caller that asks the cache for its table slot ahead (hub_sightings_prefetch):
 * with a thousand stores taking turns, the slot is otherwise a miss per packet. */
int hub_sightings_put_keyed(struct hub_sightings *sg, const struct pcapng_epb *epb, uint32_t ifid,
                            int64_t ts_ns, const uint64_t *key, struct nr_buf *out);
bool hub_sightings_key(const struct hub_sightings *sg, const struct pcapng_epb *epb, uint32_t ifid,
                       uint64_t *key);
void hub_sightings_prefetch(const struct hub_sightings *sg, uint64_t key);

/* Mode one: whether the table still knows the packet's invariant bytes (a copy of a packet
 * taken lately). A follow asks it of a packet that came too late to be taken, so that a late
 * copy of a packet the file holds is not counted as a packet lost. */
bool hub_sightings_seen(const struct hub_sightings *sg, const struct pcapng_epb *epb,
                        uint32_t ifid);

/* Writes the queued packets whose window is over (all of them when `all`: the merge ended) to
 * out, until out holds at least `until_len` bytes; nothing, until the oldest is
 * HUB_SIGHTING_RELEASE_SLACK_NS past its window (or `all`). Returns 1 when some are still queued
 * (and due, when `all`), 0 when none is, or a negative errno. */
int hub_sightings_release(struct hub_sightings *sg, struct nr_buf *out, bool all, size_t until_len);

void hub_sightings_stats(const struct hub_sightings *sg, struct hub_sighting_stats *st);

/* Packets written so far (stats.written), for the hub's running count. */
uint64_t hub_sightings_written(const struct hub_sightings *sg);

#endif
