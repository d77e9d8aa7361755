/*
 * rd_test_session.h - a real session on one end of a socketpair, for unit
 * tests of what happens between a request and its reply.
 *
 * The cycle is loaded from a small configuration file; then its phases
 * are cut down to the resp decoder, a route handler of the test's (it
 * keeps every request, returns RD_AGAIN, and the test answers them with
 * rd_request_reply_append() and rd_request_done(), as an upstream would)
 * and an audit handler that notes the order in which requests leave. The
 * test writes RESP to ts.client and reads the replies from it. No
 * network is involved, and nothing waits: ts_pump() runs a few loop
 * iterations that never sleep (the session's own timers never come due).
 *
 * One session per test (the harness is a set of statics, as the phase
 * handlers take no user data); Check forks each test.
 */
#ifndef RD_TEST_SESSION_H
#define RD_TEST_SESSION_H

#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "rd_cycle.h"
#include "rd_log.h"
#include "rd_module.h"
#include "rd_session.h"
#include "rd_worker.h"

#define TS_MAX_REQUESTS  64

typedef struct {
    rd_cycle_t    *cycle;
    rd_worker_t    w;
    rd_session_t  *s;
    int            client;                  /* the test's end */
    rd_request_t  *req[TS_MAX_REQUESTS];    /* routed, in arrival order */
    size_t         nreq;
    char           left[TS_MAX_REQUESTS][32]; /* argv[1] of each request,
                                               in the order they left */
    size_t         nleft;
    const char    *close_reason;            /* of s, once it was freed */
    rd_timer_t     tick;
} ts_t;

static ts_t ts;

static inline int
ts_route(rd_session_t *s, rd_request_t *r)
{
    ck_assert_uint_lt(ts.nreq, TS_MAX_REQUESTS);
    ts.req[ts.nreq++] = r;
    return RD_AGAIN;
}

static inline int
ts_audit(rd_session_t *s, rd_request_t *r)
{
    ck_assert_uint_lt(ts.nleft, TS_MAX_REQUESTS);
    size_t n = r->argc > 1 ? r->argv[1].len : 0;
    n = n < sizeof(ts.left[0]) - 1 ? n : sizeof(ts.left[0]) - 1;
    if (n > 0) {
        memcpy(ts.left[ts.nleft], r->argv[1].data, n);
    }
    ts.left[ts.nleft++][n] = '\0';
    return RD_OK;
}

static inline void
ts_tick(rd_timer_t *t)
{
}

/* Free the closed sessions, as the worker does after each iteration
 * (ts.s becomes NULL). */
static inline void
ts_reap(void)
{
    while (ts.w.dead) {
        rd_session_t *s = ts.w.dead;
        ts.w.dead = s->next_active;
        if (s == ts.s) {
            ts.close_reason = s->close_reason;
            ts.s = NULL;
        }
        rd_session_free(s);
    }
}

/* The session was closed (its connection, and at the next iteration the
 * session itself, are gone). */
static inline int
ts_closed(void)
{
    return ts.s == NULL || ts.s->conn->closed;
}

/* A few loop iterations, none of which sleeps: reads what the client
 * wrote, runs the phases, writes what is due. */
static inline void
ts_pump(void)
{
    for (int i = 0; i < 4; i++) {
        rd_timer_add(&ts.w.loop.timers, &ts.tick, rd_msec_now(), 0);
        rd_loop_once(&ts.w.loop);
        ts_reap();
    }
}

/*
 * The cycle is loaded once per test case, in Check's parent process
 * (tcase_add_unchecked_fixture(tc, ts_load, ts_unload)): the forked tests
 * inherit it, and its file and directory are removed even when a test
 * fails. A session is made for each test (ts_setup, ts_teardown).
 */
static char        ts_dir[64];
static rd_cycle_t *ts_cycle;
static int64_t     ts_output_limit;     /* as configured */

static inline void
ts_conf_path(char *buf, size_t cap)
{
    snprintf(buf, cap, "%s/redoubt.conf", ts_dir);
}

static inline void
ts_load(void)
{
    char path[128], *err = NULL;

    snprintf(ts_dir, sizeof(ts_dir), "/tmp/rd_test_session.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(ts_dir));
    ts_conf_path(path, sizeof(path));
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f, "listen = ( { address = \"127.0.0.1:1\"; database = \"db\"; "
            "} );\ndatabases = ( { name = \"db\"; "
            "uri = \"redis://127.0.0.1:2\"; } );\n");
    fclose(f);

    rd_modules_init();
    rd_log_level = RD_LOG_ERROR;
    ts_cycle = rd_cycle_load(path, &err);
    ck_assert_msg(ts_cycle != NULL, "configuration: %s", err);
    ts_output_limit = rd_core_conf(ts_cycle)->client_output_limit;

    /* Only the decoder stays; the test routes and watches. */
    for (unsigned ph = 0; ph < RD_PHASE_MAX; ph++) {
        if (ph != RD_PHASE_DECODE) {
            ts_cycle->nphases[ph] = 0;
        }
    }
    rd_phase_add(ts_cycle, RD_PHASE_ROUTE, ts_route);
    rd_phase_add(ts_cycle, RD_PHASE_AUDIT, ts_audit);
}

static inline void
ts_unload(void)
{
    char path[128];

    if (ts_cycle) {
        rd_cycle_destroy(ts_cycle);
        ts_cycle = NULL;
    }
    ts_conf_path(path, sizeof(path));
    unlink(path);
    ck_assert_int_eq(rmdir(ts_dir), 0);
}

static inline void
ts_setup(void)
{
    memset(&ts, 0, sizeof(ts));
    ts.client = -1;
    ts.tick.handler = ts_tick;
    ts.cycle = ts_cycle;
    ck_assert_ptr_nonnull(ts.cycle);
    /* (With CK_FORK=no the tests share the cycle.) */
    rd_core_conf(ts.cycle)->client_output_limit = ts_output_limit;

    ts.w.cycle = ts.cycle;
    ck_assert_int_eq(rd_loop_init(&ts.w.loop), 0);

    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK
                                | SOCK_CLOEXEC, 0, sv), 0);
    ts.client = sv[1];
    struct sockaddr_in peer = { .sin_family = AF_INET,
                                .sin_port = htons(40000) };
    peer.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ts.s = rd_session_create(&ts.w, &ts.cycle->listeners[0], sv[0],
                             (const struct sockaddr *)&peer);
    ck_assert_ptr_nonnull(ts.s);
    ck_assert_int_eq(ts.s->state, RD_SESSION_ACTIVE);
}

static inline void
ts_teardown(void)
{
    if (ts.s && !ts.s->conn->closed) {
        rd_session_close(ts.s, "test done");
    }
    ts_reap();
    rd_worker_free_requests(&ts.w);
    rd_timer_del(&ts.w.loop.timers, &ts.tick);
    rd_loop_free(&ts.w.loop);
    if (ts.client >= 0) {
        close(ts.client);
    }
}

/* The client sends bytes; the session reads and decodes them. */
static inline void
ts_send(const char *p)
{
    size_t n = strlen(p);
    ck_assert_int_eq(write(ts.client, p, n), (ssize_t)n);
    ts_pump();
}

/* What the client can read now (NUL-terminated); -1: the session closed
 * the connection and nothing was left to read. */
static inline ssize_t
ts_recv(char *buf, size_t cap)
{
    size_t got = 0;
    ts_pump();
    for (;;) {
        ssize_t n = read(ts.client, buf + got, cap - 1 - got);
        if (n > 0) {
            got += (size_t)n;
            ck_assert_uint_lt(got, cap - 1);
            continue;
        }
        if (n == 0 && got == 0) {
            buf[0] = '\0';
            return -1;
        }
        ck_assert(n == 0 || errno == EAGAIN);
        break;
    }
    buf[got] = '\0';
    return (ssize_t)got;
}

/* The client reads exactly want, and nothing more is waiting. */
#define ts_expect(want)                                                   \
    do {                                                                  \
        char ts_buf_[65536];                                              \
        ssize_t ts_n_ = ts_recv(ts_buf_, sizeof(ts_buf_));                \
        ck_assert_msg(ts_n_ >= 0, "connection closed, expected \"%s\"",   \
                      (want));                                            \
        ck_assert_str_eq(ts_buf_, (want));                                \
    } while (0)

/* A RESP command from words separated by single spaces. */
static inline void
ts_command(const char *words)
{
    char buf[4096], copy[1024];
    const char *w[32];
    size_t n = 0, k = 0;

    snprintf(copy, sizeof(copy), "%s", words);
    for (char *p = strtok(copy, " "); p && n < 32; p = strtok(NULL, " ")) {
        w[n++] = p;
    }
    k += (size_t)snprintf(buf + k, sizeof(buf) - k, "*%zu\r\n", n);
    for (size_t i = 0; i < n; i++) {
        k += (size_t)snprintf(buf + k, sizeof(buf) - k, "$%zu\r\n%s\r\n",
                              strlen(w[i]), w[i]);
    }
    ck_assert_uint_lt(k, sizeof(buf));
    ts_send(buf);
}

/* Answer request i (in arrival order) with the whole reply p. */
static inline void
ts_answer(size_t i, const char *p)
{
    ck_assert_uint_lt(i, ts.nreq);
    rd_request_reply_append(ts.req[i], p, strlen(p));
    rd_request_done(ts.req[i]);
}

#endif
