/* Startup: rebuilds the catalog from the data directory's indexes without reading packet
 * data. Each segment is cut back to what its index vouches for (so a batch that was being
 * written when the process died, and was therefore never acknowledged, is gone whole and
 * comes again from the capture's spool without a duplicate); the tail the index claims is
 * checked to be whole pcapng blocks. Segments found open are completed as they stand. */
#ifndef NR_STORE_RECOVER_H
#define NR_STORE_RECOVER_H

#include "store/store.h"

/* Loads every segment under s->cfg.data_dir. Returns 0, or a negative errno when the directory
 * cannot be read at all; damaged segments are logged and skipped, not fatal. */
int store_recover(struct store *s);

/* Recovers one segment given its path without extension (tests use it directly): cuts both files,
 * fills seg. Returns 0, or NR_EPARSE / a negative errno when nothing of it can be kept. */
int store_recover_segment(struct store *s, const char *dir, const char *stem,
                          struct store_segment **out);

#endif
