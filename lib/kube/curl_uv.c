/* libcurl ↔ libuv: curl says which sockets to watch and when to wake it (its socket and timer
 * functions); libuv says when a socket is ready or the time has come, and curl is told with
 * curl_multi_socket_action; after each, a finished transfer goes to the owner's done. */
#include "kube/curl_uv.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

struct curl_uv_sock {
    uv_poll_t poll;
    curl_socket_t fd;
    struct kube_curl_uv *cu;
    struct curl_uv_sock *next;
};

struct kube_curl_uv {
    uv_loop_t *loop;
    CURLM *multi;
    CURL *easy;       /* the running transfer, or NULL */
    uv_timer_t timer; /* curl's timeout; after close, the teardown */
    struct curl_uv_sock *socks;
    kube_curl_uv_done_fn done;
    void *arg;
    bool closing;
    int open_handles;
    void (*close_cb)(void *arg);
    void *close_arg;
};

static void check_done(struct kube_curl_uv *cu)
{
    CURLMsg *m;
    int left;

    while (!cu->closing && (m = curl_multi_info_read(cu->multi, &left)) != NULL) {
        if (m->msg == CURLMSG_DONE && m->easy_handle == cu->easy) {
            CURL *easy = cu->easy;
            CURLcode result = m->data.result; /* m goes with the handle */

            cu->easy = NULL;
            curl_multi_remove_handle(cu->multi, easy);
            cu->done(easy, result, cu->arg);
        }
    }
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    struct curl_uv_sock *s = h->data;
    struct kube_curl_uv *cu = s->cu;
    int flags = 0, running = 0;

    if (status < 0)
        flags = CURL_CSELECT_ERR;
    if (events & UV_READABLE)
        flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE)
        flags |= CURL_CSELECT_OUT;
    curl_multi_socket_action(cu->multi, s->fd, flags, &running);
    check_done(cu);
}

static void on_timer_fire(uv_timer_t *t)
{
    struct kube_curl_uv *cu = t->data;
    int running = 0;

    curl_multi_socket_action(cu->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(cu);
}

/* After close the timer carries the teardown: curl may not move it. */
static int on_curl_timer(CURLM *multi, long timeout_ms, void *arg)
{
    struct kube_curl_uv *cu = arg;

    if (cu->closing)
        return 0;
    if (timeout_ms < 0)
        uv_timer_stop(&cu->timer);
    else
        uv_timer_start(&cu->timer, on_timer_fire, (uint64_t)timeout_ms, 0);
    return 0;
}

static void handle_closed(uv_handle_t *h)
{
    struct kube_curl_uv *cu;

    if (h->type == UV_POLL) {
        struct curl_uv_sock *s = h->data;

        cu = s->cu;
        free(s);
    } else {
        cu = h->data;
    }
    if (--cu->open_handles > 0)
        return;
    if (cu->close_cb != NULL)
        cu->close_cb(cu->close_arg);
    free(cu);
}

static void sock_close(struct curl_uv_sock *s)
{
    struct kube_curl_uv *cu = s->cu;

    for (struct curl_uv_sock **p = &cu->socks; *p != NULL; p = &(*p)->next) {
        if (*p == s) {
            *p = s->next;
            break;
        }
    }
    uv_poll_stop(&s->poll);
    uv_close((uv_handle_t *)&s->poll, handle_closed);
}

static int on_socket(CURL *e, curl_socket_t fd, int what, void *arg, void *sockp)
{
    struct kube_curl_uv *cu = arg;
    struct curl_uv_sock *s = sockp;
    int events = 0;

    if (what == CURL_POLL_REMOVE) {
        if (s != NULL) {
            curl_multi_assign(cu->multi, fd, NULL);
            sock_close(s);
        }
        return 0;
    }
    if (s == NULL) {
        s = calloc(1, sizeof(*s));
        if (s == NULL)
            return -1;
        if (uv_poll_init_socket(cu->loop, &s->poll, fd) != 0) {
            free(s);
            return -1;
        }
        s->poll.data = s;
        s->fd = fd;
        s->cu = cu;
        s->next = cu->socks;
        cu->socks = s;
        cu->open_handles++;
        curl_multi_assign(cu->multi, fd, s);
    }
    if (what & CURL_POLL_IN)
        events |= UV_READABLE;
    if (what & CURL_POLL_OUT)
        events |= UV_WRITABLE;
    uv_poll_start(&s->poll, events, on_poll);
    return 0;
}

static bool curl_ready;

struct kube_curl_uv *kube_curl_uv_new(uv_loop_t *loop, kube_curl_uv_done_fn done, void *arg,
                                      char *err, size_t errlen)
{
    struct kube_curl_uv *cu = NULL;

    if (!curl_ready) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
            snprintf(err, errlen, "curl_global_init failed");
            return NULL;
        }
        curl_ready = true;
    }
    cu = calloc(1, sizeof(*cu));
    if (cu == NULL)
        goto nomem;
    cu->loop = loop;
    cu->done = done;
    cu->arg = arg;
    cu->multi = curl_multi_init();
    if (cu->multi == NULL)
        goto nomem;
    curl_multi_setopt(cu->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(cu->multi, CURLMOPT_SOCKETDATA, cu);
    curl_multi_setopt(cu->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
    curl_multi_setopt(cu->multi, CURLMOPT_TIMERDATA, cu);
    uv_timer_init(loop, &cu->timer);
    cu->timer.data = cu;
    cu->open_handles = 1;
    return cu;
nomem:
    snprintf(err, errlen, "out of memory");
    free(cu);
    return NULL;
}

int kube_curl_uv_start(struct kube_curl_uv *cu, CURL *easy)
{
    CURLMcode mc;

    if (cu->closing)
        return -EINVAL;
    if (cu->easy != NULL)
        return -EBUSY;
    mc = curl_multi_add_handle(cu->multi, easy);
    if (mc != CURLM_OK)
        return mc == CURLM_OUT_OF_MEMORY ? -ENOMEM : -EINVAL;
    cu->easy = easy;
    return 0;
}

/* From the loop: curl forbids removing a handle or cleaning up the multi handle inside one of
 * its callbacks, and close may be called from there. */
static void teardown(uv_timer_t *t)
{
    struct kube_curl_uv *cu = t->data;

    if (cu->easy != NULL) {
        curl_multi_remove_handle(cu->multi, cu->easy);
        cu->easy = NULL;
    }
    curl_multi_cleanup(cu->multi); /* may report CURL_POLL_REMOVE for cached connections */
    cu->multi = NULL;
    while (cu->socks != NULL)
        sock_close(cu->socks);
    uv_close((uv_handle_t *)&cu->timer, handle_closed);
}

void kube_curl_uv_close(struct kube_curl_uv *cu, void (*close_cb)(void *arg), void *arg)
{
    if (cu->closing)
        return;
    cu->closing = true;
    cu->close_cb = close_cb;
    cu->close_arg = arg;
    uv_timer_start(&cu->timer, teardown, 0, 0);
}
