/* "host:port" as users write it in flags: "127.0.0.1:8897", "[::1]:8897", ":8898" (any address),
 * "localhost:8898". */
#ifndef NR_UTIL_ADDR_H
#define NR_UTIL_ADDR_H

#include <stddef.h>
#include <stdint.h>

/* Splits addr into host (without brackets; "" when omitted) and port. Returns 0, or -EINVAL with
 * a one-line reason in err. */
int nr_addr_split(const char *addr, char *host, size_t hostlen, uint16_t *port, char *err,
                  size_t errlen);

#endif
