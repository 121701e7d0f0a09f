/* netreel-capture's shared state: its configuration, its packet sources (one libpcap handle and
 * capture thread per interface), the spool of batches not yet acknowledged by the store, and the
 * counters /metrics exports. The loop thread owns everything but what source.h says a capture
 * thread touches. */
#ifndef NR_CAPTURE_CAPTURE_H
#define NR_CAPTURE_CAPTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "util/buf.h"

#define CAPTURE_MAX_IFACES  16
#define CAPTURE_MAX_EXCLUDE 8
#define CAPTURE_MAX_FILTER  65536

struct capture_config {
    const char *ifaces[CAPTURE_MAX_IFACES];
    unsigned n_ifaces;
    uint32_t snaplen;
    uint64_t buffer_size;
    const char *filter;       /* --filter: the user's BPF expression, or NULL */
    const char *bpf_override; /* --bpf-override: wins over pod targeting */
    bool record_self;
    uint64_t batch_bytes;
    int64_t batch_time_ns;
    int block_timeout_ms; /* TPACKET_V3 block timeout: how long a quiet ring holds packets */
    bool read_mode_poll;  /* read on the loop (uv_poll) or a thread per interface (the default) */
    bool tls;             /* --tls: decrypted TLS of OpenSSL processes on interface `tls` */
    const char *tls_keylog_file; /* --tls-keylog-file: also append the TLS secrets there */
    const char *store;
    const char *tls_ca, *tls_cert, *tls_key;
    uint64_t spool_size;
    const char *metrics_listen;
    const char *user;      /* drop to this user after opening the handles ("" or "root": stay) */
    int64_t clock_skew_ns; /* --test-clock-skew: added to every packet's timestamp */
    uint32_t ifaces_max;   /* --test-interfaces-max (0: CAPTURE_IFACES_MAX) */
    char node[254];
    char capture_id[128];
    uint16_t exclude_ports[CAPTURE_MAX_EXCLUDE]; /* TCP ports never recorded */
    unsigned n_exclude;
    /* pod targeting */
    bool kube;
    const char *kubeconfig;
    const char *pod_regex;
    const char *namespaces;
    const char *excluded_namespaces;
};

/* Counters the capture adds to what libpcap reports. */
struct capture_counters {
    uint64_t packets, bytes; /* captured and put in batches */
    uint64_t buffer_dropped; /* no free batch buffer in a capture thread */
    uint64_t spool_dropped;  /* packets of batches dropped whole: the spool was full */
    uint64_t spool_dropped_batches;
    uint64_t batches, acked;
    uint64_t refused_batches; /* the store said INVALID_ARGUMENT */
    uint64_t store_errors;    /* Ingest calls that ended with an error */
    uint64_t ifaces_sent;     /* interface descriptions sent (each once per Ingest call) */
    uint64_t filter_changes;
};

struct capture_source;
struct capture_spool;
struct capture_uplink;
struct capture_tls_iface;
struct capture_ifaces;

/* Buffers of EPBs the store acknowledged, for the sources' next batches (pipeline.c). */
#define CAPTURE_BLOCKS_POOL 8u
struct capture_blocks_pool {
    uint8_t *data[CAPTURE_BLOCKS_POOL];
    size_t cap[CAPTURE_BLOCKS_POOL];
    unsigned n;
};

struct capture {
    uv_loop_t *loop;
    struct capture_config cfg;
    struct capture_source *sources[CAPTURE_MAX_IFACES];
    unsigned n_sources;
    struct capture_tls_iface *tls; /* --tls and it works here: interface id n_sources */
    struct capture_ifaces *ifaces; /* every interface described to the store (ifaces.h) */
    uv_async_t ready;              /* a capture thread has a full batch, or stopped */
    struct capture_spool *spool;
    struct capture_blocks_pool blocks_pool;
    struct nr_buf keylog; /* key log lines for the next batch (pipeline.c) */
    struct capture_uplink *uplink;
    uint64_t next_seq;
    uint32_t stream;     /* the capture stream (cfg.capture_id) batches go to now; ifaces.h */
    char *filter_text;   /* the expression applied to every handle now */
    char *filter_base;   /* what it was composed from (NULL: everything) */
    char *filter_wanted; /* the base to narrow to when filter_timer fires */
    uv_timer_t filter_timer;
    bool pods_dirty;       /* the pod set changed and no batch carrying it is in the spool yet */
    int64_t pods_since_ns; /* when it did (the wall clock packets are stamped with) */
    struct capture_pod *pods;
    size_t n_pods;
    struct capture_counters c;
    bool stopping;
};

/* A targeted pod: what the NRB names. */
struct capture_pod {
    int family; /* 4 or 6 */
    uint8_t ip[16];
    char name_space[64];
    char name[254];
    char uid[64];
    char labels[1024]; /* "k=v,k=v" */
};

#endif
