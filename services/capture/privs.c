/* Dropping privileges for good (see privs.h). */
#include "capture/privs.h"

#include <errno.h>
#include <grp.h>
#include <linux/capability.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Empties the permitted, effective and inheritable sets and the ambient set. */
static int clear_capabilities(void)
{
    struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
    struct __user_cap_data_struct d[2];

    memset(d, 0, sizeof(d));
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
    if (syscall(SYS_capset, &h, d) != 0)
        return -errno;
    return 0;
}

static int capabilities_empty(void)
{
    struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
    struct __user_cap_data_struct d[2];

    if (syscall(SYS_capget, &h, d) != 0)
        return 0;
    for (int i = 0; i < 2; i++)
        if (d[i].effective || d[i].permitted || d[i].inheritable)
            return 0;
    return 1;
}

int capture_drop_privileges(const char *user, char *err, size_t errlen)
{
    int rc;

    int pdeathsig = 0;

    /* Becoming another user clears the signal asked for when the parent dies (tap --local
     * asks for one): keep it. */
    prctl(PR_GET_PDEATHSIG, &pdeathsig, 0, 0, 0);
    if (getuid() == 0 && geteuid() == 0 && user && user[0] && strcmp(user, "root") != 0) {
        struct passwd *pw = getpwnam(user);
        if (!pw) {
            snprintf(err, errlen, "--user %s: no such user", user);
            return -ENOENT;
        }
        if (pw->pw_uid == 0) {
            snprintf(err, errlen, "--user %s: is root", user);
            return -EINVAL;
        }
        if (setgroups(0, NULL) != 0 || setgid(pw->pw_gid) != 0 || setuid(pw->pw_uid) != 0) {
            rc = -errno;
            snprintf(err, errlen, "cannot become %s: %s", user, strerror(errno));
            return rc;
        }
        if (pdeathsig)
            prctl(PR_SET_PDEATHSIG, pdeathsig, 0, 0, 0);
        if (setuid(0) == 0 || getuid() != pw->pw_uid || geteuid() != pw->pw_uid ||
            getgid() != pw->pw_gid || getegid() != pw->pw_gid) {
            snprintf(err, errlen, "became %s but root could be regained", user);
            return -EPERM;
        }
    }
    if (getuid() == 0 && (!user || !user[0] || strcmp(user, "root") == 0))
        return 0; /* staying root was asked for */
    rc = clear_capabilities();
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
        snprintf(err, errlen, "cannot set no_new_privs: %s", strerror(errno));
        return -errno;
    }
    if (rc != 0 || !capabilities_empty()) {
        snprintf(err, errlen, "cannot give up capabilities: %s", strerror(rc ? -rc : EPERM));
        return rc ? rc : -EPERM;
    }
    return 0;
}
