/* lib/rpc server and client in one loop: the lifetimes and orderings that a service relies on —
 * closing from callbacks and timers, calls that wait for a stream slot keeping their deadline
 * and cancellation, first-come first-started, a server closed by its own handler, a channel
 * that reconnects, a message whose body is sent from the caller's buffer without a copy. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "rpc/client.h"
#include "rpc/server.h"
#include "rpc/status.h"

/* ---- a tiny service on raw bytes ---- */

static int hold_done_code = -1;
static struct rpc_server *flood_server;
static int flood_writable_seen;

static void echo_message(struct rpc_call *call, const uint8_t *msg, size_t len, void *user)
{
    rpc_call_send_raw(call, msg, len);
    rpc_call_finish(call, RPC_OK, NULL);
}

static void hold_message(struct rpc_call *call, const uint8_t *msg, size_t len, void *user)
{
    rpc_call_send_raw(call, "held", 4); /* one message, then never finish */
}

static void hold_done(struct rpc_call *call, int code, const char *message, void *user)
{
    hold_done_code = code;
}

static void flood_fill(struct rpc_call *call)
{
    static uint8_t chunk[256 << 10];

    while (rpc_call_writable(call))
        rpc_call_send_raw(call, chunk, sizeof(chunk));
}

static void flood_message(struct rpc_call *call, const uint8_t *msg, size_t len, void *user)
{
    flood_fill(call);
}

static void flood_writable(struct rpc_call *call, void *user)
{
    /* A handler that shuts its own server down from a send-side callback. */
    flood_writable_seen++;
    rpc_server_close(flood_server, NULL, NULL);
}

/* Ref: "HEAD:" copied, then REF_LEN bytes of i % 251 from a buffer of its own (referenced). */
#define REF_LEN ((300u << 10) + 7) /* more than one DATA frame */
static int ref_released;
static size_t ref_released_cap;

static void ref_release(void *ctx, uint8_t *data, size_t cap)
{
    ref_released++;
    ref_released_cap = cap;
    free(data);
}

static void ref_message(struct rpc_call *call, const uint8_t *msg, size_t len, void *user)
{
    uint8_t *body = malloc(REF_LEN + 100);
    struct iovec head = {"HEAD:", 5};
    struct rpc_wbuf *w;

    assert_non_null(body);
    for (size_t i = 0; i < REF_LEN; i++)
        body[i] = (uint8_t)(i % 251);
    w = rpc_wbuf_wrap(body, REF_LEN, REF_LEN + 100, ref_release, NULL);
    assert_non_null(w);
    assert_int_equal(rpc_call_send_ref(call, &head, 1, w), 0);
    rpc_wbuf_unref(w); /* the queue holds its own reference */
    assert_int_equal(ref_released, 0);
    rpc_call_finish(call, RPC_OK, NULL);
}

/* Count: COUNT_N messages of COUNT_LEN bytes, the k-th filled with k, as the window lets it. */
#define COUNT_N   64
#define COUNT_LEN 1000
struct count_state {
    int sent;
};
static struct count_state count_server;

static void count_fill(struct rpc_call *call)
{
    uint8_t m[COUNT_LEN];

    while (count_server.sent < COUNT_N && rpc_call_writable(call)) {
        memset(m, count_server.sent++, sizeof(m));
        rpc_call_send_raw(call, m, sizeof(m));
    }
    if (count_server.sent == COUNT_N) {
        count_server.sent++;
        rpc_call_finish(call, RPC_OK, NULL);
    }
}

static void count_message(struct rpc_call *call, const uint8_t *msg, size_t len, void *user)
{
    count_server.sent = 0;
    count_fill(call);
}

static void count_writable(struct rpc_call *call, void *user)
{
    count_fill(call);
}

static const struct rpc_call_cbs echo_cbs = {.on_message = echo_message};
static const struct rpc_call_cbs count_cbs = {.on_message = count_message,
                                              .on_writable = count_writable};
static const struct rpc_call_cbs ref_cbs = {.on_message = ref_message};
static const struct rpc_call_cbs hold_cbs = {.on_message = hold_message, .on_done = hold_done};
static const struct rpc_call_cbs flood_cbs = {.on_message = flood_message,
                                              .on_writable = flood_writable};

static int start_with(struct rpc_call *call, void *data)
{
    rpc_call_set_cbs(call, data, NULL);
    return 0;
}

static const struct rpc_method methods[] = {
    {"/t.T/Echo", RPC_SHAPE_UNARY, start_with, (void *)&echo_cbs, 0, NULL},
    {"/t.T/Hold", RPC_SHAPE_SERVER_STREAM, start_with, (void *)&hold_cbs, 0, NULL},
    {"/t.T/Flood", RPC_SHAPE_SERVER_STREAM, start_with, (void *)&flood_cbs, 0, NULL},
    {"/t.T/Ref", RPC_SHAPE_UNARY, start_with, (void *)&ref_cbs, 0, NULL},
    {"/t.T/Count", RPC_SHAPE_SERVER_STREAM, start_with, (void *)&count_cbs, 0, NULL},
};

/* ---- client side bookkeeping ---- */

struct result {
    int code;
    bool done;
    int order;
    uint64_t done_at;
    size_t messages;
    char payload[32];
    void (*on_first)(struct result *r); /* after the first response message */
    void (*on_end)(struct result *r);   /* after on_done */
};

static int done_seq;
static struct rpc_channel *channel;
static struct rpc_server *server;
static int closes;

static void on_message(struct rpc_call *call, const uint8_t *msg, size_t len, void *user)
{
    struct result *r = user;

    r->messages++;
    snprintf(r->payload, sizeof(r->payload), "%.*s", (int)len, (const char *)msg);
    if (r->on_first && r->messages == 1)
        r->on_first(r);
}

static void on_done(struct rpc_call *call, int code, const char *message, void *user)
{
    struct result *r = user;

    assert_false(r->done);
    r->done = true;
    r->code = code;
    r->order = ++done_seq;
    r->done_at = uv_now(uv_default_loop());
    if (r->on_end)
        r->on_end(r);
}

static const struct rpc_call_cbs client_cbs = {.on_message = on_message, .on_done = on_done};

static struct rpc_call *call(const char *path, int64_t timeout_ms, struct result *r,
                             const char *payload)
{
    struct rpc_call_opts opts = {.path = path, .shape = RPC_SHAPE_UNARY, .timeout_ms = timeout_ms};
    struct rpc_call *c;

    if (strcmp(path, "/t.T/Echo") != 0)
        opts.shape = RPC_SHAPE_SERVER_STREAM;
    c = rpc_channel_call(channel, &opts, &client_cbs, r);
    assert_non_null(c);
    assert_int_equal(rpc_call_send_raw(c, payload, strlen(payload)), 0);
    assert_int_equal(rpc_call_close_send(c), 0);
    return c;
}

static void closed(void *arg)
{
    closes++;
}

static void setup_pair(uint32_t max_streams, struct rpc_server **srv)
{
    struct rpc_server_config scfg;
    struct rpc_channel_config ccfg;
    char err[256], target[64];
    /* The client's streams start at a small window: a call's recv_window widens it. */

    rpc_server_config_init(&scfg);
    scfg.listen = "127.0.0.1:0";
    scfg.limits.max_concurrent_streams = max_streams;
    *srv = rpc_server_new(uv_default_loop(), &scfg, methods, sizeof(methods) / sizeof(methods[0]));
    assert_non_null(*srv);
    assert_int_equal(rpc_server_start(*srv, err, sizeof(err)), 0);
    snprintf(target, sizeof(target), "127.0.0.1:%d", rpc_server_port(*srv));
    rpc_channel_config_init(&ccfg);
    ccfg.target = target;
    ccfg.limits.stream_window = 16u << 10;
    channel = rpc_channel_new(uv_default_loop(), &ccfg, err, sizeof(err));
    assert_non_null(channel);
    closes = 0;
    done_seq = 0;
}

static void run_loop(void)
{
    uv_run(uv_default_loop(), UV_RUN_DEFAULT);
}

/* ---- 1: close a channel and a server from a timer, outside any callback of theirs ---- */

static uv_timer_t timer;

static void close_both(uv_timer_t *t)
{
    rpc_channel_close(channel, closed, NULL);
    rpc_server_close(server, closed, NULL);
    uv_close((uv_handle_t *)t, NULL);
}

static void close_soon(struct result *r)
{
    uv_timer_init(uv_default_loop(), &timer);
    uv_timer_start(&timer, close_both, 10, 0);
}

static void test_close_from_timer(void **state)
{
    struct result r = {.on_end = close_soon};

    setup_pair(100, &server);
    call("/t.T/Echo", 0, &r, "ping");
    run_loop();
    assert_true(r.done);
    assert_int_equal(r.code, RPC_OK);
    assert_string_equal(r.payload, "ping");
    assert_int_equal(closes, 2); /* each close callback exactly once */
}

/* ---- 2: calls waiting for a stream slot keep their deadline and cancellation ---- */

static struct result ra, rb, rc, rd;
static struct rpc_call *call_a, *call_c;
static uv_timer_t t_cancel_c, t_check;
static uint64_t b_made_at; /* loop time when B (200 ms deadline) was made */

/* Generous bounds for a loaded machine: B's deadline is 200 ms, so it must end no sooner, and
 * well before 2 s (the call would otherwise wait behind A forever). The waiters are checked
 * as soon as both have ended, or after CHECK_GIVE_UP_MS at the latest. */
#define B_DEADLINE_MS    200
#define B_DONE_WITHIN_MS 2000
#define CHECK_EVERY_MS   10
#define CHECK_GIVE_UP_MS 10000

static void finish_d(struct result *r)
{
    rpc_channel_close(channel, closed, NULL);
    rpc_server_close(server, closed, NULL);
}

static void after_a(struct result *r)
{
    rd.on_end = finish_d;
    call("/t.T/Echo", 0, &rd, "d"); /* the slot is free again */
}

static void cancel_c(uv_timer_t *t)
{
    rpc_call_cancel(call_c);
    uv_close((uv_handle_t *)t, NULL);
}

static void check_waiters(uv_timer_t *t)
{
    if (!(rb.done && rc.done) && uv_now(uv_default_loop()) - b_made_at < CHECK_GIVE_UP_MS)
        return; /* not yet: look again in CHECK_EVERY_MS */
    uv_timer_stop(t);
    /* B's deadline passed and C was cancelled while both waited behind A. */
    assert_true(rb.done);
    assert_int_equal(rb.code, RPC_DEADLINE_EXCEEDED);
    assert_true(rc.done);
    assert_int_equal(rc.code, RPC_CANCELLED);
    assert_false(ra.done);
    ra.on_end = after_a;
    rpc_call_cancel(call_a);
    uv_close((uv_handle_t *)t, NULL);
}

static void a_started(struct result *r)
{
    /* A holds the server's only stream: B and C must wait in the channel. B's deadline counts
     * from here (the loop time its timer starts from), not from before the connection was made. */
    b_made_at = uv_now(uv_default_loop());
    call("/t.T/Echo", B_DEADLINE_MS, &rb, "b");
    call_c = call("/t.T/Echo", 0, &rc, "c");
    uv_timer_init(uv_default_loop(), &t_cancel_c);
    uv_timer_start(&t_cancel_c, cancel_c, 100, 0);
    uv_timer_init(uv_default_loop(), &t_check);
    uv_timer_start(&t_check, check_waiters, CHECK_EVERY_MS, CHECK_EVERY_MS);
}

static void test_waiting_calls_keep_deadline_and_cancel(void **state)
{
    memset(&ra, 0, sizeof(ra));
    memset(&rb, 0, sizeof(rb));
    memset(&rc, 0, sizeof(rc));
    memset(&rd, 0, sizeof(rd));
    hold_done_code = -1;
    b_made_at = 0;
    setup_pair(1, &server);
    ra.on_first = a_started;
    call_a = call("/t.T/Hold", 0, &ra, "a");
    run_loop();
    assert_int_equal(ra.code, RPC_CANCELLED);
    assert_int_equal(hold_done_code, RPC_CANCELLED); /* the server's handler saw it */
    assert_true(b_made_at > 0);
    assert_true(rb.done_at >= b_made_at);
    assert_in_range(rb.done_at - b_made_at, B_DEADLINE_MS, B_DONE_WITHIN_MS - 1);
    assert_true(rd.done);
    assert_int_equal(rd.code, RPC_OK);
    assert_string_equal(rd.payload, "d");
    assert_int_equal(closes, 2);
}

/* ---- 3: calls start in the order they were made ---- */

static struct result rq[4];

static void close_after_last(struct result *r)
{
    if (r == &rq[3]) {
        rpc_channel_close(channel, closed, NULL);
        rpc_server_close(server, closed, NULL);
    }
}

static void test_calls_start_first_come_first_started(void **state)
{
    memset(rq, 0, sizeof(rq));
    setup_pair(1, &server);
    for (int i = 0; i < 4; i++) {
        rq[i].on_end = close_after_last;
        call("/t.T/Echo", 0, &rq[i], "q");
    }
    run_loop();
    for (int i = 0; i < 4; i++) {
        assert_int_equal(rq[i].code, RPC_OK);
        assert_int_equal(rq[i].order, i + 1);
    }
}

/* ---- 4: a handler closes its own server from on_writable ---- */

static void flood_client_message(struct rpc_call *c, const uint8_t *msg, size_t len, void *user)
{
    rpc_call_pause_recv(c); /* hold the window so the server's queue backs up */
}

static void flood_client_done(struct rpc_call *c, int code, const char *message, void *user)
{
    struct result *r = user;

    r->done = true;
    r->code = code;
    rpc_channel_close(channel, closed, NULL);
}

static const struct rpc_call_cbs flood_client_cbs = {.on_message = flood_client_message,
                                                     .on_done = flood_client_done};

static void test_server_closed_from_on_writable(void **state)
{
    struct result r = {0};
    struct rpc_call_opts opts = {.path = "/t.T/Flood", .shape = RPC_SHAPE_SERVER_STREAM};
    struct rpc_call *c;

    flood_writable_seen = 0;
    setup_pair(100, &flood_server);
    c = rpc_channel_call(channel, &opts, &flood_client_cbs, &r);
    assert_non_null(c);
    rpc_call_send_raw(c, "go", 2);
    rpc_call_close_send(c);
    run_loop();
    assert_int_equal(flood_writable_seen, 1);
    assert_true(r.done);
    assert_true(r.code == RPC_UNAVAILABLE || r.code == RPC_CANCELLED);
    assert_int_equal(closes, 1);
}

/* ---- 5: the channel reconnects after its server went away and came back ---- */

static struct result r1, r2, r3;
static char reconnect_listen[64];
static uv_timer_t t_step;

static void step_third(uv_timer_t *t)
{
    /* The server is back and the backoff (50 ms) has passed: the same channel works again. */
    r3.on_end = finish_d;
    call("/t.T/Echo", 2000, &r3, "three");
    uv_close((uv_handle_t *)t, NULL);
}

static void after_second(struct result *r)
{
    struct rpc_server_config cfg;
    char err[256];

    rpc_server_config_init(&cfg);
    cfg.listen = reconnect_listen;
    server = rpc_server_new(uv_default_loop(), &cfg, methods, sizeof(methods) / sizeof(methods[0]));
    assert_non_null(server);
    assert_int_equal(rpc_server_start(server, err, sizeof(err)), 0);
    uv_timer_init(uv_default_loop(), &t_step);
    uv_timer_start(&t_step, step_third, 100, 0);
}

static void server_gone(void *arg)
{
    /* The connection is gone with its server: the next call finds nobody listening. */
    r2.on_end = after_second;
    call("/t.T/Echo", 2000, &r2, "two");
}

static void after_first(struct result *r)
{
    rpc_server_close(server, server_gone, NULL);
}

static void test_channel_reconnects(void **state)
{
    struct rpc_server_config scfg;
    struct rpc_channel_config ccfg;
    char err[256];

    memset(&r1, 0, sizeof(r1));
    memset(&r2, 0, sizeof(r2));
    memset(&r3, 0, sizeof(r3));
    rpc_server_config_init(&scfg);
    scfg.listen = "127.0.0.1:0";
    server =
        rpc_server_new(uv_default_loop(), &scfg, methods, sizeof(methods) / sizeof(methods[0]));
    assert_non_null(server);
    assert_int_equal(rpc_server_start(server, err, sizeof(err)), 0);
    snprintf(reconnect_listen, sizeof(reconnect_listen), "127.0.0.1:%d", rpc_server_port(server));
    rpc_channel_config_init(&ccfg);
    ccfg.target = reconnect_listen;
    ccfg.backoff_initial_ms = 50;
    channel = rpc_channel_new(uv_default_loop(), &ccfg, err, sizeof(err));
    assert_non_null(channel);
    closes = 0;
    r1.on_end = after_first;
    call("/t.T/Echo", 2000, &r1, "one");
    run_loop();
    assert_int_equal(r1.code, RPC_OK);
    assert_int_equal(r2.code, RPC_UNAVAILABLE);
    assert_int_equal(r3.code, RPC_OK);
    assert_string_equal(r3.payload, "three");
    assert_int_equal(closes, 2);
}

/* ---- 6: a body sent from the caller's buffer arrives whole, and goes back once; a call with a
 * receive window smaller than the message still takes it ---- */

static size_t ref_got_len;
static bool ref_got_ok;

static void ref_client_message(struct rpc_call *c, const uint8_t *msg, size_t len, void *user)
{
    ref_got_len = len;
    ref_got_ok = len == 5 + REF_LEN && memcmp(msg, "HEAD:", 5) == 0;
    for (size_t i = 0; ref_got_ok && i < REF_LEN; i++)
        ref_got_ok = msg[5 + i] == (uint8_t)(i % 251);
}

static void ref_client_done(struct rpc_call *c, int code, const char *message, void *user)
{
    struct result *r = user;

    r->done = true;
    r->code = code;
    rpc_channel_close(channel, closed, NULL);
    rpc_server_close(server, closed, NULL);
}

static void test_send_ref_without_copy(void **state)
{
    static const struct rpc_call_cbs cbs = {.on_message = ref_client_message,
                                            .on_done = ref_client_done};
    /* The client's window of its own (recv_window) is far smaller than the message: its bytes
     * are given back as they come, so it arrives all the same. */
    struct rpc_call_opts opts = {.path = "/t.T/Ref",
                                 .shape = RPC_SHAPE_UNARY,
                                 .timeout_ms = 10000,
                                 .recv_window = 16u << 10};
    struct result r = {0};
    struct rpc_call *c;

    setup_pair(100, &server);
    c = rpc_channel_call(channel, &opts, &cbs, &r);
    assert_non_null(c);
    assert_int_equal(rpc_call_send_raw(c, "go", 2), 0);
    assert_int_equal(rpc_call_close_send(c), 0);
    run_loop();
    assert_true(r.done);
    assert_int_equal(r.code, RPC_OK);
    assert_int_equal(ref_got_len, 5 + REF_LEN);
    assert_true(ref_got_ok);
    assert_int_equal(ref_released, 1); /* once written, given back exactly once */
    assert_int_equal(ref_released_cap, REF_LEN + 100);
}

/* ---- 7: a handler that takes one message at a time ---- */

static struct {
    struct rpc_call *call;
    int got;          /* messages delivered */
    bool in_order;    /* the k-th filled with k */
    int first_burst;  /* taken at once in the first timer turn */
    int second_burst; /* taken at once after the peer had time to send again */
    bool done;
    bool flowing; /* the rest taken as it comes, no pause */
    int code;
    uv_timer_t timer;
} one;

static void one_message(struct rpc_call *c, const uint8_t *msg, size_t len, void *user)
{
    if (len != COUNT_LEN || msg[0] != (uint8_t)one.got || msg[len - 1] != (uint8_t)one.got)
        one.in_order = false;
    one.got++;
    if (!one.flowing)
        rpc_call_pause_recv(c); /* one at a time, as the hub's merge takes them */
}

static void one_done(struct rpc_call *c, int code, const char *message, void *user)
{
    one.done = true;
    one.code = code;
    one.call = NULL;
    uv_close((uv_handle_t *)&one.timer, NULL);
    rpc_channel_close(channel, closed, NULL);
    rpc_server_close(server, closed, NULL);
}

/* Takes every message that has arrived, each delivered before resume_recv_now returns. */
static int take_held(void)
{
    int n = 0;

    while (one.call && !one.done) {
        int before = one.got;
        rpc_call_resume_recv_now(one.call);
        if (one.got == before)
            break; /* nothing held: the rest is still on its way */
        assert_int_equal(one.got, before + 1);
        n++;
        if (one.call && !one.done)
            rpc_call_pause_recv(one.call);
    }
    return n;
}

static void one_tick(uv_timer_t *t)
{
    if (one.first_burst == 0) {
        /* The window (16 KiB) is full: take half of it, and give the peer time to send. */
        for (int i = 0; i < 8; i++) {
            int before = one.got;
            rpc_call_resume_recv_now(one.call);
            assert_int_equal(one.got, before + 1);
        }
        one.first_burst = 8;
        return;
    }
    if (one.second_burst == 0) {
        /* What was taken while paused went back to the window at once, so the peer sent
         * ahead: more is held now than the first window's other half. */
        one.second_burst = take_held();
        return;
    }
    take_held();
    one.flowing = true;
    if (one.call)
        rpc_call_resume_recv(one.call); /* the rest as it comes */
    uv_timer_stop(t);
}

static void test_one_message_at_a_time(void **state)
{
    static const struct rpc_call_cbs cbs = {.on_message = one_message, .on_done = one_done};
    struct rpc_call_opts opts = {.path = "/t.T/Count",
                                 .shape = RPC_SHAPE_SERVER_STREAM,
                                 .timeout_ms = 10000,
                                 .recv_window = 16u << 10};

    memset(&one, 0, sizeof(one));
    one.in_order = true;
    setup_pair(100, &server);
    one.call = rpc_channel_call(channel, &opts, &cbs, NULL);
    assert_non_null(one.call);
    assert_int_equal(rpc_call_send_raw(one.call, "go", 2), 0);
    assert_int_equal(rpc_call_close_send(one.call), 0);
    uv_timer_init(uv_default_loop(), &one.timer);
    uv_timer_start(&one.timer, one_tick, 200, 200);
    run_loop();
    assert_true(one.done);
    assert_int_equal(one.code, RPC_OK);
    assert_int_equal(one.got, COUNT_N);
    assert_true(one.in_order);
    assert_int_equal(one.first_burst, 8);
    assert_true(one.second_burst > 10);
}

/* ---- 8: channels take turns to dial ---- */

static struct result gate_a, gate_b;
static uv_tcp_t mute; /* accepts, never says a word */
static uv_tcp_t mute_peer;

static void mute_accept(uv_stream_t *srv, int status)
{
    uv_tcp_init(uv_default_loop(), &mute_peer);
    assert_int_equal(uv_accept(srv, (uv_stream_t *)&mute_peer), 0); /* left alone till the end */
}

static void gate_end(struct result *r)
{
    if (gate_a.done && gate_b.done) {
        rpc_channel_close(channel, closed, NULL);
        rpc_server_close(server, closed, NULL);
        uv_close((uv_handle_t *)&mute, NULL);
    }
}

static void test_channels_take_turns_to_dial(void **state)
{
    struct rpc_channel_config ccfg;
    struct rpc_channel *quiet;
    struct sockaddr_in sa;
    int len = sizeof(sa);
    char err[256], target[64];
    uint64_t t0;

    memset(&gate_a, 0, sizeof(gate_a));
    memset(&gate_b, 0, sizeof(gate_b));
    setup_pair(100, &server);
    uv_tcp_init(uv_default_loop(), &mute);
    uv_ip4_addr("127.0.0.1", 0, &sa);
    assert_int_equal(uv_tcp_bind(&mute, (struct sockaddr *)&sa, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&mute, 8, mute_accept), 0);
    uv_tcp_getsockname(&mute, (struct sockaddr *)&sa, &len);
    snprintf(target, sizeof(target), "127.0.0.1:%d", ntohs(sa.sin_port));
    rpc_channel_config_init(&ccfg);
    ccfg.target = target;
    quiet = rpc_channel_new(uv_default_loop(), &ccfg, err, sizeof(err));
    assert_non_null(quiet);

    /* One slot: the quiet server's dial holds it until its only call's deadline (300 ms); the
     * other channel's call waits for it, then goes through. */
    rpc_client_set_max_dialing(1);
    t0 = uv_now(uv_default_loop());
    struct rpc_channel *keep = channel;
    channel = quiet;
    gate_a.on_end = gate_end;
    call("/t.T/Echo", 300, &gate_a, "a");
    channel = keep;
    gate_b.on_end = gate_end;
    call("/t.T/Echo", 5000, &gate_b, "b");
    run_loop();
    rpc_client_set_max_dialing(0);
    assert_int_equal(gate_a.code, RPC_DEADLINE_EXCEEDED);
    assert_int_equal(gate_b.code, RPC_OK);
    assert_true(gate_b.done_at - t0 >= 300); /* it waited its turn */
    assert_true(gate_b.done_at >= gate_a.done_at);
    rpc_channel_close(quiet, NULL, NULL);
    uv_close((uv_handle_t *)&mute_peer, NULL);
    run_loop();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_close_from_timer),
        cmocka_unit_test(test_waiting_calls_keep_deadline_and_cancel),
        cmocka_unit_test(test_calls_start_first_come_first_started),
        cmocka_unit_test(test_server_closed_from_on_writable),
        cmocka_unit_test(test_channel_reconnects),
        cmocka_unit_test(test_send_ref_without_copy),
        cmocka_unit_test(test_one_message_at_a_time),
        cmocka_unit_test(test_channels_take_turns_to_dial),
    };
    int rv = cmocka_run_group_tests(tests, NULL, NULL);

    uv_loop_close(uv_default_loop());
    return rv;
}
