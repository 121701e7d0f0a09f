/* netreel-hub's state: its configuration, the store channels it keeps (a connection per
 * call, idle ones kept for the next until --store-idle-timeout), and
 * the counters /metrics exports. The loop thread owns all of it. */
#ifndef NR_HUB_HUB_H
#define NR_HUB_HUB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define HUB_MAX_STORES   4096 /* addresses one snapshot may fan out to */
#define HUB_MAX_DIALING  256  /* store connections made at once (TCP, TLS, SETTINGS) */
#define HUB_STATUS_CALLS 256  /* Store.Stats calls one Hub.Status has in flight */
#define HUB_CHUNK_BYTES  (1u << 20)
#define HUB_MAX_FILTER   16384u /* bytes of BPF filter text, as a store takes */

struct hub_config {
    const char *listen;
    const char *stores; /* "host:port,dns:NAME:PORT,..." */
    const char *token_file;
    const char *tls_cert, *tls_key, *tls_ca;
    const char *store_tls_ca, *store_tls_cert, *store_tls_key;
    const char *metrics_listen;
    unsigned max_snapshots;
    uint64_t memory_budget;   /* --memory-budget: budget.h */
    int64_t store_timeout_ns; /* a store silent this long while awaited is left out */
    uint64_t store_idle_ms;   /* a store's last idle connection is closed after this (0: never) */
    char node[254];
};

/* One store address as a snapshot or a status call uses it. */
struct hub_store_addr {
    char addr[300];      /* "10.0.0.7:8897", "[fd00::7]:8897" */
    char authority[300]; /* what TLS verifies: "NAME:PORT" for dns: entries, else addr */
};

struct hub_channel;
struct hub_node_name;

struct hub {
    uv_loop_t *loop;
    struct hub_config cfg;
    char *token; /* NULL: no token required */
    struct hub_channel *channels;
    uv_timer_t sweep;                 /* closes idle store channels (stores.c) */
    bool sweep_ready;                 /* sweep initialised */
    size_t chans_closing;             /* channels the sweep closed whose close has not finished */
    void *closing_all;                /* hub_stores_close's wait, once it started */
    struct hub_node_name *node_names; /* the node each store address answered with last */
    size_t n_node_names, n_channels;
    /* Hash indexes over those (stores.c): by channel key, by rpc_channel, by address. A hub of
     * thousands of stores looks each one up for every call. */
    struct hub_channel **by_key, **by_ch;
    size_t chan_slots;
    struct hub_node_name **by_addr;
    size_t name_slots;
    unsigned snapshots_active;
    uint64_t snapshots_total, snapshots_failed, snapshots_partial;
    uint64_t bytes_total, packets_total;
    uint64_t status_total, auth_failures, refused_busy;
};

#endif
