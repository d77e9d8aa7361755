/*
 * rd_event.c - epoll event loop; see rd_event.h.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rd_event.h"
#include "rd_log.h"

#define RD_EVENTS_PER_WAIT 256

int
rd_loop_init(rd_loop_t *l)
{
    memset(l, 0, sizeof(*l));
    l->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (l->epfd < 0) {
        return -1;
    }
    rd_timers_init(&l->timers);
    l->now_usec = rd_usec_now();
    l->now = l->now_usec / 1000;
    return 0;
}

/* A closed connection may still sit on the posted or flush list; it is
 * freed once those lists have let go of it. */
static void
rd_loop_free_closed(rd_loop_t *l, int all)
{
    rd_conn_t **pp = &l->closed;
    while (*pp) {
        rd_conn_t *c = *pp;
        if (!all && (c->posted || c->flush)) {
            pp = &c->next_closed;
            continue;
        }
        *pp = c->next_closed;
        free(c);
    }
}

void
rd_loop_free(rd_loop_t *l)
{
    rd_loop_free_closed(l, 1);
    rd_timers_free(&l->timers);
    if (l->epfd >= 0) {
        close(l->epfd);
        l->epfd = -1;
    }
}

static rd_conn_t *
rd_conn_alloc(rd_loop_t *l, int fd, void *data)
{
    rd_conn_t *c = rd_calloc(1, sizeof(rd_conn_t));
    c->fd = fd;
    c->data = data;
    c->loop = l;
    return c;
}

rd_conn_t *
rd_conn_new(rd_loop_t *l, int fd, void *data)
{
    rd_conn_t *c = rd_conn_alloc(l, fd, data);
    struct epoll_event ev = { .events = 0, .data.ptr = c };
    if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
        free(c);
        return NULL;
    }
    return c;
}

rd_conn_t *
rd_conn_new_listener(rd_loop_t *l, int fd, void *data)
{
    rd_conn_t *c = rd_conn_alloc(l, fd, data);
    struct epoll_event ev = { .events = EPOLLIN | EPOLLEXCLUSIVE,
                              .data.ptr = c };
    if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
        free(c);
        return NULL;
    }
    c->events = EPOLLIN;
    c->exclusive = 1;
    return c;
}

int
rd_conn_listen(rd_conn_t *c, int on)
{
    if (c->closed || (c->events != 0) == (on != 0)) {
        return 0;
    }
    struct epoll_event ev = { .events = EPOLLIN | EPOLLEXCLUSIVE,
                              .data.ptr = c };
    if (epoll_ctl(c->loop->epfd, on ? EPOLL_CTL_ADD : EPOLL_CTL_DEL, c->fd,
                  &ev) != 0)
    {
        rd_log_error("epoll_ctl(%d) failed: %s", c->fd, strerror(errno));
        return -1;
    }
    c->events = on ? EPOLLIN : 0;
    return 0;
}

int
rd_conn_watch(rd_conn_t *c, uint32_t events)
{
    if (c->closed || c->events == events) {
        return 0;
    }
    struct epoll_event ev = { .events = events, .data.ptr = c };
    if (epoll_ctl(c->loop->epfd, EPOLL_CTL_MOD, c->fd, &ev) != 0) {
        rd_log_error("epoll_ctl(%d) failed: %s", c->fd, strerror(errno));
        return -1;
    }
    c->events = events;
    return 0;
}

void
rd_conn_post(rd_conn_t *c)
{
    if (c->posted || c->closed) {
        return;
    }
    c->posted = 1;
    c->next_posted = c->loop->posted;
    c->loop->posted = c;
}

void
rd_conn_want_flush(rd_conn_t *c)
{
    if (c->flush || c->closed) {
        return;
    }
    c->flush = 1;
    c->next_flush = c->loop->flush;
    c->loop->flush = c;
}

void
rd_conn_close(rd_conn_t *c)
{
    if (c->closed) {
        return;
    }
    c->closed = 1;
    if (c->fd >= 0) {
        /* close() removes the descriptor from the epoll set; the explicit
         * delete matters when the descriptor was duplicated (fork). */
        epoll_ctl(c->loop->epfd, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        c->fd = -1;
    }
    c->next_closed = c->loop->closed;
    c->loop->closed = c;
}

static void
rd_loop_run_posted(rd_loop_t *l)
{
    /* Take the whole list: handlers may post again for the next round. */
    rd_conn_t *c = l->posted;
    l->posted = NULL;
    while (c) {
        rd_conn_t *next = c->next_posted;
        c->posted = 0;
        if (!c->closed && c->read) {
            c->read(c);
        }
        c = next;
    }
}

static void
rd_loop_run_flush(rd_loop_t *l)
{
    while (l->flush) {
        rd_conn_t *c = l->flush;
        l->flush = c->next_flush;
        c->flush = 0;
        if (!c->closed && c->write) {
            c->write(c);
        }
    }
}

void
rd_loop_once(rd_loop_t *l)
{
    struct epoll_event evs[RD_EVENTS_PER_WAIT];

    /* Connections closed in the last iteration go first: their owners
     * (sessions) were freed after it. One closed by the flush below stays
     * until the next iteration, since its session is freed only after
     * this one, and that session's other connections (to Redis) may still
     * get events now and look at it. */
    rd_loop_free_closed(l, 0);
    rd_loop_run_flush(l);

    int timeout = (int)rd_timers_next(&l->timers, rd_msec_now());
    if (l->posted || l->stop) {
        timeout = 0;
    }

    int n = epoll_wait(l->epfd, evs, RD_EVENTS_PER_WAIT, timeout);
    int err = errno;
    l->now_usec = rd_usec_now();
    l->now = l->now_usec / 1000;

    if (n < 0 && err != EINTR) {
        rd_log_error("epoll_wait failed: %s", strerror(err));
    }

    for (int i = 0; i < n; i++) {
        rd_conn_t *c = evs[i].data.ptr;
        uint32_t e = evs[i].events;

        /* Errors and hang-ups are delivered to the read handler (epoll
         * reports them even for a descriptor watched for nothing); it
         * finds them in c->revents or as a failed or empty read. */
        c->revents = e;
        if (!c->closed && (e & (EPOLLIN | EPOLLERR | EPOLLHUP)) && c->read) {
            c->read(c);
        }
        if (!c->closed && (e & EPOLLOUT) && c->write) {
            c->write(c);
        }
        c->revents = 0;
    }

    rd_loop_run_posted(l);
    rd_timers_expire(&l->timers, l->now);
}
