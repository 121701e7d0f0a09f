/* The capture filter: the user's expression (--filter), or the pod targeting's, or
 * --bpf-override which wins over both — always ANDed with a term that keeps netreel's own
 * connections out of the recording (--record-self turns that off). */
#ifndef NR_CAPTURE_FILTER_H
#define NR_CAPTURE_FILTER_H

#include <stddef.h>

#include "capture/capture.h"

/* Writes the expression to apply given `base` (NULL or "" for everything) into buf. Returns 0,
 * or -ENOSPC when it does not fit. */
int capture_filter_compose(const struct capture_config *cfg, const char *base, char *buf,
                           size_t len);

/* Prepares the timer that narrows a widened filter (see below). */
void capture_filter_init(struct capture *cap);

/* Compiles `base` (composed as above) for every source and applies it to all of them — either
 * all or none. A change of a running capture's filter first widens to (old or new) and narrows
 * to the new one after the ring's blocks taken with the old filter were read, so no packet the
 * old filter kept is lost at the swap. Returns 0, or NR_EPARSE with a message in err
 * ("filter \"tcp and\": syntax error"). */
int capture_filter_apply(struct capture *cap, const char *base, char *err, size_t errlen);

#endif
