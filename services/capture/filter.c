/* Composing and applying the capture filter (see filter.h). */
#include "capture/filter.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capture/source.h"
#include "util/error.h"
#include "util/log.h"

int capture_filter_compose(const struct capture_config *cfg, const char *base, char *buf,
                           size_t len)
{
    char self[CAPTURE_MAX_EXCLUDE * 24 + 16] = "";
    size_t o = 0;
    int n;

    if (!cfg->record_self && cfg->n_exclude) {
        o = (size_t)snprintf(self, sizeof(self), "not (");
        for (unsigned i = 0; i < cfg->n_exclude; i++)
            o += (size_t)snprintf(self + o, sizeof(self) - o, "%stcp port %u", i ? " or " : "",
                                  cfg->exclude_ports[i]);
        snprintf(self + o, sizeof(self) - o, ")");
    }
    if (base && base[0] && self[0])
        n = snprintf(buf, len, "(%s) and %s", base, self);
    else
        n = snprintf(buf, len, "%s", base && base[0] ? base : self);
    return n < 0 || (size_t)n >= len ? -ENOSPC : 0;
}

/* Compiles `base` (composed) for every source and swaps it onto all of them. */
static int apply_now(struct capture *cap, const char *base, char *err, size_t errlen)
{
    struct bpf_program progs[CAPTURE_MAX_IFACES];
    size_t len = (base ? strlen(base) : 0) + 512;
    char *expr = malloc(len);
    char why[512];
    unsigned done = 0;
    int rc = 0;

    if (!expr)
        return -ENOMEM;
    rc = capture_filter_compose(&cap->cfg, base, expr, len);
    for (; rc == 0 && done < cap->n_sources; done++) {
        rc = capture_source_compile(cap->sources[done], expr, &progs[done], why, sizeof(why));
        if (rc != 0)
            snprintf(err, errlen, "filter \"%.300s\" does not compile for %s: %s", expr,
                     capture_source_name(cap->sources[done]), why);
    }
    if (rc != 0) {
        for (unsigned i = 0; i + 1 < done; i++)
            pcap_freecode(&progs[i]);
        free(expr);
        return rc;
    }
    for (unsigned i = 0; i < cap->n_sources; i++) {
        int r = capture_source_set_filter(cap->sources[i], &progs[i], why, sizeof(why));
        if (r != 0 && rc == 0) {
            rc = r;
            snprintf(err, errlen, "%s", why);
        }
    }
    if (rc == 0) {
        if (cap->filter_text)
            cap->c.filter_changes++;
        free(cap->filter_text);
        cap->filter_text = expr;
        free(cap->filter_base);
        cap->filter_base = base && base[0] ? strdup(base) : NULL;
        NR_INFO("filter applied", "filter=\"%.1000s\"", expr);
    } else {
        free(expr);
    }
    return rc;
}

/* Checks that `base` compiles for every source, without applying it. */
static int check(struct capture *cap, const char *base, char *err, size_t errlen)
{
    size_t len = (base ? strlen(base) : 0) + 512;
    char *expr = malloc(len);
    char why[512];
    int rc;

    if (!expr)
        return -ENOMEM;
    rc = capture_filter_compose(&cap->cfg, base, expr, len);
    for (unsigned i = 0; rc == 0 && i < cap->n_sources; i++) {
        struct bpf_program prog;
        rc = capture_source_compile(cap->sources[i], expr, &prog, why, sizeof(why));
        if (rc == 0)
            pcap_freecode(&prog);
        else
            snprintf(err, errlen, "filter \"%.300s\" does not compile for %s: %s", expr,
                     capture_source_name(cap->sources[i]), why);
    }
    free(expr);
    return rc;
}

static void narrow_cb(uv_timer_t *t)
{
    struct capture *cap = t->data;
    char err[512];

    if (apply_now(cap, cap->filter_wanted, err, sizeof(err)) != 0)
        NR_ERROR("cannot narrow the filter; the wider one stays", "err=\"%s\"", err);
}

void capture_filter_init(struct capture *cap)
{
    uv_timer_init(cap->loop, &cap->filter_timer);
    cap->filter_timer.data = cap;
}

/* libpcap filters the blocks already in a ring with the *new* filter when it is swapped, and a
 * ring block is handed over only when full or after the block timeout: narrowing the filter at
 * once would lose packets that passed the old one moments before (a deleted pod's last
 * packets). So a change first widens to (old or new), which drops nothing either would keep,
 * and narrows to the new filter once every block taken with the old one has been read. */
int capture_filter_apply(struct capture *cap, const char *base, char *err, size_t errlen)
{
    char *wanted;
    int rc;

    if (!cap->filter_text)
        return apply_now(cap, base, err, errlen); /* the first filter: nothing to keep */
    rc = check(cap, base, err, errlen);
    if (rc != 0)
        return rc;
    wanted = base && base[0] ? strdup(base) : NULL;
    if (base && base[0] && !wanted)
        return -ENOMEM;
    free(cap->filter_wanted);
    cap->filter_wanted = wanted;
    if (cap->filter_base && wanted) {
        size_t len = strlen(cap->filter_base) + strlen(wanted) + 16;
        char *wide = len <= 2 * CAPTURE_MAX_FILTER ? malloc(len) : NULL;
        if (wide) {
            snprintf(wide, len, "(%s) or (%s)", cap->filter_base, wanted);
            rc = apply_now(cap, wide, err, errlen);
            free(wide);
        }
        if (!wide || rc != 0)
            rc = apply_now(cap, wanted, err, errlen); /* too long to widen: narrow at once */
    } else if (!wanted) {
        return apply_now(cap, NULL, err, errlen); /* everything: nothing to narrow later */
    }
    /* The old filter was "everything": it stays until the blocks taken with it are read. */
    uv_timer_start(&cap->filter_timer, narrow_cb, 3 * (uint64_t)cap->cfg.block_timeout_ms + 50, 0);
    return rc;
}
