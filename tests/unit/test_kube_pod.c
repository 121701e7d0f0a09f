/* Tests for lib/kube/pod.c: PodList bodies and watch lines in the API's real shape come out as
 * the pods targeting needs; hostile or broken ones are refused with a reason, never half-read. */
#include <arpa/inet.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "kube/pod.h"
#include "util/error.h"

#define POD(ns, name, extra)                                                    \
    "{\"kind\":\"Pod\",\"metadata\":{\"namespace\":\"" ns "\",\"name\":\"" name \
    "\",\"resourceVersion\":\"42\",\"labels\":{\"a\":\"b\"}},\"spec\":{\"nodeName\":\"n1\"" extra

static const char *ip_text(const struct kube_ip *ip)
{
    static char buf[64];

    return kube_ip_format(ip, buf, sizeof(buf));
}

static void event_ok(const char *line, struct kube_event *ev)
{
    char err[256] = "";
    int rc = kube_event_parse(line, strlen(line), ev, err, sizeof(err));

    if (rc != 0)
        fail_msg("%s: rc %d: %s", line, rc, err);
}

static void event_bad(const char *line, const char *want)
{
    struct kube_event ev;
    char err[256] = "";
    int rc = kube_event_parse(line, strlen(line), &ev, err, sizeof(err));

    if (rc != NR_EPARSE)
        fail_msg("%s: rc %d, want NR_EPARSE", line, rc);
    if (strstr(err, want) == NULL)
        fail_msg("%s: error \"%s\" lacks \"%s\"", line, err, want);
    assert_int_equal(ev.type, 0);
}

static void watch_events(void **state)
{
    struct kube_event ev;

    event_ok("{\"type\":\"ADDED\",\"object\":" POD(
                 "default", "web-1",
                 "},\"status\":{\"phase\":"
                 "\"Running\",\"podIP\":\"10.0.0.1\",\"podIPs\":[{\"ip\":\"10.0.0.1\"},{\"ip\":"
                 "\"fd00::1\"},{\"ip\":\"10.0.0.1\"},{\"ip\":\"bogus\"}]}}}"),
             &ev);
    assert_int_equal(ev.type, KUBE_EVENT_ADDED);
    assert_string_equal(ev.pod.namespace, "default");
    assert_string_equal(ev.pod.name, "web-1");
    assert_string_equal(ev.resource_version, "42");
    assert_int_equal(ev.pod.n_ips, 2); /* duplicate and bogus skipped */
    assert_string_equal(ip_text(&ev.pod.ips[0]), "10.0.0.1");
    assert_int_equal(ev.pod.ips[1].family, AF_INET6);
    assert_string_equal(ip_text(&ev.pod.ips[1]), "fd00::1");
    assert_false(ev.pod.host_network);
    assert_false(ev.pod.finished);

    /* podIP only (older servers), hostNetwork, finished. */
    event_ok(
        "{\"type\":\"MODIFIED\",\"object\":" POD(
            "kube-system", "proxy",
            ",\"hostNetwork\":true},\"status\":{\"phase\":\"Succeeded\",\"podIP\":\"1.2.3.4\"}}}"),
        &ev);
    assert_int_equal(ev.type, KUBE_EVENT_MODIFIED);
    assert_int_equal(ev.pod.n_ips, 1);
    assert_true(ev.pod.host_network);
    assert_true(ev.pod.finished);
    event_ok("{\"type\":\"DELETED\",\"object\":" POD("a", "b",
                                                     "},\"status\":{\"phase\":"
                                                     "\"Failed\"}}}"),
             &ev);
    assert_int_equal(ev.type, KUBE_EVENT_DELETED);
    assert_int_equal(ev.pod.n_ips, 0);
    assert_true(ev.pod.finished);

    event_ok("{\"type\":\"BOOKMARK\",\"object\":{\"kind\":\"Pod\",\"metadata\":"
             "{\"resourceVersion\":\"12345\"}}}",
             &ev);
    assert_int_equal(ev.type, KUBE_EVENT_BOOKMARK);
    assert_string_equal(ev.resource_version, "12345");

    event_ok("{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"status\":\"Failure\","
             "\"message\":\"too old resource version: 1 (2)\\n\",\"reason\":\"Expired\","
             "\"code\":410}}",
             &ev);
    assert_int_equal(ev.type, KUBE_EVENT_ERROR);
    assert_int_equal(ev.code, 410);
    assert_string_equal(ev.message, "too old resource version: 1 (2)?");
}

static void bad_events(void **state)
{
    char big[400];

    event_bad("", "not JSON");
    event_bad("{\"type\":\"ADDED\"", "not JSON");
    event_bad("[]", "without type or object");
    event_bad("{\"type\":\"ADDED\",\"object\":[]}", "without type or object");
    event_bad("{\"type\":\"EXPLODED\",\"object\":{}}", "unknown watch event type");
    /* A control byte the JSON decodes to stays out of the message's one line. */
    event_bad("{\"type\":\"A\\r\\nB\",\"object\":{}}", "unknown watch event type \"A??B\"");
    event_bad("{\"type\":\"ADDED\",\"object\":{}}", "without metadata");
    event_bad("{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"a\"}}}",
              "metadata.namespace");
    event_bad("{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"namespace\":\"a\","
              "\"name\":\"Bad Name\"}}}",
              "metadata.name");
    event_bad("{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"namespace\":\"a\","
              "\"name\":\"x\\u0000y\"}}}",
              "not JSON");
    event_bad("{\"type\":\"BOOKMARK\",\"object\":{\"metadata\":{}}}",
              "without metadata.resourceVersion");
    snprintf(big, sizeof(big),
             "{\"type\":\"BOOKMARK\",\"object\":{\"metadata\":"
             "{\"resourceVersion\":\"%0200d\"}}}",
             1);
    event_bad(big, "resourceVersion longer");
}

struct seen {
    int n;
    char names[8][64];
    int stop_at;
};

static int collect(const struct kube_pod *pod, void *arg)
{
    struct seen *s = arg;

    if (s->n == s->stop_at)
        return -ECANCELED;
    snprintf(s->names[s->n++], 64, "%s/%s/%zu", pod->namespace, pod->name, pod->n_ips);
    return 0;
}

static void pod_lists(void **state)
{
    const char *body =
        "{\"kind\":\"PodList\",\"apiVersion\":\"v1\",\"metadata\":"
        "{\"resourceVersion\":\"777\"},\"items\":[" POD(
            "a", "one",
            "},\"status\":{\"podIP\":\"10.1.1.1\"}},") "{\"metadata\":{\"name\":\"broken\"}}"
                                                       "," POD("b", "two", "},\"status\":{}}") "]}";
    struct seen s = {.stop_at = -1};
    char rv[KUBE_RV_MAX + 1], err[256] = "";
    size_t skipped = 99;

    assert_int_equal(
        kube_pod_list_parse(body, strlen(body), collect, &s, rv, &skipped, err, sizeof(err)), 0);
    assert_string_equal(rv, "777");
    assert_int_equal(s.n, 2);
    assert_string_equal(s.names[0], "a/one/1");
    assert_string_equal(s.names[1], "b/two/0");
    assert_int_equal(skipped, 1);

    /* The callback's error stops the walk and comes back. */
    memset(&s, 0, sizeof(s));
    s.stop_at = 1;
    assert_int_equal(
        kube_pod_list_parse(body, strlen(body), collect, &s, rv, NULL, err, sizeof(err)),
        -ECANCELED);

    /* Bodies that fail call back never. */
    static const char *bad[] = {
        "{\"kind\":\"PodList\",\"metadata\":{},\"items\":[]}",
        "{\"kind\":\"Status\",\"code\":500}",
        "{\"kind\":\"PodList\",\"metadata\":{\"resourceVersion\":\"1\"},\"items\":{}}",
        "{\"kind\":\"PodList\",\"metadata\":{\"resourceVersion\":\"1\"},\"items\":[",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        memset(&s, 0, sizeof(s));
        s.stop_at = -1;
        assert_int_equal(
            kube_pod_list_parse(bad[i], strlen(bad[i]), collect, &s, rv, NULL, err, sizeof(err)),
            NR_EPARSE);
        assert_int_equal(s.n, 0);
    }
    /* Empty lists are lists. */
    body = "{\"kind\":\"PodList\",\"metadata\":{\"resourceVersion\":\"5\"},\"items\":[]}";
    assert_int_equal(
        kube_pod_list_parse(body, strlen(body), collect, &s, rv, NULL, err, sizeof(err)), 0);
    assert_string_equal(rv, "5");
}

static void status_bodies(void **state)
{
    const char *b = "{\"kind\":\"Status\",\"message\":\"Unauthorized\",\"code\":401}";
    char msg[8];
    int code;

    assert_int_equal(kube_status_parse(b, strlen(b), &code, msg, sizeof(msg)), 0);
    assert_int_equal(code, 401);
    assert_string_equal(msg, "Unautho"); /* cut to fit */
    assert_int_equal(kube_status_parse("<html>", 6, &code, msg, sizeof(msg)), NR_EPARSE);
}

/* The uid and the labels that name a pod's interface in the output (k8s.podUID, k8s.podLabels):
 * labels sorted by key, only those of Kubernetes' syntax (no ',', '=', ';' inside one), as
 * many whole ones as fit. */
static void uid_and_labels(void **state)
{
    struct kube_event ev;
    char big[4096], line[8192];
    size_t o = 0;

    event_ok("{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"namespace\":\"shop\",\"name\":"
             "\"db-0\",\"uid\":\"6a1f0c2e-91b4-4c1e-9f0a-0b3c4d5e6f70\",\"labels\":{\"tier\":"
             "\"db\",\"app.kubernetes.io/name\":\"pg\",\"bad;key\":\"x\",\"k\":\"v,w\","
             "\"empty\":\"\",\"num\":7}}}}",
             &ev);
    assert_string_equal(ev.pod.uid, "6a1f0c2e-91b4-4c1e-9f0a-0b3c4d5e6f70");
    assert_string_equal(ev.pod.labels, "app.kubernetes.io/name=pg,empty=,tier=db");

    /* a uid that is not one, no labels at all */
    event_ok("{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"namespace\":\"a\",\"name\":"
             "\"b\",\"uid\":\"x;y\",\"labels\":[1]}}}",
             &ev);
    assert_string_equal(ev.pod.uid, "");
    assert_string_equal(ev.pod.labels, "");

    /* more labels than fit: whole ones only */
    for (int i = 0; i < 60; i++)
        o += (size_t)snprintf(big + o, sizeof(big) - o, "%s\"key%02d\":\"%040d\"", i ? "," : "", i,
                              i);
    snprintf(line, sizeof(line),
             "{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"namespace\":\"a\",\"name\":"
             "\"b\",\"labels\":{%s}}}}",
             big);
    event_ok(line, &ev);
    assert_true(strlen(ev.pod.labels) <= KUBE_LABELS_MAX);
    assert_true(strlen(ev.pod.labels) > KUBE_LABELS_MAX - 48);
    assert_int_equal(strncmp(ev.pod.labels, "key00=", 6), 0);
    {
        const char *last = strrchr(ev.pod.labels, ',');
        assert_non_null(last);
        assert_int_equal(strlen(last + 1), 5 + 1 + 40); /* "keyNN=" and the whole value */
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(watch_events),  cmocka_unit_test(uid_and_labels),
        cmocka_unit_test(bad_events),    cmocka_unit_test(pod_lists),
        cmocka_unit_test(status_bodies),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
