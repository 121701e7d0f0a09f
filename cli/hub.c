/* Finding the hub for pcapdump and status (docs/cli.md "How the hub is found"): the local case
 * (the data folder of `tap --local` says where its hub is and holds the client certificate and
 * token), and the cluster case: kubectl port-forward on a free local port, the bearer token and
 * the client certificate read from the chart's Secrets into a private temporary folder. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "certs.h"
#include "cli.h"
#include "hub.h"
#include "proc.h"
#include "rpc/status.h"
#include "util/addr.h"
#include "util/base64.h"
#include "util/error.h"

#define LOCAL_HUB       "127.0.0.1:8898"
#define ROOT_DATA       "/var/lib/netreel"
#define LOCAL_NONE      (-1) /* find_local: no local recorder there, go on */
#define HUB_SERVICE     "service/netreel-hub"
#define HUB_PORT        "8898"
#define TOKEN_SECRET    "netreel-hub-token"
#define TLS_SECRET      "netreel-tls"
#define TOKEN_MAX       4096
#define FORWARD_WAIT_MS 30000

const char *cli_release_namespace(const char *flag)
{
    const char *env = getenv("NETREEL_NAMESPACE");

    if (flag)
        return flag;
    return env && *env ? env : "netreel";
}

/* ---- the token ---- */

static int set_token(struct cli_hub *h, const char *text, size_t len, const char *from)
{
    while (len && (text[len - 1] == '\n' || text[len - 1] == '\r' || text[len - 1] == ' ' ||
                   text[len - 1] == '\t'))
        len--;
    while (len && (*text == ' ' || *text == '\t' || *text == '\n')) {
        text++;
        len--;
    }
    if (len == 0)
        return cli_error(CLI_EXIT_USAGE, "the token in %s is empty", from);
    if (len > TOKEN_MAX)
        return cli_error(CLI_EXIT_USAGE, "the token in %s is longer than %d bytes", from,
                         TOKEN_MAX);
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)text[i] < 0x21 || (unsigned char)text[i] > 0x7e)
            return cli_error(CLI_EXIT_USAGE,
                             "the token in %s holds a space or a byte that is not printable "
                             "ASCII (a header cannot carry it)",
                             from);
    h->token = strndup(text, len);
    if (!h->token)
        return cli_error(CLI_EXIT_FAIL, "out of memory");
    snprintf(h->bearer, sizeof(h->bearer), "Bearer %s", h->token);
    return 0;
}

static int read_token_file(struct cli_hub *h, const char *path)
{
    char buf[TOKEN_MAX + 64];
    FILE *f = fopen(path, "r");
    size_t n;
    char from[PATH_MAX + 20];

    if (!f)
        return cli_error(CLI_EXIT_USAGE, "--token-file %s: %s", path, strerror(errno));
    n = fread(buf, 1, sizeof(buf), f);
    fclose(f);
    snprintf(from, sizeof(from), "--token-file %s", path);
    return set_token(h, buf, n, from);
}

/* ---- the local hub ---- */

/* True when something accepts a TCP connection on addr within timeout_ms. */
static bool tcp_answers(const char *addr, int timeout_ms)
{
    char host[256], err[128];
    uint16_t port;
    struct sockaddr_storage ss = {0};
    socklen_t sl;
    struct pollfd p;
    int fd, soerr = 1;
    socklen_t el = sizeof(soerr);
    bool ok = false;

    if (nr_addr_split(addr, host, sizeof(host), &port, err, sizeof(err)) != 0)
        return false;
    if (inet_pton(AF_INET, host, &((struct sockaddr_in *)&ss)->sin_addr) == 1) {
        ((struct sockaddr_in *)&ss)->sin_family = AF_INET;
        ((struct sockaddr_in *)&ss)->sin_port = htons(port);
        sl = sizeof(struct sockaddr_in);
    } else if (inet_pton(AF_INET6, host, &((struct sockaddr_in6 *)&ss)->sin6_addr) == 1) {
        ((struct sockaddr_in6 *)&ss)->sin6_family = AF_INET6;
        ((struct sockaddr_in6 *)&ss)->sin6_port = htons(port);
        sl = sizeof(struct sockaddr_in6);
    } else {
        return false;
    }
    fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    if (connect(fd, (struct sockaddr *)&ss, sl) == 0) {
        ok = true;
    } else if (errno == EINPROGRESS) {
        p.fd = fd;
        p.events = POLLOUT;
        p.revents = 0;
        if (poll(&p, 1, timeout_ms) == 1 &&
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &el) == 0 && soerr == 0)
            ok = true;
    }
    close(fd);
    return ok;
}

/* ---- the cluster ---- */

/* kubectl ARGS... with its output captured; returns its exit status (see cli_run). */
static int kubectl(const char *path, struct cli_output *o, const char *ns, const char *a1,
                   const char *a2, const char *a3, const char *a4, const char *a5)
{
    const char *argv[12] = {path};
    int n = 1;

    if (ns) {
        argv[n++] = "--namespace";
        argv[n++] = ns;
    }
    argv[n++] = a1;
    argv[n++] = a2;
    argv[n++] = a3;
    argv[n++] = a4;
    argv[n++] = a5;
    argv[n] = NULL;
    return cli_run(argv, o);
}

static bool not_found(const struct cli_output *o)
{
    return strstr(o->err, "NotFound") || strstr(o->err, "not found");
}

static int secret_token(struct cli_hub *h, const char *kc, const char *ns)
{
    struct cli_output o;
    char line[300];
    size_t n = 0;
    int rc = kubectl(kc, &o, ns, "get", "secret", TOKEN_SECRET, "-o", "jsonpath={.data.token}");

    if (rc != 0) {
        if (rc > 0 && not_found(&o)) {
            cli_output_free(&o);
            return 0; /* auth.enabled=false: no token */
        }
        rc = cli_error(CLI_EXIT_FAIL, "cannot read Secret %s in namespace %s with kubectl: %s",
                       TOKEN_SECRET, ns, cli_last_line(o.err, line, sizeof(line)));
        cli_output_free(&o);
        return rc;
    }
    if (nr_base64_decode(o.out, strlen(o.out), o.out, strlen(o.out), &n) != 0)
        rc = cli_error(CLI_EXIT_FAIL, "Secret %s in namespace %s: the token is not base64",
                       TOKEN_SECRET, ns);
    else if (n > 0)
        rc = set_token(h, o.out, n, "Secret " TOKEN_SECRET);
    cli_output_free(&o);
    return rc;
}

static int write_file(const char *path, const char *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    int rc = 0;

    if (fd < 0)
        return -errno;
    if (write(fd, data, len) != (ssize_t)len)
        rc = -EIO;
    if (close(fd) != 0 && rc == 0)
        rc = -errno;
    return rc;
}

/* The CA and the client certificate of Secret netreel-tls (tls.enabled), into h->tmpdir. */
static int secret_tls(struct cli_hub *h, const char *kc, const char *ns)
{
    static const char *const keys[3] = {"ca.crt", "client.crt", "client.key"};
    char *files[3] = {h->ca_file, h->cert_file, h->key_file};
    struct cli_output o;
    char line[300];
    char *p;
    int rc = kubectl(kc, &o, ns, "get", "secret", TLS_SECRET, "-o",
                     "jsonpath={.data.ca\\.crt}{\"\\n\"}{.data.client\\.crt}{\"\\n\"}"
                     "{.data.client\\.key}");

    if (rc != 0) {
        if (rc > 0 && not_found(&o)) {
            cli_output_free(&o);
            return 0; /* tls.enabled=false: plaintext */
        }
        rc = cli_error(CLI_EXIT_FAIL, "cannot read Secret %s in namespace %s with kubectl: %s",
                       TLS_SECRET, ns, cli_last_line(o.err, line, sizeof(line)));
        cli_output_free(&o);
        return rc;
    }
    snprintf(h->tmpdir, sizeof(h->tmpdir), "%s/netreel-tls-XXXXXX",
             getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(h->tmpdir)) {
        rc = cli_error(CLI_EXIT_FAIL, "cannot make a folder for the hub's certificates: %s",
                       strerror(errno));
        h->tmpdir[0] = 0;
        cli_output_free(&o);
        return rc;
    }
    p = o.out;
    for (int i = 0; i < 3; i++) {
        char *end = strchr(p, '\n');
        size_t n = 0;
        if (end)
            *end = 0;
        if (nr_base64_decode(p, strlen(p), p, strlen(p), &n) != 0 || n == 0) {
            rc = cli_error(CLI_EXIT_FAIL, "Secret %s in namespace %s has no %s", TLS_SECRET, ns,
                           keys[i]);
            break;
        }
        snprintf(files[i], PATH_MAX, "%s/%s", h->tmpdir, keys[i]);
        if ((rc = write_file(files[i], p, n)) != 0) {
            rc = cli_error(CLI_EXIT_FAIL, "cannot write %s: %s", files[i], nr_strerror(rc));
            break;
        }
        p = end ? end + 1 : p + strlen(p);
    }
    cli_output_free(&o);
    if (rc == 0) {
        h->tls_ca = h->ca_file;
        h->tls_cert = h->cert_file;
        h->tls_key = h->key_file;
    }
    return rc;
}

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A Ctrl-C or SIGTERM held back (blocked) while we wait for kubectl. */
static bool interrupted(void)
{
    sigset_t pending;

    return sigpending(&pending) == 0 &&
           (sigismember(&pending, SIGINT) == 1 || sigismember(&pending, SIGTERM) == 1);
}

/* kubectl port-forward on a port it picks; waits for its "Forwarding from 127.0.0.1:PORT". */
static int port_forward(struct cli_hub *h, const char *kc, const char *ns)
{
    const char *argv[] = {kc,          "port-forward", "--namespace", ns,  "--address",
                          "127.0.0.1", HUB_SERVICE,    ":" HUB_PORT,  NULL};
    char out[8192], line[300];
    size_t len = 0;
    int64_t deadline = now_ms() + FORWARD_WAIT_MS;
    pid_t pid = cli_spawn_piped(argv, &h->forward_fd, 1);

    if (pid < 0)
        return cli_error(CLI_EXIT_ENV, "cannot run kubectl: %s", nr_strerror(pid));
    h->forward_pid = pid;
    for (;;) {
        struct pollfd p = {h->forward_fd, POLLIN, 0};
        int64_t left = deadline - now_ms();
        const char *m;
        ssize_t n;

        if (left <= 0)
            return cli_error(CLI_EXIT_FAIL,
                             "kubectl port-forward %s in namespace %s: no forwarding within %d s",
                             HUB_SERVICE, ns, FORWARD_WAIT_MS / 1000);
        if (interrupted())
            return cli_error(CLI_EXIT_INTERRUPTED, "interrupted while kubectl port-forward "
                                                   "started");
        if (poll(&p, 1, left < 200 ? (int)left : 200) <= 0)
            continue;
        n = read(h->forward_fd, out + len, sizeof(out) - 1 - len);
        if (n <= 0) {
            out[len] = 0;
            return cli_error(CLI_EXIT_FAIL,
                             "kubectl port-forward %s in namespace %s failed: %s (is netreel "
                             "installed there? netreel tap; or --release-namespace NS)",
                             HUB_SERVICE, ns, cli_last_line(out, line, sizeof(line)));
        }
        len += (size_t)n;
        out[len] = 0;
        m = strstr(out, "Forwarding from 127.0.0.1:");
        if (m && strchr(m, '\n')) {
            unsigned port = (unsigned)strtoul(m + strlen("Forwarding from 127.0.0.1:"), NULL, 10);
            if (port == 0 || port > 65535)
                return cli_error(CLI_EXIT_FAIL, "kubectl port-forward said: %s",
                                 cli_last_line(out, line, sizeof(line)));
            snprintf(h->target, sizeof(h->target), "127.0.0.1:%u", port);
            snprintf(h->how, sizeof(h->how), "kubectl port-forward %s in namespace %s", HUB_SERVICE,
                     ns);
            return 0;
        }
        if (len >= sizeof(out) - 1) /* chatter without the line: keep the tail */
            len = 0;
    }
}

static int find_in_cluster(const struct cli_hub_opts *o, struct cli_hub *h)
{
    const char *ns = cli_release_namespace(o->release_ns);
    char kc[PATH_MAX], line[300];
    struct cli_output out;
    int rc;

    if (cli_find_program("kubectl", kc, sizeof(kc)) != 0)
        return cli_error(CLI_EXIT_ENV,
                         "no hub: no local `netreel tap --local` runs and kubectl is not on "
                         "PATH to reach a cluster's (give --hub ADDR or $NETREEL_HUB, or record "
                         "this machine: netreel tap --local)");
    rc = kubectl(kc, &out, NULL, "config", "current-context", NULL, NULL, NULL);
    if (rc != 0) {
        rc = cli_error(CLI_EXIT_ENV,
                       "no hub: no local `netreel tap --local` runs and kubectl has no current "
                       "context (%s) (give --hub ADDR, or record this machine: netreel tap "
                       "--local)",
                       cli_last_line(out.err, line, sizeof(line)));
        cli_output_free(&out);
        return rc;
    }
    cli_output_free(&out);
    if (!h->token && (rc = secret_token(h, kc, ns)) != 0)
        return rc;
    if (!o->tls_ca && !o->tls_cert && (rc = secret_tls(h, kc, ns)) != 0)
        return rc;
    return port_forward(h, kc, ns);
}

/* The client certificate, the CA and the token of the local recorder in `data`, for what the
 * flags and $NETREEL_TOKEN did not give. 0, or an exit code with the message printed. */
static int local_credentials(const struct cli_hub_opts *o, struct cli_hub *h, const char *data)
{
    struct cli_certs c = {0};
    char token[PATH_MAX];

    cli_certs_paths(data, &c);
    if (!o->tls_ca) {
        snprintf(h->ca_file, sizeof(h->ca_file), "%s", c.ca);
        h->tls_ca = h->ca_file;
    }
    if (!o->tls_cert) {
        snprintf(h->cert_file, sizeof(h->cert_file), "%s", c.cert[CLI_CERT_CLIENT]);
        snprintf(h->key_file, sizeof(h->key_file), "%s", c.key[CLI_CERT_CLIENT]);
        h->tls_cert = h->cert_file;
        h->tls_key = h->key_file;
    }
    for (int i = 0; i < 3; i++) {
        const char *f = i == 0 ? h->tls_ca : i == 1 ? h->tls_cert : h->tls_key;
        if (access(f, R_OK) != 0)
            return cli_error(CLI_EXIT_FAIL,
                             "cannot read %s: %s (the local hub's credentials: run netreel as "
                             "the user of `netreel tap --local`, root for `make run`)",
                             f, strerror(errno));
    }
    snprintf(token, sizeof(token), "%s/hub.token", data);
    if (!h->token && access(token, F_OK) == 0)
        return read_token_file(h, token);
    return 0;
}

/* The hub of the local recorder whose data folder is `data` (given: --data or $NETREEL_DATA;
 * else tap --local's default). Returns 0 (found, h filled), LOCAL_NONE (nothing there: go on
 * to the cluster), or an exit code with the message printed. */
static int find_local(const struct cli_hub_opts *o, struct cli_hub *h, const char *data, bool given)
{
    char addr[300];
    int rc = cli_hub_addr_read(data, addr, sizeof(addr));

    if (rc == -ENOENT && !given) {
        /* `make run` is root's: a user's netreel finds /var/lib/netreel closed to it. */
        if (geteuid() != 0 && access(ROOT_DATA "/hub.addr", F_OK) != 0 && errno == EACCES &&
            tcp_answers(LOCAL_HUB, 500))
            return cli_error(CLI_EXIT_FAIL,
                             "a hub answers on %s, but its credentials in %s are root's: run "
                             "netreel as root (sudo), or give --hub with --tls-* and "
                             "--token-file",
                             LOCAL_HUB, ROOT_DATA);
        return LOCAL_NONE;
    }
    if (rc == -ENOENT)
        return cli_error(CLI_EXIT_FAIL,
                         "no local hub in %s: there is no %s/hub.addr (is `netreel tap --local "
                         "--data %s` running?)",
                         data, data, data);
    if (rc == -EINVAL)
        return cli_error(CLI_EXIT_FAIL, "%s/hub.addr does not hold a host:port", data);
    if (rc != 0)
        return cli_error(CLI_EXIT_FAIL, "cannot read %s/hub.addr: %s%s", data, nr_strerror(rc),
                         rc == -EACCES ? " (run netreel as the user of `netreel tap --local`, "
                                         "root for `make run`)"
                                       : "");
    if (!tcp_answers(addr, 500)) {
        if (!given)
            return LOCAL_NONE; /* left by a tap --local that was killed */
        return cli_error(CLI_EXIT_FAIL,
                         "the local hub of %s (%s) does not answer: is `netreel tap --local` "
                         "still running?",
                         data, addr);
    }
    snprintf(h->target, sizeof(h->target), "%s", addr);
    snprintf(h->how, sizeof(h->how), "the local hub of %s", data);
    return local_credentials(o, h, data);
}

int cli_hub_find(const struct cli_hub_opts *o, struct cli_hub *h)
{
    const char *env_hub = getenv("NETREEL_HUB");
    const char *env_token = getenv("NETREEL_TOKEN");
    const char *env_data = getenv("NETREEL_DATA");
    const char *local = getenv("NETREEL_LOCAL_HUB");
    bool given = o->data || (env_data && *env_data);
    char data[PATH_MAX] = "";
    int rc;

    memset(h, 0, sizeof(*h));
    h->forward_fd = -1;
    h->tls_ca = o->tls_ca;
    h->tls_cert = o->tls_cert;
    h->tls_key = o->tls_key;
    if (o->token_file)
        rc = read_token_file(h, o->token_file);
    else if (env_token && *env_token)
        rc = set_token(h, env_token, strlen(env_token), "$NETREEL_TOKEN");
    else
        rc = 0;
    if (rc != 0)
        return rc;
    if (o->data)
        snprintf(data, sizeof(data), "%s", o->data);
    else if (cli_local_data_default(data, sizeof(data)) != 0)
        data[0] = 0;
    if (o->hub) {
        snprintf(h->target, sizeof(h->target), "%s", o->hub);
        snprintf(h->how, sizeof(h->how), "--hub");
    } else if (env_hub && *env_hub) {
        snprintf(h->target, sizeof(h->target), "%s", env_hub);
        snprintf(h->how, sizeof(h->how), "$NETREEL_HUB");
    }
    if (h->target[0]) {
        rc = given ? local_credentials(o, h, data) : 0;
    } else if (data[0] && (given || !local || strcmp(local, "off") != 0) &&
               (rc = find_local(o, h, data, given)) != LOCAL_NONE) {
        /* found, or an error */
    } else {
        rc = find_in_cluster(o, h);
    }
    if (rc != 0)
        cli_hub_release(h);
    return rc;
}

static void remove_tmpdir(struct cli_hub *h)
{
    if (!h->tmpdir[0])
        return;
    if (h->ca_file[0])
        unlink(h->ca_file);
    if (h->cert_file[0])
        unlink(h->cert_file);
    if (h->key_file[0])
        unlink(h->key_file);
    rmdir(h->tmpdir);
    h->tmpdir[0] = 0;
}

void cli_hub_release(struct cli_hub *h)
{
    if (h->forward_pid > 0) {
        int st;
        kill(h->forward_pid, SIGTERM);
        while (waitpid(h->forward_pid, &st, 0) < 0 && errno == EINTR)
            ;
        h->forward_pid = 0;
    }
    if (h->forward_fd >= 0) {
        close(h->forward_fd);
        h->forward_fd = -1;
    }
    remove_tmpdir(h);
    free(h->token);
    h->token = NULL;
}

struct rpc_channel *cli_hub_channel(uv_loop_t *loop, const struct cli_hub *h, char *err,
                                    size_t errlen)
{
    struct rpc_channel_config cfg;

    rpc_channel_config_init(&cfg);
    cfg.target = h->target;
    cfg.tls_ca = h->tls_ca;
    cfg.tls_cert = h->tls_cert;
    cfg.tls_key = h->tls_key;
    cfg.tls = h->tls_ca || h->tls_cert;
    return rpc_channel_new(loop, &cfg, err, errlen);
}

const char *const *cli_hub_metadata(struct cli_hub *h)
{
    if (!h->token)
        return NULL;
    h->metadata[0] = "authorization";
    h->metadata[1] = h->bearer;
    h->metadata[2] = NULL;
    return h->metadata;
}

int cli_hub_failed(const struct cli_hub *h, const char *what, int code, const char *message)
{
    switch (code) {
    case RPC_UNAVAILABLE:
        /* A TLS server closes a plaintext client at once: say what it most likely wants. */
        return cli_error(CLI_EXIT_FAIL, "%s: cannot reach the hub at %s (%s): %s%s", what,
                         h->target, h->how, message[0] ? message : "unavailable",
                         !h->tls_ca && !h->tls_cert && strstr(message, "closed")
                             ? " (a hub with TLS closes plaintext connections: give --tls-ca, "
                               "--tls-cert and --tls-key, or --data DIR for a local tap --local)"
                             : "");
    case RPC_UNAUTHENTICATED:
        return cli_error(CLI_EXIT_FAIL,
                         "%s: the hub at %s refused us (UNAUTHENTICATED%s%s): give its token "
                         "with --token-file FILE or $NETREEL_TOKEN",
                         what, h->target, message[0] ? ": " : "", message);
    case RPC_PERMISSION_DENIED:
        return cli_error(CLI_EXIT_FAIL, "%s: the hub at %s refused us (PERMISSION_DENIED%s%s)",
                         what, h->target, message[0] ? ": " : "", message);
    default:
        return cli_error(CLI_EXIT_FAIL, "%s: the hub at %s answered %s%s%s", what, h->target,
                         rpc_code_name(code), message[0] ? ": " : "", message);
    }
}
