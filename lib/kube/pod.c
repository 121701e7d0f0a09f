/* Parsing of the API server's JSON (PodList bodies, watch event lines, Status bodies) with
 * jansson. Whatever the peer sends, a pod comes out with bounded, checked names and parsed
 * addresses, or the input is refused with a reason. */
#include "kube/pod.h"

#include <arpa/inet.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "util/error.h"

/* jansson's defaults: the top level must be an object or array, "\u0000" in strings is refused
 * (a name with a NUL would be cut silently), input past `len` is never read. */
#define LOAD_FLAGS 0

/* Strings quoted in messages come from the API server: a control byte in one (a decoded "\n",
 * say) must not break the message's one line. */
static void one_line(char *s, size_t len)
{
    for (size_t i = 0; s && i < len && s[i]; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            s[i] = '?';
}

static json_t *load(const char *text, size_t len, char *err, size_t errlen)
{
    json_error_t je;
    json_t *j = json_loadb(text, len, LOAD_FLAGS, &je);

    if (j == NULL) {
        nr_errf(0, err, errlen, "not JSON: %.80s (line %d column %d)", je.text, je.line, je.column);
        one_line(err, errlen);
    }
    return j;
}

/* A string member of obj, or NULL (absent, not a string, or holding a NUL). */
static const char *str_member(const json_t *obj, const char *key, size_t *len)
{
    const json_t *v = json_object_get(obj, key);
    const char *s;
    size_t n;

    if (!json_is_string(v))
        return NULL;
    s = json_string_value(v);
    n = json_string_length(v);
    if (strlen(s) != n)
        return NULL;
    if (len != NULL)
        *len = n;
    return s;
}

/* Kubernetes names are DNS labels / subdomains: lower-case letters, digits, '-' and '.'. The
 * check keeps hostile bytes out of logs, JSON output and pcapng name records downstream. */
static bool copy_name(char *dst, size_t cap, const char *s, size_t n)
{
    if (s == NULL || n == 0 || n >= cap)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];

        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.'))
            return false;
    }
    memcpy(dst, s, n);
    dst[n] = '\0';
    return true;
}

static bool parse_ip(const char *s, struct kube_ip *ip)
{
    memset(ip, 0, sizeof(*ip));
    if (s == NULL || strlen(s) > 45)
        return false;
    if (inet_pton(AF_INET, s, ip->addr) == 1) {
        ip->family = AF_INET;
        return true;
    }
    if (inet_pton(AF_INET6, s, ip->addr) == 1) {
        ip->family = AF_INET6;
        return true;
    }
    return false;
}

int kube_ip_compare(const struct kube_ip *a, const struct kube_ip *b)
{
    if (a->family != b->family)
        return a->family == AF_INET ? -1 : 1;
    return memcmp(a->addr, b->addr, a->family == AF_INET ? 4 : 16);
}

const char *kube_ip_format(const struct kube_ip *ip, char *buf, size_t len)
{
    if (inet_ntop(ip->family == AF_INET ? AF_INET : AF_INET6, ip->addr, buf, (socklen_t)len) ==
        NULL) {
        if (len > 0)
            buf[0] = '\0';
    }
    return buf;
}

static void add_ip(struct kube_pod *pod, const char *s)
{
    struct kube_ip ip;

    if (pod->n_ips >= KUBE_POD_IPS_MAX || !parse_ip(s, &ip))
        return;
    for (size_t i = 0; i < pod->n_ips; i++)
        if (kube_ip_compare(&pod->ips[i], &ip) == 0)
            return;
    pod->ips[pod->n_ips++] = ip;
}

static bool copy_rv(char *rv, const json_t *meta, char *err, size_t errlen)
{
    size_t n = 0;
    const char *s = str_member(meta, "resourceVersion", &n);

    rv[0] = '\0';
    if (s == NULL)
        return true;
    if (n > KUBE_RV_MAX) {
        nr_errf(0, err, errlen, "resourceVersion longer than %d bytes", KUBE_RV_MAX);
        return false;
    }
    memcpy(rv, s, n + 1);
    return true;
}

/* Label keys are [prefix/]name (prefix a DNS subdomain, name up to 63 of [A-Za-z0-9._-]),
 * values up to 63 of [A-Za-z0-9._-]: anything else is not a label the API would have stored,
 * and is left out rather than let a separator into the pcapng description. */
static bool label_chars(const char *s, size_t n, size_t max, bool slash)
{
    if (n > max)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.' || (slash && c == '/')))
            return false;
    }
    return true;
}

static int by_key(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* metadata.labels → "k=v,k=v" sorted by key, as many whole labels as fit. */
static void copy_labels(char *dst, size_t cap, const json_t *labels)
{
    const char *keys[64] = {NULL};
    size_t n = 0, o = 0;
    const char *k;
    const json_t *v;

    dst[0] = '\0';
    json_object_foreach((json_t *)labels, k, v)
    {
        if (n < sizeof(keys) / sizeof(keys[0]) && json_is_string(v) && k[0] &&
            label_chars(k, strlen(k), KUBE_NAME_MAX + 64, true) &&
            strlen(json_string_value(v)) == json_string_length(v) &&
            label_chars(json_string_value(v), json_string_length(v), 63, false))
            keys[n++] = k;
    }
    qsort(keys, n, sizeof(keys[0]), by_key);
    for (size_t i = 0; i < n; i++) {
        const char *val = json_string_value(json_object_get(labels, keys[i]));
        size_t need = (o ? 1 : 0) + strlen(keys[i]) + 1 + strlen(val);
        if (o + need >= cap)
            break;
        o += (size_t)snprintf(dst + o, cap - o, "%s%s=%s", o ? "," : "", keys[i], val);
    }
}

/* A Pod object → pod. Only the fields targeting reads are looked at. */
static int pod_from_json(const json_t *obj, struct kube_pod *pod, char *err, size_t errlen)
{
    const json_t *meta = json_object_get(obj, "metadata");
    const json_t *spec = json_object_get(obj, "spec");
    const json_t *status = json_object_get(obj, "status");
    const json_t *ips = json_object_get(status, "podIPs");
    const char *s;
    size_t n = 0;

    memset(pod, 0, sizeof(*pod));
    if (!json_is_object(obj) || !json_is_object(meta)) {
        nr_errf(0, err, errlen, "a pod without metadata");
        return NR_EPARSE;
    }
    s = str_member(meta, "namespace", &n);
    if (!copy_name(pod->namespace, sizeof(pod->namespace), s, n)) {
        nr_errf(0, err, errlen, "a pod without a valid metadata.namespace");
        return NR_EPARSE;
    }
    s = str_member(meta, "name", &n);
    if (!copy_name(pod->name, sizeof(pod->name), s, n)) {
        nr_errf(0, err, errlen, "a pod without a valid metadata.name (namespace %s)",
                pod->namespace);
        return NR_EPARSE;
    }
    s = str_member(meta, "uid", &n);
    if (s && label_chars(s, n, KUBE_UID_MAX, false))
        memcpy(pod->uid, s, n + 1);
    copy_labels(pod->labels, sizeof(pod->labels), json_object_get(meta, "labels"));
    pod->host_network = json_is_true(json_object_get(spec, "hostNetwork"));
    s = str_member(status, "phase", NULL);
    pod->finished = s != NULL && (strcmp(s, "Succeeded") == 0 || strcmp(s, "Failed") == 0);
    for (size_t i = 0; i < json_array_size(ips); i++)
        add_ip(pod, str_member(json_array_get(ips, i), "ip", NULL));
    if (pod->n_ips == 0)
        add_ip(pod, str_member(status, "podIP", NULL));
    return 0;
}

static const struct {
    const char *name;
    enum kube_event_type type;
} event_types[] = {
    {"ADDED", KUBE_EVENT_ADDED},     {"MODIFIED", KUBE_EVENT_MODIFIED},
    {"DELETED", KUBE_EVENT_DELETED}, {"BOOKMARK", KUBE_EVENT_BOOKMARK},
    {"ERROR", KUBE_EVENT_ERROR},
};

static void status_fields(const json_t *st, int *code, char *msg, size_t msglen)
{
    const json_t *c = json_object_get(st, "code");
    const char *m = str_member(st, "message", NULL);

    *code = 0;
    if (json_is_integer(c) && json_integer_value(c) >= 0 && json_integer_value(c) <= 999)
        *code = (int)json_integer_value(c);
    if (msglen > 0) {
        msg[0] = '\0';
        if (m != NULL) {
            size_t j = 0;

            /* Printable ASCII only: the message ends up in logs and JSON lines. */
            for (size_t i = 0; m[i] != '\0' && j + 1 < msglen; i++)
                msg[j++] = (m[i] >= 0x20 && m[i] < 0x7f) ? m[i] : '?';
            msg[j] = '\0';
        }
    }
}

int kube_event_parse(const char *line, size_t len, struct kube_event *ev, char *err, size_t errlen)
{
    json_t *j = load(line, len, err, errlen);
    const json_t *obj;
    const char *type;
    int rc = 0;

    memset(ev, 0, sizeof(*ev));
    if (j == NULL)
        return NR_EPARSE;
    type = str_member(j, "type", NULL);
    obj = json_object_get(j, "object");
    if (type == NULL || !json_is_object(obj)) {
        nr_errf(0, err, errlen, "a watch event without type or object");
        rc = NR_EPARSE;
        goto out;
    }
    for (size_t i = 0; i < sizeof(event_types) / sizeof(event_types[0]); i++)
        if (strcmp(type, event_types[i].name) == 0)
            ev->type = event_types[i].type;
    switch (ev->type) {
    case KUBE_EVENT_ADDED:
    case KUBE_EVENT_MODIFIED:
    case KUBE_EVENT_DELETED:
        rc = pod_from_json(obj, &ev->pod, err, errlen);
        if (rc == 0 &&
            !copy_rv(ev->resource_version, json_object_get(obj, "metadata"), err, errlen))
            rc = NR_EPARSE;
        break;
    case KUBE_EVENT_BOOKMARK:
        if (!copy_rv(ev->resource_version, json_object_get(obj, "metadata"), err, errlen))
            rc = NR_EPARSE;
        else if (ev->resource_version[0] == '\0') {
            nr_errf(0, err, errlen, "a BOOKMARK without metadata.resourceVersion");
            rc = NR_EPARSE;
        }
        break;
    case KUBE_EVENT_ERROR: status_fields(obj, &ev->code, ev->message, sizeof(ev->message)); break;
    default:
        nr_errf(0, err, errlen, "unknown watch event type \"%.32s\"", type);
        rc = NR_EPARSE;
        break;
    }
out:
    if (rc != 0) {
        memset(ev, 0, sizeof(*ev));
        one_line(err, errlen);
    }
    json_decref(j);
    return rc;
}

int kube_pod_list_parse(const char *body, size_t len, kube_pod_list_cb cb, void *arg, char *rv,
                        size_t *skipped, char *err, size_t errlen)
{
    json_t *j = load(body, len, err, errlen);
    const json_t *items;
    const char *kind;
    size_t i, bad = 0;
    int rc = 0;

    rv[0] = '\0';
    if (skipped != NULL)
        *skipped = 0;
    if (j == NULL)
        return NR_EPARSE;
    kind = str_member(j, "kind", NULL);
    items = json_object_get(j, "items");
    if (kind == NULL || strcmp(kind, "PodList") != 0 || !json_is_array(items)) {
        nr_errf(0, err, errlen, "not a PodList (kind %.32s)", kind ? kind : "missing");
        rc = NR_EPARSE;
        goto out;
    }
    if (json_array_size(items) > KUBE_LIST_ITEMS_MAX) {
        nr_errf(0, err, errlen, "a PodList of %zu items (more than %d)", json_array_size(items),
                KUBE_LIST_ITEMS_MAX);
        rc = NR_EOVERSIZE;
        goto out;
    }
    if (!copy_rv(rv, json_object_get(j, "metadata"), err, errlen)) {
        rc = NR_EPARSE;
        goto out;
    }
    if (rv[0] == '\0') {
        nr_errf(0, err, errlen, "a PodList without metadata.resourceVersion");
        rc = NR_EPARSE;
        goto out;
    }
    for (i = 0; i < json_array_size(items); i++) {
        const json_t *item = json_array_get(items, i);
        struct kube_pod pod;

        if (pod_from_json(item, &pod, NULL, 0) != 0) {
            bad++;
            continue;
        }
        rc = cb(&pod, arg);
        if (rc != 0)
            break;
    }
    if (skipped != NULL)
        *skipped = bad;
out:
    if (rc != 0 && rc != NR_EPARSE && rc != NR_EOVERSIZE)
        nr_errf(0, err, errlen, "%s", nr_strerror(rc));
    if (rc != 0)
        one_line(err, errlen);
    json_decref(j);
    return rc;
}

int kube_status_parse(const char *body, size_t len, int *code, char *msg, size_t msglen)
{
    json_t *j = load(body, len, NULL, 0);
    const char *kind;
    int rc = 0;

    *code = 0;
    if (msglen > 0)
        msg[0] = '\0';
    if (j == NULL)
        return NR_EPARSE;
    kind = str_member(j, "kind", NULL);
    if (kind == NULL || strcmp(kind, "Status") != 0)
        rc = NR_EPARSE;
    else
        status_fields(j, code, msg, msglen);
    json_decref(j);
    return rc;
}
