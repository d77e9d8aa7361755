/*
 * rd_upstream.c - one connection to a Redis server, for the routing modules
 * (see rd_upstream.h for the contract).
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rd_log.h"
#include "rd_net.h"
#include "rd_resp.h"
#include "rd_stats.h"
#include "rd_upstream.h"
#include "rd_worker.h"

#define RD_UPCONN_READ_CHUNK (16 * 1024)

static void rd_upconn_read_handler(rd_conn_t *c);
static void rd_upconn_write_handler(rd_conn_t *c);

static void
rd_upconn_release(rd_upconn_t *uc)
{
    if (uc->tls && uc->io->release) {
        uc->io->release(uc->tls);
    }
}

static void
rd_upconn_push(rd_upconn_t *uc, void *data)
{
    if (uc->count == uc->cap) {
        size_t cap = uc->cap ? uc->cap * 2 : 16;
        void **a = rd_alloc(cap * sizeof(*a));
        for (size_t i = 0; i < uc->count; i++) {
            a[i] = uc->pending[(uc->head + i) % uc->cap];
        }
        free(uc->pending);
        uc->pending = a;
        uc->head = 0;
        uc->cap = cap;
    }
    uc->pending[(uc->head + uc->count) % uc->cap] = data;
    uc->count++;
}

void *
rd_upconn_pop(rd_upconn_t *uc)
{
    if (uc->count == 0) {
        return NULL;
    }
    void *data = uc->pending[uc->head];
    uc->head = (uc->head + 1) % uc->cap;
    uc->count--;
    return data;
}

static void
rd_upconn_connect_timeout(rd_timer_t *t)
{
    rd_upconn_t *uc = t->data;
    rd_stats_upstream_failed(uc->db, 0);
    uc->never_up = 1;
    rd_upconn_close(uc);
    uc->handler->fail(uc, "upstream unavailable: connection timed out");
}

void
rd_upconn_init(rd_upconn_t *uc, rd_worker_t *w, rd_database_t *db,
               const rd_sockaddr_t *addr, const char *host, const char *user,
               const rd_upconn_handler_t *h, void *owner)
{
    memset(uc, 0, sizeof(*uc));
    uc->worker = w;
    uc->db = db;
    uc->addr = addr;
    uc->host = host;
    uc->user = user;
    uc->handler = h;
    uc->owner = owner;
    uc->connect_timer.handler = rd_upconn_connect_timeout;
    uc->connect_timer.data = uc;
    rd_resp_reply_init(&uc->scan);
}

void
rd_upconn_close(rd_upconn_t *uc)
{
    if (uc->tls) {
        uc->io->close(uc->tls);
        uc->tls = NULL;
    }
    if (uc->conn) {
        rd_conn_close(uc->conn);
        uc->conn = NULL;
    }
    uc->tcp_up = 0;
    uc->connected = 0;
    rd_timer_del(&uc->worker->loop.timers, &uc->connect_timer);
    rd_buf_free(&uc->in);
    rd_buf_free(&uc->out);
    rd_buf_free(&uc->framebuf);
    uc->mid_reply = 0;
    rd_resp_reply_init(&uc->scan);
}

void
rd_upconn_free(rd_upconn_t *uc)
{
    rd_upconn_close(uc);
    free(uc->pending);
    uc->pending = NULL;
    uc->count = uc->cap = uc->head = 0;
}

/* The connection failed: close it, then let the owner answer what was
 * queued on it. */
static void
rd_upconn_fail(rd_upconn_t *uc, const char *why)
{
    rd_stats_upstream_failed(uc->db, uc->connected);
    uc->never_up = !uc->connected;
    rd_upconn_close(uc);
    uc->handler->fail(uc, why);
}

int
rd_upconn_connect(rd_upconn_t *uc)
{
    rd_loop_t *loop = &uc->worker->loop;

    int fd = rd_net_connect((const struct sockaddr *)&uc->addr->addr,
                            uc->addr->len);
    if (fd < 0) {
        return -1;
    }
    uc->conn = rd_conn_new(loop, fd, uc);
    if (uc->conn == NULL) {
        int err = errno;
        close(fd);
        errno = err;
        return -1;
    }
    uc->conn->read = rd_upconn_read_handler;
    uc->conn->write = rd_upconn_write_handler;
    uc->connected = 0;
    uc->tcp_up = 0;
    rd_conn_watch(uc->conn, EPOLLOUT);
    rd_timer_add(&loop->timers, &uc->connect_timer, loop->now,
                 uc->db->connect_timeout);
    rd_log_debug("connecting to %s (database \"%s\")", uc->addr->text,
                 uc->db->name);
    return 0;
}

void
rd_upconn_send(rd_upconn_t *uc, const char *cmd, size_t n, void *data)
{
    rd_buf_append(&uc->out, cmd, n);
    rd_upconn_push(uc, data);
    if (uc->connected) {
        rd_conn_want_flush(uc->conn);
    }
}

/* Plain or TLS I/O: > 0 bytes, 0 closed (read only), RD_AGAIN, RD_ERROR. */
static ssize_t
rd_upconn_io(rd_upconn_t *uc, char *rbuf, const char *wbuf, size_t n)
{
    if (uc->tls) {
        return rbuf ? uc->io->read(uc->tls, rbuf, n)
                    : uc->io->write(uc->tls, wbuf, n);
    }
    ssize_t r = rbuf ? read(uc->conn->fd, rbuf, n)
                     : write(uc->conn->fd, wbuf, n);
    if (r < 0) {
        return (errno == EAGAIN || errno == EINTR) ? RD_AGAIN : RD_ERROR;
    }
    return r;
}

/* Finish connecting: TCP, then TLS for rediss://. 1 when ready, 0 while
 * waiting, -1 when it failed (the owner was told). */
static int
rd_upconn_establish(rd_upconn_t *uc)
{
    rd_conn_t *c = uc->conn;
    char why[400], err[300];

    if (!uc->tcp_up) {
        int e = rd_net_socket_error(c->fd);
        if (e != 0) {
            snprintf(why, sizeof(why), "upstream unavailable: %s",
                     strerror(e));
            rd_upconn_fail(uc, why);
            return -1;
        }
        uc->tcp_up = 1;
        if (uc->db->tls) {
            uc->io = uc->worker->cycle->upstream_tls;
            if (uc->io == NULL) {
                rd_upconn_fail(uc, "upstream unavailable: rediss:// needs "
                               "the upstream_tls module");
                return -1;
            }
            uc->tls = uc->io->open(uc->worker, uc->db, uc->user, uc->host,
                                   c->fd, err, sizeof(err));
            if (uc->tls == NULL) {
                snprintf(why, sizeof(why), "upstream unavailable: %s", err);
                rd_upconn_fail(uc, why);
                return -1;
            }
        }
    }
    if (uc->tls) {
        uint32_t events = 0;
        int rc = uc->io->handshake(uc->tls, &events, err, sizeof(err));
        if (rc == RD_AGAIN) {
            rd_conn_watch(c, events);
            return 0;
        }
        if (rc != RD_OK) {
            snprintf(why, sizeof(why), "upstream unavailable: %s", err);
            rd_upconn_fail(uc, why);
            return -1;
        }
    }
    uc->connected = 1;
    rd_stats_upstream_up(uc->db);
    rd_timer_del(&uc->worker->loop.timers, &uc->connect_timer);
    return 1;
}

static const char *
rd_upconn_io_error(rd_upconn_t *uc, char *buf, size_t n)
{
    snprintf(buf, n, "upstream connection lost: %s",
             uc->tls ? uc->io->error(uc->tls) : strerror(errno));
    return buf;
}

static void
rd_upconn_write_handler(rd_conn_t *c)
{
    rd_upconn_t *uc = c->data;
    char why[160];

    if (!uc->connected && rd_upconn_establish(uc) <= 0) {
        return;
    }
    while (rd_buf_used(&uc->out) > 0) {
        ssize_t n = rd_upconn_io(uc, NULL, rd_buf_rpos(&uc->out),
                                 rd_buf_used(&uc->out));
        if (n == RD_AGAIN) {
            rd_conn_watch(c, EPOLLIN | EPOLLOUT);
            return;
        }
        if (n <= 0) {
            rd_upconn_fail(uc, rd_upconn_io_error(uc, why, sizeof(why)));
            return;
        }
        rd_buf_consume(&uc->out, (size_t)n);
    }
    /* Drained: an idle connection keeps no buffer. */
    rd_buf_free(&uc->out);
    if (rd_buf_used(&uc->in) == 0) {
        rd_upconn_release(uc);
    }
    rd_conn_watch(c, EPOLLIN);
}

/* Scan the next bytes of uc->in into uc->framebuf; a whole frame goes to
 * the owner's frame callback (rd_upstream.h). 0 to go on, -1 when the
 * connection or its owner is gone. */
static int
rd_upconn_read_frame(rd_upconn_t *uc, const rd_resp_limits_t *lim)
{
    char why[160];
    size_t used = 0;
    const char *err = NULL;
    rd_resp_status_t st = rd_resp_scan_reply(&uc->scan,
        rd_buf_rpos(&uc->in), rd_buf_used(&uc->in), lim, &used, &err);

    if (st == RD_RESP_ERROR) {
        snprintf(why, sizeof(why), "upstream protocol error: %s", err);
        rd_upconn_fail(uc, why);
        return -1;
    }
    rd_buf_append(&uc->framebuf, rd_buf_rpos(&uc->in), used);
    rd_buf_consume(&uc->in, used);
    if (st != RD_RESP_OK) {
        return 0;
    }
    /* The frame is the caller's now: the callbacks may close uc. */
    rd_buf_t f = uc->framebuf;
    memset(&uc->framebuf, 0, sizeof(uc->framebuf));
    int rc = uc->frame(uc, rd_buf_rpos(&f), rd_buf_used(&f));
    if (rc == 1) {
        if (uc->count == 0) {
            rd_buf_free(&f);
            rd_upconn_fail(uc, "upstream protocol error: unexpected data");
            return -1;
        }
        void *data = rd_upconn_pop(uc);
        rc = uc->handler->reply(uc, data, rd_buf_rpos(&f), rd_buf_used(&f),
                                1) != 0 ? -1 : 0;
    }
    rd_buf_free(&f);
    return rc < 0 ? -1 : 0;
}

static void
rd_upconn_read_handler(rd_conn_t *c)
{
    rd_upconn_t *uc = c->data;
    char why[160];

    if (!uc->connected) {
        /* A failed connect is reported as an error event before the
         * socket is writable; a TLS handshake reads too. */
        if (rd_upconn_establish(uc) <= 0) {
            return;
        }
        rd_upconn_write_handler(c);
        if (c->closed) {
            return;
        }
    }

    rd_buf_reserve(&uc->in, RD_UPCONN_READ_CHUNK);
    ssize_t n = rd_upconn_io(uc, rd_buf_wpos(&uc->in), NULL,
                             rd_buf_room(&uc->in));
    if (n == RD_AGAIN) {
        return;
    }
    if (n < 0) {
        rd_upconn_fail(uc, rd_upconn_io_error(uc, why, sizeof(why)));
        return;
    }
    if (n == 0) {
        rd_upconn_fail(uc, "upstream connection lost");
        return;
    }
    rd_buf_produce(&uc->in, (size_t)n);
    if (uc->tls && uc->io->pending(uc->tls) > 0) {
        rd_conn_post(c);        /* decrypted bytes epoll will not report */
    }

    const rd_resp_limits_t *lim = uc->worker->cycle->reply_limits;

    while (rd_buf_used(&uc->in) > 0) {
        /* Frames start at a boundary: a reply that began streaming
         * before the owner asked for whole frames ends streaming. */
        if (uc->whole_frames && uc->frame && !uc->mid_reply) {
            if (rd_upconn_read_frame(uc, lim) != 0) {
                return;
            }
            continue;
        }
        if (uc->count == 0) {
            rd_upconn_fail(uc, "upstream protocol error: unexpected data");
            return;
        }
        void *data = uc->pending[uc->head];
        size_t used = 0;
        const char *err = NULL;
        rd_resp_status_t st = rd_resp_scan_reply(&uc->scan,
            rd_buf_rpos(&uc->in), rd_buf_used(&uc->in), lim, &used, &err);

        if (st == RD_RESP_ERROR) {
            snprintf(why, sizeof(why), "upstream protocol error: %s", err);
            rd_upconn_fail(uc, why);
            return;
        }
        int last = st == RD_RESP_OK;
        if (last) {
            rd_upconn_pop(uc);
        }
        uc->mid_reply = !last;
        if (uc->handler->reply(uc, data, rd_buf_rpos(&uc->in), used, last)
            != 0)
        {
            return;
        }
        rd_buf_consume(&uc->in, used);
    }
    rd_buf_free(&uc->in);
    if (rd_buf_used(&uc->out) == 0) {
        rd_upconn_release(uc);
    }
}
