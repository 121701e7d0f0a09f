/* Tests for cli/extcap.c: what Wireshark passes to the extcap becomes exactly the pcapdump
 * command line it says, option by option; every bad or oversized value is refused with one line
 * on stderr that names it and exit status 2; the options offered by --extcap-config are the ones
 * the parser takes; a capture filter is checked as the stores compile it. As the fuzz target of
 * the CLI's parsers does, the files are compiled in here (there is no cli library to link). */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../cli/error.c"
#include "../../cli/extcap.c"

#define NOW_NS   INT64_C(1795000000123456789) /* 2026-11-18T11:06:40.123456789Z */
#define MAX_ARGS 80

/* Big (two buffers of the struct): kept off the stack. */
static struct cli_extcap_args args;
static struct cli_extcap_cmd cmd;
static char errtext[8192];

/* Parses the NULL-terminated list (program name first) with stderr caught in errtext. */
static int parse(const char *const *list)
{
    static char *strings[MAX_ARGS + 1]; /* the last case's, which args points into */
    char *argv[MAX_ARGS + 1];
    FILE *tmp = tmpfile();
    int saved = dup(2), argc = 0, rc;
    size_t n;

    assert_non_null(tmp);
    assert_true(saved >= 0);
    for (int i = 0; strings[i]; i++) {
        free(strings[i]);
        strings[i] = NULL;
    }
    for (; list[argc]; argc++) {
        assert_true(argc < MAX_ARGS);
        /* Each its own allocation (ASan sees a read past its end); getopt may permute argv. */
        strings[argc] = argv[argc] = strdup(list[argc]);
    }
    argv[argc] = NULL;
    fflush(stderr);
    dup2(fileno(tmp), 2);
    rc = cli_extcap_args_parse(argc, argv, &args);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    rewind(tmp);
    n = fread(errtext, 1, sizeof(errtext) - 1, tmp);
    errtext[n] = 0;
    fclose(tmp);
    return rc;
}

#define ARGS(...) ((const char *const[]){"netreel", __VA_ARGS__, NULL})
#define CAPTURE   "--capture", "--extcap-interface", "netreel", "--fifo", "/tmp/wireshark_extcap"

/* The pcapdump line a capture becomes, joined with '|'. */
static const char *translated(const char *const *list)
{
    static char line[32768];
    size_t used = 0;
    int rc = parse(list);

    if (rc != 0)
        fail_msg("%s: parse rc %d: %s", list[1], rc, errtext);
    assert_string_equal(errtext, "");
    assert_int_equal(args.action, CLI_EXTCAP_CAPTURE);
    assert_int_equal(cli_extcap_pcapdump_argv(&args, NOW_NS, &cmd), 0);
    assert_true(cmd.argc <= CLI_EXTCAP_ARGV_MAX);
    assert_null(cmd.argv[cmd.argc]);
    line[0] = 0;
    for (int i = 0; i < cmd.argc; i++) {
        assert_non_null(cmd.argv[i]);
        used +=
            (size_t)snprintf(line + used, sizeof(line) - used, "%s%s", i ? "|" : "", cmd.argv[i]);
        assert_true(used < sizeof(line));
    }
    return line;
}

/* Refused: exit status 2, one line on stderr starting "netreel: extcap: " that holds want. */
static void refused(const char *const *list, const char *want)
{
    int rc = parse(list);
    const char *nl = strchr(errtext, '\n');

    if (rc != CLI_EXIT_USAGE)
        fail_msg("%s ...: rc %d, want 2 (stderr: %s)", list[1], rc, errtext);
    if (strncmp(errtext, "netreel: extcap: ", 17) != 0 || !nl || nl[1] != 0)
        fail_msg("want one line \"netreel: extcap: ...\" on stderr, got \"%s\"", errtext);
    if (!strstr(errtext, want))
        fail_msg("stderr \"%s\" lacks \"%s\"", errtext, want);
}

static void wireshark_questions(void **state)
{
    assert_true(cli_extcap_wanted(2, (char *[]){"netreel", "--extcap-interfaces", NULL}));
    assert_true(cli_extcap_wanted(2, (char *[]){"netreel", "--capture", NULL}));
    assert_false(cli_extcap_wanted(2, (char *[]){"netreel", "pcapdump", NULL}));
    assert_false(cli_extcap_wanted(2, (char *[]){"netreel", "--captures", NULL}));
    assert_false(cli_extcap_wanted(1, (char *[]){"netreel", NULL}));
    assert_true(
        cli_extcap_wanted(3, (char *[]){"netreel", "--debug", "--extcap-interfaces", NULL}));
    assert_false(cli_extcap_wanted(3, (char *[]){"netreel", "pcapdump", "--capture", NULL}));
    assert_false(cli_extcap_wanted(2, (char *[]){"netreel", "--help", NULL}));

    assert_int_equal(parse(ARGS("--extcap-interfaces", "--extcap-version=4.0")), 0);
    assert_int_equal(args.action, CLI_EXTCAP_INTERFACES);
    assert_int_equal(parse(ARGS("--extcap-version=4.2", "--extcap-interfaces")), 0);
    assert_int_equal(args.action, CLI_EXTCAP_INTERFACES);
    assert_int_equal(parse(ARGS("--extcap-version")), 0);
    assert_int_equal(args.action, CLI_EXTCAP_VERSION);
    assert_int_equal(parse(ARGS("--extcap-dlts", "--extcap-interface", "netreel")), 0);
    assert_int_equal(args.action, CLI_EXTCAP_DLTS);
    assert_int_equal(parse(ARGS("--extcap-config", "--extcap-interface=netreel")), 0);
    assert_int_equal(args.action, CLI_EXTCAP_CONFIG);
    assert_int_equal(
        parse(ARGS("--extcap-interface", "netreel", "--extcap-capture-filter", "tcp port 80")), 0);
    assert_int_equal(args.action, CLI_EXTCAP_FILTER_CHECK);
    assert_string_equal(args.capture_filter, "tcp port 80");
    assert_int_equal(parse(ARGS("--extcap-cleanup-postkill", "--extcap-interface", "netreel")), 0);
    assert_int_equal(args.action, CLI_EXTCAP_CLEANUP);
    /* What Wireshark adds that means nothing here. */
    assert_int_equal(parse(ARGS(CAPTURE, "--extcap-control-in", "/tmp/c-in", "--extcap-control-out",
                                "/tmp/c-out", "--log-level", "debug", "--log-file", "/tmp/log",
                                "--debug", "--debug-file", "/tmp/d", "--extcap-version=4.0")),
                     0);
    assert_string_equal(args.fifo, "/tmp/wireshark_extcap");
}

static void every_option_translated(void **state)
{
    /* As Wireshark passes them: "--call value" pairs, after --fifo. */
    assert_string_equal(
        translated(ARGS(CAPTURE, "--time", "5m", "--lateness", "1s", "--clock", "raw", "--filter",
                        "udp", "--sightings", "all", "--namespace", "shop", "--pod", "^web-",
                        "--selector", "app=web,tier!=db", "--hub", "hub.example:8898")),
        "netreel|pcapdump|--follow|-q|--time|5m|--lateness|1s|--filter|udp|--namespace|shop|"
        "--pod|^web-|--selector|app=web,tier!=db|--hub|hub.example:8898|--sightings|all|"
        "--clock|raw|-o|-");
    /* The other spellings: --opt=value, -n, -l. */
    assert_string_equal(translated(ARGS(CAPTURE, "--time=1h30m", "-n", "a", "-l", "app",
                                        "--sightings=one", "--clock=aligned", "--lateness=2s")),
                        "netreel|pcapdump|--follow|-q|--time|1h30m|--lateness|2s|--namespace|a|"
                        "--selector|app|--sightings|one|--clock|aligned|-o|-");
}

static void window_from_now(void **state)
{
    /* No --time (or an empty one, as a cleared field): from now, said as a time. */
    assert_string_equal(translated(ARGS(CAPTURE)),
                        "netreel|pcapdump|--follow|-q|--since|2026-11-18T11:06:40.123456789Z|-o|-");
    assert_string_equal(translated(ARGS(CAPTURE, "--time", "", "--lateness", "")),
                        "netreel|pcapdump|--follow|-q|--since|2026-11-18T11:06:40.123456789Z|-o|-");
}

static void empty_is_not_given(void **state)
{
    assert_string_equal(translated(ARGS(CAPTURE, "--time", "2m", "--filter", "", "--namespace", "",
                                        "--pod", "", "--selector", "", "--hub", "", "--sightings",
                                        "", "--clock", "", "--extcap-capture-filter", "")),
                        "netreel|pcapdump|--follow|-q|--time|2m|-o|-");
}

static void filters_joined(void **state)
{
    assert_string_equal(
        translated(ARGS(CAPTURE, "--time", "1m", "--extcap-capture-filter", "tcp port 443")),
        "netreel|pcapdump|--follow|-q|--time|1m|--filter|tcp port 443|-o|-");
    assert_string_equal(translated(ARGS(CAPTURE, "--time", "1m", "--filter", "udp or icmp",
                                        "--extcap-capture-filter", "host 10.0.0.1")),
                        "netreel|pcapdump|--follow|-q|--time|1m|--filter|"
                        "(udp or icmp) and (host 10.0.0.1)|-o|-");
}

static void namespaces_cleaned(void **state)
{
    /* Spaces around names and empty items out; -n repeated adds. */
    assert_string_equal(translated(ARGS(CAPTURE, "--time", "1m", "--namespace", " shop , pay,,",
                                        "-n", "kube-system")),
                        "netreel|pcapdump|--follow|-q|--time|1m|--namespace|shop,pay,kube-system|"
                        "-o|-");
    assert_string_equal(translated(ARGS(CAPTURE, "--time", "1m", "--namespace", " , ")),
                        "netreel|pcapdump|--follow|-q|--time|1m|-o|-");
}

/* A value that starts with '-' stays a value: it is its own argument after its flag. */
static void dash_values_stay_values(void **state)
{
    assert_string_equal(translated(ARGS(CAPTURE, "--time", "1m", "--pod", "-o")),
                        "netreel|pcapdump|--follow|-q|--time|1m|--pod|-o|-o|-");
    assert_string_equal(translated(ARGS(CAPTURE, "--time", "1m", "--selector", "!canary")),
                        "netreel|pcapdump|--follow|-q|--time|1m|--selector|!canary|-o|-");
}

static void bad_values_refused(void **state)
{
    refused(ARGS(CAPTURE, "--time", "5x"), "--time: invalid duration \"5x\"");
    refused(ARGS(CAPTURE, "--time", "0"), "--time: must be above zero");
    refused(ARGS(CAPTURE, "--time", "-5m"), "--time");
    refused(ARGS(CAPTURE, "--time", "9999999999h"), "--time");
    refused(ARGS(CAPTURE, "--lateness", "soon"), "--lateness: invalid duration");
    refused(ARGS(CAPTURE, "--sightings", "some"), "--sightings \"some\": one or all");
    refused(ARGS(CAPTURE, "--clock", "utc"), "--clock \"utc\": aligned or raw");
    refused(ARGS(CAPTURE, "--namespace", "Shop"), "\"Shop\" is not a namespace name");
    refused(ARGS(CAPTURE, "--namespace", "a;rm -rf /"), "is not a namespace name");
    refused(ARGS(CAPTURE, "-n", "-shop"), "\"-shop\" is not a namespace name");
    refused(ARGS(CAPTURE, "--pod", "(web"), "--pod: missing closing parenthesis");
    refused(ARGS(CAPTURE, "--selector", "app in (a"), "--selector: label selector");
    refused(ARGS(CAPTURE, "--hub", "hub"), "--hub: invalid address \"hub\"");
    refused(ARGS(CAPTURE, "--hub", ":8898"), "give a host");
    refused(ARGS(CAPTURE, "--hub", "h:99999"), "--hub");
    refused(ARGS(CAPTURE, "--filter", "tcp\nport 80"), "--filter: a control character at byte 3");
    refused(ARGS(CAPTURE, "--pod", "web\x1b[2J"), "--pod: a control character");
}

static void usage_refused(void **state)
{
    refused(ARGS("--capture", "--extcap-interface", "netreel"), "--capture needs --fifo PATH");
    refused(ARGS("--capture", "--fifo", "/tmp/f"), "give --extcap-interface netreel");
    refused(ARGS("--extcap-config"), "give --extcap-interface netreel");
    refused(ARGS("--extcap-dlts", "--extcap-interface", "eth0"), "no interface \"eth0\"");
    refused(ARGS(CAPTURE, "--fifo", ""), "--fifo is empty");
    refused(ARGS("--extcap-config", "--capture", "--extcap-interface", "netreel", "--fifo", "f"),
            "one of --extcap-interfaces, --extcap-dlts, --extcap-config, --capture at a time");
    refused(ARGS("--extcap-interface", "netreel"), "give --extcap-interfaces, --extcap-dlts");
    refused(ARGS(CAPTURE, "--bogus", "1"), "unknown option --bogus");
    refused(ARGS(CAPTURE, "-x"), "unknown option -x");
    refused(ARGS(CAPTURE, "--time"), "option --time needs a value");
    refused(ARGS(CAPTURE, "-n"), "option -n needs a value");
    refused(ARGS(CAPTURE, "stray"), "unexpected argument \"stray\"");
    refused(ARGS(CAPTURE, "--extcap-reload-option", "x"), "unknown option");
}

static char *repeat(char c, size_t n)
{
    char *s = malloc(n + 1);

    assert_non_null(s);
    memset(s, c, n);
    s[n] = 0;
    return s;
}

static void caps(void **state)
{
    char *big = repeat('a', CLI_EXTCAP_VALUE_MAX + 1), *ok = repeat('a', 1000);
    char *filter = repeat(' ', CLI_EXTCAP_FILTER_MAX + 1), *half = repeat(' ', 9000);
    char *path = repeat('f', 5000);
    char ns[64 * 4 + 1] = "", long_name[80];

    refused(ARGS(CAPTURE, "--pod", big), "--pod: longer than 4096 bytes");
    refused(ARGS(CAPTURE, "--hub", big), "--hub: longer than 512 bytes");
    refused(ARGS(CAPTURE, "--namespace", big), "--namespace: longer than 4096 bytes");
    refused(ARGS(CAPTURE, "--time", ok), "--time: longer than 64 bytes");
    refused(ARGS(CAPTURE, "--fifo", path), "--fifo: longer than");
    refused(ARGS(CAPTURE, "--filter", filter), "--filter: longer than 16384 bytes");
    refused(ARGS(CAPTURE, "--extcap-capture-filter", filter),
            "--extcap-capture-filter: longer than 16384 bytes");
    /* Each under the cap, together past it. */
    refused(ARGS(CAPTURE, "--filter", half, "--extcap-capture-filter", half),
            "--filter and the capture filter together are longer than 16384 bytes");
    /* 65 namespaces, and a name of 64 characters. */
    for (int i = 0; i < 65; i++)
        snprintf(ns + strlen(ns), sizeof(ns) - strlen(ns), "%sn%d", i ? "," : "", i);
    refused(ARGS(CAPTURE, "--namespace", ns), "--namespace: at most 64 namespaces");
    memset(long_name, 'a', 64);
    long_name[64] = 0;
    refused(ARGS(CAPTURE, "--namespace", long_name), "is not a namespace name");
    long_name[63] = 0;
    assert_int_equal(parse(ARGS(CAPTURE, "--namespace", long_name)), 0);
    free(big);
    free(ok);
    free(filter);
    free(half);
    free(path);
}

static void filter_check(void **state)
{
    char err[512] = "";

    assert_int_equal(cli_extcap_filter_check("tcp port 80 or udp", err, sizeof(err)), 0);
    assert_int_equal(cli_extcap_filter_check("host 10.0.0.1 and not port 22", err, sizeof(err)), 0);
    assert_int_equal(cli_extcap_filter_check("tcp port 80 and", err, sizeof(err)), NR_EPARSE);
    assert_non_null(strstr(err, "filter \"tcp port 80 and\": "));
    assert_int_equal(cli_extcap_filter_check("port 99999", err, sizeof(err)), NR_EPARSE);
    assert_null(strchr(err, '\n'));
}

/* One {key=value} field of a config line: its key and value, or false at the line's end. The
 * grammar ends a value at "}" followed by "{", a space or the end. */
static bool field(const char **p, char *key, size_t klen, char *val, size_t vlen)
{
    const char *s = *p, *eq, *end;

    if (*s != '{')
        return false;
    eq = strchr(s, '=');
    assert_non_null(eq);
    for (end = eq; *end && !(end[0] == '}' && (end[1] == '{' || end[1] == 0)); end++)
        ;
    assert_int_equal(*end, '}');
    snprintf(key, klen, "%.*s", (int)(eq - s - 1), s + 1);
    snprintf(val, vlen, "%.*s", (int)(end - eq - 1), eq + 1);
    *p = end + 1;
    return true;
}

/* Every arg of --extcap-config has a number, a --call the parser takes, a display, a known
 * type and a tooltip; every value points at an arg; defaults and choices parse. */
static void config_offers_what_the_parser_takes(void **state)
{
    static const char *const types[] = {"string", "radio", "selector"};
    char copy[sizeof(config_text)], *save = NULL, key[64], val[1024];
    char calls[16][64];
    int n_args = 0;

    memcpy(copy, config_text, sizeof(copy));
    for (char *ln = strtok_r(copy, "\n", &save); ln; ln = strtok_r(NULL, "\n", &save)) {
        bool is_arg = strncmp(ln, "arg ", 4) == 0;
        const char *p = ln + (is_arg ? 4 : 6);
        char call[64] = "", type[32] = "", number[8] = "", arg[8] = "", value[64] = "";
        bool display = false, tooltip = false;

        assert_true(is_arg || strncmp(ln, "value ", 6) == 0);
        while (field(&p, key, sizeof(key), val, sizeof(val))) {
            assert_null(strchr(val, '{'));
            if (strcmp(key, "call") == 0)
                snprintf(call, sizeof(call), "%s", val);
            else if (strcmp(key, "type") == 0)
                snprintf(type, sizeof(type), "%s", val);
            else if (strcmp(key, "number") == 0)
                snprintf(number, sizeof(number), "%s", val);
            else if (strcmp(key, "arg") == 0)
                snprintf(arg, sizeof(arg), "%s", val);
            else if (strcmp(key, "value") == 0)
                snprintf(value, sizeof(value), "%s", val);
            display |= strcmp(key, "display") == 0;
            tooltip |= strcmp(key, "tooltip") == 0;
        }
        assert_int_equal(*p, 0);
        assert_true(display);
        if (is_arg) {
            bool known = false;
            assert_int_equal(strtol(number, NULL, 10), n_args);
            assert_true(tooltip);
            for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
                known |= strcmp(type, types[i]) == 0;
            assert_true(known);
            /* The parser takes the call, with a value that is no value. */
            assert_int_equal(parse(ARGS(CAPTURE, call, "")), 0);
            assert_true(n_args < 16);
            snprintf(calls[n_args++], sizeof(calls[0]), "%s", call);
        } else {
            /* A choice of an arg: accepted as that arg's value. */
            long i = strtol(arg, NULL, 10);
            assert_true(i >= 0 && i < n_args);
            assert_int_equal(parse(ARGS(CAPTURE, calls[i], value)), 0);
        }
    }
    assert_int_equal(n_args, 9);
    /* The one default given as text: the parser takes it too. */
    assert_int_equal(parse(ARGS(CAPTURE, "--lateness", "1s")), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(wireshark_questions),
        cmocka_unit_test(every_option_translated),
        cmocka_unit_test(window_from_now),
        cmocka_unit_test(empty_is_not_given),
        cmocka_unit_test(filters_joined),
        cmocka_unit_test(namespaces_cleaned),
        cmocka_unit_test(dash_values_stay_values),
        cmocka_unit_test(bad_values_refused),
        cmocka_unit_test(usage_refused),
        cmocka_unit_test(caps),
        cmocka_unit_test(filter_check),
        cmocka_unit_test(config_offers_what_the_parser_takes),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
