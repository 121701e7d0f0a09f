/* The bearer token check (token.h). */
#include "hub/token.h"

#include <errno.h>
#include <string.h>

int hub_check_token(const struct hub *h, struct rpc_call *call)
{
    const char *auth = h->token ? rpc_call_header(call, "authorization") : NULL;
    size_t tl, al;
    unsigned diff = 0;

    if (!h->token)
        return 0;
    if (!auth || strncmp(auth, "Bearer ", 7) != 0)
        return -EACCES;
    auth += 7;
    tl = strlen(h->token);
    al = strlen(auth);
    /* Constant time in the token's length: no early exit on the first difference. */
    for (size_t i = 0; i < tl; i++)
        diff |= (unsigned)(h->token[i] ^ (i < al ? auth[i] : 0));
    return diff == 0 && al == tl ? 0 : -EACCES;
}
