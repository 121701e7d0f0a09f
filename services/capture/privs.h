/* Giving up privilege once the handles are open (docs/design.md §9): to --user with no
 * supplementary groups and, on Linux, no capabilities in any set; no way back
 * (PR_SET_NO_NEW_PRIVS). */
#ifndef NR_CAPTURE_PRIVS_H
#define NR_CAPTURE_PRIVS_H

#include <stddef.h>

/* Drops to `user` when running as root ("" or "root": stays root, capabilities kept); when not
 * root (a binary with file capabilities), only the capabilities are cleared. Checks that it took:
 * returns 0, or a negative errno with a one-line reason in err. */
int capture_drop_privileges(const char *user, char *err, size_t errlen);

#endif
