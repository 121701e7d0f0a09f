/* Network namespaces of targeted pods, from /proc (see netns.h). */
#include "capture/tls/netns.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/parse.h"

/* A line longer than this is no line of these files: skipped. */
#define LINE_MAX_LEN 256
#define SEEN_SLOTS   (2 * CAPTURE_TLS_NETNS_SCAN_MAX) /* open addressing, half full at most */

static int addr_cmp(const void *a, const void *b)
{
    return memcmp(a, b, sizeof(struct capture_tls_netns_addr));
}

void capture_tls_netns_sort(struct capture_tls_netns_addr *addrs, size_t n)
{
    if (n > 1)
        qsort(addrs, n, sizeof(*addrs), addr_cmp);
}

/* The next line of text: [*line, *line + *n), without its '\n'. 0 at the end. */
static int next_line(const char **pos, const char *end, const char **line, size_t *n)
{
    const char *nl;

    if (*pos >= end)
        return 0;
    nl = memchr(*pos, '\n', (size_t)(end - *pos));
    *line = *pos;
    *n = (size_t)((nl ? nl : end) - *pos);
    *pos = nl ? nl + 1 : end;
    return 1;
}

static size_t skip_spaces(const char *s, size_t n, size_t i)
{
    while (i < n && (s[i] == ' ' || s[i] == '\t'))
        i++;
    return i;
}

/* IPv4 fib_trie: an address leaf "|-- 10.1.2.3" followed (more indented) by its prefixes, one
 * of which is "/32 host LOCAL" when the address is the namespace's own. */
int capture_tls_netns_parse_fib_trie(const char *text, size_t len, capture_tls_netns_addr_cb cb,
                                     void *arg)
{
    const char *pos = text, *end = text + len, *line;
    struct capture_tls_netns_addr leaf;
    int have_leaf = 0, rc;
    size_t n;

    while (next_line(&pos, end, &line, &n)) {
        size_t i = skip_spaces(line, n, 0);
        char ip[16];
        struct in_addr v4;
        if (n > LINE_MAX_LEN) {
            have_leaf = 0;
            continue;
        }
        if (n - i >= 4 && memcmp(line + i, "|-- ", 4) == 0) {
            size_t alen = n - i - 4;
            have_leaf = 0;
            if (alen == 0 || alen >= sizeof(ip))
                continue;
            memcpy(ip, line + i + 4, alen);
            ip[alen] = 0;
            if (inet_pton(AF_INET, ip, &v4) != 1)
                continue;
            memset(&leaf, 0, sizeof(leaf));
            leaf.a[10] = leaf.a[11] = 0xff;
            memcpy(leaf.a + 12, &v4, 4);
            have_leaf = 1;
        } else if (i < n && line[i] == '/' && have_leaf) {
            static const char local[] = "/32 host LOCAL";
            if (n - i == sizeof(local) - 1 && memcmp(line + i, local, sizeof(local) - 1) == 0) {
                have_leaf = 0; /* once per leaf */
                rc = cb(arg, &leaf);
                if (rc)
                    return rc;
            }
        } else if (i == n || line[i] != '/') {
            have_leaf = 0; /* "+--" nodes, table names: the leaf's prefixes are over */
        }
    }
    return 0;
}

/* if_inet6: "fe800000000000000000000000000001 02 40 20 80 lo", every address the namespace's. */
int capture_tls_netns_parse_if_inet6(const char *text, size_t len, capture_tls_netns_addr_cb cb,
                                     void *arg)
{
    const char *pos = text, *end = text + len, *line;
    size_t n;
    int rc;

    while (next_line(&pos, end, &line, &n)) {
        struct capture_tls_netns_addr a;
        int ok = n >= 33 && n <= LINE_MAX_LEN && line[32] == ' ';
        for (int i = 0; ok && i < 16; i++) {
            int hi = nr_hex_digit(line[2 * i]), lo = nr_hex_digit(line[2 * i + 1]);
            ok = hi >= 0 && lo >= 0;
            a.a[i] = (uint8_t)(hi << 4 | lo);
        }
        if (!ok)
            continue;
        rc = cb(arg, &a);
        if (rc)
            return rc;
    }
    return 0;
}

struct match {
    const struct capture_tls_netns_addr *addrs;
    size_t n;
};

static int is_targeted(void *arg, const struct capture_tls_netns_addr *a)
{
    const struct match *m = arg;

    return m->n && bsearch(a, m->addrs, m->n, sizeof(*a), addr_cmp) != NULL;
}

/* Reads at most max bytes of path into buf; the length, or -1. */
static ssize_t read_capped(const char *path, char *buf, size_t max)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    size_t len = 0;

    if (fd < 0)
        return -1;
    while (len < max) {
        ssize_t r = read(fd, buf + len, max - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        len += (size_t)r;
    }
    close(fd);
    return (ssize_t)len;
}

/* Whether the namespace of `pid` holds a targeted address. */
static int holds_targeted(const char *proc, long pid, const struct match *m, char *buf)
{
    char path[128];
    ssize_t len;

    snprintf(path, sizeof(path), "%s/%ld/net/fib_trie", proc, pid);
    len = read_capped(path, buf, CAPTURE_TLS_NETNS_FILE_MAX);
    if (len > 0 && capture_tls_netns_parse_fib_trie(buf, (size_t)len, is_targeted, (void *)m))
        return 1;
    snprintf(path, sizeof(path), "%s/%ld/net/if_inet6", proc, pid);
    len = read_capped(path, buf, CAPTURE_TLS_NETNS_FILE_MAX);
    return len > 0 && capture_tls_netns_parse_if_inet6(buf, (size_t)len, is_targeted, (void *)m);
}

/* Adds inum to the set; 1 when it was new, 0 when seen, -1 when the set is full. */
static int seen_add(uint32_t *slots, size_t *used, uint32_t inum)
{
    size_t i = (inum * 2654435761u) % SEEN_SLOTS;

    while (slots[i]) {
        if (slots[i] == inum)
            return 0;
        i = (i + 1) % SEEN_SLOTS;
    }
    if (*used >= CAPTURE_TLS_NETNS_SCAN_MAX)
        return -1;
    slots[i] = inum;
    (*used)++;
    return 1;
}

int capture_tls_netns_scan(const char *proc, const struct capture_tls_netns_addr *addrs, size_t n,
                           uint32_t *out, size_t max, struct capture_tls_netns_result *res)
{
    struct match m = {addrs, n};
    uint32_t *slots = NULL;
    char *buf = NULL;
    size_t used = 0;
    struct dirent *e;
    DIR *d = NULL;
    int rc = 0;

    memset(res, 0, sizeof(*res));
    if (n == 0)
        return 0; /* nothing targeted: no namespace can match */
    slots = calloc(SEEN_SLOTS, sizeof(*slots));
    buf = malloc(CAPTURE_TLS_NETNS_FILE_MAX);
    if (!slots || !buf) {
        rc = -ENOMEM;
        goto out;
    }
    d = opendir(proc);
    if (!d) {
        rc = -errno;
        goto out;
    }
    while ((e = readdir(d))) {
        char path[128], *end;
        long pid = strtol(e->d_name, &end, 10);
        struct stat st;
        int added;
        if (end == e->d_name || *end || pid <= 0 || pid > 0x7fffffff)
            continue;
        snprintf(path, sizeof(path), "%s/%ld/ns/net", proc, pid);
        if (stat(path, &st) != 0 || st.st_ino == 0 || st.st_ino > UINT32_MAX)
            continue;
        added = seen_add(slots, &used, (uint32_t)st.st_ino);
        if (added < 0) {
            res->left_out++;
            continue;
        }
        if (added == 0)
            continue;
        res->namespaces++;
        if (!holds_targeted(proc, pid, &m, buf))
            continue;
        if (res->matched == max) {
            res->left_out++;
            continue;
        }
        out[res->matched++] = (uint32_t)st.st_ino;
    }
out:
    if (d)
        closedir(d);
    free(slots);
    free(buf);
    return rc;
}
