/* Tests for services/capture/tls/libs.c: which mapped files are OpenSSL's libssl, and that a
 * /proc scan reports each library file once, however many processes map it, through
 * /proc/PID/root. The scan runs on a made-up /proc in a temporary folder. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "capture/tls/libs.h"

static void which_files_are_libssl(void **state)
{
    (void)state;
    assert_true(capture_tls_libs_is_libssl("/usr/lib/x86_64-linux-gnu/libssl.so.3"));
    assert_true(capture_tls_libs_is_libssl("/lib/libssl.so.1.1"));
    assert_true(capture_tls_libs_is_libssl("/opt/x/libssl.so"));
    assert_false(capture_tls_libs_is_libssl("/usr/lib/libssl3.so")); /* NSS */
    assert_false(capture_tls_libs_is_libssl("/usr/lib/libssl.so.3 (deleted)"));
    assert_false(capture_tls_libs_is_libssl("/usr/lib/libcrypto.so.3"));
    assert_false(capture_tls_libs_is_libssl("libssl.so.3"));
    assert_false(capture_tls_libs_is_libssl("/usr/lib/libssl.sox"));
    assert_false(capture_tls_libs_is_libssl(""));
}

static void which_files_are_openssl3_libcrypto(void **state)
{
    (void)state;
    assert_true(capture_tls_libs_is_libcrypto("/usr/lib/x86_64-linux-gnu/libcrypto.so.3"));
    assert_true(capture_tls_libs_is_libcrypto("/opt/x/libcrypto.so.3.2"));
    assert_false(capture_tls_libs_is_libcrypto("/lib/libcrypto.so.1.1")); /* no EVP_KDF_derive */
    assert_false(capture_tls_libs_is_libcrypto("/lib/libcrypto.so.30"));
    assert_false(capture_tls_libs_is_libcrypto("/lib/libcrypto.so.3 (deleted)"));
    assert_false(capture_tls_libs_is_libcrypto("/lib/libssl.so.3"));
    assert_false(capture_tls_libs_is_libcrypto("libcrypto.so.3"));
    assert_false(capture_tls_libs_is_libcrypto(""));
}

static char found[8][4200];
static int n_found;

static void on_found(void *arg, int pid, const char *path, const char *open_path)
{
    struct stat st;

    (void)arg;
    (void)pid;
    /* what the callback reads and attaches to is the regular file itself */
    assert_int_equal(strncmp(open_path, "/proc/self/fd/", 14), 0);
    assert_int_equal(stat(open_path, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    if (n_found < 8)
        snprintf(found[n_found], sizeof(found[0]), "%s", path);
    n_found++;
}

static void put(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}

static void each_file_once_through_proc_root(void **state)
{
    char dir[] = "/tmp/nr-libs-XXXXXX", p[4200], want[4200], line[6000];
    struct capture_tls_libs libs;

    (void)state;
    memset(&libs, 0, sizeof(libs));
    n_found = 0;
    assert_non_null(mkdtemp(dir));
    /* pid 10 and 11 map the same file; pid 12 a file of its own root; "self" is no pid; pid 13
     * has a FIFO where its maps name a libssl, pid 14 an absolute symlink to a file of the host */
    for (int pid = 10; pid <= 14; pid++) {
        snprintf(p, sizeof(p), "%s/%d", dir, pid);
        assert_int_equal(mkdir(p, 0700), 0);
        snprintf(p, sizeof(p), "%s/%d/root", dir, pid);
        assert_int_equal(mkdir(p, 0700), 0);
        snprintf(p, sizeof(p), "%s/%d/root/lib", dir, pid);
        assert_int_equal(mkdir(p, 0700), 0);
    }
    assert_int_equal(mkdir(strcat(strcpy(p, dir), "/self"), 0700), 0);
    snprintf(p, sizeof(p), "%s/10/root/lib/libssl.so.3", dir);
    put(p, "elf");
    snprintf(want, sizeof(want), "%s/11/root/lib/libssl.so.3", dir);
    assert_int_equal(link(p, want), 0); /* the same inode, seen through another root */
    snprintf(p, sizeof(p), "%s/12/root/lib/libssl.so.1.1", dir);
    put(p, "other elf");
    snprintf(p, sizeof(p), "%s/12/root/lib/libcrypto.so.3", dir);
    put(p, "crypto elf");
    snprintf(p, sizeof(p), "%s/12/root/lib/libcrypto.so.1.1", dir);
    put(p, "old crypto elf");
    snprintf(p, sizeof(p), "%s/10/maps", dir);
    put(p, "7f00-7f01 r--p 00000000 08:01 1 /lib/libcrypto.so.3\n"
           "7f01-7f02 r-xp 00000000 08:01 2 /lib/libssl.so.3\n"
           "7f02-7f03 r--p 00000000 08:01 2 /lib/libssl.so.3\n");
    snprintf(p, sizeof(p), "%s/11/maps", dir);
    /* a line longer than the reader's buffer first: skipped, the next one still read */
    memset(line, 'a', sizeof(line));
    memcpy(line, "7f00-7f01 r--p 0 0:0 1 /", 24);
    line[sizeof(line) - 2] = '\n';
    line[sizeof(line) - 1] = 0;
    put(p, line);
    FILE *f = fopen(p, "a");
    assert_non_null(f);
    fputs("7f01-7f02 r-xp 00000000 08:01 2 /lib/libssl.so.3\n", f);
    assert_int_equal(fclose(f), 0);
    snprintf(p, sizeof(p), "%s/12/maps", dir);
    put(p, "7f01-7f02 r-xp 00000000 08:01 2 /lib/libssl.so.1.1\n"
           "7f03-7f04 r-xp 00000000 08:01 9 /lib/libssl.so.9\n"      /* not there: skipped */
           "7f05-7f06 r-xp 00000000 08:01 7 /lib/libcrypto.so.1.1\n" /* not OpenSSL 3 */
           "7f06-7f07 r-xp 00000000 08:01 8 /lib/libcrypto.so.3\n");

    snprintf(p, sizeof(p), "%s/13/root/lib/libssl.so.3", dir);
    assert_int_equal(mkfifo(p, 0600), 0); /* opened blocking, it would hang the scan */
    snprintf(p, sizeof(p), "%s/13/maps", dir);
    put(p, "7f01-7f02 r-xp 00000000 08:01 2 /lib/libssl.so.3\n");
    snprintf(want, sizeof(want), "%s/host-libssl.so.3", dir); /* on the "host", not in 14's root */
    put(want, "host elf");
    snprintf(p, sizeof(p), "%s/14/root/lib/libssl.so.3", dir);
    assert_int_equal(symlink(want, p), 0);
    snprintf(p, sizeof(p), "%s/14/maps", dir);
    put(p, "7f01-7f02 r-xp 00000000 08:01 2 /lib/libssl.so.3\n");

    assert_int_equal(capture_tls_libs_scan(&libs, dir, on_found, NULL), 3);
    assert_int_equal(n_found, 3);
    assert_int_equal(libs.n, 3);
    snprintf(want, sizeof(want), "%s/12/root/lib/libcrypto.so.3", dir);
    assert_true(strcmp(found[0], want) == 0 || strcmp(found[1], want) == 0 ||
                strcmp(found[2], want) == 0);
    /* a second scan finds nothing new */
    assert_int_equal(capture_tls_libs_scan(&libs, dir, on_found, NULL), 0);
    assert_int_equal(n_found, 3);
    assert_int_equal(capture_tls_libs_scan(&libs, "/nonexistent-proc", on_found, NULL), -ENOENT);
    {
        char cmd[4300];
        snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
        assert_int_equal(system(cmd), 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(which_files_are_libssl),
        cmocka_unit_test(which_files_are_openssl3_libcrypto),
        cmocka_unit_test(each_file_once_through_proc_root),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
