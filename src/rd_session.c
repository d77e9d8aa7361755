/*
 * rd_session.c - sessions, requests, and the phase engine.
 *
 * Flow of one request (see rd_session.h for the ordering contract):
 *
 *   bytes from client --> s->in
 *        |  rd_session_process_input: while the pipeline has room
 *        v
 *   DECODE handlers (resp) --- incomplete ---> wait for more bytes
 *        |  complete: request queued at s->tail
 *        v
 *   FILTER > INTERCEPT > ROUTE handlers   (QUIT: from INTERCEPT on)
 *        |  RD_DONE: reply known now      RD_AGAIN: a module answers later
 *        v                                 with rd_request_reply_append()
 *   rd_request_done(r)                     and rd_request_done(r)
 *        |
 *        v
 *   rd_session_flush_replies: for each done request at the head:
 *   REPLY handlers, reply bytes to s->out, AUDIT handlers, free
 *
 * A session closed while a module is still inside a callback is only
 * marked closed; it is freed by the worker after the loop iteration, so
 * every pointer a caller holds stays valid until it has returned.
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/random.h>
#include <unistd.h>

#include "rd_cycle.h"
#include "rd_log.h"
#include "rd_net.h"
#include "rd_resp.h"
#include "rd_session.h"
#include "rd_txn.h"
#include "rd_stats.h"
#include "rd_worker.h"

#define RD_READ_CHUNK  (16 * 1024)

typedef struct rd_session_cleanup_s {
    struct rd_session_cleanup_s *next;
    rd_session_cleanup_pt        fn;           /* may be NULL */
    void                        *data;
    unsigned                     free_data:1;  /* then free(data) */
} rd_session_cleanup_t;

static void rd_session_read_handler(rd_conn_t *c);
static void rd_session_write_handler(rd_conn_t *c);
static void rd_session_process_input(rd_session_t *s);
static void rd_session_flush_replies(rd_session_t *s);
static void rd_request_run(rd_request_t *r);
static void rd_session_request_timeout(rd_timer_t *t);

/* --- plain socket I/O ----------------------------------------------------- */

static ssize_t
rd_plain_recv(rd_session_t *s, char *buf, size_t n)
{
    ssize_t r = read(s->conn->fd, buf, n);
    if (r < 0) {
        return (errno == EAGAIN || errno == EINTR) ? RD_AGAIN : RD_ERROR;
    }
    return r;
}

static ssize_t
rd_plain_send(rd_session_t *s, const char *buf, size_t n)
{
    ssize_t r = write(s->conn->fd, buf, n);
    if (r < 0) {
        return (errno == EAGAIN || errno == EINTR) ? RD_AGAIN : RD_ERROR;
    }
    return r;
}

static size_t
rd_plain_pending(rd_session_t *s)
{
    return 0;
}

static const rd_session_io_t rd_plain_io = {
    rd_plain_recv, rd_plain_send, rd_plain_pending, NULL, NULL
};

/* Between bursts a session holds no buffer of its own (s->in and s->out
 * are freed as they drain) and none in its transport. */
static void
rd_session_release_io(rd_session_t *s)
{
    if (s->io->release && rd_buf_used(&s->in) == 0
        && rd_buf_used(&s->out) == 0 && !s->conn->closed)
    {
        s->io->release(s);
    }
}

/* --- sessions --------------------------------------------------------- */

static void
rd_session_idle_handler(rd_timer_t *t)
{
    rd_session_t *s = t->data;

    /* A session waiting for Redis (BLPOP, a slow command) is not idle,
     * nor is a subscriber waiting for messages. */
    if (s->inflight > 0 || s->subscribed) {
        rd_timer_add(&s->worker->loop.timers, t, s->worker->loop.now,
                     s->idle_timeout);
        return;
    }
    rd_session_close(s, "idle timeout");
}

/* 128 random bits in hex, unique across workers, restarts and reloads:
 * the session's id in the error log and the audit log. Random bytes are
 * drawn 32 sessions at a time (a worker's own; the master makes no
 * sessions) and each is used once. */
static void
rd_session_make_sid(rd_session_t *s)
{
    static const char hex[] = "0123456789abcdef";
    static unsigned char rnd[512];
    static size_t left;

    if (left < 16) {
        if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
            /* Never expected on Linux >= 3.17; still unique. */
            uint64_t x[2] = { (uint64_t)rd_usec_now(),
                              (uint64_t)getpid() << 32 ^ s->id };
            for (size_t i = 0; i < sizeof(rnd); i += 16) {
                x[1]++;
                memcpy(rnd + i, x, 16);
            }
        }
        left = sizeof(rnd);
    }
    unsigned char *b = rnd + sizeof(rnd) - left;
    for (size_t i = 0; i < 16; i++) {
        s->sid[2 * i] = hex[b[i] >> 4];
        s->sid[2 * i + 1] = hex[b[i] & 15];
    }
    s->sid[32] = '\0';
    explicit_bzero(b, 16);
    left -= 16;
}

void
rd_session_log(rd_session_t *s, int level, const char *fmt, ...)
{
    if (level > rd_log_level) {
        return;
    }
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);

    char ctx[512];
    int k = snprintf(ctx, sizeof(ctx), "client: %s, session: %s",
                     s->addr_text, s->sid);
    if (s->database && k > 0 && (size_t)k < sizeof(ctx)) {
        k += snprintf(ctx + k, sizeof(ctx) - (size_t)k, ", database: %s",
                      s->database->name);
    }
    if (s->user && k > 0 && (size_t)k < sizeof(ctx)) {
        k += snprintf(ctx + k, sizeof(ctx) - (size_t)k, ", user: %s",
                      s->user);
    }
    if (s->started && k > 0 && (size_t)k < sizeof(ctx)) {
        snprintf(ctx + k, sizeof(ctx) - (size_t)k, ", db user: %s",
                 s->db_user);
    }
    rd_log_write(level, "%s, %s", msg, ctx);
}

rd_session_t *
rd_session_create(rd_worker_t *w, rd_listener_t *l, int fd,
                  const struct sockaddr *peer)
{
    rd_session_t *s = rd_calloc(1, sizeof(rd_session_t));
    s->worker = w;
    s->cycle = w->cycle;
    s->listener = l;
    s->io = &rd_plain_io;
    s->db_user = "default";
    s->idle_timeout = rd_core_conf(w->cycle)->idle_timeout;
    s->id = ++w->next_sid;
    rd_session_make_sid(s);
    s->start_usec = rd_usec_now();
    s->ctx = rd_calloc(rd_nmodules, sizeof(void *));
    rd_sockaddr_text(peer, s->addr_text, sizeof(s->addr_text));

    s->conn = rd_conn_new(&w->loop, fd, s);
    if (s->conn == NULL) {
        rd_log_error("cannot watch client %s: %s", s->addr_text,
                     strerror(errno));
        close(fd);
        free(s->ctx);
        free(s);
        return NULL;
    }
    rd_net_nodelay(fd);

    s->conn->read = rd_session_read_handler;
    s->conn->write = rd_session_write_handler;
    s->idle_timer.handler = rd_session_idle_handler;
    s->idle_timer.data = s;
    s->request_timer.handler = rd_session_request_timeout;
    s->request_timer.data = s;

    s->next_active = w->sessions;
    if (w->sessions) {
        w->sessions->prev_active = s;
    }
    w->sessions = s;
    w->nsessions++;

    rd_session_log(s, RD_LOG_DEBUG, "connected");
    rd_session_run_phases(s);
    return s;
}

static void
rd_session_arm_idle(rd_session_t *s)
{
    if (s->idle_timeout > 0) {
        rd_timer_add(&s->worker->loop.timers, &s->idle_timer,
                     s->worker->loop.now, s->idle_timeout);
    }
}

static void
rd_session_activate(rd_session_t *s)
{
    s->state = RD_SESSION_ACTIVE;
    rd_stats_session_start(s);
    s->started = 1;
    /* After every session phase handler of every module: a hook knows
     * the session was let in (the audit's session.start "allowed"). */
    for (unsigned i = 0; i < rd_nmodules; i++) {
        if (rd_modules[i]->session_start) {
            rd_modules[i]->session_start(s);
        }
    }
    s->conn->read = rd_session_read_handler;
    s->conn->write = rd_session_write_handler;
    rd_conn_watch(s->conn, EPOLLIN);
    rd_session_arm_idle(s);
    /* Bytes may have arrived with the handshake. */
    if (rd_buf_used(&s->in) > 0 || s->io->pending(s) > 0) {
        rd_conn_post(s->conn);
    }
}

void
rd_session_phase_done(rd_session_t *s)
{
    s->handler++;
    rd_session_run_phases(s);
}

void
rd_session_run_phases(rd_session_t *s)
{
    s->conn->read = rd_session_read_handler;
    s->conn->write = rd_session_write_handler;

    while (s->phase < RD_SESSION_PHASES) {
        rd_phase_handler_pt *h = s->cycle->phases[s->phase];
        size_t n = s->cycle->nphases[s->phase];
        int done = 0;

        while (s->handler < n) {
            int rc = h[s->handler](s, NULL);
            if (s->state == RD_SESSION_CLOSING || s->conn->closed) {
                return;
            }
            if (rc == RD_AGAIN) {
                return;
            }
            if (rc == RD_ERROR) {
                rd_session_finish(s, "refused");
                return;
            }
            s->handler++;
            if (rc == RD_DONE) {
                done = 1;
                break;
            }
        }
        s->phase = done ? RD_SESSION_PHASES : s->phase + 1;
        s->handler = 0;
    }
    rd_session_activate(s);
}

void
rd_session_cleanup_add(rd_session_t *s, rd_session_cleanup_pt fn, void *data)
{
    rd_session_cleanup_t *c = rd_alloc(sizeof(*c));
    c->fn = fn;
    c->data = data;
    c->free_data = 0;
    c->next = s->cleanups;
    s->cleanups = c;
}

/* The first rd_session_ctx_get() of a module for s. */
void *
rd_session_ctx_make(rd_session_t *s, const rd_module_t *m, size_t size,
                    rd_session_ctx_init_pt init, rd_session_cleanup_pt cleanup)
{
    void *ctx = rd_calloc(1, size);
    s->ctx[m->index] = ctx;
    rd_session_cleanup_add(s, cleanup, ctx);
    s->cleanups->free_data = 1;         /* the entry just added */
    if (init) {
        init(s, ctx);
    }
    return ctx;
}

/* --- the end of a session set by a module (rd_session_end_at) ---------- */

static void
rd_session_end_handler(rd_timer_t *t)
{
    rd_session_t *s = t->data;
    rd_session_log(s, RD_LOG_INFO, "%s, closing", s->end_reason);
    rd_session_close(s, s->end_reason);
}

void
rd_session_end_at(rd_session_t *s, rd_msec_t when, const char *reason)
{
    rd_msec_t now = s->worker->loop.now;

    if (!rd_timer_armed(&s->end_timer) || when < s->end_timer.when) {
        s->end_reason = reason;
        s->end_timer.handler = rd_session_end_handler;
        s->end_timer.data = s;
        rd_timer_add(&s->worker->loop.timers, &s->end_timer, now, when - now);
    }
}

/*
 * Request objects are recycled per worker, with their command buffer, so
 * that a pipeline of small commands does not cost two allocations each.
 */
#define RD_REQUEST_CACHE      1024
#define RD_REQUEST_KEEP_RAW   4096

static void
rd_request_free(rd_request_t *r)
{
    rd_worker_t *w = r->session->worker;

    for (unsigned i = 0; i < rd_nmodules; i++) {
        if (r->ctx[i] && rd_modules[i]->free_request_ctx) {
            rd_modules[i]->free_request_ctx(r->ctx[i]);
        }
    }

    rd_buf_free(&r->reply);
    if (r->argv != r->argv_small) {
        free(r->argv);
    }
    rd_request_unclassify(r);
    if (w->nfree_requests < RD_REQUEST_CACHE
        && r->raw.cap <= RD_REQUEST_KEEP_RAW)
    {
        r->next = w->free_requests;
        w->free_requests = r;
        w->nfree_requests++;
        return;
    }
    rd_buf_free(&r->raw);
    free(r);
}

static rd_request_t *
rd_request_new(rd_session_t *s)
{
    rd_worker_t *w = s->worker;
    rd_request_t *r = w->free_requests;
    rd_buf_t raw = { 0 };

    if (r) {
        w->free_requests = r->next;
        w->nfree_requests--;
        raw = r->raw;
        rd_buf_reset(&raw);
        memset(r, 0, sizeof(rd_request_t) + rd_nmodules * sizeof(void *));
    } else {
        r = rd_calloc(1, sizeof(rd_request_t) + rd_nmodules * sizeof(void *));
    }
    r->raw = raw;
    r->session = s;
    r->ctx = (void **)(r + 1);
    r->phase = RD_PHASE_DECODE;
    r->start_usec = w->loop.now_usec;
    r->argv = r->argv_small;
    r->keys = r->keys_small;
    r->touched = r->touched_small;
    r->nkeys = -1;
    r->ntouched = -2;
    return r;
}

void
rd_worker_free_requests(rd_worker_t *w)
{
    while (w->free_requests) {
        rd_request_t *r = w->free_requests;
        w->free_requests = r->next;
        rd_buf_free(&r->raw);
        free(r);
    }
    w->nfree_requests = 0;
}

void
rd_session_close(rd_session_t *s, const char *reason)
{
    if (s->conn->closed) {
        return;
    }
    rd_worker_t *w = s->worker;

    if (s->close_reason == NULL) {
        s->close_reason = reason;
    }
    char msgs[40] = "";
    if (s->messages > 0) {
        snprintf(msgs, sizeof(msgs), ", messages %llu",
                 (unsigned long long)s->messages);
    }
    rd_session_log(s, RD_LOG_INFO, "closed: %s (in %llu, out %llu, "
                "commands %llu%s)", s->close_reason,
                (unsigned long long)s->bytes_in,
                (unsigned long long)s->bytes_out,
                (unsigned long long)s->commands, msgs);

    s->state = RD_SESSION_CLOSING;
    rd_stats_session_end(s);
    for (unsigned i = 0; i < rd_nmodules; i++) {
        if (rd_modules[i]->session_end) {
            rd_modules[i]->session_end(s);
        }
    }
    if (s->io->shutdown && !s->lingering) {
        s->io->shutdown(s);
    }
    rd_conn_close(s->conn);
    rd_timer_del(&w->loop.timers, &s->idle_timer);
    rd_timer_del(&w->loop.timers, &s->linger_timer);
    rd_timer_del(&w->loop.timers, &s->end_timer);
    rd_timer_del(&w->loop.timers, &s->request_timer);

    /* Move from the active list to the dead list; rd_session_free runs
     * after the loop iteration. */
    if (s->prev_active) {
        s->prev_active->next_active = s->next_active;
    } else {
        w->sessions = s->next_active;
    }
    if (s->next_active) {
        s->next_active->prev_active = s->prev_active;
    }
    w->nsessions--;
    s->prev_active = NULL;
    s->next_active = w->dead;
    w->dead = s;
}

void
rd_session_free(rd_session_t *s)
{
    while (s->cleanups) {
        rd_session_cleanup_t *c = s->cleanups;
        s->cleanups = c->next;
        if (c->fn) {
            c->fn(s, c->data);
        }
        if (c->free_data) {
            free(c->data);
        }
        free(c);
    }
    while (s->head) {
        rd_request_t *r = s->head;
        s->head = r->next;
        rd_request_free(r);
    }
    if (s->decoding) {
        rd_request_free(s->decoding);
    }
    rd_buf_free(&s->in);
    rd_buf_free(&s->out);
    rd_buf_free(&s->push);
    free(s->refusal);
    free(s->ctx);
    free(s);
}

/* --- the lingering close of a draining session (rd_session_drain) ------ */

static void
rd_session_linger_timeout(rd_timer_t *t)
{
    rd_session_t *s = t->data;
    rd_session_close(s, s->close_reason ? s->close_reason : "done");
}

/* Read and drop what the client still sends, until it closes. */
static void
rd_session_linger_handler(rd_conn_t *c)
{
    rd_session_t *s = c->data;
    char buf[4096];

    for (int i = 0; i < 16; i++) {
        ssize_t n = read(c->fd, buf, sizeof(buf));
        if (n > 0) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            return;
        }
        /* The client closed its side too (or the connection failed):
         * everything written has been taken. */
        rd_session_close(s, s->close_reason ? s->close_reason : "done");
        return;
    }
}

/*
 * Every reply of a draining session has been handed to the kernel. A
 * close(2) now, with the client's unread pipeline still in the receive
 * queue, would send a reset, and a reset makes the client's system drop
 * whatever of the replies it has not read yet (and the kernel here drop
 * what it has not sent). So: close_notify, shut down for writing, and
 * read and drop the client's bytes until it closes its side, for at most
 * RD_SESSION_LINGER_MS (the worker's grace timer bounds it too). The
 * reads bypass TLS: nothing the client sends now is looked at.
 */
static void
rd_session_linger(rd_session_t *s)
{
    rd_worker_t *w = s->worker;

    s->lingering = 1;
    if (s->io->shutdown) {
        s->io->shutdown(s);
    }
    if (shutdown(s->conn->fd, SHUT_WR) != 0) {
        rd_session_close(s, s->close_reason ? s->close_reason : "done");
        return;
    }
    rd_timer_del(&w->loop.timers, &s->idle_timer);
    s->conn->read = rd_session_linger_handler;
    s->conn->write = rd_session_linger_handler;
    rd_conn_watch(s->conn, EPOLLIN);
    s->linger_timer.handler = rd_session_linger_timeout;
    s->linger_timer.data = s;
    rd_timer_add(&w->loop.timers, &s->linger_timer, w->loop.now,
                 RD_SESSION_LINGER_MS);
}

static void
rd_session_maybe_close(rd_session_t *s)
{
    if (s->state == RD_SESSION_CLOSING && s->head == NULL
        && rd_buf_used(&s->out) == 0 && !s->lingering)
    {
        if (s->draining && !s->eof) {
            rd_session_linger(s);
            return;
        }
        rd_session_close(s, s->close_reason ? s->close_reason : "done");
    }
}

void
rd_session_finish(rd_session_t *s, const char *reason)
{
    if (s->conn->closed) {
        return;
    }
    if (s->close_reason == NULL) {
        s->close_reason = reason;
    }
    s->state = RD_SESSION_CLOSING;
    rd_conn_watch(s->conn, rd_buf_used(&s->out) ? EPOLLOUT : 0);
    rd_session_maybe_close(s);
}

int
rd_session_drain(rd_session_t *s, const char *reason)
{
    if (s->conn->closed) {
        return 0;
    }
    if (s->close_reason == NULL) {
        s->close_reason = reason;
    }
    if (!s->started || (s->head == NULL && rd_buf_used(&s->out) == 0)) {
        /* Nothing read is waiting for an answer (or the session never
         * got as far as reading commands). */
        rd_session_close(s, reason);
        return 0;
    }
    if (s->draining) {
        return 1;
    }
    s->draining = 1;
    rd_session_log(s, RD_LOG_INFO, "%s: not reading any more, "
                "answering the %zu commands read", reason, s->inflight);
    /* What is in s->in and the kernel's queue was never decoded: it is
     * not a command read, and it is not answered. */
    s->state = RD_SESSION_CLOSING;
    rd_timer_del(&s->worker->loop.timers, &s->request_timer);
    rd_conn_watch(s->conn, rd_buf_used(&s->out) ? EPOLLOUT : 0);
    rd_session_maybe_close(s);
    return !s->conn->closed;
}

void
rd_session_refuse(rd_session_t *s, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);

    rd_session_log(s, RD_LOG_NOTICE, "refused: %s",
                  msg);
    if (s->refusal == NULL) {
        /* Without the "ERR " that makes it a RESP error. */
        s->refusal = rd_strdup(strncmp(msg, "ERR ", 4) == 0 ? msg + 4 : msg);
    }
    rd_resp_encode_error(&s->out, msg);
    rd_conn_want_flush(s->conn);
    rd_session_finish(s, "refused");
}

/* --- reading ---------------------------------------------------------- */

static void
rd_session_pause_reading(rd_session_t *s, int pause)
{
    if (s->read_paused == (unsigned)pause) {
        return;
    }
    s->read_paused = pause;
    uint32_t ev = pause ? 0 : EPOLLIN;
    if (rd_buf_used(&s->out) > 0) {
        ev |= EPOLLOUT;
    }
    rd_conn_watch(s->conn, ev);
    if (!pause) {
        /* Requests may already be waiting in s->in. */
        rd_conn_post(s->conn);
    }
}

/*
 * limits.request_timeout: from the read that brought the first bytes of a
 * request, the rest of it must arrive within the timeout. Armed while a
 * request is partly read (s->decoding) and redoubt is reading; armed
 * afresh when a later request is the partial one (s->commands moved on),
 * so a client pipelining without pause is never cut off.
 */
static void
rd_session_request_deadline(rd_session_t *s)
{
    int64_t t = rd_core_conf(s->cycle)->request_timeout;

    if (t <= 0 || s->state != RD_SESSION_ACTIVE || s->decoding == NULL
        || s->read_paused)
    {
        rd_timer_del(&s->worker->loop.timers, &s->request_timer);
        return;
    }
    if (!rd_timer_armed(&s->request_timer)
        || s->request_mark != s->commands)
    {
        s->request_mark = s->commands;
        rd_timer_add(&s->worker->loop.timers, &s->request_timer,
                     s->worker->loop.now, t);
    }
}

static void
rd_session_read_handler(rd_conn_t *c)
{
    rd_session_t *s = c->data;

    if ((c->revents & (EPOLLERR | EPOLLHUP)) && !(c->revents & EPOLLIN)) {
        rd_session_close(s, "connection reset by client");
        return;
    }
    if (s->state != RD_SESSION_ACTIVE) {
        return;
    }
    if (!s->read_paused && !s->eof) {
        rd_buf_reserve(&s->in, RD_READ_CHUNK);
        ssize_t n = s->io->recv(s, rd_buf_wpos(&s->in), rd_buf_room(&s->in));
        if (n > 0) {
            rd_buf_produce(&s->in, (size_t)n);
            s->bytes_in += (uint64_t)n;
            rd_stats_bytes_in((size_t)n);
            rd_session_arm_idle(s);
            /* Bytes the transport already decrypted are never reported
             * by epoll: come back for them in this loop iteration. */
            if (s->io->pending(s) > 0) {
                rd_conn_post(c);
            }
        } else if (n == 0) {
            s->eof = 1;
        } else if (n == RD_ERROR) {
            rd_session_close(s, "read error");
            return;
        }
    }

    rd_session_process_input(s);
    rd_session_request_deadline(s);
    rd_session_release_io(s);

    if (s->eof && s->state == RD_SESSION_ACTIVE && s->decoding == NULL
        && rd_buf_used(&s->in) == 0)
    {
        /* The client closed its side: answer what it sent, then close. */
        rd_session_finish(s, "client closed the connection");
    } else if (s->eof && s->state == RD_SESSION_ACTIVE && !s->read_paused) {
        rd_session_finish(s, "client closed the connection mid-request");
    }
}

static int
rd_request_decode(rd_request_t *r)
{
    rd_session_t *s = r->session;
    rd_phase_handler_pt *h = s->cycle->phases[RD_PHASE_DECODE];
    size_t n = s->cycle->nphases[RD_PHASE_DECODE];

    for (size_t i = 0; i < n; i++) {
        int rc = h[i](s, r);
        if (rc != RD_OK && rc != RD_DECLINED) {
            return rc;
        }
    }
    return RD_OK;
}

static void
rd_session_enqueue(rd_session_t *s, rd_request_t *r)
{
    if (s->tail) {
        s->tail->next = r;
    } else {
        s->head = r;
    }
    s->tail = r;
    s->inflight++;
    s->commands++;
    r->seq = s->commands;
}

/* r's whole reply is known; s->last_done is the latest such request in
 * queue order (rd_session_push goes after it). */
static void
rd_request_mark_done(rd_request_t *r)
{
    rd_session_t *s = r->session;

    r->done = 1;
    if (s->last_done == NULL || r->seq > s->last_done->seq) {
        s->last_done = r;
    }
}

/* The partial request becomes one answered with an error, as a protocol
 * error is (after the replies to earlier requests), and the session
 * closes. */
static void
rd_session_request_timeout(rd_timer_t *t)
{
    rd_session_t *s = t->data;
    rd_request_t *r = s->decoding;
    int64_t ms = rd_core_conf(s->cycle)->request_timeout;

    if (r == NULL || s->state != RD_SESSION_ACTIVE) {
        return;
    }
    rd_session_log(s, RD_LOG_INFO, "request incomplete after %lld ms "
                "(limits.request_timeout), closing",
                (long long)ms);
    s->decoding = NULL;
    s->in_handler = 1;
    rd_request_error(r, "ERR redoubt: request timed out: incomplete after "
                     "%lld ms (limits.request_timeout)", (long long)ms);
    r->close_after = 1;
    rd_session_enqueue(s, r);
    if (s->close_reason == NULL) {
        s->close_reason = "request timeout";
    }
    s->state = RD_SESSION_CLOSING;
    rd_conn_watch(s->conn, rd_buf_used(&s->out) ? EPOLLOUT : 0);
    s->in_handler = 0;
    rd_buf_reset(&s->in);
    rd_session_flush_replies(s);
}

static void
rd_session_process_input(rd_session_t *s)
{
    rd_core_conf_t *ccf = rd_core_conf(s->cycle);

    while (s->state == RD_SESSION_ACTIVE) {
        if (s->inflight >= (size_t)ccf->max_pipeline) {
            rd_session_pause_reading(s, 1);
            return;
        }
        if (rd_buf_used(&s->in) == 0) {
            break;
        }

        rd_request_t *r = s->decoding ? s->decoding : rd_request_new(s);
        s->decoding = NULL;

        /* Replies completed while the phases run are flushed below, not
         * inside them, so that r stays valid here. */
        s->in_handler = 1;
        int rc = rd_request_decode(r);
        if (rc == RD_AGAIN) {
            s->in_handler = 0;
            s->decoding = r;
            break;
        }
        if (rc == RD_OK && r->argc == 0) {
            s->in_handler = 0;
            rd_request_free(r);       /* an empty request: nothing to do */
            continue;
        }

        rd_session_enqueue(s, r);
        if (rc == RD_DONE) {
            /* The decoder answered itself (a protocol error). */
            rd_request_mark_done(r);
        } else if (rc == RD_ERROR) {
            rd_request_error(r, "ERR redoubt: internal error");
        } else if (r->conncmd.error != RD_CONN_OK
                   && (r->conncmd.kind == RD_CONN_AUTH
                       || r->conncmd.kind == RD_CONN_HELLO))
        {
            /* Redis's own error, without asking Redis: Redis 7.0 applies
             * a HELLO's options as it walks them, so a malformed HELLO
             * could change the user and still fail (rd_conncmd.h). */
            char msg[300];
            rd_conncmd_error_text(&r->conncmd, r->argv, msg, sizeof(msg));
            r->phase = RD_PHASE_REPLY;
            rd_request_error(r, "%s", msg);
        } else {
            /* No filter may refuse QUIT (rd_session.h): the core's
             * intercept answers it. */
            r->phase = r->conncmd.kind == RD_CONN_QUIT ? RD_PHASE_INTERCEPT
                                                       : RD_PHASE_FILTER;
            rd_request_run(r);
        }
        if (r->close_after && s->state == RD_SESSION_ACTIVE) {
            /* QUIT or a protocol error: nothing after it is read. */
            s->state = RD_SESSION_CLOSING;
            rd_conn_watch(s->conn, rd_buf_used(&s->out) ? EPOLLOUT : 0);
        }
        s->in_handler = 0;
        rd_session_flush_replies(s);
    }

    if (s->state == RD_SESSION_ACTIVE && s->read_paused
        && s->inflight < (size_t)ccf->max_pipeline)
    {
        rd_session_pause_reading(s, 0);
    }
    /* Release the input buffer once it has drained: an idle session
     * holds no buffer (the next read takes a fresh RD_READ_CHUNK, which
     * malloc hands out from what the last one gave back). */
    if (rd_buf_used(&s->in) == 0 && s->in.cap > 0) {
        rd_buf_free(&s->in);
    }
}

/* --- requests --------------------------------------------------------- */

void
rd_request_set_command(rd_request_t *r, size_t argc, const rd_str_t *argv)
{
    /* Size the encoding first: one allocation of the right size per
     * request ("*N\r\n", then "$len\r\n<bytes>\r\n" per argument; 20
     * digits hold any length). The arguments may point into r->raw
     * itself (a module rewriting a command), so encode into a new buffer
     * and only then let the old one go. */
    size_t need = 1 + 20 + 2;
    for (size_t i = 0; i < argc; i++) {
        need += 1 + 20 + 2 + argv[i].len + 2;
    }
    rd_buf_t raw = { 0 };
    if (rd_buf_used(&r->raw) == 0 && r->raw.cap >= need) {
        rd_buf_swap(&raw, &r->raw);      /* a recycled, empty buffer */
    }
    rd_buf_reserve(&raw, need);
    rd_resp_encode_command(&raw, argc, argv);

    rd_str_t *nv = argc <= rd_countof(r->argv_small)
                   ? r->argv_small : rd_alloc(argc * sizeof(rd_str_t));

    /* Point the arguments into the encoding: skip "*N\r\n", then for each
     * argument "$len\r\n" before its bytes and "\r\n" after. */
    const char *p = rd_buf_rpos(&raw);
    p = (const char *)memchr(p, '\n', rd_buf_used(&raw)) + 1;
    for (size_t i = 0; i < argc; i++) {
        while (*p++ != '\n') {
        }
        size_t len = argv[i].len;
        nv[i].data = p;
        nv[i].len = len;
        p += len + 2;
    }

    if (r->argv != r->argv_small && r->argv != nv) {
        free(r->argv);
    }
    r->argv = nv;
    r->argc = argc;
    rd_buf_free(&r->raw);
    r->raw = raw;
    rd_request_classify(r);
}

/* limits.pubsub_output_limit: hard at once, soft after soft_seconds
 * spent above it (checked as output is added, as Redis does). */
static void
rd_session_check_pubsub_output(rd_session_t *s, size_t held)
{
    rd_core_conf_t *ccf = rd_core_conf(s->cycle);
    rd_msec_t now = s->worker->loop.now;

    if (ccf->pubsub_hard_limit > 0 && held > (size_t)ccf->pubsub_hard_limit) {
        rd_session_log(s, RD_LOG_WARN, "subscriber output limit (hard, "
                       "%lld bytes, limits.pubsub_output_limit) exceeded: "
                       "%zu bytes held for a slow subscriber, closing",
                       (long long)ccf->pubsub_hard_limit, held);
        rd_session_close(s, "pubsub output limit exceeded");
        return;
    }
    if (ccf->pubsub_soft_limit == 0 || held <= (size_t)ccf->pubsub_soft_limit) {
        s->soft_since = 0;
        return;
    }
    if (s->soft_since == 0) {
        s->soft_since = now > 0 ? now : 1;
        return;
    }
    if (now - s->soft_since >= ccf->pubsub_soft_seconds * 1000) {
        rd_session_log(s, RD_LOG_WARN, "subscriber output limit (soft, "
                       "%lld bytes for %lld s, limits.pubsub_output_limit) "
                       "exceeded: %zu bytes held for a slow subscriber, "
                       "closing", (long long)ccf->pubsub_soft_limit,
                       (long long)ccf->pubsub_soft_seconds, held);
        rd_session_close(s, "pubsub output limit exceeded");
    }
}

static void
rd_session_check_output(rd_session_t *s)
{
    rd_core_conf_t *ccf = rd_core_conf(s->cycle);
    if (s->subscribed) {
        rd_session_check_pubsub_output(s, rd_buf_used(&s->out) + s->buffered
                                          + rd_buf_used(&s->push));
        return;
    }
    if (ccf->client_output_limit > 0
        && rd_buf_used(&s->out) + s->buffered
           > (size_t)ccf->client_output_limit)
    {
        rd_session_log(s, RD_LOG_WARN, "client output limit "
                    "(%lld bytes) exceeded, closing",
                    (long long)ccf->client_output_limit);
        rd_session_close(s, "client output limit exceeded");
    }
}

void
rd_request_reply_append(rd_request_t *r, const char *p, size_t n)
{
    rd_session_t *s = r->session;

    if (n == 0 || s->conn->closed) {
        return;
    }
    if (r->reply_type == 0) {
        r->reply_type = p[0];
    }
    /* Enough of the head to tell the reply's kind; an error's text as a
     * whole, up to the buffer (the audit's "error"). */
    size_t head = r->reply_type == '-' ? sizeof(r->reply_head) : 64;
    if (r->reply_head_len < head) {
        size_t k = head - r->reply_head_len;
        k = k < n ? k : n;
        memcpy(r->reply_head + r->reply_head_len, p, k);
        r->reply_head_len += (unsigned)k;
    }
    if (r == s->head && !r->buffer_reply) {
        rd_buf_append(&s->out, p, n);
        r->streaming = 1;
        rd_conn_want_flush(s->conn);
    } else {
        rd_buf_append(&r->reply, p, n);
        s->buffered += n;
    }
    rd_session_check_output(s);
}

void
rd_session_push(rd_session_t *s, const char *p, size_t n)
{
    if (n == 0 || s->conn->closed) {
        return;
    }
    /* After every reply already complete: one that waits behind an
     * earlier request (sent to another node) carries the push after its
     * own bytes, so a subscribe's confirmation always comes before the
     * messages of its channels. */
    rd_request_t *last = s->last_done;
    if (last) {
        rd_buf_append(&last->reply, p, n);
        s->buffered += n;
    } else if (s->head && s->head->streaming) {
        /* Never inside a reply: after its last byte. */
        rd_buf_append(&s->push, p, n);
    } else {
        rd_buf_append(&s->out, p, n);
        rd_conn_want_flush(s->conn);
    }
    rd_session_check_output(s);
}

void
rd_session_message(rd_session_t *s, const char *p, size_t n)
{
    if (n == 0 || s->conn->closed) {
        return;
    }
    s->messages++;
    rd_stats_pubsub_message(s->database);
    rd_session_push(s, p, n);
}

int
rd_request_admit_subscriptions(rd_request_t *r, size_t have, size_t adding)
{
    int64_t max = rd_core_conf(r->session->cycle)->max_subscriptions;

    if (max <= 0 || have + adding <= (size_t)max) {
        return 1;
    }
    rd_request_error(r, "ERR redoubt: too many subscriptions: at most %lld "
                     "channels and patterns per session "
                     "(limits.max_subscriptions)", (long long)max);
    return 0;
}

void
rd_session_set_subscribed(rd_session_t *s, int on)
{
    s->subscribed = on ? 1 : 0;
    if (!on) {
        s->soft_since = 0;
    }
}

int
rd_request_reply_reset(rd_request_t *r)
{
    if (r->streaming) {
        return -1;
    }
    if (rd_buf_used(&r->reply) > 0) {
        r->session->buffered -= rd_buf_used(&r->reply);
        rd_buf_reset(&r->reply);
        r->reply_type = 0;
        r->reply_head_len = 0;
    }
    return 0;
}

void
rd_request_done(rd_request_t *r)
{
    rd_session_t *s = r->session;
    if (!r->txn_seen) {
        rd_session_txn_answered(s, r);
    }
    rd_session_txn_reply(s, r);
    rd_request_mark_done(r);
    if (!s->conn->closed && !s->in_handler) {
        rd_session_flush_replies(s);
    }
}

void
rd_request_error(rd_request_t *r, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);

    rd_buf_t b = { 0 };
    rd_resp_encode_error(&b, msg);
    rd_request_reply_append(r, rd_buf_rpos(&b), rd_buf_used(&b));
    rd_buf_free(&b);
    rd_request_done(r);
}

static void
rd_request_run(rd_request_t *r)
{
    rd_session_t *s = r->session;

    for (; r->phase <= RD_PHASE_ROUTE; r->phase++, r->handler = 0) {
        rd_phase_handler_pt *h = s->cycle->phases[r->phase];
        size_t n = s->cycle->nphases[r->phase];

        if (r->phase == RD_PHASE_ROUTE && !r->txn_seen
            && rd_session_txn_route(s, r))
        {
            r->phase = RD_PHASE_REPLY;
            r->handler = 0;
            return;
        }

        for (; r->handler < n; r->handler++) {
            int rc = h[r->handler](s, r);
            switch (rc) {
            case RD_OK:
            case RD_DECLINED:
                continue;
            case RD_DONE:
                r->phase = RD_PHASE_REPLY;
                r->handler = 0;
                rd_request_mark_done(r);
                return;
            case RD_AGAIN:
                /* A module owns the request until rd_request_done(). */
                r->handler++;
                return;
            default:
                r->phase = RD_PHASE_REPLY;
                r->handler = 0;
                rd_request_error(r, "ERR redoubt: internal error");
                return;
            }
        }
    }
    r->phase = RD_PHASE_REPLY;
    r->handler = 0;
    rd_request_error(r, "ERR redoubt: no route for this command");
}

void
rd_request_continue(rd_request_t *r)
{
    rd_session_t *s = r->session;
    unsigned nested = s->in_handler;

    if (s->conn->closed || r->done) {
        return;
    }
    s->in_handler = 1;
    rd_request_run(r);
    s->in_handler = nested;
    if (!nested) {
        rd_session_flush_replies(s);
    }
}

static void
rd_session_run_tail_phases(rd_session_t *s, rd_request_t *r)
{
    for (unsigned ph = RD_PHASE_REPLY; ph <= RD_PHASE_AUDIT; ph++) {
        rd_phase_handler_pt *h = s->cycle->phases[ph];
        size_t n = s->cycle->nphases[ph];
        for (size_t i = 0; i < n; i++) {
            h[i](s, r);
        }
    }
}

static void
rd_session_flush_replies(rd_session_t *s)
{
    rd_core_conf_t *ccf = rd_core_conf(s->cycle);
    int wrote = 0;

    while (s->head && s->head->done && !s->conn->closed) {
        rd_request_t *r = s->head;

        if (rd_buf_used(&r->reply) > 0) {
            s->buffered -= rd_buf_used(&r->reply);
            if (rd_buf_used(&s->out) == 0) {
                rd_buf_swap(&s->out, &r->reply);
            } else {
                rd_buf_append(&s->out, rd_buf_rpos(&r->reply),
                              rd_buf_used(&r->reply));
            }
        }
        if (s->last_done == r) {
            s->last_done = NULL;    /* no later request is done */
        }
        rd_stats_request(s, r);
        rd_session_run_tail_phases(s, r);

        s->head = r->next;
        if (s->head == NULL) {
            s->tail = NULL;
        }
        s->inflight--;
        wrote = 1;

        if (r->close_after) {
            /* Nothing after a QUIT or a protocol error is answered. */
            while (s->head) {
                rd_request_t *q = s->head;
                s->head = q->next;
                s->buffered -= rd_buf_used(&q->reply);
                rd_request_free(q);
                s->inflight--;
            }
            s->tail = NULL;
            s->last_done = NULL;
            if (s->close_reason == NULL) {
                s->close_reason = "client quit";
            }
        }
        rd_request_free(r);

        /* Pushes that waited for the reply just ended. */
        if (rd_buf_used(&s->push) > 0) {
            rd_buf_append(&s->out, rd_buf_rpos(&s->push),
                          rd_buf_used(&s->push));
            rd_buf_free(&s->push);
        }

        /* The new head may have a partial reply buffered: it goes out now
         * and the rest of it streams. */
        rd_request_t *h = s->head;
        if (h && !h->done && rd_buf_used(&h->reply) > 0 && !h->buffer_reply) {
            s->buffered -= rd_buf_used(&h->reply);
            rd_buf_append(&s->out, rd_buf_rpos(&h->reply),
                          rd_buf_used(&h->reply));
            rd_buf_free(&h->reply);
            h->streaming = 1;
        }
    }

    if (s->conn->closed) {
        return;
    }
    if (wrote || rd_buf_used(&s->out) > 0) {
        rd_conn_want_flush(s->conn);
    }
    if (s->read_paused && s->state == RD_SESSION_ACTIVE
        && s->inflight < (size_t)ccf->max_pipeline)
    {
        rd_session_pause_reading(s, 0);
    }
    rd_session_check_output(s);
}

/* --- writing ---------------------------------------------------------- */

static void
rd_session_write_handler(rd_conn_t *c)
{
    rd_session_t *s = c->data;

    while (rd_buf_used(&s->out) > 0) {
        ssize_t n = s->io->send(s, rd_buf_rpos(&s->out), rd_buf_used(&s->out));
        if (n == RD_AGAIN) {
            rd_conn_watch(c, (s->state == RD_SESSION_ACTIVE && !s->read_paused
                              ? EPOLLIN : 0) | EPOLLOUT);
            return;
        }
        if (n <= 0) {
            rd_session_close(s, "write error");
            return;
        }
        rd_buf_consume(&s->out, (size_t)n);
        s->bytes_out += (uint64_t)n;
        rd_stats_bytes_out((size_t)n);
    }

    /* Drained: nothing is kept for an idle session. */
    rd_buf_free(&s->out);
    rd_session_release_io(s);
    if (s->state == RD_SESSION_CLOSING) {
        rd_conn_watch(c, 0);
        rd_session_maybe_close(s);
        return;
    }
    if (s->state == RD_SESSION_ACTIVE) {
        rd_conn_watch(c, s->read_paused ? 0 : EPOLLIN);
    }
}
