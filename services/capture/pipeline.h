/* From the capture threads' batches to the spool: each batch becomes a PacketBatch (capture id,
 * the next seq, the pod names when they changed, the EPBs, the counters) encoded once into the
 * spool, or dropped whole and counted when the spool is full. Its interfaces are not in those
 * bytes: each interface is sent once per Ingest call, in front of the first batch that needs it
 * (capture_pipeline_interfaces), so that a batch carries no list of hundreds of pods' devices. Also
 * sends an empty batch with the counters (and pods) when the capture has been quiet for a while, so
 * the store knows the capture is alive and what it dropped. Key log lines (TLS secrets) are
 * handed in by the source that learns them and ride the next batch spooled, of any source. */
#ifndef NR_CAPTURE_PIPELINE_H
#define NR_CAPTURE_PIPELINE_H

#include "capture/capture.h"

/* The uv_async callback of cap->ready: takes every source's handed-over batches. */
void capture_pipeline_ready(uv_async_t *a);

struct capture_batch;

/* Encodes and spools one batch of any source (the `tls` interface's too); the batch's buffer
 * may be reused as soon as this returns. */
void capture_pipeline_spool(struct capture *cap, struct capture_batch *b);

/* The PacketBatch encoding of stream `stream`'s interfaces from..to-1 alone (to is capped at the
 * capture's count), which put in front of a spooled batch's bytes makes one message that carries
 * them: malloc'ed into *out (NULL and 0 when there are none). 0 or -ENOMEM. */
int capture_pipeline_interfaces(const struct capture *cap, uint32_t stream, uint32_t from,
                                uint32_t to, uint8_t **out, size_t *out_len);

/* Names a new capture stream: cfg->capture_id = "NODE@<now in ns>". */
void capture_pipeline_name_stream(struct capture_config *cfg);

/* Sets up what the pipeline keeps in cap (the key log lines waiting for a batch). Call once,
 * before the first batch. */
void capture_pipeline_init(struct capture *cap);

/* Frees the buffers of EPBs kept for reuse and the key log lines still waiting (after the spool
 * is freed and the loop ended). */
void capture_pipeline_free(struct capture *cap);

/* Takes a copy of key log lines (NSS format, whole lines: the store refuses a batch with a
 * partial one) for PacketBatch.tls_keylog. They go with the next batch spooled, whatever its
 * source, or the next heartbeat; once that batch is in the spool they are the spool's (sent
 * again after a reconnect, until the store acknowledges it), and while the spool refuses
 * batches they wait here. At most PCAPNG_KEYLOG_MAX bytes wait (what the store takes in one
 * batch). Returns 0, -ENOBUFS when the lines do not fit beside those waiting (none of them is
 * taken), or -ENOMEM. */
int capture_pipeline_keylog_add(struct capture *cap, const char *lines, size_t len);

/* Bytes of key log lines waiting for a batch. */
size_t capture_pipeline_keylog_pending(const struct capture *cap);

/* Queues an empty batch (counters, and the pod set when it changed). */
void capture_pipeline_heartbeat(struct capture *cap);

/* The counters as the store receives them (sums over the sources plus the capture's drops). */
void capture_pipeline_counters(struct capture *cap, uint64_t *received, uint64_t *kernel_dropped,
                               uint64_t *interface_dropped, uint64_t *capture_dropped);

#endif
