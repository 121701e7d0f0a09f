/* Writers of the Prometheus text exposition format (version 0.0.4) into a bounded buffer, for a
 * service that writes its families at scrape time:
 *
 *     struct nr_metrics m;
 *
 *     nr_metrics_init(&m, body);
 *     nr_metrics_family(&m, "netreel_store_bytes_total", NR_METRICS_COUNTER, "Bytes stored.");
 *     nr_metrics_u64(&m, NR_METRICS_LABELS({"kind", "pcapng"}), st->pcapng_bytes);
 *     nr_metrics_u64(&m, NR_METRICS_LABELS({"kind", "index"}), st->index_bytes);
 *     nr_metrics_family(&m, "netreel_store_up", NR_METRICS_GAUGE, "1 while serving.");
 *     nr_metrics_u64(&m, NULL, 1);
 *     return m.err;
 *
 * Errors are sticky: after the first failure every call does nothing and returns it, so a writer
 * may check once at the end. */
#ifndef NR_UTIL_METRICS_H
#define NR_UTIL_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

/* The Content-Type of a response in this format. */
#define NR_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* Metric names longer than this are refused (Prometheus has no limit; ours keeps a copy). */
#define NR_METRICS_NAME_MAX 200

enum nr_metrics_type {
    NR_METRICS_COUNTER,
    NR_METRICS_GAUGE,
    NR_METRICS_UNTYPED,
};

struct nr_metrics_label {
    const char *name;  /* [a-zA-Z_][a-zA-Z0-9_]*, not starting with "__" (reserved) */
    const char *value; /* any string; escaped, and invalid UTF-8 replaced by U+FFFD */
};

/* A label list for one sample, ended by a {NULL} entry as the writers expect:
 * NR_METRICS_LABELS({"iface", "eth0"}, {"dir", "rx"}). */
#define NR_METRICS_LABELS(...) ((const struct nr_metrics_label[]){__VA_ARGS__, {NULL, NULL}})

struct nr_metrics {
    struct nr_buf *out;                   /* the caller's; text is appended */
    int err;                              /* 0, or the first error */
    char family[NR_METRICS_NAME_MAX + 1]; /* the name samples are written under; "" before any */
};

/* Starts writing into out (which the caller owns; nothing is allocated here). */
void nr_metrics_init(struct nr_metrics *m, struct nr_buf *out);

/* Begins a family: "# HELP name help" (help with backslash and newline escaped; no HELP line
 * when help is NULL) and "# TYPE name type". The samples that follow are this family's, under
 * the same name. Each family must be written once per scrape (not checked). Returns m->err:
 * 0, -EINVAL for a name that is not [a-zA-Z_:][a-zA-Z0-9_:]* or is longer than
 * NR_METRICS_NAME_MAX, -EOVERFLOW when out would grow past its cap, or -ENOMEM. A failed call
 * leaves out as it was before the call. */
int nr_metrics_family(struct nr_metrics *m, const char *name, enum nr_metrics_type type,
                      const char *help);

/* Writes one sample of the current family: name{label="value",...} value. labels is NULL or a
 * list ended by {NULL} (NR_METRICS_LABELS); values are escaped (backslash, double quote,
 * newline). Returns m->err: 0, -EINVAL (no family yet, a bad or duplicate label name),
 * -EOVERFLOW or -ENOMEM; a failed call leaves out as it was. */
int nr_metrics_u64(struct nr_metrics *m, const struct nr_metrics_label *labels, uint64_t value);

/* As nr_metrics_u64 for a double: %.17g (exact; in the C locale, which netreel never changes),
 * and NaN, +Inf, -Inf as Prometheus spells them. */
int nr_metrics_double(struct nr_metrics *m, const struct nr_metrics_label *labels, double value);

#endif
