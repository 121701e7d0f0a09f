/* Program edges shared by every netreel binary (see prog.h). */
#include "util/prog.h"

#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "util/log.h"
#include "util/version.h"

static const char *prog_name = "netreel";

void nr_prog_set_name(const char *name)
{
    prog_name = name;
}

void nr_die(const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "%s: ", prog_name);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(2);
}

void nr_prog_option(int c, char **argv, const char *usage, const char **node)
{
    enum nr_log_level level;

    switch (c) {
    case NR_PROG_O_NODE: *node = optarg; return;
    case NR_PROG_O_LOG:
        if (nr_log_parse_level(optarg, &level) != 0)
            nr_die("--log-level: \"%s\" is not debug, info, warn or error", optarg);
        nr_log_set_level(level);
        return;
    case NR_PROG_O_VERSION: printf("%s %s\n", prog_name, NR_VERSION); exit(0);
    case 'h': fputs(usage, stdout); exit(0);
    case ':': nr_die("option %s needs a value (see --help)", argv[optind - 1]);
    default: nr_die("option %s is not known (see --help)", argv[optind - 1]);
    }
}

int64_t nr_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

struct nr_httpd *nr_prog_metrics(uv_loop_t *loop, const char *listen,
                                 const struct nr_httpd_route *routes, size_t n_routes)
{
    struct nr_httpd_config cfg;
    struct nr_httpd *h;
    char err[256];

    if (!listen || !listen[0] || strcmp(listen, "off") == 0)
        return NULL;
    nr_httpd_config_init(&cfg);
    cfg.listen = listen;
    cfg.routes = routes;
    cfg.n_routes = n_routes;
    h = nr_httpd_new(loop, &cfg);
    if (!h)
        nr_die("out of memory");
    if (nr_httpd_start(h, err, sizeof(err)) != 0)
        nr_die("--metrics-listen: %s", err);
    return h;
}

static void close_one(uv_handle_t *h, void *arg)
{
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

void nr_prog_close_handles(uv_loop_t *loop)
{
    uv_walk(loop, close_one, NULL);
}

uint64_t nr_prog_raise_nofile(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return 0;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0 && getrlimit(RLIMIT_NOFILE, &rl) != 0)
            return 0;
    }
    return (uint64_t)rl.rlim_cur;
}
