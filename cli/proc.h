/* Running the programs netreel drives (kubectl, helm, the local services): finding them,
 * running one to completion with its output captured, and finding files beside our own binary. */
#ifndef NR_CLI_PROC_H
#define NR_CLI_PROC_H

#include <stddef.h>
#include <sys/types.h>

/* Looks `name` up on $PATH (or takes it as it is when it holds a '/'). Returns 0 with the path
 * in `path`, or -ENOENT. */
int cli_find_program(const char *name, char *path, size_t len);

/* The folder of the running netreel binary (symbolic links resolved). 0 or a negative errno. */
int cli_exe_dir(char *dir, size_t len);

/* What a program printed; each stream is NUL-terminated and capped (1 MiB), the rest dropped. */
struct cli_output {
    char *out;
    char *err;
};

/* Runs argv (argv[0] a path or a name on $PATH) with stdin from /dev/null and waits for it.
 * With `o`, its stdout and stderr are captured there (free with cli_output_free); without, they
 * are ours. Returns the exit status (0-255), 128+N when killed by signal N, or a negative errno
 * when it could not be started. */
int cli_run(const char *const argv[], struct cli_output *o);
void cli_output_free(struct cli_output *o);

/* Starts argv with stdin from /dev/null, stdout into a pipe whose read end is *out_fd, stderr
 * ours (or into the pipe too with merge_stderr), in its own process group, and killed with
 * SIGTERM should we die first. Returns the pid or a negative errno. */
pid_t cli_spawn_piped(const char *const argv[], int *out_fd, int merge_stderr);

/* The last non-empty line of text, cut to fit buf; "" when there is none. Returns buf. */
const char *cli_last_line(const char *text, char *buf, size_t len);

#endif
