/* The nodes' clocks, told from the traffic itself. A packet sent on node A's uplink at t1 (A's
 * clock) and received on node B's at t2 (B's clock) says t2 - t1 = delay + θ, θ being how far
 * B's clock is ahead of A's; one the other way says t4 - t3 = delay' - θ. As NTP does, the
 * smallest of each (the least queued) bound θ best: θ = (min(t2 - t1) - min(t4 - t3)) / 2,
 * exact within ± (min(t2 - t1) + min(t4 - t3)) / 2. Nodes that exchanged no packet with the
 * reference are reached through nodes that did (offsets and uncertainties add up). Pure: no
 * I/O, unit-tested (tests/unit/test_hub_clock.c). */
#ifndef NR_HUB_CLOCK_H
#define NR_HUB_CLOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct hub_clock;

/* For n nodes (0..n-1). NULL when out of memory. */
struct hub_clock *hub_clock_new(size_t n);
void hub_clock_free(struct hub_clock *c);

/* A packet left node `from` (its clock said sent_ns) and reached node `to` (its clock said
 * received_ns). Samples between one node and itself, or of unknown nodes, are ignored. */
void hub_clock_sample(struct hub_clock *c, size_t from, size_t to, int64_t sent_ns,
                      int64_t received_ns);

/* One node's clock against the reference's. */
struct hub_clock_offset {
    bool known;             /* pairs both ways link it to the reference */
    int64_t offset_ns;      /* its clock minus the reference's: subtract it to align */
    int64_t uncertainty_ns; /* the offset is exact within ± this */
    uint64_t samples;       /* packets between it and the nodes it was reached through */
};

/* Offsets of every node against node `ref` (out has n entries; the reference's is known, 0). */
void hub_clock_solve(const struct hub_clock *c, size_t ref, struct hub_clock_offset *out);

#endif
