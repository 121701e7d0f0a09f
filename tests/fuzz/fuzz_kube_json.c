/* libFuzzer target for the bytes the Kubernetes API (or a kubeconfig) hands lib/kube: the first
 * byte picks the parser — watch event line, PodList body, Status body, kubeconfig — and what
 * comes out must hold its promises: bounded NUL-terminated names of the allowed characters,
 * parsed addresses, and a target set and filter text that stay consistent. */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kube/config.h"
#include "kube/filter.h"
#include "kube/pod.h"
#include "kube/target.h"
#include "util/buf.h"
#include "util/error.h"
#include "util/log.h"
#include "fuzz.h"

static void check_name(const char *s, size_t cap)
{
    size_t n = strnlen(s, cap);

    CHECK(n > 0 && n < cap);
    for (size_t i = 0; i < n; i++)
        CHECK((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-' ||
              s[i] == '.');
}

static void check_pod(const struct kube_pod *p)
{
    check_name(p->namespace, sizeof(p->namespace));
    check_name(p->name, sizeof(p->name));
    CHECK(p->n_ips <= KUBE_POD_IPS_MAX);
    for (size_t i = 0; i < p->n_ips; i++) {
        CHECK(p->ips[i].family == AF_INET || p->ips[i].family == AF_INET6);
        for (size_t j = 0; j < i; j++)
            CHECK(kube_ip_compare(&p->ips[i], &p->ips[j]) != 0);
    }
}

static int apply(const struct kube_pod *pod, void *arg)
{
    int rc;

    check_pod(pod);
    rc = kube_target_apply(arg, KUBE_EVENT_ADDED, pod);
    return rc == KUBE_TARGET_LIMITED ? 0 : rc;
}

static void check_set(struct kube_target *t)
{
    struct nr_buf out;
    int rc;

    CHECK(kube_target_commit(t) >= 0);
    CHECK(kube_target_commit(t) == 0); /* nothing changed since */
    for (size_t i = 1; i < t->set.n; i++)
        CHECK(kube_ip_compare(&t->set.entries[i - 1].ip, &t->set.entries[i].ip) <= 0);
    nr_buf_init(&out, KUBE_FILTER_HOSTS_MAX * 47 + 64);
    rc = kube_filter_build(&t->set, &out);
    CHECK(rc == 0 || (t->set.n > KUBE_FILTER_HOSTS_MAX && rc < 0));
    if (rc == 0)
        CHECK(out.len > 0 && out.data[out.len - 1] == '\0' &&
              strlen((char *)out.data) == out.len - 1);
    nr_buf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct kube_selector sel;
    static int ready;
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    struct kube_target t;
    char err[256], rv[KUBE_RV_MAX + 1];
    int rc;

    if (!ready) {
        nr_log_set_level(NR_LOG_ERROR);
        CHECK(kube_selector_init(&sel, "e", NULL, "kube-system", err, sizeof(err)) == 0);
        ready = 1;
    }
    if (size < 1)
        return 0;
    kube_target_init(&t, &sel);
    switch (data[0] % 4) {
    case 0: {
        struct kube_event ev;

        err[0] = '\0';
        if (kube_event_parse(text, len, &ev, err, sizeof(err)) == 0) {
            CHECK(ev.type >= KUBE_EVENT_ADDED && ev.type <= KUBE_EVENT_ERROR);
            CHECK(strnlen(ev.resource_version, sizeof(ev.resource_version)) <= KUBE_RV_MAX);
            CHECK(strnlen(ev.message, sizeof(ev.message)) < sizeof(ev.message));
            if (ev.type <= KUBE_EVENT_DELETED) {
                check_pod(&ev.pod);
                CHECK(kube_target_apply(&t, ev.type, &ev.pod) == 0);
                check_set(&t);
            }
        } else {
            CHECK(err[0] != '\0' && strchr(err, '\n') == NULL && strchr(err, '\r') == NULL);
        }
        break;
    }
    case 1: {
        size_t skipped = 0;

        err[0] = '\0';
        rc = kube_pod_list_parse(text, len, apply, &t, rv, &skipped, err, sizeof(err));
        if (rc == 0) {
            CHECK(rv[0] != '\0');
            check_set(&t);
        } else {
            CHECK(err[0] != '\0' && strchr(err, '\n') == NULL && strchr(err, '\r') == NULL);
        }
        break;
    }
    case 2: {
        int code = -1;
        char msg[64];

        if (kube_status_parse(text, len, &code, msg, sizeof(msg)) == 0)
            CHECK(code >= 0 && code <= 999 && strlen(msg) < sizeof(msg));
        break;
    }
    default: {
        /* Bit 2: insecure-skip-tls-verify refused; bit 3: the context named "dev", not
         * current-context; bit 4: a relative name's base is the current directory. */
        unsigned flags = data[0] & 4 ? 0 : KUBE_CONFIG_ALLOW_INSECURE;
        const char *context = data[0] & 8 ? "dev" : NULL;
        const char *base = data[0] & 16 ? NULL : "/base";
        struct kube_config c;
        char token[64];

        kube_config_init(&c);
        err[0] = '\0';
        rc = kube_config_parse(&c, text, len, base, context, flags, err, sizeof(err));
        if (rc == 0) {
            CHECK(c.server != NULL && strncmp(c.server, "http", 4) == 0);
            CHECK(c.server[strlen(c.server) - 1] != '/');
            CHECK(c.source != NULL);
            CHECK(!c.insecure || flags == KUBE_CONFIG_ALLOW_INSECURE);
            CHECK(c.ca_data.data == NULL || c.ca_data.len > 0);
            CHECK(c.cert_data.data == NULL || c.cert_data.len > 0);
            CHECK(c.key_data.data == NULL || c.key_data.len > 0);
            if (base && c.ca_file)
                CHECK(c.ca_file[0] == '/');
            /* A token written in the file (a token file would be read from disk). */
            if (c.token && !c.token_file) {
                rc = kube_config_token(&c, token, sizeof(token), err, sizeof(err));
                if (rc == 0)
                    CHECK(strlen(token) > 0 && strlen(token) < sizeof(token) &&
                          strpbrk(token, " \t\r\n") == NULL);
                else
                    CHECK(rc == NR_EPARSE || rc == NR_EOVERSIZE);
            }
        } else {
            CHECK(c.server == NULL && c.token == NULL && c.ca_data.data == NULL);
            CHECK(err[0] != '\0' && strchr(err, '\n') == NULL);
        }
        kube_config_free(&c);
        break;
    }
    }
    kube_target_free(&t);
    return 0;
}
