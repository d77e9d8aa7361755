/*
 * rd_standalone.c - the standalone module: route every command of a
 * session to one standalone Redis server.
 *
 * Each session owns its upstream connection, opened on the first command
 * that needs it (each session authenticates to Redis as its own user, so
 * connections are not shared). Requests are written to Redis as they
 * arrive; Redis answers in order, so the oldest pending request owns the
 * next reply. Reply bytes are handed to the session as they are scanned,
 * which streams them to the client when the request is at the head of the
 * session's queue.
 *
 * When the connection fails, every pending request gets an error reply
 * ("-ERR redoubt: upstream ...") and the next command connects again. If
 * part of a reply had already reached the client, the client's stream
 * cannot be repaired and the session is closed instead.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rd_cycle.h"
#include "rd_log.h"
#include "rd_net.h"
#include "rd_resp_module.h"
#include "rd_session.h"
#include "rd_worker.h"

rd_module_t rd_standalone_module;

#define RD_UPSTREAM_READ_CHUNK (16 * 1024)

typedef struct {
    rd_session_t             *session;
    rd_database_t            *db;
    rd_conn_t                *conn;           /* NULL: not connected */
    unsigned                  connected:1;
    rd_buf_t                  out;
    rd_buf_t                  in;
    rd_request_t            **pending;        /* ring, oldest at head */
    size_t                    head;
    size_t                    count;
    size_t                    cap;
    rd_resp_reply_scanner_t   scan;
    rd_timer_t                connect_timer;
} rd_upstream_t;

static void rd_upstream_read_handler(rd_conn_t *c);
static void rd_upstream_write_handler(rd_conn_t *c);

static void
rd_upstream_push(rd_upstream_t *up, rd_request_t *r)
{
    if (up->count == up->cap) {
        size_t cap = up->cap ? up->cap * 2 : 16;
        rd_request_t **a = rd_alloc(cap * sizeof(*a));
        for (size_t i = 0; i < up->count; i++) {
            a[i] = up->pending[(up->head + i) % up->cap];
        }
        free(up->pending);
        up->pending = a;
        up->head = 0;
        up->cap = cap;
    }
    up->pending[(up->head + up->count) % up->cap] = r;
    up->count++;
}

static rd_request_t *
rd_upstream_pop(rd_upstream_t *up)
{
    rd_request_t *r = up->pending[up->head];
    up->head = (up->head + 1) % up->cap;
    up->count--;
    return r;
}

static void
rd_upstream_disconnect(rd_upstream_t *up)
{
    if (up->conn) {
        rd_conn_close(up->conn);
        up->conn = NULL;
    }
    up->connected = 0;
    rd_timer_del(&up->session->worker->loop.timers, &up->connect_timer);
    rd_buf_free(&up->in);
    rd_buf_free(&up->out);
    rd_resp_reply_init(&up->scan);
}

/*
 * The connection failed: answer every pending request with an error, in
 * order. The session stays usable; its next command reconnects.
 */
static void
rd_upstream_fail(rd_upstream_t *up, const char *why)
{
    rd_session_t *s = up->session;

    rd_log_warn("session %llu: database \"%s\" (%s): %s",
                (unsigned long long)s->id, up->db->name, up->db->addr.text,
                why);
    rd_upstream_disconnect(up);

    while (up->count > 0) {
        rd_request_t *r = rd_upstream_pop(up);
        if (r->streaming) {
            /* Part of this reply is already with the client. */
            rd_session_close(s, "upstream connection lost mid-reply");
            up->count = 0;
            return;
        }
        if (rd_buf_used(&r->reply) > 0) {
            s->buffered -= rd_buf_used(&r->reply);
            rd_buf_reset(&r->reply);
            r->reply_type = 0;
        }
        rd_request_error(r, "ERR redoubt: %s", why);
        if (s->conn->closed) {
            up->count = 0;
            return;
        }
    }
}

static void
rd_upstream_connect_timeout(rd_timer_t *t)
{
    rd_upstream_t *up = t->data;
    rd_upstream_fail(up, "upstream unavailable: connection timed out");
}

static int
rd_upstream_connect(rd_upstream_t *up)
{
    rd_session_t *s = up->session;
    rd_worker_t *w = s->worker;

    int fd = rd_net_connect((struct sockaddr *)&up->db->addr.addr,
                            up->db->addr.len);
    if (fd < 0) {
        return -1;
    }
    up->conn = rd_conn_new(&w->loop, fd, up);
    if (up->conn == NULL) {
        int err = errno;
        close(fd);
        errno = err;
        return -1;
    }
    up->conn->read = rd_upstream_read_handler;
    up->conn->write = rd_upstream_write_handler;
    up->connected = 0;
    rd_conn_watch(up->conn, EPOLLOUT);
    rd_timer_add(&w->loop.timers, &up->connect_timer, w->loop.now,
                 up->db->connect_timeout);
    rd_log_debug("session %llu: connecting to %s", (unsigned long long)s->id,
                 up->db->addr.text);
    return 0;
}

static void
rd_upstream_write_handler(rd_conn_t *c)
{
    rd_upstream_t *up = c->data;
    char why[160];

    if (!up->connected) {
        int err = rd_net_socket_error(c->fd);
        if (err != 0) {
            snprintf(why, sizeof(why), "upstream unavailable: %s",
                     strerror(err));
            rd_upstream_fail(up, why);
            return;
        }
        up->connected = 1;
        rd_timer_del(&up->session->worker->loop.timers, &up->connect_timer);
    }

    while (rd_buf_used(&up->out) > 0) {
        ssize_t n = write(c->fd, rd_buf_rpos(&up->out), rd_buf_used(&up->out));
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR) {
                rd_conn_watch(c, EPOLLIN | EPOLLOUT);
                return;
            }
            snprintf(why, sizeof(why), "upstream connection lost: %s",
                     strerror(errno));
            rd_upstream_fail(up, why);
            return;
        }
        rd_buf_consume(&up->out, (size_t)n);
    }
    if (up->out.cap > 64 * 1024) {
        rd_buf_free(&up->out);
    }
    rd_conn_watch(c, EPOLLIN);
}

static void
rd_upstream_read_handler(rd_conn_t *c)
{
    rd_upstream_t *up = c->data;
    rd_session_t *s = up->session;
    char why[160];

    if (!up->connected) {
        /* A failed connect is reported as an error event before the
         * socket is writable. */
        rd_upstream_write_handler(c);
        if (c->closed || !up->connected) {
            return;
        }
    }

    rd_buf_reserve(&up->in, RD_UPSTREAM_READ_CHUNK);
    ssize_t n = read(c->fd, rd_buf_wpos(&up->in), rd_buf_room(&up->in));
    if (n < 0) {
        if (errno == EAGAIN || errno == EINTR) {
            return;
        }
        snprintf(why, sizeof(why), "upstream connection lost: %s",
                 strerror(errno));
        rd_upstream_fail(up, why);
        return;
    }
    if (n == 0) {
        rd_upstream_fail(up, "upstream connection lost");
        return;
    }
    rd_buf_produce(&up->in, (size_t)n);

    const rd_resp_limits_t *lim = rd_resp_limits(s->cycle);

    while (rd_buf_used(&up->in) > 0) {
        if (up->count == 0) {
            rd_upstream_fail(up, "upstream protocol error: unexpected data");
            return;
        }
        rd_request_t *r = up->pending[up->head];
        size_t used = 0;
        const char *err = NULL;
        rd_resp_status_t st = rd_resp_scan_reply(&up->scan,
            rd_buf_rpos(&up->in), rd_buf_used(&up->in), lim, &used, &err);

        if (st == RD_RESP_ERROR) {
            snprintf(why, sizeof(why), "upstream protocol error: %s", err);
            rd_upstream_fail(up, why);
            return;
        }
        rd_request_reply_append(r, rd_buf_rpos(&up->in), used);
        rd_buf_consume(&up->in, used);
        if (s->conn->closed) {
            return;
        }
        if (st == RD_RESP_OK) {
            rd_upstream_pop(up);
            rd_request_done(r);
            if (s->conn->closed) {
                return;
            }
        }
    }
    if (up->in.cap > 64 * 1024) {
        rd_buf_free(&up->in);
    }
}

static void
rd_upstream_cleanup(rd_session_t *s, void *data)
{
    rd_upstream_t *up = data;
    rd_upstream_disconnect(up);
    free(up->pending);
    free(up);
}

static int
rd_standalone_route(rd_session_t *s, rd_request_t *r)
{
    if (s->database->mode != RD_DB_STANDALONE) {
        return RD_DECLINED;
    }

    rd_upstream_t *up = rd_session_ctx(s, rd_standalone_module);
    if (up == NULL) {
        up = rd_calloc(1, sizeof(*up));
        up->session = s;
        up->db = s->database;
        up->connect_timer.handler = rd_upstream_connect_timeout;
        up->connect_timer.data = up;
        rd_resp_reply_init(&up->scan);
        rd_session_ctx(s, rd_standalone_module) = up;
        rd_session_cleanup_add(s, rd_upstream_cleanup, up);
    }

    if (up->conn == NULL && rd_upstream_connect(up) != 0) {
        rd_request_error(r, "ERR redoubt: upstream unavailable: %s",
                         strerror(errno));
        return RD_DONE;
    }

    rd_buf_append(&up->out, rd_buf_rpos(&r->raw), rd_buf_used(&r->raw));
    rd_upstream_push(up, r);
    if (up->connected) {
        rd_conn_want_flush(up->conn);
    }
    return RD_AGAIN;
}

static int
rd_standalone_postconfiguration(rd_cycle_t *cycle)
{
    return rd_phase_add(cycle, RD_PHASE_ROUTE, rd_standalone_route);
}

rd_module_t rd_standalone_module = {
    .name = "standalone",
    .postconfiguration = rd_standalone_postconfiguration,
};
