/* The Kubernetes API's bytes, parsed without trusting them: a PodList body and the lines of a
 * watch stream, reduced to what pod targeting needs (namespace, name, IPs, host network,
 * finished or not). Pure functions (jansson inside), no I/O: unit-tested and fuzzed. */
#ifndef NR_KUBE_POD_H
#define NR_KUBE_POD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KUBE_NAMESPACE_MAX  63     /* a DNS label */
#define KUBE_NAME_MAX       253    /* a DNS subdomain */
#define KUBE_POD_IPS_MAX    8      /* status.podIPs beyond this are ignored (dual stack has two) */
#define KUBE_RV_MAX         128    /* metadata.resourceVersion; longer is refused */
#define KUBE_LIST_ITEMS_MAX 200000 /* a PodList with more items is refused */
#define KUBE_UID_MAX        63     /* metadata.uid (a UUID: 36) */
#define KUBE_LABELS_MAX     1023   /* metadata.labels as "k=v,k=v" (labels past it are left out) */

/* An IP address: family AF_INET (4 bytes used) or AF_INET6 (16), network byte order. */
struct kube_ip {
    uint8_t family;
    uint8_t addr[16];
};

struct kube_pod {
    char namespace[KUBE_NAMESPACE_MAX + 1];
    char name[KUBE_NAME_MAX + 1];
    char uid[KUBE_UID_MAX + 1]; /* "" when absent or not [0-9a-zA-Z-] */
    /* metadata.labels as "key=value,key=value" sorted by key (the form Inspektor Gadget writes
     * into pcapng); only labels of valid Kubernetes syntax, so ',', '=' and ';' never occur
     * inside one. */
    char labels[KUBE_LABELS_MAX + 1];
    bool host_network; /* spec.hostNetwork */
    bool finished;     /* status.phase is Succeeded or Failed */
    size_t n_ips;      /* distinct addresses of status.podIPs, else status.podIP */
    struct kube_ip ips[KUBE_POD_IPS_MAX];
};

enum kube_event_type {
    KUBE_EVENT_ADDED = 1,
    KUBE_EVENT_MODIFIED,
    KUBE_EVENT_DELETED,
    KUBE_EVENT_BOOKMARK,
    KUBE_EVENT_ERROR,
};

struct kube_event {
    enum kube_event_type type;
    struct kube_pod pod;                    /* ADDED, MODIFIED, DELETED */
    char resource_version[KUBE_RV_MAX + 1]; /* the object's; "" when it has none (ERROR) */
    int code;                               /* ERROR: the Status's code (410: relist), or 0 */
    char message[256];                      /* ERROR: the Status's message, cut */
};

/* Reads one watch event (one line of the stream, without its '\n'; not NUL-terminated) into
 * ev. A pod object must have a valid namespace and name ([a-z0-9.-], within the caps);
 * addresses that do not parse are skipped. Returns 0, or NR_EPARSE with a one-line reason in
 * err (may be NULL): not JSON, not an object, unknown type, a pod without valid names, a
 * resourceVersion past KUBE_RV_MAX. */
int kube_event_parse(const char *line, size_t len, struct kube_event *ev, char *err, size_t errlen);

/* Called for each pod of a list, in order; a non-zero return stops the walk and is returned
 * by kube_pod_list_parse. pod is valid during the call only. */
typedef int (*kube_pod_list_cb)(const struct kube_pod *pod, void *arg);

/* Reads a PodList body (not NUL-terminated). The whole body is checked before the first call
 * of cb: a body that fails (not JSON, not {"kind":"PodList"...} with an items array and a
 * metadata.resourceVersion, more than KUBE_LIST_ITEMS_MAX items) calls cb never. Items that
 * are not valid pods are skipped and counted in *skipped (may be NULL). The list's
 * resourceVersion goes to rv (KUBE_RV_MAX + 1 bytes). Returns 0, NR_EPARSE / NR_EOVERSIZE
 * with err, or what cb returned. */
int kube_pod_list_parse(const char *body, size_t len, kube_pod_list_cb cb, void *arg, char *rv,
                        size_t *skipped, char *err, size_t errlen);

/* The Status object of a failed request's body (HTTP 4xx/5xx): its code and message (cut to
 * msglen). Returns 0 or NR_EPARSE when the body is not a Status. */
int kube_status_parse(const char *body, size_t len, int *code, char *msg, size_t msglen);

/* Text form of an address ("10.1.2.3", "fd00::1"); buf needs 46 bytes (INET6_ADDRSTRLEN). */
const char *kube_ip_format(const struct kube_ip *ip, char *buf, size_t len);

/* Orders addresses: IPv4 before IPv6, then by bytes. */
int kube_ip_compare(const struct kube_ip *a, const struct kube_ip *b);

#endif
