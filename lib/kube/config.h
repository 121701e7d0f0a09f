/* Where the Kubernetes API server is and how to prove who we are to it: the in-cluster service
 * account or a kubeconfig file (current context → cluster + user). Pure configuration: nothing
 * here talks to the network. */
#ifndef NR_KUBE_CONFIG_H
#define NR_KUBE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

/* The service account's directory in every pod; tests point kube_config_in_cluster elsewhere. */
#define KUBE_SA_DIR "/var/run/secrets/kubernetes.io/serviceaccount"

/* A kubeconfig file larger than this is refused (real ones are a few KiB). */
#define KUBE_CONFIG_FILE_MAX (4u << 20)

/* A token (file) longer than this is refused; service account tokens are ~1 KiB. */
#define KUBE_TOKEN_MAX 16384

/* kube_config_parse / kube_config_load flags. */
enum {
    /* insecure-skip-tls-verify: true is accepted with a warning instead of refused. */
    KUBE_CONFIG_ALLOW_INSECURE = 1u << 0,
};

/* Bytes from a "*-data" field (base64-decoded PEM), owned by the config. */
struct kube_blob {
    unsigned char *data;
    size_t len;
};

/* Everything is owned by the config (heap copies) and freed by kube_config_free. A NULL
 * string or an empty blob means "not given". */
struct kube_config {
    char *server;             /* "https://host:port[/path]", no trailing '/' */
    char *ca_file;            /* PEM CA bundle to verify the server with */
    struct kube_blob ca_data; /* or the bundle itself */
    bool insecure;            /* do not verify the server (only with KUBE_CONFIG_ALLOW_INSECURE) */
    char *token;              /* a fixed bearer token */
    char *token_file;         /* or a file holding it, re-read before every request */
    char *cert_file, *key_file;           /* client certificate and key (PEM files) */
    struct kube_blob cert_data, key_data; /* or the PEM bytes */
    char *source; /* for messages: "in-cluster" or "kubeconfig PATH context NAME" */
};

/* Zeroes c; kube_config_free on it is then a no-op. */
void kube_config_init(struct kube_config *c);

/* Frees what c owns and zeroes it. */
void kube_config_free(struct kube_config *c);

/* In-cluster configuration: https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT (an IPv6
 * host gets brackets), CA sa_dir/ca.crt, token file sa_dir/token. sa_dir NULL is KUBE_SA_DIR.
 * c must be initialized; on failure it is left empty. Returns 0, -ENOENT when the variables
 * are unset (not running in a pod) or a file is missing, -EINVAL for a bad port, -ENOMEM; err
 * (may be NULL) gets a one-line reason. */
int kube_config_in_cluster(struct kube_config *c, const char *sa_dir, char *err, size_t errlen);

/* Reads kubeconfig text (YAML, as kubectl writes it): the context named `context`, or
 * current-context when NULL → its cluster (server, certificate-authority or
 * certificate-authority-data, insecure-skip-tls-verify) and user (token or tokenFile,
 * client-certificate(-data) and client-key(-data)). Relative file names are resolved against
 * base_dir (the kubeconfig's directory; NULL: the current directory). Refused with a clear
 * reason: exec and auth-provider credential plugins, username/password, a missing
 * context/cluster/user, a server that is not http(s)://, a token sent over plain http, bad
 * base64, insecure-skip-tls-verify without KUBE_CONFIG_ALLOW_INSECURE. c must be initialized;
 * on failure it is left empty. Returns 0, -EINVAL (with err), NR_EPARSE (not YAML), -ENOMEM. */
int kube_config_parse(struct kube_config *c, const char *text, size_t len, const char *base_dir,
                      const char *context, unsigned flags, char *err, size_t errlen);

/* kube_config_parse on the file at path (at most KUBE_CONFIG_FILE_MAX bytes; NR_EOVERSIZE past
 * it, -errno when it cannot be read), relative names resolved against its directory. */
int kube_config_load(struct kube_config *c, const char *path, const char *context, unsigned flags,
                     char *err, size_t errlen);

/* The bearer token to send now: c->token, or the content of c->token_file read again (it
 * rotates), surrounding white space removed; "" when the config has neither. Returns 0, -errno
 * when the file cannot be read, NR_EOVERSIZE when it is longer than KUBE_TOKEN_MAX or than
 * len - 1, NR_EPARSE when it holds control bytes or is empty. */
int kube_config_token(const struct kube_config *c, char *buf, size_t len, char *err, size_t errlen);

#endif
