/*
 * rd_event.h - the event loop: epoll, timers, and deferred work.
 *
 * A connection (rd_conn_t) wraps a descriptor with a read and a write
 * handler. The loop is level-triggered: a handler that leaves bytes unread
 * is called again on the next iteration, so handlers may stop early to be
 * fair to other sessions.
 *
 * Three lists keep the loop correct without special cases in handlers:
 *   - posted: connections whose read handler must run although epoll will
 *     not report them (bytes already buffered in user space, e.g. by
 *     OpenSSL, or input held back while a pipeline was full);
 *   - flush: connections with output to write; their write handler runs
 *     once before the loop sleeps, so a pipeline's replies leave in one
 *     write(2) instead of one each;
 *   - closed: connections closed during this iteration, freed after it, so
 *     an event already fetched for them finds a valid, closed object.
 */
#ifndef RD_EVENT_H
#define RD_EVENT_H

#include <sys/epoll.h>

#include "rd_core.h"
#include "rd_timer.h"

typedef struct rd_conn_s rd_conn_t;
typedef struct rd_loop_s rd_loop_t;
typedef void (*rd_conn_handler_pt)(rd_conn_t *c);

struct rd_conn_s {
    int                 fd;
    uint32_t            events;     /* registered with epoll */
    uint32_t            revents;    /* reported by the current wait */
    unsigned            closed:1;
    unsigned            posted:1;
    unsigned            flush:1;
    unsigned            exclusive:1;
    rd_conn_handler_pt  read;
    rd_conn_handler_pt  write;
    void               *data;
    rd_loop_t          *loop;
    rd_conn_t          *next_posted;
    rd_conn_t          *next_flush;
    rd_conn_t          *next_closed;
};

struct rd_loop_s {
    int           epfd;
    int           stop;
    rd_msec_t     now;             /* cached at each wake-up */
    int64_t       now_usec;        /* the same, in microseconds */
    rd_timers_t   timers;
    rd_conn_t    *posted;
    rd_conn_t    *flush;
    rd_conn_t    *closed;
};

int  rd_loop_init(rd_loop_t *l);
void rd_loop_free(rd_loop_t *l);
/* One iteration: wait (bounded by the next timer), dispatch events, run
 * posted reads, expire timers, run flushes, free closed connections. */
void rd_loop_once(rd_loop_t *l);

/* Register fd (already non-blocking) with no events yet. */
rd_conn_t *rd_conn_new(rd_loop_t *l, int fd, void *data);
/* Register a listening socket with EPOLLEXCLUSIVE, so that of all the
 * workers sleeping on it only one is woken per connection. */
rd_conn_t *rd_conn_new_listener(rd_loop_t *l, int fd, void *data);
/* Take a listener out of the epoll set (on = 0) or put it back (on = 1);
 * an EPOLLEXCLUSIVE registration cannot be modified, only removed and
 * added again. */
int  rd_conn_listen(rd_conn_t *c, int on);
/* Set the events wanted (EPOLLIN, EPOLLOUT); no system call if unchanged. */
int  rd_conn_watch(rd_conn_t *c, uint32_t events);
void rd_conn_post(rd_conn_t *c);
void rd_conn_want_flush(rd_conn_t *c);
/* Close the descriptor now and free the object after this iteration. */
void rd_conn_close(rd_conn_t *c);

#endif
