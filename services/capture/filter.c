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

int capture_filter_apply(struct capture *cap, const char *base, char *err, size_t errlen)
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
        NR_INFO("filter applied", "filter=\"%.1000s\"", expr);
    } else {
        free(expr);
    }
    return rc;
}
