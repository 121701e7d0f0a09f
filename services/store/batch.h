/* What the store checks in a PacketBatch before any byte of it reaches disk: the stream's
 * identity, its interface and pod lists, and every EPB (lib/pcapng's batch validation) against
 * the interfaces, the sane time range and the batch's own claims (count, first and last
 * timestamp). Pure: unit-tested against every kind of lie. */
#ifndef NR_STORE_BATCH_H
#define NR_STORE_BATCH_H

#include <stddef.h>
#include <stdint.h>

#include "netreel/v1/store.pb-c.h"
#include "pcapng/decode.h"
#include "store/store.h"

/* Checks batch b for the stream `st` (NULL when its capture_id is new) at time now. On success
 * returns 0, fills *info, and the interfaces after the batch in ifaces and n_ifaces (the stream's,
 * extended by the batch's list; the `desc` of a new one points into b, and is the caller's to
 * copy before b goes). The batch lists interfaces with consecutive ids from any id the stream
 * knows (0: the whole table; the capture sends on each call only what that call has not carried
 * yet); a known one must be listed as it was and keeps the description it was first sent with.
 * tls_keylog must be whole, known NSS key log lines of at most 1 MiB (pcapng/keylog.h).
 * Otherwise returns NR_EPARSE with one line in err saying what is wrong ("interface 1 of the list
 * has id 5, not 1: ...", "block 3 at offset 96: ..."), or -ESTALE when the list starts past the
 * ids the stream knows (the capture resends them from 0 on a new call). */
int store_batch_check(const struct store_config *cfg, const struct store_stream *st,
                      const Netreel__V1__PacketBatch *b, int64_t now_ns, struct store_iface *ifaces,
                      uint32_t *n_ifaces, struct pcapng_batch_info *info, char *err, size_t errlen);

/* Unpacks a PacketBatch with its `blocks` left in msg, not copied (msg must outlive the batch);
 * free it with store_batch_free(b, msg, len). NULL when msg is not a PacketBatch or out of
 * memory. */
Netreel__V1__PacketBatch *store_batch_unpack(const uint8_t *msg, size_t len);
void store_batch_free(Netreel__V1__PacketBatch *b, const uint8_t *msg, size_t len);

/* A capture id the store accepts: 1..255 printable ASCII bytes without spaces. */
int store_batch_check_id(const char *capture_id);

/* Builds the pod set a batch carries (pods_update), or NULL with -ENOMEM. The batch must have
 * passed store_batch_check. */
struct store_pods *store_batch_pods(const Netreel__V1__PacketBatch *b);

#endif
