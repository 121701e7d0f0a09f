/* The BPF expression for a set of pod addresses. */
#include "kube/filter.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "util/error.h"

int kube_filter_build(const struct kube_target_set *set, struct nr_buf *out)
{
    const struct kube_ip *prev = NULL;
    size_t hosts = 0;
    int rc = 0;

    out->len = 0;
    for (size_t i = 0; i < set->n; i++) {
        const struct kube_ip *ip = &set->entries[i].ip;
        char addr[INET6_ADDRSTRLEN];
        char term[INET6_ADDRSTRLEN + 16];
        int n;

        /* The set is sorted by address: duplicates are neighbours. */
        if (prev != NULL && kube_ip_compare(prev, ip) == 0)
            continue;
        prev = ip;
        if (++hosts > KUBE_FILTER_HOSTS_MAX) {
            rc = NR_EOVERSIZE;
            goto out;
        }
        kube_ip_format(ip, addr, sizeof(addr));
        n = snprintf(term, sizeof(term), "%s%s host %s", hosts > 1 ? " or " : "",
                     ip->family == AF_INET ? "ip" : "ip6", addr);
        rc = nr_buf_append(out, term, (size_t)n);
        if (rc != 0)
            goto out;
    }
    if (hosts == 0)
        rc = nr_buf_append(out, KUBE_FILTER_NOTHING, strlen(KUBE_FILTER_NOTHING));
    if (rc == 0)
        rc = nr_buf_append(out, "", 1);
out:
    if (rc != 0)
        out->len = 0;
    return rc;
}
