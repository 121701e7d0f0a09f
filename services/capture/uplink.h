/* The Ingest stream to the store: sends the spool in order while HTTP/2 flow control lets it,
 * frees what the acks cover, and after any failure opens a new call with backoff and sends
 * every unacknowledged batch again (the store drops what it already has). */
#ifndef NR_CAPTURE_UPLINK_H
#define NR_CAPTURE_UPLINK_H

#include <stdbool.h>

#include "capture/capture.h"

/* Creates the uplink (connecting when there is something to send). NULL with a reason in err
 * when the address or TLS material is wrong. */
struct capture_uplink *capture_uplink_new(struct capture *cap, char *err, size_t errlen);

/* Something was added to the spool: send it if the call can take it. */
void capture_uplink_kick(struct capture_uplink *up);

/* True while a call is open and has been acknowledged since it opened or sent nothing yet, and
 * its store has not left sent batches unacknowledged for 10 s (a hung store). */
bool capture_uplink_connected(const struct capture_uplink *up);

/* Shutting down: ends the call after the spool is sent and acknowledged, or after timeout_ms,
 * then frees the uplink and calls cb from the loop. */
void capture_uplink_close(struct capture_uplink *up, uint64_t timeout_ms, void (*cb)(void *arg),
                          void *arg);

#endif
