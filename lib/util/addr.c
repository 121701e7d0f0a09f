/* Parsing of host:port addresses, IPv6 literals in brackets included. */
#include "util/addr.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

int nr_addr_split(const char *addr, char *host, size_t hostlen, uint16_t *port, char *err,
                  size_t errlen)
{
    const char *colon, *h = addr;
    size_t hlen;
    unsigned long p = 0;

    if (!addr || !*addr) {
        snprintf(err, errlen, "empty address (want host:port)");
        return -EINVAL;
    }
    if (addr[0] == '[') {
        const char *close = strchr(addr, ']');
        if (!close || close[1] != ':') {
            snprintf(err, errlen, "invalid address \"%s\": want [ipv6]:port", addr);
            return -EINVAL;
        }
        h = addr + 1;
        hlen = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strrchr(addr, ':');
        if (!colon || strchr(addr, ':') != colon) {
            snprintf(err, errlen, "invalid address \"%s\": want host:port (IPv6 in brackets)",
                     addr);
            return -EINVAL;
        }
        hlen = (size_t)(colon - addr);
    }
    if (hlen >= hostlen) {
        snprintf(err, errlen, "invalid address \"%s\": host name too long", addr);
        return -EINVAL;
    }
    const char *d = colon + 1;
    if (!*d) {
        snprintf(err, errlen, "invalid address \"%s\": missing port", addr);
        return -EINVAL;
    }
    for (; *d; d++) {
        if (*d < '0' || *d > '9' || p > 65535) {
            snprintf(err, errlen, "invalid address \"%s\": port must be a number 0-65535", addr);
            return -EINVAL;
        }
        p = p * 10 + (unsigned long)(*d - '0');
    }
    if (p > 65535) {
        snprintf(err, errlen, "invalid address \"%s\": port must be a number 0-65535", addr);
        return -EINVAL;
    }
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    *port = (uint16_t)p;
    return 0;
}
