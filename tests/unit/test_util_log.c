/* Tests for lib/util/log.c: lines on stderr as logfmt readers expect them, quoting, the level
 * threshold, the cap on a line's length, and whole lines when threads log at once. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "util/log.h"
#include "util/parse.h"

#define LINE_MAX_BYTES 4096
#define TS_LEN         24 /* "2026-11-26T05:08:19.123Z" */

/* stderr is pointed at a temporary file while a test logs, and back before it asserts, so
 * cmocka's own messages still reach the terminal. */
struct capture {
    FILE *file;
    int saved_stderr;
};

static void capture_start(struct capture *c)
{
    c->file = tmpfile();
    assert_non_null(c->file);
    fflush(stderr);
    c->saved_stderr = dup(STDERR_FILENO);
    assert_true(c->saved_stderr >= 0);
    assert_true(dup2(fileno(c->file), STDERR_FILENO) >= 0);
}

/* Restores stderr and returns what was logged as a string the caller frees. */
static char *capture_end(struct capture *c)
{
    long size;
    char *out;

    assert_true(dup2(c->saved_stderr, STDERR_FILENO) >= 0);
    close(c->saved_stderr);
    assert_int_equal(fseek(c->file, 0, SEEK_END), 0);
    size = ftell(c->file);
    assert_true(size >= 0);
    rewind(c->file);
    out = malloc((size_t)size + 1);
    assert_non_null(out);
    assert_int_equal(fread(out, 1, (size_t)size, c->file), (size_t)size);
    out[size] = '\0';
    fclose(c->file);
    return out;
}

static int64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static size_t count_char(const char *s, char c)
{
    size_t n = 0;

    for (; *s != '\0'; s++)
        n += *s == c;
    return n;
}

/* Asserts that out is one line with a well-formed ts and returns what follows the ts. */
static const char *after_ts(const char *out)
{
    char ts[TS_LEN + 1];
    int64_t ns;

    if (strncmp(out, "ts=", 3) != 0 || strlen(out) < 3 + TS_LEN)
        fail_msg("line does not start with ts=: \"%s\"", out);
    memcpy(ts, out + 3, TS_LEN);
    ts[TS_LEN] = '\0';
    if (nr_parse_time(ts, &ns, NULL, 0) != 0 || ts[TS_LEN - 1] != 'Z' || ts[19] != '.')
        fail_msg("bad ts \"%s\" in \"%s\"", ts, out);
    assert_int_equal(count_char(out, '\n'), 1);
    assert_int_equal(out[strlen(out) - 1], '\n');
    return out + 3 + TS_LEN;
}

static int reset_level(void **state)
{
    nr_log_set_level(NR_LOG_INFO);
    return 0;
}

static void test_log_default_level_is_info(void **state)
{
    assert_int_equal(nr_log_get_level(), NR_LOG_INFO);
}

static void test_log_line_format(void **state)
{
    struct capture c;
    int64_t before = now_ns();
    int64_t after;
    int64_t ts;
    char text[TS_LEN + 1];
    char *out;

    capture_start(&c);
    nr_log(NR_LOG_INFO, "store listening", "addr=%s", "127.0.0.1:8897");
    out = capture_end(&c);
    after = now_ns();

    assert_string_equal(after_ts(out), " level=info msg=\"store listening\" addr=127.0.0.1:8897\n");
    /* The ts is UTC with milliseconds, cut (not rounded) from the clock at the call. */
    memcpy(text, out + 3, TS_LEN);
    text[TS_LEN] = '\0';
    assert_int_equal(nr_parse_time(text, &ts, NULL, 0), 0);
    assert_true(ts >= before / 1000000 * 1000000);
    assert_true(ts <= after);
    free(out);
}

static void test_log_levels_and_plain_msg(void **state)
{
    struct capture c;
    char *out;
    const char *p;

    nr_log_set_level(NR_LOG_DEBUG);
    capture_start(&c);
    NR_DEBUG("tick", "n=%d", 1);
    NR_INFO("started", NULL);
    NR_WARN("slow", "took=%s", "1.5s");
    NR_ERROR("failed", "err=%s", "EPIPE");
    out = capture_end(&c);

    assert_int_equal(count_char(out, '\n'), 4);
    p = strstr(out, " level=debug msg=tick n=1\n");
    assert_non_null(p);
    p = strstr(p, " level=info msg=started\n");
    assert_non_null(p);
    p = strstr(p, " level=warn msg=slow took=1.5s\n");
    assert_non_null(p);
    p = strstr(p, " level=error msg=failed err=EPIPE\n");
    assert_non_null(p);
    free(out);
}

static void test_log_level_filter(void **state)
{
    struct capture c;
    char *out;

    nr_log_set_level(NR_LOG_WARN);
    assert_int_equal(nr_log_get_level(), NR_LOG_WARN);
    capture_start(&c);
    nr_log(NR_LOG_DEBUG, "dropped debug", NULL);
    nr_log(NR_LOG_INFO, "dropped info", NULL);
    nr_log(NR_LOG_WARN, "kept warn", NULL);
    nr_log(NR_LOG_ERROR, "kept error", NULL);
    out = capture_end(&c);
    assert_int_equal(count_char(out, '\n'), 2);
    assert_null(strstr(out, "dropped"));
    assert_non_null(strstr(out, "level=warn msg=\"kept warn\"\n"));
    assert_non_null(strstr(out, "level=error msg=\"kept error\"\n"));
    free(out);

    nr_log_set_level(NR_LOG_ERROR);
    capture_start(&c);
    nr_log(NR_LOG_WARN, "dropped", NULL);
    out = capture_end(&c);
    assert_string_equal(out, "");
    free(out);
}

static void test_log_msg_quoting(void **state)
{
    struct capture c;
    char *out;

    capture_start(&c);
    nr_log(NR_LOG_INFO, "say \"hi\"\tthen\nmore\\x=y\x01\x7f", NULL);
    nr_log(NR_LOG_INFO, "", NULL);
    nr_log(NR_LOG_INFO, NULL, NULL);
    nr_log(NR_LOG_INFO, "a=b", NULL);
    nr_log(NR_LOG_INFO, "back\\slash", NULL);
    nr_log(NR_LOG_INFO, "caf\xc3\xa9", NULL);
    out = capture_end(&c);

    /* Six events, six lines: a newline in a message is escaped, never written. */
    assert_int_equal(count_char(out, '\n'), 6);
    assert_non_null(strstr(out, " msg=\"say \\\"hi\\\"\\tthen\\nmore\\\\x=y\\u0001\\u007f\"\n"));
    assert_non_null(strstr(out, " level=info msg=\"\"\nts="));
    assert_non_null(strstr(out, " msg=\"\"\nts="));
    assert_non_null(strstr(out, " msg=\"a=b\"\n"));
    assert_non_null(strstr(out, " msg=back\\slash\n"));
    assert_non_null(strstr(out, " msg=caf\xc3\xa9\n"));
    free(out);
}

static void test_log_fields_with_quoted_value(void **state)
{
    struct capture c;
    char quoted[64];
    char *out;

    capture_start(&c);
    nr_log(NR_LOG_ERROR, "dial failed", "addr=%s err=%s", nr_log_quote(quoted, 64, "10.0.0.1:443"),
           "connection refused");
    out = capture_end(&c);
    /* The caller quotes: fields are printf output, written as they are. */
    assert_non_null(strstr(out, " msg=\"dial failed\" addr=10.0.0.1:443 err=connection refused\n"));
    free(out);

    capture_start(&c);
    nr_log(NR_LOG_ERROR, "dial failed", "err=%s",
           nr_log_quote(quoted, sizeof(quoted), "connection refused"));
    nr_log(NR_LOG_INFO, "no fields", "%s", "");
    out = capture_end(&c);
    assert_non_null(strstr(out, " msg=\"dial failed\" err=\"connection refused\"\n"));
    /* Fields that format to nothing leave no trailing space. */
    assert_non_null(strstr(out, " msg=\"no fields\"\n"));
    free(out);
}

static void test_log_truncates_huge_msg(void **state)
{
    static char msg[10000];
    struct capture c;
    char *out;
    size_t len;

    /* Needs quotes: the cut keeps the closing quote so the line still parses. */
    for (size_t i = 0; i < sizeof(msg) - 1; i++)
        msg[i] = i % 5 == 4 ? ' ' : 'w';
    msg[sizeof(msg) - 1] = '\0';
    capture_start(&c);
    nr_log(NR_LOG_INFO, msg, "dropped=%d", 1);
    out = capture_end(&c);
    len = strlen(out);
    assert_true(len <= LINE_MAX_BYTES);
    assert_true(len > LINE_MAX_BYTES - 8);
    assert_non_null(strstr(after_ts(out), " level=info msg=\"wwww wwww"));
    assert_string_equal(out + len - 5, "...\"\n");
    free(out);

    /* No quotes needed. */
    memset(msg, 'w', sizeof(msg) - 1);
    capture_start(&c);
    nr_log(NR_LOG_INFO, msg, NULL);
    out = capture_end(&c);
    len = strlen(out);
    assert_true(len <= LINE_MAX_BYTES && len > LINE_MAX_BYTES - 8);
    assert_non_null(strstr(after_ts(out), " level=info msg=wwww"));
    assert_string_equal(out + len - 7, "www...\n");
    free(out);
}

static void test_log_truncates_huge_fields(void **state)
{
    static char value[10000];
    struct capture c;
    char *out;
    size_t len;

    memset(value, 'v', sizeof(value) - 1);
    capture_start(&c);
    nr_log(NR_LOG_WARN, "big", "n=%d value=%s", 7, value);
    out = capture_end(&c);
    len = strlen(out);
    assert_int_equal(len, LINE_MAX_BYTES);
    assert_non_null(strstr(after_ts(out), " level=warn msg=big n=7 value=vvvv"));
    assert_string_equal(out + len - 7, "vvv...\n");
    free(out);
}

static void test_log_truncation_keeps_utf8_whole(void **state)
{
    static char msg[6001];
    struct capture c;
    char *out;
    const char *start;
    const char *end;

    for (size_t i = 0; i + 1 < sizeof(msg); i += 2)
        memcpy(msg + i, "\xc3\xa9", 2); /* é */
    msg[sizeof(msg) - 1] = '\0';
    /* "info" and "error" differ by a byte, so the cut falls on each half of a character. */
    for (int i = 0; i < 2; i++) {
        capture_start(&c);
        nr_log(i == 0 ? NR_LOG_INFO : NR_LOG_ERROR, msg, NULL);
        out = capture_end(&c);
        start = strstr(after_ts(out), "msg=") + 4;
        end = strstr(start, "...\n");
        assert_non_null(end);
        assert_int_equal((end - start) % 2, 0);
        free(out);
    }

    /* The same through nr_log_quote, where the buffer size picks the cut. */
    for (size_t len = 4; len < 16; len++) {
        char buf[16];
        size_t n;

        nr_log_quote(buf, len, "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9");
        n = strlen(buf);
        assert_true(n < len);
        assert_string_equal(buf + n - 3, "...");
        assert_int_equal((n - 3) % 2, 0);
    }
}

static void test_log_quote(void **state)
{
    char buf[64];

    assert_ptr_equal(nr_log_quote(buf, sizeof(buf), "plain"), buf);
    assert_string_equal(buf, "plain");
    assert_string_equal(nr_log_quote(buf, sizeof(buf), "127.0.0.1:8897"), "127.0.0.1:8897");
    assert_string_equal(nr_log_quote(buf, sizeof(buf), "back\\slash"), "back\\slash");
    assert_string_equal(nr_log_quote(buf, sizeof(buf), "two words"), "\"two words\"");
    assert_string_equal(nr_log_quote(buf, sizeof(buf), "k=v"), "\"k=v\"");
    assert_string_equal(nr_log_quote(buf, sizeof(buf), ""), "\"\"");
    assert_string_equal(nr_log_quote(buf, sizeof(buf), NULL), "\"\"");
    assert_string_equal(nr_log_quote(buf, sizeof(buf), "a\"b"), "\"a\\\"b\"");
    assert_string_equal(nr_log_quote(buf, sizeof(buf), "a\\b c"), "\"a\\\\b c\"");
    assert_string_equal(nr_log_quote(buf, sizeof(buf), "a\nb\tc\rd"), "\"a\\nb\\tc\\rd\"");
    assert_string_equal(nr_log_quote(buf, sizeof(buf), "\x1b[0m"), "\"\\u001b[0m\"");

    /* Too long: cut, marked, and still one well-formed value. */
    assert_string_equal(nr_log_quote(buf, 8, "hello world"), "\"he...\"");
    assert_string_equal(nr_log_quote(buf, 8, "helloworld"), "hell...");
    assert_string_equal(nr_log_quote(buf, 11, "hello world"), "\"hello...\"");
    assert_string_equal(nr_log_quote(buf, 14, "hello world"), "\"hello world\"");
    assert_string_equal(nr_log_quote(buf, 11, "helloworld"), "helloworld");
    /* An escape is never split. */
    assert_string_equal(nr_log_quote(buf, 10, "\"\"\"\"\"\""), "\"\\\"\\\"...\"");
    assert_string_equal(nr_log_quote(buf, 11, "\"\"\"\"\"\""), "\"\\\"\\\"...\"");
    /* No room even for the marker: empty, still NUL-terminated. */
    assert_string_equal(nr_log_quote(buf, 5, "a b c d"), "");
    assert_string_equal(nr_log_quote(buf, 1, "abc"), "");
    buf[0] = 'x';
    assert_ptr_equal(nr_log_quote(buf, 0, "abc"), buf);
    assert_int_equal(buf[0], 'x');
}

static void test_log_parse_level(void **state)
{
    enum nr_log_level level = NR_LOG_ERROR;

    assert_int_equal(nr_log_parse_level("debug", &level), 0);
    assert_int_equal(level, NR_LOG_DEBUG);
    assert_int_equal(nr_log_parse_level("info", &level), 0);
    assert_int_equal(level, NR_LOG_INFO);
    assert_int_equal(nr_log_parse_level("warn", &level), 0);
    assert_int_equal(level, NR_LOG_WARN);
    assert_int_equal(nr_log_parse_level("warning", &level), 0);
    assert_int_equal(level, NR_LOG_WARN);
    assert_int_equal(nr_log_parse_level("error", &level), 0);
    assert_int_equal(level, NR_LOG_ERROR);

    level = NR_LOG_INFO;
    assert_int_equal(nr_log_parse_level("INFO", &level), -EINVAL);
    assert_int_equal(nr_log_parse_level("", &level), -EINVAL);
    assert_int_equal(nr_log_parse_level("info ", &level), -EINVAL);
    assert_int_equal(nr_log_parse_level("verbose", &level), -EINVAL);
    assert_int_equal(nr_log_parse_level("err", &level), -EINVAL);
    assert_int_equal(nr_log_parse_level(NULL, &level), -EINVAL);
    assert_int_equal(level, NR_LOG_INFO);
}

static void test_log_keeps_errno(void **state)
{
    int saved_stderr;
    int read_only;
    int after_failed_write;
    int after_dropped;

    /* A stderr open only for reading makes write(2) fail with EBADF: the event is dropped
     * without a fuss and the caller's errno survives it. */
    read_only = open("/dev/null", O_RDONLY);
    assert_true(read_only >= 0);
    fflush(stderr);
    saved_stderr = dup(STDERR_FILENO);
    assert_true(saved_stderr >= 0);
    assert_true(dup2(read_only, STDERR_FILENO) >= 0);
    errno = ENOENT;
    nr_log(NR_LOG_ERROR, "open failed", "err=%s", "ENOENT");
    after_failed_write = errno;
    errno = EPIPE;
    nr_log(NR_LOG_DEBUG, "dropped", NULL);
    after_dropped = errno;
    assert_true(dup2(saved_stderr, STDERR_FILENO) >= 0);
    close(saved_stderr);
    close(read_only);
    assert_int_equal(after_failed_write, ENOENT);
    assert_int_equal(after_dropped, EPIPE);
}

#define THREADS          8
#define LINES_PER_THREAD 300

static void *log_from_thread(void *arg)
{
    int id = (int)(intptr_t)arg;
    char pad[1500];

    memset(pad, 'p', sizeof(pad) - 1);
    pad[sizeof(pad) - 1] = '\0';
    for (int i = 0; i < LINES_PER_THREAD; i++)
        nr_log(NR_LOG_INFO, "from thread", "t=%d i=%d pad=%s end=1", id, i, pad);
    return NULL;
}

static void test_log_threads_write_whole_lines(void **state)
{
    pthread_t threads[THREADS];
    int seen[THREADS] = {0};
    struct capture c;
    char *out;
    char *line;
    char *next;
    int lines = 0;

    capture_start(&c);
    for (int t = 0; t < THREADS; t++)
        assert_int_equal(pthread_create(&threads[t], NULL, log_from_thread, (void *)(intptr_t)t),
                         0);
    for (int t = 0; t < THREADS; t++)
        assert_int_equal(pthread_join(threads[t], NULL), 0);
    out = capture_end(&c);

    for (line = out; *line != '\0'; line = next + 1) {
        int t;
        int i;
        int used = 0;

        next = strchr(line, '\n');
        assert_non_null(next);
        *next = '\0';
        assert_int_equal(strncmp(line, "ts=", 3), 0);
        line = strstr(line, " level=info msg=\"from thread\" t=");
        assert_non_null(line);
        assert_int_equal(
            sscanf(line, " level=info msg=\"from thread\" t=%d i=%d pad=%n", &t, &i, &used), 2);
        assert_true(used > 0 && t >= 0 && t < THREADS);
        /* Each thread's lines arrive whole and in order. */
        assert_int_equal(i, seen[t]++);
        assert_int_equal(strspn(line + used, "p"), 1499);
        assert_string_equal(line + used + 1499, " end=1");
        lines++;
    }
    assert_int_equal(lines, THREADS * LINES_PER_THREAD);
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        /* First, before any test changes the level. */
        cmocka_unit_test(test_log_default_level_is_info),
        cmocka_unit_test_teardown(test_log_line_format, reset_level),
        cmocka_unit_test_teardown(test_log_levels_and_plain_msg, reset_level),
        cmocka_unit_test_teardown(test_log_level_filter, reset_level),
        cmocka_unit_test(test_log_msg_quoting),
        cmocka_unit_test(test_log_fields_with_quoted_value),
        cmocka_unit_test(test_log_truncates_huge_msg),
        cmocka_unit_test(test_log_truncates_huge_fields),
        cmocka_unit_test(test_log_truncation_keeps_utf8_whole),
        cmocka_unit_test(test_log_quote),
        cmocka_unit_test(test_log_parse_level),
        cmocka_unit_test(test_log_keeps_errno),
        cmocka_unit_test(test_log_threads_write_whole_lines),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
