/* netreel tap: starts recording. In a cluster: `helm upgrade --install` of the chart shipped
 * with netreel, with POD_REGEX, -n and -e written to a values file (a regex survives that
 * whole, where --set would split it at commas) and --set passed on. `tap --local` is
 * tap_local.c. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "args.h"
#include "cli.h"
#include "hub.h"
#include "kube.h"
#include "proc.h"
#include "util/error.h"

static const char usage_text[] =
    "usage: netreel tap [POD_REGEX] [-n NS,...] [-e NS,...] [--tls[=true|false]]\n"
    "                   [--set key=value]... [--release-namespace NS] [--chart DIR]\n"
    "       netreel tap --local [-i IFACE] [--data DIR] [--tls] [--set key=value]...\n"
    "                   (--local --help)\n"
    "Starts recording every node of the current kube context: installs or upgrades the netreel\n"
    "chart with helm. Then `netreel pcapdump --time=5m` takes a snapshot.\n"
    "\n"
    "  POD_REGEX                  record pods whose name matches (PCRE2; default .*)\n"
    "  -n, --namespaces NS,...    only pods in these namespaces\n"
    "  -e, --excluded-namespaces NS,...  never pods in these\n"
    "  --tls[=true|false]         tap.tls: also record decrypted TLS (plaintext of OpenSSL\n"
    "                             connections, and their secrets); on unless --tls=false.\n"
    "                             It runs the capture as root with SYS_ADMIN and SYS_PTRACE in\n"
    "                             the host's PID namespace until its probes are attached\n"
    "                             (docs/deploy.md)\n"
    "  --set key=value            any chart value (helm show values; docs/deploy.md), e.g.\n"
    "                             pcapdump.maxTime=2h, pcapdump.maxSize=2GiB,\n"
    "                             tap.bpfOverride='net 10.0.0.0/8'; headless=true is accepted\n"
    "                             (netreel has no dashboard)\n"
    "  --release-namespace NS     install into NS (default $NETREEL_NAMESPACE, else netreel);\n"
    "                             made, with Pod Security \"privileged\", when it is missing\n"
    "  --chart DIR                the chart (default: the one installed with netreel)\n"
    "  --help\n"
    "\n"
    "Exit: 0 installed, 1 helm or kubectl failed, 2 bad usage, 4 helm, kubectl or a kube\n"
    "context is missing.\n";

static bool is_chart(const char *dir)
{
    char path[PATH_MAX];
    struct stat st;

    snprintf(path, sizeof(path), "%s/Chart.yaml", dir);
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* --chart, else beside the binary (bin/../share/netreel/netreel), else the usual prefixes,
 * else the source tree's helm/netreel when run from build/<variant>/bin. */
static int find_chart(const struct cli_tap_args *o, char *chart, size_t len)
{
    char exe[PATH_MAX] = "";

    if (o->chart) {
        if (!is_chart(o->chart))
            return cli_error(CLI_EXIT_USAGE, "tap: --chart %s: no Chart.yaml there", o->chart);
        snprintf(chart, len, "%s", o->chart);
        return 0;
    }
    if (cli_exe_dir(exe, sizeof(exe)) != 0)
        exe[0] = 0;
    if (exe[0]) {
        snprintf(chart, len, "%s/../share/netreel/netreel", exe);
        if (is_chart(chart))
            return 0;
    }
    snprintf(chart, len, "/usr/local/share/netreel/netreel");
    if (is_chart(chart))
        return 0;
    snprintf(chart, len, "/usr/share/netreel/netreel");
    if (is_chart(chart))
        return 0;
    if (exe[0]) {
        snprintf(chart, len, "%s/../../../helm/netreel", exe);
        if (is_chart(chart))
            return 0;
    }
    return cli_error(CLI_EXIT_ENV,
                     "tap: the netreel chart is not installed beside this "
                     "binary (../share/netreel/netreel) nor in /usr/local/share/netreel: give "
                     "it with --chart DIR");
}

static void json_string(FILE *f, const char *s, size_t len)
{
    fputc('"', f);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

static void json_list(FILE *f, const char *const *list, const size_t *lens, size_t n)
{
    fputc('[', f);
    for (size_t i = 0; i < n; i++) {
        if (i)
            fputc(',', f);
        json_string(f, list[i], lens[i]);
    }
    fputc(']', f);
}

/* The values of POD_REGEX, -n, -e and --tls as a file for helm -f (JSON is YAML); --set, given
 * after it, wins over it. */
static int write_values(const struct cli_tap_args *o, char *path, size_t len)
{
    const char *tmp = getenv("TMPDIR");
    bool first = true;
    FILE *f;
    int fd;

    snprintf(path, len, "%s/netreel-values-XXXXXX.json", tmp && *tmp ? tmp : "/tmp");
    fd = mkstemps(path, 5);
    if (fd < 0 || !(f = fdopen(fd, "w"))) {
        if (fd >= 0) {
            close(fd);
            unlink(path);
        }
        return cli_error(CLI_EXIT_FAIL, "tap: cannot write a values file: %s", strerror(errno));
    }
    fputs("{\"tap\": {", f);
    if (o->regex) {
        fputs("\"regex\": ", f);
        json_string(f, o->regex, strlen(o->regex));
        first = false;
    }
    if (o->n_namespaces) {
        fputs(first ? "\"namespaces\": " : ", \"namespaces\": ", f);
        json_list(f, o->namespaces, o->namespaces_len, o->n_namespaces);
        first = false;
    }
    if (o->n_excluded) {
        fputs(first ? "\"excludedNamespaces\": " : ", \"excludedNamespaces\": ", f);
        json_list(f, o->excluded, o->excluded_len, o->n_excluded);
        first = false;
    }
    if (o->tls >= 0)
        fprintf(f, "%s\"tls\": %s", first ? "" : ", ", o->tls ? "true" : "false");
    fputs("}}\n", f);
    if (fclose(f) != 0) {
        unlink(path);
        return cli_error(CLI_EXIT_FAIL, "tap: cannot write a values file: %s", strerror(errno));
    }
    return 0;
}

/* The release namespace: made with Pod Security "privileged" (the capture needs the host
 * network and two capabilities) when missing; an existing one is left as it is. */
static int ensure_namespace(const char *kubectl, const char *ns)
{
    const char *get[] = {kubectl, "get", "namespace", ns, "-o", "name", NULL};
    const char *create[] = {kubectl, "create", "namespace", ns, NULL};
    const char *label[] = {kubectl,     "label", "--overwrite",
                           "namespace", ns,      "pod-security.kubernetes.io/enforce=privileged",
                           NULL};
    struct cli_output o;
    char line[512];
    int rc = cli_run(get, &o);

    if (rc == 0) {
        cli_output_free(&o);
        return 0;
    }
    if (rc < 0)
        return cli_error(CLI_EXIT_ENV, "tap: cannot run kubectl: %s", nr_strerror(rc));
    if (!strstr(o.err, "NotFound") && !strstr(o.err, "not found")) {
        rc = cli_error(CLI_EXIT_FAIL, "tap: kubectl get namespace %s failed: %s", ns,
                       cli_last_line(o.err, line, sizeof(line)));
        cli_output_free(&o);
        return rc;
    }
    cli_output_free(&o);
    for (int i = 0; i < 2; i++) {
        rc = cli_run(i == 0 ? create : label, &o);
        if (rc != 0) {
            int e = cli_error(CLI_EXIT_FAIL, "tap: kubectl %s namespace %s failed: %s",
                              i == 0 ? "create" : "label", ns,
                              rc < 0 ? nr_strerror(rc) : cli_last_line(o.err, line, sizeof(line)));
            if (rc > 0)
                cli_output_free(&o);
            return e;
        }
        cli_output_free(&o);
    }
    printf("netreel: made namespace %s (Pod Security: privileged, which the capture needs)\n", ns);
    return 0;
}

int cli_tap(int argc, char **argv)
{
    static struct cli_tap_args o;
    char helm[PATH_MAX], kubectl[PATH_MAX], context[256], chart[PATH_MAX], values[PATH_MAX];
    const char *args[16 + 2 * CLI_TAP_MAX_SETS];
    const char *ns;
    size_t n = 0;
    int rc;

    if (cli_tap_is_local(argc, argv))
        return cli_tap_local(argc, argv);
    rc = cli_tap_args_parse(argc, argv, &o);
    if (rc == CLI_ARGS_HELP) {
        fputs(usage_text, stdout);
        return CLI_EXIT_OK;
    }
    if (rc != 0)
        return rc;
    ns = cli_release_namespace(o.ns_flag);
    rc = cli_kube_ready("tap", helm, kubectl, sizeof(helm), context, sizeof(context));
    if (rc == 0)
        rc = find_chart(&o, chart, sizeof(chart));
    if (rc == 0)
        rc = ensure_namespace(kubectl, ns);
    if (rc == 0)
        rc = write_values(&o, values, sizeof(values));
    if (rc != 0)
        return rc;
    args[n++] = helm;
    args[n++] = "upgrade";
    args[n++] = "--install";
    args[n++] = CLI_RELEASE;
    args[n++] = chart;
    args[n++] = "--namespace";
    args[n++] = ns;
    args[n++] = "--values";
    args[n++] = values;
    for (size_t i = 0; i < o.n_sets; i++) {
        args[n++] = "--set";
        args[n++] = o.sets[i];
    }
    args[n] = NULL;
    printf("netreel: installing %s into namespace %s of context %s\n", chart, ns, context);
    fflush(stdout);
    rc = cli_run(args, NULL);
    unlink(values);
    if (rc < 0)
        return cli_error(CLI_EXIT_ENV, "tap: cannot run %s: %s", helm, nr_strerror(rc));
    if (rc != 0)
        return cli_error(CLI_EXIT_FAIL,
                         "tap: helm upgrade --install failed (exit %d): see "
                         "helm's message above",
                         rc);
    printf("netreel: recording starts on each node when its pod is ready (kubectl -n %s rollout "
           "status daemonset/netreel-node); then: netreel pcapdump --time=5m%s%s\n",
           ns, strcmp(ns, "netreel") ? " --release-namespace " : "",
           strcmp(ns, "netreel") ? ns : "");
    return CLI_EXIT_OK;
}
