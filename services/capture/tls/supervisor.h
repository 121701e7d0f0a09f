/* The capture's side of the --tls helper process (helper.h), on the capture's loop: forks it,
 * keeps the link descriptors it hands over (so that the libraries it attached stay traced should
 * it die), takes its status, sends it each new set of targeted pods, and when it exits says so
 * once and reaps it. The capture never waits for the helper: its end of the socket is
 * non-blocking, and a set the socket cannot take now waits for the next tick. */
#ifndef NR_CAPTURE_TLS_SUPERVISOR_H
#define NR_CAPTURE_TLS_SUPERVISOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "capture/tls/helper.h"
#include "capture/tls/probe.h"
#include "kube/target.h"

/* Link fds the helper hands over that are kept (libraries it attached: 10 each); past it they
 * are closed, and those libraries stay traced only while the helper lives. */
#define CAPTURE_TLS_SUPERVISOR_HELD_MAX 2560

struct capture_tls_supervisor;

/* Forks the helper (capture_tls_helper_fork, which says what the child keeps and does; probe,
 * user, mode, rescan and arg are passed on) and returns its supervisor, the helper up. NULL when
 * there is no helper: out of memory, or the socketpair or the fork failed; err says why, and
 * nothing was forked (the caller goes on without one). Call before any thread exists. */
struct capture_tls_supervisor *capture_tls_supervisor_new(struct capture_tls_probe *probe,
                                                          const char *user, uint32_t mode,
                                                          capture_tls_helper_rescan_cb rescan,
                                                          void *arg, char *err, size_t errlen);

/* Watches the helper's socket on `loop` for its statuses, link fds and end; nothing when the
 * helper is down already. 0, or a negative libuv error (UV_EBADF, UV_ENOMEM, ...) when the socket
 * cannot be watched. */
int capture_tls_supervisor_start(struct capture_tls_supervisor *s, uv_loop_t *loop);

/* Sends the targeted pods' addresses (NULL, or more than CAPTURE_TLS_TARGETS_MAX of them: every
 * process, as the packet filter then records everything). When the socket cannot take it now,
 * the latest set waits for capture_tls_supervisor_tick; out of memory: one error, and the helper
 * keeps the last set. Nothing once the helper is down. The set is not kept: it may go once this
 * returns. */
void capture_tls_supervisor_target(struct capture_tls_supervisor *s,
                                   const struct kube_target_set *set);

/* Each second: sends a set that waits; reaps a helper that is down. */
void capture_tls_supervisor_tick(struct capture_tls_supervisor *s);

/* True while the helper runs: false from the moment its socket ends or fails (logged once as an
 * error: libraries and pods that appear from then on are not traced). */
bool capture_tls_supervisor_up(const struct capture_tls_supervisor *s);

/* The last status the helper sent (owned by s, valid until the next turn of the loop), or NULL
 * before its first. */
const struct capture_tls_status_msg *
capture_tls_supervisor_status(const struct capture_tls_supervisor *s);

/* Stops watching the socket; its handle is closed with the loop's others
 * (nr_prog_close_handles). */
void capture_tls_supervisor_stop(struct capture_tls_supervisor *s);

/* After the loop has closed the handle: closes the socket, kills the helper (SIGKILL: it holds
 * nothing that needs a clean exit) and reaps it, closes the link fds held. NULL: nothing. */
void capture_tls_supervisor_free(struct capture_tls_supervisor *s);

#endif
