/* libcurl's multi_socket interface driven by a libuv loop: one uv_poll per socket curl asks to
 * watch, one uv_timer for curl's timeout, so a transfer runs on the loop and nothing blocks it
 * (docs/kube.md "Why libcurl and not lib/rpc"). It only moves bytes: what a request asks and
 * what its answer means is the caller's (lib/kube/watch.c). One transfer at a time; curl keeps
 * its connection between them.
 *
 *     struct kube_curl_uv *cu = kube_curl_uv_new(loop, done, arg, err, sizeof(err));
 *     kube_curl_uv_start(cu, easy);       // done(easy, result, arg) once it is over
 *     ...
 *     kube_curl_uv_close(cu, closed, arg); // closed(arg) once every handle is gone
 */
#ifndef NR_KUBE_CURL_UV_H
#define NR_KUBE_CURL_UV_H

#include <curl/curl.h>
#include <stddef.h>
#include <uv.h>

struct kube_curl_uv;

/* The transfer of easy is over: result is curl's (CURLE_OK also for an HTTP error status; a
 * write or header callback that returned short gives CURLE_WRITE_ERROR). easy has already been
 * taken off the multi handle: the caller may clean it up or start it again. Called from the
 * loop, never from inside a curl callback; may call kube_curl_uv_start and kube_curl_uv_close. */
typedef void (*kube_curl_uv_done_fn)(CURL *easy, CURLcode result, void *arg);

/* A multi handle on loop, with no transfer. done is required; arg is passed to it. Initializes
 * libcurl globally on first use (call it before other threads exist). Returns NULL with a
 * reason in err ("curl_global_init failed", "out of memory"). */
struct kube_curl_uv *kube_curl_uv_new(uv_loop_t *loop, kube_curl_uv_done_fn done, void *arg,
                                      char *err, size_t errlen);

/* Starts the transfer of easy, which the caller has set up and keeps owning; it must stay valid
 * until done is called for it or the close callback has run. Returns 0, -EBUSY while another
 * transfer runs, -EINVAL after kube_curl_uv_close or when curl refuses easy (it is in a multi
 * handle already), -ENOMEM. */
int kube_curl_uv_start(struct kube_curl_uv *cu, CURL *easy);

/* Stops everything: curl's timer and done are off from now on. From the loop then (never
 * inside a curl callback, which curl forbids), the running transfer, if any, is taken off the
 * multi handle, the multi handle is cleaned up (closing curl's cached connections) and every
 * handle closed; close_cb(arg) (may be NULL) runs once they are, and cu is freed then. Until
 * the loop gets there, socket events still drive curl, so the easy handle's write and header
 * callbacks may run: they should return short. The caller may clean up the easy handle of a
 * running transfer from close_cb on. Safe to call from anywhere, done and the easy handle's
 * own callbacks included; a second call does nothing. */
void kube_curl_uv_close(struct kube_curl_uv *cu, void (*close_cb)(void *arg), void *arg);

#endif
