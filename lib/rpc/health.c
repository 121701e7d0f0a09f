/* The standard health service: a list of (service, status) and the Watch calls to tell of
 * changes. An unknown service is NOT_FOUND on Check and SERVICE_UNKNOWN on Watch (which stays
 * open, as grpc does, in case the service appears). */
#include "rpc/health.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "grpc/health/v1/health.pb-c.h"
#include "rpc/status.h"

struct rpc_health_entry {
    struct rpc_health_entry *next;
    int status;
    char service[];
};

struct rpc_health_watch {
    struct rpc_health_watch *next;
    struct rpc_health *health;
    struct rpc_call *call;
    char *service; /* NULL until the request arrived */
    int last_sent; /* -1: nothing sent yet */
};

static int status_of(const struct rpc_health *h, const char *service)
{
    for (const struct rpc_health_entry *e = h->entries; e; e = e->next)
        if (strcmp(e->service, service) == 0)
            return e->status;
    return GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVICE_UNKNOWN;
}

static int send_status(struct rpc_call *call, int status)
{
    Grpc__Health__V1__HealthCheckResponse resp = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;

    resp.status = (Grpc__Health__V1__HealthCheckResponse__ServingStatus)status;
    return rpc_call_send(call, &resp.base);
}

/* Unpacks the request's service name into a new string, or NULL. */
static char *request_service(const uint8_t *msg, size_t len)
{
    Grpc__Health__V1__HealthCheckRequest *req =
        grpc__health__v1__health_check_request__unpack(NULL, len, msg);
    char *service;

    if (!req)
        return NULL;
    service = strdup(req->service ? req->service : "");
    grpc__health__v1__health_check_request__free_unpacked(req, NULL);
    return service;
}

static void check_message(struct rpc_call *call, const uint8_t *msg, size_t len, void *user)
{
    struct rpc_health *h = user;
    char *service = request_service(msg, len);
    int status;

    if (!service) {
        rpc_call_finish(call, RPC_INTERNAL, "cannot parse HealthCheckRequest");
        return;
    }
    status = status_of(h, service);
    free(service);
    if (status == GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVICE_UNKNOWN) {
        rpc_call_finish(call, RPC_NOT_FOUND, "unknown service");
        return;
    }
    if (send_status(call, status) == 0)
        rpc_call_finish(call, RPC_OK, NULL);
}

static const struct rpc_call_cbs check_cbs = {.on_message = check_message};

int rpc_health_check_start(struct rpc_call *call, void *data)
{
    rpc_call_set_cbs(call, &check_cbs, data);
    return 0;
}

static void watch_message(struct rpc_call *call, const uint8_t *msg, size_t len, void *user)
{
    struct rpc_health_watch *w = user;

    w->service = request_service(msg, len);
    if (!w->service) {
        rpc_call_finish(call, RPC_INTERNAL, "cannot parse HealthCheckRequest");
        return;
    }
    w->last_sent = status_of(w->health, w->service);
    send_status(call, w->last_sent);
}

static void watch_done(struct rpc_call *call, int code, const char *message, void *user)
{
    struct rpc_health_watch *w = user, **pp;

    for (pp = &w->health->watchers; *pp; pp = &(*pp)->next) {
        if (*pp == w) {
            *pp = w->next;
            break;
        }
    }
    free(w->service);
    free(w);
}

static const struct rpc_call_cbs watch_cbs = {.on_message = watch_message, .on_done = watch_done};

int rpc_health_watch_start(struct rpc_call *call, void *data)
{
    struct rpc_health *h = data;
    struct rpc_health_watch *w = calloc(1, sizeof(*w));

    if (!w)
        return -ENOMEM;
    w->health = h;
    w->call = call;
    w->last_sent = -1;
    w->next = h->watchers;
    h->watchers = w;
    rpc_call_set_cbs(call, &watch_cbs, w);
    return 0;
}

int rpc_health_set(struct rpc_health *h, const char *service, int status)
{
    struct rpc_health_entry *e;

    for (e = h->entries; e; e = e->next)
        if (strcmp(e->service, service) == 0)
            break;
    if (!e) {
        size_t n = strlen(service);
        e = malloc(sizeof(*e) + n + 1);
        if (!e)
            return -ENOMEM;
        memcpy(e->service, service, n + 1);
        e->next = h->entries;
        h->entries = e;
    }
    e->status = status;
    for (struct rpc_health_watch *w = h->watchers; w; w = w->next) {
        if (w->service && strcmp(w->service, service) == 0 && w->last_sent != status) {
            w->last_sent = status;
            send_status(w->call, status);
        }
    }
    return 0;
}

void rpc_health_free(struct rpc_health *h)
{
    struct rpc_health_entry *e, *next;

    for (e = h->entries; e; e = next) {
        next = e->next;
        free(e);
    }
    h->entries = NULL;
}
