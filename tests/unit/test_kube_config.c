/* Tests for lib/kube/config.c: kubeconfig variants are read as kubectl reads them, what we do
 * not support is refused with a reason that names it, and the in-cluster set-up and the token
 * file (re-read every time) behave as a pod's service account does. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "kube/config.h"
#include "util/error.h"

#define HEAD                                                       \
    "apiVersion: v1\nkind: Config\ncurrent-context: dev\n"         \
    "contexts:\n- name: dev\n  context: {cluster: c1, user: u1}\n" \
    "- name: other\n  context:\n    cluster: c2\n    user: u2\n"

static void parse_ok(struct kube_config *c, const char *yaml, const char *context)
{
    char err[512] = "";
    int rc;

    kube_config_init(c);
    rc = kube_config_parse(c, yaml, strlen(yaml), "/etc/kube", context, 0, err, sizeof(err));
    if (rc != 0)
        fail_msg("parse: rc %d: %s", rc, err);
}

static void parse_bad(const char *yaml, unsigned flags, int want_rc, const char *want_text)
{
    struct kube_config c;
    char err[512] = "";
    int rc;

    kube_config_init(&c);
    rc = kube_config_parse(&c, yaml, strlen(yaml), NULL, NULL, flags, err, sizeof(err));
    if (rc != want_rc)
        fail_msg("rc %d, want %d (%s)", rc, want_rc, err);
    if (strstr(err, want_text) == NULL)
        fail_msg("error \"%s\" lacks \"%s\"", err, want_text);
    assert_null(c.server); /* left empty */
}

static void token_and_ca_file(void **state)
{
    struct kube_config c;
    char tok[64], err[256];

    parse_ok(&c,
             HEAD "clusters:\n- name: c1\n  cluster:\n    server: https://10.0.0.1:6443/\n"
                  "    certificate-authority: ca.pem\n"
                  "users:\n- name: u1\n  user:\n    token: abc.def\n",
             NULL);
    assert_string_equal(c.server, "https://10.0.0.1:6443");
    assert_string_equal(c.ca_file, "/etc/kube/ca.pem"); /* relative to the kubeconfig */
    assert_string_equal(c.token, "abc.def");
    assert_false(c.insecure);
    assert_int_equal(kube_config_token(&c, tok, sizeof(tok), err, sizeof(err)), 0);
    assert_string_equal(tok, "abc.def");
    kube_config_free(&c);
}

static void data_fields_and_named_context(void **state)
{
    struct kube_config c;

    /* "hello" / "world" / "key!" in base64, padding and line breaks as tools write them. */
    parse_ok(&c,
             HEAD "clusters:\n- name: c2\n  cluster:\n    server: https://[fd00::1]:443\n"
                  "    certificate-authority-data: aGVs\n      bG8=\n"
                  "users:\n- name: u2\n  user:\n    client-certificate-data: d29ybGQ=\n"
                  "    client-key-data: a2V5IQ==\n    tokenFile: /run/tok\n",
             "other");
    assert_string_equal(c.server, "https://[fd00::1]:443");
    assert_int_equal(c.ca_data.len, 5);
    assert_memory_equal(c.ca_data.data, "hello", 5);
    assert_memory_equal(c.cert_data.data, "world", 5);
    assert_memory_equal(c.key_data.data, "key!", 4);
    assert_string_equal(c.token_file, "/run/tok");
    assert_null(c.ca_file);
    kube_config_free(&c);
}

static void client_cert_files_and_no_user(void **state)
{
    struct kube_config c;

    parse_ok(&c,
             "current-context: x\ncontexts:\n- name: x\n  context: {cluster: k}\n"
             "clusters:\n- name: k\n  cluster: {server: 'http://127.0.0.1:8001'}\n",
             NULL);
    assert_string_equal(c.server, "http://127.0.0.1:8001"); /* kubectl proxy: no credentials */
    assert_null(c.token);
    kube_config_free(&c);
    parse_ok(&c,
             HEAD "clusters:\n- name: c1\n  cluster: {server: 'https://h'}\n"
                  "users:\n- name: u1\n  user: {client-certificate: /a/c.pem, client-key: k.pem}\n",
             NULL);
    assert_string_equal(c.cert_file, "/a/c.pem");
    assert_string_equal(c.key_file, "/etc/kube/k.pem");
    kube_config_free(&c);
}

static void refused(void **state)
{
    const char *cl = "clusters:\n- name: c1\n  cluster: {server: 'https://h:6443'}\n";

    parse_bad(HEAD "clusters: []\n", 0, -EINVAL, "no cluster named \"c1\"");
    parse_bad("contexts: []\n", 0, -EINVAL, "no current-context");
    parse_bad("current-context: nope\ncontexts: []\n", 0, -EINVAL, "no context named \"nope\"");
    parse_bad(HEAD "clusters:\n- name: c1\n  cluster: {certificate-authority: x}\n", 0, -EINVAL,
              "has no server");
    parse_bad(HEAD "clusters:\n- name: c1\n  cluster: {server: 'ftp://h'}\n", 0, -EINVAL,
              "not an http:// or https:// URL");
    {
        char y[1024];

        snprintf(y, sizeof(y),
                 HEAD "%susers:\n- name: u1\n  user:\n    exec:\n      command: "
                      "aws\n      args: [eks, get-token]\n",
                 cl);
        parse_bad(y, 0, -EINVAL, "exec plugin (aws), which is not supported");
        snprintf(y, sizeof(y), HEAD "%susers:\n- name: u1\n  user: {auth-provider: {name: gcp}}\n",
                 cl);
        parse_bad(y, 0, -EINVAL, "auth-provider");
        snprintf(y, sizeof(y), HEAD "%susers:\n- name: u1\n  user: {username: a, password: b}\n",
                 cl);
        parse_bad(y, 0, -EINVAL, "basic authentication");
        snprintf(y, sizeof(y), HEAD "%susers:\n- name: u1\n  user: {client-certificate: c}\n", cl);
        parse_bad(y, 0, -EINVAL, "without a key");
    }
    parse_bad(HEAD "clusters:\n- name: c1\n  cluster: {server: 'https://h', "
                   "certificate-authority-data: 'not base64!'}\n",
              0, -EINVAL, "not valid base64");
    /* Empty decodes to nothing, which is no certificate either. */
    parse_bad(HEAD "clusters:\n- name: c1\n  cluster: {server: 'https://h', "
                   "certificate-authority-data: ' '}\n",
              0, -EINVAL, "not valid base64");
    parse_bad(HEAD "clusters:\n- name: c1\n  cluster: {server: 'https://h', "
                   "insecure-skip-tls-verify: true}\n",
              0, -EINVAL, "insecure-skip-tls-verify: refused");
    parse_bad(HEAD "clusters:\n- name: c1\n  cluster: {server: 'http://h'}\n"
                   "users:\n- name: u1\n  user: {token: t}\n",
              0, -EINVAL, "bearer token over plain http");
    /* A name from the file with a line break in it stays on the message's one line. */
    parse_bad("current-context: dev\ncontexts:\n- name: dev\n  context: {cluster: \"c\\r\\n1\"}\n",
              0, -EINVAL, "no cluster named \"c??1\"");
    parse_bad("a: [b\n", 0, NR_EPARSE, "not YAML");
    parse_bad("- 1\n", 0, NR_EPARSE, "no top-level mapping");
}

static void insecure_when_allowed(void **state)
{
    const char *y = HEAD "clusters:\n- name: c1\n  cluster: {server: 'https://h', "
                         "insecure-skip-tls-verify: true}\nusers:\n- name: u1\n  user: {}\n";
    struct kube_config c;
    char err[256] = "";

    kube_config_init(&c);
    assert_int_equal(kube_config_parse(&c, y, strlen(y), NULL, NULL, KUBE_CONFIG_ALLOW_INSECURE,
                                       err, sizeof(err)),
                     0);
    assert_true(c.insecure);
    kube_config_free(&c);
}

static void in_cluster_and_rotating_token(void **state)
{
    char dir[] = "/tmp/test_kube_config.XXXXXX", path[128], tok[64], err[256] = "";
    struct kube_config c;
    FILE *f;

    assert_non_null(mkdtemp(dir));
    unsetenv("KUBERNETES_SERVICE_HOST");
    kube_config_init(&c);
    assert_int_equal(kube_config_in_cluster(&c, dir, err, sizeof(err)), -ENOENT);
    assert_non_null(strstr(err, "KUBERNETES_SERVICE_HOST"));
    setenv("KUBERNETES_SERVICE_HOST", "fd00::a", 1);
    setenv("KUBERNETES_SERVICE_PORT", "99999", 1);
    assert_int_equal(kube_config_in_cluster(&c, dir, err, sizeof(err)), -EINVAL);
    setenv("KUBERNETES_SERVICE_PORT", "443", 1);
    assert_int_equal(kube_config_in_cluster(&c, dir, err, sizeof(err)), -ENOENT); /* no files */
    snprintf(path, sizeof(path), "%s/ca.crt", dir);
    f = fopen(path, "w");
    fputs("pem", f);
    fclose(f);
    snprintf(path, sizeof(path), "%s/token", dir);
    f = fopen(path, "w");
    fputs("  first-token\n", f);
    fclose(f);
    assert_int_equal(kube_config_in_cluster(&c, dir, err, sizeof(err)), 0);
    assert_string_equal(c.server, "https://[fd00::a]:443");
    assert_int_equal(kube_config_token(&c, tok, sizeof(tok), err, sizeof(err)), 0);
    assert_string_equal(tok, "first-token");
    f = fopen(path, "w"); /* the kubelet rotates it */
    fputs("second-token", f);
    fclose(f);
    assert_int_equal(kube_config_token(&c, tok, sizeof(tok), err, sizeof(err)), 0);
    assert_string_equal(tok, "second-token");
    assert_int_equal(kube_config_token(&c, tok, 5, err, sizeof(err)), NR_EOVERSIZE);
    f = fopen(path, "w");
    fputs("bad token", f);
    fclose(f);
    assert_int_equal(kube_config_token(&c, tok, sizeof(tok), err, sizeof(err)), NR_EPARSE);
    unlink(path);
    assert_int_equal(kube_config_token(&c, tok, sizeof(tok), err, sizeof(err)), -ENOENT);
    kube_config_free(&c);
    snprintf(path, sizeof(path), "%s/ca.crt", dir);
    unlink(path);
    rmdir(dir);
}

static void load_missing_file(void **state)
{
    struct kube_config c;
    char err[256] = "";

    kube_config_init(&c);
    assert_int_equal(kube_config_load(&c, "/nonexistent/kubeconfig", NULL, 0, err, sizeof(err)),
                     -ENOENT);
    assert_non_null(strstr(err, "/nonexistent/kubeconfig"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(token_and_ca_file),
        cmocka_unit_test(data_fields_and_named_context),
        cmocka_unit_test(client_cert_files_and_no_user),
        cmocka_unit_test(refused),
        cmocka_unit_test(insecure_when_allowed),
        cmocka_unit_test(in_cluster_and_rotating_token),
        cmocka_unit_test(load_missing_file),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
