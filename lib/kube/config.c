/* Kubernetes client configuration: the in-cluster service account and kubeconfig files (YAML,
 * read with libyaml's document API; only the keys kubectl's own loader uses for a context's
 * cluster and user are looked at). */
#include "kube/config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include "util/base64.h"
#include "util/error.h"
#include "util/log.h"

void kube_config_init(struct kube_config *c)
{
    memset(c, 0, sizeof(*c));
}

void kube_config_free(struct kube_config *c)
{
    free(c->server);
    free(c->ca_file);
    free(c->ca_data.data);
    free(c->token);
    free(c->token_file);
    free(c->cert_file);
    free(c->key_file);
    free(c->cert_data.data);
    free(c->key_data.data);
    free(c->source);
    memset(c, 0, sizeof(*c));
}

static char *join_path(const char *dir, const char *name)
{
    char *p;

    if (name[0] == '/' || dir == NULL || dir[0] == '\0')
        return strdup(name);
    if (asprintf(&p, "%s/%s", dir, name) < 0)
        return NULL;
    return p;
}

/* Reads a whole file of at most max bytes into a NUL-terminated heap buffer. */
static int read_file(const char *path, size_t max, char **out, size_t *outlen)
{
    struct stat st;
    char *buf = NULL;
    size_t len = 0;
    int rc = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0)
        return -errno;
    if (fstat(fd, &st) != 0) {
        rc = -errno;
        goto out;
    }
    if (!S_ISREG(st.st_mode) && !S_ISLNK(st.st_mode)) {
        rc = -EINVAL;
        goto out;
    }
    buf = malloc(max + 2);
    if (buf == NULL) {
        rc = -ENOMEM;
        goto out;
    }
    for (;;) {
        ssize_t n = read(fd, buf + len, max + 1 - len);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = -errno;
            goto out;
        }
        if (n == 0)
            break;
        len += (size_t)n;
        if (len > max) {
            rc = NR_EOVERSIZE;
            goto out;
        }
    }
    buf[len] = '\0';
    *out = buf;
    *outlen = len;
    buf = NULL;
out:
    free(buf);
    close(fd);
    return rc;
}

int kube_config_in_cluster(struct kube_config *c, const char *sa_dir, char *err, size_t errlen)
{
    const char *host = getenv("KUBERNETES_SERVICE_HOST");
    const char *port = getenv("KUBERNETES_SERVICE_PORT");
    char *end = NULL;
    long p;
    int rc = 0;

    if (sa_dir == NULL)
        sa_dir = KUBE_SA_DIR;
    if (host == NULL || host[0] == '\0' || port == NULL || port[0] == '\0') {
        nr_errf(0, err, errlen,
                "not running in a Kubernetes pod: KUBERNETES_SERVICE_HOST and "
                "KUBERNETES_SERVICE_PORT are not set (use --kubeconfig outside a cluster)");
        return -ENOENT;
    }
    errno = 0;
    p = strtol(port, &end, 10);
    if (errno != 0 || *end != '\0' || p < 1 || p > 65535) {
        nr_errf(0, err, errlen, "invalid KUBERNETES_SERVICE_PORT \"%.32s\": not a port number",
                port);
        return -EINVAL;
    }
    if (strpbrk(host, "/?#@ []") != NULL || strlen(host) > 253) {
        nr_errf(0, err, errlen, "invalid KUBERNETES_SERVICE_HOST \"%.64s\"", host);
        return -EINVAL;
    }
    if (asprintf(&c->server, strchr(host, ':') ? "https://[%s]:%ld" : "https://%s:%ld", host, p) <
        0) {
        c->server = NULL;
        rc = -ENOMEM;
        goto out;
    }
    c->ca_file = join_path(sa_dir, "ca.crt");
    c->token_file = join_path(sa_dir, "token");
    c->source = strdup("in-cluster");
    if (c->ca_file == NULL || c->token_file == NULL || c->source == NULL) {
        rc = -ENOMEM;
        goto out;
    }
    if (access(c->ca_file, R_OK) != 0 || access(c->token_file, R_OK) != 0) {
        rc = -errno;
        nr_errf(0, err, errlen, "in-cluster service account: cannot read %s: %s",
                access(c->ca_file, R_OK) != 0 ? c->ca_file : c->token_file, strerror(errno));
        goto out;
    }
out:
    if (rc == -ENOMEM)
        nr_errf(0, err, errlen, "out of memory");
    if (rc != 0)
        kube_config_free(c);
    return rc;
}

/* ---- the "*-data" fields ------------------------------------------------------------------- */

/* Base64 as lib/util/base64.h reads it; an empty field is not a blob either. */
static int blob_decode(const char *s, struct kube_blob *out)
{
    size_t len = strlen(s), n = 0;
    unsigned char *buf = malloc(NR_BASE64_DECODED_MAX(len));
    int rc = buf != NULL ? nr_base64_decode(s, len, buf, NR_BASE64_DECODED_MAX(len), &n) : -ENOMEM;

    if (rc == 0 && n == 0)
        rc = -EINVAL;
    if (rc == 0) {
        out->data = buf;
        out->len = n;
    } else {
        free(buf);
    }
    return rc;
}

/* ---- kubeconfig -------------------------------------------------------------------------- */

struct kc {
    yaml_document_t doc;
    const char *base_dir;
    char *err;
    size_t errlen;
};

static yaml_node_t *node_at(struct kc *k, int index)
{
    return index ? yaml_document_get_node(&k->doc, index) : NULL;
}

/* The value of key in mapping m (the first, if repeated), or NULL. */
static yaml_node_t *map_get(struct kc *k, yaml_node_t *m, const char *key)
{
    size_t klen = strlen(key);

    if (m == NULL || m->type != YAML_MAPPING_NODE)
        return NULL;
    for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top; p++) {
        yaml_node_t *kn = node_at(k, p->key);

        if (kn != NULL && kn->type == YAML_SCALAR_NODE && kn->data.scalar.length == klen &&
            memcmp(kn->data.scalar.value, key, klen) == 0)
            return node_at(k, p->value);
    }
    return NULL;
}

/* A scalar's text (NUL-terminated by libyaml), or NULL for anything else or an empty value. */
static const char *scalar(yaml_node_t *n)
{
    if (n == NULL || n->type != YAML_SCALAR_NODE || n->data.scalar.length == 0)
        return NULL;
    /* A NUL inside would silently cut the value; refuse it as absent and let the caller say. */
    if (strlen((const char *)n->data.scalar.value) != n->data.scalar.length)
        return NULL;
    return (const char *)n->data.scalar.value;
}

static const char *map_str(struct kc *k, yaml_node_t *m, const char *key)
{
    return scalar(map_get(k, m, key));
}

/* In list (a sequence of {name: N, <field>: {...}}), the <field> mapping of the entry named
 * name. */
static yaml_node_t *named_entry(struct kc *k, const char *list, const char *field, const char *name)
{
    yaml_node_t *root = yaml_document_get_root_node(&k->doc);
    yaml_node_t *seq = map_get(k, root, list);

    if (seq == NULL || seq->type != YAML_SEQUENCE_NODE)
        return NULL;
    for (yaml_node_item_t *i = seq->data.sequence.items.start; i < seq->data.sequence.items.top;
         i++) {
        yaml_node_t *e = node_at(k, *i);
        const char *n = map_str(k, e, "name");

        if (n != NULL && strcmp(n, name) == 0)
            return map_get(k, e, field);
    }
    return NULL;
}

static bool yaml_true(yaml_node_t *n)
{
    const char *s = scalar(n);

    return s != NULL && (strcmp(s, "true") == 0 || strcmp(s, "True") == 0 ||
                         strcmp(s, "TRUE") == 0 || strcmp(s, "yes") == 0);
}

/* file field → a path resolved against the kubeconfig's directory; data field → decoded
 * bytes. Both given: data wins, as in kubectl. */
static int file_or_data(struct kc *k, yaml_node_t *m, const char *what, const char *file_key,
                        const char *data_key, char **file, struct kube_blob *data)
{
    const char *d = map_str(k, m, data_key);
    const char *f = map_str(k, m, file_key);
    int rc;

    if (d != NULL) {
        rc = blob_decode(d, data);
        if (rc == -EINVAL)
            nr_errf(0, k->err, k->errlen, "kubeconfig: %s: %s is not valid base64", what, data_key);
        return rc;
    }
    if (f != NULL) {
        *file = join_path(k->base_dir, f);
        return *file ? 0 : -ENOMEM;
    }
    return 0;
}

static int parse_cluster(struct kc *k, struct kube_config *c, yaml_node_t *cl, const char *name,
                         unsigned flags)
{
    const char *server = map_str(k, cl, "server");
    size_t len;
    int rc;

    if (server == NULL) {
        nr_errf(0, k->err, k->errlen, "kubeconfig: cluster \"%.64s\" has no server", name);
        return -EINVAL;
    }
    if (strncmp(server, "https://", 8) != 0 && strncmp(server, "http://", 7) != 0) {
        nr_errf(0, k->err, k->errlen,
                "kubeconfig: cluster \"%.64s\": server \"%.128s\" is not an "
                "http:// or https:// URL",
                name, server);
        return -EINVAL;
    }
    len = strlen(server);
    if (len > 2048 || strpbrk(server, " \t\r\n?#") != NULL) {
        nr_errf(0, k->err, k->errlen, "kubeconfig: cluster \"%.64s\": invalid server URL", name);
        return -EINVAL;
    }
    while (len > 0 && server[len - 1] == '/')
        len--;
    c->server = strndup(server, len);
    if (c->server == NULL)
        return -ENOMEM;
    if (map_get(k, cl, "proxy-url") != NULL)
        NR_WARN("kubeconfig: proxy-url is ignored", "cluster=%.64s", name);
    if (yaml_true(map_get(k, cl, "insecure-skip-tls-verify"))) {
        if (!(flags & KUBE_CONFIG_ALLOW_INSECURE)) {
            nr_errf(0, k->err, k->errlen,
                    "kubeconfig: cluster \"%.64s\" sets insecure-skip-tls-verify: "
                    "refused (give its certificate-authority instead)",
                    name);
            return -EINVAL;
        }
        NR_WARN("kubeconfig: insecure-skip-tls-verify: the API server's certificate is NOT "
                "verified",
                "cluster=%.64s", name);
        c->insecure = true;
    }
    rc = file_or_data(k, cl, "cluster", "certificate-authority", "certificate-authority-data",
                      &c->ca_file, &c->ca_data);
    return rc;
}

static int parse_user(struct kc *k, struct kube_config *c, yaml_node_t *u, const char *name)
{
    const char *token = map_str(k, u, "token");
    const char *token_file = map_str(k, u, "tokenFile");
    int rc;

    if (map_get(k, u, "exec") != NULL) {
        const char *cmd = map_str(k, map_get(k, u, "exec"), "command");

        nr_errf(0, k->err, k->errlen,
                "kubeconfig: user \"%.64s\" gets its credentials from an exec "
                "plugin (%.64s), which is not supported: use a token, tokenFile or client "
                "certificate (e.g. a service account token)",
                name, cmd ? cmd : "?");
        return -EINVAL;
    }
    if (map_get(k, u, "auth-provider") != NULL) {
        nr_errf(0, k->err, k->errlen,
                "kubeconfig: user \"%.64s\" uses an auth-provider plugin, which "
                "is not supported: use a token, tokenFile or client certificate",
                name);
        return -EINVAL;
    }
    if (map_get(k, u, "username") != NULL || map_get(k, u, "password") != NULL) {
        nr_errf(0, k->err, k->errlen,
                "kubeconfig: user \"%.64s\": basic authentication (username/"
                "password) is not supported",
                name);
        return -EINVAL;
    }
    if (token != NULL) {
        c->token = strdup(token);
        if (c->token == NULL)
            return -ENOMEM;
    } else if (token_file != NULL) {
        c->token_file = join_path(k->base_dir, token_file);
        if (c->token_file == NULL)
            return -ENOMEM;
    }
    rc = file_or_data(k, u, "user", "client-certificate", "client-certificate-data", &c->cert_file,
                      &c->cert_data);
    if (rc == 0)
        rc =
            file_or_data(k, u, "user", "client-key", "client-key-data", &c->key_file, &c->key_data);
    if (rc != 0)
        return rc;
    if ((c->cert_file || c->cert_data.len) != (c->key_file || c->key_data.len)) {
        nr_errf(0, k->err, k->errlen,
                "kubeconfig: user \"%.64s\" has a client certificate without a "
                "key or a key without a certificate",
                name);
        return -EINVAL;
    }
    return 0;
}

/* Names quoted in messages come from the file: a control byte in one (a newline, say) must not
 * break the message's one line, nor forge a line in a log. */
static void one_line(char *s, size_t len)
{
    for (size_t i = 0; s && i < len && s[i]; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            s[i] = '?';
}

int kube_config_parse(struct kube_config *c, const char *text, size_t len, const char *base_dir,
                      const char *context, unsigned flags, char *err, size_t errlen)
{
    struct kc k = {.base_dir = base_dir, .err = err, .errlen = errlen};
    yaml_parser_t parser;
    yaml_node_t *root, *ctx, *cl, *u;
    const char *cluster_name, *user_name;
    bool have_doc = false;
    int rc = 0;

    if (!yaml_parser_initialize(&parser))
        return -ENOMEM;
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    if (!yaml_parser_load(&parser, &k.doc)) {
        nr_errf(0, err, errlen, "kubeconfig: not YAML: %.100s at line %zu",
                parser.problem ? parser.problem : "?", parser.problem_mark.line + 1);
        rc = parser.error == YAML_MEMORY_ERROR ? -ENOMEM : NR_EPARSE;
        goto out;
    }
    have_doc = true;
    root = yaml_document_get_root_node(&k.doc);
    if (root == NULL || root->type != YAML_MAPPING_NODE) {
        nr_errf(0, err, errlen, "kubeconfig: not a kubeconfig (no top-level mapping)");
        rc = NR_EPARSE;
        goto out;
    }
    if (context == NULL || context[0] == '\0') {
        context = map_str(&k, root, "current-context");
        if (context == NULL) {
            nr_errf(0, err, errlen, "kubeconfig: no current-context (choose one with --context)");
            rc = -EINVAL;
            goto out;
        }
    }
    ctx = named_entry(&k, "contexts", "context", context);
    if (ctx == NULL || ctx->type != YAML_MAPPING_NODE) {
        nr_errf(0, err, errlen, "kubeconfig: no context named \"%.64s\"", context);
        rc = -EINVAL;
        goto out;
    }
    cluster_name = map_str(&k, ctx, "cluster");
    user_name = map_str(&k, ctx, "user");
    cl = cluster_name ? named_entry(&k, "clusters", "cluster", cluster_name) : NULL;
    if (cl == NULL || cl->type != YAML_MAPPING_NODE) {
        nr_errf(0, err, errlen, "kubeconfig: context \"%.64s\": no cluster named \"%.64s\"",
                context, cluster_name ? cluster_name : "");
        rc = -EINVAL;
        goto out;
    }
    rc = parse_cluster(&k, c, cl, cluster_name, flags);
    if (rc != 0)
        goto out;
    if (user_name != NULL) {
        u = named_entry(&k, "users", "user", user_name);
        if (u == NULL || u->type != YAML_MAPPING_NODE) {
            nr_errf(0, err, errlen, "kubeconfig: context \"%.64s\": no user named \"%.64s\"",
                    context, user_name);
            rc = -EINVAL;
            goto out;
        }
        rc = parse_user(&k, c, u, user_name);
        if (rc != 0)
            goto out;
    }
    if (strncmp(c->server, "http://", 7) == 0 && (c->token || c->token_file)) {
        nr_errf(0, err, errlen,
                "kubeconfig: context \"%.64s\": refusing to send a bearer token over "
                "plain http (%.128s)",
                context, c->server);
        rc = -EINVAL;
        goto out;
    }
    if (asprintf(&c->source, "kubeconfig context %.64s", context) < 0) {
        c->source = NULL;
        rc = -ENOMEM;
    }
    one_line(c->source, SIZE_MAX);
out:
    if (rc == -ENOMEM)
        nr_errf(0, err, errlen, "out of memory");
    if (rc != 0)
        one_line(err, errlen);
    if (have_doc)
        yaml_document_delete(&k.doc);
    yaml_parser_delete(&parser);
    if (rc != 0)
        kube_config_free(c);
    return rc;
}

int kube_config_load(struct kube_config *c, const char *path, const char *context, unsigned flags,
                     char *err, size_t errlen)
{
    char *text = NULL, *dir = NULL, *slash;
    size_t len = 0;
    int rc = read_file(path, KUBE_CONFIG_FILE_MAX, &text, &len);

    if (rc != 0) {
        nr_errf(0, err, errlen, "kubeconfig %.200s: %s", path,
                rc == NR_EOVERSIZE ? "larger than 4 MiB" : nr_strerror(rc));
        return rc;
    }
    dir = strdup(path);
    if (dir == NULL) {
        rc = -ENOMEM;
        goto out;
    }
    slash = strrchr(dir, '/');
    if (slash == NULL)
        dir[0] = '\0';
    else
        slash[slash == dir ? 1 : 0] = '\0';
    rc = kube_config_parse(c, text, len, dir, context, flags, err, errlen);
out:
    free(dir);
    free(text);
    return rc;
}

int kube_config_token(const struct kube_config *c, char *buf, size_t len, char *err, size_t errlen)
{
    char *text = NULL;
    const char *s;
    size_t n = 0;
    int rc = 0;

    if (len == 0)
        return NR_EOVERSIZE;
    buf[0] = '\0';
    if (c->token != NULL) {
        s = c->token;
        n = strlen(s);
    } else if (c->token_file != NULL) {
        rc = read_file(c->token_file, KUBE_TOKEN_MAX, &text, &n);
        if (rc != 0) {
            nr_errf(0, err, errlen, "token file %.200s: %s", c->token_file,
                    rc == NR_EOVERSIZE ? "longer than 16 KiB" : nr_strerror(rc));
            return rc;
        }
        s = text;
    } else {
        return 0;
    }
    while (n > 0 && isspace((unsigned char)*s)) {
        s++;
        n--;
    }
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        n--;
    if (n == 0) {
        nr_errf(0, err, errlen, "the bearer token is empty");
        rc = NR_EPARSE;
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e) {
            nr_errf(0, err, errlen, "the bearer token holds a space or a control byte");
            rc = NR_EPARSE;
            goto out;
        }
    }
    if (n >= len) {
        nr_errf(0, err, errlen, "the bearer token is longer than %zu bytes", len - 1);
        rc = NR_EOVERSIZE;
        goto out;
    }
    memcpy(buf, s, n);
    buf[n] = '\0';
out:
    free(text);
    return rc;
}
