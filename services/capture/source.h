/* One libpcap handle and the thread that reads it. The thread builds batches of pcapng EPBs in
 * buffers from a small per-source pool (no allocation per packet), sorts each batch by
 * timestamp, and hands full ones to the loop (uv_async); it never waits for the loop: with no
 * free buffer, a packet is dropped and counted. The loop returns buffers when it has encoded
 * them. Filters are compiled on the loop and swapped onto the live handle by the thread between
 * two reads, so no packet window is lost. */
#ifndef NR_CAPTURE_SOURCE_H
#define NR_CAPTURE_SOURCE_H

#include <pcap/pcap.h>
#include <stdint.h>

#include "capture/capture.h"
#include "util/buf.h"

/* A batch of one source's packets, sorted by timestamp once handed over. */
struct capture_batch {
    struct capture_batch *next;
    struct capture_source *src;
    struct nr_buf blocks;
    uint32_t *offsets; /* of each EPB in blocks, for sorting */
    size_t n_offsets, cap_offsets;
    uint32_t packets;
    uint64_t bytes; /* captured bytes */
    int64_t first_ts_ns, last_ts_ns;
    int64_t started_ns; /* wall clock of its first packet */
    bool sorted;
    struct pcap_stat stats; /* the handle's counters when it was handed over */
};

/* Opens and activates the handle for `iface` ("any" or a name) with the configured snaplen,
 * buffer size, immediate mode off, the block timeout and nanosecond timestamps. Returns NULL
 * with a one-line reason in err ("eth9: No such device exists"). */
struct capture_source *capture_source_open(struct capture *cap, uint32_t ifid, const char *iface,
                                           char *err, size_t errlen);

/* Compiles `expr` for the source's link type. 0, or NR_EPARSE with libpcap's message in err. */
int capture_source_compile(const struct capture_source *src, const char *expr,
                           struct bpf_program *prog, char *err, size_t errlen);

/* Applies a compiled filter (taking it): right away before the thread runs, else by the thread
 * between two reads. Returns 0 or NR_EPARSE with libpcap's message in err. */
int capture_source_set_filter(struct capture_source *src, struct bpf_program *prog, char *err,
                              size_t errlen);

/* Starts the capture thread. 0 or a negative errno. */
int capture_source_start(struct capture_source *src);

/* Takes the batches the thread handed over (a list, oldest first), or NULL. */
struct capture_batch *capture_source_take(struct capture_source *src);

/* Gives an encoded batch's buffer back to the thread's pool. */
void capture_source_recycle(struct capture_source *src, struct capture_batch *b);

/* The handle's counters as of its last batch, and what the thread dropped for want of a buffer. */
void capture_source_stats(struct capture_source *src, struct pcap_stat *st, uint64_t *dropped,
                          uint64_t *packets, uint64_t *bytes);

/* The interface id its packets are written with (before capture_source_start). */
void capture_source_set_ifid(struct capture_source *src, uint32_t ifid);

const char *capture_source_name(const struct capture_source *src);
int capture_source_link_type(const struct capture_source *src);
/* Nonzero once the thread stopped on a read error; the message is in err. */
int capture_source_failed(struct capture_source *src, char *err, size_t errlen);

/* Stops the thread, which hands over what it holds first, and joins it. Batches it handed over
 * stay for capture_source_take. */
void capture_source_stop(struct capture_source *src);

/* Stops the source if it runs and frees everything. */
void capture_source_close(struct capture_source *src);

#endif
